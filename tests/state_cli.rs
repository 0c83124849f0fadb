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

/// Each state commit and history copy records the pipeline derivation and
/// the run that wrote it, in a sidecar the state readers never see; a
/// rotated secret is the same pipeline, a changed config is named on the
/// next run; `alto build --dry-run` lists the jobs' pipelines.
#[test]
fn states_record_what_produced_them() {
    let p = plugin_project(
        "default:\n  project_name: provenance\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      select: ['*.*', '~users.email']\n      config:\n        rows: 3\n        password: '@format {env[TAP_SECRET]}'\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n  jobs:\n    nightly: [tap-fixture:target-fixture]\n",
    );
    const PIPE: &str = "tap-fixture:target-fixture";
    let m = Machine::new(true);
    let with_secret = |secret: &str, args: &[&str]| {
        let out = p
            .on(&m)
            .env("TAP_SECRET", secret)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let json = |secret: &str, args: &[&str]| -> Value {
        let (code, out, err) = with_secret(secret, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let (code, _, err) = with_secret("s3cret-1", &[PIPE]);
    assert_eq!(code, 0, "{err}");

    // The key `alto show` evaluates is the one the run recorded.
    let shown = json("s3cret-1", &["--json", "show", PIPE]);
    let key = shown["key"]
        .as_str()
        .expect("a key once discovered")
        .to_string();
    assert_eq!(shown["inputs"]["hash_rules"], json!(["~users.email"]));
    assert!(shown["inputs"]["catalog"].is_string(), "{shown}");
    let record = json("s3cret-1", &["state", "show", PIPE, "--provenance"]);
    assert_eq!(record["pipeline"], key.as_str(), "{record}");
    let run = record["run"].as_str().unwrap();
    assert!(run.starts_with("tap-fixture-to-target-fixture."), "{run}");
    let (_, human, _) = with_secret("s3cret-1", &["show", PIPE]);
    assert!(
        human.contains(&key) && human.contains("~users.email"),
        "{human}"
    );
    // Secrets are neither in the record nor in what `show` prints.
    let sidecar = p
        .home
        .path()
        .join(".alto/provenance/state/dev/tap-fixture-to-target-fixture.provenance.json");
    assert!(
        !std::fs::read_to_string(&sidecar)
            .unwrap()
            .contains("s3cret")
    );
    assert!(!human.contains("s3cret"));
    // The state file itself is the plain state readers expect.
    let state = show_on(&p, &m, PIPE);
    assert!(
        state.get("bookmarks").is_some() && state.get("pipeline").is_none(),
        "{state}"
    );
    // The history copy records it too; the sidecars are not states.
    let history = json("s3cret-1", &["--json", "state", "history", PIPE]);
    assert_eq!(history["copies"][0]["pipeline"], key.as_str(), "{history}");
    assert_eq!(history["copies"][0]["run"], run);
    let listed = json("s3cret-1", &["--json", "state", "list"]);
    assert_eq!(listed["states"].as_array().unwrap().len(), 1, "{listed}");
    // build --dry-run lists the job's pipeline beside the plugins.
    let dry = json("s3cret-1", &["--json", "build", "--dry-run"]);
    let row = dry
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "pipeline")
        .unwrap_or_else(|| panic!("{dry}"));
    assert_eq!(row["pipeline"], PIPE);
    assert_eq!(row["key"], key.as_str());

    // A rotated secret is the same pipeline: nothing to say on the next run.
    let rotated = json("rotated-2", &["--json", "show", PIPE]);
    assert_eq!(rotated["key"], key.as_str());
    let (code, _, err) = with_secret("rotated-2", &[PIPE]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("since the last run"), "{err}");
    let second = json("rotated-2", &["state", "show", PIPE, "--provenance"]);
    assert_eq!(second["pipeline"], key.as_str());
    assert_ne!(
        second["run"], run,
        "the record names the run that wrote the state"
    );

    // A changed config is a new pipeline, and the run says what changed.
    let yaml = std::fs::read_to_string(p.path().join("alto.yaml")).unwrap();
    std::fs::write(
        p.path().join("alto.yaml"),
        yaml.replace("destination: out", "destination: out2"),
    )
    .unwrap();
    let (code, _, err) = with_secret("rotated-2", &[PIPE]);
    assert_eq!(code, 0, "{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("since the last run"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains("the config of target-fixture changed"),
        "{err}"
    );
    assert!(
        said[0].contains(second["run"].as_str().unwrap()),
        "names the run of the old state: {err}"
    );
    let record = json("rotated-2", &["state", "show", PIPE, "--provenance"]);
    assert_ne!(record["pipeline"], key.as_str());

    // A state set by hand has no provenance; one restored gets its copy's back.
    let file = p.path().join("in.json");
    std::fs::write(&file, r#"{"bookmarks": {}}"#).unwrap();
    let (code, _, err) = with_secret("x", &["state", "set", PIPE, file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json("x", &["state", "show", PIPE, "--provenance"]),
        Value::Null
    );
    let first = history["copies"][0]["stamp"].as_str().unwrap();
    let (code, _, err) = with_secret("x", &["state", "restore", PIPE, "--at", first]);
    assert_eq!(code, 0, "{err}");
    let record = json("x", &["state", "show", PIPE, "--provenance"]);
    assert_eq!(record["pipeline"], key.as_str());
}

fn show_on(p: &Project, m: &Machine, name: &str) -> Value {
    p.json_on(m, &["state", "show", name])
}
