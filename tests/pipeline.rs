//! `alto tap:target` end to end with real plugins: the fixture tap into the
//! fixture target and into target-jsonl from the registry; incremental runs,
//! clean, faults, a killed alto, concurrent runs, hash rules and secrets.

mod common;

use std::path::Path;

use common::{Machine, plugin_project};
use serde_json::Value;

fn config(tap_extra: &str, target_extra: &str) -> String {
    // A key given twice is an error: `rows` is 5 unless the test sets it.
    let rows = if tap_extra.contains("rows:") {
        ""
    } else {
        "        rows: 5\n"
    };
    format!(
        "default:\n  project_name: pipes\n  load_path: raw\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      config:\n{rows}{tap_extra}  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: \"@format out/{{this.load_path}}\"\n{target_extra}    target-jsonl:\n      pip_url: target-jsonl==0.1.4\n      config:\n        destination_path: jsonl\n        do_timestamp_file: false\n"
    )
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(path: &Path) -> Vec<i64> {
    lines(path)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn state_file(p: &common::Project) -> std::path::PathBuf {
    p.home
        .path()
        .join(".alto/pipes/state/dev/tap-fixture-to-target-fixture.json")
}

fn bookmark(state: &Value, stream: &str) -> i64 {
    state["bookmarks"][stream]["updated_at"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn incremental_runs_and_clean() {
    let p = plugin_project(&config("", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tap-fixture | tap-fixture: sent 10 records"),
        "{err}"
    );
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl")),
        vec![1, 2, 3, 4, 5]
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_file(&p)).unwrap()).unwrap();
    assert_eq!(bookmark(&state, "users"), 5);
    assert_eq!(
        p.json_on(&m, &["state", "show", "tap-fixture:target-fixture"]),
        state
    );

    // The second run is incremental.
    let (code, _, err) = p.run_on(&m, &["run", "tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl")),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&p.path().join("out/raw/orders.jsonl")),
        (1..=10).collect::<Vec<_>>()
    );
    let history: Vec<_> = std::fs::read_dir(state_file(&p).parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tap-fixture-to-target-fixture.2"))
        .collect();
    assert!(!history.is_empty(), "no history copy");

    // clean drops the active state only; the next run starts over.
    assert_eq!(p.run_on(&m, &["clean", "tap-fixture:target-fixture"]).0, 0);
    assert!(!state_file(&p).exists());
    assert!(
        std::fs::read_dir(state_file(&p).parent().unwrap())
            .unwrap()
            .count()
            >= history.len()
    );
    assert_eq!(p.run_on(&m, &["tap-fixture:target-fixture"]).0, 0);
    assert_eq!(ids(&p.path().join("out/raw/users.jsonl")).len(), 15);
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl"))[10..],
        [1, 2, 3, 4, 5]
    );

    // --full-refresh ignores the state and commits the new one.
    assert_eq!(
        p.run_on(&m, &["run", "--full-refresh", "tap-fixture:target-fixture"])
            .0,
        0
    );
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl"))[15..],
        [1, 2, 3, 4, 5]
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_file(&p)).unwrap()).unwrap();
    assert_eq!(bookmark(&state, "users"), 5);

    // The logs are kept locally and uploaded.
    assert!(
        std::fs::read_dir(p.path().join(".alto/logs/dev"))
            .unwrap()
            .count()
            >= 4
    );
    assert!(p.home.path().join(".alto/pipes/logs/dev").is_dir());
    // Rendered configs are private and removed after the run.
    assert_eq!(
        std::fs::read_dir(p.path().join(".alto/run"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn into_target_jsonl_from_the_registry() {
    let p = plugin_project(&config("        schema_version: 2\n", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-jsonl"]);
    assert_eq!(code, 0, "{err}");
    let users = lines(&p.path().join("jsonl/users.jsonl"));
    assert_eq!(users.len(), 5);
    assert_eq!(users[0]["tier"], "gold");
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-jsonl"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&p.path().join("jsonl/users.jsonl")).len(), 10);
}

#[test]
fn hash_rules_hash_values_and_schemas() {
    let p = plugin_project(&config("      select: [\"*.*\", \"~users.email\"]\n", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    let users = lines(&p.path().join("out/raw/users.jsonl"));
    // md5("user1@example.com")
    assert_eq!(users[0]["email"], "111d68d06e2d317b5a59c2c6c5bad808");
    assert_eq!(users[0]["name"], "user1");
}

#[test]
fn a_failing_tap_keeps_only_confirmed_state() {
    let p = plugin_project(&config("        fail_after: 7\n", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tap-fixture failed (exit code 1)"), "{err}");
    assert!(err.contains("failing as configured"), "{err}");
    let state: Value = serde_json::from_slice(&std::fs::read(state_file(&p)).unwrap()).unwrap();
    assert_eq!(bookmark(&state, "users"), 5);
    assert_eq!(
        bookmark(&state, "orders"),
        ids(&p.path().join("out/raw/orders.jsonl")).len() as i64
    );
}

#[test]
fn a_failing_target_keeps_only_confirmed_state() {
    let p = plugin_project(&config("", "        fail_after: 3\n"));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("target-fixture failed"), "{err}");
    let stored = ids(&p.path().join("out/raw/users.jsonl"));
    assert_eq!(stored, vec![1, 2, 3]);
    if let Ok(bytes) = std::fs::read(state_file(&p)) {
        let state: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(bookmark(&state, "users") <= 3, "{state}");
    }
}

#[test]
fn a_killed_alto_leaves_valid_state_that_claims_only_stored_data() {
    use std::os::unix::process::CommandExt;
    let p = plugin_project(&config("        rows: 400\n        sleep: 0.002\n", ""));
    let m = Machine::new(true);
    // Build first so the kill lands mid-pipeline.
    p.json_on(&m, &["build"]);
    for delay_ms in [900u64, 1700] {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("alto"));
        cmd.current_dir(p.path())
            .env("HOME", p.home.path())
            .env("ALTO_CACHE_DIR", m.cache.path())
            .env("ALTO_STATE_COMMIT_MS", "50")
            .env("ALTO_LOCK_TTL", "1")
            .args(["-q", "tap-fixture:target-fixture"])
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // Only alto dies; its plugins see their pipes close.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(300));
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        // Let the dead run's lock expire.
        std::thread::sleep(std::time::Duration::from_millis(1200));
        if let Ok(bytes) = std::fs::read(state_file(&p)) {
            let state: Value =
                serde_json::from_slice(&bytes).expect("the state file is valid JSON");
            let stored = ids(&p.path().join("out/raw/users.jsonl"));
            let confirmed = bookmark(&state, "users");
            assert!(
                stored.iter().filter(|i| **i <= confirmed).count() as i64 >= confirmed,
                "state claims {confirmed}, stored {stored:?}"
            );
        }
    }
    // A later run takes over the dead run's lock once it expires, and resumes
    // after the confirmed state: every record arrives, none is skipped.
    let out = p
        .on(&m)
        .env("ALTO_LOCK_TTL", "1")
        .args(["-q", "run", "--wait", "tap-fixture:target-fixture"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_file(&p)).unwrap()).unwrap();
    let mut stored = ids(&p.path().join("out/raw/users.jsonl"));
    stored.sort();
    stored.dedup();
    assert_eq!(stored, (1..=bookmark(&state, "users")).collect::<Vec<_>>());
    assert!(bookmark(&state, "users") >= 400);
}

fn spawn(p: &common::Project, m: &Machine, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("alto"))
        .current_dir(p.path())
        .env("HOME", p.home.path())
        .env("ALTO_CACHE_DIR", m.cache.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn one_pipeline_runs_once_at_a_time() {
    let p = plugin_project(&config("        rows: 30\n        sleep: 0.05\n", ""));
    let m = Machine::new(true);
    p.json_on(&m, &["build"]);
    let first = spawn(&p, &m, &["tap-fixture:target-fixture"]);
    let lock = p
        .home
        .path()
        .join(".alto/pipes/locks/dev/tap-fixture-to-target-fixture.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is already running on"), "{err}");
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lock.exists(), "the lock was not released");
    assert_eq!(ids(&p.path().join("out/raw/users.jsonl")).len(), 30);
}

#[test]
fn state_files_in_and_out() {
    let p = plugin_project(&config("", "        chatty: true\n"));
    let m = Machine::new(true);
    // A Meltano `state get` export is accepted as is.
    std::fs::write(p.path().join("meltano.json"), r#"{"singer_state": {"bookmarks": {"users": {"updated_at": 3}, "orders": {"updated_at": 8}}}}"#).unwrap();
    let (code, _, err) = p.run_on(
        &m,
        &["state", "set", "tap-fixture:target-fixture", "meltano.json"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    // A non-JSON stdout line of the target is logged, never fatal.
    assert!(err.contains("skipped: target-fixture starting"), "{err}");
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl")),
        vec![4, 5, 6, 7, 8]
    );
    assert_eq!(
        ids(&p.path().join("out/raw/orders.jsonl")),
        vec![9, 10, 11, 12, 13]
    );
    // A broken state file stops the run with a clear error and is not overwritten.
    std::fs::write(state_file(&p), "{not json").unwrap();
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("alto::state::invalid") && err.contains("not valid JSON"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(state_file(&p)).unwrap(),
        "{not json"
    );
    // An empty file or a wrapper around something else would read as "no
    // state" and load everything again: refused the same way.
    for bad in ["", "{\"singer_state\": \"not an object\"}"] {
        std::fs::write(state_file(&p), bad).unwrap();
        let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("alto::state::invalid"), "{err}");
        assert!(err.contains("clean TAP:TARGET"), "{err}");
        assert_eq!(std::fs::read_to_string(state_file(&p)).unwrap(), bad);
    }
    assert_eq!(ids(&p.path().join("out/raw/users.jsonl")).len(), 5);
}

#[test]
fn secrets_never_reach_the_logs() {
    let p = plugin_project(&config(
        "        log_config: true\n        token: \"@format {env[FIXTURE_TOKEN]}\"\n",
        "",
    ));
    std::fs::write(p.path().join(".env"), "FIXTURE_TOKEN=sup3r-s3cret-value\n").unwrap();
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tap-fixture: config"), "{err}");
    assert!(!err.contains("sup3r-s3cret-value"), "{err}");
    for entry in std::fs::read_dir(p.path().join(".alto/logs/dev")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("sup3r-s3cret-value"));
        assert!(text.contains("********"));
    }

    // Secrets with quotes, backslashes, non-ASCII and newlines, which the
    // tap prints JSON-escaped (Python's json.dumps: `\"`, `\\`, `\u00e4`,
    // `\n`), are redacted in those forms too.
    std::fs::write(
        p.path().join("alto.secrets.yaml"),
        "default:\n  taps:\n    tap-fixture:\n      config:\n        password: 'pä\"ss\\wörd'\n        pem: \"-----BEGIN KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END KEY-----\\n\"\n",
    )
    .unwrap();
    std::fs::remove_dir_all(p.path().join(".alto/logs/dev")).unwrap();
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tap-fixture: config"), "{err}");
    let mut texts = vec![err];
    for entry in std::fs::read_dir(p.path().join(".alto/logs/dev")).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for text in texts {
        for leak in [
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
            "p\\u00e4",
            "ss\\\\w",
            "pä",
        ] {
            assert!(!text.contains(leak), "{leak} leaked:\n{text}");
        }
    }
}

/// A plugin line longer than ALTO_MAX_LINE_BYTES fails a run that reads it
/// (an ingest, or a pipeline with alto in the pipe) clearly; the direct
/// pipe does not read lines at all.
#[test]
fn a_line_too_long_fails_the_run_clearly() {
    let p = plugin_project(&config("        big: 5000\n", ""));
    let m = Machine::new(true);
    let run = |args: &[&str]| {
        let out = p
            .on(&m)
            .env("ALTO_MAX_LINE_BYTES", "1000")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["tap-fixture:reservoir"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("longer than 1000 bytes"), "{err}");
    assert!(err.contains("ALTO_MAX_LINE_BYTES"), "{err}");
    let (code, err) = run(&["tap-fixture:target-fixture"]);
    assert_eq!(code, Some(0), "the direct pipe reads no line: {err}");
    std::fs::write(
        p.path().join("alto.local.yaml"),
        "default:\n  taps:\n    tap-fixture:\n      select: ['*.*', '~users.email']\n",
    )
    .unwrap();
    let (code, err) = run(&["tap-fixture:target-fixture", "--full-refresh"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("longer than 1000 bytes"), "{err}");
    assert!(!err.contains("done in"), "{err}");
}

#[test]
fn base_catalogs_are_cached_cleaned_and_never_half_written() {
    let p = plugin_project(&config("", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["build", "--catalogs"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tap-fixture: base catalog with 2 streams"),
        "{err}"
    );
    let remote = p
        .home
        .path()
        .join(".alto/pipes/catalogs/tap-fixture.base.json");
    assert!(remote.is_file());
    // The runtime catalog applies the rules; `select --list` shows them.
    let catalog = p.json_on(&m, &["catalog", "tap-fixture"]);
    assert_eq!(catalog["streams"].as_array().unwrap().len(), 2);
    let (code, out, _) = p.run_on(&m, &["select", "tap-fixture", "--list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[automatic]") && out.contains("users.email"),
        "{out}"
    );
    assert_eq!(p.run_on(&m, &["clean", "catalog:tap-fixture"]).0, 0);
    assert!(!remote.exists());

    // A tap whose discovery fails leaves no catalog behind, anywhere.
    let p = plugin_project(&config("        fail_discover: true\n", ""));
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("discovering the streams of tap-fixture failed"),
        "{err}"
    );
    assert!(err.contains("cannot reach the source"), "{err}");
    assert!(!p.home.path().join(".alto/pipes/catalogs").exists());
    let (code, _, _) = p.run_on(&m, &["catalog", "tap-fixture"]);
    assert_eq!(code, 1);
}

#[test]
fn test_about_and_several_pipelines() {
    let p = plugin_project(&config("", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["test", "tap-fixture", "--timeout", "30"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("a record arrived"), "{err}");
    let (code, out, err) = p.run_on(&m, &["about", "tap-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"name\": \"tap-fixture\""), "{out}");
    // Two pipelines in one command, at once.
    let summary = p.json_on(
        &m,
        &[
            "run",
            "-j",
            "2",
            "tap-fixture:target-fixture",
            "tap-fixture:target-jsonl",
        ],
    );
    assert_eq!(
        summary["pipelines"].as_array().unwrap().len(),
        2,
        "{summary}"
    );
    assert_eq!(ids(&p.path().join("out/raw/users.jsonl")).len(), 5);
    assert_eq!(lines(&p.path().join("jsonl/users.jsonl")).len(), 5);
}

#[test]
fn a_singer_mapper_between_tap_and_target() {
    let extra = "  mappers:\n    meltano-map-transform:\n      pip_url: meltano-map-transform==0.12.3\n      executable: meltano-map-transform\n      config:\n        stream_maps:\n          users:\n            email: __NULL__\n          orders:\n            amount_x2: amount * 2\n";
    let p = plugin_project(&format!("{}{extra}", config("", "")));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:meltano-map-transform:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    let users = lines(&p.path().join("out/raw/users.jsonl"));
    assert_eq!(users.len(), 5);
    assert!(users[0].get("email").is_none(), "{}", users[0]);
    let orders = lines(&p.path().join("out/raw/orders.jsonl"));
    assert_eq!(orders[1]["amount_x2"], 6.0);
    // State flows through the mapper: the second run is incremental.
    let (code, _, err) = p.run_on(
        &m,
        &["run", "tap-fixture:meltano-map-transform:target-fixture"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl")),
        (1..=10).collect::<Vec<_>>()
    );
    let list = p.json_on(&m, &["list"]);
    assert_eq!(list["mappers"][0]["name"], "meltano-map-transform");
}

#[test]
fn python_stream_maps_warn_or_refuse() {
    let p = plugin_project(&config("      stream_maps: [maps/pii.py]\n", ""));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["--strict", "tap-fixture:target-fixture"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stream_maps"), "{err}");
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("are Python files of the original alto and are not run"),
        "{err}"
    );
}

#[test]
fn state_left_by_the_original_under_development_is_found() {
    let p = plugin_project(&config("", ""));
    let m = Machine::new(true);
    let old = p
        .home
        .path()
        .join(".alto/pipes/state/DEVELOPMENT/tap-fixture-to-target-fixture.json");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(
        &old,
        r#"{"bookmarks": {"users": {"updated_at": 2}, "orders": {"updated_at": 4}}}"#,
    )
    .unwrap();
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("DEVELOPMENT") && err.contains("ALTO_ENV"),
        "{err}"
    );
    assert_eq!(
        ids(&p.path().join("out/raw/users.jsonl")),
        vec![3, 4, 5, 6, 7]
    );
    let state: Value = serde_json::from_slice(&std::fs::read(state_file(&p)).unwrap()).unwrap();
    assert_eq!(bookmark(&state, "users"), 7);
    assert!(old.exists(), "the original's state is left where it was");
}

#[test]
fn fs_commands_on_the_remote_root() {
    let p = plugin_project(&config("", ""));
    let m = Machine::new(true);
    assert_eq!(p.run_on(&m, &["tap-fixture:target-fixture"]).0, 0);
    let ls = p.json_on(&m, &["fs", "ls", "state/dev"]);
    assert!(
        ls["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "tap-fixture-to-target-fixture.json"),
        "{ls}"
    );
    let top = p.json_on(&m, &["fs", "ls"]);
    assert!(
        top["directories"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("state")),
        "{top}"
    );
    // pull, edit, push back (asking first, so --yes without a terminal).
    let local = p.path().join("state.json");
    assert_eq!(
        p.run_on(
            &m,
            &[
                "fs",
                "pull",
                "state/dev/tap-fixture-to-target-fixture.json",
                "state.json"
            ]
        )
        .0,
        0
    );
    std::fs::write(&local, r#"{"bookmarks": {"users": {"updated_at": 100}}}"#).unwrap();
    let (code, _, err) = p.run_on(
        &m,
        &[
            "fs",
            "push",
            "state.json",
            "state/dev/tap-fixture-to-target-fixture.json",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        p.run_on(
            &m,
            &[
                "fs",
                "push",
                "--yes",
                "state.json",
                "state/dev/tap-fixture-to-target-fixture.json"
            ]
        )
        .0,
        0
    );
    let state = p.json_on(&m, &["state", "show", "tap-fixture:target-fixture"]);
    assert_eq!(state["bookmarks"]["users"]["updated_at"], 100);
    // Deleting asks too; paths cannot leave the project's root.
    assert_eq!(
        p.run_on(
            &m,
            &["fs", "rm", "state/dev/tap-fixture-to-target-fixture.json"]
        )
        .0,
        2
    );
    assert_eq!(p.run_on(&m, &["fs", "rm", "../other/x.json", "--yes"]).0, 2);
    assert_eq!(
        p.run_on(
            &m,
            &[
                "fs",
                "rm",
                "--yes",
                "state/dev/tap-fixture-to-target-fixture.json"
            ]
        )
        .0,
        0
    );
    assert!(!state_file(&p).exists());
}

/// A run that would do nothing, or did nothing it can vouch for, says so;
/// flags after a task name are honoured (`--env prod` runs prod).
#[test]
fn runs_that_do_nothing_say_so_and_flags_after_task_names_count() {
    let p = plugin_project(&format!(
        "{}prod:\n  targets:\n    target-fixture:\n      config:\n        destination: out/prod\n",
        config("", "")
    ));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture", "--env", "prod"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&p.path().join("out/prod/users.jsonl")).len(), 5);
    assert!(!p.path().join("out/raw/users.jsonl").exists());
    // A misspelled flag after the task name is refused, not ignored.
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture", "--ful-refresh"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--full-refresh"), "{err}");

    // Select rules that match no stream: exit 2, naming rules and streams.
    std::fs::write(
        p.path().join("alto.local.yaml"),
        "default:\n  taps:\n    tap-fixture:\n      select: ['invoices.*']\n",
    )
    .unwrap();
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("select no stream"), "{err}");
    assert!(err.contains("invoices.*"), "{err}");
    assert!(err.contains("users, orders"), "{err}");
    assert!(!err.contains("done in"), "{err}");

    // Records delivered, no state confirmed: a warning naming the target.
    std::fs::write(
        p.path().join("alto.local.yaml"),
        "default:\n  targets:\n    target-fixture:\n      config:\n        confirm: false\n",
    )
    .unwrap();
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("target-fixture confirmed no state"), "{err}");
}

/// One error, one exit code, whichever command meets it.
#[test]
fn a_missing_local_plugin_source_is_exit_2_everywhere() {
    let p = plugin_project(
        "default:\n  taps:\n    tap-x:\n      pip_url: ./plugins/nope\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n",
    );
    let m = Machine::new(false);
    for args in [
        &["build"][..],
        &["build", "tap-x"],
        &["tap-x:target-fixture"],
        &["run", "tap-x:target-fixture"],
        &["tap-x:reservoir"],
        &["show", "tap-x"],
    ] {
        let (code, _, err) = p.run_on(&m, args);
        assert_eq!(code, 2, "alto {args:?}: {err}");
        assert!(err.contains("does not exist"), "alto {args:?}: {err}");
    }
}

/// `alto build` seeds the shared store: a remote it cannot reach fails it
/// (exit 1, the cause, where credentials were looked for), unless a
/// local-only build was asked for.
#[test]
fn a_build_whose_remote_cannot_be_reached_fails_unless_local_only() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = plugin_project(&format!(
        "default:\n  filesystem: s3\n  bucket: seeds\n  s3_settings:\n    endpoint: http://127.0.0.1:{port}\n    allow_http: true\n    region: us-east-1\n    access_key_id: test\n    secret_access_key: test\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n"
    ));
    let m = Machine::new(true);
    let out = p
        .on(&m)
        .env("ALTO_REMOTE_TIMEOUT", "2")
        .args(["build"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("s3://seeds"), "{err}");
    assert!(err.contains("cannot be read"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(err.contains("--no-push"), "{err}");
    assert!(!m.objects().exists() || std::fs::read_dir(m.objects()).unwrap().count() == 0);

    let out = p
        .on(&m)
        .env("ALTO_REMOTE_TIMEOUT", "2")
        .args(["build", "--no-push"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("remote store is unavailable"), "{err}");
    assert!(err.contains("1 built"), "{err}");
    let (code, _, err) = p.run_on(&m, &["build", "--offline"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 present"), "{err}");
}

/// A remote that accepts connections and never answers ends in a clear
/// error within ALTO_REMOTE_TIMEOUT (retries included), not a long hang.
#[test]
fn an_unresponsive_remote_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads nothing, answers nothing; the sockets stay open.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
            if held.len() > 64 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(120));
    });
    let p = plugin_project(&format!(
        "default:\n  filesystem: s3\n  bucket: silent\n  s3_settings:\n    endpoint: http://127.0.0.1:{port}\n    allow_http: true\n    region: us-east-1\n    access_key_id: test\n    secret_access_key: test\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n"
    ));
    let m = Machine::new(false);
    let start = std::time::Instant::now();
    let out = p
        .on(&m)
        .env("ALTO_REMOTE_TIMEOUT", "2")
        .args(["build"])
        .output()
        .unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot be read"), "{err}");
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    // Bounded by the timeout and its retries (generously: a loaded machine).
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
}

/// The tap-fixture config that writes `lines` verbatim after the users SCHEMA.
fn raw_lines(lines: &[String]) -> String {
    format!(
        "        address: true\n        raw_lines: {}\n",
        serde_json::to_string(lines).unwrap()
    )
}

/// The records of `stream` a Python target stored for the raw lines (ids
/// from 100), against what Python's reference of the rules makes of them.
fn check_against_python(p: &common::Project, rules: &[&str], sent: &[String]) {
    let want = common::hash_reference(rules, sent);
    let mut expected: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for msg in &want {
        if msg["type"] == "RECORD" {
            let stream = msg["stream"].as_str().unwrap().to_string();
            expected
                .entry(stream)
                .or_default()
                .push(msg["record"].clone());
        }
    }
    for (stream, records) in &expected {
        let got: Vec<Value> = lines(&p.path().join(format!("out/raw/{stream}.jsonl")))
            .into_iter()
            .filter(|r| r["id"].as_i64().unwrap_or(0) >= 100)
            .collect();
        assert_eq!(&got, records, "{stream}");
    }
    for entry in std::fs::read_dir(p.path().join("out/raw")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let stream = name.trim_end_matches(".jsonl");
        assert!(
            stream == "users" || stream == "orders" || expected.contains_key(stream),
            "a stream Python never saw: {stream}"
        );
    }
}

fn object_lines() -> Vec<String> {
    [
        r#"{"type": "RECORD", "stream": "users", "record": {"id": 100, "updated_at": 0, "email": "a@x.io", "address": {"city": "Paris", "zip": 75001, "geo": [48.85, 2.35, null]}}}"#,
        r#"{"type": "RECORD", "stream": "users", "record": {"id": 101, "updated_at": 0, "address": null}}"#,
        r#"{"type":"RECORD","stream":"users","record":{"id":102,"updated_at":0,"address":{"city":"Z\u00fcrich","zip":8001,"extra":{"floor":2.0,"door":true,"codes":[[1,"\"a\""],{"k":1e16}]}}}}"#,
    ]
    .map(String::from)
    .to_vec()
}

/// A `~` rule on a field holding an object hashes every leaf below it, into
/// the target (the object itself once passed in clear).
#[test]
fn hash_rules_hash_every_leaf_of_an_object_field() {
    let lines = object_lines();
    let p = plugin_project(&config(
        &format!(
            "{}      select: [\"*.*\", \"~users.address\"]\n",
            raw_lines(&lines)
        ),
        "",
    ));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    check_against_python(&p, &["users.address"], &lines);
}

fn duplicate_key_lines() -> Vec<String> {
    [
        r#"{"type": "RECORD", "stream": "other", "stream": "users", "record": {"id": 110, "updated_at": 0, "email": "dup-stream@x.io"}}"#,
        r#"{"type": "RECORD", "stream": "users", "record": {"id": 0, "email": "decoy@x.io"}, "record": {"id": 111, "updated_at": 0, "email": "dup-record@x.io"}}"#,
        r#"{"type": "RECORD", "stream": "users", "record": {"id": 112, "updated_at": 0, "email": "first@x.io", "email": "dup-field@x.io"}}"#,
        r#"{"type": "RECORD", "str\u0065am": "orders", "stream": "other", "stream": "us\u0065rs", "record": {"id": 113, "updated_at": 0, "\u0065mail": "escaped-key@x.io"}}"#,
        r#"{"type": "RECORD", "record": {"id": 114, "updated_at": 0, "email": "stream-last@x.io"}, "stream": "users"}"#,
    ]
    .map(String::from)
    .to_vec()
}

/// alto reads a Singer line as Python targets do: of duplicate keys the
/// last wins (`stream`, `record`, fields in the record), escaped keys are
/// the keys they spell. A line sent to `users` has its emails hashed.
#[test]
fn hash_rules_read_duplicate_keys_as_python_does() {
    let lines = duplicate_key_lines();
    let p = plugin_project(&config(
        &format!(
            "{}      select: [\"*.*\", \"~users.email\"]\n",
            raw_lines(&lines)
        ),
        "",
    ));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    check_against_python(&p, &["users.email"], &lines);
}

/// With alto in the pipe, a line that is not a Singer message is logged
/// (redacted, control characters escaped) and skipped, as the reservoir
/// does; the target never sees it.
#[test]
fn hash_rules_skip_lines_that_are_not_singer_messages() {
    let lines: Vec<String> = [
        "[1, 2]",
        "{\"no\": \"type\"}",
        "{\"type\": \"RECORD\", \"stream\": \"users\", \"record\": {\"id\": 120, \"email\": \"x\"}",
        "not json \u{1b}[2J",
    ]
    .map(String::from)
    .to_vec();
    let p = plugin_project(&config(
        &format!(
            "        token: \"@format {{env[FIXTURE_TOKEN]}}\"\n        junk: \"@format not a message {{env[FIXTURE_TOKEN]}}\"\n{}      select: [\"*.*\", \"~users.email\"]\n",
            raw_lines(&lines)
        ),
        "",
    ));
    std::fs::write(p.path().join(".env"), "FIXTURE_TOKEN=sup3r-s3cret-value\n").unwrap();
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("skipping a line that is not JSON"), "{err}");
    assert_eq!(err.matches("not a Singer message").count(), 5, "{err}");
    // The junk line holds the secret: it is redacted.
    assert!(
        err.contains("line 1 (not a Singer message: not JSON (at byte 0)), skipped: ********"),
        "{err}"
    );
    assert!(err.contains("not json \\u{1b}[2J"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    assert!(!err.contains("sup3r-s3cret-value"), "{err}");
    for entry in std::fs::read_dir(p.path().join(".alto/logs/dev")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("sup3r-s3cret-value"), "{text}");
        assert!(text.contains("skipped) | ********"), "{text}");
    }
    assert_eq!(ids(&p.path().join("out/raw/users.jsonl")).len(), 5);
}

/// `alto select TAP --list` shows which fields a `~` rule hashes.
#[test]
fn hash_rules_show_in_select_list() {
    let p = plugin_project(&config(
        "        address: true\n      select: [\"*.*\", \"~users.email\", \"~users.address\"]\n",
        "",
    ));
    let m = Machine::new(true);
    let (code, out, err) = p.run_on(&m, &["select", "tap-fixture", "--list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[hashed   ]     users.email\n"), "{out}");
    assert!(
        out.contains("[hashed   ]     users.address.city\n"),
        "{out}"
    );
    assert!(out.contains("[selected ]     users.name\n"), "{out}");
    assert!(out.contains("[selected ]     orders.amount\n"), "{out}");
    let rows = p.json_on(&m, &["select", "tap-fixture", "--list"]);
    let row = |field: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["stream"] == "users" && r["field"] == serde_json::json!([field]))
            .unwrap_or_else(|| panic!("{field}: {rows}"))
            .clone()
    };
    assert_eq!(row("email")["hashed"], true);
    assert_eq!(row("address")["hashed"], true);
    assert_eq!(row("name")["hashed"], false);
}
