//! GC roots: what must survive `alto gc`. Every build registers the keys it
//! realized, locally (per project directory and environment, so projects
//! sharing the user's cache keep each other's plugins) and in the remote (per
//! project and environment, so projects sharing a bucket do). Pins are keys
//! the user keeps whatever the config says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::local::write_atomic;
use super::remote::Remote;
use crate::eval::Key;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootSet {
    pub project: String,
    /// The project's directory (local registry only).
    #[serde(default)]
    pub project_root: Option<PathBuf>,
    pub environment: String,
    pub keys: BTreeSet<Key>,
    pub updated: String,
}

fn local_dir(cache: &Path) -> PathBuf {
    cache.join("store/v1/roots")
}

fn pins_path(cache: &Path) -> PathBuf {
    cache.join("store/v1/pins.json")
}

/// Records the keys a build of (project, environment) realized.
pub fn register_local(cache: &Path, set: &RootSet) -> Result<(), StoreError> {
    let id = blake3::hash(
        format!(
            "{}|{}",
            set.project_root
                .as_deref()
                .unwrap_or(Path::new(""))
                .display(),
            set.environment
        )
        .as_bytes(),
    )
    .to_hex();
    let path = local_dir(cache).join(format!("{}.json", &id[..16]));
    write_atomic(&path, &serde_json::to_vec_pretty(set).unwrap_or_default())
        .map_err(StoreError::io("cannot write", &path))
}

/// Every key registered locally by a project whose directory still exists.
pub fn local_roots(cache: &Path) -> Result<BTreeSet<Key>, StoreError> {
    let dir = local_dir(cache);
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let Some(set) = std::fs::read(entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<RootSet>(&b).ok())
        else {
            continue;
        };
        if set.project_root.as_deref().is_none_or(Path::exists) {
            out.extend(set.keys);
        }
    }
    Ok(out)
}

pub fn pins(cache: &Path) -> BTreeSet<Key> {
    std::fs::read(pins_path(cache))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn set_pins(cache: &Path, pins: &BTreeSet<Key>) -> Result<(), StoreError> {
    let path = pins_path(cache);
    write_atomic(&path, &serde_json::to_vec_pretty(pins).unwrap_or_default())
        .map_err(StoreError::io("cannot write", &path))
}

fn remote_rel(project: &str, env: &str) -> String {
    format!(".store/v1/roots/{project}/{env}.json")
}

/// Records the keys a build realized in the remote, for gc on any machine.
pub fn register_remote(remote: &Remote, set: &RootSet) -> Result<(), StoreError> {
    let public = RootSet {
        project_root: None,
        ..set.clone()
    };
    remote.overwrite_root_file(
        &remote_rel(&set.project, &set.environment),
        Bytes::from(serde_json::to_vec_pretty(&public).unwrap_or_default()),
    )
}

/// Every key any project registered in the remote.
pub fn remote_roots(remote: &Remote) -> Result<BTreeSet<Key>, StoreError> {
    let mut out = BTreeSet::new();
    for bytes in remote.read_root_files(".store/v1/roots")? {
        if let Ok(set) = serde_json::from_slice::<RootSet>(&bytes) {
            out.extend(set.keys);
        }
    }
    Ok(out)
}
