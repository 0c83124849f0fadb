//! Garbage collection of the local store and of the remote binary cache:
//! what no root, pin or live process refers to and that arrived longer ago
//! than the grace period goes, and so do leftovers (content without
//! metadata, temporaries) older than it. The CLI computes the project's
//! roots and prints the summaries.
//!
//! Locks and commit points: local collection holds the store lock
//! exclusively for its whole run, so no realization is looking up, writing
//! or registering an object meanwhile, and every live process's temporary
//! roots are known; removing an object's metadata is the point where it
//! stops existing. The remote has no lock: the grace period, keyed on when
//! an object arrived (its metadata's last-modified time), protects what
//! builders are publishing and substituting right now.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::Key;
use super::local::LocalStore;
use super::remote::{Remote, content_key};
use super::{StoreError, roots};

#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds an object (or leftover) must have been there to go.
    pub grace: u64,
    pub dry_run: bool,
}

/// An object gc removed (or, in a dry run, would remove).
#[derive(Debug, Serialize)]
pub struct Removed {
    pub key: Key,
    #[serde(rename = "where")]
    pub place: String,
    pub kind: String,
    pub size: u64,
}

/// A leftover gc removed: content without metadata, a temporary file.
#[derive(Debug, Serialize)]
pub struct Leftover {
    pub path: String,
    #[serde(rename = "where")]
    pub place: String,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub removed: Vec<Removed>,
    pub leftovers: Vec<Leftover>,
    /// Bytes of the objects and leftovers removed.
    pub freed: u64,
}

fn mtime_secs(m: &std::fs::Metadata) -> u64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn remove_path(path: &Path, is_dir: bool) -> Result<(), StoreError> {
    let r = if is_dir {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io {
            action: "cannot remove",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Collects the local store. Kept: `roots`, every registered local root of
/// a project that still exists, the pins, and the temporary roots of every
/// live alto process. Takes the store lock exclusively (waiting for running
/// realizations to finish).
pub fn collect_local(
    local: &LocalStore,
    cache: &Path,
    roots: &BTreeSet<Key>,
    opts: &Options,
) -> Result<Summary, StoreError> {
    let _lock = local.lock(true)?;
    let mut keep = roots.clone();
    keep.extend(roots::pins(cache)?);
    keep.extend(roots::local_roots(cache)?);
    keep.extend(roots::temp_roots(cache)?);
    let cutoff = super::now_epoch().saturating_sub(opts.grace);
    let mut summary = Summary::default();

    let objects = local.objects_dir();
    let mut files: BTreeMap<String, std::fs::Metadata> = BTreeMap::new();
    for entry in std::fs::read_dir(&objects).map_err(StoreError::io("cannot list", &objects))? {
        let entry = entry.map_err(StoreError::io("cannot list", &objects))?;
        if let Ok(m) = entry.metadata() {
            files.insert(entry.file_name().to_string_lossy().into_owned(), m);
        }
    }
    for (name, m) in &files {
        let Some(key) = name.strip_suffix(".meta.json").and_then(Key::parse) else {
            continue;
        };
        // Arrival here (the commit), not the build time the record carries:
        // an object substituted a minute ago is not old.
        if keep.contains(&key) || mtime_secs(m) > cutoff {
            continue;
        }
        let meta = local.meta(&key).ok().flatten();
        // The object and the venv it runs from, which goes with it.
        let size = files.get(key.as_str()).map(|m| m.len()).unwrap_or(0) + local.venv_size(&key);
        if !opts.dry_run {
            local.remove(&key)?;
        }
        summary.freed += size;
        summary.removed.push(Removed {
            key,
            place: "local".into(),
            kind: meta.map(|m| m.kind).unwrap_or_default(),
            size,
        });
    }
    // Leftovers: content or stamps without metadata (a crash before the
    // commit), and temporaries of atomic writes.
    for (name, m) in &files {
        let key = Key::parse(name.strip_suffix(".stamp").unwrap_or(name));
        let leftover = match key {
            Some(k) => !files.contains_key(&format!("{}.meta.json", k.as_str())),
            None => name.starts_with('.') && name.ends_with(".tmp"),
        };
        if !leftover || mtime_secs(m) > cutoff {
            continue;
        }
        let path = objects.join(name);
        if !opts.dry_run {
            remove_path(&path, m.is_dir())?;
        }
        summary.freed += m.len();
        summary.leftovers.push(Leftover {
            path: path.display().to_string(),
            place: "local".into(),
            size: m.len(),
        });
    }
    let tmp = local.tmp_dir();
    for entry in std::fs::read_dir(&tmp).map_err(StoreError::io("cannot list", &tmp))? {
        let entry = entry.map_err(StoreError::io("cannot list", &tmp))?;
        let Ok(m) = entry.metadata() else { continue };
        if mtime_secs(&m) > cutoff {
            continue;
        }
        if !opts.dry_run {
            remove_path(&entry.path(), m.is_dir())?;
        }
        summary.freed += m.len();
        summary.leftovers.push(Leftover {
            path: entry.path().display().to_string(),
            place: "local".into(),
            size: m.len(),
        });
    }
    Ok(summary)
}

/// Collects the remote binary cache. Kept: `roots` and every root any
/// project registered in the remote. Lists `.store/v1/meta/` and
/// `.store/v1/data/` (paged), reads the record of each object it removes.
pub fn collect_remote(
    remote: &Remote,
    roots: &BTreeSet<Key>,
    opts: &Options,
) -> Result<Summary, StoreError> {
    let mut keep = roots.clone();
    keep.extend(roots::remote_roots(remote)?);
    let cutoff = super::now_epoch().saturating_sub(opts.grace);
    let mut summary = Summary::default();

    let metas: BTreeMap<Key, u64> = remote
        .list_entries(".store/v1/meta")?
        .into_iter()
        .filter_map(|e| {
            let key = e.name.strip_suffix(".json").and_then(Key::parse)?;
            Some((key, e.modified))
        })
        .collect();
    let data = remote.list_entries(".store/v1/data")?;
    let mut live: BTreeSet<Key> = BTreeSet::new();
    // Content of the objects removed here: gone with them, not leftovers.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for (key, arrived) in &metas {
        if keep.contains(key) || *arrived > cutoff {
            live.insert(key.clone());
            continue;
        }
        let object = match remote.object(key) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            // An unreadable record of an unreferenced old object: it goes
            // (its content is then a leftover).
            Err(StoreError::BadMeta { .. }) => {
                if !opts.dry_run {
                    remote.delete_root_file(&format!(".store/v1/meta/{key}.json"))?;
                }
                summary.leftovers.push(Leftover {
                    path: format!(".store/v1/meta/{key}.json"),
                    place: remote.describe.clone(),
                    size: 0,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        if !opts.dry_run {
            remote.delete_object(&object)?;
        }
        gone.insert(object.content.clone());
        summary.freed += object.meta.size;
        summary.removed.push(Removed {
            key: key.clone(),
            place: remote.describe.clone(),
            kind: object.meta.kind.clone(),
            size: object.meta.size,
        });
    }

    // Content no live record names: a crashed upload, the loser of a race,
    // a repaired object's old copy, a deleted object's other content.
    let mut by_key: BTreeMap<Key, Vec<&super::remote::Entry>> = BTreeMap::new();
    for e in &data {
        if let Some(k) = content_key(&e.name) {
            by_key.entry(k).or_default().push(e);
        }
    }
    for (key, entries) in by_key {
        let referenced: Option<String> = if !live.contains(&key) {
            None
        } else if entries.len() == 1 {
            // The usual case, answered without a request.
            Some(entries[0].name.clone())
        } else {
            remote.object(&key)?.map(|o| o.content)
        };
        for e in entries {
            if referenced.as_deref() == Some(e.name.as_str())
                || gone.contains(&e.name)
                || e.modified > cutoff
            {
                continue;
            }
            let rel = format!(".store/v1/data/{}", e.name);
            if !opts.dry_run {
                remote.delete_root_file(&rel)?;
            }
            summary.freed += e.size;
            summary.leftovers.push(Leftover {
                path: rel,
                place: remote.describe.clone(),
                size: e.size,
            });
        }
    }
    // A directory remote's temporaries (a copy renamed into place).
    for e in &data {
        let file = e.name.rsplit('/').next().unwrap_or_default();
        if file.starts_with('.') && file.ends_with(".tmp") && e.modified <= cutoff {
            let rel = format!(".store/v1/data/{}", e.name);
            if !opts.dry_run {
                remote.delete_root_file(&rel)?;
            }
            summary.freed += e.size;
            summary.leftovers.push(Leftover {
                path: rel,
                place: remote.describe.clone(),
                size: e.size,
            });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStatus;
    use crate::store::roots::TempRoots;
    use crate::store::{BuilderInfo, META_FORMAT, ObjectMeta};
    use proptest::prelude::*;

    fn commit(local: &LocalStore, key: &Key, created: &str) {
        let tmp = local.temp_path("x");
        std::fs::write(&tmp, b"plugin").unwrap();
        let (blake3, size) = crate::store::local::hash_file(&tmp).unwrap();
        let meta = ObjectMeta {
            format: META_FORMAT.into(),
            key: key.clone(),
            kind: "plugin".into(),
            derivation: serde_json::json!({}),
            blake3,
            size,
            created: created.into(),
            builder: BuilderInfo::here(),
            signature: None,
        };
        local.commit(key, &tmp, &meta, true).unwrap();
    }

    #[test]
    fn the_grace_period_counts_from_arrival() {
        let cache = tempfile::tempdir().unwrap();
        let local = LocalStore::open(cache.path()).unwrap();
        let key = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        // Built years ago, substituted just now: not old here.
        commit(&local, &key, "2020-01-01T00:00:00Z");
        let hour = Options {
            grace: 3600,
            dry_run: false,
        };
        let s = collect_local(&local, cache.path(), &BTreeSet::new(), &hour).unwrap();
        assert!(s.removed.is_empty());
        let now = Options {
            grace: 0,
            dry_run: false,
        };
        let s = collect_local(&local, cache.path(), &BTreeSet::new(), &now).unwrap();
        assert_eq!(s.removed.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A process substituting and then using an object, and gc (another
        /// thread, its own lock handles, as another process would have) let
        /// loose at any step of it: the object is never collected while the
        /// process holds its temporary root, and is once it lets go.
        #[test]
        fn gc_at_any_step_of_a_substitution_keeps_the_object(gc_at in 0usize..4, rounds in 1usize..3) {
            let cache = tempfile::tempdir().unwrap();
            let local = LocalStore::open(cache.path()).unwrap();
            let key = Key::parse("00112233445566778899aabbccddeeff").unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let dir = cache.path();
            let roots = std::thread::scope(|s| {
                let gc = s.spawn(move || {
                    let other = LocalStore::open(dir).unwrap();
                    let now = Options { grace: 0, dry_run: false };
                    while rx.recv().is_ok() {
                        collect_local(&other, dir, &BTreeSet::new(), &now).unwrap();
                    }
                });
                let signal = |step: usize| {
                    if step == gc_at {
                        for _ in 0..rounds {
                            tx.send(()).unwrap();
                        }
                    }
                };
                signal(0);
                let lock = local.lock(false).unwrap();
                let mut roots = TempRoots::create(cache.path()).unwrap();
                roots.add(std::slice::from_ref(&key)).unwrap();
                signal(1);
                commit(&local, &key, "2020-01-01T00:00:00Z");
                signal(2);
                drop(lock);
                signal(3);
                let status = local.status(&key, true).unwrap();
                drop(tx);
                gc.join().unwrap();
                assert!(matches!(status, LocalStatus::Valid(_)), "{status:?}");
                roots
            });
            prop_assert!(matches!(local.status(&key, true).unwrap(), LocalStatus::Valid(_)));
            drop(roots);
            let now = Options { grace: 0, dry_run: false };
            collect_local(&local, cache.path(), &BTreeSet::new(), &now).unwrap();
            prop_assert!(matches!(local.status(&key, true).unwrap(), LocalStatus::Missing));
        }
    }
}
