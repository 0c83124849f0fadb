//! The reservoir: a tap's records extracted once into compressed partitions
//! (`reservoir/<env>/<tap>/<stream>/<schema_id>/<name>.singer.zst`) named by
//! a per-tap index that also holds the tap's state, so the two are committed
//! together; replays into any target from a confirmed position; listing and
//! compaction. The layout, index format and positions are in `store-spec.md`.

pub mod compact;
pub mod index;
pub mod ingest;
pub mod partition;
pub mod replay;

use miette::Diagnostic;
use thiserror::Error;

use crate::config::ConfigError;
use crate::run::RunError;
use crate::store::StoreError;

pub use index::{Index, Partition, Position};

#[derive(Debug, Error, Diagnostic)]
pub enum ReservoirError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] RunError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error("the reservoir index {path} is not valid: {message}")]
    #[diagnostic(
        code(alto::reservoir::bad_index),
        help(
            "the partitions it named are still there; restore the index from a copy, or move it away to start a new reservoir"
        )
    )]
    BadIndex { path: String, message: String },

    #[error(
        "the reservoir index {path} is version {found}; this alto reads up to version {supported}"
    )]
    #[diagnostic(
        code(alto::reservoir::newer_index),
        help("a newer alto wrote it; upgrade alto on this machine")
    )]
    NewerIndex {
        path: String,
        found: u64,
        supported: u64,
    },

    #[error("{path} changed while this run held it; not overwriting another writer's index")]
    #[diagnostic(
        code(alto::reservoir::conflict),
        help("another ingest or compaction of this tap committed meanwhile; run again")
    )]
    IndexConflict { path: String },

    #[error(
        "{tap} sent a {kind} for stream `{stream}` before its SCHEMA (line {line} of its output)"
    )]
    #[diagnostic(
        code(alto::reservoir::record_before_schema),
        help(
            "nothing of this run is committed and the tap's state is unchanged; the tap breaks the Singer protocol"
        )
    )]
    RecordBeforeSchema {
        tap: String,
        kind: String,
        stream: String,
        line: u64,
    },

    #[error("the partition {path} is damaged: {reason}")]
    #[diagnostic(
        code(alto::reservoir::damaged),
        help(
            "its content no longer matches the index; restore it from a copy. Replay positions are unchanged"
        )
    )]
    Damaged { path: String, reason: String },

    #[error("the replay position {path} is not valid: {message}")]
    #[diagnostic(
        code(alto::reservoir::bad_position),
        help("drop it with `alto clean reservoir:TAP-TARGET` to replay everything again")
    )]
    BadPosition { path: String, message: String },

    #[error(
        "the hash rule {rules} of {tap} did not apply when these partitions were ingested: {partitions}"
    )]
    #[diagnostic(
        code(alto::reservoir::unhashed),
        help(
            "their fields would reach the target unhashed. Ingest again under the rule (`alto {tap}:reservoir --full-refresh`) and replay what is new, or pass --allow-unhashed to replay these as they are"
        )
    )]
    Unhashed {
        tap: String,
        rules: String,
        partitions: String,
    },
}

impl ReservoirError {
    /// 2 when the input is at fault, 1 for a failure while working, 128 +
    /// the signal when interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReservoirError::Run(e) => e.exit_code(),
            ReservoirError::Store(e) => e.exit_code(),
            ReservoirError::Config(e) => e.exit_code(),
            e if e.is_bad_input() => 2,
            _ => 1,
        }
    }

    /// Whether the input (config, index, position) is at fault rather than the run.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReservoirError::Config(_)
                | ReservoirError::BadIndex { .. }
                | ReservoirError::NewerIndex { .. }
                | ReservoirError::BadPosition { .. }
                | ReservoirError::Unhashed { .. }
        )
    }
}

/// `reservoir/<env>/<tap>`, the directory of one tap's reservoir.
pub fn tap_dir(env: &str, tap: &str) -> String {
    format!("reservoir/{env}/{}", partition::segment(tap))
}
