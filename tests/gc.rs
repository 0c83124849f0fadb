//! `alto gc`: what no environment, pin or project sharing the remote refers
//! to goes; state, history, reservoir data and logs never do.

mod common;

use common::{Machine, Project, plugin_project};
use proptest::prelude::*;

fn project_a(version: &str) -> String {
    format!(
        "default:\n  project_name: alpha\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      _version: '{version}'\n"
    )
}

const PROJECT_B: &str = "default:\n  project_name: beta\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n";

fn key(p: &Project, m: &Machine, plugin: &str) -> String {
    p.json_on(m, &["show", plugin])["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn share_home(b: &Project, a: &Project) {
    // Two projects, one remote: the embedded default lives in the same HOME.
    std::fs::remove_dir_all(b.home.path()).unwrap();
    std::os::unix::fs::symlink(a.home.path(), b.home.path()).unwrap();
}

#[test]
fn gc_keeps_every_projects_roots_and_collects_the_rest() {
    let a = plugin_project(&project_a("1"));
    let b = plugin_project(PROJECT_B);
    share_home(&b, &a);
    let m = Machine::new(true);
    p_build(&a, &m);
    p_build(&b, &m);
    let old = key(&a, &m, "tap-fixture");
    let b_key = key(&b, &m, "target-fixture");
    // A moves on: its old plugin is referenced by nothing now.
    std::fs::write(a.path().join("alto.yaml"), project_a("2")).unwrap();
    p_build(&a, &m);
    let new = key(&a, &m, "tap-fixture");
    assert_ne!(old, new);
    let remote = a.home.path().join(".alto/.store/v1/meta");

    // Within the grace period nothing goes.
    let dry = a.json_on(&m, &["gc", "--remote", "--dry-run"]);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 0, "{dry}");
    let dry = a.json_on(&m, &["gc", "--remote", "--dry-run", "--older-than", "0"]);
    assert_eq!(dry["removed"].as_array().unwrap().len(), 2, "{dry}");
    assert!(
        remote.join(format!("{old}.json")).exists(),
        "a dry run removed something"
    );

    let done = a.json_on(&m, &["gc", "--remote", "--older-than", "0"]);
    assert_eq!(done["removed"].as_array().unwrap().len(), 2, "{done}");
    assert!(!remote.join(format!("{old}.json")).exists());
    assert!(!m.objects().join(format!("{old}.meta.json")).exists());
    for k in [&new, &b_key] {
        assert!(
            remote.join(format!("{k}.json")).exists(),
            "{k} was collected from the remote"
        );
        assert!(
            m.objects().join(format!("{k}.meta.json")).exists(),
            "{k} was collected locally"
        );
    }
    // A pin keeps an object whatever the config says.
    a.json_on(&m, &["store", "pin"]);
    std::fs::write(a.path().join("alto.yaml"), project_a("3")).unwrap();
    let done = a.json_on(&m, &["gc", "--remote", "--older-than", "0"]);
    assert_eq!(done["removed"].as_array().unwrap().len(), 0, "{done}");
}

fn p_build(p: &Project, m: &Machine) {
    let out = p.json_on(m, &["build"]);
    assert_eq!(out["failed"], 0, "{out}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Whatever else the remote holds, gc touches only unreferenced store objects.
    #[test]
    fn gc_never_touches_project_data(
        files in prop::collection::vec(("(state|reservoir|logs|catalogs|locks)", "[a-z]{1,8}", "[ -~]{0,40}"), 1..8),
        stray in prop::collection::vec("[0-9a-f]{32}", 0..4),
    ) {
        let a = plugin_project(&project_a("x"));
        let m = Machine::new(true);
        let root = a.home.path().join(".alto");
        // By path: a name drawn twice holds what was written last.
        let mut written = std::collections::BTreeMap::new();
        for (dir, name, body) in &files {
            let path = root.join("alpha").join(dir).join("dev").join(format!("{name}.json"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
            written.insert(path, body.clone());
        }
        // Unreferenced objects of some other build, with metadata from long ago.
        let meta_dir = root.join(".store/v1/meta");
        std::fs::create_dir_all(&meta_dir).unwrap();
        std::fs::create_dir_all(root.join(".store/v1/data")).unwrap();
        for k in &stray {
            std::fs::write(root.join(".store/v1/data").join(k), b"x").unwrap();
            std::fs::write(meta_dir.join(format!("{k}.json")), format!(
                "{{\"format\": \"alto-object/v1\", \"key\": \"{k}\", \"kind\": \"plugin\", \"derivation\": {{}}, \"blake3\": \"\", \"size\": 1, \"created\": \"2020-01-01T00:00:00Z\", \"builder\": {{\"alto\": \"0\", \"host\": \"h\"}}}}"
            )).unwrap();
        }
        let (code, _, err) = a.run_on(&m, &["gc", "--remote", "--older-than", "0"]);
        prop_assert_eq!(code, 0, "{}", err);
        for (path, body) in &written {
            prop_assert_eq!(&std::fs::read_to_string(path).unwrap(), body);
        }
        for k in &stray {
            let gone = !meta_dir.join(format!("{}.json", k)).exists();
            prop_assert!(gone, "stray object {} survived", k);
        }
    }
}

#[test]
fn gc_on_an_s3_remote_keeps_both_projects_roots() {
    let moto = common::Moto::start();
    moto.create_bucket("shared");
    let s3 = moto.config("shared");
    let a = plugin_project(&format!("{}{s3}", project_a("1")));
    let b = plugin_project(&format!("{PROJECT_B}{s3}"));
    let m = Machine::new(true);
    p_build(&a, &m);
    p_build(&b, &m);
    let old = key(&a, &m, "tap-fixture");
    let b_key = key(&b, &m, "target-fixture");
    std::fs::write(
        a.path().join("alto.yaml"),
        format!("{}{s3}", project_a("2")),
    )
    .unwrap();
    p_build(&a, &m);
    let done = a.json_on(&m, &["gc", "--remote", "--older-than", "0"]);
    let removed: Vec<String> = done["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["where"].as_str().unwrap().starts_with("s3://"))
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed, vec![old.clone()], "{done}");
    // A fresh machine can still substitute both live plugins from the bucket.
    let fresh = Machine::new(false);
    let a_out = a.json_on(&fresh, &["build"]);
    assert_eq!(a_out["substituted"], 1, "{a_out}");
    let b_out = b.json_on(&fresh, &["build"]);
    assert_eq!(b_out["substituted"], 1, "{b_out}");
    assert_eq!(b_out["derivations"][0]["key"], b_key.as_str());
}
