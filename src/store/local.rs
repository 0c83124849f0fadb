//! The local store: `<cache>/store/v1/objects/<key>` and `<key>.meta.json`,
//! written through `tmp/` and renamed into place, the metadata last (the
//! commit point); and `venvs/<key>`, the venv a realized plugin runs from.
//!
//! Locks: the store lock `store/v1/gc.lock` is held shared by whoever looks
//! up, substitutes, builds or registers objects (`Realizer::realize_with`),
//! exclusively by gc. Readers and writers here take no lock themselves; the
//! caller holds the store lock.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Key;
use super::{ObjectMeta, StoreError};

pub struct LocalStore {
    dir: PathBuf,
}

/// What the local store holds for a key.
#[derive(Debug)]
pub enum LocalStatus {
    /// Present, and its content matches the metadata.
    Valid(ObjectMeta),
    Missing,
    /// Present but not what the metadata says; never to be used.
    Damaged {
        meta: ObjectMeta,
        reason: String,
    },
}

/// The file state a full hash was last verified against: if the file still
/// has it, it has not been touched since (the idea of git's index).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    blake3: String,
    /// When the stamp was taken (stamps from before this field: 0, racy).
    #[serde(default)]
    taken_ns: i128,
}

/// The coarsest mtime granularity alto expects of a filesystem (FAT's 2 s).
const MTIME_GRANULARITY_NS: i128 = 2_000_000_000;

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl Stamp {
    fn of(path: &Path, blake3: &str) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = m
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        Ok(Stamp {
            size: m.len(),
            mtime_ns,
            ino,
            blake3: blake3.to_string(),
            taken_ns: now_ns(),
        })
    }

    /// Whether the file is as it was when this stamp was taken.
    fn matches(&self, current: &Stamp) -> bool {
        (self.size, self.mtime_ns, self.ino, &self.blake3)
            == (current.size, current.mtime_ns, current.ino, &current.blake3)
    }

    /// git's racy-timestamp rule: a stamp taken within the mtime granularity
    /// of the file's mtime cannot tell a later same-size edit in the same
    /// tick from no edit, so it proves nothing.
    fn racy(&self) -> bool {
        self.taken_ns - self.mtime_ns <= MTIME_GRANULARITY_NS
    }
}

/// The store lock, held (shared or exclusive) while alive.
pub struct StoreLock {
    _file: std::fs::File,
}

/// blake3 and size of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// Writes a file atomically: a temporary sibling, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        unique()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A name no other process or thread uses at the same time.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl LocalStore {
    pub fn open(cache_dir: &Path) -> Result<LocalStore, StoreError> {
        let dir = cache_dir.join("store/v1");
        for sub in ["objects", "tmp"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(StoreError::io("cannot create", &p))?;
        }
        Ok(LocalStore { dir })
    }

    /// Takes the store lock: `exclusive` for gc, shared for everything that
    /// looks up, writes or registers objects. Blocks until it is granted.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock, StoreError> {
        let path = self.dir.join("gc.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("cannot open", &path))?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(StoreError::io("cannot lock", &path))?;
        Ok(StoreLock { _file: file })
    }

    /// `store/v1/objects/`.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }

    /// `store/v1/tmp/`, where files are written before they are committed.
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn data_path(&self, key: &Key) -> PathBuf {
        self.dir.join("objects").join(key.as_str())
    }

    pub fn meta_path(&self, key: &Key) -> PathBuf {
        self.dir
            .join("objects")
            .join(format!("{}.meta.json", key.as_str()))
    }

    fn stamp_path(&self, key: &Key) -> PathBuf {
        self.dir
            .join("objects")
            .join(format!("{}.stamp", key.as_str()))
    }

    /// `store/v1/venvs/<key>`: the venv plugin `key` runs from once it is
    /// realized. Built here: the venv uv installed it into, which pex packed
    /// (any directory works: alto starts it by its interpreter, never by a
    /// script's `#!` line). Substituted: a link to the venv pex made of the
    /// PEX under pex's root.
    pub fn venv_path(&self, key: &Key) -> PathBuf {
        self.dir.join("venvs").join(key.as_str())
    }

    /// `key`'s venv, if it is there with its interpreter (one upgraded in
    /// place leaves it without).
    pub fn venv(&self, key: &Key) -> Option<PathBuf> {
        let venv = self.venv_path(key);
        (venv.join("bin").join("python").exists() && venv.join("pyvenv.cfg").is_file())
            .then_some(venv)
    }

    /// The bytes removing `key`'s venv frees: its files no other link
    /// holds. uv links most of a venv in from its cache, and a venv pex
    /// made under its root is only linked to from the store.
    pub fn venv_size(&self, key: &Key) -> u64 {
        fn walk(dir: &Path) -> u64 {
            use std::os::unix::fs::MetadataExt;
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                // A DirEntry's metadata does not follow a link.
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) if m.is_file() && m.nlink() == 1 => m.len(),
                    _ => 0,
                })
                .sum()
        }
        let venv = self.venv_path(key);
        match std::fs::symlink_metadata(&venv) {
            Ok(m) if m.is_dir() => walk(&venv),
            _ => 0,
        }
    }

    /// Puts `from` (a venv directory, or a link to one, inside the store's
    /// `tmp/`) in place as `key`'s venv, replacing one that is not usable.
    /// A usable one stays and `from` goes: another process built or
    /// substituted the same key meanwhile, and a plugin may be running
    /// from it.
    pub fn install_venv(&self, key: &Key, from: &Path) -> Result<(), StoreError> {
        let to = self.venv_path(key);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(StoreError::io("cannot create", parent))?;
        }
        let discard = || match std::fs::symlink_metadata(from) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(from),
            _ => std::fs::remove_file(from),
        };
        if self.venv(key).is_some() {
            let _ = discard();
            return Ok(());
        }
        self.remove_venv(key)?;
        match std::fs::rename(from, &to) {
            Ok(()) => Ok(()),
            // Another process put its venv there between the two lines above.
            Err(_) if self.venv(key).is_some() => {
                let _ = discard();
                Ok(())
            }
            Err(e) => Err(StoreError::io("cannot move into the store", &to)(e)),
        }
    }

    /// Removes `key`'s venv: moved aside first, so no half-removed venv is
    /// ever at its path; a link is removed, not what it points to.
    fn remove_venv(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.venv_path(key);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            return Ok(());
        };
        if !m.is_dir() {
            return std::fs::remove_file(&path).map_err(StoreError::io("cannot remove", &path));
        }
        let aside = self.temp_path(&format!("{}.old-venv", key.as_str()));
        std::fs::rename(&path, &aside).map_err(StoreError::io("cannot remove", &path))?;
        std::fs::remove_dir_all(&aside).map_err(StoreError::io("cannot remove", &aside))
    }

    /// A fresh temporary path inside the store (same filesystem as objects).
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        self.dir.join("tmp").join(format!("{hint}.{}", unique()))
    }

    /// The metadata record, if the object was committed.
    pub fn meta(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.meta_path(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Io {
                    action: "cannot read",
                    path,
                    source: e,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::BadMeta {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Whether the object is present and intact. A size check always; a full
    /// hash when the file changed since it was last verified, or when `full`.
    pub fn status(&self, key: &Key, full: bool) -> Result<LocalStatus, StoreError> {
        let meta = match self.meta(key) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(LocalStatus::Missing),
            Err(StoreError::BadMeta { message, .. }) => {
                return Ok(LocalStatus::Damaged {
                    meta: placeholder_meta(key),
                    reason: format!("unreadable metadata: {message}"),
                });
            }
            Err(e) => return Err(e),
        };
        let data = self.data_path(key);
        let size = match std::fs::metadata(&data) {
            Ok(m) => m.len(),
            Err(_) => {
                return Ok(LocalStatus::Damaged {
                    meta,
                    reason: "content is missing".into(),
                });
            }
        };
        if size != meta.size {
            return Ok(LocalStatus::Damaged {
                meta: meta.clone(),
                reason: format!("size {size} differs from the recorded {}", meta.size),
            });
        }
        let stamp_path = self.stamp_path(key);
        if !full {
            let recorded: Option<Stamp> = std::fs::read(&stamp_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let current = Stamp::of(&data, &meta.blake3).ok();
            if let (Some(r), Some(c)) = (&recorded, &current)
                && r.matches(c)
                && !r.racy()
            {
                return Ok(LocalStatus::Valid(meta));
            }
        }
        let (actual, _) = hash_file(&data).map_err(StoreError::io("cannot read", &data))?;
        if actual != meta.blake3 {
            return Ok(LocalStatus::Damaged {
                reason: format!("blake3 {actual} differs from the recorded {}", meta.blake3),
                meta,
            });
        }
        if let Ok(stamp) = Stamp::of(&data, &actual) {
            let _ = write_atomic(&stamp_path, &serde_json::to_vec(&stamp).unwrap_or_default());
        }
        Ok(LocalStatus::Valid(meta))
    }

    /// Moves a finished temporary file into the store under `key` and writes
    /// its metadata (the commit point). `meta.blake3` and `meta.size` must
    /// describe the file; the caller computed them while writing it.
    pub fn commit(
        &self,
        key: &Key,
        tmp: &Path,
        meta: &ObjectMeta,
        executable: bool,
    ) -> Result<(), StoreError> {
        let data = self.data_path(key);
        {
            let f = std::fs::File::open(tmp).map_err(StoreError::io("cannot open", tmp))?;
            f.sync_all().map_err(StoreError::io("cannot sync", tmp))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
                .map_err(StoreError::io("cannot set permissions of", tmp))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
        // Uncommitted leftovers of an earlier crash are simply replaced.
        let _ = std::fs::remove_file(self.meta_path(key));
        std::fs::rename(tmp, &data).map_err(StoreError::io("cannot move into the store", &data))?;
        if let Ok(stamp) = Stamp::of(&data, &meta.blake3) {
            let _ = write_atomic(
                &self.stamp_path(key),
                &serde_json::to_vec(&stamp).unwrap_or_default(),
            );
        }
        let bytes = serde_json::to_vec_pretty(meta).unwrap_or_default();
        let mp = self.meta_path(key);
        write_atomic(&mp, &bytes).map_err(StoreError::io("cannot write", &mp))
    }

    /// Forgets an object: the metadata first, so a crash leaves nothing that looks complete.
    pub fn remove(&self, key: &Key) -> Result<(), StoreError> {
        for p in [
            self.meta_path(key),
            self.stamp_path(key),
            self.data_path(key),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Io {
                        action: "cannot remove",
                        path: p,
                        source: e,
                    });
                }
            }
        }
        self.remove_venv(key)
    }

    /// Every committed key.
    pub fn keys(&self) -> Result<Vec<Key>, StoreError> {
        let dir = self.dir.join("objects");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(StoreError::io("cannot list", &dir))? {
            let entry = entry.map_err(StoreError::io("cannot list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(k) = name.strip_suffix(".meta.json").and_then(Key::parse) {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }
}

fn placeholder_meta(key: &Key) -> ObjectMeta {
    ObjectMeta {
        format: String::new(),
        key: key.clone(),
        kind: String::new(),
        derivation: serde_json::Value::Null,
        blake3: String::new(),
        size: 0,
        created: String::new(),
        builder: super::BuilderInfo {
            alto: String::new(),
            host: String::new(),
        },
        signature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BuilderInfo;

    fn meta_for(key: &Key, path: &Path) -> ObjectMeta {
        let (blake3, size) = hash_file(path).unwrap();
        ObjectMeta {
            format: super::super::META_FORMAT.into(),
            key: key.clone(),
            kind: "plugin".into(),
            derivation: serde_json::json!({}),
            blake3,
            size,
            created: super::super::now_rfc3339(),
            builder: BuilderInfo::here(),
            signature: None,
        }
    }

    #[test]
    fn a_venv_is_replaced_whole_and_goes_with_its_object() {
        let cache = tempfile::tempdir().unwrap();
        let store = LocalStore::open(cache.path()).unwrap();
        let key = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        let tmp = store.temp_path("x");
        std::fs::write(&tmp, b"pex").unwrap();
        store
            .commit(&key, &tmp, &meta_for(&key, &tmp), true)
            .unwrap();
        // A venv directory, then a link replacing it.
        let venv = store.temp_path("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::write(venv.join("bin/own"), [0u8; 100]).unwrap();
        let cached = tempfile::tempdir().unwrap();
        std::fs::write(cached.path().join("shared"), [0u8; 50]).unwrap();
        std::fs::hard_link(cached.path().join("shared"), venv.join("bin/shared")).unwrap();
        store.install_venv(&key, &venv).unwrap();
        assert!(store.venv_path(&key).join("pyvenv.cfg").is_file());
        // What removing it frees: its own files, not those uv's cache also holds.
        assert_eq!(
            store.venv_size(&key),
            100 + "home = /usr/bin\n".len() as u64
        );
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("pyvenv.cfg"), "").unwrap();
        let link = store.temp_path("link");
        std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
        store.install_venv(&key, &link).unwrap();
        assert_eq!(store.venv_size(&key), 0);
        assert!(
            std::fs::symlink_metadata(store.venv_path(&key))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Nothing of the old venv is left behind in tmp/.
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        // A usable venv stays (a plugin may run from it); the newcomer goes.
        std::fs::create_dir_all(elsewhere.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("/bin/true", elsewhere.path().join("bin/python")).unwrap();
        assert_eq!(store.venv(&key), Some(store.venv_path(&key)));
        let late = store.temp_path("late-venv");
        std::fs::create_dir_all(late.join("bin")).unwrap();
        std::fs::write(late.join("pyvenv.cfg"), "").unwrap();
        store.install_venv(&key, &late).unwrap();
        assert!(
            std::fs::symlink_metadata(store.venv_path(&key))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!late.exists());
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        // Removing the object removes the link, not what it points to.
        store.remove(&key).unwrap();
        assert!(std::fs::symlink_metadata(store.venv_path(&key)).is_err());
        assert!(elsewhere.path().join("pyvenv.cfg").is_file());
    }

    #[test]
    fn commit_then_detect_tampering() {
        let cache = tempfile::tempdir().unwrap();
        let store = LocalStore::open(cache.path()).unwrap();
        let key = Key::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Missing
        ));
        let tmp = store.temp_path("x");
        std::fs::write(&tmp, b"hello world").unwrap();
        let meta = meta_for(&key, &tmp);
        store.commit(&key, &tmp, &meta, true).unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Valid(_)
        ));
        // Same size, one byte flipped: the stamp no longer matches, the hash catches it.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(store.data_path(&key), b"hello worle").unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Damaged { .. }
        ));
        std::fs::write(store.data_path(&key), b"short").unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Damaged { .. }
        ));
        store.remove(&key).unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Missing
        ));
    }

    /// A same-size edit that keeps size, inode and mtime (within the mtime's
    /// granularity) is caught: a stamp taken that close to the mtime is not
    /// trusted (git's racy-timestamp rule). No sleep: the mtime is put back.
    #[test]
    fn racy_stamps_are_not_trusted() {
        let cache = tempfile::tempdir().unwrap();
        let store = LocalStore::open(cache.path()).unwrap();
        let key = Key::parse("00112233445566778899aabbccddeeff").unwrap();
        let tmp = store.temp_path("x");
        std::fs::write(&tmp, b"hello world").unwrap();
        let meta = meta_for(&key, &tmp);
        store.commit(&key, &tmp, &meta, true).unwrap();
        let path = store.data_path(&key);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        // Same size, same inode, the mtime put back where it was.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, b"hello worle").unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Damaged { .. }
        ));

        // A stamp taken well after the mtime is trusted (the shortcut works).
        std::fs::write(&path, b"hello world").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Valid(_)
        ));
        let stamp: Stamp =
            serde_json::from_slice(&std::fs::read(store.stamp_path(&key)).unwrap()).unwrap();
        assert!(!stamp.racy());
    }

    #[test]
    fn content_without_metadata_does_not_exist() {
        let cache = tempfile::tempdir().unwrap();
        let store = LocalStore::open(cache.path()).unwrap();
        let key = Key::parse("fedcba9876543210fedcba9876543210").unwrap();
        std::fs::write(store.data_path(&key), b"partial").unwrap();
        assert!(matches!(
            store.status(&key, false).unwrap(),
            LocalStatus::Missing
        ));
        assert!(store.keys().unwrap().is_empty());
    }
}
