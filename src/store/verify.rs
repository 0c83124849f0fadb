//! Verification and repair: re-hashing local objects, downloading and
//! re-hashing remote ones, and replacing a damaged remote object from an
//! intact local copy. Returns reports the CLI prints.
//!
//! Locks and commit points: local verification holds the store lock shared
//! (removing a damaged object's metadata is where it stops existing); a
//! remote repair uploads the content under its own name and then overwrites
//! the record naming it (the commit point), so a reader sees either the old
//! record or the new one, each naming its own content.

use serde::Serialize;

use super::Key;
use super::StoreError;
use super::local::{LocalStatus, LocalStore};
use super::remote::{Remote, RemoteObject};

#[derive(Debug, Serialize)]
pub struct Check {
    pub key: Key,
    pub ok: bool,
    pub reason: Option<String>,
    /// Local: removed; remote: replaced from the local copy.
    #[serde(skip)]
    pub fixed: bool,
}

/// Re-hashes every local object; with `repair`, removes the damaged ones
/// (the next build substitutes or rebuilds them).
pub fn verify_local(local: &LocalStore, repair: bool) -> Result<Vec<Check>, StoreError> {
    let _lock = local.lock(false)?;
    let mut out = Vec::new();
    for key in local.keys()? {
        let reason = match local.status(&key, true)? {
            LocalStatus::Valid(_) => None,
            LocalStatus::Damaged { reason, .. } => Some(reason),
            LocalStatus::Missing => continue,
        };
        let fixed = repair && reason.is_some();
        if fixed {
            local.remove(&key)?;
        }
        out.push(Check {
            ok: reason.is_none(),
            key,
            reason,
            fixed,
        });
    }
    Ok(out)
}

/// What is wrong with a remote object's content, if anything (downloads
/// and hashes it). Counts the bytes read into `bytes`.
pub fn remote_problem(
    remote: &Remote,
    object: &RemoteObject,
    bytes: &mut u64,
) -> Result<Option<String>, StoreError> {
    Ok(match remote.download(object, None) {
        Ok((blake3, size)) => {
            *bytes += size;
            (blake3 != object.meta.blake3 || size != object.meta.size).then(|| {
                format!(
                    "blake3 {blake3} differs from the recorded {}",
                    object.meta.blake3
                )
            })
        }
        Err(e @ StoreError::Remote { .. }) => Some(super::causes(&e)),
        Err(StoreError::Undecodable { reason, .. }) => {
            Some(format!("its content does not decompress: {reason}"))
        }
        Err(e) => return Err(e),
    })
}

/// Replaces a remote object from the local copy when the local copy is
/// intact (fully re-hashed). Returns whether it did.
pub fn repair_from_local(
    remote: &Remote,
    local: &LocalStore,
    key: &Key,
) -> Result<bool, StoreError> {
    let LocalStatus::Valid(meta) = local.status(key, true)? else {
        return Ok(false);
    };
    remote.upload(key, &local.data_path(key), &meta, true)?;
    Ok(true)
}

/// Downloads and re-hashes every remote object (a paged listing of the
/// records); with `repair`, replaces a damaged one from an intact local
/// copy of the same content. Returns the checks and the bytes read.
pub fn verify_remote(
    remote: &Remote,
    local: &LocalStore,
    repair: bool,
) -> Result<(Vec<Check>, u64), StoreError> {
    let mut keys: Vec<Key> = remote.meta_keys()?.into_iter().collect();
    keys.sort();
    let (mut out, mut bytes) = (Vec::new(), 0u64);
    for key in keys {
        let object = match remote.object(&key) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e @ StoreError::BadMeta { .. }) => {
                out.push(Check {
                    key,
                    ok: false,
                    reason: Some(e.to_string()),
                    fixed: false,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let problem = remote_problem(remote, &object, &mut bytes)?;
        let mut fixed = false;
        if problem.is_some() && repair {
            let _lock = local.lock(false)?;
            if let LocalStatus::Valid(m) = local.status(&key, true)?
                && m.blake3 == object.meta.blake3
            {
                fixed = repair_from_local(remote, local, &key)?;
            }
        }
        out.push(Check {
            key,
            ok: problem.is_none(),
            reason: problem,
            fixed,
        });
    }
    Ok((out, bytes))
}
