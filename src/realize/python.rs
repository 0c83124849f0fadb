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
    pub version: String,
    pub os: String,
    pub arch: String,
}

impl PythonInfo {
    pub fn platform(&self) -> Platform {
        Platform {
            implementation: self.implementation.clone(),
            python_version: self.version.clone(),
            os: self.os.clone(),
            arch: self.arch.clone(),
        }
    }
}

const PROBE: &str = "import json, platform, sys; print(json.dumps({'executable': sys.executable, 'implementation': sys.implementation.name, 'version': platform.python_version(), 'os': platform.system().lower(), 'arch': platform.machine().lower()}))";

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
