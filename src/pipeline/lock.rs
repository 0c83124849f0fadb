//! The pipeline lock: a create-only object naming its holder (owner, host,
//! pid) and an expiry, renewed while the pipeline runs and taken over once
//! expired, so one `tap:target` never runs twice at once, even on two
//! machines sharing a bucket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use crate::store::remote::{Remote, Written};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub acquired: String,
    /// Seconds since the epoch.
    pub expires: u64,
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
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long a lock lives without renewal (`ALTO_LOCK_TTL` seconds, default 60).
fn ttl() -> u64 {
    std::env::var("ALTO_LOCK_TTL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(60)
}

pub struct PipelineLock {
    stop: Arc<AtomicBool>,
    wake: Option<std::sync::mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    remote: Arc<Remote>,
    rel: String,
    owner: String,
    version: Arc<std::sync::Mutex<Option<UpdateVersion>>>,
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
    ) -> Result<PipelineLock, PipelineError> {
        let rel = Self::rel(env, name);
        let owner = format!(
            "{}-{}-{}",
            crate::store::hostname(),
            std::process::id(),
            crate::store::local::unique()
        );
        loop {
            let holder = Holder::new(&owner);
            let bytes = Bytes::from(serde_json::to_vec_pretty(&holder).unwrap_or_default());
            match remote.write_project_file(&rel, bytes.clone(), None)? {
                Written::Done(v) => return Ok(Self::start(remote, rel, owner, v)),
                Written::Conflict => {}
            }
            let current = remote.read_project_file(&rel)?;
            let Some(current) = current else { continue };
            let theirs: Option<Holder> = serde_json::from_slice(&current.bytes).ok();
            let expired = theirs.as_ref().is_none_or(|h| h.expires < now());
            if expired {
                // Take over an expired (or unreadable) lock, only if nobody else did meanwhile.
                if let Written::Done(v) =
                    remote.write_project_file(&rel, bytes, Some(current.version))?
                {
                    if let Some(h) = &theirs {
                        tracing::warn!(
                            "took over the expired lock of {} (pid {}, since {})",
                            h.host,
                            h.pid,
                            h.acquired
                        );
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
            });
            if !wait {
                return Err(PipelineError::Locked {
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
        let version = Arc::new(std::sync::Mutex::new(Some(version)));
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let renewer = {
            let (stop, remote, rel, owner, version) = (
                stop.clone(),
                remote.clone(),
                rel.clone(),
                owner.clone(),
                version.clone(),
            );
            std::thread::spawn(move || {
                let every = Duration::from_secs((ttl() / 3).max(1));
                while !stop.load(Ordering::SeqCst) {
                    // Woken at once when the lock is released.
                    match woken.recv_timeout(every) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                    let holder = Holder::new(&owner);
                    let mut guard = version.lock().unwrap_or_else(|e| e.into_inner());
                    let bytes = Bytes::from(serde_json::to_vec_pretty(&holder).unwrap_or_default());
                    match remote.write_project_file(&rel, bytes, guard.clone()) {
                        Ok(Written::Done(v)) => *guard = Some(v),
                        Ok(Written::Conflict) => {
                            tracing::error!("lost the pipeline lock {rel} to another run")
                        }
                        Err(e) => tracing::warn!("could not renew the pipeline lock: {e}"),
                    }
                }
            })
        };
        PipelineLock {
            stop,
            wake: Some(wake),
            renewer: Some(renewer),
            remote,
            rel,
            owner,
            version,
        }
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        // Release only a lock that is still ours.
        if let Ok(Some(current)) = self.remote.read_project_file(&self.rel) {
            let ours = serde_json::from_slice::<Holder>(&current.bytes)
                .is_ok_and(|h| h.owner == self.owner);
            if ours {
                let _ = self.remote.delete_project_file(&self.rel);
            }
        }
        let _ = &self.version;
    }
}
