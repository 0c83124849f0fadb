//! The controls of `alto run` and the task shorthand, with the fixture
//! plugins: `--dry-run`, `--select`/`--exclude` (configured rules left
//! untouched, hash rules still applied), `--no-state-update`,
//! `--refresh-catalog` and `--timeout`; and `alto logs` and `--log-format
//! json` over the runs they make.

mod common;

use common::{Machine, plugin_project};
use serde_json::Value;

const PIPE: &str = "tap-fixture:target-fixture";

fn config(tap_extra: &str) -> String {
    format!(
        "default:\n  project_name: controls\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      select: [\"users.*\", \"orders.*\", \"~users.email\"]\n      config:\n        rows: 5\n{tap_extra}  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n"
    )
}

fn records(p: &common::Project, stream: &str) -> Vec<Value> {
    std::fs::read_to_string(p.path().join("out").join(format!("{stream}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn state_file(p: &common::Project) -> std::path::PathBuf {
    p.home
        .path()
        .join(".alto/controls/state/dev/tap-fixture-to-target-fixture.json")
}

fn bookmark(p: &common::Project, m: &Machine, stream: &str) -> i64 {
    p.json_on(m, &["state", "show", PIPE])["bookmarks"][stream]["updated_at"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn dry_run_select_exclude_no_state_update_and_refresh() {
    let p = plugin_project(&config(""));
    let m = Machine::new(true);
    let yaml_before = std::fs::read(p.path().join("alto.yaml")).unwrap();

    // A dry run before anything exists: nothing is built, run or written.
    let (code, out, err) = p.run_on(&m, &[PIPE, "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tap     tap-fixture  to build with pex"),
        "{out}"
    );
    assert!(out.contains("pip_url ./plugins/tap-fixture"), "{out}");
    assert!(out.contains("not discovered yet"), "{out}");
    assert!(out.contains("state     none yet"), "{out}");
    assert!(
        out.contains("--config $RUN/config-0.json --catalog $RUN/catalog.json"),
        "{out}"
    );
    assert!(out.contains("| PEX_SCRIPT=target-fixture"), "{out}");
    assert!(!m.objects().exists() || std::fs::read_dir(m.objects()).unwrap().count() == 0);
    assert!(!p.path().join("out").exists());
    assert!(!state_file(&p).exists());

    // --select replaces the rules for this run only; the `~` rule still hashes.
    let (code, _, err) = p.run_on(
        &m,
        &[
            "run",
            PIPE,
            "--select",
            "users.id",
            "--select",
            "users.email",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let users = records(&p, "users");
    assert_eq!(users.len(), 5);
    let keys: Vec<&String> = users[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "updated_at", "email"], "{users:?}");
    let email = users[0]["email"].as_str().unwrap();
    assert!(
        email.len() == 32 && !email.contains('@'),
        "not hashed: {email}"
    );
    assert!(records(&p, "orders").is_empty());
    // The configured rules are untouched: the file, what `select --list`
    // shows, and the next run.
    assert_eq!(
        std::fs::read(p.path().join("alto.yaml")).unwrap(),
        yaml_before
    );
    let listed = p.json_on(&m, &["select", "tap-fixture", "--list"]);
    let orders_selected = listed
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["stream"] == "orders" && r["selected"] == true);
    assert!(orders_selected, "{listed}");

    // The dry run now shows what is local, the selection, the state and the flags.
    let plan = p.json_on(
        &m,
        &[PIPE, "--dry-run", "--exclude", "users", "--no-state-update"],
    );
    let task = &plan["tasks"][0];
    assert_eq!(task["plugins"][0]["availability"], "local");
    assert_eq!(task["streams"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(task["streams"][0]["stream"], "orders");
    assert_eq!(task["state"]["bookmarks"]["users"]["updated_at"], 5);
    assert_eq!(task["commits_state"], false);
    assert!(
        task["commands"][0]
            .as_str()
            .unwrap()
            .ends_with("--state $RUN/state.json")
    );
    let (_, text, _) = p.run_on(&m, &[PIPE, "--dry-run", "--no-state-update"]);
    assert!(
        text.contains("commits   nothing (--no-state-update)"),
        "{text}"
    );
    assert!(
        text.contains("users: id, updated_at, name, email"),
        "{text}"
    );

    // --exclude drops a stream from the configured rules.
    let (code, _, err) = p.run_on(&m, &[PIPE, "--exclude", "users"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(records(&p, "users").len(), 5);
    assert_eq!(records(&p, "orders").len(), 5);
    assert_eq!(bookmark(&p, &m, "orders"), 5);

    // --no-state-update loads without committing: the next run loads the same rows again.
    let before = std::fs::read(state_file(&p)).unwrap();
    let (code, _, err) = p.run_on(&m, &[PIPE, "--no-state-update"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(state_file(&p)).unwrap(), before);
    let ids: Vec<i64> = records(&p, "orders")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let users: Vec<i64> = records(&p, "users")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(users[5..], [6, 7, 8, 9, 10]);

    // The base catalog is cached: a changed schema shows only after
    // --refresh-catalog (`schema_version: 2` adds `tier` to users).
    std::fs::write(
        p.path().join("alto.yaml"),
        config("        schema_version: 2\n"),
    )
    .unwrap();
    let (_, text, _) = p.run_on(&m, &[PIPE, "--dry-run"]);
    assert!(!text.contains("tier"), "{text}");
    let (_, text, _) = p.run_on(&m, &[PIPE, "--dry-run", "--refresh-catalog"]);
    assert!(
        text.contains("discovered again first (--refresh-catalog)"),
        "{text}"
    );
    let (code, _, err) = p.run_on(&m, &[PIPE, "--refresh-catalog"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("discovering"), "{err}");
    let last = records(&p, "users").pop().unwrap();
    assert!(last.get("tier").is_some(), "{last}");

    // Flags that do not apply are refused before anything runs.
    let (code, _, err) = p.run_on(
        &m,
        &["reservoir:tap-fixture-target-fixture", "--select", "users"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--select does not apply"), "{err}");
    let (code, _, err) = p.run_on(&m, &["tap-fixture:reservoir", "--no-state-update"]);
    assert_eq!(code, 2, "{err}");
    for bad in ["0", "soon", "-5m"] {
        let (code, _, err) = p.run_on(&m, &[PIPE, &format!("--timeout={bad}")]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("is not a timeout"), "{err}");
    }
}

/// `--timeout` stops the run as an interrupt does: the plugins stopped, the
/// confirmed state committed, the lock released, the private files removed.
#[test]
fn timeout_stops_the_run_and_keeps_what_was_confirmed() {
    // 10 records, a second apart.
    let p = plugin_project(&config("        sleep: 1\n"));
    let m = Machine::new(true);
    // Built first, so the timeout measures the run alone.
    let (code, _, err) = p.run_on(&m, &["build"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.run_on(&m, &[PIPE, "--timeout", "5s"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ran longer than its --timeout"), "{err}");
    assert!(!err.contains("target-fixture: wrote 10 records"), "{err}");
    assert_eq!(
        std::fs::read_dir(p.path().join(".alto/run"))
            .unwrap()
            .count(),
        0
    );
    // What the target confirmed is committed; the next run resumes there.
    let confirmed = bookmark(&p, &m, "users");
    let loaded = records(&p, "users").len() as i64;
    assert!(
        confirmed <= loaded && loaded <= 5,
        "{confirmed} of {loaded}"
    );
    assert!(records(&p, "orders").len() < 5);
    std::fs::write(p.path().join("alto.yaml"), config("")).unwrap();
    let (code, _, err) = p.run_on(&m, &[PIPE, "--log-format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bookmark(&p, &m, "users"), confirmed + 5);
    // --log-format json: every stderr line is a JSON object; plugin lines
    // name their plugin.
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["level"].is_string())
    );
    assert!(
        lines
            .iter()
            .any(|l| l["plugin"] == "tap-fixture" && l["message"] == "tap-fixture: sent 10 records"),
        "{err}"
    );
    assert!(lines.iter().any(|l| l["plugin"].is_null()), "{err}");

    // alto logs: both runs, oldest first, with how each ended.
    let listed = p.json_on(&m, &["logs"]);
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{listed}");
    assert_eq!(runs[0]["end"]["exit"], 1);
    assert!(
        runs[0]["end"]["error"]
            .as_str()
            .unwrap()
            .contains("--timeout")
    );
    assert_eq!(runs[1]["end"]["exit"], 0);
    assert_eq!(
        runs[1]["end"]["state_commits"].as_u64().map(|n| n > 0),
        Some(true)
    );
    assert!(
        runs.iter()
            .all(|r| r["local"] == true && r["remote"] == true)
    );
    let (code, out, _) = p.run_on(&m, &["logs", PIPE, "--last", "1"]);
    assert_eq!(code, 0);
    let last = runs[1]["run"].as_str().unwrap();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with(last), "{out}");
    assert!(
        p.json_on(&m, &["logs", "tap-fixture:reservoir"])["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // logs show: this machine's copy, else the remote's.
    let (code, shown, _) = p.run_on(&m, &["logs", "show", last]);
    assert_eq!(code, 0);
    assert!(
        shown.contains("tap-fixture | tap-fixture: sent 10 records"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .last()
            .unwrap()
            .starts_with("alto | end {\"exit\":0"),
        "{shown}"
    );
    std::fs::remove_dir_all(p.path().join(".alto/logs")).unwrap();
    let listed = p.json_on(&m, &["logs"]);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 2);
    assert_eq!(listed["runs"][1]["local"], false);
    assert_eq!(listed["runs"][1]["end"]["exit"], 0);
    let (code, from_remote, _) = p.run_on(&m, &["logs", "show", &format!("{last}.log")]);
    assert_eq!(code, 0);
    assert_eq!(from_remote, shown);
    let (code, _, err) = p.run_on(
        &m,
        &[
            "logs",
            "show",
            "tap-fixture-to-target-fixture.20000101000000",
        ],
    );
    assert_eq!(code, 2, "{err}");
}
