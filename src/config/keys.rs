//! The keys alto reads, so that a key it does not read is named rather than
//! silently ignored: a warning with the closest known key, or an error with
//! `--strict`. Every list here is what some part of alto actually reads; a key
//! added to the code must be added here too (the tests below name where each
//! is read).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::format::KeyPath;
use super::interpolate::{self, Piece};
use super::load::SETTING_KEYS;
use super::project::PluginKind;
use super::source::Origin;
use super::tree::key_matches;

/// Keys every plugin spec may hold.
const PLUGIN_KEYS: [&str; 10] = [
    // eval: what is built (`_version` busts the cache) and how it is entered.
    "pip_url",
    "_version",
    "executable",
    "entrypoint",
    // realize: the interpreter the plugin is built for.
    "python",
    // config::project: inheritance, rendering, the plugin's environment.
    "inherit_from",
    "config",
    "environment",
    "load_path",
    // pipeline, cli: which Singer options the plugin takes (`about`, `test`, ...).
    "capabilities",
];

/// Keys only a tap reads (besides the per-target override blocks, keyed by a
/// target's name).
const TAP_KEYS: [&str; 7] = [
    // singer::catalog via the pipeline: stream and field selection.
    "select",
    "metadata",
    // realize::catalog: extra inputs of the base catalog's key.
    "catalog_inputs",
    // pipeline: the original's Python stream maps (warned about, not run).
    "stream_maps",
    // reservoir::ingest: the tap's own ingest tuning.
    "reservoir_buffer_size",
    "reservoir_buffer_bytes",
    "reservoir_compression_level",
];

/// Keys only a utility reads.
const UTILITY_KEYS: [&str; 1] = [
    // config::jobs, cli::run: named commands (`alto run UTILITY:COMMAND`).
    "commands",
];

/// Whether alto reads `key` at the top of a section.
pub(crate) fn is_section_key(key: &str) -> bool {
    is_free(key) || SETTING_KEYS.contains(&key)
}

/// The keys a plugin of this kind reads (override blocks aside).
pub(crate) fn plugin_keys(kind: PluginKind) -> Vec<&'static str> {
    let mut out = PLUGIN_KEYS.to_vec();
    if kind == PluginKind::Tap {
        out.extend(TAP_KEYS);
    }
    if kind == PluginKind::Utility {
        out.extend(UTILITY_KEYS);
    }
    out
}

/// Keys starting with `_` are the user's (comments, YAML anchors such as
/// `_defaults`), except `_version` and near misses of it.
fn is_free(key: &str) -> bool {
    key.starts_with('_') && key != "_version" && distance(key, "_version") > 2
}

/// The optimal-string-alignment distance: Levenshtein with adjacent
/// transpositions counting one edit (`pip_ulr` is one edit from `pip_url`).
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `key`: one differing only in case or `-`/`_`,
/// else the nearest within a third of the key's length (at least one edit).
pub(crate) fn closest<'c>(key: &str, candidates: &[&'c str]) -> Option<&'c str> {
    if let Some(c) = candidates.iter().find(|c| key_matches(c, key)) {
        return Some(c);
    }
    let limit = (key.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&key.to_ascii_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A key alto does not read, found in the active environment's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownKey {
    /// Where it is, whatever the file: `taps.tap-x`, or the section (`default`).
    pub location: String,
    pub key: String,
    /// The key alto reads that it most likely means.
    pub suggestion: Option<String>,
    /// Set when the key is one another kind of plugin reads (`select` on a target).
    pub other_kind: Option<&'static str>,
    /// Where it is in the files.
    pub origin: Option<Origin>,
    /// The tree path of the key (for plugin specs), to locate it.
    pub path: KeyPath,
}

impl UnknownKey {
    /// The warning (and, with `--strict`, the error) text.
    pub fn message(&self) -> String {
        match (&self.other_kind, &self.suggestion) {
            (Some(kinds), _) => format!(
                "{}: `{}` applies to {kinds} only; alto ignores it here",
                self.location, self.key
            ),
            (None, Some(s)) => format!(
                "{}: unknown key `{}`; did you mean `{s}`?",
                self.location, self.key
            ),
            (None, None) => format!(
                "{}: unknown key `{}`; alto ignores it",
                self.location, self.key
            ),
        }
    }
}

/// Checks the own keys of one plugin spec (inherited keys are checked where
/// they are written). `targets` names every configured target: a tap's block
/// keyed by one is that target's override.
pub(crate) fn check_plugin(
    kind: PluginKind,
    name: &str,
    spec: &serde_json::Map<String, Value>,
    targets: &[String],
    references: &[KeyPath],
) -> Vec<UnknownKey> {
    let known = plugin_keys(kind);
    let mut candidates: Vec<&str> = known.clone();
    if kind == PluginKind::Tap {
        candidates.extend(targets.iter().map(String::as_str));
    }
    let mut out = Vec::new();
    for key in spec.keys() {
        if known.contains(&key.as_str())
            || is_free(key)
            || (kind == PluginKind::Tap && targets.iter().any(|t| t == key))
        {
            continue;
        }
        let path = vec![kind.section().to_string(), name.to_string(), key.clone()];
        if is_referenced(&path, references) {
            continue;
        }
        let other_kind = if kind != PluginKind::Tap && TAP_KEYS.contains(&key.as_str()) {
            Some("taps")
        } else if kind != PluginKind::Utility && UTILITY_KEYS.contains(&key.as_str()) {
            Some("utilities")
        } else {
            None
        };
        out.push(UnknownKey {
            location: format!("{}.{name}", kind.section()),
            key: key.clone(),
            suggestion: closest(key, &candidates).map(str::to_string),
            other_kind,
            origin: None,
            path,
        });
    }
    out
}

/// Checks one key at the top of a section.
pub(crate) fn check_section_key(
    section: &str,
    key: &str,
    origin: Origin,
    references: &[KeyPath],
) -> Option<UnknownKey> {
    if is_section_key(key) || is_referenced(&[key.to_string()], references) {
        return None;
    }
    let suggestion = if key.starts_with('_') {
        // `_version` is a plugin key; a near miss of it here is still a typo.
        Some("_version".to_string()).filter(|_| (1..=2).contains(&distance(key, "_version")))
    } else {
        closest(key, &SETTING_KEYS).map(str::to_string)
    };
    Some(UnknownKey {
        location: section.to_string(),
        key: key.to_string(),
        suggestion,
        other_kind: None,
        origin: Some(origin),
        path: vec![key.to_string()],
    })
}

/// Whether a `{this.…}` field of some `@format` string reads `path` (or
/// something inside it): a key kept only to be referenced is in use.
fn is_referenced(path: &[String], references: &[KeyPath]) -> bool {
    references
        .iter()
        .any(|r| r.len() >= path.len() && path.iter().zip(r).all(|(p, s)| key_matches(p, s)))
}

/// Every `{this.dotted.path}` of the `@format` strings in a value.
pub(crate) fn references(v: &Value) -> Vec<KeyPath> {
    let mut out = Vec::new();
    collect_references(v, &mut out);
    out
}

fn collect_references(v: &Value, out: &mut Vec<KeyPath>) {
    match v {
        Value::Object(m) => m.values().for_each(|c| collect_references(c, out)),
        Value::Array(a) => a.iter().for_each(|c| collect_references(c, out)),
        Value::String(s) => {
            if let Some(pieces) = interpolate::template(s).and_then(|t| interpolate::parse(t).ok())
            {
                for piece in pieces {
                    if let Piece::This(path) = piece {
                        out.push(path);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The span of `key` itself, given the span of its value: the formats locate
/// values, and the key is written just before (`key: v`, `key = v`,
/// `"key": v`, KDL's `key v`). The value's span when the key is not found there.
pub(crate) fn key_origin(text: &str, key: &str, value: Origin) -> Origin {
    let at = |offset| Origin {
        source: value.source,
        offset,
        len: key.len(),
    };
    let Some(before) = text.get(..value.offset) else {
        return value;
    };
    if text[value.offset..].starts_with(key) {
        return at(value.offset);
    }
    match before.rfind(key) {
        Some(i)
            if before[i + key.len()..]
                .chars()
                .all(|c| c.is_whitespace() || matches!(c, ':' | '=' | '"' | '\'')) =>
        {
            at(i)
        }
        _ => value,
    }
}

fn warned() -> &'static Mutex<HashSet<String>> {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    WARNED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Records `id` as said; whether it was new. The config may be loaded more
/// than once in one process (`build --all-envs`, `gc`): each warning is said once.
pub(crate) fn first_time(id: &str) -> bool {
    warned()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.to_string())
}

/// Warns once per process for each `id`.
pub fn warn_once(id: &str, message: &str) {
    if first_time(id) {
        tracing::warn!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        Origin {
            source: 0,
            offset: 0,
            len: 0,
        }
    }

    #[test]
    fn distances() {
        assert_eq!(distance("pip_ulr", "pip_url"), 1);
        assert_eq!(distance("buket", "bucket"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_are_close_or_absent() {
        let c = ["pip_url", "executable", "config", "capabilities"];
        assert_eq!(closest("pip_ulr", &c), Some("pip_url"));
        assert_eq!(closest("pip-url", &c), Some("pip_url"));
        assert_eq!(closest("PIP_URL", &c), Some("pip_url"));
        assert_eq!(closest("exectuable", &c), Some("executable"));
        assert_eq!(closest("capabilites", &c), Some("capabilities"));
        assert_eq!(closest("confg", &c), Some("config"));
        assert_eq!(closest("colour", &c), None);
        assert_eq!(closest("x", &c), None);
    }

    #[test]
    fn plugin_keys_are_checked_with_override_blocks_and_free_keys() {
        let spec = json!({
            "pip_ulr": "tap-x==1",
            "config": {},
            "target-y": {"batch": 1},
            "target-yy": {},
            "_defaults": {"a": 1},
            "_verison": "2",
            "select": ["*.*"],
            "reservoir_buffer_size": 10,
        });
        let found = check_plugin(
            PluginKind::Tap,
            "tap-x",
            spec.as_object().unwrap(),
            &["target-y".into()],
            &[],
        );
        let msgs: Vec<String> = found.iter().map(UnknownKey::message).collect();
        assert_eq!(
            msgs,
            vec![
                "taps.tap-x: unknown key `pip_ulr`; did you mean `pip_url`?",
                "taps.tap-x: unknown key `target-yy`; did you mean `target-y`?",
                "taps.tap-x: unknown key `_verison`; did you mean `_version`?",
            ]
        );
        assert_eq!(found[0].path, vec!["taps", "tap-x", "pip_ulr"]);
    }

    #[test]
    fn tap_keys_on_other_plugins_are_named_as_such() {
        let spec = json!({"select": ["a.*"], "executable": "t", "colour": "red"});
        let found = check_plugin(
            PluginKind::Target,
            "target-y",
            spec.as_object().unwrap(),
            &[],
            &[],
        );
        let msgs: Vec<String> = found.iter().map(UnknownKey::message).collect();
        assert_eq!(
            msgs,
            vec![
                "targets.target-y: `select` applies to taps only; alto ignores it here",
                "targets.target-y: unknown key `colour`; alto ignores it",
            ]
        );
    }

    #[test]
    fn commands_are_a_utilitys_key() {
        let spec = json!({"pip_url": "dbt-core", "commands": {"run": "run"}});
        let spec = spec.as_object().unwrap();
        assert!(check_plugin(PluginKind::Utility, "dbt", spec, &[], &[]).is_empty());
        let found = check_plugin(PluginKind::Tap, "tap-x", spec, &[], &[]);
        assert_eq!(
            found[0].message(),
            "taps.tap-x: `commands` applies to utilities only; alto ignores it here"
        );
    }

    #[test]
    fn section_keys_are_what_alto_reads() {
        for key in [
            "project_name",
            "load_path",
            "taps",
            "targets",
            "utilities",
            "mappers",
            "environment",
            "extensions",
            "filesystem",
            "bucket",
            "bucket_path",
            "filesystem_kwargs",
            "storage_options",
            "s3_settings",
            "gcs_settings",
            "azure_settings",
            "python",
            "pex",
            "signing_key",
            "trusted_public_keys",
            "untrusted_substitutes",
            "reservoir_buffer_size",
            "jobs",
            "schedules",
            "_anchors",
        ] {
            assert!(
                check_section_key("default", key, origin(), &[]).is_none(),
                "{key}"
            );
        }
        let u = check_section_key("default", "buket", origin(), &[]).unwrap();
        assert_eq!(
            u.message(),
            "default: unknown key `buket`; did you mean `bucket`?"
        );
        let u = check_section_key("prod", "tagets", origin(), &[]).unwrap();
        assert_eq!(u.suggestion.as_deref(), Some("targets"));
        assert!(check_section_key("default", "nfs_settings", origin(), &[]).is_some());
    }

    #[test]
    fn referenced_keys_are_in_use() {
        let tree = json!({
            "schema_prefix": "raw",
            "targets": {"t": {"config": {"schema": "@format {this.schema_prefix}_{this.load_path}"}}},
            "taps": {"tap-x": {"my_ns": "n", "config": {"ns": "@format {this.taps.tap_x.my_ns}"}}},
        });
        let refs = references(&tree);
        assert_eq!(refs.len(), 3);
        assert!(check_section_key("default", "schema_prefix", origin(), &refs).is_none());
        let spec = tree["taps"]["tap-x"].as_object().unwrap();
        assert!(check_plugin(PluginKind::Tap, "tap-x", spec, &[], &refs).is_empty());
    }

    #[test]
    fn spans_move_onto_the_key() {
        let o = |offset, len| Origin {
            source: 0,
            offset,
            len,
        };
        for (text, key) in [
            ("default:\n  buket: b\n", "buket"),
            ("[default]\nbuket = \"b\"\n", "buket"),
            ("{\"default\": {\"buket\": \"b\"}}", "buket"),
            ("default {\n    buket \"b\"\n}\n", "buket"),
            ("taps:\n  tap-x:\n    pip_ulr:\n      - a\n", "pip_ulr"),
        ] {
            // Where the formats put a value: its first character (a list's `-`).
            let value = match text.rfind("- a") {
                Some(dash) => dash,
                None if text.ends_with("\"}}") => text.rfind('b').unwrap() - 1,
                None => text.rfind('b').unwrap(),
            };
            let got = key_origin(text, key, o(value, 1));
            assert_eq!(&text[got.offset..got.offset + got.len], key, "{text}");
        }
        // Not just before the value: the value's span stays.
        let text = "buket: 1\nother: b\n";
        assert_eq!(key_origin(text, "buket", o(16, 1)), o(16, 1));
        assert_eq!(key_origin("ab", "b", o(9, 1)), o(9, 1));
    }

    #[test]
    fn warnings_are_said_once() {
        assert!(first_time("keys-test-once"));
        assert!(!first_time("keys-test-once"));
    }
}
