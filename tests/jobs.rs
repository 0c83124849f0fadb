//! Jobs, schedules and utility commands: the config checked at load (bad
//! steps, cycles, cron), `alto run JOB` stopping at a failing step, utility
//! commands with the utility's environment, and the records per stream that
//! `--json` reports for a direct pipe (the tap's METRIC lines), a hashed
//! pipe (counted by alto), an ingest and a replay.

mod common;

use common::{Machine, Project, shop_project};
use serde_json::{Value, json};

fn config_error(yaml: &str) -> String {
    let p = Project::new(&[("alto.yaml", yaml)]);
    let (code, _, err) = p.run(&["schedule", "list"]);
    assert_eq!(code, 2, "{yaml}\n{err}");
    err
}

const BASE: &str = "default:\n  taps:\n    tap-a: {pip_url: a}\n  targets:\n    target-b: {pip_url: b}\n  utilities:\n    dbt:\n      pip_url: dbt-core\n      commands: {run: run --project-dir transform}\n";

#[test]
fn bad_jobs_and_schedules_are_errors_at_their_key() {
    let cases = [
        (
            "  jobs:\n    j: [tap-a:target-b, tap-a:nowhere]\n",
            "job `j`: step `tap-a:nowhere` names no pipeline, utility command or job",
            "tap-a:nowhere]",
        ),
        (
            "  jobs:\n    j: [dbt:run, dbt:nope]\n",
            "step `dbt:nope`",
            "dbt:nope]",
        ),
        (
            "  jobs:\n    j: [tap-a:target-b, j]\n",
            "job `j` names itself",
            ", j]",
        ),
        (
            "  jobs:\n    a: [b]\n    b: [tap-a:target-b, a]\n",
            "job `a` runs itself: a → b → a",
            "a: [b]",
        ),
        (
            "  jobs:\n    j: [dbt:run]\n  schedules:\n    s: {job: j, interval: \"0 2 * *\"}\n",
            "schedule `s`: invalid interval `0 2 * *`",
            "\"0 2 * *\"",
        ),
        (
            "  jobs:\n    j: [dbt:run]\n  schedules:\n    s: {job: j, interval: \"61 * * * *\"}\n",
            "invalid interval",
            "\"61 * * * *\"",
        ),
        (
            "  jobs:\n    j: [dbt:run]\n  schedules:\n    s: {job: nope, interval: \"@daily\"}\n",
            "schedule `s`: no job `nope`",
            "nope",
        ),
    ];
    for (extra, message, at) in cases {
        let yaml = format!("{BASE}{extra}");
        let err = config_error(&yaml);
        assert!(err.contains(message), "{extra}: {err}");
        // The diagnostic quotes the line of the key it points at.
        let line = yaml.lines().find(|l| l.contains(at)).unwrap();
        assert!(
            err.contains(line.trim()),
            "{extra}: not at {line:?}:\n{err}"
        );
    }
}

#[test]
fn jobs_schedules_and_commands_are_keys_alto_reads() {
    let p = Project::new(&[(
        "alto.yaml",
        &format!(
            "{BASE}  jobs:\n    nightly-job: [tap-a:target-b, dbt:run]\n    all: [nightly-job, tap-a:reservoir]\n  schedules:\n    nightly: {{job: nightly-job, interval: \"0 2 * * *\"}}\n    hourly: {{job: all, interval: \"@hourly\"}}\n"
        ),
    )]);
    let (code, out, err) = p.run(&["--json", "schedule", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("unknown key"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let s = &v["schedules"];
    assert_eq!(s[0]["name"], "nightly");
    assert_eq!(s[0]["job"], "nightly-job");
    assert_eq!(s[0]["steps"], json!(["tap-a:target-b", "dbt:run"]));
    assert_eq!(s[1]["cron"], "0 * * * *");
    for (i, minute_hour) in [(0, "T02:00:00Z"), (1, ":00:00Z")] {
        let next = s[i]["next_run"].as_str().unwrap();
        assert!(next.ends_with(minute_hour), "{next}");
    }
    // --strict too: nothing here is a key alto ignores.
    assert_eq!(p.run(&["--strict", "schedule", "list"]).0, 0);
    let (code, out, _) = p.run(&["schedule", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("nightly  nightly-job  0 2 * * *"), "{out}");
}

/// The steps of a summary by name.
fn step<'v>(summary: &'v Value, name: &str) -> &'v Value {
    summary["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {summary:#}"))
}

#[test]
fn jobs_run_in_order_count_records_and_stop_at_a_failing_step() {
    let p = shop_project();
    let m = Machine::new(true);
    let four = json!({"orders": 4, "users": 4});

    // A direct pipe: counts from the tap's METRIC lines; a tap that logs
    // none has no counts (null, never a guess).
    let (code, out, err) = p.run_on(&m, &["--json", "run", "direct"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"], Value::Null);
    let direct = step(&v, "tap-fixture:target-fixture");
    assert_eq!(direct["status"], "success");
    assert_eq!(direct["exit_code"], 0);
    assert_eq!(direct["task"], "pipeline");
    assert_eq!(direct["streams"], four, "{direct:#}");
    assert_eq!(direct["records"], 8);
    assert_eq!(direct["records_counted_by"], "metrics");
    assert_eq!(direct["state"]["bookmarks"]["users"]["updated_at"], 4);
    assert!(direct["state_commits"].as_u64().unwrap() >= 1);
    assert!(direct["seconds"].as_f64().unwrap() > 0.0);
    let plain = step(&v, "tap-plain:target-fixture");
    assert_eq!(plain["streams"], Value::Null, "{plain:#}");
    assert_eq!(plain["records"], Value::Null);

    // The human summary line says the same.
    let (code, _, err) = p.run_on(&m, &["run", "tap-fixture:target-fixture", "--full-refresh"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tap-fixture:target-fixture: done in")
            && err.contains(", 8 records (orders 4, users 4)"),
        "{err}"
    );

    // A failing middle step: the first ran (a hashed pipe, counted by
    // alto), the failing one is named, the last did not run; exit 1.
    let (code, out, err) = p.run_on(&m, &["--json", "run", "broken"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("step `util:fail` failed (2 of 3); not run: tap-plain:target-fixture"),
        "{err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"], "util:fail");
    let hashed = step(&v, "tap-hashed:target-fixture");
    assert_eq!(hashed["status"], "success");
    assert_eq!(hashed["streams"], four, "{hashed:#}");
    assert_eq!(hashed["records_counted_by"], "alto");
    let failed = step(&v, "util:fail");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["exit_code"], 1);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 3")
    );
    assert_eq!(step(&v, "tap-plain:target-fixture")["status"], "not_run");

    // Ingest, replay and a utility command: counted by alto; the command
    // ran in the project root with the utility's environment.
    let v = p.json_on(&m, &["run", "shop"]);
    let ingest = step(&v, "tap-fixture:reservoir");
    assert_eq!(ingest["task"], "ingest");
    assert_eq!(ingest["streams"], four, "{ingest:#}");
    let replay = step(&v, "reservoir:tap-fixture-target-fixture");
    assert_eq!(replay["task"], "replay");
    assert_eq!(replay["streams"], four, "{replay:#}");
    assert_eq!(replay["records"], 8);
    assert_eq!(replay["records_counted_by"], "alto");
    let command = step(&v, "util:write");
    assert_eq!(command["status"], "success");
    assert_eq!(command["records"], Value::Null);
    let written = std::fs::read_to_string(p.path().join("done.txt")).unwrap();
    let root = std::fs::canonicalize(p.path()).unwrap();
    assert_eq!(
        written,
        format!("step ran|hello from util|{}\n", root.display())
    );

    // One utility command alone: its exit code is a failure of alto's.
    let (code, _, err) = p.run_on(&m, &["run", "util:fail"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("utility-fixture: failing with 3"), "{err}");
    // An unknown step or job: a user's error.
    let (code, _, err) = p.run_on(&m, &["run", "no-such-job"]);
    assert_eq!(code, 2, "{err}");
}
