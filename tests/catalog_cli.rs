//! `alto catalog apply`, offline, the way the golden catalog cases are written.

mod common;

use common::Project;
use serde_json::Value;

#[test]
fn apply_prints_the_runtime_catalog() {
    let case = common::fixtures().join("golden/catalog_all_minus_url");
    let p = Project::new(&[]);
    let out = p
        .alto()
        .args(["catalog", "apply"])
        .arg(case.join("base_catalog.json"))
        .arg("--rules")
        .arg(case.join("rules.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(case.join("expected_catalog.json")).unwrap())
            .unwrap();
    let ids = |c: &Value| -> Vec<String> {
        c["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["tap_stream_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&catalog), ids(&expected));
    for (got, want) in catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["streams"].as_array().unwrap())
    {
        let keys = |s: &Value| -> Vec<String> {
            s["schema"]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let (mut a, mut b) = (keys(got), keys(want));
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}

#[test]
fn bad_inputs_are_diagnostics() {
    let p = Project::new(&[
        ("base.json", "{\"streams\": [\n  {\"tap_stream_id\": }\n]}"),
        ("rules.json", "{\"select\": [\"*.*\"]}"),
    ]);
    let (code, _, err) = p.run(&["catalog", "apply", "base.json", "--rules", "rules.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("base.json:2:"), "{err}");
    let p = Project::new(&[
        (
            "base.json",
            "{\"streams\": [{\"stream\": \"s\", \"schema\": 5}]}",
        ),
        ("rules.json", "{\"select\": [\"*.*\"]}"),
    ]);
    let (code, _, err) = p.run(&["catalog", "apply", "base.json", "--rules", "rules.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("base.json"), "{err}");
    let p = Project::new(&[
        ("base.json", "{\"streams\": []}"),
        ("rules.json", "{\"select\": 3}"),
    ]);
    let (code, _, err) = p.run(&["catalog", "apply", "base.json", "--rules", "rules.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"));
}
