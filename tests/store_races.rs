//! The shared store under crashes, races and damage, on a directory remote
//! and on S3 (moto) alike: an upload that meets another builder's leftover,
//! a remote object repaired from an intact local copy, leftovers collected
//! only after the grace period (keyed on arrival), unreadable roots or pins
//! stopping gc, and gc running while another process substitutes and runs.

mod common;

use common::{Machine, Moto, Project, RemoteFiles, copy_dir, plugin_project};
use serde_json::Value;

const FIXTURE: &str = "default:\n  project_name: races\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n";

fn statuses(summary: &Value) -> Vec<String> {
    summary["derivations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_string())
        .collect()
}

/// Builds on `m`; returns the plugin's key.
fn build(p: &Project, m: &Machine, expect: &str) -> String {
    let out = p.json_on(m, &["build"]);
    assert_eq!(statuses(&out), vec![expect], "{out}");
    out["derivations"][0]["key"].as_str().unwrap().to_string()
}

/// A machine whose local store holds the fixture plugin (built once for the
/// whole file: keys depend on the plugin's content, not on the project).
fn seeded() -> Machine {
    static SEED: std::sync::OnceLock<Machine> = std::sync::OnceLock::new();
    let seed = SEED.get_or_init(|| {
        let m = Machine::new(true);
        build(&plugin_project(FIXTURE), &m, "built");
        m
    });
    let m = Machine::new(true);
    copy_dir(&seed.objects(), &m.objects());
    m
}

/// Runs `check` on a project with a directory remote, then with an S3 one.
fn on_both_remotes(check: impl Fn(&Project, &RemoteFiles)) {
    let p = plugin_project(FIXTURE);
    check(&p, &RemoteFiles::Dir(p.home.path().join(".alto")));
    let moto = Moto::start();
    moto.create_bucket("races");
    let p = plugin_project(&format!("{FIXTURE}{}", moto.config("races")));
    check(&p, &RemoteFiles::S3(&moto, "races/alto".into()));
}

fn meta_rel(key: &str) -> String {
    format!(".store/v1/meta/{key}.json")
}

#[test]
fn an_upload_meeting_other_bytes_never_publishes_a_mismatch() {
    on_both_remotes(|p, r| {
        let a = seeded();
        let key = build(p, &a, "local");
        // A builder crashed after writing content of other bytes, before its record.
        r.delete(&r.content_rel(&key));
        r.delete(&meta_rel(&key));
        r.put(
            &format!(".store/v1/data/{key}"),
            b"what a crashed builder left",
        );
        // The next builder publishes its (intact) copy.
        let out = p.json_on(&a, &["build"]);
        assert_eq!(out["derivations"][0]["pushed"], true, "{out}");
        // Every substituter gets bytes that match the record.
        let c = Machine::new(false);
        build(p, &c, "substituted");
        let (code, out, err) = p.run_on(&c, &["invoke", "tap-fixture", "--version"]);
        assert_eq!((code, out.trim()), (0, "0.1.0"), "{err}");
    });
}

#[test]
fn build_repair_fixes_a_damaged_remote_object_from_the_local_copy() {
    on_both_remotes(|p, r| {
        let a = seeded();
        let key = build(p, &a, "local");
        let content = r.content_rel(&key);
        let mut bytes = r.get(&content).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x55;
        r.put(&content, &bytes);
        let b = Machine::new(false);
        let (code, _, err) = p.run_on(&b, &["build"]);
        assert_eq!(code, 1, "{err}");

        let out = p.json_on(&a, &["build", "--repair", "tap-fixture"]);
        assert_eq!(statuses(&out), vec!["local"], "{out}");
        assert_eq!(out["derivations"][0]["pushed"], true, "{out}");
        build(p, &b, "substituted");
        // Nothing left to repair: the next --repair only verifies.
        let again = p.json_on(&a, &["build", "--repair", "tap-fixture"]);
        assert_eq!(again["derivations"][0]["pushed"], false, "{again}");
    });
}

#[test]
fn leftovers_go_after_the_grace_period_and_arrival_counts_not_build_time() {
    on_both_remotes(|p, r| {
        let m = seeded();
        let key = build(p, &m, "local");
        let junk = "0123456789abcdef0123456789abcdef";
        let old = "fedcba9876543210fedcba9876543210";
        // Remote: content a crashed upload left (old and new names), and an
        // unreferenced object built long ago that only just arrived.
        r.put(&format!(".store/v1/data/{junk}"), b"x");
        r.put(&format!(".store/v1/data/{junk}.{}", "ab".repeat(16)), b"y");
        r.put(&format!(".store/v1/data/{old}"), b"z");
        r.put(
            &meta_rel(old),
            format!("{{\"format\": \"alto-object/v1\", \"key\": \"{old}\", \"kind\": \"plugin\", \"derivation\": {{}}, \"blake3\": \"\", \"size\": 1, \"created\": \"2020-01-01T00:00:00Z\", \"builder\": {{\"alto\": \"0\", \"host\": \"h\"}}}}").as_bytes(),
        );
        // Local: a temporary, content without metadata, a rename's temporary.
        let store = m.cache.path().join("store/v1");
        std::fs::write(store.join("tmp/dead-build.pex"), b"t").unwrap();
        std::fs::write(store.join(format!("objects/{junk}")), b"c").unwrap();
        std::fs::write(
            store.join(format!("objects/.{key}.meta.json.1-2-3.tmp")),
            b"s",
        )
        .unwrap();

        let kept = p.json_on(&m, &["gc", "--remote"]);
        assert_eq!(kept["removed"].as_array().unwrap().len(), 0, "{kept}");
        assert_eq!(kept["leftovers"].as_array().unwrap().len(), 0, "{kept}");
        assert!(r.get(&meta_rel(old)).is_some());

        let done = p.json_on(&m, &["gc", "--remote", "--older-than", "0"]);
        let removed: Vec<&str> = done["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap())
            .collect();
        assert_eq!(removed, vec![old], "{done}");
        assert_eq!(done["leftovers"].as_array().unwrap().len(), 5, "{done}");
        assert!(r.get(&format!(".store/v1/data/{junk}")).is_none());
        assert!(r.get(&format!(".store/v1/data/{old}")).is_none());
        assert!(!store.join("tmp/dead-build.pex").exists());
        assert!(!store.join(format!("objects/{junk}")).exists());
        // What is live stays, here and in the remote.
        assert!(store.join(format!("objects/{key}.meta.json")).exists());
        build(p, &Machine::new(false), "substituted");
    });
}

#[test]
fn unreadable_pins_or_roots_stop_gc() {
    let moto = Moto::start();
    moto.create_bucket("roots");
    let p = plugin_project(&format!("{FIXTURE}{}", moto.config("roots")));
    let r = RemoteFiles::S3(&moto, "roots/alto".into());
    let m = seeded();
    let key = build(&p, &m, "local");
    let pins = m.cache.path().join("store/v1/pins.json");
    std::fs::write(&pins, "[\"0123").unwrap();
    let (code, _, err) = p.run_on(&m, &["gc", "--older-than", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pins.json"), "{err}");
    std::fs::remove_file(&pins).unwrap();

    r.put(".store/v1/roots/other/dev.json", b"{\"project\": ");
    let (code, _, err) = p.run_on(&m, &["gc", "--remote", "--older-than", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("roots/other/dev.json"), "{err}");
    assert!(r.get(&meta_rel(&key)).is_some());
    r.delete(".store/v1/roots/other/dev.json");
    assert_eq!(p.run_on(&m, &["gc", "--remote", "--older-than", "0"]).0, 0);

    // A local registry is read the same way.
    let registries = m.cache.path().join("store/v1/roots");
    let any = std::fs::read_dir(&registries)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(any.path(), "{").unwrap();
    let (code, _, err) = p.run_on(&m, &["gc", "--older-than", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(m.objects().join(format!("{key}.meta.json")).exists());
}

/// gc, run over and over by another project sharing the machine's store
/// (which roots nothing of this one), never takes the plugin from under a
/// process that substitutes and runs it.
#[test]
fn gc_never_collects_what_a_running_process_uses() {
    let p = plugin_project(FIXTURE);
    let builder = seeded();
    let key = build(&p, &builder, "local");
    let other = Project::new(&[("alto.yaml", "default:\n  project_name: other\n")]);
    let m = Machine::new(false);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let meta = m.objects().join(format!("{key}.meta.json"));
    std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                let (code, _, err) = other.run_on(&m, &["gc", "--older-than", "0"]);
                assert_eq!(code, 0, "{err}");
                runs += 1;
            }
            runs
        });
        for _ in 0..4 {
            // Each round starts from nothing here: substitute, then run.
            let (code, out, err) = p.run_on(&m, &["invoke", "tap-fixture", "--version"]);
            assert_eq!((code, out.trim()), (0, "0.1.0"), "{err}");
            // Once the process is gone and its registry dropped, nothing
            // protects the plugin: gc does collect it.
            let _ = std::fs::remove_dir_all(m.cache.path().join("store/v1/roots"));
            assert_eq!(other.run_on(&m, &["gc", "--older-than", "0"]).0, 0);
            assert!(!meta.exists(), "gc kept an unprotected object");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(gc.join().unwrap() > 0);
    });
}
