//! The original alto's recorded state handling (fixtures/golden/state_*):
//! state files (Meltano's wrapper unwrapped) and target stdout merged deeply,
//! line by line. Where the original is wrong (see fixtures/golden/README.md)
//! the expected value is alto's, with the reason beside it.

use std::path::Path;

use alto::singer::state;
use serde_json::{Map, Value, json};

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// (case) → alto's expected state where it must differ from the original.
fn divergence(case: &str) -> Option<Value> {
    match case {
        // Only `\n` ends a line: U+2028 and U+0085 inside JSON strings are data.
        "state_unicode_line_separator_splits_line" => Some(json!({"bookmarks": {
            "x": {"v": 3, "note": "a\u{2028}b"},
            "y": {"v": "next\u{0085}line"},
            "z": {"v": "escaped\u{2028} and \t are fine"}
        }})),
        // A stdout line that is not a JSON object is skipped, never a crash.
        "state_error_non_object_json_line" => Some(json!({"bookmarks": {"x": {"v": 2}}})),
        "state_error_json_scalar_line" => Some(json!({"bookmarks": {"x": {"v": 1}}})),
        // alto always reads a state file through the same unwrapping.
        "state_update_without_ensure_wrapped" => Some(json!({"bookmarks": {"x": {"v": 2}}})),
        // The original failed on an in-memory stream; the lines merge as from a file.
        "state_parse_bytesio" => Some(json!({"a": 1, "nested": {"c": 3}})),
        _ => None,
    }
}

#[test]
fn golden_state_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !case.starts_with("state_") {
            continue;
        }
        let meta: Value = serde_json::from_slice(&read(&dir, "case.json").unwrap()).unwrap();
        let op = meta["op"].as_str().unwrap_or_default();
        let input = read(&dir, "input_state.json");
        let mut st = match &input {
            Some(bytes) => state::parse_file(bytes).unwrap(),
            None => Map::new(),
        };
        let (got, want) = match op {
            "ensure" => (
                Value::Object(st.clone()),
                read(&dir, "expected_after_ensure.json")
                    .or_else(|| read(&dir, "expected_state.json"))
                    .map(|b| serde_json::from_slice(&b).unwrap()),
            ),
            "parse_path" | "parse_bytesio" => {
                let mut fresh = Map::new();
                state::merge_stdout(&mut fresh, &read(&dir, "target_stdout.txt").unwrap());
                (
                    Value::Object(fresh),
                    read(&dir, "expected_return.json").map(|b| serde_json::from_slice(&b).unwrap()),
                )
            }
            _ => {
                state::merge_stdout(
                    &mut st,
                    &read(&dir, "target_stdout.txt").unwrap_or_default(),
                );
                (
                    Value::Object(st),
                    read(&dir, "expected_state.json").map(|b| serde_json::from_slice(&b).unwrap()),
                )
            }
        };
        let want = divergence(&case).or(want);
        let Some(want) = want else {
            failures.push(format!("{case}: no expectation"));
            continue;
        };
        checked += 1;
        if obj(got.clone()) != obj(want.clone()) {
            failures.push(format!("{case}: expected {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} state cases checked");
}
