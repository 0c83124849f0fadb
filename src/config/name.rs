//! Names alto turns into file and directory names: environments
//! (`.alto/logs/<env>/`, `state/<env>/`) and plugins (`<tap>-to-<target>.json`,
//! log files, catalogs). A name from a cloned project's config or `.env` must
//! not reach outside the project, so they are checked where they are read.

/// The longest name alto accepts, in bytes.
pub const MAX_NAME_LEN: usize = 100;

/// What alto says about the names it accepts.
pub const NAME_RULE: &str =
    "names become file names: use ASCII letters, digits, `-`, `_` and `.` (at most 100)";

/// Why `name` cannot name an environment or a plugin, if it cannot: it must
/// be 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-`, `_` or `.`, and not
/// `.` or `..`.
pub fn problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` names a directory"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        let what = match c {
            '/' | '\\' => format!("`{c}` separates directories"),
            '\0' => "it holds a NUL character".into(),
            c if c.is_whitespace() => "it holds spacing".into(),
            c if c.is_control() => format!("it holds the control character U+{:04X}", c as u32),
            c => format!("`{c}` is not allowed"),
        };
        return Some(what);
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "it is {} characters long, more than {MAX_NAME_LEN}",
            name.len()
        ));
    }
    None
}

/// A name as an error message shows it: a long one cut short, control
/// characters escaped.
pub fn shown(name: &str) -> String {
    let mut out: String = name.chars().take(60).flat_map(char::escape_debug).collect();
    if name.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_stay_file_names() {
        for ok in [
            "dev",
            "prod-eu",
            "tap-github--v2",
            "target_pg.1",
            "A9",
            "_ci",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        let long = "x".repeat(MAX_NAME_LEN);
        assert_eq!(problem(&long), None);
        for (bad, why) in [
            ("", "empty"),
            (".", "names a directory"),
            ("..", "names a directory"),
            ("../../x", "`/` separates"),
            ("a/b", "`/` separates"),
            ("..\\x", "`\\` separates"),
            ("a\0b", "NUL"),
            ("a b", "spacing"),
            ("a\u{7}", "U+0007"),
            ("é", "`é` is not allowed"),
            ("a:b", "`:` is not allowed"),
        ] {
            let p = problem(bad).unwrap_or_default();
            assert!(p.contains(why), "{bad:?}: {p}");
        }
        let p = problem(&"x".repeat(MAX_NAME_LEN + 1)).unwrap_or_default();
        assert!(p.contains("101 characters"), "{p}");
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"y".repeat(70)).chars().count(), 61);
    }
}
