//! Redaction: secret values scrubbed from text (logs, error messages)
//! before anyone sees it.

use std::sync::Arc;

use super::REDACTED;

/// Scrubs secret values from log lines.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        // Longest first, so a secret containing another is scrubbed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: Arc::new(secrets),
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
}
