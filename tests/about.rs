//! Plugins that describe themselves: a tap without `capabilities` runs with
//! what its `--about` says (the fixture tap, and the real
//! meltanolabs-tap-postgres's `--about --format json` against a real
//! PostgreSQL), the answer cached and shared through the remote; a plugin
//! that cannot answer is an error naming the key to set.

mod common;

use common::{Machine, Postgres, plugin_project};
use serde_json::Value;

fn about_files(p: &common::Project, project: &str) -> Vec<String> {
    std::fs::read_dir(p.home.path().join(".alto").join(project).join("about"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn fixture_tap_without_capabilities_asks_its_about() {
    let p = plugin_project(
        "default:\n  project_name: about\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      select: [users]\n      config:\n        rows: 3\n    tap-mute:\n      pip_url: ./plugins/target-fixture\n      executable: target-fixture\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n",
    );
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tap-fixture: asking its --about"), "{err}");
    // Its --about says catalog and state: the catalog's selection applied
    // (users only) and the state passed on the next run.
    assert!(!p.path().join("out/orders.jsonl").exists());
    assert_eq!(
        about_files(&p, "about").len(),
        2,
        "the answer and its record"
    );
    let (code, _, err) = p.run_on(&m, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("asking its --about"), "asked again: {err}");
    let users = std::fs::read_to_string(p.path().join("out/users.jsonl")).unwrap();
    let ids: Vec<i64> = users
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);

    // A plugin that cannot answer: an error naming the key to set, exit 2.
    let (code, _, err) = p.run_on(&m, &["tap-mute:target-fixture"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tap-mute has no `capabilities`"), "{err}");
    assert!(err.contains("taps.tap-mute"), "{err}");
}

#[test]
fn tap_postgres_describes_itself() {
    let pg = Postgres::start();
    pg.sql("CREATE TABLE items (id integer PRIMARY KEY, name text)");
    pg.sql("INSERT INTO items VALUES (1, 'a'), (2, 'b')");
    // No `capabilities`: its `--about --format json` says them.
    let config = format!(
        "default:\n  project_name: pgabout\n  taps:\n    tap-postgres:\n      pip_url: meltanolabs-tap-postgres==0.10.0\n      select: [\"public-items.*\"]\n      metadata:\n        public-items:\n          replication-method: INCREMENTAL\n          replication-key: id\n      config:\n        host: 127.0.0.1\n        port: {}\n        user: postgres\n        password: unused\n        database: postgres\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n",
        pg.port
    );
    let p = plugin_project(&config);
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["tap-postgres:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tap-postgres: asking its --about"), "{err}");
    let answer = about_files(&p, "pgabout")
        .into_iter()
        .find(|f| !f.ends_with(".meta.json"))
        .expect("the --about answer in the remote");
    let answer: Value = serde_json::from_slice(
        &std::fs::read(p.home.path().join(".alto/pgabout/about").join(answer)).unwrap(),
    )
    .unwrap();
    let caps: Vec<&str> = answer["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for cap in ["catalog", "state", "discover", "about"] {
        assert!(caps.contains(&cap), "{caps:?}");
    }
    // The settings, with which are secret (what `alto add` would need).
    assert_eq!(answer["settings"]["properties"]["password"]["secret"], true);

    // Another machine sharing the remote substitutes the answer, and the
    // state capability it gives makes the second run incremental.
    pg.sql("INSERT INTO items VALUES (3, 'c')");
    let other = Machine::new(true);
    let (code, _, err) = p.run_on(&other, &["tap-postgres:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("asking its --about"), "asked again: {err}");
    let ids: Vec<i64> = std::fs::read_to_string(p.path().join("out/public-items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.iter().filter(|i| **i == 3).count(), 1, "{ids:?}");
    assert_eq!(
        ids.iter().filter(|i| **i == 1).count(),
        1,
        "not incremental: {ids:?}"
    );
}

/// `alto add`: the plugin lands in alto.yaml under `default` with the file's
/// comments kept, built, its capabilities and setting names (secrets marked)
/// from its --about; the new tap then runs. A name taken, a bad name or a
/// build that fails leaves the file as it was.
#[test]
fn add_writes_builds_and_describes_a_plugin() {
    let config = "# the team's project\ndefault:\n  project_name: adding\n  taps:\n    # the old one\n    tap-old:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog]\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture  # local\n      config:\n        destination: out\nprod:\n  project_name: adding-prod\n";
    let p = plugin_project(config);
    let m = Machine::new(true);
    let file = p.path().join("alto.yaml");
    let (code, out, err) = p.run_on(
        &m,
        &[
            "add",
            "tap",
            "tap-new",
            "--pip-url",
            "./plugins/tap-fixture",
            "--executable",
            "tap-fixture",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("added tap-new to alto.yaml under default.taps"),
        "{err}"
    );
    assert!(
        out.contains("api_key (secret: set it in alto.secrets.yaml)"),
        "{out}"
    );
    assert!(out.contains("rows (required)"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    // Everything that was there is still there, in order, and the new
    // plugin sits at the end of the taps.
    let added = "    tap-new:\n      pip_url: \"./plugins/tap-fixture\"\n      executable: \"tap-fixture\"\n      capabilities: [\"catalog\", \"state\", \"discover\", \"about\"]\n      # Settings its --about reports; secrets go in alto.secrets.yaml.\n      # config:\n      #   rows:  # required\n      #   api_key:  # secret\n";
    assert_eq!(
        text,
        config.replace("  targets:\n", &format!("{added}  targets:\n")),
        "{text}"
    );
    let (code, _, err) = p.run_on(&m, &["tap-new:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert!(p.path().join("out/users.jsonl").exists());

    for (args, says) in [
        (
            &["add", "target", "tap-new", "--pip-url", "x"][..],
            "already has a tap of that name",
        ),
        (
            &["add", "tap", "../up", "--pip-url", "x"][..],
            "separates directories",
        ),
        (
            &[
                "add",
                "mapper",
                "m-missing",
                "--pip-url",
                "./plugins/nowhere",
            ][..],
            "does not exist",
        ),
    ] {
        let (code, _, err) = p.run_on(&m, args);
        assert_eq!(code, 2, "alto {args:?}: {err}");
        assert!(err.contains(says), "alto {args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text,
            "alto {args:?}"
        );
    }
}
