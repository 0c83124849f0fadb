//! The original alto's recorded config renders (fixtures/golden/config_*),
//! replayed through `alto config`. Where the original is wrong (see
//! fixtures/golden/README.md), the expected value is alto's and the reason is
//! written beside it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

/// (case, run, render key) → what alto must print instead of the original.
fn divergences() -> BTreeMap<(&'static str, &'static str, &'static str), Value> {
    let mut d = BTreeMap::new();
    // inherit_from never changes the parent, and a target's per-tap overrides
    // never leak into other taps' renders (the original mutates both).
    let c4 = "config_04_inherit_from";
    d.insert((c4, "default", "tap-base"), json!({"files": [{"entity": "a", "path": "a.csv"}], "delimiter": ",", "options": {"encoding": "utf-8", "quoting": "minimal"}}));
    d.insert((c4, "default", "tap-child"), json!({"files": [{"entity": "b", "path": "b.csv"}], "delimiter": ",", "options": {"encoding": "utf-8", "quoting": "all"}}));
    d.insert(
        (c4, "default", "target-jsonl"),
        json!({"destination_path": "out/raw", "do_timestamp_file": false}),
    );
    d.insert(
        (c4, "default", "target-jsonl--tap-base"),
        json!({"destination_path": "accent_from_base/base_ns", "do_timestamp_file": false}),
    );
    d.insert(
        (c4, "default", "target-jsonl--tap-child"),
        json!({"destination_path": "accent_from_base/child_ns", "do_timestamp_file": false}),
    );
    d.insert(
        (c4, "default", "target-jsonl--tap-versioned"),
        json!({"destination_path": "out/raw", "do_timestamp_file": false}),
    );
    // ALTO_ overrides match keys loosely (case, `_` for `-`), and @format is
    // lazy, so an override of another key never freezes `{this.load_path}`.
    let c5 = "config_05_env_var_overrides";
    d.insert(
        (c5, "upper_case_hyphen_plugin", "tap-x"),
        json!({"foo": "env-foo", "count": 1, "nested": {"a": 1, "b": {"c": 2}}, "enabled": false}),
    );
    d.insert(
        (c5, "target_key_override_only", "target-y--tap-x"),
        json!({"schema": "xns", "batch": 500}),
    );
    d.insert(
        (c5, "target_and_root_overrides", "target-y"),
        json!({"schema": "env_root", "batch": 500}),
    );
    d.insert(
        (c5, "target_and_root_overrides", "target-y--tap-x"),
        json!({"schema": "env_xns", "batch": 500}),
    );
    d.insert(
        (c5, "target_and_root_overrides", "target-y--tap_under"),
        json!({"schema": "env_root", "batch": 500}),
    );
    // One fixed layering (main, local, secrets); `alto.dev.json` is not a layer.
    let c6 = "config_06_local_secrets_merge";
    for run in ["default", "env_var_on_top"] {
        d.insert((c6, run, "target-duckdb"), json!({"source": "alto.secrets.yaml", "token": "duck-secret", "filepath": "layers.duckdb", "default_target_schema": "raw"}));
        d.insert((c6, run, "target-duckdb--tap-stripe"), json!({"source": "alto.secrets.yaml", "token": "duck-secret", "filepath": "layers.duckdb", "default_target_schema": "stripe"}));
    }
    d
}

/// Renders that the original produced but alto must not (a plugin `TAP_X`
/// conjured by an upper-case override).
const NOT_PLUGINS: [(&str, &str, &str); 2] = [
    (
        "config_05_env_var_overrides",
        "upper_case_hyphen_plugin",
        "TAP_X",
    ),
    (
        "config_05_env_var_overrides",
        "upper_case_hyphen_plugin",
        "target-y--TAP_X",
    ),
];

fn run_case(case: &'static str) {
    let dir = common::fixtures().join("golden").join(case);
    let divergences = divergences();
    let mut failures = Vec::new();
    let mut checked = 0;
    for run in std::fs::read_dir(dir.join("runs")).unwrap() {
        let run = run.unwrap().path();
        let run_name: &'static str = Box::leak(
            run.file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        let env: BTreeMap<String, String> =
            serde_json::from_str(&std::fs::read_to_string(run.join("env.json")).unwrap()).unwrap();
        // ALTO_ENV unset: the original falls back to DEVELOPMENT, alto to `dev`.
        let expected_dir = if case == "config_01_envs_yaml" && run_name == "no_alto_env" {
            run.parent().unwrap().join("dev").join("expected/isolated")
        } else {
            run.join("expected/isolated")
        };
        let project = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        common::copy_dir(&dir.join("project"), project.path());
        if case == "config_06_local_secrets_merge" {
            // alto refuses two local files (tested in config_cli.rs); the
            // original ignored the .yml one.
            std::fs::remove_file(project.path().join("alto.local.yml")).unwrap();
        }
        for entry in std::fs::read_dir(&expected_dir).unwrap() {
            let path = entry.unwrap().path();
            let key: &'static str = Box::leak(
                path.file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_boxed_str(),
            );
            if NOT_PLUGINS.contains(&(case, run_name, key)) {
                continue;
            }
            let mut args = vec!["config", "--show-secrets"];
            match key.split_once("--") {
                Some((target, tap)) => args.extend(["--tap", tap, target]),
                None => args.push(key),
            }
            let out = render(project.path(), home.path(), &env, &args);
            let expected = divergences
                .get(&(case, run_name, key))
                .cloned()
                .unwrap_or_else(|| {
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
                });
            checked += 1;
            if out != Ok(expected.clone()) {
                failures.push(format!(
                    "{run_name}/{key}: expected {expected}, got {out:?}"
                ));
            }
        }
    }
    assert!(checked > 0, "no renders checked for {case}");
    assert!(failures.is_empty(), "{case}:\n{}", failures.join("\n"));
}

fn render(
    project: &Path,
    home: &Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
) -> Result<Value, String> {
    let out = common::alto(project, home)
        .envs(env)
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn envs_yaml() {
    run_case("config_01_envs_yaml");
}

#[test]
fn format_env_dotenv_toml() {
    run_case("config_02_format_env_dotenv_toml");
}

#[test]
fn inherit_from() {
    run_case("config_04_inherit_from");
}

#[test]
fn env_var_overrides() {
    run_case("config_05_env_var_overrides");
}

#[test]
fn local_secrets_merge() {
    run_case("config_06_local_secrets_merge");
}

#[test]
fn env_sections_in_includes() {
    run_case("config_07_env_sections_in_includes");
}
