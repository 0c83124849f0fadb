//! `alto orchestrate dagster|airflow` run for real: the generated Dagster
//! module materializes the shop's assets (`dagster job execute`), their
//! metadata holding the record counts; the generated Airflow DAGs import
//! cleanly and `airflow dags test` runs a job. Dagster and Airflow come from
//! the registry into target/orchestrators-venv (`scripts/orchestrators-venv`,
//! run by .ci/run); without them these tests say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Machine, Project, shop_project};
use serde_json::Value;

/// The venv's bin directory, or `None` (and why) when it is not installed.
fn venv(name: &str) -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/orchestrators-venv")
        .join(name)
        .join("bin");
    if bin.join(name).exists() {
        Some(bin)
    } else {
        eprintln!(
            "SKIPPED: {name} is not installed in {} (run scripts/orchestrators-venv; \
             .ci/run does, unless the package registry is unreachable)",
            bin.display()
        );
        None
    }
}

/// A command of the venv, run the way an orchestrator's worker would run
/// alto: the built binary as ALTO_BIN, the machine's store, an empty HOME.
fn tool(bin: &Path, program: &str, p: &Project, m: &Machine) -> Command {
    let mut c = Command::new(bin.join(program));
    c.current_dir(p.path())
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("HOME", p.home.path())
        .env("NO_COLOR", "1")
        .env("ALTO_BIN", env!("CARGO_BIN_EXE_alto"))
        .env("ALTO_CACHE_DIR", m.cache.path());
    c
}

fn output(c: &mut Command) -> (i32, String) {
    let out = c.output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn jsonl_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn the_dagster_module_materializes_the_jobs_assets_with_record_counts() {
    let Some(bin) = venv("dagster") else { return };
    let p = shop_project();
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["orchestrate", "dagster", "-o", "orchestrate/defs.py"]);
    assert_eq!(code, 0, "{err}");
    let defs = std::fs::read_to_string(p.path().join("orchestrate/defs.py")).unwrap();
    assert!(!defs.contains("import alto"), "imports nothing of alto's");
    // The replay is downstream of its ingest; the command of both.
    assert!(defs.contains(
        "_alto_asset(\"reservoir_tap_fixture_target_fixture\", \"reservoir:tap-fixture-target-fixture\", [\"tap_fixture_reservoir\"])"
    ), "{defs}");
    assert!(defs.contains("cron_schedule=\"30 1 * * *\""), "{defs}");

    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("dagster.yaml"), "").unwrap();
    // One process: the steps are alto's subprocesses either way.
    std::fs::write(
        p.path().join("run.yaml"),
        "execution:\n  config:\n    in_process: {}\n",
    )
    .unwrap();
    let (code, text) = output(
        tool(&bin, "dagster", &p, &m)
            .env("DAGSTER_HOME", home.path())
            .args([
                "job",
                "execute",
                "-f",
                "orchestrate/defs.py",
                "-j",
                "shop",
                "-c",
                "run.yaml",
            ]),
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(jsonl_count(&p.path().join("out/users.jsonl")), 4);
    assert_eq!(jsonl_count(&p.path().join("out/orders.jsonl")), 4);
    assert!(p.path().join("done.txt").exists());

    // The materializations' metadata, read back from the instance.
    let script = r#"
import json, sys
from dagster import AssetKey, DagsterInstance
inst = DagsterInstance.get()
out = {}
for name in sys.argv[1:]:
    ev = inst.get_latest_materialization_event(AssetKey(name))
    md = ev.asset_materialization.metadata if ev else {}
    out[name] = {k: getattr(v, "value", None) for k, v in md.items()}
print(json.dumps(out, default=str))
"#;
    let (code, text) = output(
        tool(&bin, "python", &p, &m)
            .env("DAGSTER_HOME", home.path())
            .args([
                "-c",
                script,
                "tap_fixture_reservoir",
                "reservoir_tap_fixture_target_fixture",
                "util_write",
            ]),
    );
    assert_eq!(code, 0, "{text}");
    let md: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for asset in [
        "tap_fixture_reservoir",
        "reservoir_tap_fixture_target_fixture",
    ] {
        let a = &md[asset];
        assert_eq!(a["records"], 8, "{asset}: {a:#}");
        assert_eq!(a["records/users"], 4, "{asset}: {a:#}");
        assert_eq!(a["records_per_stream"]["orders"], 4, "{asset}: {a:#}");
        assert!(a["state_commits"].as_u64().unwrap() >= 1, "{a:#}");
        assert_eq!(a["summary"]["status"], "success");
    }
    assert_eq!(
        md["tap_fixture_reservoir"]["summary"]["state"]["bookmarks"]["users"]["updated_at"],
        4
    );
    assert_eq!(md["util_write"]["records"], "not counted");

    // A failing step fails the asset and the run.
    let (code, text) = output(
        tool(&bin, "dagster", &p, &m)
            .env("DAGSTER_HOME", home.path())
            .args([
                "job",
                "execute",
                "-f",
                "orchestrate/defs.py",
                "-j",
                "broken",
                "-c",
                "run.yaml",
            ]),
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("`alto run util:fail` failed with exit code 1"),
        "{text}"
    );
}

#[test]
fn the_airflow_dags_import_and_run_a_job() {
    let Some(bin) = venv("airflow") else { return };
    let p = shop_project();
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["orchestrate", "airflow", "-o", "dags/alto_dags.py"]);
    assert_eq!(code, 0, "{err}");
    let dags = std::fs::read_to_string(p.path().join("dags/alto_dags.py")).unwrap();
    assert!(
        dags.contains("catchup=False") && dags.contains("\"retries\": 0"),
        "{dags}"
    );
    assert!(dags.contains(
        "_alto_dag(\"alto_shop\", \"shop\", \"30 1 * * *\", [\"tap-fixture:reservoir\", \"reservoir:tap-fixture-target-fixture\", \"util:write\"])"
    ), "{dags}");

    let home = tempfile::tempdir().unwrap();
    let airflow = |args: &[&str]| {
        output(
            tool(&bin, "airflow", &p, &m)
                .env("AIRFLOW_HOME", home.path())
                .env("AIRFLOW__CORE__DAGS_FOLDER", p.path().join("dags"))
                .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
                .args(args),
        )
    };
    let (code, text) = airflow(&["db", "migrate"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = airflow(&["dags", "list-import-errors", "-o", "json"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[]"), "import errors: {text}");
    let (code, text) = airflow(&["dags", "test", "alto_shop"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("state=success"), "{text}");
    assert_eq!(jsonl_count(&p.path().join("out/users.jsonl")), 4);
    let written = std::fs::read_to_string(p.path().join("done.txt")).unwrap();
    assert!(
        written.starts_with("step ran|hello from util|"),
        "{written}"
    );
}
