//! The index of one tap's reservoir (`reservoir/<env>/<tap>/_index.json`):
//! every committed partition in ingest order, and the tap's state as of the
//! last commit. Partitions are written first and named by the index only
//! once complete; the index is replaced by conditional put, so it is the one
//! commit point of an ingest and of a compaction.
//!
//! Every flush of an ingest gets a sequence number, increasing across all
//! streams. A compacted partition lists the flushes it merged (`parts`), so a
//! replay position — the last confirmed sequence number of each stream —
//! stays valid whatever compaction did.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ReservoirError;
use super::partition::Encoding;
use crate::store::remote::{Remote, Written};

pub const FORMAT: &str = "alto-reservoir-index";
pub const VERSION: u64 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    pub format: String,
    pub version: u64,
    pub tap: String,
    pub env: String,
    /// The next flush's sequence number.
    pub next_seq: u64,
    /// RFC 3339, UTC, of the last commit.
    pub updated: String,
    /// The tap's state: it claims exactly the data in `partitions`.
    pub state: Map<String, Value>,
    /// In ingest order (by the first part's sequence number).
    pub partitions: Vec<Partition>,
    /// The ingests' pipeline derivations, by key: what the flushes naming
    /// them were produced under. Absent in indexes written before
    /// provenance, and in the original's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pipelines: BTreeMap<String, IngestRecord>,
}

/// What an ingest's flushes were produced under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IngestRecord {
    /// The `~` hash rules the records were hashed by.
    pub hash_rules: Vec<String>,
    /// The run that first flushed under it.
    pub run: String,
    /// The tap's plugin key.
    pub tap: crate::eval::Key,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    pub stream: String,
    pub schema_id: String,
    /// Relative to the project's root in the remote.
    pub path: String,
    pub encoding: Encoding,
    /// The flushes it holds, in order.
    pub parts: Vec<Part>,
    /// Compressed size.
    pub bytes: u64,
    /// Decompressed size; unknown for the original's partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<u64>,
    /// blake3 of the compressed bytes, checked before a replay sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub seq: u64,
    /// The key of the ingest's pipeline derivation (see `Index::pipelines`);
    /// unknown for flushes written before provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::eval::Key>,
    /// Messages after the SCHEMA line; unknown for the original's partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

impl Partition {
    pub fn first_seq(&self) -> u64 {
        self.parts.first().map(|p| p.seq).unwrap_or(0)
    }
    pub fn last_seq(&self) -> u64 {
        self.parts.last().map(|p| p.seq).unwrap_or(0)
    }
    pub fn records(&self) -> Option<u64> {
        self.parts.iter().map(|p| p.records).sum()
    }

    /// Its compressed bytes, checked against the index's blake3; `None` if
    /// it does not exist (compacted away since the index was read).
    pub fn fetch(&self, remote: &Remote) -> Result<Option<Bytes>, ReservoirError> {
        let Some(v) = remote.read_project_file(&self.path)? else {
            return Ok(None);
        };
        if let Some(expected) = &self.blake3 {
            let actual = blake3::hash(&v.bytes).to_hex().to_string();
            if &actual != expected {
                return Err(ReservoirError::Damaged {
                    path: remote.describe_project_file(&self.path),
                    reason: format!("blake3 {actual}, the index says {expected}"),
                });
            }
        }
        Ok(Some(v.bytes))
    }

    /// The error for a partition the index names but that is not there.
    pub fn missing(&self, remote: &Remote) -> ReservoirError {
        ReservoirError::Damaged {
            path: remote.describe_project_file(&self.path),
            reason: "the index names it but it does not exist".into(),
        }
    }
}

/// Where the index of a tap lives, and how it was found.
pub struct Loaded {
    pub index: Index,
    /// `None`: no alto index yet (the first commit is create-only).
    pub version: Option<UpdateVersion>,
    pub rel: String,
    /// The original's `_reservoir.json` the index was read from, if any.
    pub legacy: Option<String>,
}

impl Index {
    pub fn rel(env: &str, tap: &str) -> String {
        format!("{}/_index.json", super::tap_dir(env, tap))
    }

    pub fn empty(env: &str, tap: &str) -> Index {
        Index {
            format: FORMAT.into(),
            version: VERSION,
            tap: tap.into(),
            env: env.into(),
            next_seq: 1,
            updated: crate::store::now_rfc3339(),
            state: Map::new(),
            partitions: Vec::new(),
            pipelines: BTreeMap::new(),
        }
    }

    /// Reads the index of a tap; else the original's `_reservoir.json` (and
    /// its `<tap>-to-reservoir` state), under `DEVELOPMENT` too when the
    /// environment is alto's default `dev`.
    pub fn load(remote: &Remote, env: &str, tap: &str) -> Result<Loaded, ReservoirError> {
        let rel = Index::rel(env, tap);
        if let Some(v) = remote.read_project_file(&rel)? {
            let index = Index::parse(&v.bytes, &remote.describe_project_file(&rel))?;
            return Ok(Loaded {
                index,
                version: Some(v.version),
                rel,
                legacy: None,
            });
        }
        let mut envs = vec![env];
        if env == "dev" {
            envs.push("DEVELOPMENT");
        }
        for e in envs {
            let legacy = format!("{}/_reservoir.json", super::tap_dir(e, tap));
            if let Some(v) = remote.read_project_file(&legacy)? {
                let mut index = Index::from_original(
                    &v.bytes,
                    env,
                    tap,
                    &remote.describe_project_file(&legacy),
                )?;
                let (_, state) = crate::run::StateStore::open(remote, e, tap, "reservoir")?;
                index.state = state;
                tracing::info!(
                    "reading the original alto's reservoir {} ({} partitions)",
                    remote.describe_project_file(&legacy),
                    index.partitions.len()
                );
                return Ok(Loaded {
                    index,
                    version: None,
                    rel,
                    legacy: Some(legacy),
                });
            }
        }
        let mut index = Index::empty(env, tap);
        let (_, state) = crate::run::StateStore::open(remote, env, tap, "reservoir")?;
        index.state = state;
        Ok(Loaded {
            index,
            version: None,
            rel,
            legacy: None,
        })
    }

    pub fn parse(bytes: &[u8], describe: &str) -> Result<Index, ReservoirError> {
        let bad = |message: String| ReservoirError::BadIndex {
            path: describe.to_string(),
            message,
        };
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad(format!("it has no `\"format\": \"{FORMAT}\"`")));
        }
        let found = v.get("version").and_then(Value::as_u64).unwrap_or(0);
        if found > VERSION {
            return Err(ReservoirError::NewerIndex {
                path: describe.to_string(),
                found,
                supported: VERSION,
            });
        }
        let index: Index = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        let mut last = 0;
        for p in &index.partitions {
            if p.parts.is_empty() || p.first_seq() >= index.next_seq {
                return Err(bad(format!(
                    "partition {} has no valid sequence numbers",
                    p.path
                )));
            }
            last = last.max(p.last_seq());
        }
        if last >= index.next_seq {
            return Err(bad("next_seq is behind its partitions".into()));
        }
        Ok(index)
    }

    /// The original's index: `{stream: [path, ...]}` (plus `__version__`).
    /// Flushes get sequence numbers in the order of their timestamped names,
    /// each stream's own order kept.
    pub fn from_original(
        bytes: &[u8],
        env: &str,
        tap: &str,
        describe: &str,
    ) -> Result<Index, ReservoirError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| ReservoirError::BadIndex {
            path: describe.to_string(),
            message: e.to_string(),
        })?;
        let Value::Object(m) = v else {
            return Err(ReservoirError::BadIndex {
                path: describe.to_string(),
                message: "it is not a JSON object".into(),
            });
        };
        let mut queues: Vec<(String, std::collections::VecDeque<String>)> = m
            .into_iter()
            .filter_map(|(stream, paths)| match paths {
                Value::Array(a) => Some((
                    stream,
                    a.into_iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        let mut index = Index::empty(env, tap);
        let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        loop {
            let next = queues
                .iter_mut()
                .filter(|(_, q)| !q.is_empty())
                .min_by_key(|(_, q)| q.front().map(|p| name(p)));
            let Some((stream, q)) = next else { break };
            let Some(path) = q.pop_front() else { break };
            let schema_id = path.rsplit('/').nth(1).unwrap_or_default().to_string();
            let seq = index.next_seq;
            index.next_seq += 1;
            index.partitions.push(Partition {
                stream: stream.clone(),
                schema_id,
                encoding: Encoding::of_path(&path),
                path,
                parts: vec![Part {
                    seq,
                    pipeline: None,
                    records: None,
                }],
                bytes: 0,
                raw_bytes: None,
                blake3: None,
                created: String::new(),
            });
        }
        Ok(index)
    }

    /// The hash rules flush `part` was ingested under, when recorded.
    pub fn flush_rules(&self, part: &Part) -> Option<&[String]> {
        let key = part.pipeline.as_ref()?;
        self.pipelines
            .get(key.as_str())
            .map(|r| r.hash_rules.as_slice())
    }

    /// The current `rules` (`~` rules as written) that some pending flush
    /// of `units` was ingested without, each with the partitions holding
    /// such flushes. Flushes without a record (older alto, the original)
    /// are not judged: what hashed them is unknown.
    pub fn unhashed(&self, units: &[Unit], rules: &[String]) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for rule in rules {
            let parsed = crate::singer::catalog::hash_rules(std::slice::from_ref(rule));
            let mut paths: Vec<String> = Vec::new();
            for u in units {
                if !parsed.iter().any(|r| r.matches_stream(&u.partition.stream)) {
                    continue;
                }
                let missing = u.parts.iter().any(|p| {
                    self.flush_rules(p)
                        .is_some_and(|had| !had.iter().any(|h| h == rule))
                });
                if missing && !paths.contains(&u.partition.path) {
                    paths.push(u.partition.path.clone());
                }
            }
            if !paths.is_empty() {
                out.push((rule.clone(), paths));
            }
        }
        out
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_default())
    }

    /// Streams in order of first appearance.
    pub fn streams(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.partitions {
            if !out.contains(&p.stream) {
                out.push(p.stream.clone());
            }
        }
        out
    }

    /// What a replay from `position` still has to send, in ingest order.
    pub fn pending(&self, position: &Position) -> Vec<Unit> {
        let mut units: Vec<Unit> = self
            .partitions
            .iter()
            .filter_map(|p| {
                let done = position.streams.get(&p.stream).copied().unwrap_or(0);
                if p.last_seq() <= done {
                    return None;
                }
                // Flushes already confirmed inside a compacted partition are skipped.
                let mut skip = 0;
                let mut parts = Vec::new();
                for part in &p.parts {
                    if part.seq <= done {
                        skip += part.records?;
                    } else {
                        parts.push(part.clone());
                    }
                }
                Some(Unit {
                    partition: p.clone(),
                    skip,
                    parts,
                })
            })
            .collect();
        units.sort_by_key(|u| u.parts.first().map(|p| p.seq).unwrap_or(0));
        units
    }
}

/// One partition to send: its first `skip` messages were confirmed already.
#[derive(Clone, Debug)]
pub struct Unit {
    pub partition: Partition,
    pub skip: u64,
    pub parts: Vec<Part>,
}

/// How far a target has confirmed a tap's reservoir: the last sequence
/// number of each stream. Kept at `state/<env>/<tap>-reservoir-to-<target>.json`
/// as `{"alto_reservoir": {"tap": ..., "streams": {...}}}`, the same value
/// alto sends the target in STATE messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Position {
    pub streams: BTreeMap<String, u64>,
}

pub const POSITION_KEY: &str = "alto_reservoir";

impl Position {
    pub fn to_state(&self, tap: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            POSITION_KEY.into(),
            serde_json::json!({"tap": tap, "streams": self.streams}),
        );
        m
    }

    /// The position in a state value, if it holds one.
    pub fn from_state(state: &Map<String, Value>) -> Option<Position> {
        let streams = state.get(POSITION_KEY)?.get("streams")?.as_object()?;
        let mut out = Position::default();
        for (k, v) in streams {
            out.streams.insert(k.clone(), v.as_u64()?);
        }
        Some(out)
    }

    /// Takes what `other` confirmed beyond this position.
    pub fn advance(&mut self, other: &Position) -> bool {
        let mut moved = false;
        for (k, v) in &other.streams {
            let e = self.streams.entry(k.clone()).or_insert(0);
            if *v > *e {
                *e = *v;
                moved = true;
            }
        }
        moved
    }
}

/// Writes the index over the version read (create-only when `None`).
pub fn commit(
    remote: &Remote,
    rel: &str,
    index: &mut Index,
    version: &mut Option<UpdateVersion>,
) -> Result<(), ReservoirError> {
    index.updated = crate::store::now_rfc3339();
    match remote.write_project_file(rel, index.to_bytes(), version.clone())? {
        Written::Done(v) => {
            *version = Some(v);
            Ok(())
        }
        Written::Conflict => Err(ReservoirError::IndexConflict {
            path: remote.describe_project_file(rel),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(stream: &str, seqs: &[(u64, u64)]) -> Partition {
        Partition {
            stream: stream.into(),
            schema_id: "x".into(),
            path: format!("{stream}/{}", seqs[0].0),
            encoding: Encoding::Zstd,
            parts: seqs
                .iter()
                .map(|(s, r)| Part {
                    seq: *s,
                    pipeline: None,
                    records: Some(*r),
                })
                .collect(),
            bytes: 1,
            raw_bytes: Some(1),
            blake3: None,
            created: String::new(),
        }
    }

    #[test]
    fn pending_skips_confirmed_flushes_even_inside_compacted_partitions() {
        let mut index = Index::empty("dev", "tap");
        index.partitions = vec![
            part("users", &[(1, 3), (3, 2), (5, 4)]),
            part("orders", &[(2, 10)]),
            part("orders", &[(4, 10)]),
        ];
        index.next_seq = 6;
        let mut pos = Position::default();
        assert_eq!(index.pending(&pos).len(), 3);
        pos.streams.insert("users".into(), 3);
        pos.streams.insert("orders".into(), 2);
        let units = index.pending(&pos);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].partition.stream, "orders");
        assert_eq!(units[1].skip, 5);
        assert_eq!(
            units[1].parts,
            vec![Part {
                seq: 5,
                pipeline: None,
                records: Some(4)
            }]
        );
        let bytes = index.to_bytes();
        assert!(Index::parse(&bytes, "x").is_ok());
    }

    #[test]
    fn unhashed_names_flushes_ingested_without_a_current_rule() {
        let key = |n: u8| crate::eval::Key::of(&serde_json::json!(n));
        let record = |rules: &[&str]| IngestRecord {
            hash_rules: rules.iter().map(|r| r.to_string()).collect(),
            run: "r".into(),
            tap: key(0),
        };
        let mut index = Index::empty("dev", "tap");
        let with = |mut p: Partition, k: Option<u8>| {
            p.parts[0].pipeline = k.map(key);
            p
        };
        index.partitions = vec![
            with(part("users", &[(1, 3)]), Some(1)),
            with(part("users", &[(2, 3)]), Some(2)),
            with(part("orders", &[(3, 3)]), Some(1)),
            with(part("users", &[(4, 3)]), None),
        ];
        index.next_seq = 5;
        index.pipelines.insert(key(1).to_string(), record(&[]));
        index
            .pipelines
            .insert(key(2).to_string(), record(&["~users.email"]));
        let units = index.pending(&Position::default());
        let rules = vec!["~users.email".to_string()];
        // The flush hashed by the rule passes, orders is not the rule's
        // stream, and a flush without a record is not judged.
        assert_eq!(
            index.unhashed(&units, &rules),
            vec![("~users.email".to_string(), vec!["users/1".to_string()])]
        );
        assert!(index.unhashed(&units, &[]).is_empty());
        // Written and read back, the records stay.
        let back = Index::parse(&index.to_bytes(), "x").unwrap();
        assert_eq!(back.pipelines, index.pipelines);
        assert_eq!(back.partitions[1].parts[0].pipeline, Some(key(2)));
    }

    #[test]
    fn original_index_keeps_each_streams_order() {
        let idx = Index::from_original(
            br#"{"users": ["reservoir/D/t/users/a/2.singer.gz", "reservoir/D/t/users/b/4.singer.gz"], "orders": ["reservoir/D/t/orders/c/3.singer.gz"], "__version__": 2}"#,
            "dev",
            "t",
            "x",
        )
        .unwrap();
        let seqs: Vec<(String, u64)> = idx
            .partitions
            .iter()
            .map(|p| (p.stream.clone(), p.first_seq()))
            .collect();
        assert_eq!(
            seqs,
            [
                ("users".into(), 1),
                ("orders".into(), 2),
                ("users".into(), 3)
            ]
        );
        assert_eq!(idx.partitions[2].schema_id, "b");
        assert_eq!(idx.partitions[0].encoding, Encoding::Gzip);
    }

    #[test]
    fn newer_and_broken_indexes_are_refused() {
        assert!(matches!(
            Index::parse(br#"{"format": "alto-reservoir-index", "version": 9}"#, "x"),
            Err(ReservoirError::NewerIndex { .. })
        ));
        assert!(matches!(
            Index::parse(b"{", "x"),
            Err(ReservoirError::BadIndex { .. })
        ));
    }
}
