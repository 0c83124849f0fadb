//! The one place command output goes through: data on stdout (human text or
//! `--json`), status lines on stderr unless `-q` or `--json`, and progress
//! bars only on a terminal. A closed pipe (`| head`) is not an error worth
//! reporting, so write failures are ignored.

use std::io::{IsTerminal, Write};

use serde_json::Value;

use super::Global;

/// How a command's output is shown, from the global flags.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    json: bool,
    quiet: u8,
    /// Status lines as JSON lines (`--log-format json`).
    json_lines: bool,
}

impl Printer {
    pub fn new(g: &Global) -> Printer {
        Printer {
            json: g.json,
            quiet: g.quiet,
            json_lines: g.log_format == super::LogFormat::Json,
        }
    }

    /// Whether data is to be printed as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether status lines are shown (not with `-q` or `--json`).
    pub fn verbose(&self) -> bool {
        !self.json && self.quiet == 0
    }

    /// Whether progress bars are drawn: on a terminal, and only when status
    /// lines are shown.
    pub fn progress(&self) -> bool {
        self.verbose() && std::io::stderr().is_terminal()
    }

    /// A status line on stderr, unless quiet or `--json`.
    pub fn status(&self, text: &str) {
        if self.verbose() {
            if self.json_lines {
                eprintln!("{}", crate::run::log::json_line("INFO", None, text));
            } else {
                eprintln!("{text}");
            }
        }
    }

    /// A command's result: `data` as JSON with `--json`, else `text` as a
    /// status line.
    pub fn result(&self, text: impl FnOnce() -> String, data: impl FnOnce() -> Value) {
        if self.json {
            print_json(&data());
        } else {
            self.status(&text());
        }
    }
}

/// Text on stdout.
pub fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".to_string())
    ));
}

/// A size as people read it.
pub fn human_bytes(n: u64) -> String {
    if n >= 10 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 10 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}
