//! Record counts per stream, as plugins report them on stderr: the Singer
//! SDK's `METRIC: {"type": "counter", "metric": "record_count", "value": N,
//! "tags": {"stream": ...}}` log lines (singer-python's tag the stream as
//! `endpoint`). Each line counts the records since the counter's last line,
//! so a stream's count is the sum of its lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// Records per stream, summed as lines arrive (shared with the stderr reader).
pub type RecordCounts = Arc<Mutex<BTreeMap<String, u64>>>;

#[derive(Deserialize)]
struct Point {
    #[serde(rename = "type")]
    kind: String,
    metric: String,
    value: serde_json::Value,
    #[serde(default)]
    tags: Tags,
}

#[derive(Deserialize, Default)]
struct Tags {
    stream: Option<String>,
    endpoint: Option<String>,
}

/// The stream and count of a `record_count` counter line; `None` for any
/// other line (other metrics, timers, text).
pub fn record_count(line: &str) -> Option<(String, u64)> {
    let at = line.find("METRIC:")?;
    let p: Point = serde_json::from_str(line[at + "METRIC:".len()..].trim()).ok()?;
    if p.kind != "counter" || p.metric != "record_count" {
        return None;
    }
    let n = p
        .value
        .as_u64()
        .or_else(|| p.value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))?;
    Some((p.tags.stream.or(p.tags.endpoint)?, n))
}

/// Adds a line's count, if it holds one, to `counts`.
pub fn add_line(counts: &RecordCounts, line: &str) {
    if let Some((stream, n)) = record_count(line)
        && let Ok(mut c) = counts.lock()
    {
        *c.entry(stream).or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_and_singer_python_counters_are_read() {
        let sdk = r#"2026-01-01 10:00:00,000 | INFO     | singer_sdk.metrics   | METRIC: {"type": "counter", "metric": "record_count", "value": 7, "tags": {"stream": "users", "context": {}}}"#;
        assert_eq!(record_count(sdk), Some(("users".into(), 7)));
        let py = r#"INFO METRIC: {"type": "counter", "metric": "record_count", "value": 3, "tags": {"endpoint": "orders"}}"#;
        assert_eq!(record_count(py), Some(("orders".into(), 3)));
        for other in [
            r#"INFO METRIC: {"type": "timer", "metric": "sync_duration", "value": 1.5, "tags": {"stream": "users"}}"#,
            r#"INFO METRIC: {"type": "counter", "metric": "http_request_count", "value": 2, "tags": {"stream": "users"}}"#,
            r#"INFO METRIC: {"type": "counter", "metric": "record_count", "value": 2, "tags": {}}"#,
            "INFO METRIC: not json",
            "INFO Starting sync",
        ] {
            assert_eq!(record_count(other), None, "{other}");
        }
        let counts = RecordCounts::default();
        add_line(&counts, sdk);
        add_line(&counts, sdk);
        add_line(&counts, py);
        assert_eq!(
            *counts.lock().unwrap(),
            BTreeMap::from([("orders".into(), 3), ("users".into(), 14)])
        );
    }
}
