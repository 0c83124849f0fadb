//! A run's log (`.alto/logs/<env>/<name>.<stamp>.log`, uploaded to
//! `logs/<env>/`), the plugins' stderr streamed into it and to the console,
//! and the redaction of secret values from every line.

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{RunError, io_err};
use crate::config::Project;

/// Scrubs secret values from log lines, in every form a plugin may print
/// them: raw, JSON-escaped (as serde and most writers do, and with `\uXXXX`
/// for every non-ASCII character, as Python's `json.dumps` does),
/// URL-encoded, and, for a multi-line secret (a PEM key), each line.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

/// Lines of a multi-line secret shorter than this are not redacted on their
/// own (`-----END KEY-----` is no secret, and short lines match too much).
const MIN_LINE: usize = 8;

impl Redactor {
    pub fn new(secrets: Vec<String>) -> Redactor {
        let mut forms: Vec<String> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| forms_of(s))
            .collect();
        // Longest first, so a secret containing another is scrubbed whole.
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor {
            secrets: Arc::new(forms),
        }
    }

    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in self.secrets.iter() {
            if !s.is_empty() && out.contains(s.as_str()) {
                out = out.replace(s.as_str(), crate::config::REDACTED);
            }
        }
        out
    }
}

/// Every form of `secret` a log line may hold.
fn forms_of(secret: &str) -> Vec<String> {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // What URL components leave alone (RFC 3986 unreserved).
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let one = |s: &str| -> Vec<String> {
        let mut v = vec![s.to_string()];
        let mut escaped: Vec<String> = vec![json_ascii(s, false), json_ascii(s, true)];
        if let Ok(j) = serde_json::to_string(s) {
            escaped.push(j[1..j.len() - 1].to_string());
        }
        // Some writers escape `/` too.
        for e in escaped {
            if e.contains('/') {
                v.push(e.replace('/', "\\/"));
            }
            v.push(e);
        }
        v.push(utf8_percent_encode(s, NON_ALPHANUMERIC).to_string());
        let component = utf8_percent_encode(s, COMPONENT).to_string();
        v.push(component.replace("%20", "+"));
        v.push(component);
        v
    };
    let mut forms = one(secret);
    if secret.contains('\n') {
        for line in secret.lines().map(|l| l.trim_end_matches('\r').trim()) {
            if line.len() >= MIN_LINE {
                forms.extend(one(line));
            }
        }
    }
    forms.retain(|f| !f.is_empty());
    forms
}

/// JSON string content with every non-ASCII character as `\uXXXX` (UTF-16,
/// as Python's `json.dumps` writes it), hex in lower or upper case.
fn json_ascii(s: &str, upper: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = if upper {
                        write!(out, "\\u{:04X}", u)
                    } else {
                        write!(out, "\\u{:04x}", u)
                    };
                }
            }
            c => out.push(c),
        }
    }
    out
}

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

/// Streams a plugin's stderr to the console (prefixed) and to the run's log.
pub fn pump_stderr(
    name: String,
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<std::fs::File>>,
    redactor: Redactor,
    echo: bool,
    tail: Tail,
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

    /// A secret is scrubbed in every form a plugin may print it.
    #[test]
    fn secrets_are_redacted_in_every_form() {
        let secret = "p\"a\\ss/wörd ✓ 🔑";
        let r = Redactor::new(vec![secret.to_string()]);
        let forms = [
            secret.to_string(),
            // serde_json / most writers
            serde_json::to_string(secret).unwrap(),
            // Python's json.dumps (ensure_ascii)
            r#""p\"a\\ss/w\u00f6rd \u2713 \ud83d\udd11""#.to_string(),
            r#""p\"a\\ss\/w\u00F6rd \u2713 \uD83D\uDD11""#.to_string(),
            // URL-encoded
            "p%22a%5Css%2Fw%C3%B6rd%20%E2%9C%93%20%F0%9F%94%91".to_string(),
            "p%22a%5Css%2Fw%C3%B6rd+%E2%9C%93+%F0%9F%94%91".to_string(),
        ];
        for f in forms {
            let line = format!("tap | config: {{\"password\": {f}}} done");
            let out = r.redact(&line);
            assert!(
                !out.contains("ss/w") && !out.contains("ss\\/w") && !out.contains("Css"),
                "{f} -> {out}"
            );
            assert!(out.contains(crate::config::REDACTED), "{out}");
        }
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_redacted() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        let r = Redactor::new(vec![pem.to_string()]);
        // A plugin logging the key line by line, or JSON-escaped in one line.
        assert_eq!(
            r.redact("tap | MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            format!("tap | {}", crate::config::REDACTED)
        );
        let json = serde_json::to_string(pem).unwrap();
        assert!(!r.redact(&json).contains("MIIE"));
        assert!(!r.redact(&json).contains("BKcw"));
        // Short lines alone are not secrets.
        assert_eq!(r.redact("x = 1"), "x = 1");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("plain text ✓"), "plain text ✓");
        assert_eq!(printable("a\u{1b}[2Jb\u{7}"), "a\\u{1b}[2Jb\\u{7}");
    }
}
