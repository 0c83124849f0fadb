//! A run's private directory under `.alto/run/`: rendered configs (secrets in
//! clear), the runtime catalog and the starting state, readable by the user
//! alone, removed when the run ends, however it ends. A directory left by a
//! run that was killed (SIGKILL, a crash, a power cut) is removed by the next
//! run on the machine once its owner process is gone.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{RunError, io_err};
use crate::config::Project;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(project: &Project) -> Result<RunDir, RunError> {
        let parent = project.root.join(".alto/run");
        remove_stale(&parent);
        // Named `<pid>-...`, so a later run can tell whether its owner is alive.
        let path = parent.join(crate::store::local::unique());
        std::fs::create_dir_all(&path).map_err(io_err("cannot create", &path))?;
        crate::interrupt::register_dir(path.clone());
        let dir = RunDir { path };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("cannot protect", &dir.path))?;
        }
        // Whose pid the name holds: only a run in the same pid space may
        // judge that its owner is gone.
        let owner = dir.path.join(OWNER);
        std::fs::write(&owner, pid_space()).map_err(io_err("cannot write", &owner))?;
        Ok(dir)
    }

    /// Writes a private (0600) JSON file.
    pub fn write_json(&self, name: &str, v: &Value) -> Result<PathBuf, RunError> {
        let path = self.path.join(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(io_err("cannot create", &path))?;
        f.write_all(&serde_json::to_vec(v).unwrap_or_default())
            .map_err(io_err("cannot write", &path))?;
        Ok(path)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        crate::interrupt::unregister_dir(&self.path);
    }
}

/// What identifies the space pids live in: this boot of this machine and
/// this pid namespace (containers have their own). A pid means the same
/// process only to someone with the same answer; empty when unknown.
pub fn pid_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if boot.trim().is_empty() || ns.is_empty() {
        return String::new();
    }
    format!("{}/{ns}", boot.trim())
}

/// Whether a process of this machine is alive.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The file in a run directory naming the pid space of its owner.
const OWNER: &str = ".owner";

/// Removes run directories whose owner process is gone.
fn remove_stale(parent: &Path) {
    let here = pid_space();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // A directory of another machine or container sharing this project
        // (or without an owner file) is not ours to judge.
        let space = std::fs::read_to_string(e.path().join(OWNER)).unwrap_or_default();
        if space.is_empty() || space != here {
            continue;
        }
        if pid != std::process::id() && !pid_alive(pid) {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a run (pid {pid}) that is no longer running",
                    e.path().display()
                ),
                Err(err) => tracing::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_directories_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0x7ffffff0 cannot be alive (above pid_max); ours is.
        let dead = dir.path().join("2147483632-0-1");
        let ours = dir.path().join(format!("{}-0-1", std::process::id()));
        let other = dir.path().join("notes");
        // A dead pid of another machine or container: not judged here.
        let elsewhere = dir.path().join("2147483631-0-1");
        for d in [&dead, &ours, &other, &elsewhere] {
            std::fs::create_dir_all(d).unwrap();
        }
        for d in [&dead, &ours] {
            std::fs::write(d.join(OWNER), pid_space()).unwrap();
        }
        std::fs::write(elsewhere.join(OWNER), "another-boot/pid:[1]").unwrap();
        remove_stale(dir.path());
        assert!(!dead.exists());
        assert!(ours.exists());
        assert!(other.exists());
        assert!(elsewhere.exists());
    }
}
