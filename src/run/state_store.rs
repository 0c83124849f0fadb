//! Where a pipeline's state lives: `state/<env>/<tap>-to-<target>.json` under
//! the project's remote root (the original's layout), plus a timestamped
//! copy after each run. Every write is conditional: create-only, or only if
//! the file is still the version this run read. Also what `alto state`
//! needs of them: listing an environment's states, a pipeline's history,
//! restoring a copy, and the export document.

use bytes::Bytes;
use object_store::UpdateVersion;
use serde_json::{Map, Value};

use super::RunError;
use super::provenance::{self, Provenance};
use crate::singer::state;
use crate::store::remote::{FileInfo, Remote, Written};

/// The `format` of an `alto state export` document.
pub const EXPORT_FORMAT: &str = "alto-state-export";
pub const EXPORT_VERSION: u64 = 1;

pub struct StateStore<'r> {
    remote: &'r Remote,
    dir: String,
    name: String,
    version: Option<UpdateVersion>,
    /// What this run records beside the states it writes.
    provenance: Option<Provenance>,
    /// Whether the active state's sidecar holds it yet.
    provenance_written: bool,
}

impl<'r> StateStore<'r> {
    /// The active state file of a pipeline, relative to the project's root.
    pub fn rel(env: &str, tap: &str, target: &str) -> String {
        format!("state/{env}/{tap}-to-{target}.json")
    }

    /// Reads the active state (Meltano's `singer_state` wrapper unwrapped).
    pub fn open(
        remote: &'r Remote,
        env: &str,
        tap: &str,
        target: &str,
    ) -> Result<(StateStore<'r>, Map<String, Value>), RunError> {
        StateStore::open_named(remote, env, &format!("{tap}-to-{target}"))
    }

    /// Reads the active state of the file named `<stem>.json` (a pipeline's
    /// `<tap>-to-<target>`, or a replay position's `<tap>-reservoir-to-<target>`).
    pub fn open_named(
        remote: &'r Remote,
        env: &str,
        stem: &str,
    ) -> Result<(StateStore<'r>, Map<String, Value>), RunError> {
        let mut store = StateStore {
            remote,
            dir: format!("state/{env}"),
            name: stem.to_string(),
            version: None,
            provenance: None,
            provenance_written: false,
        };
        let state = store.read()?;
        Ok((store, state))
    }

    /// Whether the active state file existed when last read or written
    /// (the original's `DEVELOPMENT` fallback does not count).
    pub fn exists(&self) -> bool {
        self.version.is_some()
    }

    /// Where the active state lives, for messages.
    pub fn describe(&self) -> String {
        self.remote.describe_project_file(&self.active())
    }

    /// The timestamped copies of this pipeline's state, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryCopy>, RunError> {
        let mut copies: Vec<HistoryCopy> = self
            .remote
            .list_project_files(&self.dir)?
            .into_iter()
            .filter_map(|f| match split_name(&f.name) {
                Some((stem, Some(stamp))) if stem == self.name => Some(HistoryCopy {
                    stamp: stamp.to_string(),
                    size: f.size,
                    modified: f.modified.clone(),
                }),
                _ => None,
            })
            .collect();
        copies.sort_by_key(|c| stamp_order(&c.stamp));
        Ok(copies)
    }

    /// Reads the copy `<stem>.<stamp>.json`.
    pub fn read_copy(&self, stamp: &str) -> Result<Map<String, Value>, RunError> {
        let rel = format!("{}/{}.{stamp}.json", self.dir, self.name);
        let found = if split_stamp(stamp) {
            self.remote.read_project_file(&rel)?
        } else {
            None
        };
        let Some(v) = found else {
            let known: Vec<String> = self.history()?.into_iter().map(|c| c.stamp).collect();
            return Err(RunError::NoSuchCopy {
                pipeline: self.name.clone(),
                stamp: stamp.to_string(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        };
        state::parse_file(&v.bytes).map_err(|e| RunError::BadState {
            path: self.remote.describe_project_file(&rel),
            message: e.to_string(),
        })
    }

    /// Makes the copy `stamp` the active state; the active state as it is
    /// now is kept as a new copy first, so a restore can be undone. Returns
    /// the restored state and the name of the copy of the replaced one.
    pub fn restore(
        &mut self,
        current: &Map<String, Value>,
        stamp: &str,
    ) -> Result<(Map<String, Value>, Option<String>), RunError> {
        let restored = self.read_copy(stamp)?;
        let kept = if self.exists() {
            self.keep_history(current)?
        } else {
            None
        };
        self.commit(&restored)?;
        // The restored state's record goes with it; a copy without one
        // leaves the active state without one.
        let copy = format!("{}/{}.{stamp}.json", self.dir, self.name);
        let active = provenance::sidecar(&self.active());
        match self.remote.read_project_file(&provenance::sidecar(&copy))? {
            Some(v) => self.remote.overwrite_project_file(&active, v.bytes)?,
            None => self.remote.delete_project_file(&active)?,
        }
        Ok((restored, kept))
    }

    fn active(&self) -> String {
        format!("{}/{}.json", self.dir, self.name)
    }

    fn read(&mut self) -> Result<Map<String, Value>, RunError> {
        let rel = self.active();
        match self.remote.read_project_file(&rel)? {
            None => {
                self.version = None;
                self.read_original_default()
            }
            Some(v) => {
                self.version = Some(v.version);
                state::parse_file(&v.bytes).map_err(|e| RunError::BadState {
                    path: self.remote.describe_project_file(&rel),
                    message: e.to_string(),
                })
            }
        }
    }

    /// The original alto wrote `state/DEVELOPMENT/` when ALTO_ENV was unset;
    /// alto's default is `dev`. Such a state is found and used, with a note;
    /// new state is written under `dev`.
    fn read_original_default(&self) -> Result<Map<String, Value>, RunError> {
        if self.dir != "state/dev" {
            return Ok(Map::new());
        }
        let old = format!("state/DEVELOPMENT/{}.json", self.name);
        let Some(v) = self.remote.read_project_file(&old)? else {
            return Ok(Map::new());
        };
        let state = state::parse_file(&v.bytes).map_err(|e| RunError::BadState {
            path: self.remote.describe_project_file(&old),
            message: e.to_string(),
        })?;
        tracing::warn!(
            "using {} (the original alto's environment when ALTO_ENV was unset); new state goes to {}. \
             To keep using the old environment instead, set ALTO_ENV=DEVELOPMENT; its history stays where it is",
            self.remote.describe_project_file(&old),
            self.remote.describe_project_file(&self.active())
        );
        Ok(state)
    }

    /// Writes the active state, only over the version this run last read or wrote.
    pub fn commit(&mut self, state: &Map<String, Value>) -> Result<(), RunError> {
        let bytes = Bytes::from(serde_json::to_vec_pretty(state).unwrap_or_default());
        let rel = self.active();
        match self
            .remote
            .write_project_file(&rel, bytes, self.version.clone())?
        {
            Written::Done(v) => {
                self.version = Some(v);
                // Once a run: its record does not change while it runs. A
                // writer without one (`alto state set`, ...) leaves the
                // state without one: no pipeline produced it.
                if !self.provenance_written {
                    let sidecar = provenance::sidecar(&rel);
                    match &self.provenance {
                        Some(p) => self.remote.overwrite_project_file(&sidecar, p.to_bytes())?,
                        None => self.remote.delete_project_file(&sidecar)?,
                    }
                    self.provenance_written = true;
                }
                Ok(())
            }
            Written::Conflict => Err(RunError::StateConflict {
                path: self.remote.describe_project_file(&rel),
            }),
        }
    }

    /// Keeps a timestamped copy (`<tap>-to-<target>.<YYYYmmddHHMMSS>.json`),
    /// never overwriting one.
    pub fn keep_history(&self, state: &Map<String, Value>) -> Result<Option<String>, RunError> {
        let bytes = Bytes::from(serde_json::to_vec_pretty(state).unwrap_or_default());
        // Names have second resolution; a second run within the same second
        // gets `-2`, `-3`, ... rather than overwrite the first one's copy.
        let stamp = crate::store::now_compact();
        for n in 1..100 {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("-{n}")
            };
            let rel = format!("{}/{}.{stamp}{suffix}.json", self.dir, self.name);
            if let Written::Done(_) = self.remote.write_project_file(&rel, bytes.clone(), None)? {
                // The copy keeps what produced it: this run's record, or
                // (a restore keeping the state it replaces) the active one's.
                let record = match &self.provenance {
                    Some(p) => Some(p.to_bytes()),
                    None => self
                        .remote
                        .read_project_file(&provenance::sidecar(&self.active()))?
                        .map(|v| v.bytes),
                };
                if let Some(b) = record {
                    self.remote
                        .overwrite_project_file(&provenance::sidecar(&rel), b)?;
                }
                return Ok(Some(rel));
            }
        }
        tracing::warn!(
            "could not keep a history copy of the state of {} without overwriting one",
            self.name
        );
        Ok(None)
    }

    /// Replaces the active state (`alto state set`), over whatever is there now.
    pub fn replace(&mut self, state: &Map<String, Value>) -> Result<(), RunError> {
        let rel = self.active();
        self.version = self.remote.read_project_file(&rel)?.map(|v| v.version);
        self.commit(state)
    }

    /// Drops the active state and its record; history stays.
    pub fn clear(&self) -> Result<(), RunError> {
        self.remote
            .delete_project_file(&provenance::sidecar(&self.active()))?;
        Ok(self.remote.delete_project_file(&self.active())?)
    }

    /// Records `p` beside every state this run writes from now on.
    pub fn set_provenance(&mut self, p: Option<Provenance>) {
        self.provenance = p;
        self.provenance_written = false;
    }

    /// What produced the active state, when it is known (states written
    /// before provenance, or by hand, have no record).
    pub fn provenance(&self) -> Result<Option<Provenance>, RunError> {
        self.read_provenance(&self.active())
    }

    /// What produced the copy `stamp`.
    pub fn copy_provenance(&self, stamp: &str) -> Result<Option<Provenance>, RunError> {
        self.read_provenance(&format!("{}/{}.{stamp}.json", self.dir, self.name))
    }

    fn read_provenance(&self, state_rel: &str) -> Result<Option<Provenance>, RunError> {
        let rel = provenance::sidecar(state_rel);
        let Some(v) = self.remote.read_project_file(&rel)? else {
            return Ok(None);
        };
        let p = Provenance::parse(&v.bytes);
        if p.is_none() {
            tracing::warn!(
                "{} is not a provenance record alto reads; ignoring it",
                self.remote.describe_project_file(&rel)
            );
        }
        Ok(p)
    }
}

/// A timestamped copy of a pipeline's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryCopy {
    /// `YYYYmmddHHMMSS`, with `-2`, `-3`, ... for later copies of the same second.
    pub stamp: String,
    pub size: u64,
    pub modified: String,
}

/// An active state file of an environment.
#[derive(Debug, Clone)]
pub struct ActiveState {
    /// `<tap>-to-<target>` (or `<tap>-reservoir-to-<target>`).
    pub stem: String,
    pub size: u64,
    pub modified: String,
}

/// Every active state file of an environment, by name.
pub fn list(remote: &Remote, env: &str) -> Result<Vec<ActiveState>, RunError> {
    Ok(remote
        .list_project_files(&format!("state/{env}"))?
        .into_iter()
        .filter_map(
            |FileInfo {
                 name,
                 size,
                 modified,
             }| match split_name(&name) {
                Some((stem, None)) => Some(ActiveState {
                    stem: stem.to_string(),
                    size,
                    modified,
                }),
                _ => None,
            },
        )
        .collect())
}

/// Whether `s` is a history stamp: 14 digits, then optionally `-N`.
fn split_stamp(s: &str) -> bool {
    let (digits, n) = match s.split_once('-') {
        Some((d, n)) => (d, Some(n)),
        None => (s, None),
    };
    digits.len() == 14
        && digits.bytes().all(|b| b.is_ascii_digit())
        && n.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A stamp's place in time: second, then the `-N` of that second.
pub fn stamp_order(stamp: &str) -> (String, u64) {
    match stamp.split_once('-') {
        Some((d, n)) => (d.to_string(), n.parse().unwrap_or(0)),
        None => (stamp.to_string(), 1),
    }
}

/// Reads a state file's name: `<stem>.json` is an active state,
/// `<stem>.<stamp>.json` a history copy; anything else is not a state file.
pub fn split_name(name: &str) -> Option<(&str, Option<&str>)> {
    // A state's provenance sidecar is not a state.
    if name.ends_with(provenance::SUFFIX) {
        return None;
    }
    split_stamped(name, ".json")
}

/// Reads a file name `<stem><ext>` or `<stem>.<stamp><ext>` (state copies, logs).
pub fn split_stamped<'a>(name: &'a str, ext: &str) -> Option<(&'a str, Option<&'a str>)> {
    let base = name.strip_suffix(ext)?;
    if let Some((stem, stamp)) = base.rsplit_once('.')
        && split_stamp(stamp)
    {
        return Some((stem, Some(stamp)));
    }
    (!base.is_empty()).then_some((base, None))
}

/// A state's fingerprint in an export: blake3 of its canonical JSON, so a
/// state re-serialized in another key order is still "unchanged".
pub fn fingerprint(state: &Map<String, Value>) -> String {
    let canonical = crate::eval::canonical_json(&Value::Object(state.clone()));
    blake3::hash(canonical.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_names() {
        assert_eq!(split_name("a-to-b.json"), Some(("a-to-b", None)));
        assert_eq!(
            split_name("a-to-b.20261127180000.json"),
            Some(("a-to-b", Some("20261127180000")))
        );
        assert_eq!(
            split_name("a.x-to-b.20261127180000-3.json"),
            Some(("a.x-to-b", Some("20261127180000-3")))
        );
        // A dot in a name is not a stamp.
        assert_eq!(split_name("a.x-to-b.json"), Some(("a.x-to-b", None)));
        assert_eq!(split_name("a-to-b.2026.json"), Some(("a-to-b.2026", None)));
        assert_eq!(split_name("a-to-b.lock"), None);
        assert_eq!(split_name(".json"), None);
        assert_eq!(split_name("a-to-b.provenance.json"), None);
        assert_eq!(split_name("a-to-b.20261127180000.provenance.json"), None);
    }

    #[test]
    fn copies_sort_by_second_then_number() {
        let mut stamps = vec![
            "20261127180000-10",
            "20261127180000-2",
            "20261127175959",
            "20261127180000",
        ];
        stamps.sort_by_key(|s| stamp_order(s));
        assert_eq!(
            stamps,
            [
                "20261127175959",
                "20261127180000",
                "20261127180000-2",
                "20261127180000-10"
            ]
        );
    }

    #[test]
    fn fingerprints_ignore_key_order() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"a": 2}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
