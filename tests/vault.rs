//! Secrets from HashiCorp Vault, against a fake of its HTTP API
//! (`tests/fake_vault.py`): the Dynaconf-style layer per environment,
//! `{vault[path#key]}`, redaction in `config`, `dump` and run logs, each
//! failure with its exit code, and commands that never contact Vault.

mod common;

use common::{FakeVault, Machine, Project, closed_port, plugin_project};
use serde_json::{Value, json};

const TOKEN: &str = "s.fake-token-9d2e";

/// One tap the Vault layer fills in.
const LAYERED: &str = "default:
  project_name: v
  taps:
    tap-x:
      pip_url: tap-x==1
      config:
        user: main-user
        host: db.example
prod: {}
";

/// The same, and taps naming Vault secrets directly (two of them wrongly).
const CONFIG: &str = "default:
  project_name: v
  taps:
    tap-x:
      pip_url: tap-x==1
      config:
        user: main-user
        host: db.example
    tap-y:
      pip_url: tap-y==1
      config:
        password: \"@format {vault[pg#password]}\"
        dsn: \"@format postgres://{vault[pg#user]}@db\"
    tap-z:
      pip_url: tap-z==1
      config:
        password: \"@format {vault[pg#nokey]}\"
    tap-w:
      pip_url: tap-w==1
      config:
        password: \"@format {vault[nope#password]}\"
prod: {}
";

fn secrets() -> Value {
    json!({
        "dynaconf/default": {
            "TAPS__TAP_X__CONFIG__PASSWORD": "pw-default",
            "TAPS__TAP_X__CONFIG__PORT": "5432",
            "TAPS__TAP_X__CONFIG__USER": "vault-user",
        },
        "dynaconf/prod": {"TAPS__TAP_X__CONFIG__PASSWORD": "pw-prod"},
        "pg": {"password": "pg-s3cret", "user": "pg-user"},
        "team/alto/default": {"taps__tap_x__config__password": "pw-team"},
    })
}

fn vault(kv_version: u8) -> FakeVault {
    FakeVault::start(&json!({
        "kv_version": kv_version,
        "token": TOKEN,
        "role_id": "role-1",
        "secret_id": "secret-id-77c1",
        "secrets": secrets(),
    }))
}

/// alto with `vars` set: (exit code, stdout, stderr).
fn run(p: &Project, vars: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = p.alto();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether a diagnostic says `needle`, however miette wrapped its lines.
fn says(err: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    squash(err).contains(&squash(needle))
}

fn json_of(p: &Project, vars: &[(&str, &str)], args: &[&str]) -> Value {
    let (code, out, err) = run(p, vars, args);
    assert_eq!(code, 0, "alto {args:?}:\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Dynaconf's variables, as the original's users set them.
fn dynaconf(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VAULT_ENABLED_FOR_DYNACONF", "true".into()),
        ("VAULT_URL_FOR_DYNACONF", url.into()),
        ("VAULT_TOKEN_FOR_DYNACONF", TOKEN.into()),
        ("VAULT_KV_VERSION_FOR_DYNACONF", "2".into()),
    ]
}

fn refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn the_layer_is_read_per_environment_after_secrets_files_and_before_alto_variables() {
    let v = vault(2);
    let p = Project::new(&[
        ("alto.yaml", LAYERED),
        (
            "alto.secrets.yaml",
            "default:\n  taps:\n    tap-x:\n      config:\n        password: from-secrets-file\n        extra: kept\n",
        ),
    ]);
    let vars = dynaconf(&v.url());
    let vars = refs(&vars);
    let c = json_of(&p, &vars, &["--show-secrets", "config", "tap-x"]);
    assert_eq!(c["password"], "pw-default", "{c}");
    assert_eq!(c["user"], "vault-user", "{c}");
    // Values are read as TOML where they can be.
    assert_eq!(c["port"], 5432, "{c}");
    assert_eq!(
        (&c["extra"], &c["host"]),
        (&json!("kept"), &json!("db.example"))
    );
    let c = json_of(
        &p,
        &vars,
        &["--env", "prod", "--show-secrets", "config", "tap-x"],
    );
    assert_eq!(c["password"], "pw-prod", "{c}");
    let mut over = vars.clone();
    over.push(("ALTO_TAPS__TAP_X__CONFIG__PASSWORD", "from-alto-var"));
    let c = json_of(&p, &over, &["--show-secrets", "config", "tap-x"]);
    assert_eq!(c["password"], "from-alto-var", "{c}");

    // Everything from Vault is secret.
    let c = json_of(&p, &vars, &["config", "tap-x"]);
    for key in ["password", "user", "port"] {
        assert_eq!(c[key], "********", "{key}: {c}");
    }
    assert_eq!(c["host"], "db.example");
    let (code, dump, err) = run(&p, &vars, &["dump"]);
    assert_eq!(code, 0, "{err}");
    for leak in ["pw-default", "vault-user", "5432", TOKEN] {
        assert!(!dump.contains(leak), "dump shows {leak}:\n{dump}");
    }
    assert!(dump.contains("********"), "{dump}");
    let (_, shown, _) = run(&p, &vars, &["dump", "--show-secrets"]);
    assert!(shown.contains("pw-default"), "{shown}");

    // The layer reads `<path>/default` and `<path>/<env>`, nothing else.
    let asked: Vec<String> = v.requests().into_iter().collect();
    assert!(
        asked
            .iter()
            .all(|r| r.starts_with("GET /v1/secret/data/dynaconf/")),
        "{asked:?}"
    );
    assert!(asked.contains(&"GET /v1/secret/data/dynaconf/prod".to_string()));
}

#[test]
fn alto_names_a_vault_section_and_vaults_own_variables() {
    let v = FakeVault::start(&json!({
        "kv_version": 1, "mount": "kv", "token": TOKEN, "secrets": secrets(),
    }));
    let local = format!(
        "default:\n  vault:\n    enabled: true\n    url: {}\n    token: {TOKEN}\n    kv_version: 1\n    mount_point: kv\n    path: team/alto\n",
        v.url()
    );
    let p = Project::new(&[("alto.yaml", LAYERED), ("alto.local.yaml", &local)]);
    let c = json_of(&p, &[], &["--show-secrets", "config", "tap-x"]);
    assert_eq!(c["password"], "pw-team", "{c}");
    // The section configures alto: `dump` does not show it, nor its token.
    let (code, dump, err) = run(&p, &[], &["dump", "--show-secrets"]);
    assert_eq!(code, 0, "{err}");
    assert!(!dump.contains(TOKEN) && !dump.contains("vault"), "{dump}");
    assert!(!err.contains("unknown key"), "{err}");

    // VAULT_ADDR and VAULT_TOKEN, Vault's standard variables.
    std::fs::write(
        p.path().join("alto.local.yaml"),
        "default:\n  vault: {enabled: true, kv_version: 1, mount_point: kv, path: team/alto}\n",
    )
    .unwrap();
    let url = v.url();
    let vars = [("VAULT_ADDR", url.as_str()), ("VAULT_TOKEN", TOKEN)];
    let c = json_of(&p, &vars, &["--show-secrets", "config", "tap-x"]);
    assert_eq!(c["password"], "pw-team", "{c}");
}

#[test]
fn vault_fields_read_one_value_with_approle_login() {
    let v = vault(1);
    let p = Project::new(&[("alto.yaml", CONFIG)]);
    let url = v.url();
    let vars = [
        ("VAULT_ADDR", url.as_str()),
        ("VAULT_ROLE_ID_FOR_DYNACONF", "role-1"),
        ("VAULT_SECRET_ID_FOR_DYNACONF", "secret-id-77c1"),
    ];
    let c = json_of(&p, &vars, &["--show-secrets", "config", "tap-y"]);
    assert_eq!(c["password"], "pg-s3cret");
    assert_eq!(c["dsn"], "postgres://pg-user@db");
    let (code, out, err) = run(&p, &vars, &["config", "tap-y"]);
    assert_eq!(code, 0, "{err}");
    for leak in ["pg-s3cret", "pg-user", "secret-id-77c1"] {
        assert!(
            !out.contains(leak) && !err.contains(leak),
            "{leak}: {out}{err}"
        );
    }
    // One login per process, one read per secret; no layer unless turned on.
    let asked = v.requests();
    assert_eq!(
        asked[..2],
        ["POST /v1/auth/approle/login", "GET /v1/secret/pg"],
        "{asked:?}"
    );
    assert_eq!(asked.len(), 4, "two runs of alto: {asked:?}");
    assert!(!asked.iter().any(|r| r.contains("dynaconf")), "{asked:?}");
}

#[test]
fn each_failure_names_what_needed_vault_and_never_the_token() {
    let v = vault(2);
    let p = Project::new(&[("alto.yaml", CONFIG)]);
    let live = v.url();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let check = |vars: &[(&str, &str)], args: &[&str], code: i32, needles: &[&str]| {
        let (got, _, err) = run(&p, vars, args);
        assert_eq!(got, code, "{args:?}: {err}");
        for n in needles {
            assert!(says(&err, n), "{args:?}: no `{n}` in:\n{err}");
        }
        for leak in [TOKEN, "wrong-token-31", "secret-id-77c1", "bad-secret-id"] {
            assert!(!err.contains(leak), "{args:?} shows {leak}:\n{err}");
        }
    };
    let kv2 = ("VAULT_KV_VERSION_FOR_DYNACONF", "2");
    // Vault unreachable: exit 1, naming what needed it and where it was looked for.
    check(
        &[
            ("VAULT_ENABLED_FOR_DYNACONF", "true"),
            ("VAULT_URL_FOR_DYNACONF", &dead),
            ("VAULT_TOKEN_FOR_DYNACONF", TOKEN),
        ],
        &["config", "tap-x"],
        1,
        &[
            "VAULT_ENABLED_FOR_DYNACONF",
            "VAULT_URL_FOR_DYNACONF",
            "cannot be reached",
        ],
    );
    check(
        &[("VAULT_ADDR", &dead), ("VAULT_TOKEN", TOKEN)],
        &["config", "tap-y"],
        1,
        &["taps.tap-y.config.password", "secret/pg", "VAULT_ADDR"],
    );
    // A denied token or AppRole login: exit 1, naming the variable.
    check(
        &[
            ("VAULT_ADDR", &live),
            ("VAULT_TOKEN", "wrong-token-31"),
            kv2,
        ],
        &["config", "tap-y"],
        1,
        &["refused the token from VAULT_TOKEN", "HTTP 403"],
    );
    check(
        &[
            ("VAULT_ADDR", &live),
            ("VAULT_ROLE_ID_FOR_DYNACONF", "role-1"),
            ("VAULT_SECRET_ID_FOR_DYNACONF", "bad-secret-id"),
            kv2,
        ],
        &["config", "tap-y"],
        1,
        &["AppRole login of VAULT_ROLE_ID_FOR_DYNACONF"],
    );
    // A missing secret or key: exit 2, naming the config key.
    let ok = [("VAULT_ADDR", live.as_str()), ("VAULT_TOKEN", TOKEN), kv2];
    check(
        &ok,
        &["config", "tap-w"],
        2,
        &["taps.tap-w.config.password", "no secret secret/nope"],
    );
    check(
        &ok,
        &["config", "tap-z"],
        2,
        &[
            "taps.tap-z.config.password",
            "no key `nokey`",
            "its keys: password, user",
        ],
    );
    // The layer's path missing altogether: exit 2, naming both places.
    let mut layer = ok.to_vec();
    layer.push(("VAULT_ENABLED_FOR_DYNACONF", "1"));
    layer.push(("VAULT_PATH_FOR_DYNACONF", "elsewhere"));
    check(
        &layer,
        &["config", "tap-x"],
        2,
        &[
            "secret/elsewhere/default or secret/elsewhere/dev",
            "VAULT_PATH_FOR_DYNACONF",
        ],
    );
    // No credentials, or a bad setting: the user's to fix (exit 2).
    check(
        &[("VAULT_ADDR", &live)],
        &["config", "tap-y"],
        2,
        &["taps.tap-y.config.password", "no Vault token"],
    );
    check(
        &[
            ("VAULT_ADDR", &live),
            ("VAULT_KV_VERSION_FOR_DYNACONF", "3"),
        ],
        &["list"],
        2,
        &["VAULT_KV_VERSION_FOR_DYNACONF must be 1 or 2"],
    );
}

#[test]
fn commands_that_render_no_secret_never_contact_vault() {
    let v = vault(2);
    let p = Project::new(&[("alto.yaml", CONFIG)]);
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for url in [dead.as_str(), v.url().as_str()] {
        let vars = dynaconf(url);
        let vars = refs(&vars);
        for args in [
            &["list"][..],
            &["show", "tap-y"],
            &["--help"],
            &["config", "--help"],
        ] {
            let (code, _, err) = run(&p, &vars, args);
            assert_eq!(code, 0, "{url} {args:?}: {err}");
        }
    }
    assert_eq!(v.requests(), Vec::<String>::new());
    // Without the layer, only what renders a `{vault[...]}` field needs Vault.
    let vars = [("VAULT_ADDR", dead.as_str()), ("VAULT_TOKEN", TOKEN)];
    let (code, _, err) = run(&p, &vars, &["config", "tap-x"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run(&p, &vars, &["config", "tap-y"]);
    assert_eq!(code, 1);
}

#[test]
fn a_private_ca_is_trusted_through_vault_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(d)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=alto test CA",
        "-days",
        "2",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let v = FakeVault::start(&json!({
        "kv_version": 2, "token": TOKEN, "secrets": secrets(),
        "tls": [d.join("leaf.pem"), d.join("leaf.key")],
    }));
    let p = Project::new(&[("alto.yaml", CONFIG)]);
    let url = format!("https://127.0.0.1:{}", v.port);
    let ca = d.join("ca.pem");
    let mut vars = vec![
        ("VAULT_ADDR", url.as_str()),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_KV_VERSION_FOR_DYNACONF", "2"),
    ];
    // The system's roots alone do not know the private CA.
    let (code, _, err) = run(&p, &vars, &["config", "tap-y"]);
    assert_eq!(code, 1, "{err}");
    assert!(says(&err, "cannot be reached"), "{err}");
    vars.push(("VAULT_CACERT", ca.to_str().unwrap()));
    let c = json_of(&p, &vars, &["--show-secrets", "config", "tap-y"]);
    assert_eq!(c["password"], "pg-s3cret");
}

#[test]
fn run_logs_never_show_vault_secrets() {
    let v = vault(2);
    let config = "default:\n  project_name: vaulted\n  load_path: raw\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      config:\n        rows: 3\n        log_config: true\n        dbpass: \"@format {vault[pg#password]}\"\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n";
    let p = plugin_project(config);
    let m = Machine::new(true);
    // The pipeline with the Vault layer at `pipes`: (exit code, stderr).
    let run_with = |v: &FakeVault| {
        let out = p
            .on(&m)
            .env("VAULT_ENABLED_FOR_DYNACONF", "true")
            .env("VAULT_URL_FOR_DYNACONF", v.url())
            .env("VAULT_TOKEN_FOR_DYNACONF", TOKEN)
            .env("VAULT_KV_VERSION_FOR_DYNACONF", "2")
            .env("VAULT_PATH_FOR_DYNACONF", "pipes")
            .arg("tap-fixture:target-fixture")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run_with(&v);
    // `pipes/default` is missing: the layer reads `pipes/dev` alone.
    assert_eq!(code, Some(2), "{err}");
    assert!(
        says(&err, "secret/pipes/default or secret/pipes/dev"),
        "{err}"
    );
    drop(v);
    let v = FakeVault::start(&json!({
        "kv_version": 2, "token": TOKEN,
        "secrets": {
            "pipes/dev": {"TAPS__TAP_FIXTURE__CONFIG__TOKEN": "vault-layer-t0ken"},
            "pg": {"password": "vault-field-passw0rd"},
        },
    }));
    let (code, err) = run_with(&v);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("tap-fixture: config"), "{err}");
    let mut texts = vec![err];
    for entry in std::fs::read_dir(p.path().join(".alto/logs/dev")).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(texts.len() > 1, "no run log was written");
    for text in &texts {
        for leak in ["vault-layer-t0ken", "vault-field-passw0rd", TOKEN] {
            assert!(!text.contains(leak), "{leak} leaked:\n{text}");
        }
        assert!(text.contains("********"), "{text}");
    }
}
