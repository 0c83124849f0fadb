//! The remote store through `object_store`: a directory (the embedded default
//! `~/.alto`, or `filesystem: file` with `bucket: /dir`), S3, GCS or Azure Blob.
//!
//! Layout under the remote root: `.store/v1/data/<key>` and
//! `.store/v1/meta/<key>.json` for content-addressed objects shared by every
//! project, and `<project>/...` for each project's state, catalogs,
//! reservoir and logs.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde_json::Value;

use super::{ObjectMeta, StoreError};
use crate::config::{Project, RemoteSettings};
use crate::eval::Key;

/// Where the remote store is, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Directory(PathBuf),
    S3 { bucket: String },
    Gcs { bucket: String },
    Azure { container: String },
}

/// The remote store of a project.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// Everything alto keeps lives under this prefix.
    root: String,
    project: String,
    /// How the remote is shown in messages (`~/.alto`, `s3://bucket/alto`).
    pub describe: String,
    pub backend: Backend,
    rt: tokio::runtime::Runtime,
}

/// The result of a conditional write.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written; the version to update it against next time.
    Done(UpdateVersion),
    /// Another writer got there first (create-only) or changed it (update).
    Conflict,
}

/// A directory listing: subdirectory names, and file names with sizes.
pub type Listing = (Vec<String>, Vec<(String, u64)>);

/// A file of a project directory: its name, size and when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    /// RFC 3339, UTC, to the second.
    pub modified: String,
}

/// A mutable file's content and the version to update it against.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub bytes: Bytes,
    pub version: UpdateVersion,
}

fn strip_scheme(bucket: &str) -> &str {
    for scheme in [
        "s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "file://",
    ] {
        if let Some(rest) = bucket.strip_prefix(scheme) {
            return rest.trim_end_matches('/');
        }
    }
    bucket.trim_end_matches('/')
}

/// fsspec-style names (the original's `<fs>_settings`) for object_store's keys.
fn alias<'a>(fs: &str, key: &'a str) -> &'a str {
    match key {
        "key" | "aws_access_key_id" => "access_key_id",
        "secret" | "aws_secret_access_key" => "secret_access_key",
        "endpoint_url" => "endpoint",
        "region_name" => "region",
        "token" if fs == "gcs" || fs == "gs" => "service_account_path",
        other => other,
    }
}

/// fsspec options that have no object_store counterpart and change nothing
/// about where objects live: accepted and ignored.
const IGNORED_FSSPEC: [&str; 8] = [
    "project",
    "requester_pays",
    "consistency",
    "cache_timeout",
    "skip_instance_cache",
    "use_listings_cache",
    "auto_mkdir",
    "default_fill_cache",
];

/// Flattens settings into (key, string value) pairs; fsspec's nested
/// `client_kwargs` is read as part of the map.
fn settings_pairs(fs: &str, map: &serde_json::Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (k, v) in map {
        if IGNORED_FSSPEC.contains(&k.as_str()) {
            tracing::debug!("remote setting `{k}` has no meaning for alto; ignored");
            continue;
        }
        match v {
            Value::Object(inner) if k == "client_kwargs" || k == "config_kwargs" => {
                settings_pairs(fs, inner, out)
            }
            Value::Null => {}
            Value::String(s) => out.push((alias(fs, k).to_string(), s.clone())),
            other => out.push((alias(fs, k).to_string(), other.to_string())),
        }
    }
}

/// How long a remote may stay silent (`ALTO_REMOTE_TIMEOUT` seconds, default
/// 30): the wait for a connection, for each read, and for retries together,
/// so an unresponsive remote ends in an error, never a hang.
pub fn remote_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("ALTO_REMOTE_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(30),
    )
}

fn client_options() -> object_store::ClientOptions {
    let t = remote_timeout();
    object_store::ClientOptions::new()
        .with_connect_timeout(t.min(std::time::Duration::from_secs(10)))
        .with_read_timeout(t)
        // A whole request (a large upload included) may take longer than one read.
        .with_timeout(t * 20)
}

fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: remote_timeout(),
        ..Default::default()
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl Remote {
    /// Opens the project's remote store. Nothing touches the network yet.
    pub fn open(project: &Project) -> Result<Remote, StoreError> {
        Remote::from_settings(&project.remote_settings()?, &project.root, &project.name)
    }

    /// Opens the remote store `settings` describe, for the project `name`
    /// rooted at `root` (a relative `bucket` directory is relative to it).
    pub fn from_settings(
        remote: &RemoteSettings,
        root: &Path,
        name: &str,
    ) -> Result<Remote, StoreError> {
        let filesystem = remote.filesystem.clone();
        let bucket = remote
            .bucket
            .as_deref()
            .map(|b| strip_scheme(b).to_string())
            .filter(|b| !b.is_empty());
        let bucket_path = remote.bucket_path.clone();
        let mut settings = Vec::new();
        let fs_name = filesystem.clone().unwrap_or_else(|| "file".into());
        for (_, m) in &remote.options {
            settings_pairs(&fs_name, m, &mut settings);
        }
        let need_bucket = |fs: &str| {
            bucket.clone().ok_or_else(|| StoreError::Setting {
                key: "bucket".into(),
                message: format!("`filesystem: {fs}` needs a `bucket`"),
                help: Some("set `bucket` next to `filesystem` in the config".into()),
            })
        };
        let (backend, prefix) = match filesystem.as_deref() {
            None | Some("file") | Some("local") => match &bucket {
                // `filesystem: file` with a bucket: that directory is the remote.
                Some(dir) if filesystem.is_some() => {
                    let dir = if let Some(rest) = dir.strip_prefix("~/") {
                        home().join(rest)
                    } else {
                        root.join(dir)
                    };
                    (
                        Backend::Directory(dir),
                        bucket_path.clone().unwrap_or_default(),
                    )
                }
                // The embedded default, as in the original: a directory under ~/.alto.
                _ => (Backend::Directory(home().join(".alto")), String::new()),
            },
            Some("s3") | Some("s3a") => (
                Backend::S3 {
                    bucket: need_bucket("s3")?,
                },
                bucket_path.clone().unwrap_or_else(|| "alto".into()),
            ),
            Some("gcs") | Some("gs") => (
                Backend::Gcs {
                    bucket: need_bucket("gcs")?,
                },
                bucket_path.clone().unwrap_or_else(|| "alto".into()),
            ),
            Some("azure") | Some("az") | Some("adls") | Some("abfs") => (
                Backend::Azure {
                    container: need_bucket("azure")?,
                },
                bucket_path.clone().unwrap_or_else(|| "alto".into()),
            ),
            Some(other) => {
                return Err(StoreError::Setting {
                    key: "filesystem".into(),
                    message: format!("`{other}` is not a filesystem alto knows"),
                    help: Some("use file, s3, gcs or azure".into()),
                });
            }
        };
        Remote::new(
            backend,
            prefix.trim_matches('/').to_string(),
            name.to_string(),
            &settings,
        )
    }

    pub fn new(
        backend: Backend,
        root: String,
        project: String,
        settings: &[(String, String)],
    ) -> Result<Remote, StoreError> {
        let setting_error = |k: &str, e: object_store::Error| StoreError::Setting {
            key: k.to_string(),
            message: e.to_string(),
            help: Some("see the object_store documentation for the keys of this backend".into()),
        };
        let (store, describe): (Arc<dyn ObjectStore>, String) = match &backend {
            Backend::Directory(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(StoreError::io("cannot create the remote directory", dir))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| setting_error("bucket", e))?;
                (Arc::new(fs), dir.display().to_string())
            }
            Backend::S3 { bucket } => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client_options())
                    .with_retry(retry_config());
                for (k, v) in settings {
                    let key = AmazonS3ConfigKey::from_str(k).map_err(|e| setting_error(k, e))?;
                    b = b.with_config(key, v);
                }
                // Create-only and update-if-unchanged puts use ETags (If-None-Match / If-Match).
                b = b.with_conditional_put(S3ConditionalPut::ETagMatch);
                (
                    Arc::new(b.build().map_err(|e| setting_error("s3", e))?),
                    format!("s3://{bucket}"),
                )
            }
            Backend::Gcs { bucket } => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client_options())
                    .with_retry(retry_config());
                for (k, v) in settings {
                    let key = GoogleConfigKey::from_str(k).map_err(|e| setting_error(k, e))?;
                    b = b.with_config(key, v);
                }
                (
                    Arc::new(b.build().map_err(|e| setting_error("gcs", e))?),
                    format!("gs://{bucket}"),
                )
            }
            Backend::Azure { container } => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_client_options(client_options())
                    .with_retry(retry_config());
                for (k, v) in settings {
                    let key = AzureConfigKey::from_str(k).map_err(|e| setting_error(k, e))?;
                    b = b.with_config(key, v);
                }
                (
                    Arc::new(b.build().map_err(|e| setting_error("azure", e))?),
                    format!("az://{container}"),
                )
            }
        };
        let describe = if root.is_empty() {
            describe
        } else {
            format!("{describe}/{root}")
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        Ok(Remote {
            store,
            root,
            project,
            describe,
            backend,
            rt,
        })
    }

    fn path(&self, rel: &str) -> ObjectPath {
        if self.root.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.root))
        }
    }

    fn data_rel(key: &Key) -> String {
        format!(".store/v1/data/{}", key.0)
    }

    fn meta_rel(key: &Key) -> String {
        format!(".store/v1/meta/{}.json", key.0)
    }

    /// A path under the project's own prefix (`state/dev/x-to-y.json`).
    pub fn project_rel(&self, rel: &str) -> String {
        format!("{}/{rel}", self.project)
    }

    fn err(
        &self,
        action: &'static str,
        path: &ObjectPath,
        source: object_store::Error,
    ) -> StoreError {
        StoreError::Remote {
            remote: self.describe.clone(),
            action,
            path: path.to_string(),
            source,
        }
    }

    /// Keys of every committed object (one listing).
    pub fn meta_keys(&self) -> Result<HashSet<Key>, StoreError> {
        let prefix = self.path(".store/v1/meta");
        self.rt.block_on(async {
            let mut out = HashSet::new();
            let mut stream = self.store.list(Some(&prefix));
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|e| self.err("list", &prefix, e))?;
                if let Some(k) = meta
                    .location
                    .filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .and_then(Key::parse)
                {
                    out.insert(k);
                }
            }
            Ok(out)
        })
    }

    /// The metadata record of an object, if committed.
    pub fn meta(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path(&Self::meta_rel(key));
        let Some(bytes) = self.get(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::BadMeta {
                path: path.to_string(),
                message: e.to_string(),
            })
    }

    fn get(&self, path: &ObjectPath) -> Result<Option<Bytes>, StoreError> {
        self.rt.block_on(async {
            match self.store.get(path).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map(Some)
                    .map_err(|e| self.err("read", path, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err("read", path, e)),
            }
        })
    }

    /// Streams an object's content into `dest`, returning its blake3 and size.
    pub fn download(&self, key: &Key, dest: &Path) -> Result<(String, u64), StoreError> {
        let path = self.path(&Self::data_rel(key));
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
            let mut file =
                std::fs::File::create(dest).map_err(StoreError::io("cannot create", dest))?;
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err("download", &path, e))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .map_err(StoreError::io("cannot write", dest))?;
            }
            file.sync_all()
                .map_err(StoreError::io("cannot sync", dest))?;
            Ok((hasher.finalize().to_hex().to_string(), size))
        })
    }

    /// Uploads an object: the content, then the metadata (the commit point),
    /// both create-only unless `replace` (a repair of a damaged copy).
    pub fn upload(
        &self,
        key: &Key,
        src: &Path,
        meta: &ObjectMeta,
        replace: bool,
    ) -> Result<Written, StoreError> {
        let bytes = std::fs::read(src).map_err(StoreError::io("cannot read", src))?;
        let data = self.path(&Self::data_rel(key));
        let meta_path = self.path(&Self::meta_rel(key));
        let meta_bytes = serde_json::to_vec_pretty(meta).unwrap_or_default();
        if replace {
            // Hide the damaged object first, so nobody substitutes it meanwhile.
            self.delete(&meta_path)?;
            self.put(&data, Bytes::from(bytes), PutMode::Overwrite)?;
            return self.put(&meta_path, Bytes::from(meta_bytes), PutMode::Overwrite);
        }
        // Content first: a crash before the metadata leaves nothing that looks complete.
        self.put(&data, Bytes::from(bytes), PutMode::Create)?;
        self.put(&meta_path, Bytes::from(meta_bytes), PutMode::Create)
    }

    fn put(&self, path: &ObjectPath, bytes: Bytes, mode: PutMode) -> Result<Written, StoreError> {
        self.rt.block_on(async {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            match self
                .store
                .put_opts(path, PutPayload::from(bytes), opts)
                .await
            {
                Ok(r) => Ok(Written::Done(UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                })),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(Written::Conflict),
                Err(e) => Err(self.err("write", path, e)),
            }
        })
    }

    fn delete(&self, path: &ObjectPath) -> Result<(), StoreError> {
        self.rt.block_on(async {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.err("delete", path, e)),
            }
        })
    }

    /// The local path of a file under the project's prefix, for directory remotes.
    fn local_path(&self, rel: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Directory(dir) => Some(dir.join(self.path(&self.project_rel(rel)).as_ref())),
            _ => None,
        }
    }

    /// A file under the project's prefix, with the version to update it against.
    pub fn read_project_file(&self, rel: &str) -> Result<Option<Versioned>, StoreError> {
        if let Some(path) = self.local_path(rel) {
            return match std::fs::read(&path) {
                Ok(b) => Ok(Some(Versioned {
                    version: content_version(&b),
                    bytes: Bytes::from(b),
                })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Io {
                    action: "cannot read",
                    path,
                    source: e,
                }),
            };
        }
        let path = self.path(&self.project_rel(rel));
        self.rt.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let bytes = r.bytes().await.map_err(|e| self.err("read", &path, e))?;
                    Ok(Some(Versioned { bytes, version }))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err("read", &path, e)),
            }
        })
    }

    /// Writes a file under the project's prefix: create-only (`expected`
    /// `None`), or only if it is still at `expected`. Never overwrites blindly.
    pub fn write_project_file(
        &self,
        rel: &str,
        bytes: Bytes,
        expected: Option<UpdateVersion>,
    ) -> Result<Written, StoreError> {
        if let Some(path) = self.local_path(rel) {
            return cas_local(&path, &bytes, expected.as_ref());
        }
        let path = self.path(&self.project_rel(rel));
        let mode = match expected {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        self.put(&path, bytes, mode)
    }

    /// Creates an immutable file under the project's prefix (a reservoir
    /// partition); `Conflict` if it exists. Directory remotes publish it with
    /// a hard link, which fails rather than replace, so no lock file is needed.
    pub fn create_project_file(&self, rel: &str, bytes: Bytes) -> Result<Written, StoreError> {
        let Some(path) = self.local_path(rel) else {
            return self.write_project_file(rel, bytes, None);
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(StoreError::io("cannot create", dir))?;
        // Named with the time, so compaction can tell a dead upload's leftover.
        let tmp = dir.join(format!(
            ".{}-{}.tmp",
            crate::store::now_compact(),
            crate::store::local::unique()
        ));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, &path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(Written::Done(content_version(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Written::Conflict),
            Err(e) => Err(StoreError::Io {
                action: "cannot write",
                path,
                source: e,
            }),
        }
    }

    /// Writes a file under the project's prefix whatever is there (logs, catalogs).
    pub fn overwrite_project_file(&self, rel: &str, bytes: Bytes) -> Result<(), StoreError> {
        if let Some(path) = self.local_path(rel) {
            return crate::store::local::write_atomic(&path, &bytes)
                .map_err(StoreError::io("cannot write", &path));
        }
        let path = self.path(&self.project_rel(rel));
        self.put(&path, bytes, PutMode::Overwrite).map(|_| ())
    }

    /// Deletes a file under the project's prefix.
    pub fn delete_project_file(&self, rel: &str) -> Result<(), StoreError> {
        if let Some(path) = self.local_path(rel) {
            return match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::Io {
                    action: "cannot delete",
                    path,
                    source: e,
                }),
            };
        }
        let path = self.path(&self.project_rel(rel));
        self.delete(&path)
    }

    /// Removes a file under the project's prefix only if it is still at
    /// `expected`. Directory remotes delete it under the same lock as their
    /// other conditional writes; object stores, which cannot delete
    /// conditionally, replace it with `tombstone` by update-if-unchanged.
    pub fn release_project_file(
        &self,
        rel: &str,
        expected: UpdateVersion,
        tombstone: Bytes,
    ) -> Result<Written, StoreError> {
        if let Some(path) = self.local_path(rel) {
            return delete_local_if(&path, &expected);
        }
        self.write_project_file(rel, tombstone, Some(expected))
    }

    /// Names of the files directly under a directory of the project's prefix.
    pub fn list_project_dir(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(&self.project_rel(rel));
        self.rt.block_on(async {
            let listing = match self.store.list_with_delimiter(Some(&prefix)).await {
                Ok(l) => l,
                Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(self.err("list", &prefix, e)),
            };
            let mut names: Vec<String> = listing
                .objects
                .iter()
                .filter_map(|o| o.location.filename().map(str::to_string))
                .collect();
            names.sort();
            Ok(names)
        })
    }

    /// The files directly under a directory of the project's prefix, with
    /// their sizes and modification times, sorted by name.
    pub fn list_project_files(&self, rel: &str) -> Result<Vec<FileInfo>, StoreError> {
        let prefix = self.path(&self.project_rel(rel));
        self.rt.block_on(async {
            let listing = match self.store.list_with_delimiter(Some(&prefix)).await {
                Ok(l) => l,
                Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(self.err("list", &prefix, e)),
            };
            let mut files: Vec<FileInfo> = listing
                .objects
                .iter()
                .filter_map(|o| {
                    Some(FileInfo {
                        name: o.location.filename()?.to_string(),
                        size: o.size,
                        modified: o.last_modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    })
                })
                .collect();
            files.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(files)
        })
    }

    /// Writes a file under the remote root (outside any project), whatever is there.
    pub fn overwrite_root_file(&self, rel: &str, bytes: Bytes) -> Result<(), StoreError> {
        if let Backend::Directory(dir) = &self.backend {
            let path = dir.join(self.path(rel).as_ref());
            return crate::store::local::write_atomic(&path, &bytes)
                .map_err(StoreError::io("cannot write", &path));
        }
        self.put(&self.path(rel), bytes, PutMode::Overwrite)
            .map(|_| ())
    }

    /// The contents of every file under a prefix of the remote root.
    pub fn read_root_files(&self, prefix: &str) -> Result<Vec<Bytes>, StoreError> {
        let prefix = self.path(prefix);
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut stream = self.store.list(Some(&prefix));
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|e| self.err("list", &prefix, e))?;
                match self.store.get(&meta.location).await {
                    Ok(r) => out.push(
                        r.bytes()
                            .await
                            .map_err(|e| self.err("read", &meta.location, e))?,
                    ),
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.err("read", &meta.location, e)),
                }
            }
            Ok(out)
        })
    }

    /// Deletes an object: its metadata first, so it stops existing before its
    /// content goes.
    pub fn delete_object(&self, key: &Key) -> Result<(), StoreError> {
        self.delete(&self.path(&Self::meta_rel(key)))?;
        self.delete(&self.path(&Self::data_rel(key)))
    }

    /// The directories and files (with sizes) directly under a directory of
    /// the project's prefix.
    pub fn list_project(&self, rel: &str) -> Result<Listing, StoreError> {
        let rel = rel.trim_matches('/');
        let prefix = self.path(&if rel.is_empty() {
            self.project.clone()
        } else {
            self.project_rel(rel)
        });
        self.rt.block_on(async {
            let listing = match self.store.list_with_delimiter(Some(&prefix)).await {
                Ok(l) => l,
                Err(object_store::Error::NotFound { .. }) => return Ok((Vec::new(), Vec::new())),
                Err(e) => return Err(self.err("list", &prefix, e)),
            };
            let dirs = listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            let files = listing
                .objects
                .iter()
                .filter_map(|o| o.location.filename().map(|f| (f.to_string(), o.size)))
                .collect();
            Ok((dirs, files))
        })
    }

    /// Where a project file lives, for messages.
    pub fn describe_project_file(&self, rel: &str) -> String {
        format!("{}/{}", self.describe, self.project_rel(rel))
    }
}

/// The version of a file in a directory remote: the blake3 of its content.
fn content_version(bytes: &[u8]) -> UpdateVersion {
    UpdateVersion {
        e_tag: Some(blake3::hash(bytes).to_hex().to_string()),
        version: None,
    }
}

/// Compare-and-swap on a local file, under an exclusive `flock` of a lock file
/// beside it, so processes on this machine (or sharing the directory) never
/// overwrite each other's writes.
fn cas_local(
    path: &Path,
    bytes: &[u8],
    expected: Option<&UpdateVersion>,
) -> Result<Written, StoreError> {
    let lock = lock_beside(path)?;
    if !unchanged(path, expected)? {
        return Ok(Written::Conflict);
    }
    crate::store::local::write_atomic(path, bytes).map_err(StoreError::io("cannot write", path))?;
    drop(lock);
    Ok(Written::Done(content_version(bytes)))
}

/// Deletes a local file only if it is still at `expected`, under the same lock.
fn delete_local_if(path: &Path, expected: &UpdateVersion) -> Result<Written, StoreError> {
    let lock = lock_beside(path)?;
    if !unchanged(path, Some(expected))? {
        return Ok(Written::Conflict);
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::Io {
                action: "cannot delete",
                path: path.to_path_buf(),
                source: e,
            });
        }
    }
    drop(lock);
    Ok(Written::Done(expected.clone()))
}

/// An exclusive `flock` of a lock file beside `path`, held while alive.
fn lock_beside(path: &Path) -> Result<std::fs::File, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(StoreError::io("cannot create", dir))?;
    let lock_path = dir.join(format!(
        ".{}.lock",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(StoreError::io("cannot open", &lock_path))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(StoreError::Io {
                action: "cannot lock",
                path: lock_path,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(lock)
}

/// Whether a local file is at `expected` (`None`: absent).
fn unchanged(path: &Path, expected: Option<&UpdateVersion>) -> Result<bool, StoreError> {
    let current = match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(StoreError::Io {
                action: "cannot read",
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    Ok(match (expected, &current) {
        (None, None) => true,
        (Some(v), Some(cur)) => content_version(cur).e_tag == v.e_tag,
        _ => false,
    })
}

/// Copies a file while hashing it; (blake3, size).
fn copy_hashing(src: &Path, dest: &Path) -> Result<(String, u64), StoreError> {
    use std::io::Read;
    let mut input = std::fs::File::open(src).map_err(StoreError::io("cannot read", src))?;
    let mut output = std::fs::File::create(dest).map_err(StoreError::io("cannot create", dest))?;
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
        output
            .write_all(&buf[..n])
            .map_err(StoreError::io("cannot write", dest))?;
        size += n as u64;
    }
    output
        .sync_all()
        .map_err(StoreError::io("cannot sync", dest))?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}
