//! A run's log (`.alto/logs/<env>/<name>.<stamp>.log`, uploaded to
//! `logs/<env>/`), the plugins' stderr streamed into it and to the console,
//! redacted (see [`crate::config::Redactor`]).

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

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
                eprintln!("{name} | {line}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("plain text ✓"), "plain text ✓");
        assert_eq!(printable("a\u{1b}[2Jb\u{7}"), "a\\u{1b}[2Jb\\u{7}");
    }
}
