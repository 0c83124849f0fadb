//! The binary cache on the bucket: metadata records (the commit point),
//! content under content names, upload (streaming) and download (hashing),
//! all under `.store/v1/`.
//!
//! Locks and commit points: none on the remote; an upload's commit point is
//! the create-only put of `.store/v1/meta/<key>.json` (an overwrite for a
//! repair), and a delete removes the record first.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutMode};
use serde_json::Value;

use super::{Backend, Remote, Written};
use crate::store::{Key, ObjectMeta, StoreError};

/// Copies a file while hashing it (only hashes it without `dest`); (blake3, size).
fn copy_hashing(src: &Path, dest: Option<&Path>) -> Result<(String, u64), StoreError> {
    use std::io::Read;
    let mut input = std::fs::File::open(src).map_err(StoreError::io("cannot read", src))?;
    let mut output = match dest {
        Some(d) => Some(std::fs::File::create(d).map_err(StoreError::io("cannot create", d))?),
        None => None,
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(StoreError::io("cannot read", src))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let (Some(o), Some(d)) = (output.as_mut(), dest) {
            o.write_all(&buf[..n])
                .map_err(StoreError::io("cannot write", d))?;
        }
        size += n as u64;
    }
    if let (Some(o), Some(d)) = (output, dest) {
        o.sync_all().map_err(StoreError::io("cannot sync", d))?;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// `.store/v1/data/<content name>`.
fn data_rel(content: &str) -> String {
    format!(".store/v1/data/{content}")
}

/// The content name of an object: its key and the first 32 hex digits of
/// its blake3.
pub fn content_name(key: &Key, blake3: &str) -> String {
    format!("{}.{}", key.as_str(), blake3.get(..32).unwrap_or(blake3))
}

/// Whether `name` may name the content of `key`: the key itself (objects
/// uploaded before content names) or `<key>.<32 hex>`. A record is untrusted
/// input: anything else (a path, another key's content) is refused.
pub fn is_content_name(key: &Key, name: &str) -> bool {
    match name.strip_prefix(key.as_str()) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|h| {
            h.len() == 32
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }),
        None => false,
    }
}

/// The key a content name belongs to.
pub fn content_key(name: &str) -> Option<Key> {
    let key = Key::parse(name.get(..32)?)?;
    is_content_name(&key, name).then_some(key)
}

/// A committed remote object: its record, and the name of its content under
/// `.store/v1/data/` (the record's `content`, else the key).
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub meta: ObjectMeta,
    pub content: String,
}

impl Remote {
    fn meta_rel(key: &Key) -> String {
        format!(".store/v1/meta/{}.json", key.as_str())
    }

    /// Keys of every committed object: a listing of `.store/v1/meta/`, paged
    /// through. Only `gc`, `store verify --remote` and `build --dry-run` list;
    /// realization reads one record by key instead.
    pub fn meta_keys(&self) -> Result<HashSet<Key>, StoreError> {
        Ok(self
            .list_entries(".store/v1/meta")?
            .into_iter()
            .filter_map(|e| e.name.strip_suffix(".json").and_then(Key::parse))
            .collect())
    }

    /// The committed object of `key`, if any: one read of its metadata
    /// record (the only remote request a missing plugin costs).
    pub fn object(&self, key: &Key) -> Result<Option<RemoteObject>, StoreError> {
        let path = self.path(&Self::meta_rel(key));
        let Some(bytes) = self.get(&path)? else {
            return Ok(None);
        };
        let bad = |message: String| StoreError::BadMeta {
            path: path.to_string(),
            message,
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let content = match value.get("content") {
            None | Some(Value::Null) => key.to_string(),
            Some(Value::String(c)) if is_content_name(key, c) => c.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "`content` {other} is not a content name of {key}"
                )));
            }
        };
        let meta: ObjectMeta = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(Some(RemoteObject { meta, content }))
    }

    /// The metadata record of an object, if committed.
    pub fn meta(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.object(key)?.map(|o| o.meta))
    }

    /// Streams an object's content into `dest` (or only hashes it, with
    /// `None`), returning its blake3 and size.
    pub fn download(
        &self,
        object: &RemoteObject,
        dest: Option<&Path>,
    ) -> Result<(String, u64), StoreError> {
        let path = self.path(&data_rel(&object.content));
        if let Backend::Directory(dir) = &self.backend {
            // A plain copy runs at disk speed; object_store's local reads go
            // through small blocking chunks.
            return copy_hashing(&dir.join(path.as_ref()), dest);
        }
        self.rt.block_on(async {
            let result = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.err("download", &path, e))?;
            let mut stream = result.into_stream();
            let mut file = match dest {
                Some(d) => {
                    Some(std::fs::File::create(d).map_err(StoreError::io("cannot create", d))?)
                }
                None => None,
            };
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err("download", &path, e))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                if let (Some(f), Some(d)) = (file.as_mut(), dest) {
                    f.write_all(&chunk)
                        .map_err(StoreError::io("cannot write", d))?;
                }
            }
            if let (Some(f), Some(d)) = (file, dest) {
                f.sync_all().map_err(StoreError::io("cannot sync", d))?;
            }
            Ok((hasher.finalize().to_hex().to_string(), size))
        })
    }

    /// Uploads an object. The content goes under a name made of the key and
    /// its blake3 (`data/<key>.<32 hex>`), so whoever writes that name writes
    /// the same bytes and a leftover of a crashed or racing upload can never
    /// be described by another builder's record; then the metadata record,
    /// naming that content, create-only (the commit point: losing the race
    /// to another machine is success, its record names its own content).
    /// `replace` (a repair) overwrites the record instead.
    pub fn upload(
        &self,
        key: &Key,
        src: &Path,
        meta: &ObjectMeta,
        replace: bool,
    ) -> Result<Written, StoreError> {
        let content = content_name(key, &meta.blake3);
        self.put_file(&data_rel(&content), src)?;
        let mut record = serde_json::to_value(meta).map_err(|e| StoreError::BadMeta {
            path: Self::meta_rel(key),
            message: e.to_string(),
        })?;
        if let Value::Object(m) = &mut record {
            m.insert("content".into(), Value::String(content));
        }
        let bytes = Bytes::from(serde_json::to_vec_pretty(&record).unwrap_or_default());
        let mode = if replace {
            PutMode::Overwrite
        } else {
            PutMode::Create
        };
        self.put(&self.path(&Self::meta_rel(key)), bytes, mode)
    }

    /// Writes a file's bytes to `rel` (under the remote root), whatever is
    /// there, streaming: a directory remote gets a copy renamed into place;
    /// an object store one request, or a multipart upload above 8 MiB, so a
    /// PEX is never held in memory whole.
    fn put_file(&self, rel: &str, src: &Path) -> Result<(), StoreError> {
        const PART: usize = 8 << 20;
        let path = self.path(rel);
        if let Backend::Directory(dir) = &self.backend {
            let dest = dir.join(path.as_ref());
            let parent = dest.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(StoreError::io("cannot create", parent))?;
            let tmp = parent.join(format!(".{}.tmp", crate::store::local::unique()));
            let result = copy_hashing(src, Some(&tmp)).and_then(|_| {
                std::fs::rename(&tmp, &dest).map_err(StoreError::io("cannot write", &dest))
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            return result;
        }
        let mut file = std::fs::File::open(src).map_err(StoreError::io("cannot read", src))?;
        let size = file
            .metadata()
            .map_err(StoreError::io("cannot read", src))?
            .len();
        let read_part = |file: &mut std::fs::File| -> Result<Bytes, StoreError> {
            use std::io::Read;
            let mut buf = Vec::with_capacity(PART);
            Read::take(Read::by_ref(file), PART as u64)
                .read_to_end(&mut buf)
                .map_err(StoreError::io("cannot read", src))?;
            Ok(Bytes::from(buf))
        };
        if size <= PART as u64 {
            let bytes = read_part(&mut file)?;
            return self.put(&path, bytes, PutMode::Overwrite).map(|_| ());
        }
        self.rt.block_on(async {
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.err("write", &path, e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            loop {
                let part = match read_part(&mut file) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                };
                if part.is_empty() {
                    break;
                }
                // At most two parts in flight: memory stays at a few parts.
                if let Err(e) = writer.wait_for_capacity(2).await {
                    return Err(self.err("write", &path, e));
                }
                writer.put(part);
            }
            writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.err("write", &path, e))
        })
    }

    /// Deletes an object: its metadata first (it stops existing), then the
    /// content it named.
    pub fn delete_object(&self, object: &RemoteObject) -> Result<(), StoreError> {
        self.delete(&self.path(&Self::meta_rel(&object.meta.key)))?;
        self.delete(&self.path(&data_rel(&object.content)))
    }
}
