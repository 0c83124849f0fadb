//! `alto init`, `config`, `dump`, `list` and task names, driven through the
//! real binary on projects written to temporary directories.

mod common;

use common::Project;
use serde_json::json;

const BASIC: &str = r#"
default:
  project_name: demo
  load_path: raw
  taps:
    tap-x:
      pip_url: tap-x==1.0
      load_path: xns
      config:
        user: "@format {env[X_USER]}"
        plain: hello
      target-y:
        batch: 7
    tap-z:
      pip_url: tap-z==1.0
      config:
        token: "@format {env[Z_TOKEN]}"
  targets:
    target-y:
      pip_url: target-y==1.0
      config:
        schema: "@format {this.load_path}"
        batch: 1
prod:
  load_path: warehouse
"#;

#[test]
fn init_in_every_format_gives_a_working_project() {
    for format in ["yaml", "toml", "json", "kdl"] {
        let p = Project::new(&[]);
        let (code, _, err) = p.run(&["init", "--format", format, "--name", "quick", "--no-prompt"]);
        assert_eq!(code, 0, "{format}: {err}");
        for f in [
            format!("alto.{format}"),
            format!("alto.local.{format}"),
            ".env".into(),
            ".gitignore".into(),
        ] {
            assert!(p.path().join(&f).is_file(), "{format}: {f} missing");
        }
        let gitignore = std::fs::read_to_string(p.path().join(".gitignore")).unwrap();
        for line in [".alto/", ".env", "alto.local.*", "alto.secrets.*"] {
            assert!(
                gitignore.lines().any(|l| l == line),
                "{format}: .gitignore lacks {line}"
            );
        }
        let list = p.json(&["list", "--json"]);
        assert_eq!(list["project"], "quick", "{format}");
        assert_eq!(list["taps"][0]["name"], "tap-jsonl", "{format}");
        assert_eq!(list["targets"][0]["name"], "target-jsonl", "{format}");
        assert!(
            list["tasks"]
                .as_array()
                .unwrap()
                .contains(&json!("tap-jsonl:target-jsonl"))
        );
        assert_eq!(
            p.json(&["config", "target-jsonl", "--tap", "tap-jsonl"]),
            json!({"destination_path": "output/example", "do_timestamp_file": false}),
            "{format}"
        );
        assert_eq!(
            p.json(&["--env", "prod", "config", "target-jsonl"]),
            json!({"destination_path": "output/warehouse", "do_timestamp_file": false}),
            "{format}"
        );
    }
}

#[test]
fn init_never_overwrites() {
    let p = Project::new(&[(".env", "KEEP=1\n"), (".gitignore", "node_modules/")]);
    let (code, _, _) = p.run(&["init", "--no-prompt"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(p.path().join(".env")).unwrap(),
        "KEEP=1\n"
    );
    let gi = std::fs::read_to_string(p.path().join(".gitignore")).unwrap();
    assert!(gi.starts_with("node_modules/\n.alto/\n"), "{gi}");
    let before = std::fs::read_to_string(p.path().join("alto.yaml")).unwrap();
    let (code, _, err) = p.run(&["init", "--no-prompt", "--format", "toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("already has a config: alto.yaml"), "{err}");
    assert!(!p.path().join("alto.toml").exists());
    assert_eq!(
        std::fs::read_to_string(p.path().join("alto.yaml")).unwrap(),
        before
    );
}

#[test]
fn config_renders_per_tap_and_environment() {
    let p = Project::new(&[("alto.yaml", BASIC), (".env", "X_USER=alice\n")]);
    assert_eq!(
        p.json(&["config", "target-y"]),
        json!({"schema": "raw", "batch": 1})
    );
    assert_eq!(
        p.json(&["config", "target-y", "--tap", "tap-x"]),
        json!({"schema": "xns", "batch": 7})
    );
    // The override block of tap-x never leaks into tap-z's render.
    assert_eq!(
        p.json(&["config", "target-y", "--tap", "tap-z"]),
        json!({"schema": "raw", "batch": 1})
    );
    assert_eq!(
        p.json(&["--env", "PROD", "config", "target-y", "--tap", "tap-z"]),
        json!({"schema": "warehouse", "batch": 1})
    );
    assert_eq!(
        p.json(&["--show-secrets", "config", "tap-x"]),
        json!({"user": "alice", "plain": "hello"})
    );
}

#[test]
fn an_unset_variable_breaks_only_what_uses_it() {
    let p = Project::new(&[("alto.yaml", BASIC), (".env", "X_USER=alice\n")]);
    let (code, _, err) = p.run(&["config", "tap-z"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`Z_TOKEN` is not set, but `taps.tap-z.config.token` needs it"),
        "{err}"
    );
    assert!(err.contains("alto.yaml:17:"), "{err}");
    // Everything else keeps working.
    assert_eq!(p.run(&["list"]).0, 0);
    assert_eq!(p.run(&["config", "tap-x"]).0, 0);
}

#[test]
fn secrets_are_redacted_unless_asked_for() {
    let p = Project::new(&[
        ("alto.yaml", BASIC),
        (
            "alto.secrets.yaml",
            "default:\n  targets:\n    target-y:\n      config:\n        password: hunter22\n",
        ),
        (".env", "X_USER=alice\nZ_TOKEN=tok-123\n"),
    ]);
    let cfg = p.json(&["config", "target-y"]);
    assert_eq!(cfg["password"], "********");
    assert_eq!(cfg["schema"], "raw");
    let (_, dump, _) = p.run(&["dump"]);
    for secret in ["hunter22", "alice", "tok-123"] {
        assert!(!dump.contains(secret), "dump shows {secret}:\n{dump}");
    }
    assert!(dump.contains("hello"));
    let (_, shown, _) = p.run(&["dump", "--show-secrets"]);
    for secret in ["hunter22", "alice", "tok-123"] {
        assert!(shown.contains(secret), "--show-secrets hides {secret}");
    }
    // ALTO_ variables are secret too (they often carry credentials).
    let out = p
        .alto()
        .env("ALTO_TAPS__TAP_X__CONFIG__PLAIN", "s3cr3t")
        .args(["config", "tap-x"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("s3cr3t") && text.contains("********"),
        "{text}"
    );
}

#[test]
fn dump_selects_keys() {
    let p = Project::new(&[("alto.yaml", BASIC)]);
    assert_eq!(
        p.json(&["dump", "load_path", "taps.tap_x.load_path"]),
        json!({"load_path": "raw", "taps.tap_x.load_path": "xns"})
    );
    let (code, _, err) = p.run(&["dump", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("`nope` is not in the config"), "{err}");
}

#[test]
fn environment_from_dotenv_and_overrides_from_dotenv() {
    let p = Project::new(&[
        ("alto.yaml", BASIC),
        (
            ".env",
            "ALTO_ENV=prod\nALTO_TARGETS__TARGET_Y__CONFIG__BATCH=99\n",
        ),
    ]);
    assert_eq!(
        p.json(&["--show-secrets", "config", "target-y"]),
        json!({"schema": "warehouse", "batch": 99})
    );
    // The process wins over .env, --env over both.
    let out = p
        .alto()
        .env("ALTO_ENV", "dev")
        .args(["config", "target-y"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["schema"],
        "raw"
    );
    let out = p
        .alto()
        .env("ALTO_ENV", "dev")
        .args(["--env", "prod", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["environment"],
        "prod"
    );
}

#[test]
fn root_is_found_upwards_or_given() {
    let p = Project::new(&[("alto.yaml", BASIC), ("sub/dir/keep", "")]);
    let out = common::alto(&p.path().join("sub/dir"), p.home.path())
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let elsewhere = tempfile::tempdir().unwrap();
    let out = common::alto(elsewhere.path(), p.home.path())
        .args(["-r", p.path().to_str().unwrap(), "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = common::alto(elsewhere.path(), p.home.path())
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("alto init"));
}

#[test]
fn two_main_files_are_an_error_naming_both() {
    let p = Project::new(&[("alto.yaml", BASIC), ("alto.toml", "[default]\n")]);
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("alto.yaml and") && err.contains("alto.toml"),
        "{err}"
    );
    let p = Project::new(&[
        ("alto.yaml", BASIC),
        ("alto.local.yaml", "default: {}\n"),
        ("alto.local.yml", "default: {}\n"),
    ]);
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("alto.local.yaml and") && err.contains("alto.local.yml"),
        "{err}"
    );
}

#[test]
fn syntax_errors_point_into_the_file() {
    let cases = [
        (
            "alto.yaml",
            "default:\n  taps:\n    tap-x: [1, 2\n",
            "alto.yaml:",
        ),
        ("alto.toml", "[default]\nproject_name = \n", "alto.toml:2:"),
        ("alto.json", "{\"default\": {\"a\": }}", "alto.json:1:"),
        (
            "alto.kdl",
            "default {\n  a \"unterminated\n}\n",
            "alto.kdl:",
        ),
    ];
    for (file, text, place) in cases {
        let p = Project::new(&[(file, text)]);
        let (code, _, err) = p.run(&["list"]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains(place), "{file}: {err}");
        assert!(!err.contains("panicked"), "{file}: {err}");
    }
}

#[test]
fn semantic_errors_point_at_the_value() {
    let p = Project::new(&[(
        "alto.yaml",
        "default:\n  taps:\n    a:\n      inherit_from: b\n    b:\n      inherit_from: a\n",
    )]);
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 2);
    assert!(err.contains("cycle"), "{err}");
    assert!(err.contains("alto.yaml:"), "{err}");

    let p = Project::new(&[(
        "alto.yaml",
        "default:\n  taps:\n    a:\n      inherit_from: nope\n",
    )]);
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("inherits from `nope`") && err.contains("alto.yaml:4:21"),
        "{err}"
    );

    let p = Project::new(&[("alto.yaml", "project_name: x\ndefault: {}\n")]);
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`project_name` at the top of alto.yaml is not a section"),
        "{err}"
    );

    let p = Project::new(&[(
        "alto.yaml",
        "default:\n  targets:\n    t:\n      config:\n        x: \"@format {this.nope.key}\"\n",
    )]);
    let (code, _, err) = p.run(&["config", "t"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("this.nope.key") && err.contains("alto.yaml:5:"),
        "{err}"
    );
}

#[test]
fn kdl_projects_follow_the_natural_mapping() {
    let kdl = r#"
default {
    project_name "kdl-demo"
    load_path "raw"
    taps {
        tap-x {
            pip_url "tap-x==1"
            capabilities "catalog" "state"
            select "*.*"
            metadata {
                "*" replication-method="INCREMENTAL"
            }
            config {
                files {
                    - { entity "a"; path "a.csv"; }
                }
                delimiter ","
                limit 10
                strict #true
            }
        }
    }
    targets {
        target-y {
            pip_url "target-y==1"
            config schema="@format {this.load_path}"
        }
    }
}
"#;
    let p = Project::new(&[("alto.kdl", kdl)]);
    assert_eq!(
        p.json(&["config", "tap-x"]),
        json!({"files": [{"entity": "a", "path": "a.csv"}], "delimiter": ",", "limit": 10, "strict": true})
    );
    assert_eq!(p.json(&["config", "target-y"]), json!({"schema": "raw"}));
    let list = p.json(&["list", "--json"]);
    assert_eq!(list["taps"][0]["capabilities"], json!(["catalog", "state"]));
}

#[test]
fn task_names() {
    let p = Project::new(&[("alto.yaml", BASIC)]);
    let (_, out, _) = p.run(&["list"]);
    for t in [
        "tap-x:target-y",
        "tap-x:reservoir",
        "reservoir:tap-x-target-y",
        "build:tap-x",
        "catalog:tap-x",
        "state:tap-x-target-y",
    ] {
        assert!(out.lines().any(|l| l.trim() == t), "{t} not listed:\n{out}");
    }
    // An empty reservoir: nothing to replay, and the target is never built.
    let (code, _, err) = p.run(&["reservoir:tap-x-target-y"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing new to replay"), "{err}");
    let (code, _, err) = p.run(&["build:nope"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = p.run(&["tap-x:target-nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("names no task"), "{err}");
    let (code, _, _) = p.run(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn the_example_config_loads_in_every_environment() {
    let example = std::fs::read_to_string(common::fixtures().join("../alto.example.yaml")).unwrap();
    let p = Project::new(&[("alto.yaml", &example)]);
    for env in ["dev", "prod", "ci"] {
        let list = p.json(&["--env", env, "list", "--json"]);
        assert_eq!(list["taps"].as_array().unwrap().len(), 3, "{env}");
        assert_eq!(list["targets"].as_array().unwrap().len(), 2, "{env}");
        assert_eq!(list["utilities"].as_array().unwrap().len(), 2, "{env}");
    }
    let run = |args: &[&str]| {
        let out = p
            .alto()
            .env("PGUSER", "loader")
            .env("PGPASSWORD", "pw")
            .env("GITHUB_TOKEN", "ghp_x")
            .arg("--show-secrets")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let gh = run(&["config", "target-postgres", "--tap", "tap-github"]);
    assert_eq!(gh["default_target_schema"], "github");
    assert_eq!(gh["batch_size_rows"], 5000);
    assert_eq!(gh["database"], "warehouse_dev");
    let pg = run(&["config", "target-postgres", "--tap", "tap-postgres"]);
    assert!(pg.get("batch_size_rows").is_none());
    let billing = run(&["--env", "prod", "config", "tap-postgres-billing"]);
    assert_eq!(
        billing,
        json!({"host": "db.internal", "port": 5432, "user": "loader", "password": "pw", "database": "billing"})
    );
    assert_eq!(
        run(&[
            "--env",
            "prod",
            "config",
            "target-postgres",
            "--tap",
            "tap-postgres-billing"
        ])["default_target_schema"],
        "billing"
    );
    assert_eq!(
        run(&["--env", "prod", "config", "target-jsonl"])["destination_path"],
        "output/analytics"
    );
    assert_eq!(
        run(&["config", "tap-github"])["start_date"],
        "2024-06-01T00:00:00Z"
    );
}

#[test]
fn diagnostics_read_well() {
    let p = Project::new(&[(
        "alto.yaml",
        "default:\n  taps:\n    tap-x:\n      pip_url: [1, 2\n",
    )]);
    insta::assert_snapshot!("yaml_syntax_error", p.run(&["list"]).2);
    let p = Project::new(&[("alto.yaml", BASIC)]);
    insta::assert_snapshot!("unset_variable", p.run(&["config", "tap-x"]).2);
    insta::assert_snapshot!("list", p.run(&["list"]).1);
}

const TYPOS: &str = "default:
  project_name: typos
  buket: b
  _defaults: &defaults
    capabilities: [catalog]
  taps:
    tap-x:
      pip_ulr: tap-x==1.0
      target-y: {batch: 2}
      target-prod: {batch: 3}
    tap-x-eu:
      inherit_from: tap-x
  targets:
    target-y:
      pip_url: target-y==1.0
      schema: s
      config:
        schema: \"@format {this.targets.target-y.schema}\"
prod:
  targets:
    target-prod: {pip_url: target-prod==1.0}
";

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn unknown_keys_are_named_once_with_the_closest_key() {
    let p = Project::new(&[
        ("alto.yaml", TYPOS),
        // The same unknown key in a second file is still one warning.
        ("alto.local.yaml", "default:\n  buket: local\n"),
    ]);
    let (code, _, err) = p.run(&["dump"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        count(&err, "default: unknown key `buket`; did you mean `bucket`?"),
        1,
        "{err}"
    );
    assert_eq!(
        count(
            &err,
            "taps.tap-x: unknown key `pip_ulr`; did you mean `pip_url`?"
        ),
        1,
        "{err}"
    );
    // Not unknown: per-target blocks (of a target of any environment), `_`
    // keys, keys read by `{this...}`, and what tap-x-eu inherits.
    assert_eq!(count(&err, "unknown key"), 2, "{err}");
    assert!(!err.contains("tap-x-eu"), "{err}");
}

#[test]
fn strict_makes_an_unknown_key_an_error_at_the_key() {
    let p = Project::new(&[("alto.yaml", TYPOS)]);
    let (code, out, err) = p.run(&["--strict", "dump"]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("default: unknown key `buket`; did you mean `bucket`?"),
        "{err}"
    );
    assert!(err.contains("alto.yaml:3:3"), "{err}");
    assert!(err.contains("alto does not read this key"), "{err}");
    let p = Project::new(&[(
        "alto.yaml",
        "default:\n  taps:\n    tap-x:\n      pip_ulr: tap-x==1.0\n",
    )]);
    let (code, _, err) = p.run(&["--strict", "config", "tap-x"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("taps.tap-x: unknown key `pip_ulr`; did you mean `pip_url`?"),
        "{err}"
    );
    assert!(err.contains("alto.yaml:4:7"), "{err}");
    // A clean config is clean under --strict too.
    let p = Project::new(&[("alto.yaml", BASIC)]);
    let (code, _, err) = p.run(&["--strict", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("WARN"), "{err}");
}

#[test]
fn an_environment_without_a_section_is_named() {
    let p = Project::new(&[
        (
            "alto.yaml",
            "default: {project_name: e}\ndev: {}\nStaging: {}\n",
        ),
        ("alto.local.yaml", "default: {}\n"),
    ]);
    let warning =
        "environment `prod` has no section in alto.yaml, alto.local.yaml; known: dev, Staging";
    let (code, _, err) = p.run(&["--env", "prod", "dump"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(warning), "{err}");
    let out = p
        .alto()
        .env("ALTO_ENV", "prod")
        .arg("dump")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(warning));
    for args in [&["--env", "STAGING", "dump"][..], &["--env", "dev", "dump"]] {
        let (code, _, err) = p.run(args);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("has no section"), "{args:?}: {err}");
    }
    // The default `dev` is warned about only when asked for.
    let p = Project::new(&[("alto.yaml", "default: {project_name: e}\n")]);
    let (_, _, err) = p.run(&["dump"]);
    assert!(!err.contains("has no section"), "{err}");
    let (_, _, err) = p.run(&["--env", "dev", "dump"]);
    assert!(
        err.contains(
            "environment `dev` has no section in alto.yaml; known: none (only `default` applies)"
        ),
        "{err}"
    );
}

#[test]
fn a_plugin_without_pip_url_is_a_user_error_where_it_must_be_built() {
    let p = Project::new(&[("alto.yaml", TYPOS)]);
    for args in [
        &["show", "tap-x"][..],
        &["build", "tap-x", "--dry-run", "--offline"],
        &["build", "tap-x-eu", "--dry-run", "--offline"],
        &["tap-x:target-y"],
    ] {
        let (code, _, err) = p.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        let name = if args.contains(&"tap-x-eu") {
            "tap-x-eu"
        } else {
            "tap-x"
        };
        assert!(
            err.contains(&format!(
                "tap `{name}` has no `pip_url`, so alto cannot build it"
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("this tap has no pip_url"), "{args:?}: {err}");
        assert!(err.contains("did you mean `pip_url`?"), "{args:?}: {err}");
        assert!(!err.contains("damaged"), "{args:?}: {err}");
    }
    let (_, _, err) = p.run(&["show", "tap-x-eu"]);
    assert!(
        err.contains("`pip_ulr` (in taps.tap-x) is not a key"),
        "{err}"
    );
    // Everything: skipped with a warning, the rest is listed.
    let (code, out, err) = p.run(&["build", "--dry-run", "--offline"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("target-y"), "{out}");
    assert!(
        err.contains("tap `tap-x` has no `pip_url`, so alto cannot build it; skipping it"),
        "{err}"
    );
    assert_eq!(count(&err, "skipping it"), 2, "{err}");
}

#[test]
fn inheriting_plugins_run_the_parents_console_script() {
    let p = Project::new(&[(
        "alto.yaml",
        "default:
  taps:
    tap-x: {pip_url: tap-x==1.0}
    tap-x-eu: {inherit_from: tap-x, config: {region: eu}}
    tap-m: {pip_url: tap-m==1.0, entrypoint: tap_m.main}
    tap-m-eu: {inherit_from: tap-m}
    tap-own: {inherit_from: tap-x, executable: tap-own}
",
    )]);
    let entry = |name: &str| p.json(&["show", name, "--json"])["entry"].clone();
    assert_eq!(entry("tap-x-eu"), json!({"Script": "tap-x"}));
    assert_eq!(entry("tap-m-eu"), json!({"Module": "tap_m.main"}));
    assert_eq!(entry("tap-own"), json!({"Script": "tap-own"}));
    // One artifact for parent and child: the entry is not a key input.
    assert_eq!(
        p.json(&["show", "tap-x", "--json"])["key"],
        p.json(&["show", "tap-x-eu", "--json"])["key"]
    );
}

// ----- hostile input -------------------------------------------------------

#[test]
fn a_syntax_error_on_a_very_long_line_is_a_diagnostic_not_a_panic() {
    for before in ["x".repeat(100_000), "é".repeat(60_000)] {
        let text = format!("default:\n  a: {before} : [\n");
        let p = Project::new(&[("alto.yaml", &text)]);
        let (code, _, err) = p.run(&["dump"]);
        assert_eq!(code, 2, "{}", &err[..err.len().min(2000)]);
        assert!(
            err.contains("alto.yaml:2:"),
            "{}",
            &err[..err.len().min(2000)]
        );
        assert!(!err.contains("panicked"));
        assert!(err.len() < 4_000, "the whole line was printed");
    }
}

#[test]
fn a_byte_order_mark_is_read_past_in_every_file() {
    let p = Project::new(&[
        (
            "alto.yaml",
            "\u{feff}default:\n  project_name: marked\n  load_path: raw\nprod:\n  load_path: wh\n",
        ),
        (
            "alto.local.json",
            "\u{feff}{\"default\": {\"bucket\": \"b\"}}",
        ),
        (".env", "\u{feff}ALTO_ENV=prod\n"),
    ]);
    let dump = p.json(&["dump"]);
    assert_eq!(dump["project_name"], "marked", "{dump}");
    assert_eq!(dump["bucket"], "b", "{dump}");
    assert_eq!(dump["load_path"], "wh", "{dump}");
    for (file, text) in [
        (
            "alto.toml",
            "\u{feff}[default]\nproject_name = \"marked\"\n",
        ),
        (
            "alto.kdl",
            "\u{feff}default {\n  project_name \"marked\"\n}\n",
        ),
        (
            "alto.json",
            "\u{feff}{\"default\": {\"project_name\": \"marked\"}}",
        ),
    ] {
        let p = Project::new(&[(file, text)]);
        assert_eq!(p.json(&["dump"])["project_name"], "marked", "{file}");
    }
}

#[test]
fn a_key_given_twice_is_an_error_pointing_at_both() {
    let cases = [
        (
            "alto.yaml",
            "default:\n  taps:\n    tap-x: {pip_url: x}\n  targets: {}\n  taps:\n    tap-y: {pip_url: y}\n",
            "alto.yaml:5:3",
        ),
        (
            "alto.json",
            "{\"default\": {\"taps\": {\"tap-x\": {}},\n \"taps\": {}}}",
            "alto.json:2:2",
        ),
        (
            "alto.kdl",
            "default {\n  taps {\n  }\n  taps {\n  }\n}\n",
            "alto.kdl:4:3",
        ),
    ];
    for (file, text, place) in cases {
        let p = Project::new(&[(file, text)]);
        let (code, _, err) = p.run(&["dump"]);
        assert_eq!(code, 2, "{file}: {err}");
        assert!(err.contains("`taps` is given twice"), "{file}: {err}");
        assert!(err.contains(place), "{file}: {err}");
        assert!(err.contains("first given here"), "{file}: {err}");
        assert!(err.contains("given again here"), "{file}: {err}");
    }
    // TOML refuses it too (its parser does).
    let p = Project::new(&[(
        "alto.toml",
        "[default.taps.tap-x]\npip_url = \"x\"\n[default.taps.tap-x]\npip_url = \"y\"\n",
    )]);
    let (code, _, err) = p.run(&["dump"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("alto.toml:3:"), "{err}");
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    let mut text =
        "default:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
    for i in 1..=12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    let p = Project::new(&[("alto.yaml", &text)]);
    let start = std::time::Instant::now();
    let (code, _, err) = p.run(&["dump"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("alto.yaml"), "{err}");
    assert!(err.contains("aliases"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn deep_kdl_is_a_diagnostic_not_a_stack_overflow() {
    let deep = format!(
        "default {{\n{}{}",
        "a {\n".repeat(10_000),
        "}\n".repeat(10_001)
    );
    let p = Project::new(&[("alto.kdl", &deep)]);
    let (code, _, err) = p.run(&["dump"]);
    assert_eq!(code, 2, "{}", &err[..err.len().min(2000)]);
    assert!(err.contains("recursion limit"), "{err}");
    assert!(err.contains("alto.kdl:129:3"), "{err}");
    // Comments the parser would recurse on are read past.
    let comments = format!(
        "{}{}\n/* {} */\ndefault {{\n  project_name \"p\"\n}}\n",
        "/*".repeat(10_000),
        "*/".repeat(10_000),
        "* / ".repeat(10_000)
    );
    let p = Project::new(&[("alto.kdl", &comments)]);
    assert_eq!(p.json(&["dump"])["project_name"], "p");
}

/// Everything under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_environment_name_cannot_reach_outside_the_project() {
    let config = "default:\n  taps:\n    tap-x: {pip_url: x}\n";
    let p = Project::new(&[("a/b/c/alto.yaml", config)]);
    let before = tree(p.path());
    for env in ["../../../../x", "../x", "..", "a/b", "x\\y", "with space"] {
        for command in [&["dump"][..], &["list"], &["run", "tap-x:target-y"]] {
            let mut args = vec!["--root", "a/b/c", "--env", env];
            args.extend_from_slice(command);
            let (code, _, err) = p.run(&args);
            assert_eq!(code, 2, "{env} {command:?}: {err}");
            assert!(err.contains("--env"), "{env}: {err}");
            assert!(err.contains("cannot be used"), "{env}: {err}");
        }
    }
    // From the process environment, and from a cloned project's .env.
    let out = p
        .alto()
        .args(["--root", "a/b/c", "dump"])
        .env("ALTO_ENV", "../../../../x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ALTO_ENV"), "{err}");
    assert_eq!(tree(p.path()), before, "alto wrote outside a/b/c");

    let p = Project::new(&[
        ("a/b/c/alto.yaml", config),
        ("a/b/c/.env", "X=1\nALTO_ENV=../../../../x\n"),
    ]);
    let before = tree(p.path());
    for command in [&["dump"][..], &["run", "tap-x:target-y"]] {
        let mut args = vec!["--root", "a/b/c"];
        args.extend_from_slice(command);
        let (code, _, err) = p.run(&args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(".env"), "{err}");
        assert!(err.contains(".env:2:"), "{err}");
    }
    assert_eq!(tree(p.path()), before);
}

#[test]
fn a_plugin_name_cannot_reach_outside_the_project() {
    for (file, text, place) in [
        (
            "alto.yaml",
            "default:\n  taps:\n    ../../x: {pip_url: x}\n",
            "alto.yaml:3:5",
        ),
        (
            "alto.json",
            "{\"default\": {\"targets\": {\"a/b\": {\"pip_url\": \"x\"}}}}",
            "alto.json:1:27",
        ),
        (
            "alto.kdl",
            "default {\n  utilities {\n    \"..\" pip_url=\"x\"\n  }\n}\n",
            "alto.kdl:3:5",
        ),
    ] {
        let p = Project::new(&[(file, text)]);
        for command in ["dump", "list", "build"] {
            let (code, _, err) = p.run(&[command]);
            assert_eq!(code, 2, "{file} {command}: {err}");
            assert!(err.contains("cannot be used"), "{file}: {err}");
            assert!(err.contains(place), "{file}: {err}");
        }
        assert!(!p.path().join(".alto").exists() || tree(&p.path().join(".alto")).is_empty());
    }
}
