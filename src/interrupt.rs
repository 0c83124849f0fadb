//! Stopping alto cleanly: SIGINT, SIGTERM and SIGHUP, and the registry of
//! what must not outlive alto (the process groups of the plugins and tools it
//! started, and the private directories holding their rendered configs).
//!
//! Every child alto starts for a run or a build goes into a process group of
//! its own, registered here, so a terminal's Ctrl-C reaches alto alone and
//! alto decides how its children stop. While a command that knows how to stop
//! cleanly is at work (an [`Aware`] guard is alive), the first signal asks
//! each registered group to stop (SIGTERM, then SIGKILL after
//! `ALTO_STOP_GRACE_SECS`, default 10) and sets a flag the command checks: it
//! then commits what was confirmed, releases its lock and exits 128 + the
//! signal. A second signal, or any signal while no such command runs, kills
//! the groups, removes the private directories and exits at once.
//! Losing the pipeline lock, or a run's `--timeout` passing, stops the groups
//! the same way ([`stop`]).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Why alto is stopping its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A signal (SIGINT 2, SIGHUP 1, SIGTERM 15).
    Signal(i32),
    /// The run's pipeline lock could no longer be renewed.
    LockLost,
    /// The run's `--timeout` passed.
    Timeout,
}

/// 0: not stopping; > 0: the signal; -1: the lock was lost; -2: the timeout passed.
static STOP: AtomicI32 = AtomicI32::new(0);
/// Commands at work that stop cleanly on a signal.
static AWARE: AtomicUsize = AtomicUsize::new(0);
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Why alto is stopping, if it is.
pub fn stopping() -> Option<Stop> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        -1 => Some(Stop::LockLost),
        -2 => Some(Stop::Timeout),
        s => Some(Stop::Signal(s)),
    }
}

/// The signal alto was asked to stop by, if any.
pub fn signal() -> Option<i32> {
    match stopping() {
        Some(Stop::Signal(s)) => Some(s),
        _ => None,
    }
}

/// The exit code for a run stopped by `signal`: 128 + the signal, as shells do.
pub fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

/// The grace period between SIGTERM and SIGKILL (`ALTO_STOP_GRACE_SECS`).
pub fn grace() -> Duration {
    Duration::from_secs_f64(
        std::env::var("ALTO_STOP_GRACE_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(10.0),
    )
}

/// Installs the signal handlers (once per process). Cheap: one thread that
/// sleeps until a signal arrives.
pub fn install() {
    INSTALL.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            tracing::debug!("cannot install signal handlers; signals end alto at once");
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("alto-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    on_signal(sig);
                }
            });
        if spawned.is_err() {
            tracing::debug!("cannot start the signal thread");
        }
    });
}

fn on_signal(sig: i32) {
    let first = STOP
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if first && AWARE.load(Ordering::SeqCst) > 0 {
        eprintln!(
            "alto: {}: stopping the plugins (again to stop at once)",
            signal_name(sig)
        );
        terminate_groups();
        return;
    }
    // A second signal, or nobody to stop cleanly: at once.
    kill_groups(libc::SIGKILL);
    remove_dirs();
    let code = match stopping() {
        Some(Stop::Signal(s)) => exit_code(s),
        _ => exit_code(sig),
    };
    eprintln!("alto: interrupted");
    std::process::exit(i32::from(code));
}

/// A signal's usual name.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// Stops every registered group: SIGTERM now, SIGKILL after the grace period.
fn terminate_groups() {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    terminate(&groups);
}

/// Stops these process groups: SIGTERM now, SIGKILL after the grace period
/// to those still registered (a group whose leader was reaped is not).
pub fn terminate(pgids: &[i32]) {
    for &pgid in pgids {
        killpg(pgid, libc::SIGTERM);
    }
    let pgids = pgids.to_vec();
    let grace = grace();
    let _ = std::thread::Builder::new()
        .name("alto-stop".into())
        .spawn(move || {
            std::thread::sleep(grace);
            let live = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for pgid in pgids.into_iter().filter(|g| live.contains(g)) {
                killpg(pgid, libc::SIGKILL);
            }
        });
}

fn kill_groups(sig: i32) {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pgid in groups {
        killpg(pgid, sig);
    }
}

fn killpg(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory effects; a group that is gone gives ESRCH.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

fn remove_dirs() {
    let dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Stops every registered group for `why` (the lock was lost, the timeout
/// passed); the command sees it through [`stopping`].
pub fn stop(why: Stop) {
    let code = match why {
        Stop::Signal(s) => s,
        Stop::LockLost => -1,
        Stop::Timeout => -2,
    };
    if STOP
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        terminate_groups();
    }
}

/// Stops the run as a signal does once `after` has passed (`alto run
/// --timeout`). The watch is a thread of its own that ends with alto.
pub fn stop_after(after: Duration) {
    let _ = std::thread::Builder::new()
        .name("alto-timeout".into())
        .spawn(move || {
            std::thread::sleep(after);
            stop(Stop::Timeout);
        });
}

/// While alive, signals stop the command cleanly instead of ending alto.
pub struct Aware(());

impl Aware {
    pub fn new() -> Aware {
        install();
        AWARE.fetch_add(1, Ordering::SeqCst);
        Aware(())
    }
}

impl Default for Aware {
    fn default() -> Aware {
        Aware::new()
    }
}

impl Drop for Aware {
    fn drop(&mut self) {
        AWARE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Registers a private directory to remove if alto must stop at once.
pub fn register_dir(path: PathBuf) {
    DIRS.lock().unwrap_or_else(|e| e.into_inner()).push(path);
}

pub fn unregister_dir(path: &std::path::Path) {
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

/// A child in a process group of its own, registered for stopping. Dropping
/// it kills whatever is left of the group (the child's own children
/// included) and reaps the child, so nothing it started outlives it.
pub struct Process {
    child: Child,
    pgid: i32,
    reaped: bool,
}

impl Process {
    /// Spawns `cmd` as the leader of a new process group. Refused once alto
    /// is stopping: nothing new starts after a signal.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Process> {
        use std::os::unix::process::CommandExt;
        if let Some(why) = stopping() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                match why {
                    Stop::Signal(s) => format!("alto is stopping ({})", signal_name(s)),
                    Stop::LockLost => "alto is stopping (the pipeline lock was lost)".into(),
                    Stop::Timeout => "alto is stopping (the run's --timeout passed)".into(),
                },
            ));
        }
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        {
            // If alto itself is killed (SIGKILL: nothing can be caught), the
            // kernel kills the child too rather than leave it running.
            let parent = std::process::id() as i32;
            // SAFETY: prctl and getppid are async-signal-safe, and the closure
            // touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() != parent {
                        // alto died before the line above: do not start.
                        libc::_exit(137);
                    }
                    Ok(())
                });
            }
        }
        // Registered before the signal could miss it: hold the list while spawning.
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        groups.push(pgid);
        drop(groups);
        // A signal that came while spawning found no group to stop.
        if stopping().is_some() {
            killpg(pgid, libc::SIGTERM);
        }
        Ok(Process {
            child,
            pgid,
            reaped: false,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The process group (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Waits for the group's leader.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    /// Waits for the leader, collecting its piped stdout and stderr.
    pub fn wait_with_output(&mut self) -> std::io::Result<Output> {
        use std::io::Read;
        let stderr = self.child.stderr.take();
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_end(&mut stdout)?;
        }
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Asks the group to stop now (SIGTERM), then SIGKILL after the grace period.
    pub fn terminate(&self) {
        killpg(self.pgid, libc::SIGTERM);
    }

    /// Kills the group at once.
    pub fn kill(&self) {
        killpg(self.pgid, libc::SIGKILL);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Whatever is left of the group goes: the leader if it was never
        // waited for, and any process it started.
        killpg(self.pgid, libc::SIGKILL);
        if !self.reaped {
            let _ = self.child.wait();
        }
        GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| *g != self.pgid);
    }
}
