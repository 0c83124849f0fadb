//! Finding and probing the Python interpreter plugins are built for and run
//! with. A probe runs the interpreter once; its answer is cached by the
//! interpreter's path and mtime.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RealizeError;
use crate::eval::Platform;

/// What a probe learns about an interpreter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonInfo {
    /// `sys.executable`: the interpreter itself, not a shim in front of it.
    pub executable: PathBuf,
    pub implementation: String,
    /// The full version (`3.11.7`), shown; keys use `major.minor`.
    pub version: String,
    pub abi: String,
    pub platform: String,
    pub libc: String,
    pub os: String,
    pub arch: String,
}

impl PythonInfo {
    /// What a plugin key takes from the interpreter: everything that decides
    /// which wheels fit, not the patch version (a PEX built under 3.11.7 is
    /// the same artifact under 3.11.2).
    pub fn platform(&self) -> Platform {
        let minor: Vec<&str> = self.version.split('.').take(2).collect();
        Platform {
            implementation: self.implementation.clone(),
            python_version: minor.join("."),
            abi: self.abi.clone(),
            platform: self.platform.clone(),
            libc: self.libc.clone(),
            os: self.os.clone(),
            arch: self.arch.clone(),
        }
    }
}

/// Runs on every Python 3 alto may meet (3.6 and later). The ABI tag is
/// the one wheels are chosen by: `cp` + version + ABI flags for CPython,
/// the first two parts of `SOABI` otherwise.
const PROBE: &str = r#"
import json, platform, sys, sysconfig
v = sys.version_info
impl = sys.implementation.name
if impl == "cpython":
    abi = "cp%d%d%s" % (v[0], v[1], getattr(sys, "abiflags", ""))
else:
    soabi = sysconfig.get_config_var("SOABI") or impl
    abi = "_".join(soabi.replace(".", "_").split("-")[:2])
libc = " ".join(platform.libc_ver()).strip()
print(json.dumps({
    "executable": sys.executable,
    "implementation": impl,
    "version": platform.python_version(),
    "abi": abi,
    "platform": sysconfig.get_platform().replace("-", "_").replace(".", "_"),
    "libc": libc,
    "os": platform.system().lower(),
    "arch": platform.machine().lower(),
}))
"#;

/// Resolves a `python` setting (a path, or a name looked up on PATH).
pub fn find(setting: Option<&str>) -> Result<PathBuf, RealizeError> {
    let name = setting.unwrap_or("python3");
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RealizeError::PythonNotFound {
                name: name.to_string(),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(RealizeError::PythonNotFound {
        name: name.to_string(),
    })
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Probes an interpreter, or reads the cached probe of the same file.
pub fn probe(python: &Path, cache_dir: &Path) -> Result<PythonInfo, RealizeError> {
    let meta = std::fs::metadata(python).map_err(|_| RealizeError::PythonNotFound {
        name: python.display().to_string(),
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id =
        blake3::hash(format!("{}|{mtime}|{}", python.display(), meta.len()).as_bytes()).to_hex();
    let cached = cache_dir.join("python").join(format!("{}.json", &id[..32]));
    if let Some(info) = std::fs::read(&cached)
        .ok()
        .and_then(|b| serde_json::from_slice::<PythonInfo>(&b).ok())
    {
        return Ok(info);
    }
    let out = std::process::Command::new(python)
        .args(["-I", "-c", PROBE])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RealizeError::PythonProbe {
            python: python.to_path_buf(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RealizeError::PythonProbe {
            python: python.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let info: PythonInfo =
        serde_json::from_slice(&out.stdout).map_err(|e| RealizeError::PythonProbe {
            python: python.to_path_buf(),
            message: format!("unexpected probe output: {e}"),
        })?;
    let _ =
        crate::store::local::write_atomic(&cached, &serde_json::to_vec(&info).unwrap_or_default());
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str) -> PythonInfo {
        PythonInfo {
            executable: PathBuf::from(format!("/opt/python-{version}/bin/python3")),
            implementation: "cpython".into(),
            version: version.into(),
            abi: "cp311".into(),
            platform: "linux_x86_64".into(),
            libc: "glibc 2.36".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn patch_versions_of_one_interpreter_share_a_platform() {
        assert_eq!(info("3.11.7").platform(), info("3.11.2").platform());
        assert_eq!(info("3.11.7").platform().python_version, "3.11");
        assert_ne!(info("3.11.7").platform(), info("3.12.1").platform());
    }

    /// Every interpreter pyenv has here probes, and its platform is what
    /// its version says.
    #[test]
    fn the_probe_runs_on_every_python_3_here() {
        let dir = tempfile::tempdir().unwrap();
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let versions = std::fs::read_dir(home.join(".pyenv/versions"))
            .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut probed = 0;
        for v in versions {
            let python = v.join("bin/python3");
            let name = v.file_name().unwrap().to_string_lossy().into_owned();
            if !python.exists() || !name.starts_with("3.") {
                continue;
            }
            let info = probe(&python, dir.path()).unwrap();
            assert_eq!(info.version, name);
            let p = info.platform();
            let minor: Vec<&str> = name.split('.').take(2).collect();
            assert_eq!(p.python_version, minor.join("."));
            assert!(
                p.abi.starts_with(&format!("cp{}", minor.join(""))),
                "{}",
                p.abi
            );
            assert!(!p.platform.is_empty() && !p.libc.is_empty());
            probed += 1;
        }
        // The interpreter on PATH, at least, wherever pyenv is absent.
        if probed == 0 {
            let python = find(None).unwrap();
            assert!(
                probe(&python, dir.path())
                    .unwrap()
                    .platform()
                    .abi
                    .starts_with("cp3")
            );
        }
    }
}
