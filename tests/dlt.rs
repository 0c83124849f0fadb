//! `alto extract TAP` (the tap alone, its messages on stdout) and `alto.dlt`,
//! the Python module that feeds dlt pipelines from it: the command with the
//! fixture tap here; the Python suite (tests/python/test_alto_dlt.py, DuckDB
//! through dlt) run in target/dlt-venv, made by `scripts/dlt-venv` (run by
//! .ci/run); without that venv the Python suite says so and skips.

mod common;

use std::path::{Path, PathBuf};

use common::{Machine, plugin_project};
use serde_json::Value;

fn config(select: &str, tap_extra: &str) -> String {
    format!(
        "default:\n  project_name: extract\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      select: {select}\n      config:\n        rows: 3\n{tap_extra}"
    )
}

/// stdout's lines as JSON messages.
fn messages(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn records(msgs: &[Value], stream: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
        .map(|m| m["record"].clone())
        .collect()
}

fn run_logs(p: &common::Project) -> Vec<PathBuf> {
    std::fs::read_dir(p.path().join(".alto/logs/dev"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// The tap's messages on stdout with hash rules applied, its stderr redacted
/// on stderr and in the run's log, and nothing committed.
#[test]
fn extract_writes_the_taps_messages_with_hash_rules() {
    let p = plugin_project(&config(
        "[\"*.*\", \"~users.email\"]",
        "        log_config: true\n        token: \"@format {env[FIXTURE_TOKEN]}\"\n",
    ));
    std::fs::write(p.path().join(".env"), "FIXTURE_TOKEN=sup3r-s3cret-value\n").unwrap();
    let m = Machine::new(true);
    let (code, out, err) = p.run_on(&m, &["extract", "tap-fixture"]);
    assert_eq!(code, 0, "{err}");
    let msgs = messages(&out);
    let users = records(&msgs, "users");
    assert_eq!(users.len(), 3);
    assert_eq!(
        users[0]["email"], "111d68d06e2d317b5a59c2c6c5bad808",
        "md5 of user1@example.com"
    );
    assert_eq!(records(&msgs, "orders").len(), 3);
    let last_state = msgs.iter().rev().find(|m| m["type"] == "STATE").unwrap();
    assert_eq!(last_state["value"]["bookmarks"]["orders"]["updated_at"], 3);
    assert!(err.contains("tap-fixture: config"), "{err}");
    assert!(!err.contains("sup3r-s3cret-value"), "{err}");
    let logs = run_logs(&p);
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(
        logs[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tap-fixture-to-stdout."),
        "{logs:?}"
    );
    assert!(!log.contains("sup3r-s3cret-value") && log.contains("********"));
    // The state is the reader's: none is kept by alto.
    assert!(
        !p.home
            .path()
            .join(".alto/extract/state/dev/tap-fixture-to-stdout.json")
            .exists()
    );

    // Without hash rules the bytes pass untouched; --select picks streams.
    std::fs::write(p.path().join("alto.yaml"), config("[\"*.*\"]", "")).unwrap();
    let (code, out, err) = p.run_on(
        &m,
        &[
            "extract",
            "tap-fixture",
            "--select",
            "users",
            "--name",
            "dlt_x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let msgs = messages(&out);
    assert_eq!(records(&msgs, "users")[0]["email"], "user1@example.com");
    assert!(records(&msgs, "orders").is_empty());
    assert!(
        run_logs(&p)
            .iter()
            .any(|l| l.to_string_lossy().contains("tap-fixture-to-dlt_x.")),
        "the run goes by --name"
    );
}

/// `--state FILE` is the tap's state (Meltano's wrapped form too); a bad
/// state file fails before the tap runs.
#[test]
fn extract_resumes_from_the_state_given() {
    let p = plugin_project(&config("[\"*.*\"]", ""));
    let m = Machine::new(true);
    let state = p.path().join("state.json");
    std::fs::write(
        &state,
        r#"{"singer_state": {"bookmarks": {"users": {"updated_at": 5}}}}"#,
    )
    .unwrap();
    let (code, out, err) = p.run_on(
        &m,
        &["extract", "tap-fixture", "--state", state.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let msgs = messages(&out);
    let ids = |s| -> Vec<i64> {
        records(&msgs, s)
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids("users"), vec![6, 7, 8]);
    assert_eq!(ids("orders"), vec![1, 2, 3]);

    std::fs::write(&state, "{\"bookmarks\": ").unwrap();
    let before = run_logs(&p).len();
    let (code, out, err) = p.run_on(
        &m,
        &["extract", "tap-fixture", "--state", state.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("state.json"), "{err}");
    assert_eq!(run_logs(&p).len(), before, "the tap did not run");
}

/// `--streams` lists what a loader needs; a stream the tap does not have
/// fails before anything runs, naming the ones it has.
#[test]
fn extract_streams_and_unknown_streams() {
    let p = plugin_project(&config("[\"users.*\", \"orders.id\"]", ""));
    let m = Machine::new(true);
    let v = p.json_on(&m, &["extract", "tap-fixture", "--streams"]);
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{v}");
    assert_eq!(streams[0]["stream"], "users");
    assert_eq!(streams[0]["key_properties"], serde_json::json!(["id"]));
    assert_eq!(streams[0]["replication_method"], "INCREMENTAL");
    assert_eq!(streams[0]["replication_key"], "updated_at");
    // The select rules apply: orders keeps its selected and automatic fields.
    assert_eq!(
        streams[1]["fields"],
        serde_json::json!(["id", "updated_at"])
    );

    let v = p.json_on(
        &m,
        &["extract", "tap-fixture", "--streams", "--select", "orders"],
    );
    assert_eq!(v["streams"].as_array().unwrap().len(), 1, "{v}");

    for args in [
        &["extract", "tap-fixture", "--select", "nope"][..],
        &[
            "extract",
            "tap-fixture",
            "--streams",
            "--select",
            "users",
            "--select",
            "nope.x",
        ][..],
    ] {
        let (code, out, err) = p.run_on(&m, args);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("has no stream `nope"), "{err}");
        assert!(err.contains("users, orders"), "{err}");
    }
    assert!(run_logs(&p).is_empty(), "nothing ran: {:?}", run_logs(&p));

    let (code, _, err) = p.run_on(&m, &["extract", "tap-fixture", "--name", "../x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--name"), "{err}");
    let (code, _, err) = p.run_on(&m, &["extract", "tap-nope"]);
    assert_eq!(code, 2, "{err}");
}

/// A failing tap makes extract fail (exit 1) with its last log lines.
#[test]
fn extract_fails_with_the_tap() {
    let p = plugin_project(&config("[\"*.*\"]", "        fail_after: 2\n"));
    let m = Machine::new(true);
    let (code, out, err) = p.run_on(&m, &["extract", "tap-fixture"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tap-fixture failed (exit code 1)"), "{err}");
    assert!(err.contains("failing as configured"), "{err}");
    assert_eq!(records(&messages(&out), "users").len(), 2);
}

/// `TAP:dlt_PIPELINE` names a dlt pipeline's mirrored state: set, shown and
/// listed like a pipeline's, without a target of that name.
#[test]
fn dlt_states_are_named_by_tap_and_pipeline() {
    let p = plugin_project(&config("[\"*.*\"]", ""));
    let file = p.path().join("s.json");
    std::fs::write(&file, r#"{"bookmarks": {"users": {"updated_at": 4}}}"#).unwrap();
    let (code, _, err) = p.run(&[
        "state",
        "set",
        "tap-fixture:dlt_shop",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        p.home
            .path()
            .join(".alto/extract/state/dev/tap-fixture-to-dlt_shop.json")
            .exists()
    );
    let shown = p.json(&["state", "show", "tap-fixture:dlt_shop"]);
    assert_eq!(shown["bookmarks"]["users"]["updated_at"], 4);
    let listed = p.json(&["--json", "state", "list"]);
    assert_eq!(listed["states"][0]["name"], "tap-fixture:dlt_shop");
    assert_eq!(listed["states"][0]["kind"], "dlt");
    // Not a tap, or not `dlt_`: still an unknown pipeline.
    assert_eq!(p.run(&["state", "show", "tap-nope:dlt_shop"]).0, 2);
    assert_eq!(p.run(&["state", "show", "tap-fixture:shop"]).0, 2);
}

/// target/dlt-venv's python, or `None` (and why) when it is not made.
fn dlt_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dlt-venv/bin/python");
    let ready = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dlt-venv/.installed");
    if python.exists() && ready.exists() {
        Some(python)
    } else {
        eprintln!(
            "SKIPPED: dlt is not installed in target/dlt-venv (run scripts/dlt-venv; \
             .ci/run does, unless the package registry is unreachable)"
        );
        None
    }
}

/// The Python suite: alto.dlt loads the fixture tap into DuckDB through dlt.
/// It tests this checkout: the binary cargo built (ALTO_BIN) and python/
/// (PYTHONPATH), with dlt and DuckDB from the venv.
#[test]
fn alto_dlt_python_suite() {
    let Some(python) = dlt_python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = Machine::new(true);
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("tests/python/test_alto_dlt.py"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        // No telemetry: tests reach nothing beyond loopback.
        .env("RUNTIME__DLTHUB_TELEMETRY", "false")
        .env("ALTO_BIN", env!("CARGO_BIN_EXE_alto"))
        .env("PYTHONPATH", root.join("python"))
        .env("ALTO_CACHE_DIR", m.cache.path())
        .env("ALTO_TEST_FIXTURES", root.join("fixtures/plugins"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python suite failed:\n{err}");
    assert!(err.contains("Ran 5 tests") && err.contains("OK"), "{err}");
}
