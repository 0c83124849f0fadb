//! Project files on the bucket, under `<project>/`: state, locks, logs,
//! catalogs and reservoir objects, written create-only, by compare-and-swap
//! or (logs, catalogs) whatever is there.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{PutMode, UpdateVersion};

use super::{Remote, Versioned, Written, content_version, delete_local_if};
use crate::store::StoreError;

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

impl Remote {
    /// The local path of a file under the project's prefix, for directory remotes.
    fn local_path(&self, rel: &str) -> Option<PathBuf> {
        self.local_root_path(&self.project_rel(rel))
    }

    /// A file under the project's prefix, with the version to update it against.
    pub fn read_project_file(&self, rel: &str) -> Result<Option<Versioned>, StoreError> {
        self.read_root_file(&self.project_rel(rel))
    }

    /// Writes a file under the project's prefix: create-only (`expected`
    /// `None`), or only if it is still at `expected`. Never overwrites blindly.
    pub fn write_project_file(
        &self,
        rel: &str,
        bytes: Bytes,
        expected: Option<UpdateVersion>,
    ) -> Result<Written, StoreError> {
        self.write_root_file(&self.project_rel(rel), bytes, expected)
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

    /// A path under the project's own prefix (`state/dev/x-to-y.json`).
    pub fn project_rel(&self, rel: &str) -> String {
        format!("{}/{rel}", self.project)
    }
}
