//! Where a pipeline's state lives: `state/<env>/<tap>-to-<target>.json` under
//! the project's remote root (the original's layout), plus a timestamped
//! copy after each run. Every write is conditional: create-only, or only if
//! the file is still the version this run read.

use bytes::Bytes;
use object_store::UpdateVersion;
use serde_json::{Map, Value};

use super::RunError;
use crate::singer::state;
use crate::store::remote::{Remote, Written};

pub struct StateStore<'r> {
    remote: &'r Remote,
    dir: String,
    name: String,
    version: Option<UpdateVersion>,
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
        let mut store = StateStore {
            remote,
            dir: format!("state/{env}"),
            name: format!("{tap}-to-{target}"),
            version: None,
        };
        let state = store.read()?;
        Ok((store, state))
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

    /// Drops the active state; history stays.
    pub fn clear(&self) -> Result<(), RunError> {
        Ok(self.remote.delete_project_file(&self.active())?)
    }
}
