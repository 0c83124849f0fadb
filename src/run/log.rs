//! A run's log (`.alto/logs/<env>/<name>.<stamp>.log`, uploaded to
//! `logs/<env>/`), the plugins' stderr streamed into it and to the console
//! (as text, or as JSON lines with `--log-format json`), redacted (see
//! [`crate::config::Redactor`]); its end record; and finding the logs of
//! past runs, here and in the remote (`alto logs`).

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{RunError, io_err};
use crate::config::Project;
use crate::singer::metric::RecordCounts;

pub use crate::config::Redactor;

/// Text from a plugin made safe for alto's own messages: control characters
/// (a terminal's escape sequences among them) are shown escaped.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Reports a line of a plugin's stdout that alto skips (not a Singer
/// message): on the console redacted, cut to 200 characters and with control
/// characters escaped; in the run's log redacted, in full.
pub fn skipped_line(
    plugin: &str,
    line_no: u64,
    why: &str,
    line: &[u8],
    redactor: &Redactor,
    log: Option<&RunLog>,
) {
    let text = redactor.redact(String::from_utf8_lossy(line).trim_end());
    let short: String = text.chars().take(200).collect();
    tracing::warn!(
        "{plugin} line {line_no} ({}), skipped: {}",
        printable(why),
        printable(&short)
    );
    if let Some(log) = log {
        log.line(&format!(
            "{plugin} (stdout line {line_no}, skipped) | {text}"
        ));
    }
}

/// Whether console lines are JSON (`--log-format json`).
static JSON_CONSOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the plugins' console lines JSON objects (`--log-format json`).
pub fn set_json_console(on: bool) {
    JSON_CONSOLE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// One console line as JSON: `{"timestamp", "level", "plugin", "message"}`.
pub fn json_line(level: &str, plugin: Option<&str>, message: &str) -> String {
    serde_json::json!({
        "timestamp": crate::store::now_rfc3339(),
        "level": level,
        "plugin": plugin,
        "message": message,
    })
    .to_string()
}

/// The last lines a plugin wrote on stderr, for error messages.
pub type Tail = Arc<Mutex<Vec<String>>>;

/// Streams a plugin's stderr to the console (prefixed) and to the run's log,
/// summing the record counts its `METRIC` lines report into `counts`.
pub fn pump_stderr(
    name: String,
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<std::fs::File>>,
    redactor: Redactor,
    echo: bool,
    tail: Tail,
    counts: RecordCounts,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use crate::singer::line::{Read, read_line, shrink, skip_line};
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            shrink(&mut buf);
            // A log line is cut at 64 KiB: the rest is read and dropped.
            let cut = match read_line(&mut reader, &mut buf, 64 << 10) {
                Ok(Read::Line(_)) => false,
                Ok(Read::End) | Err(_) => break,
                Ok(Read::TooLong) => {
                    if skip_line(&mut reader).is_err() {
                        break;
                    }
                    true
                }
            };
            if cut {
                buf.extend_from_slice(" [line cut at 64 KiB]".as_bytes());
            }
            let text = String::from_utf8_lossy(&buf);
            if !cut {
                crate::singer::metric::add_line(&counts, &text);
            }
            let line = redactor.redact(text.trim_end_matches(['\n', '\r']));
            if echo {
                if JSON_CONSOLE.load(std::sync::atomic::Ordering::Relaxed) {
                    eprintln!("{}", json_line("INFO", Some(&name), &line));
                } else {
                    eprintln!("{name} | {line}");
                }
            }
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{name} | {line}");
            }
            if let Ok(mut t) = tail.lock() {
                t.push(line);
                if t.len() > 40 {
                    t.remove(0);
                }
            }
        }
    })
}

/// A run's log under `.alto/logs/<env>/`, uploaded to `logs/<env>/` when the run ends.
pub struct RunLog {
    pub path: PathBuf,
    name: String,
    pub file: Arc<Mutex<std::fs::File>>,
}

impl RunLog {
    /// The run's id: its log's name without `.log` (`<run>.<stamp>[-N]`),
    /// what `alto logs` lists.
    pub fn run_id(&self) -> &str {
        self.name.strip_suffix(".log").unwrap_or(&self.name)
    }

    pub fn create(project: &Project, env: &str, pipeline: &str) -> Result<RunLog, RunError> {
        let dir = project.root.join(".alto/logs").join(env);
        std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        // Runs within one second get distinct logs: never overwrite one.
        let stamp = crate::store::now_compact();
        let mut n = 1;
        loop {
            let name = if n == 1 {
                format!("{pipeline}.{stamp}.log")
            } else {
                format!("{pipeline}.{stamp}-{n}.log")
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(&name))
            {
                Ok(f) => {
                    return Ok(RunLog {
                        path: dir.join(&name),
                        name,
                        file: Arc::new(Mutex::new(f)),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io_err("cannot create", &dir.join(&name))(e)),
            }
        }
    }

    /// Appends a line.
    pub fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Copies the log to the remote; a failure is only a warning.
    pub fn upload(&self, remote: &crate::store::Remote, env: &str) {
        if let Ok(bytes) = std::fs::read(&self.path)
            && let Err(e) = remote
                .overwrite_project_file(&format!("logs/{env}/{}", self.name), Bytes::from(bytes))
        {
            tracing::warn!("could not upload the log: {e}");
        }
    }
}

/// How the last line of a finished run's log starts; the rest is [`RunEnd`] as JSON.
pub const END_PREFIX: &str = "alto | end ";

/// How a run ended, as its log's last line records it (`alto logs` reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// The exit code alto gave.
    pub exit: u8,
    pub seconds: f64,
    /// Records moved, when alto counted them (ingests and replays).
    pub records: Option<u64>,
    pub state_commits: Option<usize>,
    /// The error the run ended with, redacted.
    pub error: Option<String>,
}

impl RunEnd {
    /// The end record of a log's text, if the run got to write one.
    pub fn of_log(text: &str) -> Option<RunEnd> {
        let last = text.lines().rev().find(|l| l.starts_with(END_PREFIX))?;
        serde_json::from_str(&last[END_PREFIX.len()..]).ok()
    }
}

/// A run's log waiting for the run to end: once it exists, whatever way
/// the run ends, its end record is written and the log uploaded.
#[derive(Default)]
pub struct PendingLog(Option<Pending>);

/// What writing a run's end record needs.
struct Pending {
    log: Arc<RunLog>,
    remote: Arc<crate::store::Remote>,
    env: String,
    redactor: Redactor,
    start: Instant,
}

impl PendingLog {
    pub fn set(
        &mut self,
        log: &Arc<RunLog>,
        remote: &Arc<crate::store::Remote>,
        env: &str,
        redactor: &Redactor,
        start: Instant,
    ) {
        self.0 = Some(Pending {
            log: log.clone(),
            remote: remote.clone(),
            env: env.to_string(),
            redactor: redactor.clone(),
            start,
        });
    }

    /// Writes the end record and uploads the log (a failure is a warning).
    pub fn finish(
        self,
        exit: u8,
        error: Option<String>,
        records: Option<u64>,
        state_commits: Option<usize>,
    ) {
        let Some(Pending {
            log,
            remote,
            env,
            redactor,
            start,
        }) = self.0
        else {
            return;
        };
        let end = RunEnd {
            exit,
            seconds: (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            records,
            state_commits,
            error: error.map(|e| redactor.redact(&e)),
        };
        log.line(&format!(
            "{END_PREFIX}{}",
            serde_json::to_string(&end).unwrap_or_default()
        ));
        log.upload(&remote, &env);
    }
}

/// The log of a past run, here (`.alto/logs/<env>/`) and/or in the remote
/// (`logs/<env>/`).
#[derive(Debug, Clone)]
pub struct PastRun {
    /// The file name without `.log`: `<name>.<stamp>[-N]`.
    pub id: String,
    /// The run's name: `<tap>-to-<target>`, `<tap>-to-reservoir`, ...
    pub name: String,
    /// `YYYYmmddHHMMSS[-N]`: when it started.
    pub stamp: String,
    pub local: Option<PathBuf>,
    pub remote: bool,
}

impl PastRun {
    /// When the run started, as RFC 3339.
    pub fn started(&self) -> String {
        let t = &self.stamp;
        match (
            t.get(0..4),
            t.get(4..6),
            t.get(6..8),
            t.get(8..10),
            t.get(10..12),
            t.get(12..14),
        ) {
            (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
                format!("{y}-{mo}-{d}T{h}:{mi}:{s}Z")
            }
            _ => t.clone(),
        }
    }
}

/// Every run's log of an environment, here and in the remote (when one is
/// given), oldest first.
pub fn past_runs(
    project: &Project,
    remote: Option<&crate::store::Remote>,
    env: &str,
) -> Result<Vec<PastRun>, RunError> {
    let mut runs: std::collections::BTreeMap<(String, u64, String), PastRun> = Default::default();
    let mut add = |file: &str, local: Option<PathBuf>| {
        let Some((name, Some(stamp))) = super::state_store::split_stamped(file, ".log") else {
            return;
        };
        let (second, n) = super::state_store::stamp_order(stamp);
        let entry = runs
            .entry((second, n, name.to_string()))
            .or_insert_with(|| PastRun {
                id: format!("{name}.{stamp}"),
                name: name.to_string(),
                stamp: stamp.to_string(),
                local: None,
                remote: false,
            });
        match local {
            Some(path) => entry.local = Some(path),
            None => entry.remote = true,
        }
    };
    let dir = project.root.join(".alto/logs").join(env);
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                add(&file, Some(e.path()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot read", &dir)(e)),
    }
    if let Some(remote) = remote {
        for f in remote.list_project_files(&format!("logs/{env}"))? {
            add(&f.name, None);
        }
    }
    Ok(runs.into_values().collect())
}

/// A past run's log: the local copy, else the remote's.
pub fn read_past_run(
    run: &PastRun,
    remote: Option<&crate::store::Remote>,
    env: &str,
) -> Result<Option<String>, RunError> {
    if let Some(path) = &run.local {
        return match std::fs::read(path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) => Err(io_err("cannot read", path)(e)),
        };
    }
    match remote {
        Some(remote) if run.remote => Ok(remote
            .read_project_file(&format!("logs/{env}/{}.log", run.id))?
            .map(|v| String::from_utf8_lossy(&v.bytes).into_owned())),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_record_is_the_last_one() {
        let end = RunEnd {
            exit: 1,
            seconds: 2.5,
            records: Some(3),
            state_commits: None,
            error: Some("tap-x failed".into()),
        };
        let text = format!(
            "tap-x | {END_PREFIX}not this\n{END_PREFIX}{}\n",
            serde_json::to_string(&end).unwrap()
        );
        assert_eq!(RunEnd::of_log(&text), Some(end));
        assert_eq!(RunEnd::of_log("tap-x | hello\n"), None);
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("plain text ✓"), "plain text ✓");
        assert_eq!(printable("a\u{1b}[2Jb\u{7}"), "a\\u{1b}[2Jb\\u{7}");
    }
}
