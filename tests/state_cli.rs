//! `alto state list|history|restore|clear|copy|merge|export|import`, and a
//! restore followed by a run of the fixture plugins that resumes from the
//! restored bookmark.

mod common;

use common::{Machine, Project, plugin_project};
use serde_json::{Value, json};

const CONFIG: &str = "default:\n  project_name: states\n  taps:\n    tap-a: {pip_url: tap-a}\n    tap-b: {pip_url: tap-b}\n  targets:\n    target-x: {pip_url: target-x}\n";

fn project() -> Project {
    Project::new(&[("alto.yaml", CONFIG)])
}

fn state_dir(p: &Project) -> std::path::PathBuf {
    p.home.path().join(".alto/states/state/dev")
}

/// `alto state set NAME` from a JSON value; must succeed.
fn set(p: &Project, name: &str, state: Value) {
    let file = p.path().join("in.json");
    std::fs::write(&file, state.to_string()).unwrap();
    let (code, _, err) = p.run(&["state", "set", name, file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

fn show(p: &Project, name: &str) -> Value {
    p.json(&["state", "show", name])
}

fn stamps(p: &Project, name: &str) -> Vec<String> {
    p.json(&["--json", "state", "history", name])["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stamp"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_history_restore_clear_and_copy() {
    let p = project();
    let (code, _, err) = p.run(&["state", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no state in the dev environment"), "{err}");

    set(&p, "tap-a:target-x", json!({"bookmarks": {"s": 1}}));
    set(&p, "tap-a:target-x", json!({"bookmarks": {"s": 2}}));
    set(&p, "tap-b-target-x", json!({"bookmarks": {"t": 9}}));
    // An ingest's mirror and a replay position are states of the environment too.
    std::fs::write(state_dir(&p).join("tap-a-to-reservoir.json"), "{}").unwrap();
    std::fs::write(state_dir(&p).join("tap-a-reservoir-to-target-x.json"), "{}").unwrap();

    let listed = p.json(&["--json", "state", "list"]);
    let names: Vec<(&str, &str)> = listed["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("reservoir:tap-a-target-x", "replay"),
            ("tap-a:reservoir", "ingest"),
            ("tap-a:target-x", "pipeline"),
            ("tap-b:target-x", "pipeline"),
        ]
    );
    let first = &listed["states"][2];
    assert!(first["size"].as_u64().unwrap() > 0);
    assert!(first["last_commit"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["file"], "state/dev/tap-a-to-target-x.json");
    let (code, out, _) = p.run(&["state", "list", "tap-a:*"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tap-a:target-x") && out.contains("tap-a:reservoir"),
        "{out}"
    );
    assert!(!out.contains("tap-b"), "{out}");

    // Each set kept a copy: the history, oldest first.
    let copies = stamps(&p, "tap-a:target-x");
    assert_eq!(copies.len(), 2, "{copies:?}");
    let (code, out, _) = p.run(&["state", "history", "tap-a:target-x"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");

    // Restore the first copy: the current state is kept as a new copy first.
    let (code, _, err) = p.run(&["state", "restore", "tap-a:target-x", "--at", &copies[0]]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is the copy"), "{err}");
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 1}}));
    let after = stamps(&p, "tap-a:target-x");
    assert_eq!(after.len(), 3, "{after:?}");
    // ... so the restore can itself be undone.
    let (code, _, err) = p.run(&["state", "restore", "tap-a:target-x", "--at", &after[2]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 2}}));

    // An unknown stamp names the copies there are; exit 2, nothing changed.
    let (code, _, err) = p.run(&[
        "state",
        "restore",
        "tap-a:target-x",
        "--at",
        "20000101000000",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&copies[0]), "{err}");
    let (code, _, _) = p.run(&["state", "restore", "tap-a:target-x", "--at", "../../x"]);
    assert_eq!(code, 2);
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 2}}));

    // An ingest's state is its reservoir's: never written here.
    let (code, _, err) = p.run(&["state", "clear", "tap-a:reservoir"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reservoir"), "{err}");

    // copy: FROM's state becomes TO's (with a history copy).
    let (code, _, err) = p.run(&["state", "copy", "tap-a:target-x", "tap-b:target-x"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&p, "tap-b:target-x"), json!({"bookmarks": {"s": 2}}));
    assert_eq!(stamps(&p, "tap-b:target-x").len(), 2);

    // clear drops the active state only, like `alto clean`.
    let (code, _, err) = p.run(&["state", "clear", "tap-a:target-x"]);
    assert_eq!(code, 0, "{err}");
    assert!(!state_dir(&p).join("tap-a-to-target-x.json").exists());
    assert_eq!(stamps(&p, "tap-a:target-x").len(), 4);
    assert_eq!(show(&p, "tap-a:target-x"), json!({}));
    // Copying from nothing is refused.
    let (code, _, err) = p.run(&["state", "copy", "tap-a:target-x", "tap-b:target-x"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(show(&p, "tap-b:target-x"), json!({"bookmarks": {"s": 2}}));
    // Names that are no pipeline are user errors.
    assert_eq!(p.run(&["state", "history", "tap-z:target-x"]).0, 2);
}

#[test]
fn merge_is_meltanos_deep_merge() {
    let p = project();
    set(
        &p,
        "tap-a:target-x",
        json!({"bookmarks": {"s": {"updated_at": 1, "keep": true}, "t": {"ids": [1, 2]}}, "currently_syncing": "s"}),
    );
    let file = p.path().join("patch.json");
    // Meltano's wrapped form is read as is.
    std::fs::write(
        &file,
        json!({"singer_state": {"bookmarks": {"s": {"updated_at": 7}, "t": {"ids": [3]}, "u": {"n": 1}}, "currently_syncing": null}}).to_string(),
    )
    .unwrap();
    let (code, _, err) = p.run(&["state", "merge", "tap-a:target-x", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        show(&p, "tap-a:target-x"),
        json!({"bookmarks": {"s": {"updated_at": 7, "keep": true}, "t": {"ids": [3]}, "u": {"n": 1}}, "currently_syncing": null})
    );
    // A file that is not a state is refused, the state untouched.
    std::fs::write(&file, "[1]").unwrap();
    let (code, _, err) = p.run(&["state", "merge", "tap-a:target-x", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        show(&p, "tap-a:target-x")["bookmarks"]["s"]["updated_at"],
        7
    );
}

#[test]
fn export_and_import_refuse_what_changed_since() {
    let p = project();
    set(&p, "tap-a:target-x", json!({"bookmarks": {"s": 1}}));
    set(&p, "tap-b:target-x", json!({"bookmarks": {"t": 1}}));
    std::fs::write(state_dir(&p).join("tap-a-to-reservoir.json"), "{}").unwrap();

    let (code, all, err) = p.run(&["state", "export"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(doc["format"], "alto-state-export");
    let stems: Vec<&String> = doc["states"].as_object().unwrap().keys().collect();
    // An ingest's state lives in its reservoir: not exported.
    assert_eq!(stems, ["tap-a-to-target-x", "tap-b-to-target-x"]);
    let (_, only_a, _) = p.run(&["state", "export", "tap-a:*"]);
    let only_a: Value = serde_json::from_str(&only_a).unwrap();
    assert_eq!(only_a["states"].as_object().unwrap().len(), 1);
    let export = p.path().join("export.json");
    std::fs::write(&export, &all).unwrap();
    let export_s = export.to_str().unwrap();

    // Nothing changed: nothing to write.
    let (code, _, err) = p.run(&["state", "import", export_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 states imported; 2 already as imported"),
        "{err}"
    );

    // One state moved on since the export: the import is refused as a whole,
    // so not even the dropped one is written back.
    set(&p, "tap-a:target-x", json!({"bookmarks": {"s": 5}}));
    assert_eq!(p.run(&["state", "clear", "tap-b:target-x"]).0, 0);
    let (code, _, err) = p.run(&["state", "import", export_s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tap-a:target-x"), "{err}");
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 5}}));
    assert_eq!(show(&p, "tap-b:target-x"), json!({}));

    // --force overwrites it; the state it replaced stays in the history.
    let before = stamps(&p, "tap-a:target-x").len();
    let (code, _, err) = p.run(&["state", "import", "--force", export_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 1}}));
    assert_eq!(show(&p, "tap-b:target-x"), json!({"bookmarks": {"t": 1}}));
    assert_eq!(stamps(&p, "tap-a:target-x").len(), before + 1);

    // An export edited by hand is imported over the state it was taken from.
    let mut edited = doc.clone();
    edited["states"]["tap-a-to-target-x"]["state"] = json!({"bookmarks": {"s": 0}});
    std::fs::write(&export, edited.to_string()).unwrap();
    let (code, _, err) = p.run(&["state", "import", export_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show(&p, "tap-a:target-x"), json!({"bookmarks": {"s": 0}}));

    // Into another environment (a fresh place): written as is.
    let (code, _, err) = p.run(&["--env", "prod", "state", "import", export_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        p.json(&["--env", "prod", "state", "show", "tap-b:target-x"]),
        json!({"bookmarks": {"t": 1}})
    );

    // Documents that are not exports, or name files outside the state
    // directory, are refused.
    for bad in [
        "[]".to_string(),
        json!({"format": "alto-state-export", "version": 9, "states": {}}).to_string(),
        json!({"format": "alto-state-export", "version": 1, "states": {"../x": {"fingerprint": "", "state": {}}}}).to_string(),
        json!({"format": "alto-state-export", "version": 1, "states": {"a-to-b": {"state": {}}}}).to_string(),
    ] {
        std::fs::write(&export, &bad).unwrap();
        let (code, _, err) = p.run(&["state", "import", export_s]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("cannot be imported"), "{err}");
    }
    assert!(!p.home.path().join(".alto/states/state/x.json").exists());
}

/// A restore followed by a run: the tap resumes from the restored bookmark.
#[test]
fn a_run_resumes_from_a_restored_bookmark() {
    let p = plugin_project(
        "default:\n  project_name: restore\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      config:\n        rows: 5\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n",
    );
    let m = Machine::new(true);
    for _ in 0..2 {
        let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
        assert_eq!(code, 0, "{err}");
    }
    let users = || -> Vec<i64> {
        std::fs::read_to_string(p.path().join("out/users.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(users(), (1..=10).collect::<Vec<_>>());
    let history = p.json_on(&m, &["state", "history", "tap-fixture:target-fixture"]);
    let copies = history["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{history}");
    let first = copies[0]["stamp"].as_str().unwrap();

    let (code, _, err) = p.run_on(
        &m,
        &[
            "state",
            "restore",
            "tap-fixture:target-fixture",
            "--at",
            first,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let state = p.json_on(&m, &["state", "show", "tap-fixture:target-fixture"]);
    assert_eq!(state["bookmarks"]["users"]["updated_at"], 5);

    // The run starts after the restored bookmark: rows 6..10 again.
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(users()[10..], [6, 7, 8, 9, 10]);
    let state = p.json_on(&m, &["state", "show", "tap-fixture:target-fixture"]);
    assert_eq!(state["bookmarks"]["users"]["updated_at"], 10);
}
