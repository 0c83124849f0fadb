//! The builder: a pinned pex, provisioned by alto itself into the local
//! store's tools (through the interpreter's pip, from the package registry),
//! or the executable the `pex` setting names.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::RealizeError;
use crate::eval::Builder;

/// The pex alto provisions. Builds with it are byte-for-byte reproducible.
pub const PEX_VERSION: &str = "2.105.2";

/// Flags that decide the PEX's content, hence part of every plugin key.
/// `--venv`: the PEX installs itself into a venv on first run and starts fast
/// from then on.
pub const PEX_FLAGS: [&str; 2] = ["--venv", "--no-emit-warnings"];

/// A usable pex.
#[derive(Clone, Debug)]
pub enum PexTool {
    /// Provisioned by alto: `python -m pex` with this directory on PYTHONPATH.
    Provisioned { lib: PathBuf },
    /// The `pex` setting.
    Executable { path: PathBuf, version: String },
}

impl PexTool {
    pub fn builder(&self) -> Builder {
        let version = match self {
            PexTool::Provisioned { .. } => PEX_VERSION.to_string(),
            PexTool::Executable { version, .. } => version.clone(),
        };
        Builder {
            tool: "pex".into(),
            version,
            flags: PEX_FLAGS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A `pex` invocation run by `python`.
    pub fn command(&self, python: &Path) -> Command {
        match self {
            PexTool::Provisioned { lib } => {
                let mut c = Command::new(python);
                c.env("PYTHONPATH", lib).args(["-m", "pex"]);
                c
            }
            PexTool::Executable { path, .. } => Command::new(path),
        }
    }
}

/// Where the provisioned pex lives.
pub fn tool_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("tools").join(format!("pex-{PEX_VERSION}"))
}

/// The builder's identity without provisioning anything (for keys and dry runs).
pub fn planned_tool(cache_dir: &Path, setting: Option<&str>) -> Result<PexTool, RealizeError> {
    match setting {
        Some(path) => executable(Path::new(path)),
        None => Ok(PexTool::Provisioned {
            lib: tool_dir(cache_dir),
        }),
    }
}

fn executable(path: &Path) -> Result<PexTool, RealizeError> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RealizeError::PexProvision {
            message: format!("cannot run {}: {e}", path.display()),
            log: None,
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        return Err(RealizeError::PexProvision {
            message: format!("{} --version failed", path.display()),
            log: None,
        });
    }
    Ok(PexTool::Executable {
        path: path.to_path_buf(),
        version,
    })
}

/// Makes sure the provisioned pex exists: `pip install --target` into a
/// temporary directory, renamed into place when complete.
pub fn ensure(tool: &PexTool, python: &Path, cache_dir: &Path) -> Result<(), RealizeError> {
    let PexTool::Provisioned { lib } = tool else {
        return Ok(());
    };
    if lib.join("pex").is_dir() {
        return Ok(());
    }
    let parent = lib.parent().unwrap_or(cache_dir);
    std::fs::create_dir_all(parent).map_err(|e| RealizeError::PexProvision {
        message: format!("cannot create {}: {e}", parent.display()),
        log: None,
    })?;
    let tmp = parent.join(format!(
        ".pex-{PEX_VERSION}.{}",
        crate::store::local::unique()
    ));
    tracing::info!("provisioning pex {PEX_VERSION} (once per machine)");
    let out = Command::new(python);
    let mut cmd = out;
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--target",
    ])
    .arg(&tmp)
    .arg(format!("pex=={PEX_VERSION}"))
    .stdin(Stdio::null())
    .env("PIP_ROOT_USER_ACTION", "ignore")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = crate::interrupt::Process::spawn(&mut cmd)
        .and_then(|mut p| p.wait_with_output())
        .map_err(|e| RealizeError::PexProvision {
            message: format!("cannot run pip: {e}"),
            log: None,
        })?;
    if let Some(signal) = crate::interrupt::signal() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(RealizeError::Interrupted {
            what: "provisioning pex".into(),
            signal,
        });
    }
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(RealizeError::PexProvision {
            message: format!(
                "`{} -m pip install pex=={PEX_VERSION}` failed",
                python.display()
            ),
            log: Some(super::tail(&text, 20)),
        });
    }
    match std::fs::rename(&tmp, lib) {
        Ok(()) => Ok(()),
        // Another process provisioned it meanwhile.
        Err(_) if lib.join("pex").is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(RealizeError::PexProvision {
            message: format!("cannot move pex into {}: {e}", lib.display()),
            log: None,
        }),
    }
}
