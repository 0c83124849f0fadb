//! Reading a target's stdout: the STATE lines it echoes are what it
//! confirmed stored; they are taken, merged and committed (at most once per
//! `ALTO_STATE_COMMIT_MS`) while the run goes on. Anything else is logged,
//! redacted, and skipped.

use std::io::BufReader;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::RunError;
use super::log::{Redactor, RunLog};
use crate::singer::line::Read;
use crate::singer::state;

/// How often state may be committed while a run goes on (`ALTO_STATE_COMMIT_MS`,
/// default 1000).
pub fn commit_interval() -> Duration {
    Duration::from_millis(
        std::env::var("ALTO_STATE_COMMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    )
}

/// What reading a target's stdout to its end gave.
#[derive(Default)]
pub struct Confirmations {
    pub commits: usize,
    /// STATE lines the target sent.
    pub states: usize,
    pub skipped: usize,
    /// The state moved since the last commit.
    pub dirty: bool,
    /// The first commit that failed; no commit is tried after it.
    pub error: Option<RunError>,
}

/// Reads a target's stdout: each state line goes to `take`, which says
/// whether it moved what is confirmed; anything else is logged (redacted) and
/// skipped. While the state moved, `commit` runs at most once per
/// [`commit_interval`]; the caller commits what is left once the target ended.
#[allow(clippy::too_many_arguments)]
pub fn read_confirmations<S>(
    out: impl std::io::Read,
    target: &str,
    redactor: &Redactor,
    log: &RunLog,
    confirmed: &mut S,
    mut take: impl FnMut(&mut S, Map<String, Value>) -> bool,
    mut commit: impl FnMut(&S) -> Result<(), RunError>,
) -> Confirmations {
    let mut read = Confirmations::default();
    let throttle = commit_interval();
    let mut last_commit = Instant::now();
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    let max = crate::singer::line::max_line_bytes();
    loop {
        line.clear();
        crate::singer::line::shrink(&mut line);
        match crate::singer::line::read_line(&mut reader, &mut line, max) {
            Ok(Read::Line(_)) => {}
            Ok(Read::End) | Err(_) => break,
            Ok(Read::TooLong) => {
                // The reader goes with this function: the target's stdout
                // closes and it stops.
                if read.error.is_none() {
                    read.error = Some(RunError::LineTooLong {
                        plugin: target.to_string(),
                        limit: max,
                    });
                }
                break;
            }
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        match state::parse_line(body) {
            state::Line::State(m) => {
                read.states += 1;
                if take(confirmed, m) {
                    read.dirty = true;
                }
            }
            state::Line::Blank => {}
            state::Line::Skipped(why) => {
                read.skipped += 1;
                let text = redactor.redact(String::from_utf8_lossy(body).trim_end());
                tracing::warn!(
                    "{target} stdout ({why}), skipped: {}",
                    super::log::printable(&text)
                );
                log.line(&format!("{target} (stdout) | {text}"));
            }
        }
        if read.dirty && read.error.is_none() && last_commit.elapsed() >= throttle {
            match commit(confirmed) {
                Ok(()) => {
                    read.commits += 1;
                    read.dirty = false;
                    last_commit = Instant::now();
                }
                Err(e) => read.error = Some(e),
            }
        }
    }
    read
}
