//! The tools alto provisions for itself (pex, uv): each a pinned version
//! from the package registry, installed with the interpreter's pip, or with
//! uv once alto has it (`pip install --target`), into
//! `<cache>/tools/<name>-<version>/` once per machine, checked before it is
//! moved into place.

use std::path::Path;
use std::process::{Command, Stdio};

use super::RealizeError;

/// A pinned tool: its package, version, and how to tell it is complete.
pub struct Pinned<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// A path inside its directory that exists once it is installed.
    pub marker: &'a str,
    /// Checks a fresh install before it is moved into place (`Err`: why not).
    pub verify: &'a Step<'a>,
    /// A quicker install tried first, into the directory given; when it
    /// fails (`Err`: why), pip installs the tool as usual.
    pub fetch: Option<&'a Step<'a>>,
}

/// Something done to a tool's directory: `Err` says why it failed.
pub type Step<'a> = dyn Fn(&Path) -> Result<(), String> + 'a;

fn error(tool: &Pinned, message: String, log: Option<String>) -> RealizeError {
    RealizeError::ToolProvision {
        tool: tool.name.to_string(),
        message,
        log,
    }
}

/// Makes sure `tool` is installed in `dir`: `pip install --target` into a
/// temporary directory beside it (by `uv` when given: seconds faster than
/// pip), verified, renamed into place when complete.
pub fn ensure(
    tool: &Pinned,
    python: &Path,
    dir: &Path,
    uv: Option<(&Path, &Path)>,
) -> Result<(), RealizeError> {
    if dir.join(tool.marker).exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| {
        error(
            tool,
            format!("cannot create {}: {e}", parent.display()),
            None,
        )
    })?;
    let tmp = parent.join(format!(
        ".{}-{}.{}",
        tool.name,
        tool.version,
        crate::store::local::unique()
    ));
    tracing::info!(
        "provisioning {} {} (once per machine)",
        tool.name,
        tool.version
    );
    if let (Some(fetch), None) = (tool.fetch, uv) {
        match fetch(&tmp).and_then(|()| (tool.verify)(&tmp)) {
            Ok(()) => return place(tool, &tmp, dir),
            Err(why) => {
                let _ = std::fs::remove_dir_all(&tmp);
                RealizeError::if_signalled(|| format!("provisioning {}", tool.name))?;
                tracing::debug!("{} {}: {why}; pip installs it", tool.name, tool.version);
            }
        }
    }
    let mut cmd = match uv {
        Some((uv, cache_dir)) => {
            let mut c = super::uv::command(uv, cache_dir);
            c.args(["pip", "install", "--quiet", "--python"])
                .arg(python)
                .args(["--no-deps", "--only-binary", ":all:", "--target"]);
            c
        }
        None => {
            let mut c = Command::new(python);
            c.args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--target",
            ])
            .env("PIP_ROOT_USER_ACTION", "ignore");
            c
        }
    };
    cmd.arg(&tmp)
        .arg(format!("{}=={}", tool.name, tool.version))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = crate::interrupt::Process::spawn(&mut cmd)
        .and_then(|mut p| p.wait_with_output())
        .map_err(|e| error(tool, format!("cannot run pip: {e}"), None))?;
    RealizeError::if_signalled(|| format!("provisioning {}", tool.name)).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(error(
            tool,
            format!(
                "`{} install {}=={}` failed",
                match uv {
                    Some((uv, _)) => format!("{} pip", uv.display()),
                    None => format!("{} -m pip", python.display()),
                },
                tool.name,
                tool.version
            ),
            Some(super::tail(&text, 20)),
        ));
    }
    if let Err(why) = (tool.verify)(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(error(
            tool,
            format!(
                "the installed {} {} is not usable: {why}",
                tool.name, tool.version
            ),
            None,
        ));
    }
    place(tool, &tmp, dir)
}

/// Moves a verified install from `tmp` to `dir`.
fn place(tool: &Pinned, tmp: &Path, dir: &Path) -> Result<(), RealizeError> {
    match std::fs::rename(tmp, dir) {
        Ok(()) => Ok(()),
        // Another process provisioned it meanwhile.
        Err(_) if dir.join(tool.marker).exists() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(tmp);
            Err(error(
                tool,
                format!("cannot move {} into {}: {e}", tool.name, dir.display()),
                None,
            ))
        }
    }
}
