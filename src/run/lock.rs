//! The pipeline lock: a create-only object naming its holder (owner, host,
//! pid) and an expiry, renewed while the pipeline runs and taken over once
//! expired, so one `tap:target` never runs twice at once, even on two
//! machines sharing a bucket.
//!
//! The lock is the run's licence: if it cannot be renewed until a third of
//! its TTL is left, the run is stopped (its plugins first) before another
//! machine may take it over. A lock whose holder was on this host and is no
//! longer running is taken over at once. Release removes the lock only if it
//! is still ours (a compare-and-swap), never someone's takeover.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};

use super::RunError;
use crate::store::remote::{Remote, Written};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub acquired: String,
    /// Seconds since the epoch.
    pub expires: u64,
    /// The pid space of `pid` (boot and pid namespace): a holder whose
    /// process is gone is taken over early only from the same space.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub space: String,
}

impl Holder {
    /// This process holding the lock from now until the TTL runs out.
    fn new(owner: &str) -> Holder {
        Holder {
            owner: owner.to_string(),
            host: crate::store::hostname(),
            pid: std::process::id(),
            acquired: crate::store::now_rfc3339(),
            expires: now() + ttl(),
            space: super::dir::pid_space(),
        }
    }

    /// What a released lock holds on remotes that cannot delete conditionally.
    fn released() -> Holder {
        Holder {
            owner: String::new(),
            host: String::new(),
            pid: 0,
            acquired: format!("released {}", crate::store::now_rfc3339()),
            expires: 0,
            space: String::new(),
        }
    }

    fn bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long a lock lives without renewal (`ALTO_LOCK_TTL` seconds, default 60).
pub fn ttl() -> u64 {
    std::env::var("ALTO_LOCK_TTL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(60)
}

/// What the renewer shares with the run.
struct Licence {
    /// When the lock was last written by us (ms since the epoch).
    renewed_ms: AtomicU64,
    lost: AtomicBool,
    /// The process groups to stop when the lock is lost.
    groups: Mutex<Vec<i32>>,
}

pub struct PipelineLock {
    stop: Arc<AtomicBool>,
    wake: Option<std::sync::mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    watchdog: Option<std::thread::JoinHandle<()>>,
    remote: Arc<Remote>,
    rel: String,
    version: Arc<Mutex<Option<UpdateVersion>>>,
    licence: Arc<Licence>,
}

impl PipelineLock {
    pub fn rel(env: &str, name: &str) -> String {
        format!("locks/{env}/{name}.lock")
    }

    /// Takes the lock, or fails at once naming the holder (or waits, with `wait`).
    pub fn acquire(
        remote: Arc<Remote>,
        env: &str,
        name: &str,
        wait: bool,
    ) -> Result<PipelineLock, RunError> {
        let rel = Self::rel(env, name);
        let owner = format!(
            "{}-{}-{}",
            crate::store::hostname(),
            std::process::id(),
            crate::store::local::unique()
        );
        let space = super::dir::pid_space();
        loop {
            if let Some(s) = crate::interrupt::signal() {
                return Err(RunError::Interrupted {
                    what: name.to_string(),
                    signal: s,
                });
            }
            let bytes = Holder::new(&owner).bytes();
            match remote.write_project_file(&rel, bytes.clone(), None)? {
                Written::Done(v) => return Ok(Self::start(remote, rel, owner, v)),
                Written::Conflict => {}
            }
            let current = remote.read_project_file(&rel)?;
            let Some(current) = current else { continue };
            let theirs: Option<Holder> = serde_json::from_slice(&current.bytes).ok();
            let expired = theirs.as_ref().is_none_or(|h| h.expires < now());
            // A holder of this host whose process is gone (killed, crashed)
            // will never release it: no need to wait for the expiry.
            let dead = theirs.as_ref().is_some_and(|h| {
                !space.is_empty()
                    && h.space == space
                    && h.pid != std::process::id()
                    && !super::dir::pid_alive(h.pid)
            });
            if expired || dead {
                // Take over, only if nobody else did meanwhile.
                if let Written::Done(v) =
                    remote.write_project_file(&rel, bytes, Some(current.version))?
                {
                    match &theirs {
                        Some(h) if dead && !expired => tracing::warn!(
                            "took over the lock of pid {} on this host (since {}), which is no longer running",
                            h.pid,
                            h.acquired
                        ),
                        Some(h) if h.pid != 0 => tracing::warn!(
                            "took over the expired lock of {} (pid {}, since {})",
                            h.host,
                            h.pid,
                            h.acquired
                        ),
                        _ => {}
                    }
                    return Ok(Self::start(remote, rel, owner, v));
                }
                continue;
            }
            let h = theirs.unwrap_or(Holder {
                owner: "?".into(),
                host: "?".into(),
                pid: 0,
                acquired: "?".into(),
                expires: 0,
                space: String::new(),
            });
            if !wait {
                return Err(RunError::Locked {
                    pipeline: name.to_string(),
                    host: h.host,
                    pid: h.pid,
                    since: h.acquired,
                    path: remote.describe_project_file(&rel),
                });
            }
            tracing::info!("{name} is running on {} (pid {}); waiting", h.host, h.pid);
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn start(
        remote: Arc<Remote>,
        rel: String,
        owner: String,
        version: UpdateVersion,
    ) -> PipelineLock {
        let stop = Arc::new(AtomicBool::new(false));
        let version = Arc::new(Mutex::new(Some(version)));
        let licence = Arc::new(Licence {
            renewed_ms: AtomicU64::new(now_ms()),
            lost: AtomicBool::new(false),
            groups: Mutex::new(Vec::new()),
        });
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let ttl_ms = ttl() * 1000;
        let renewer = {
            let (stop, remote, rel, version, licence) = (
                stop.clone(),
                remote.clone(),
                rel.clone(),
                version.clone(),
                licence.clone(),
            );
            std::thread::spawn(move || {
                let every = Duration::from_millis((ttl_ms / 3).max(500));
                while !stop.load(Ordering::SeqCst) {
                    // Woken at once when the lock is released.
                    match woken.recv_timeout(every) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                    let mut guard = version.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(current) = guard.clone() else { break };
                    let holder = Holder::new(&owner);
                    match remote.write_project_file(&rel, holder.bytes(), Some(current)) {
                        Ok(Written::Done(v)) => {
                            *guard = Some(v);
                            licence.renewed_ms.store(now_ms(), Ordering::SeqCst);
                        }
                        Ok(Written::Conflict) => {
                            tracing::error!("lost the pipeline lock {rel} to another run");
                            *guard = None;
                            lose(&licence);
                            break;
                        }
                        Err(e) => tracing::warn!("could not renew the pipeline lock: {e}"),
                    }
                }
            })
        };
        // The watchdog is apart from the renewer: a renewal stuck in a dead
        // remote must not keep the run going past its licence.
        let watchdog = {
            let (stop, licence, rel) = (stop.clone(), licence.clone(), rel.clone());
            std::thread::spawn(move || {
                let limit = ttl_ms * 2 / 3;
                while !stop.load(Ordering::SeqCst) && !licence.lost.load(Ordering::SeqCst) {
                    // Unparked when the lock is released, so a run's end
                    // never waits out a tick.
                    std::thread::park_timeout(Duration::from_millis(100));
                    let since = now_ms().saturating_sub(licence.renewed_ms.load(Ordering::SeqCst));
                    if since >= limit && !stop.load(Ordering::SeqCst) {
                        tracing::error!(
                            "the pipeline lock {rel} could not be renewed for {}s; stopping the run before it expires",
                            since / 1000
                        );
                        lose(&licence);
                    }
                }
            })
        };
        PipelineLock {
            stop,
            wake: Some(wake),
            renewer: Some(renewer),
            watchdog: Some(watchdog),
            remote,
            rel,
            version,
            licence,
        }
    }

    /// Whether the lock was lost (not renewed in time, or taken over): the
    /// run must stop and commit nothing but by conditional writes.
    pub fn lost(&self) -> bool {
        self.licence.lost.load(Ordering::SeqCst)
    }

    /// The lock's path, for messages.
    pub fn describe(&self) -> String {
        self.remote.describe_project_file(&self.rel)
    }

    /// Process groups to stop if the lock is lost.
    pub fn guard_group(&self, pgid: i32) {
        self.licence
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pgid);
        if self.lost() {
            crate::interrupt::terminate(&[pgid]);
        }
    }
}

fn lose(licence: &Licence) {
    if !licence.lost.swap(true, Ordering::SeqCst) {
        let groups = licence
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        crate::interrupt::terminate(&groups);
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        if let Some(w) = self.watchdog.take() {
            w.thread().unpark();
            let _ = w.join();
        }
        // Release only a lock that is still ours: against the version we last wrote.
        let version = self
            .version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(v) = version {
            match self
                .remote
                .release_project_file(&self.rel, v, Holder::released().bytes())
            {
                Ok(Written::Done(_)) => {}
                Ok(Written::Conflict) => {
                    tracing::warn!(
                        "the pipeline lock {} is no longer ours; left as it is",
                        self.rel
                    )
                }
                Err(e) => tracing::warn!("could not release the pipeline lock: {e}"),
            }
        }
    }
}
