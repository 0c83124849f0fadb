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

/// Where downloaded content goes: hashed and counted, and written to a file
/// when there is one. A failed write is kept, so it is told apart from
/// content that does not decompress.
struct Sink<'a> {
    hasher: blake3::Hasher,
    size: u64,
    file: Option<(std::fs::File, &'a Path)>,
    failed: Option<StoreError>,
}

impl<'a> Sink<'a> {
    fn new(dest: Option<&'a Path>) -> Result<Sink<'a>, StoreError> {
        let file = match dest {
            Some(d) => Some((
                std::fs::File::create(d).map_err(StoreError::io("cannot create", d))?,
                d,
            )),
            None => None,
        };
        Ok(Sink {
            hasher: blake3::Hasher::new(),
            size: 0,
            file,
            failed: None,
        })
    }

    /// Syncs the file; (blake3, size) of what was written.
    fn finish(self) -> Result<(String, u64), StoreError> {
        if let Some((f, d)) = self.file {
            f.sync_all().map_err(StoreError::io("cannot sync", d))?;
        }
        Ok((self.hasher.finalize().to_hex().to_string(), self.size))
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some((f, d)) = self.file.as_mut()
            && let Err(e) = f.write_all(buf)
        {
            let kind = e.kind();
            self.failed = Some(StoreError::io("cannot write", d)(e));
            return Err(kind.into());
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A download in progress: the content as stored goes in, chunk by chunk;
/// the object's content comes out into a [`Sink`].
enum Receiver<'a> {
    Identity(Sink<'a>),
    Zstd(zstd::stream::write::Decoder<'static, Sink<'a>>),
}

impl<'a> Receiver<'a> {
    fn new(encoding: Encoding, sink: Sink<'a>) -> Result<Receiver<'a>, std::io::Error> {
        Ok(match encoding {
            Encoding::Identity => Receiver::Identity(sink),
            Encoding::Zstd => Receiver::Zstd(zstd::stream::write::Decoder::new(sink)?),
        })
    }

    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Receiver::Identity(s) => s.write_all(chunk),
            Receiver::Zstd(d) => d.write_all(chunk),
        }
    }

    fn finish(self) -> (Sink<'a>, std::io::Result<()>) {
        match self {
            Receiver::Identity(s) => (s, Ok(())),
            Receiver::Zstd(mut d) => {
                let flushed = d.flush();
                (d.into_inner(), flushed)
            }
        }
    }
}

/// How an object's content is stored on the remote: as it is, or (a
/// plugin's PEX, which alto builds uncompressed) zstd-compressed. Either
/// way the record's `blake3` and `size` are the object's own, checked after
/// decompressing and before anything is committed or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd,
}

impl Encoding {
    /// How an object of `kind` is uploaded.
    fn for_kind(kind: &str) -> Encoding {
        if kind == "plugin" {
            Encoding::Zstd
        } else {
            Encoding::Identity
        }
    }

    /// The record's `encoding` (absent for identity, as before it existed).
    fn name(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Zstd => Some("zstd"),
        }
    }

    /// The suffix of its content name.
    fn suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Zstd => ".zst",
        }
    }
}

/// zstd's level for a PEX, measured on tap-postgres's 75 MB uncompressed
/// PEX: level 1 makes 23.5 MB in 0.55 s, level 3 21.3 MB in 0.9 s (pex's
/// own deflate: 23 MB, 2.5 s more packing). A cold build is short of CPU;
/// 2 MB more to move is not what it waits for.
const ZSTD_LEVEL: i32 = 1;

/// `.store/v1/data/<content name>`.
fn data_rel(content: &str) -> String {
    format!(".store/v1/data/{content}")
}

/// The content name of an object: its key and the first 32 hex digits of
/// its blake3, and `.zst` when it is stored zstd-compressed.
pub fn content_name(key: &Key, blake3: &str, encoding: Encoding) -> String {
    format!(
        "{}.{}{}",
        key.as_str(),
        blake3.get(..32).unwrap_or(blake3),
        encoding.suffix()
    )
}

/// Whether `name` may name the content of `key`: the key itself (objects
/// uploaded before content names), `<key>.<32 hex>` or `<key>.<32 hex>.zst`.
/// A record is untrusted input: anything else (a path, another key's
/// content) is refused.
pub fn is_content_name(key: &Key, name: &str) -> bool {
    match name.strip_prefix(key.as_str()) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|h| {
            let h = h.strip_suffix(".zst").unwrap_or(h);
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
    pub encoding: Encoding,
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
        let encoding = match value.get("encoding") {
            None | Some(Value::Null) => Encoding::Identity,
            Some(Value::String(e)) if e == "zstd" => Encoding::Zstd,
            Some(other) => {
                return Err(bad(format!(
                    "`encoding` {other} is not one this alto reads (zstd)"
                )));
            }
        };
        let meta: ObjectMeta = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(Some(RemoteObject {
            meta,
            content,
            encoding,
        }))
    }

    /// The metadata record of an object, if committed.
    pub fn meta(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.object(key)?.map(|o| o.meta))
    }

    /// Streams an object's content into `dest` (or only hashes it, with
    /// `None`), decompressing what is stored compressed, returning the
    /// blake3 and size of what came out. Content that does not decompress
    /// is [`StoreError::Undecodable`].
    pub fn download(
        &self,
        object: &RemoteObject,
        dest: Option<&Path>,
    ) -> Result<(String, u64), StoreError> {
        let path = self.path(&data_rel(&object.content));
        let undecodable = |e: std::io::Error| StoreError::Undecodable {
            remote: self.describe.clone(),
            path: path.to_string(),
            reason: e.to_string(),
        };
        let received = |receiver: Receiver, fed: std::io::Result<()>| {
            let (sink, flushed) = receiver.finish();
            if let Some(e) = sink.failed {
                return Err(e);
            }
            fed.and(flushed).map_err(&undecodable)?;
            sink.finish()
        };
        let mut receiver =
            Receiver::new(object.encoding, Sink::new(dest)?).map_err(&undecodable)?;
        if let Backend::Directory(dir) = &self.backend {
            // A plain read runs at disk speed; object_store's local reads go
            // through small blocking chunks.
            use std::io::Read;
            let src = dir.join(path.as_ref());
            let mut input =
                std::fs::File::open(&src).map_err(StoreError::io("cannot read", &src))?;
            let mut buf = vec![0u8; 1 << 20];
            let fed = loop {
                let n = input
                    .read(&mut buf)
                    .map_err(StoreError::io("cannot read", &src))?;
                if n == 0 {
                    break Ok(());
                }
                if let Err(e) = receiver.write(&buf[..n]) {
                    break Err(e);
                }
            };
            return received(receiver, fed);
        }
        self.rt.block_on(async {
            let result = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.err("download", &path, e))?;
            let mut stream = result.into_stream();
            let mut fed = Ok(());
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err("download", &path, e))?;
                if let Err(e) = receiver.write(&chunk) {
                    fed = Err(e);
                    break;
                }
            }
            received(receiver, fed)
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
        let encoding = Encoding::for_kind(&meta.kind);
        let content = content_name(key, &meta.blake3, encoding);
        self.put_file(&data_rel(&content), src, encoding)?;
        let mut record = serde_json::to_value(meta).map_err(|e| StoreError::BadMeta {
            path: Self::meta_rel(key),
            message: e.to_string(),
        })?;
        if let Value::Object(m) = &mut record {
            m.insert("content".into(), Value::String(content));
            if let Some(name) = encoding.name() {
                m.insert("encoding".into(), Value::String(name.into()));
            }
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
    /// there, zstd-compressed on the way with `Encoding::Zstd`, streaming:
    /// a directory remote gets a copy renamed into place; an object store
    /// one request, or a multipart upload above 8 MiB, so a PEX is never
    /// held in memory whole.
    fn put_file(&self, rel: &str, src: &Path, encoding: Encoding) -> Result<(), StoreError> {
        use std::io::Read;
        const PART: usize = 8 << 20;
        let path = self.path(rel);
        let file = std::fs::File::open(src).map_err(StoreError::io("cannot read", src))?;
        let mut input: Box<dyn Read> = match encoding {
            Encoding::Identity => Box::new(file),
            Encoding::Zstd => Box::new(
                zstd::stream::read::Encoder::new(file, ZSTD_LEVEL)
                    .map_err(StoreError::io("cannot compress", src))?,
            ),
        };
        if let Backend::Directory(dir) = &self.backend {
            let dest = dir.join(path.as_ref());
            let parent = dest.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(StoreError::io("cannot create", parent))?;
            let tmp = parent.join(format!(".{}.tmp", crate::store::local::unique()));
            let result = (|| {
                let mut out =
                    std::fs::File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
                std::io::copy(&mut input, &mut out).map_err(StoreError::io("cannot copy", src))?;
                out.sync_all()
                    .map_err(StoreError::io("cannot sync", &tmp))?;
                std::fs::rename(&tmp, &dest).map_err(StoreError::io("cannot write", &dest))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            return result;
        }
        let mut read_part = || -> Result<Bytes, StoreError> {
            let mut buf = Vec::with_capacity(PART);
            Read::take(&mut input, PART as u64)
                .read_to_end(&mut buf)
                .map_err(StoreError::io("cannot read", src))?;
            Ok(Bytes::from(buf))
        };
        // A first part shorter than a part is all there is.
        let first = read_part()?;
        if first.len() < PART {
            return self.put(&path, first, PutMode::Overwrite).map(|_| ());
        }
        self.rt.block_on(async {
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.err("write", &path, e))?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
            let mut part = first;
            while !part.is_empty() {
                // At most two parts in flight: memory stays at a few parts.
                if let Err(e) = writer.wait_for_capacity(2).await {
                    return Err(self.err("write", &path, e));
                }
                writer.put(part);
                part = match read_part() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::remote::Backend;
    use crate::store::{BuilderInfo, META_FORMAT};

    fn remote(dir: &Path) -> Remote {
        Remote::new(
            Backend::Directory(dir.to_path_buf()),
            String::new(),
            "p".into(),
            &[],
        )
        .unwrap()
    }

    /// An object of `kind` in a file: compressible bytes, three 1 MiB
    /// buffers' worth and a bit, and its metadata.
    fn object(dir: &Path, kind: &str) -> (Key, std::path::PathBuf, ObjectMeta, Vec<u8>) {
        let bytes: Vec<u8> = (0..3_200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect();
        let src = dir.join("object");
        std::fs::write(&src, &bytes).unwrap();
        let key = Key::of(&serde_json::json!(kind));
        let meta = ObjectMeta {
            format: META_FORMAT.into(),
            key: key.clone(),
            kind: kind.into(),
            derivation: serde_json::json!({}),
            blake3: blake3::hash(&bytes).to_hex().to_string(),
            size: bytes.len() as u64,
            created: "2026-11-28T00:00:00Z".into(),
            builder: BuilderInfo::here(),
            signature: None,
        };
        (key, src, meta, bytes)
    }

    fn record(dir: &Path, key: &Key) -> Value {
        let path = dir.join(format!(".store/v1/meta/{key}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn a_plugin_goes_up_zstd_compressed_and_comes_back_as_it_was() {
        let up = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let r = remote(up.path());
        let (key, src, meta, bytes) = object(work.path(), "plugin");
        r.upload(&key, &src, &meta, false).unwrap();
        let rec = record(up.path(), &key);
        assert_eq!(rec["encoding"], "zstd");
        let content = rec["content"].as_str().unwrap().to_string();
        assert_eq!(content, format!("{key}.{}.zst", &meta.blake3[..32]));
        let stored = std::fs::read(up.path().join(".store/v1/data").join(&content)).unwrap();
        assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not a zstd frame");
        assert!(stored.len() < bytes.len() / 2, "{} bytes", stored.len());
        let found = r.object(&key).unwrap().unwrap();
        assert_eq!(found.encoding, Encoding::Zstd);
        assert_eq!(found.meta, meta);
        let dest = work.path().join("down");
        let (hash, size) = r.download(&found, Some(&dest)).unwrap();
        assert_eq!((hash, size), (meta.blake3.clone(), meta.size));
        assert_eq!(std::fs::read(&dest).unwrap(), bytes);
        assert_eq!(r.download(&found, None).unwrap().0, meta.blake3);
    }

    #[test]
    fn other_kinds_and_records_from_before_encodings_are_read_as_they_are() {
        let up = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let r = remote(up.path());
        let (key, src, meta, bytes) = object(work.path(), "catalog");
        r.upload(&key, &src, &meta, false).unwrap();
        let rec = record(up.path(), &key);
        assert!(rec.get("encoding").is_none(), "{rec}");
        let content = rec["content"].as_str().unwrap();
        assert_eq!(
            std::fs::read(up.path().join(".store/v1/data").join(content)).unwrap(),
            bytes
        );
        // A plugin uploaded by an alto before encodings: its PEX as it is,
        // under `data/<key>`, a record with neither `content` nor `encoding`.
        let (key, src, mut meta, bytes) = object(work.path(), "plugin");
        meta.kind = "plugin".into();
        std::fs::create_dir_all(up.path().join(".store/v1/meta")).unwrap();
        std::fs::copy(&src, up.path().join(".store/v1/data").join(key.as_str())).unwrap();
        std::fs::write(
            up.path().join(format!(".store/v1/meta/{key}.json")),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        let found = r.object(&key).unwrap().unwrap();
        assert_eq!(found.encoding, Encoding::Identity);
        let dest = work.path().join("down");
        assert_eq!(
            r.download(&found, Some(&dest)).unwrap(),
            (meta.blake3.clone(), meta.size)
        );
        assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    }

    #[test]
    fn content_that_does_not_decompress_never_passes_for_the_object() {
        let up = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let r = remote(up.path());
        let (key, src, meta, _) = object(work.path(), "plugin");
        r.upload(&key, &src, &meta, false).unwrap();
        let found = r.object(&key).unwrap().unwrap();
        let data = up.path().join(".store/v1/data").join(&found.content);
        let good = std::fs::read(&data).unwrap();
        // Garbage, a flipped byte in the middle, and a cut-off stream.
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        for bad in [
            b"not zstd at all".to_vec(),
            flipped,
            good[..good.len() / 2].to_vec(),
        ] {
            std::fs::write(&data, &bad).unwrap();
            match r.download(&found, Some(&work.path().join("down"))) {
                Err(StoreError::Undecodable { reason, .. }) => assert!(!reason.is_empty()),
                Ok((hash, size)) => {
                    assert!(hash != meta.blake3 || size != meta.size, "damage passed")
                }
                Err(e) => panic!("{e}"),
            }
        }
        // An encoding this alto does not know is a bad record, not raw bytes.
        let mut rec = record(up.path(), &key);
        rec["encoding"] = "br".into();
        std::fs::write(
            up.path().join(format!(".store/v1/meta/{key}.json")),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        assert!(matches!(r.object(&key), Err(StoreError::BadMeta { .. })));
    }

    #[test]
    fn content_names_are_the_key_and_its_hash_and_maybe_zst() {
        let key = Key::of(&serde_json::json!(1));
        let hex = "0123456789abcdef0123456789abcdef";
        for ok in [
            key.to_string(),
            format!("{key}.{hex}"),
            format!("{key}.{hex}.zst"),
        ] {
            assert!(is_content_name(&key, &ok), "{ok}");
            assert_eq!(content_key(&ok), Some(key.clone()));
        }
        for bad in [
            format!("{key}.{hex}.zst.zst"),
            format!("{key}.{hex}.gz"),
            format!("{key}.zst"),
            format!("{key}/../x"),
        ] {
            assert!(!is_content_name(&key, &bad), "{bad}");
        }
    }
}
