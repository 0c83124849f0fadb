//! Redaction: secret values scrubbed from text (logs, error messages)
//! before anyone sees it.

use std::sync::Arc;

use super::REDACTED;

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
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether there is anything to scrub.
    pub fn is_empty(&self) -> bool {
        self.secrets.iter().all(String::is_empty)
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

/// JSON string content with every character outside `' '..='~'` as
/// `\uXXXX` (UTF-16, as Python's `json.dumps` writes it, DEL included),
/// hex in lower or upper case.
pub(crate) fn json_ascii(s: &str, upper: bool) -> String {
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
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_secret_is_scrubbed_whole() {
        let r = Redactor::new(vec!["abc".into(), "abcdef".into(), String::new()]);
        assert_eq!(r.redact("x abcdef abc y"), "x ******** ******** y");
        assert!(!r.is_empty());
        assert!(Redactor::new(vec![String::new()]).is_empty());
    }

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
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_redacted() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";
        let r = Redactor::new(vec![pem.to_string()]);
        // A plugin logging the key line by line, or JSON-escaped in one line.
        assert_eq!(
            r.redact("tap | MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            format!("tap | {}", REDACTED)
        );
        let json = serde_json::to_string(pem).unwrap();
        assert!(!r.redact(&json).contains("MIIE"));
        assert!(!r.redact(&json).contains("BKcw"));
        // Short lines alone are not secrets.
        assert_eq!(r.redact("x = 1"), "x = 1");
    }
}
