//! `alto store export` / `import`: store objects and their metadata in one
//! `.tar.zst` file, for a Docker image or an air-gapped machine. Import
//! verifies every object against its metadata before committing it.

use std::io::{Read, Write};
use std::path::Path;

use super::local::hash_file;
use super::{LocalStatus, LocalStore, ObjectMeta, StoreError};
use crate::eval::Key;

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
                        path: key.0.clone(),
                        message: format!("damaged: {reason}"),
                    });
                }
                LocalStatus::Missing => {
                    return Err(StoreError::BadMeta {
                        path: key.0.clone(),
                        message: "not in the local store".into(),
                    });
                }
            };
            let data = local.data_path(key);
            tar.append_path_with_name(&data, format!("{ROOT}/{}", key.0))
                .map_err(StoreError::io("cannot archive", &data))?;
            let meta_bytes = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            let mut header = tar::Header::new_gnu();
            header.set_size(meta_bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("{ROOT}/{}.meta.json", key.0),
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

/// Reads an archive into the local store; every object is hashed and checked
/// against its metadata first. Returns the keys imported.
pub fn import(local: &LocalStore, archive: &Path) -> Result<Vec<Key>, StoreError> {
    let file = std::fs::File::open(archive).map_err(StoreError::io("cannot open", archive))?;
    let dec = zstd::Decoder::new(file).map_err(StoreError::io("cannot decompress", archive))?;
    let mut tar = tar::Archive::new(dec);
    let mut metas: std::collections::BTreeMap<Key, ObjectMeta> = std::collections::BTreeMap::new();
    let mut datas: std::collections::BTreeMap<Key, std::path::PathBuf> =
        std::collections::BTreeMap::new();
    let bad = |message: String| StoreError::BadMeta {
        path: archive.display().to_string(),
        message,
    };
    let entries = tar
        .entries()
        .map_err(StoreError::io("cannot read", archive))?;
    let result = (|| {
        for entry in entries {
            let mut entry = entry.map_err(StoreError::io("cannot read", archive))?;
            let name = entry
                .path()
                .map_err(StoreError::io("cannot read", archive))?
                .to_string_lossy()
                .into_owned();
            let Some(rest) = name.strip_prefix(&format!("{ROOT}/")) else {
                return Err(bad(format!(
                    "unexpected entry `{name}`; not an alto export"
                )));
            };
            if let Some(k) = rest.strip_suffix(".meta.json") {
                let key = Key::parse(k).ok_or_else(|| bad(format!("unexpected entry `{name}`")))?;
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(StoreError::io("cannot read", archive))?;
                let meta: ObjectMeta =
                    serde_json::from_slice(&text).map_err(|e| bad(format!("{name}: {e}")))?;
                if meta.key != key {
                    return Err(bad(format!("{name} describes {}", meta.key)));
                }
                metas.insert(key, meta);
            } else {
                let key =
                    Key::parse(rest).ok_or_else(|| bad(format!("unexpected entry `{name}`")))?;
                let tmp = local.temp_path(&format!("{}.import", key.0));
                let mut out =
                    std::fs::File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
                std::io::copy(&mut entry, &mut out)
                    .map_err(StoreError::io("cannot write", &tmp))?;
                datas.insert(key, tmp);
            }
        }
        let mut imported = Vec::new();
        for (key, tmp) in &datas {
            let meta = metas
                .get(key)
                .ok_or_else(|| bad(format!("{key} has no metadata")))?;
            let (blake3, size) = hash_file(tmp).map_err(StoreError::io("cannot read", tmp))?;
            if blake3 != meta.blake3 || size != meta.size {
                return Err(StoreError::HashMismatch {
                    object: key.0.clone(),
                    remote: archive.display().to_string(),
                    expected: meta.blake3.clone(),
                    actual: blake3,
                });
            }
        }
        for (key, tmp) in &datas {
            if let Some(meta) = metas.get(key) {
                local.commit(key, tmp, meta, meta.kind == "plugin")?;
                imported.push(key.clone());
            }
        }
        Ok(imported)
    })();
    for tmp in datas.values() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}
