//! Singer state: reading a state file (unwrapping Meltano's
//! `{"singer_state": ...}`), and merging what a target prints on stdout, one
//! JSON object per line, deeply into it. Only `\n` ends a line (`\r\n` too);
//! U+2028 and U+0085 inside JSON strings are data.

use serde_json::{Map, Value};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum StateError {
    #[error("the state is not valid JSON: {0}")]
    Json(String),
    #[error("the state must be a JSON object, not {0}")]
    NotObject(&'static str),
    #[error("the state file is empty (a half-written file?)")]
    Empty,
    #[error("its `singer_state` must be a JSON object, not {0}")]
    NotObjectInside(&'static str),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A state file's content: an object, unwrapped if Meltano wrapped it.
/// Anything else is refused, never read as "no state": that would restart the
/// sync from scratch and load everything again.
pub fn parse_file(bytes: &[u8]) -> Result<Map<String, Value>, StateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Empty);
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| StateError::Json(e.to_string()))?;
    match v {
        Value::Object(mut m) => match m.remove("singer_state") {
            Some(Value::Object(inner)) => Ok(inner),
            Some(other) => Err(StateError::NotObjectInside(kind(&other))),
            None => Ok(m),
        },
        other => Err(StateError::NotObject(kind(&other))),
    }
}

/// Deep merge: objects merge key by key, lists and scalars replace, keys are
/// never deleted.
pub fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// What one stdout line of a target means for the state.
#[derive(Debug, PartialEq)]
pub enum Line {
    State(Map<String, Value>),
    Blank,
    /// Not JSON, or JSON that is not an object: logged and skipped.
    Skipped(String),
}

/// Reads one line (without its `\n`; a trailing `\r` is dropped).
pub fn parse_line(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Blank;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => Line::State(m),
        Ok(other) => Line::Skipped(format!(
            "a JSON line that is {}, not an object",
            kind(&other)
        )),
        Err(_) => Line::Skipped("not JSON".into()),
    }
}

/// Merges every line of a target's stdout into `state`; returns the reasons
/// of the lines skipped.
pub fn merge_stdout(state: &mut Map<String, Value>, stdout: &[u8]) -> Vec<String> {
    let mut skipped = Vec::new();
    for line in stdout.split(|b| *b == b'\n') {
        match parse_line(line) {
            Line::State(m) => merge(state, m),
            Line::Blank => {}
            Line::Skipped(why) => skipped.push(why),
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn merging() {
        let mut s = obj(json!({"a": {"x": 1, "l": [1, 2]}, "b": 1, "c": {"d": 1}}));
        merge(
            &mut s,
            obj(json!({"a": {"y": 2, "l": [3]}, "b": {"n": 1}, "c": 5})),
        );
        assert_eq!(
            Value::Object(s),
            json!({"a": {"x": 1, "l": [3], "y": 2}, "b": {"n": 1}, "c": 5})
        );
    }

    #[test]
    fn lines() {
        assert_eq!(parse_line(b"  "), Line::Blank);
        assert!(matches!(parse_line(b"42"), Line::Skipped(_)));
        assert!(matches!(parse_line(b"[1]"), Line::Skipped(_)));
        assert!(matches!(parse_line(b"{\"a\": 1"), Line::Skipped(_)));
        assert!(matches!(parse_line(b"{\"a\": 1}\r"), Line::State(_)));
        // U+2028 inside a string is data, not a line break.
        assert!(matches!(
            parse_line("{\"a\": \"x\u{2028}y\"}".as_bytes()),
            Line::State(_)
        ));
    }

    #[test]
    fn files() {
        assert_eq!(
            parse_file(b"{\"singer_state\": {\"a\": 1}, \"x\": 2}").unwrap(),
            obj(json!({"a": 1}))
        );
        assert_eq!(parse_file(b"{}").unwrap(), Map::new());
        assert!(parse_file(b"[1]").is_err());
        assert!(parse_file(b"{").is_err());
        assert!(
            parse_file(b"{\"bookmarks\": {\"a\"").is_err(),
            "half-written"
        );
    }

    /// An empty file, or a Meltano wrapper around something else, would read
    /// as "no state" and restart the sync: refused.
    #[test]
    fn what_is_not_a_state_object_is_refused() {
        assert_eq!(parse_file(b""), Err(StateError::Empty));
        assert_eq!(parse_file(b" \n"), Err(StateError::Empty));
        assert_eq!(
            parse_file(b"{\"singer_state\": \"not an object\"}"),
            Err(StateError::NotObjectInside("a string"))
        );
        assert_eq!(
            parse_file(b"{\"singer_state\": null}"),
            Err(StateError::NotObjectInside("null"))
        );
        assert_eq!(parse_file(b"null"), Err(StateError::NotObject("null")));
    }
}
