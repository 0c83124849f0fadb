//! Helpers shared by the benchmarks.
#![allow(dead_code)]

use std::path::Path;

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest)
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The interpreter `python3` runs (its real path, past any shim).
pub fn python3() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Creates `cache` (an `ALTO_CACHE_DIR`) sharing the pex the test suite
/// provisioned in `target/tmp/shared-cache`, if any, to skip a download.
pub fn cache_dir(root: &Path, cache: &Path) {
    std::fs::create_dir_all(cache).unwrap();
    let shared = root.join("target/tmp/shared-cache/tools");
    if shared.exists() {
        let _ = std::os::unix::fs::symlink(shared, cache.join("tools"));
    }
}

/// The shell command starting a realized plugin's console script `script`
/// as alto starts it (its venv's interpreter, from `alto --json show`; the
/// PEX, run by `python`, while it has no venv), so a raw pipe pays what
/// alto pays to start a plugin. `alto` is an alto command set up for the
/// project.
pub fn start_plugin(
    mut alto: std::process::Command,
    plugin: &str,
    script: &str,
    python: &str,
) -> String {
    let out = alto.args(["--json", "show", plugin]).output().unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("alto show {plugin}: {e}"));
    match v["venv"].as_str() {
        Some(venv) => format!("{venv}/bin/python -I {venv}/bin/{script}"),
        None => format!(
            "PEX_SCRIPT={script} {python} {}",
            v["path"].as_str().unwrap()
        ),
    }
}
