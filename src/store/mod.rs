//! The store: the local store under the user's cache directory, shared by all
//! projects, and the remote binary cache (a directory, S3, GCS or Azure Blob)
//! shared by all machines. Objects are immutable and named by their derivation
//! key; a metadata record, written last, is the commit point.

pub mod archive;
pub mod gc;
pub mod key;
pub mod local;
pub mod options;
pub mod remote;
pub mod roots;
pub mod signing;
pub mod verify;

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use key::Key;

pub use local::{LocalStatus, LocalStore};
pub use remote::{Remote, RemoteObject, RemoteSettings};

/// The metadata record format written beside each object.
pub const META_FORMAT: &str = "alto-object/v1";

/// What alto records about a store object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub format: String,
    pub key: Key,
    /// `plugin`, `catalog`, `about` or `tool`.
    pub kind: String,
    /// The derivation's inputs, as hashed into the key.
    pub derivation: Value,
    /// blake3 of the content, hex.
    pub blake3: String,
    pub size: u64,
    /// RFC 3339, UTC.
    pub created: String,
    pub builder: BuilderInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuilderInfo {
    pub alto: String,
    pub host: String,
}

impl BuilderInfo {
    pub fn here() -> BuilderInfo {
        BuilderInfo {
            alto: env!("CARGO_PKG_VERSION").to_string(),
            host: hostname(),
        }
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum StoreError {
    #[error("{action} {}", path.display())]
    #[diagnostic(code(alto::store::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the remote store {remote} failed to {action} {path}")]
    #[diagnostic(code(alto::store::remote))]
    Remote {
        remote: String,
        action: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },

    #[error(
        "{object} from {remote} does not match its metadata: expected blake3 {expected}, got {actual}"
    )]
    #[diagnostic(
        code(alto::store::hash_mismatch),
        help(
            "the remote copy is damaged or was tampered with; `alto build --repair` rebuilds it locally and replaces it"
        )
    )]
    HashMismatch {
        object: String,
        remote: String,
        expected: String,
        actual: String,
    },

    #[error("the content {path} in {remote} does not decompress: {reason}")]
    #[diagnostic(
        code(alto::store::undecodable),
        help(
            "the remote copy is damaged or was tampered with; `alto build --repair` rebuilds it locally and replaces it"
        )
    )]
    Undecodable {
        remote: String,
        path: String,
        reason: String,
    },

    #[error("{archive} cannot be imported: {message}")]
    #[diagnostic(
        code(alto::store::bad_archive),
        help("nothing from it was imported; export it again from a machine you trust")
    )]
    BadArchive { archive: String, message: String },

    #[error("{archive} cannot be imported: {object} has no valid signature from a trusted key")]
    #[diagnostic(
        code(alto::store::untrusted_import),
        help(
            "nothing from it was imported; this project's `trusted_public_keys` accept only objects signed where the cache is built (`signing_key`): export them from there"
        )
    )]
    UntrustedImport { archive: String, object: String },

    #[error("the metadata record {path} is not valid: {message}")]
    #[diagnostic(code(alto::store::bad_meta))]
    BadMeta { path: String, message: String },

    #[error("the gc roots {path} cannot be read: {message}")]
    #[diagnostic(
        code(alto::store::bad_roots),
        help(
            "gc stopped rather than collect what this file may protect; fix or remove it (`alto store pin` rewrites the pins, `alto build` a project's registry)"
        )
    )]
    BadRoots { path: String, message: String },

    #[error("remote store setting `{key}`: {message}")]
    #[diagnostic(code(alto::store::setting))]
    Setting {
        key: String,
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("cannot start the I/O runtime")]
    #[diagnostic(code(alto::store::runtime))]
    Runtime(#[source] std::io::Error),
}

impl StoreError {
    /// 2 for a setting the user got wrong, 1 for a failure while working.
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::Setting { .. } => 2,
            _ => 1,
        }
    }

    pub fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// An error and its causes, `: `-separated (the remote's own words are
/// often three causes down).
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        next = c.source();
    }
    text
}

/// The user's cache directory for alto: `ALTO_CACHE_DIR`, else the OS cache
/// directory + `/alto`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ALTO_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        return home.join("Library/Caches/alto");
    }
    match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(x) => PathBuf::from(x).join("alto"),
        None => home.join(".cache/alto"),
    }
}

/// The machine's host name, for metadata and lock records.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// (year, month, day, hour, minute, second) in UTC for seconds since the epoch.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC (`2026-11-24T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Seconds since the epoch of an RFC 3339 UTC time as alto writes them
/// (`2026-11-24T12:00:00Z`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Seconds in a duration like `30d`, `12h`, `15m`, `10s` or `0`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return None,
    })
}

/// Seconds since the epoch, now.
pub fn now_epoch() -> u64 {
    now_secs()
}

/// Now as `YYYYmmddHHMMSS` UTC, the original's state history suffix.
pub fn now_compact() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-29T12:12:01Z"), Some(1_795_954_321));
        assert_eq!(parse_rfc3339("nonsense"), None);
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("3x"), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_795_954_321), (2026, 11, 29, 12, 12, 1));
    }
}
