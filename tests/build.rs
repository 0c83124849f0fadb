//! `alto build`, `show` and `invoke` with real pex: a local-path fixture plugin
//! and target-jsonl from the package registry, two machines sharing a
//! directory remote or an S3 server, tampering, and killed builds.

mod common;

use common::{Machine, Moto, flip_byte, plugin_project};
use serde_json::Value;

const FIXTURE: &str = "default:\n  project_name: builds\n  load_path: raw\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n";

fn statuses(summary: &Value) -> Vec<String> {
    summary["derivations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_string())
        .collect()
}

fn key_of(summary: &Value, plugin: &str) -> String {
    summary
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["plugins"].as_array().unwrap().iter().any(|p| p == plugin))
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn build_once_substitute_everywhere_else() {
    let config = format!(
        "{FIXTURE}  targets:\n    target-jsonl:\n      pip_url: target-jsonl==0.1.4\n      config:\n        destination_path: out\n"
    );
    let p = plugin_project(&config);
    let a = Machine::new(true);
    let first = p.json_on(&a, &["build"]);
    assert_eq!(first["built"], 2, "{first}");
    assert!(
        first["derivations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["pushed"] == true)
    );
    // A no-op build.
    let again = p.json_on(&a, &["build"]);
    assert_eq!(statuses(&again), vec!["local", "local"]);

    // A second machine with no pex at all substitutes both.
    let b = Machine::new(false);
    let dry = p.json_on(&b, &["build", "--dry-run"]);
    assert!(
        dry.as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "remote"),
        "{dry}"
    );
    let second = p.json_on(&b, &["build"]);
    assert_eq!(second["substituted"], 2, "{second}");
    assert_eq!(second["built"], 0);
    assert!(!b.has_pex(), "the second machine ran pex");

    // And runs them.
    let out = p
        .on(&b)
        .args(["invoke", "tap-fixture", "--discover"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let catalog: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(catalog["streams"].as_array().unwrap().len(), 2);
    let out = p
        .on(&b)
        .args(["invoke", "target-jsonl"])
        .write_stdin(SCHEMA_AND_RECORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // invoke passes only the given arguments: without --config, target-jsonl writes to the project root.
    let written: Vec<_> = std::fs::read_dir(p.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("s-"))
        .collect();
    assert_eq!(written.len(), 1);
    // The plugin's exit code is alto's; `invoke python` runs its interpreter.
    let out = p
        .on(&b)
        .args([
            "invoke",
            "python",
            "tap-fixture",
            "-c",
            "import sys; import tap_fixture; sys.exit(7)",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = p.json_on(&b, &["show", "tap-fixture"]);
    assert_eq!(shown["status"], "local");
    assert_eq!(shown["entry"]["Script"], "tap-fixture");
}

#[test]
fn local_sources_are_keyed_by_content() {
    let p = plugin_project(FIXTURE);
    let m = Machine::new(true);
    let key = |p: &common::Project| key_of(&p.json_on(&m, &["build", "--dry-run"]), "tap-fixture");
    let k1 = key(&p);
    let src = p.path().join("plugins/tap-fixture/tap_fixture/__init__.py");
    // Touching without changing, and build leftovers, change nothing.
    let text = std::fs::read_to_string(&src).unwrap();
    std::fs::write(&src, &text).unwrap();
    std::fs::create_dir_all(p.path().join("plugins/tap-fixture/build/lib")).unwrap();
    std::fs::write(p.path().join("plugins/tap-fixture/build/lib/x.py"), "junk").unwrap();
    assert_eq!(key(&p), k1);
    // An edit changes the key.
    std::fs::write(&src, format!("{text}\n# edited\n")).unwrap();
    assert_ne!(key(&p), k1);
}

/// A realized plugin starts from its venv (built here: uv's; substituted:
/// the one pex made of the PEX) whatever its entry point: a console
/// script, a `module:function`, its interpreter; without a usable venv it
/// starts from the PEX.
#[test]
fn plugins_start_from_their_venv_by_every_entry_point() {
    let p = plugin_project(&format!(
        "{FIXTURE}    tap-call:\n      inherit_from: tap-fixture\n      entrypoint: tap_fixture:main\n"
    ));
    let a = Machine::new(true);
    let built = p.json_on(&a, &["build"]);
    assert_eq!(statuses(&built), vec!["built"], "{built}");
    let b = Machine::new(false);
    let substituted = p.json_on(&b, &["build"]);
    assert_eq!(statuses(&substituted), vec!["substituted"], "{substituted}");
    for (m, linked) in [(&a, false), (&b, true)] {
        let shown = p.json_on(m, &["show", "tap-fixture"]);
        let venv =
            std::path::PathBuf::from(shown["venv"].as_str().unwrap_or_else(|| panic!("{shown}")));
        let meta = std::fs::symlink_metadata(&venv).unwrap();
        assert_eq!(meta.file_type().is_symlink(), linked, "{}", venv.display());
        for plugin in ["tap-fixture", "tap-call"] {
            let (code, out, err) = p.run_on(m, &["invoke", plugin, "--version"]);
            assert_eq!((code, out.trim()), (0, "0.1.0"), "{plugin}: {err}");
        }
        let (code, out, err) = p.run_on(
            m,
            &[
                "invoke",
                "python",
                "tap-fixture",
                "-c",
                "import sys, tap_fixture; print(sys.prefix)",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            std::fs::canonicalize(out.trim()).unwrap(),
            std::fs::canonicalize(&venv).unwrap()
        );
        // A script run by the interpreter imports its neighbours, as in Python.
        let scripts = p.path().join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::write(scripts.join("helper.py"), "WORD = 'neighbour'\n").unwrap();
        std::fs::write(
            scripts.join("run.py"),
            "import helper, tap_fixture\nprint(helper.WORD)\n",
        )
        .unwrap();
        let (code, out, err) = p.run_on(m, &["invoke", "python", "tap-fixture", "scripts/run.py"]);
        assert_eq!((code, out.trim()), (0, "neighbour"), "{err}");
    }
    // A venv whose interpreter is gone (a Python upgraded in place) is
    // made again, from the PEX.
    let shown = p.json_on(&a, &["show", "tap-fixture"]);
    let venv = std::path::PathBuf::from(shown["venv"].as_str().unwrap());
    std::fs::remove_file(venv.join("bin/python")).unwrap();
    for plugin in ["tap-fixture", "tap-call"] {
        let (code, out, err) = p.run_on(&a, &["invoke", plugin, "--version"]);
        assert_eq!((code, out.trim()), (0, "0.1.0"), "{plugin}: {err}");
    }
    let meta = std::fs::symlink_metadata(&venv).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "{} was not made again",
        venv.display()
    );
}

#[test]
fn inherit_from_children_share_the_artifact_and_utilities_without_pip_url_have_none() {
    let p = plugin_project(&format!(
        "{FIXTURE}    tap-child:\n      inherit_from: tap-fixture\n      config: {{rows: 2}}\n  utilities:\n    notes:\n      config: {{a: 1}}\n"
    ));
    let m = Machine::new(true);
    let dry = p.json_on(&m, &["build", "--dry-run"]);
    let all = dry.as_array().unwrap();
    assert_eq!(all.len(), 1, "{dry}");
    assert_eq!(
        all[0]["plugins"],
        serde_json::json!(["tap-fixture", "tap-child"])
    );
    let (code, out, _) = p.run_on(&m, &["show", "notes"]);
    assert_eq!(code, 0);
    assert!(out.contains("no pip_url"));
}

#[test]
fn tampered_remote_objects_are_refused_and_repaired() {
    let p = plugin_project(FIXTURE);
    let a = Machine::new(true);
    let built = p.json_on(&a, &["build"]);
    let key = built["derivations"][0]["key"].as_str().unwrap().to_string();
    let remote = common::RemoteFiles::Dir(p.home.path().join(".alto"));
    flip_byte(&p.home.path().join(".alto").join(remote.content_rel(&key)));

    let b = Machine::new(false);
    let (code, _, err) = p.run_on(&b, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match its metadata"), "{err}");
    assert!(
        !b.objects().join(format!("{key}.meta.json")).exists(),
        "a damaged object was committed"
    );
    let (code, _, err) = p.run_on(&b, &["invoke", "tap-fixture", "--version"]);
    assert_ne!(code, 0, "{err}");

    // --repair builds locally and replaces the remote copy.
    let c = Machine::new(true);
    let repaired = p.json_on(&c, &["build", "--repair"]);
    assert_eq!(statuses(&repaired), vec!["built"]);
    let d = Machine::new(false);
    assert_eq!(statuses(&p.json_on(&d, &["build"])), vec!["substituted"]);
}

#[test]
fn tampered_local_objects_are_never_executed() {
    let p = plugin_project(FIXTURE);
    let a = Machine::new(true);
    let key = p.json_on(&a, &["build"])["derivations"][0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let local = a.objects().join(&key);
    let good = std::fs::read(&local).unwrap();
    flip_byte(&local);
    let (code, _, err) = p.run_on(&a, &["store", "verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("damaged"), "{err}");
    // Before running it, alto notices and replaces it from the remote.
    let (code, out, err) = p.run_on(&a, &["invoke", "tap-fixture", "--version"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "0.1.0");
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(std::fs::read(&local).unwrap(), good);
    assert_eq!(p.run_on(&a, &["store", "verify"]).0, 0);
}

#[test]
fn a_killed_build_leaves_nothing_that_looks_complete() {
    use std::os::unix::process::CommandExt;
    let p = plugin_project(
        "default:\n  project_name: killed\n  targets:\n    target-jsonl:\n      pip_url: target-jsonl==0.1.4\n",
    );
    let m = Machine::new(true);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("alto"));
    cmd.current_dir(p.path())
        .env("HOME", p.home.path())
        .env("ALTO_CACHE_DIR", m.cache.path())
        .args(["build", "-q"])
        .process_group(0);
    let child = cmd.spawn().unwrap();
    // Kill it while pex is at work.
    let tmp = m.cache.path().join("store/v1/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline && !p.path().join(".alto/logs/build").exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let metas: Vec<_> = std::fs::read_dir(m.objects())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".meta.json"))
        .collect();
    assert!(metas.is_empty(), "a killed build committed an object");
    let remote_meta = p.home.path().join(".alto/.store/v1/meta");
    assert!(!remote_meta.exists() || std::fs::read_dir(&remote_meta).unwrap().next().is_none());
    let _ = tmp;
    // The next build succeeds and verifies.
    let next = p.json_on(&m, &["build"]);
    assert_eq!(statuses(&next), vec!["built"]);
    assert_eq!(p.run_on(&m, &["store", "verify"]).0, 0);
}

#[test]
fn an_s3_remote_is_shared_by_two_machines() {
    let moto = Moto::start();
    moto.create_bucket("team-store");
    let p = plugin_project(&format!("{FIXTURE}{}", moto.config("team-store")));
    let a = Machine::new(true);
    assert_eq!(statuses(&p.json_on(&a, &["build"])), vec!["built"]);
    let b = Machine::new(false);
    assert_eq!(statuses(&p.json_on(&b, &["build"])), vec!["substituted"]);
    assert!(!b.has_pex());
    let out = p
        .on(&b)
        .args(["invoke", "tap-fixture", "--version"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0.1.0");
    // A third machine that builds anyway (its own store is empty and --repair
    // is off) never overwrites: the remote object stays the first one.
    let c = Machine::new(true);
    assert_eq!(statuses(&p.json_on(&c, &["build"])), vec!["substituted"]);
}

#[test]
fn rebuilds_are_checked_against_the_store() {
    let p = plugin_project(FIXTURE);
    let m = Machine::new(true);
    p.json_on(&m, &["build"]);
    let checked = p.json_on(&m, &["build", "--check"]);
    assert_eq!(checked["check"][0]["identical"], true, "{checked}");
}

#[test]
fn build_problems_are_clear() {
    let p = plugin_project(
        "default:\n  python: /nonexistent/python3\n  taps:\n    tap-x:\n      pip_url: tap-x==1\n",
    );
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["build"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no Python interpreter `/nonexistent/python3`"),
        "{err}"
    );

    let p = plugin_project("default:\n  taps:\n    tap-x:\n      pip_url: ./plugins/missing\n");
    let (code, _, err) = p.run_on(&m, &["build"]);
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");

    let p = plugin_project("default:\n  taps:\n    tap-broken:\n      pip_url: ./plugins/broken\n");
    std::fs::create_dir_all(p.path().join("plugins/broken")).unwrap();
    std::fs::write(
        p.path().join("plugins/broken/pyproject.toml"),
        "[build-system\nthis is not toml",
    )
    .unwrap();
    let (code, _, err) = p.run_on(&m, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("building tap-broken failed (uv pip install exited with"),
        "{err}"
    );
    // The resolver's own words, not the tail of a debug log.
    assert!(err.contains("the resolver said:"), "{err}");
    assert!(err.contains("pyproject.toml"), "{err}");
    // Each attempt keeps its own log.
    let (code, _, _) = p.run_on(&m, &["build"]);
    assert_eq!(code, 1);
    let logs: Vec<_> = std::fs::read_dir(p.path().join(".alto/logs/build"))
        .unwrap()
        .collect();
    assert_eq!(logs.len(), 2);

    // A requirement no index has: uv says why.
    let p = plugin_project(
        "default:\n  taps:\n    tap-x:\n      pip_url: alto-no-such-package-anywhere==1.0\n",
    );
    let (code, _, err) = p.run_on(&m, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the resolver said:"), "{err}");
    assert!(err.contains("alto-no-such-package-anywhere"), "{err}");
}

/// Two requirements in one pip_url, one from the registry with extras,
/// installed by uv: the PEX has all of them, and runs.
#[test]
fn several_requirements_with_extras_build_and_run() {
    let p = plugin_project(
        "default:\n  project_name: forms\n  targets:\n    target-jsonl:\n      pip_url: target-jsonl==0.1.4 requests[socks]==2.32.3\n",
    );
    let m = Machine::new(true);
    // Its own pex root: what the first run finds there is this build's.
    let pex_root = m.cache.path().join("pex-root");
    std::fs::remove_file(&pex_root).unwrap();
    std::fs::create_dir(&pex_root).unwrap();
    let built = p.json_on(&m, &["build"]);
    assert_eq!(statuses(&built), vec!["built"], "{built}");
    let shown = p.json_on(&m, &["show", "target-jsonl"]);
    assert_eq!(shown["inputs"]["builder"]["tool"], "uv+pex", "{shown}");
    // It runs from the venv uv installed it into, kept in the store; the
    // build imported what target-jsonl starts with there, which wrote
    // their byte code; it did not compile what the plugin does not import.
    let venvs = m.cache.path().join("store/v1/venvs");
    let key = shown["key"].as_str().unwrap();
    assert!(
        venvs.join(key).join("pyvenv.cfg").is_file(),
        "no venv at {}",
        venvs.join(key).display()
    );
    let compiled = pyc_files(&venvs);
    for module in ["__pycache__/target_jsonl.", "singer/__pycache__/messages."] {
        assert!(
            compiled
                .keys()
                .any(|p| p.contains(module) && p.ends_with(".pyc")),
            "{module} was not byte-compiled: {:?}",
            compiled.keys().take(20).collect::<Vec<_>>()
        );
    }
    assert!(
        !compiled
            .keys()
            .any(|p| p.contains("requests/__pycache__/help.")),
        "requests.help, which target-jsonl does not import, was byte-compiled"
    );
    // Its first run compiles nothing, and made no venv of its own.
    let out = p
        .on(&m)
        .args(["invoke", "target-jsonl"])
        .write_stdin(SCHEMA_AND_RECORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !pex_root.join("venvs").exists(),
        "the first run booted the PEX instead of starting its venv"
    );
    let after = pyc_files(&venvs);
    let written: Vec<&String> = after
        .iter()
        .filter(|(p, t)| compiled.get(*p) != Some(t))
        .map(|(p, _)| p)
        .collect();
    assert!(written.is_empty(), "the first run compiled {written:?}");
    // Both requirements and the extra's are in the PEX.
    let out = p
        .on(&m)
        .args([
            "invoke",
            "python",
            "target-jsonl",
            "-c",
            "import socks, requests, target_jsonl; print(requests.__version__)",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2.32.3");
}

/// Every `.pyc` file under `dir` (links followed), and when it was written.
fn pyc_files(dir: &std::path::Path) -> std::collections::BTreeMap<String, std::time::SystemTime> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            // Links are followed only inside the venvs (they point into
            // pex's installed wheels, which are walked anyway).
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "pyc") {
                out.insert(
                    path.display().to_string(),
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                );
            }
        }
    }
    out
}

/// A pip_url uv cannot take is resolved by pex with a modern pip, and the
/// build log says so.
#[test]
fn what_uv_cannot_take_falls_back_to_pex_with_a_modern_pip() {
    let p = plugin_project(
        "default:\n  project_name: fallback\n  taps:\n    tap-fixture:\n      pip_url: --intransitive ./plugins/tap-fixture\n",
    );
    let m = Machine::new(true);
    let built = p.json_on(&m, &["build"]);
    assert_eq!(statuses(&built), vec!["built"], "{built}");
    let shown = p.json_on(&m, &["show", "tap-fixture"]);
    assert_eq!(shown["inputs"]["builder"]["tool"], "pex", "{shown}");
    assert!(
        shown["inputs"]["builder"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "--pip-version"),
        "{shown}"
    );
    let said = common::files_containing(
        &p.path().join(".alto/logs/build"),
        "uv cannot take this pip_url (uv does not take the option `--intransitive`)",
    );
    assert_eq!(said.len(), 1);
    let out = p
        .on(&m)
        .args(["invoke", "tap-fixture", "--version"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0.1.0");
}

#[test]
fn all_envs_realizes_every_environment() {
    let p = plugin_project(&format!(
        "{FIXTURE}prod:\n  taps:\n    tap-fixture:\n      _version: prod-1\n"
    ));
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["build", "--all-envs"]);
    assert_eq!(code, 0, "{err}");
    // dev and prod give two keys for the one plugin; both are now local.
    let dev = p.json_on(&m, &["build", "--dry-run"]);
    let prod = p.json_on(&m, &["--env", "prod", "build", "--dry-run"]);
    assert_ne!(dev[0]["key"], prod[0]["key"]);
    assert_eq!(dev[0]["status"], "local");
    assert_eq!(prod[0]["status"], "local");
}

#[test]
fn export_and_import_round_trip_byte_for_byte() {
    let p = plugin_project(FIXTURE);
    let a = Machine::new(true);
    let built = p.json_on(&a, &["build"]);
    let key = built["derivations"][0]["key"].as_str().unwrap().to_string();
    let archive = p.path().join("plugins.tar.zst");
    let out = p.json_on(&a, &["store", "export", "-o", archive.to_str().unwrap()]);
    assert_eq!(out["objects"][0], key.as_str());
    // An air-gapped machine: no remote, no pex; everything comes from the file.
    let b = Machine::new(false);
    let isolated = common::Project::new(&[]);
    let out = isolated
        .on(&b)
        .args(["--json", "store", "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(b.objects().join(&key)).unwrap(),
        std::fs::read(a.objects().join(&key)).unwrap()
    );
    // Importing again changes nothing: every object is already present.
    let again = isolated
        .on(&b)
        .args(["--json", "store", "import"])
        .arg(&archive)
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["present"][0], key.as_str(), "{again}");
    assert_eq!(again["imported"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(
        isolated
            .on(&b)
            .args(["store", "verify"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    // The project on that machine finds the plugin locally and runs it.
    let (code, out, err) = p.run_on(&b, &["invoke", "tap-fixture", "--version"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "0.1.0");
    assert!(!b.has_pex());

    // A tampered archive is refused, and nothing of it is committed.
    let c = Machine::new(false);
    let bytes = zstd_decode(&archive);
    let mut tampered = bytes.clone();
    let at = tampered.len() / 3;
    tampered[at] ^= 0x01;
    let bad = p.path().join("bad.tar.zst");
    std::fs::write(&bad, zstd_encode(&tampered)).unwrap();
    let out = isolated
        .on(&c)
        .args(["store", "import"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!c.objects().join(format!("{key}.meta.json")).exists());
}

/// A SCHEMA and one RECORD of stream `s`, for target-jsonl.
const SCHEMA_AND_RECORD: &str = "{\"type\": \"SCHEMA\", \"stream\": \"s\", \"schema\": {\"properties\": {\"a\": {\"type\": \"integer\"}}}, \"key_properties\": []}\n{\"type\": \"RECORD\", \"stream\": \"s\", \"record\": {\"a\": 1}}\n";

fn zstd_decode(path: &std::path::Path) -> Vec<u8> {
    zstd::decode_all(std::fs::read(path).unwrap().as_slice()).unwrap()
}

fn zstd_encode(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[test]
fn remote_verification_finds_and_repairs_damage() {
    let p = plugin_project(FIXTURE);
    let a = Machine::new(true);
    let key = p.json_on(&a, &["build"])["derivations"][0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let clean = p.json_on(&a, &["store", "verify", "--remote"]);
    assert_eq!(clean["objects"][0]["ok"], true, "{clean}");
    let remote = common::RemoteFiles::Dir(p.home.path().join(".alto"));
    flip_byte(&p.home.path().join(".alto").join(remote.content_rel(&key)));
    let (code, _, err) = p.run_on(&a, &["store", "verify", "--remote"]);
    assert_eq!(code, 1, "{err}");
    // The remote holds the PEX zstd-compressed: the damage shows either in
    // what decompressing gives or in the decompressing itself.
    assert!(
        err.contains("differs from the recorded") || err.contains("does not decompress"),
        "{err}"
    );
    // This machine has an intact copy of the same content: it replaces the remote one.
    let repaired = p.json_on(&a, &["store", "verify", "--remote", "--repair"]);
    assert_eq!(repaired["objects"][0]["repaired"], true, "{repaired}");
    assert_eq!(p.run_on(&a, &["store", "verify", "--remote"]).0, 0);
    // Local damage: verify reports it, --repair removes it, the next build substitutes it.
    flip_byte(&a.objects().join(&key));
    assert_eq!(p.run_on(&a, &["store", "verify"]).0, 1);
    assert_eq!(p.run_on(&a, &["store", "verify", "--repair"]).0, 0);
    assert!(!a.objects().join(format!("{key}.meta.json")).exists());
    assert_eq!(statuses(&p.json_on(&a, &["build"])), vec!["substituted"]);
}

#[test]
fn signed_caches_are_trusted_and_everything_else_refused() {
    let p = plugin_project(&format!("{FIXTURE}  signing_key: team.secret\n"));
    let a = Machine::new(true);
    let keygen = |name: &str, file: &str| {
        let (code, out, err) = p.run_on(&a, &["store", "keygen", "--name", name, "-o", file]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let team = keygen("team", "team.secret");
    let stranger = keygen("team", "stranger.secret");
    assert_ne!(team, stranger);
    // keygen never overwrites a key.
    assert_ne!(
        p.run_on(
            &a,
            &["store", "keygen", "--name", "team", "-o", "team.secret"]
        )
        .0,
        0
    );

    let built = p.json_on(&a, &["build"]);
    let key = built["derivations"][0]["key"].as_str().unwrap().to_string();
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            p.home
                .path()
                .join(format!(".alto/.store/v1/meta/{key}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        meta["signature"].as_str().unwrap().starts_with("team:"),
        "{meta}"
    );

    let trust = |k: &str, extra: &str| {
        std::fs::write(
            p.path().join("alto.local.yaml"),
            format!("default:\n  trusted_public_keys: [\"{k}\"]\n{extra}"),
        )
        .unwrap();
    };
    // A machine that trusts the team's key substitutes.
    trust(&team, "");
    let b = Machine::new(false);
    assert_eq!(statuses(&p.json_on(&b, &["build"])), vec!["substituted"]);

    // One that trusts only another key of the same name refuses, and commits nothing.
    trust(&stranger, "");
    let c = Machine::new(true);
    let (code, _, err) = p.run_on(&c, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("has no valid signature from a trusted key") && err.contains(&key),
        "{err}"
    );
    assert!(!c.objects().join(format!("{key}.meta.json")).exists());
    // ... or builds it itself, when told to.
    trust(&stranger, "  untrusted_substitutes: build\n");
    assert_eq!(statuses(&p.json_on(&c, &["build"])), vec!["built"]);

    // Unsigned objects are refused too.
    let q = plugin_project(FIXTURE);
    let d = Machine::new(true);
    q.json_on(&d, &["build"]);
    std::fs::write(
        q.path().join("alto.local.yaml"),
        format!("default:\n  trusted_public_keys: [\"{team}\"]\n"),
    )
    .unwrap();
    let e = Machine::new(false);
    let (code, _, err) = q.run_on(&e, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no valid signature"), "{err}");
}

#[test]
fn a_secret_in_pip_url_reaches_pex_and_nothing_else() {
    const TOKEN: &str = "s3cret-Index-Token-7f3a";
    let index = common::PrivateIndex::start("alto", TOKEN);
    let config = format!(
        "default:\n  project_name: private\n  taps:\n    tap-probe:\n      pip_url: \"@format --no-pypi --index-url http://alto:{{env[INDEX_TOKEN]}}@127.0.0.1:{}/simple tap-probe==1.0\"\n",
        index.port
    );
    let p = common::Project::new(&[("alto.yaml", &config)]);
    let run = |m: &Machine, token: &str, args: &[&str]| {
        let out = p
            .on(m)
            .env("INDEX_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let clean = |what: &str, text: &str, token: &str| {
        assert!(!text.contains(token), "{what} shows the secret:\n{text}");
    };
    let a = Machine::new(true);

    let (code, shown, err) = run(&a, TOKEN, &["show", "tap-probe"]);
    assert_eq!(code, 0, "{err}");
    clean("alto show", &format!("{shown}{err}"), TOKEN);
    assert!(
        shown.contains(&format!(
            "--index-url http://alto:********@127.0.0.1:{}/simple",
            index.port
        )),
        "{shown}"
    );
    let (code, out, err) = run(&a, TOKEN, &["--json", "show", "tap-probe"]);
    assert_eq!(code, 0, "{err}");
    clean("alto --json show", &format!("{out}{err}"), TOKEN);
    let shown: Value = serde_json::from_str(&out).unwrap();
    let key = shown["key"].as_str().unwrap().to_string();
    assert_eq!(shown["inputs"]["secrets"].as_array().unwrap().len(), 1);
    let (code, out, err) = run(&a, TOKEN, &["--json", "build", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    clean("alto build --dry-run --json", &format!("{out}{err}"), TOKEN);

    // pex gets the token: the index refuses every request without it.
    let (code, out, err) = run(&a, TOKEN, &["--json", "build"]);
    assert_eq!(code, 0, "{err}");
    clean("alto build", &format!("{out}{err}"), TOKEN);
    let built: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(statuses(&built), vec!["built"]);
    let local_meta = a.objects().join(format!("{key}.meta.json"));
    let remote_meta = p
        .home
        .path()
        .join(format!(".alto/.store/v1/meta/{key}.json"));
    for meta in [&local_meta, &remote_meta] {
        let text = std::fs::read_to_string(meta).unwrap();
        assert!(text.contains("alto:********@127.0.0.1"), "{text}");
    }
    // Not in the local store, the remote, the project's logs, nor inside the PEX.
    for dir in [
        a.objects(),
        p.home.path().join(".alto"),
        p.path().join(".alto"),
    ] {
        assert_eq!(
            common::files_containing(&dir, TOKEN),
            Vec::<std::path::PathBuf>::new()
        );
    }
    let inside = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.exit(any(sys.argv[2].encode() in z.read(n) for n in z.namelist()))",
        ])
        .arg(a.objects().join(&key))
        .arg(TOKEN)
        .status()
        .unwrap();
    assert!(inside.success(), "the PEX holds the secret");
    // It runs (the key, hence the secret, finds it; the plugin itself does not need it).
    let (code, out, err) = run(&a, TOKEN, &["invoke", "tap-probe"]);
    assert_eq!((code, out.trim()), (0, "probe 1.0"), "{err}");

    // The key follows the secret, the shown inputs do not.
    let (_, out, _) = run(&a, "another-token", &["--json", "show", "tap-probe"]);
    let other: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(other["key"], shown["key"]);
    assert_eq!(other["inputs"]["pip_url"], shown["inputs"]["pip_url"]);
    assert_ne!(other["inputs"]["secrets"], shown["inputs"]["secrets"]);

    // A wrong token fails the build; uv prints the index URL, but neither
    // the error nor the log shows the token.
    const WRONG: &str = "wrong-Token-9c1d";
    let b = Machine::new(true);
    // Its own uv cache: the shared one answers from what the right token fetched.
    std::fs::remove_file(b.cache.path().join("uv-cache")).unwrap();
    let (code, _, err) = run(&b, WRONG, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("uv pip install exited with"), "{err}");
    clean("a failed build", &err, WRONG);
    assert!(err.contains("the resolver said:"), "{err}");
    let logs = common::files_containing(&p.path().join(".alto/logs/build"), "tap-probe");
    assert!(!logs.is_empty(), "the log does not say what failed");
    assert_eq!(
        common::files_containing(&p.path().join(".alto"), WRONG),
        Vec::<std::path::PathBuf>::new()
    );

    // A secret in a direct reference would be recorded inside the PEX, which
    // the remote shares: alto keeps nothing of such a build.
    std::fs::write(
        p.path().join("alto.yaml"),
        format!(
            "default:\n  project_name: private\n  taps:\n    tap-probe:\n      pip_url: \"@format --no-pypi http://alto:{{env[INDEX_TOKEN]}}@127.0.0.1:{}/simple/tap-probe/tap_probe-1.0-py3-none-any.whl\"\n",
            index.port
        ),
    )
    .unwrap();
    let c = Machine::new(true);
    let (code, _, err) = run(&c, TOKEN, &["build"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds a secret of its pip_url"), "{err}");
    clean("a build refused for its secret", &err, TOKEN);
    for dir in [
        c.objects(),
        c.cache.path().join("store/v1/tmp"),
        p.home.path().join(".alto"),
        p.path().join(".alto"),
    ] {
        assert_eq!(
            common::files_containing(&dir, TOKEN),
            Vec::<std::path::PathBuf>::new()
        );
    }
    assert!(!std::fs::read_dir(c.objects()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".meta.json")
    }));
}

/// alto writes each PEX itself, and writes the bytes pex makes of the same
/// venv: a registry plugin (sdists uv built, console scripts) and a local
/// one. A venv it does not reproduce (a file name with a comma, which
/// RECORD quotes) is packed by pex, and its build log says why.
#[test]
fn alto_packs_each_venv_as_pex_does_byte_for_byte() {
    let p = plugin_project(
        "default:\n  project_name: packs\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n  targets:\n    target-jsonl:\n      pip_url: target-jsonl==0.1.4\n  utilities:\n    utility-comma:\n      pip_url: ./plugins/utility-comma\n",
    );
    let m = Machine::new(true);
    let built = p.json_on(&m, &["build"]);
    assert_eq!(statuses(&built), vec!["built"; 3], "{built}");
    let logs = p.path().join(".alto/logs/build");
    let log_of = |plugin: &str| -> String {
        std::fs::read_dir(&logs)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{plugin}-"))
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    let pex_lib = m
        .cache
        .path()
        .join(format!("tools/pex-{}", alto::realize::pex::PEX_VERSION));
    for (plugin, ours) in [
        ("tap-fixture", true),
        ("target-jsonl", true),
        ("utility-comma", false),
    ] {
        let log = log_of(plugin);
        if ours {
            assert!(log.contains("alto packed the venv as pex"), "{log}");
        } else {
            assert!(
                log.contains("RECORD has quoted rows") && log.contains("pex packs it"),
                "{log}"
            );
        }
        let key = p.json_on(&m, &["show", plugin])["key"]
            .as_str()
            .unwrap()
            .to_string();
        let venv = m.cache.path().join("store/v1/venvs").join(&key);
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("pex.pex");
        let status = std::process::Command::new("python3")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", p.home.path())
            .env("PYTHONPATH", &pex_lib)
            .env("PEX_ROOT", work.path().join("pex-root"))
            .args(["-m", "pex", "--venv-repository"])
            .arg(&venv)
            .arg("-o")
            .arg(&out)
            .args(["--venv", "--no-emit-warnings", "--no-compress"])
            .status()
            .unwrap();
        assert!(status.success());
        let stored = std::fs::read(m.objects().join(&key)).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == stored,
            "{plugin}: alto's PEX differs from pex's"
        );
    }
    let (code, out, err) = p.run_on(&m, &["invoke", "utility-comma"]);
    assert_eq!((code, out.trim()), (0, "comma"), "{err}");
}
