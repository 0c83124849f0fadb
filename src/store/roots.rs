//! GC roots: what must survive `alto gc`. Every build registers the keys it
//! realized, locally (per project directory and environment, so projects
//! sharing the user's cache keep each other's plugins) and in the remote (per
//! project and environment, so projects sharing a bucket do). Pins are keys
//! the user keeps whatever the config says. Temporary roots are the keys a
//! running alto process uses, kept while it lives (Nix's temproots).
//!
//! Locks: registries and pins are read-modify-written under the exclusive
//! roots lock (`store/v1/roots.lock`), each committed by an atomic rename;
//! temporary roots are added under the shared store lock (so gc, holding it
//! exclusively, sees every process that may still use an object); remote
//! registries are replaced by compare-and-swap.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Key;
use super::StoreError;
use super::local::{unique, write_atomic};
use super::remote::{Remote, Written};

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

fn temp_dir(cache: &Path) -> PathBuf {
    cache.join("store/v1/temproots")
}

/// The exclusive roots lock, held while a registry or the pins are
/// read, changed and written back.
fn roots_lock(cache: &Path) -> Result<File, StoreError> {
    let dir = cache.join("store/v1");
    std::fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
    let path = dir.join("roots.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io("cannot open", &path))?;
    f.lock().map_err(StoreError::io("cannot lock", &path))?;
    Ok(f)
}

fn bad(path: &Path, message: impl std::fmt::Display) -> StoreError {
    StoreError::BadRoots {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads a JSON file: `None` if absent, an error naming it if unreadable or
/// not what it should be (gc must never read "nothing is rooted" from it).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| bad(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(path, e)),
    }
}

fn registry_path(cache: &Path, set: &RootSet) -> PathBuf {
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
    local_dir(cache).join(format!("{}.json", &id[..16]))
}

/// Records the keys a build of (project, environment) realized: `replace`
/// (a full build) drops the keys registered before, otherwise they are
/// added. Under the roots lock; the rename of the registry commits it.
pub fn register_local(cache: &Path, set: &RootSet, replace: bool) -> Result<(), StoreError> {
    let _lock = roots_lock(cache)?;
    let path = registry_path(cache, set);
    let mut set = set.clone();
    if !replace && let Some(old) = read_json::<RootSet>(&path)? {
        set.keys.extend(old.keys);
    }
    write_atomic(&path, &serde_json::to_vec_pretty(&set).unwrap_or_default())
        .map_err(StoreError::io("cannot write", &path))
}

/// Every key registered locally by a project whose directory still exists.
/// An unreadable registry is an error: gc stops rather than collect what it
/// may have protected.
pub fn local_roots(cache: &Path) -> Result<BTreeSet<Key>, StoreError> {
    let dir = local_dir(cache);
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(bad(&dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| bad(&dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        // Only registries: a rename's temporary is not one.
        if name.is_none_or(|n| n.starts_with('.') || !n.ends_with(".json")) {
            continue;
        }
        let Some(set) = read_json::<RootSet>(&path)? else {
            continue;
        };
        if set.project_root.as_deref().is_none_or(Path::exists) {
            out.extend(set.keys);
        }
    }
    Ok(out)
}

/// The pinned keys; a pins file that cannot be read is an error, never "no pins".
pub fn pins(cache: &Path) -> Result<BTreeSet<Key>, StoreError> {
    Ok(read_json(&pins_path(cache))?.unwrap_or_default())
}

/// Changes the pins under the roots lock; returns the new set.
pub fn update_pins(
    cache: &Path,
    change: impl FnOnce(&mut BTreeSet<Key>),
) -> Result<BTreeSet<Key>, StoreError> {
    let _lock = roots_lock(cache)?;
    let path = pins_path(cache);
    let mut pins = read_json(&path)?.unwrap_or_default();
    change(&mut pins);
    write_atomic(&path, &serde_json::to_vec_pretty(&pins).unwrap_or_default())
        .map_err(StoreError::io("cannot write", &path))?;
    Ok(pins)
}

/// This process's temporary roots: `store/v1/temproots/<pid>-<n>`, one key a
/// line, locked exclusively while the process holds it. gc keeps the keys
/// of every file it cannot lock (its owner is alive) and removes the others.
pub struct TempRoots {
    path: PathBuf,
    file: File,
    keys: BTreeSet<Key>,
}

impl TempRoots {
    /// Creates the file. Call it holding the shared store lock, so gc
    /// (exclusive) never sees it before it is locked.
    pub fn create(cache: &Path) -> Result<TempRoots, StoreError> {
        let dir = temp_dir(cache);
        std::fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
        let path = dir.join(unique());
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io("cannot create", &path))?;
        file.lock().map_err(StoreError::io("cannot lock", &path))?;
        Ok(TempRoots {
            path,
            file,
            keys: BTreeSet::new(),
        })
    }

    /// Registers keys before they are looked up or used. Call it holding the
    /// shared store lock; the write is the commit point.
    pub fn add(&mut self, keys: &[Key]) -> Result<(), StoreError> {
        let mut text = String::new();
        for k in keys {
            if self.keys.insert(k.clone()) {
                text.push_str(k.as_str());
                text.push('\n');
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(text.as_bytes())
            .map_err(StoreError::io("cannot write", &self.path))
    }
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        // Still locked: gc cannot be reading it as a dead process's file.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The temporary roots of every live alto process using this store; the
/// files of processes that are gone are removed. Call it holding the store
/// lock exclusively.
pub fn temp_roots(cache: &Path) -> Result<BTreeSet<Key>, StoreError> {
    let dir = temp_dir(cache);
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(bad(&dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| bad(&dir, e))?.path();
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(bad(&path, e)),
        };
        match f.try_lock_shared() {
            Ok(()) => {
                // Nobody holds it: its process is gone.
                let _ = std::fs::remove_file(&path);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                f.read_to_string(&mut text).map_err(|e| bad(&path, e))?;
                out.extend(text.lines().filter_map(Key::parse));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(bad(&path, e)),
        }
    }
    Ok(out)
}

fn remote_rel(project: &str, env: &str) -> String {
    format!(".store/v1/roots/{project}/{env}.json")
}

/// Records the keys a build realized in the remote, for gc on any machine:
/// `replace` drops the keys registered before, otherwise they are added.
/// A compare-and-swap, retried when another machine wrote in between.
pub fn register_remote(remote: &Remote, set: &RootSet, replace: bool) -> Result<(), StoreError> {
    let rel = remote_rel(&set.project, &set.environment);
    for _ in 0..8 {
        let mut public = RootSet {
            project_root: None,
            ..set.clone()
        };
        let current = remote.read_root_file(&rel)?;
        if let Some(cur) = &current {
            match serde_json::from_slice::<RootSet>(&cur.bytes) {
                // Nothing to change: no write.
                Ok(old) if replace && old.keys == public.keys => return Ok(()),
                Ok(old) if !replace && old.keys.is_superset(&public.keys) => return Ok(()),
                Ok(old) if !replace => public.keys.extend(old.keys),
                Ok(_) => {}
                // A full build rewrites a damaged registry; adding to it cannot.
                Err(_) if replace => {}
                Err(e) => {
                    return Err(StoreError::BadRoots {
                        path: format!("{}/{rel}", remote.describe),
                        message: e.to_string(),
                    });
                }
            }
        }
        let bytes = Bytes::from(serde_json::to_vec_pretty(&public).unwrap_or_default());
        match remote.write_root_file(&rel, bytes, current.map(|c| c.version))? {
            Written::Done(_) => return Ok(()),
            Written::Conflict => continue,
        }
    }
    Err(StoreError::BadRoots {
        path: format!("{}/{rel}", remote.describe),
        message: "it kept changing while alto registered roots; try again".into(),
    })
}

/// Every key any project registered in the remote. An unreadable registry
/// is an error: gc stops rather than collect what it may have protected.
pub fn remote_roots(remote: &Remote) -> Result<BTreeSet<Key>, StoreError> {
    let mut out = BTreeSet::new();
    for entry in remote.list_entries(".store/v1/roots")? {
        let file = entry.name.rsplit('/').next().unwrap_or_default();
        // Registries only: a directory remote's lock files and temporaries are not.
        if file.starts_with('.') || !file.ends_with(".json") {
            continue;
        }
        let rel = format!(".store/v1/roots/{}", entry.name);
        let Some(v) = remote.read_root_file(&rel)? else {
            continue;
        };
        let set: RootSet = serde_json::from_slice(&v.bytes).map_err(|e| StoreError::BadRoots {
            path: format!("{}/{rel}", remote.describe),
            message: e.to_string(),
        })?;
        out.extend(set.keys);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_roots_live_with_their_holder() {
        let cache = tempfile::tempdir().unwrap();
        let key = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let mut held = TempRoots::create(cache.path()).unwrap();
        held.add(std::slice::from_ref(&key)).unwrap();
        assert!(temp_roots(cache.path()).unwrap().contains(&key));
        // A dead process's file: nobody holds its lock.
        let dead = temp_dir(cache.path()).join("dead");
        std::fs::write(&dead, "fedcba9876543210fedcba9876543210\n").unwrap();
        let live = temp_roots(cache.path()).unwrap();
        assert_eq!(live.len(), 1);
        assert!(!dead.exists());
        drop(held);
        assert!(temp_roots(cache.path()).unwrap().is_empty());
    }

    #[test]
    fn unreadable_pins_and_registries_are_errors() {
        let cache = tempfile::tempdir().unwrap();
        assert!(pins(cache.path()).unwrap().is_empty());
        std::fs::create_dir_all(cache.path().join("store/v1")).unwrap();
        std::fs::write(pins_path(cache.path()), "{not json").unwrap();
        assert!(matches!(
            pins(cache.path()),
            Err(StoreError::BadRoots { .. })
        ));
        assert!(update_pins(cache.path(), |_| {}).is_err());
        std::fs::create_dir_all(local_dir(cache.path())).unwrap();
        std::fs::write(local_dir(cache.path()).join("x.json"), "[").unwrap();
        assert!(matches!(
            local_roots(cache.path()),
            Err(StoreError::BadRoots { .. })
        ));
    }
}
