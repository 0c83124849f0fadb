//! The remote store's bucket layer through `object_store`: a directory (the
//! embedded default `~/.alto`, or `filesystem: file` with `bucket: /dir`), S3,
//! GCS or Azure Blob; its runtime, get/put (with a mode)/delete/list, and
//! compare-and-swap (conditional puts, or an exclusive `flock` on a
//! directory remote). The typed views on it: `cache` (the binary cache under
//! `.store/v1/`) and `project` (each project's files under `<project>/`).

mod cache;
mod project;

pub use cache::{Encoding, RemoteObject, content_key, content_name, is_content_name};
pub use project::{FileInfo, Listing};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::StoreError;

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

/// A mutable file's content and the version to update it against.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub bytes: Bytes,
    pub version: UpdateVersion,
}

/// Where the remote store is and how to reach it, as configured (the caller
/// resolves it from the config).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteSettings {
    /// `file`, `s3`, `gcs`, `azure` (lower case), or `None`: the directory `~/.alto`.
    pub filesystem: Option<String>,
    pub bucket: Option<String>,
    pub bucket_path: Option<String>,
    /// The backend's options, in the order they apply (each a named map).
    pub options: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path relative to the listed prefix.
    pub name: String,
    pub size: u64,
    /// When it arrived (last modified), seconds since the epoch.
    pub modified: u64,
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
    /// Opens the remote store `settings` describe, for the project `name`
    /// rooted at `root` (a relative `bucket` directory is relative to it).
    /// Nothing touches the network yet.
    pub fn open(remote: &RemoteSettings, root: &Path, name: &str) -> Result<Remote, StoreError> {
        let filesystem = remote.filesystem.clone();
        let bucket = remote
            .bucket
            .as_deref()
            .map(|b| strip_scheme(b).to_string())
            .filter(|b| !b.is_empty());
        let bucket_path = remote.bucket_path.clone();
        let fs_name = filesystem.clone().unwrap_or_else(|| "file".into());
        let settings = super::options::backend_options(&fs_name, &remote.options)?;
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

    /// Every object under a prefix of the remote root (recursively), paged
    /// through: its name relative to the prefix, size and arrival time.
    pub fn list_entries(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let base = self.path(prefix);
        let skip = base.as_ref().len() + 1;
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut stream = self.store.list(Some(&base));
            while let Some(item) = stream.next().await {
                let meta = match item {
                    Ok(m) => m,
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(self.err("list", &base, e)),
                };
                let full = meta.location.as_ref();
                out.push(Entry {
                    name: full.get(skip..).unwrap_or(full).to_string(),
                    size: meta.size,
                    modified: u64::try_from(meta.last_modified.timestamp()).unwrap_or(0),
                });
            }
            Ok(out)
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

    /// The local path of a file under the remote root, for directory remotes.
    fn local_root_path(&self, rel: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Directory(dir) => Some(dir.join(self.path(rel).as_ref())),
            _ => None,
        }
    }

    /// A file under the remote root, with the version to update it against.
    pub fn read_root_file(&self, rel: &str) -> Result<Option<Versioned>, StoreError> {
        if let Some(path) = self.local_root_path(rel) {
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
        let path = self.path(rel);
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

    /// Writes a file under the remote root: create-only (`expected` `None`),
    /// or only if it is still at `expected` (compare-and-swap).
    pub fn write_root_file(
        &self,
        rel: &str,
        bytes: Bytes,
        expected: Option<UpdateVersion>,
    ) -> Result<Written, StoreError> {
        if let Some(path) = self.local_root_path(rel) {
            return cas_local(&path, &bytes, expected.as_ref());
        }
        let path = self.path(rel);
        let mode = match expected {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        self.put(&path, bytes, mode)
    }

    /// Deletes a file under the remote root (a leftover gc collects).
    pub fn delete_root_file(&self, rel: &str) -> Result<(), StoreError> {
        self.delete(&self.path(rel))
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
    // Released when `lock` is dropped.
    lock.lock()
        .map_err(StoreError::io("cannot lock", &lock_path))?;
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
