//! `alto store export` / `import`: store objects and their metadata in one
//! `.tar.zst` file, for a Docker image or an air-gapped machine. An archive
//! is untrusted input: import checks that each object is what its key
//! claims (the derivation recomputes to the key, the content to the record,
//! a trusted signature when the project requires one) before committing
//! any, and never replaces an intact object.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Key;
use super::local::hash_file;
use super::signing::PublicKey;
use super::{LocalStatus, LocalStore, ObjectMeta, StoreError};

/// The directory every entry of an archive lives under; its name is the format.
const ROOT: &str = "alto-export-v1";

/// Writes the objects of `keys` (which must be valid in the local store) to `out`.
pub fn export(local: &LocalStore, keys: &[Key], out: &Path) -> Result<u64, StoreError> {
    let tmp = out.with_extension(format!("partial.{}", super::local::unique()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
        let enc =
            zstd::Encoder::new(file, 3).map_err(StoreError::io("cannot compress into", &tmp))?;
        let mut tar = tar::Builder::new(enc);
        let mut bytes = 0u64;
        for key in keys {
            let meta = match local.status(key, true)? {
                LocalStatus::Valid(m) => m,
                LocalStatus::Damaged { reason, .. } => {
                    return Err(StoreError::BadMeta {
                        path: key.to_string(),
                        message: format!("damaged: {reason}"),
                    });
                }
                LocalStatus::Missing => {
                    return Err(StoreError::BadMeta {
                        path: key.to_string(),
                        message: "not in the local store".into(),
                    });
                }
            };
            let data = local.data_path(key);
            tar.append_path_with_name(&data, format!("{ROOT}/{}", key.as_str()))
                .map_err(StoreError::io("cannot archive", &data))?;
            let meta_bytes = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            let mut header = tar::Header::new_gnu();
            header.set_size(meta_bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("{ROOT}/{}.meta.json", key.as_str()),
                meta_bytes.as_slice(),
            )
            .map_err(StoreError::io("cannot archive", &data))?;
            bytes += meta.size;
        }
        let enc = tar
            .into_inner()
            .map_err(StoreError::io("cannot finish", &tmp))?;
        let mut file = enc
            .finish()
            .map_err(StoreError::io("cannot finish", &tmp))?;
        file.flush().map_err(StoreError::io("cannot write", &tmp))?;
        file.sync_all()
            .map_err(StoreError::io("cannot sync", &tmp))?;
        std::fs::rename(&tmp, out).map_err(StoreError::io("cannot write", out))?;
        Ok(bytes)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The most a metadata record may weigh; anything larger is not alto's.
const MAX_META_BYTES: u64 = 1 << 20;

/// What an import did.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    /// Objects committed to the local store.
    pub imported: Vec<Key>,
    /// Objects the local store already held intact: never replaced.
    pub present: Vec<Key>,
}

/// Reads an archive into the local store, all or nothing. The archive is
/// not trusted: it may hold only regular files named `<key>` and
/// `<key>.meta.json`; every record must describe a derivation whose key
/// recomputes to the object's name, carry a signature by one of `trusted`
/// (when any is given), and match its content's blake3 and size. Everything
/// is verified into temporary files before anything is committed; an object
/// already intact in the local store is left as it is.
pub fn import(
    local: &LocalStore,
    archive: &Path,
    trusted: &[PublicKey],
) -> Result<Imported, StoreError> {
    let mut temps: Vec<PathBuf> = Vec::new();
    let result = import_into(local, archive, trusted, &mut temps);
    for tmp in &temps {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

fn import_into(
    local: &LocalStore,
    archive: &Path,
    trusted: &[PublicKey],
    temps: &mut Vec<PathBuf>,
) -> Result<Imported, StoreError> {
    let bad = |message: String| StoreError::BadArchive {
        archive: archive.display().to_string(),
        message,
    };
    let file = std::fs::File::open(archive).map_err(StoreError::io("cannot open", archive))?;
    let dec = zstd::Decoder::new(file).map_err(StoreError::io("cannot decompress", archive))?;
    let mut tar = tar::Archive::new(dec);
    let mut metas: BTreeMap<Key, ObjectMeta> = BTreeMap::new();
    let mut datas: BTreeMap<Key, PathBuf> = BTreeMap::new();
    let entries = tar
        .entries()
        .map_err(StoreError::io("cannot read", archive))?;
    for entry in entries {
        let mut entry = entry.map_err(StoreError::io("cannot read", archive))?;
        let name = entry
            .path()
            .map_err(StoreError::io("cannot read", archive))?
            .to_string_lossy()
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() && name.trim_end_matches('/') == ROOT {
            continue;
        }
        if kind != tar::EntryType::Regular {
            return Err(bad(format!(
                "the entry `{name}` is {}; an alto export holds only regular files",
                entry_kind(kind)
            )));
        }
        let Some(rest) = name.strip_prefix(&format!("{ROOT}/")) else {
            return Err(bad(format!(
                "unexpected entry `{name}`; not an alto export"
            )));
        };
        if let Some(k) = rest.strip_suffix(".meta.json") {
            let key = Key::parse(k).ok_or_else(|| bad(format!("unexpected entry `{name}`")))?;
            let mut text = Vec::new();
            (&mut entry)
                .take(MAX_META_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(StoreError::io("cannot read", archive))?;
            if text.len() as u64 > MAX_META_BYTES {
                return Err(bad(format!("`{name}` is too large for a metadata record")));
            }
            let meta: ObjectMeta =
                serde_json::from_slice(&text).map_err(|e| bad(format!("`{name}`: {e}")))?;
            if metas.insert(key, meta).is_some() {
                return Err(bad(format!("`{name}` appears twice")));
            }
        } else {
            let key = Key::parse(rest).ok_or_else(|| bad(format!("unexpected entry `{name}`")))?;
            if datas.contains_key(&key) {
                return Err(bad(format!("`{name}` appears twice")));
            }
            let tmp = local.temp_path(&format!("{}.import", key.as_str()));
            temps.push(tmp.clone());
            let mut out =
                std::fs::File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
            std::io::copy(&mut entry, &mut out).map_err(StoreError::io("cannot write", &tmp))?;
            datas.insert(key, tmp);
        }
    }
    if let Some(key) = metas.keys().find(|k| !datas.contains_key(*k)) {
        return Err(bad(format!("{key} has a metadata record but no content")));
    }
    // Verify everything before committing anything.
    let mut report = Imported::default();
    let mut to_commit = Vec::new();
    for (key, tmp) in &datas {
        let meta = metas
            .get(key)
            .ok_or_else(|| bad(format!("{key} has no metadata record")))?;
        verify_record(key, meta, trusted).map_err(|problem| match problem {
            Problem::Untrusted => StoreError::UntrustedImport {
                archive: archive.display().to_string(),
                object: key.to_string(),
            },
            Problem::Invalid(message) => bad(format!("{key}: {message}")),
        })?;
        let (blake3, size) = hash_file(tmp).map_err(StoreError::io("cannot read", tmp))?;
        if blake3 != meta.blake3 || size != meta.size {
            return Err(bad(format!(
                "{key}: its content (blake3 {blake3}, {size} bytes) is not what its record says (blake3 {}, {} bytes)",
                meta.blake3, meta.size
            )));
        }
        match local.status(key, true)? {
            LocalStatus::Valid(_) => report.present.push(key.clone()),
            LocalStatus::Missing | LocalStatus::Damaged { .. } => to_commit.push((key, tmp, meta)),
        }
    }
    for (key, tmp, meta) in to_commit {
        if let Err(e) = local.commit(key, tmp, meta, meta.kind == "plugin") {
            // All or nothing: take back what this import committed.
            for done in &report.imported {
                let _ = local.remove(done);
            }
            let _ = local.remove(key);
            return Err(e);
        }
        report.imported.push(key.clone());
    }
    Ok(report)
}

enum Problem {
    Untrusted,
    Invalid(String),
}

/// Whether a record may be committed as `key`: its own format and name, a
/// derivation that hashes to `key`, and a trusted signature when required.
fn verify_record(key: &Key, meta: &ObjectMeta, trusted: &[PublicKey]) -> Result<(), Problem> {
    if meta.format != super::META_FORMAT {
        return Err(Problem::Invalid(format!(
            "the record's format `{}` is not {}",
            meta.format,
            super::META_FORMAT
        )));
    }
    if &meta.key != key {
        return Err(Problem::Invalid(format!(
            "the record describes {}",
            meta.key
        )));
    }
    if !matches!(meta.kind.as_str(), "plugin" | "catalog") {
        return Err(Problem::Invalid(format!(
            "`{}` is not a kind of object alto exports",
            meta.kind
        )));
    }
    if meta.derivation.get("kind").and_then(|k| k.as_str()) != Some(meta.kind.as_str()) {
        return Err(Problem::Invalid(format!(
            "the record's derivation is not a {} derivation",
            meta.kind
        )));
    }
    let recomputed = Key::of(&meta.derivation);
    if &recomputed != key {
        return Err(Problem::Invalid(format!(
            "its derivation hashes to {recomputed}, not to its name: the object was not built from what its record says"
        )));
    }
    if !trusted.is_empty() && !super::signing::verify(meta, trusted) {
        return Err(Problem::Untrusted);
    }
    Ok(())
}

fn entry_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char | tar::EntryType::Block => "a device",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::Directory => "a directory",
        tar::EntryType::GNUSparse => "a sparse file",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BuilderInfo;
    use crate::store::signing::SecretKey;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        (dir, store)
    }

    /// A plugin object whose record is self-consistent: its derivation
    /// recomputes to its key and its content to its hash.
    fn object(pip_url: &str, content: &[u8]) -> (Key, ObjectMeta) {
        let derivation = serde_json::json!({"kind": "plugin", "pip_url": pip_url});
        let key = Key::of(&derivation);
        let meta = ObjectMeta {
            format: crate::store::META_FORMAT.into(),
            key: key.clone(),
            kind: "plugin".into(),
            derivation,
            blake3: blake3::hash(content).to_hex().to_string(),
            size: content.len() as u64,
            created: crate::store::now_rfc3339(),
            builder: BuilderInfo::here(),
            signature: None,
        };
        (key, meta)
    }

    enum Item<'a> {
        File(String, &'a [u8]),
        Symlink(String, &'a str),
        HardLink(String, &'a str),
    }

    fn file(name: String, bytes: &[u8]) -> Item<'_> {
        Item::File(name, bytes)
    }

    fn meta_file(meta: &ObjectMeta) -> (String, Vec<u8>) {
        (
            format!("{ROOT}/{}.meta.json", meta.key),
            serde_json::to_vec(meta).unwrap(),
        )
    }

    fn archive(dir: &Path, items: &[Item]) -> PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for item in items {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match item {
                Item::File(name, bytes) => {
                    h.set_size(bytes.len() as u64);
                    h.set_cksum();
                    tar.append_data(&mut h, name, *bytes).unwrap();
                }
                Item::Symlink(name, to) | Item::HardLink(name, to) => {
                    h.set_entry_type(if matches!(item, Item::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_size(0);
                    tar.append_link(&mut h, name, to).unwrap();
                }
            }
        }
        let bytes = tar.into_inner().unwrap();
        let path = dir.join(format!("a-{}.tar.zst", crate::store::local::unique()));
        std::fs::write(&path, zstd::encode_all(bytes.as_slice(), 3).unwrap()).unwrap();
        path
    }

    fn put(store: &LocalStore, meta: &ObjectMeta, content: &[u8]) {
        let tmp = store.temp_path("t");
        std::fs::write(&tmp, content).unwrap();
        store.commit(&meta.key, &tmp, meta, true).unwrap();
    }

    fn tmp_is_empty(dir: &Path) -> bool {
        std::fs::read_dir(dir.join("store/v1/tmp")).unwrap().count() == 0
    }

    #[test]
    fn a_round_trip_imports_once_then_finds_everything_present() {
        let (a_dir, a) = store();
        let (key, meta) = object("tap-x==1", b"pex bytes");
        put(&a, &meta, b"pex bytes");
        let file = a_dir.path().join("x.tar.zst");
        export(&a, std::slice::from_ref(&key), &file).unwrap();
        let (b_dir, b) = store();
        let done = import(&b, &file, &[]).unwrap();
        assert_eq!(done.imported, vec![key.clone()]);
        assert!(matches!(
            b.status(&key, true).unwrap(),
            LocalStatus::Valid(_)
        ));
        assert_eq!(std::fs::read(b.data_path(&key)).unwrap(), b"pex bytes");
        let again = import(&b, &file, &[]).unwrap();
        assert_eq!(again.present, vec![key]);
        assert!(again.imported.is_empty());
        assert!(tmp_is_empty(b_dir.path()));
    }

    #[test]
    fn a_record_whose_derivation_does_not_hash_to_its_name_is_refused() {
        let (dir, store) = store();
        // The name and key of a real plugin; the derivation and content of another.
        let (real_key, _) = object("tap-x==1", b"real");
        let (_, mut poisoned) = object("evil==6.6.6", b"evil");
        poisoned.key = real_key.clone();
        let (name, bytes) = meta_file(&poisoned);
        let a = archive(
            dir.path(),
            &[
                file(format!("{ROOT}/{real_key}"), b"evil"),
                file(name, &bytes),
            ],
        );
        let err = import(&store, &a, &[]).unwrap_err();
        assert!(matches!(err, StoreError::BadArchive { .. }), "{err}");
        assert!(err.to_string().contains("hashes to"), "{err}");
        assert!(matches!(
            store.status(&real_key, true).unwrap(),
            LocalStatus::Missing
        ));
        assert!(tmp_is_empty(dir.path()));
    }

    #[test]
    fn links_are_refused_by_name() {
        let (dir, store) = store();
        let (key, meta) = object("tap-x==1", b"");
        let (name, bytes) = meta_file(&meta);
        for link in [
            Item::Symlink(format!("{ROOT}/{key}"), "/usr/bin/python3"),
            Item::HardLink(format!("{ROOT}/{key}"), "etc/passwd"),
        ] {
            let a = archive(dir.path(), &[link, file(name.clone(), &bytes)]);
            let err = import(&store, &a, &[]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{ROOT}/{key}`")), "{err}");
            assert!(err.contains("link"), "{err}");
            assert!(matches!(
                store.status(&key, true).unwrap(),
                LocalStatus::Missing
            ));
        }
        assert!(tmp_is_empty(dir.path()));
    }

    #[test]
    fn an_intact_object_is_never_replaced_and_a_damaged_one_is() {
        let (dir, store) = store();
        let (key, meta) = object("tap-x==1", b"the original");
        put(&store, &meta, b"the original");
        // Same key and derivation; other content, with a record to match it.
        let (_, mut other) = object("tap-x==1", b"other bytes!");
        other.created = meta.created.clone();
        let (name, bytes) = meta_file(&other);
        let a = archive(
            dir.path(),
            &[
                file(format!("{ROOT}/{key}"), b"other bytes!"),
                file(name, &bytes),
            ],
        );
        let done = import(&store, &a, &[]).unwrap();
        assert_eq!(done.present, vec![key.clone()]);
        assert_eq!(
            std::fs::read(store.data_path(&key)).unwrap(),
            b"the original"
        );
        // A damaged copy is not worth keeping: a verified one replaces it.
        crate::store::local::write_atomic(&store.data_path(&key), b"the originaX").unwrap();
        let done = import(&store, &a, &[]).unwrap();
        assert_eq!(done.imported, vec![key.clone()]);
        assert_eq!(
            std::fs::read(store.data_path(&key)).unwrap(),
            b"other bytes!"
        );
    }

    #[test]
    fn trusted_keys_require_a_signature() {
        let (dir, store) = store();
        let team = SecretKey::generate("team").unwrap();
        let (key, mut meta) = object("tap-x==1", b"pex");
        let (name, unsigned) = meta_file(&meta);
        let a = archive(
            dir.path(),
            &[
                file(format!("{ROOT}/{key}"), b"pex"),
                file(name.clone(), &unsigned),
            ],
        );
        let err = import(&store, &a, &[team.public()]).unwrap_err();
        assert!(matches!(err, StoreError::UntrustedImport { .. }), "{err}");
        assert!(matches!(
            store.status(&key, true).unwrap(),
            LocalStatus::Missing
        ));
        let stranger = SecretKey::generate("team").unwrap();
        stranger.sign(&mut meta);
        let (_, by_stranger) = meta_file(&meta);
        let a = archive(
            dir.path(),
            &[
                file(format!("{ROOT}/{key}"), b"pex"),
                file(name.clone(), &by_stranger),
            ],
        );
        assert!(import(&store, &a, &[team.public()]).is_err());
        team.sign(&mut meta);
        let (_, signed) = meta_file(&meta);
        let a = archive(
            dir.path(),
            &[file(format!("{ROOT}/{key}"), b"pex"), file(name, &signed)],
        );
        assert_eq!(
            import(&store, &a, &[team.public()]).unwrap().imported,
            vec![key]
        );
    }

    #[test]
    fn one_bad_object_and_nothing_is_imported() {
        let (dir, store) = store();
        let (good, good_meta) = object("a==1", b"good");
        let (bad, bad_meta) = object("b==1", b"bad");
        let (gn, gb) = meta_file(&good_meta);
        let (bn, bb) = meta_file(&bad_meta);
        let items = [
            file(format!("{ROOT}/{good}"), b"good"),
            file(gn, &gb),
            file(format!("{ROOT}/{bad}"), b"BAD"),
            file(bn, &bb),
        ];
        let err = import(&store, &archive(dir.path(), &items), &[]).unwrap_err();
        assert!(err.to_string().contains(bad.as_str()), "{err}");
        assert!(store.keys().unwrap().is_empty());
        assert!(tmp_is_empty(dir.path()));
        // Missing halves and other entries are refused too.
        let (n, b) = meta_file(&good_meta);
        for items in [
            vec![file(format!("{ROOT}/{good}"), b"good")],
            vec![file(n.clone(), &b)],
            vec![file(format!("{ROOT}/{good}/x"), b"x")],
            vec![
                file(format!("elsewhere/{good}"), b"good"),
                file(n.clone(), &b),
            ],
            vec![
                file(format!("{ROOT}/{good}"), b"good"),
                file(n.clone(), &b),
                file(n.clone(), &b),
            ],
        ] {
            assert!(import(&store, &archive(dir.path(), &items), &[]).is_err());
            assert!(store.keys().unwrap().is_empty());
        }
    }
}
