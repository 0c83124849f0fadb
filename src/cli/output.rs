//! Writing command output to stdout. A closed pipe (`| head`) is not an error
//! worth reporting, so write failures are ignored.

use std::io::Write;

use serde_json::Value;

pub fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub fn print_json(v: &Value) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".to_string())
    ));
}
