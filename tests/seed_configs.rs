//! The original alto's own configs (fixtures/seed_configs, copied from the
//! golden set) load unchanged: `list`, `config` for every plugin, and
//! `build --dry-run --offline`, in every environment of each file.

mod common;

use common::Project;

const VARS: [(&str, &str); 2] = [
    ("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/gcp.json"),
    ("CI_DATASET", "ci_ds"),
];

fn seed(file: &str) -> String {
    std::fs::read_to_string(common::fixtures().join("seed_configs").join(file)).unwrap()
}

fn check(p: &Project, envs: &[&str]) {
    for env in envs {
        let run = |args: &[&str]| {
            let out = p
                .alto()
                .envs(VARS)
                .arg("--env")
                .arg(env)
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, out, err) = run(&["--json", "list"]);
        assert_eq!(code, Some(0), "{env}: {err}");
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut names = Vec::new();
        for kind in ["taps", "targets", "utilities"] {
            for pl in list[kind].as_array().unwrap() {
                names.push(pl["name"].as_str().unwrap().to_string());
            }
        }
        assert!(!names.is_empty(), "{env}");
        for name in &names {
            let (code, _, err) = run(&["config", name]);
            assert_eq!(code, Some(0), "{env}: alto config {name}: {err}");
        }
        for tap in list["taps"].as_array().unwrap() {
            for target in list["targets"].as_array().unwrap() {
                let (code, _, err) = run(&[
                    "config",
                    target["name"].as_str().unwrap(),
                    "--tap",
                    tap["name"].as_str().unwrap(),
                ]);
                assert_eq!(code, Some(0), "{env}: {err}");
            }
        }
        let (code, out, err) = run(&["--json", "build", "--dry-run", "--offline"]);
        assert_eq!(code, Some(0), "{env}: {err}");
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(!rows.as_array().unwrap().is_empty());
    }
}

#[test]
fn the_original_example_loads_in_every_environment() {
    // The example keeps the Mongo password in alto.secrets.yaml, as its comments say.
    let p = Project::new(&[
        ("alto.yaml", &seed("original-alto.example.yaml")),
        (
            "alto.secrets.yaml",
            "prod:\n  taps:\n    tap-mongodb:\n      config:\n        password: s3cret\n",
        ),
    ]);
    check(&p, &["dev", "ci", "prod"]);
    // `{this.taps.tap_mongodb...}` finds `tap-mongodb`, and the secret stays hidden unless asked.
    let out = p
        .alto()
        .args([
            "--env",
            "prod",
            "--show-secrets",
            "config",
            "tap-mongodb--prod1",
        ])
        .output()
        .unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        cfg["mongo"]["host"],
        "mongodb+srv://some-mongo-user:s3cret@something.mongodb.net/yourdb"
    );
    let (_, out, _) = p.run(&["--env", "prod", "config", "tap-mongodb--prod1"]);
    assert!(!out.contains("s3cret"), "{out}");
    // The extension is accepted, with a warning that it is not run.
    let (code, _, err) = p.run(&["list"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("extension `evidence`") && err.contains("not run"),
        "{err}"
    );
}

#[test]
fn an_unset_variable_breaks_only_what_needs_it() {
    let p = Project::new(&[("alto.yaml", &seed("original-alto.example.yaml"))]);
    let (code, _, err) = p.run(&["config", "target-bigquery"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`GOOGLE_APPLICATION_CREDENTIALS` is not set")
            && err.contains("config.credentials_path"),
        "{err}"
    );
    assert_eq!(p.run(&["config", "target-jsonl"]).0, 0);
    assert_eq!(p.run(&["list"]).0, 0);
    assert_eq!(p.run(&["build", "--dry-run", "--offline"]).0, 0);
}

#[test]
fn the_minimal_config_and_the_init_template_load() {
    let p = Project::new(&[("alto.yaml", &seed("seed-minimal.alto.yaml"))]);
    check(&p, &["dev"]);
    let p = Project::new(&[("alto.toml", &seed("original-init-template.toml"))]);
    check(&p, &["dev", "github_actions"]);
    let cfg = p.json(&[
        "--env",
        "github_actions",
        "config",
        "target-jsonl",
        "--tap",
        "tap-bls",
    ]);
    assert_eq!(cfg["destination_path"], "/github/workspace/output/bls");
}
