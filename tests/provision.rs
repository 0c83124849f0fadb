//! Provisioning uv from the index pip is set to use, against a fake index
//! on loopback: its wheel fetched and checked by sha256, and a wheel that
//! does not match the index's sha256 never installed. One test in its own
//! binary: it sets PIP_INDEX_URL for the process.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A fake uv wheel (`py3-none-any`, so it fits any interpreter) whose `uv`
/// prints the pinned version, served under a PEP 691 JSON page that gives
/// `sha256` for it; `honest: false` serves another sha256.
const INDEX: &str = r##"
import hashlib, http.server, io, json, sys, zipfile
version, honest = sys.argv[1], sys.argv[2] == "1"
name = "uv-%s-py3-none-any.whl" % version
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    info = zipfile.ZipInfo("uv-%s.data/scripts/uv" % version)
    info.external_attr = 0o755 << 16
    z.writestr(info, "#!/bin/sh\necho 'uv %s (fake)'\n" % version)
    z.writestr("uv-%s.dist-info/METADATA" % version, "Name: uv\nVersion: %s\n" % version)
wheel = buf.getvalue()
digest = hashlib.sha256(wheel if honest else b"other").hexdigest()
page = json.dumps({"meta": {"api-version": "1.0"}, "name": "uv", "files": [
    {"filename": name, "url": "../../files/" + name, "hashes": {"sha256": digest}}
]}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") == "/simple/uv":
            body, kind = page, "application/vnd.pypi.simple.v1+json"
        elif self.path == "/files/" + name:
            body, kind = wheel, "application/octet-stream"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"##;

struct Index {
    child: Child,
    url: String,
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn index(honest: bool) -> Index {
    let mut child = Command::new("python3")
        .args(["-c", INDEX, alto::realize::uv::UV_VERSION])
        .arg(if honest { "1" } else { "0" })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // It prints its port once it listens.
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let port: u16 = port.trim().parse().expect("the index did not start");
    Index {
        child,
        url: format!("http://127.0.0.1:{port}/simple"),
    }
}

fn python() -> std::path::PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().into()
}

#[test]
fn uv_comes_from_pips_index_as_its_wheel_checked_by_sha256() {
    let python = python();
    let fake = index(true);
    // SAFETY: this binary's only test; nothing else reads the environment.
    unsafe {
        std::env::set_var("PIP_INDEX_URL", &fake.url);
        std::env::remove_var("PIP_EXTRA_INDEX_URL");
        // pip would also look there, and so would find no fake.
        std::env::remove_var("PIP_FIND_LINKS");
    }
    let cache = tempfile::tempdir().unwrap();
    let uv = alto::realize::uv::ensure(&python, cache.path()).unwrap();
    let said = Command::new(&uv).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        format!("uv {} (fake)", alto::realize::uv::UV_VERSION)
    );
    // Fetched, not installed by pip: pip would have left its dist-info.
    let dir = uv.parent().unwrap().parent().unwrap();
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["bin"], "{}", dir.display());
    assert!(no_leftovers(&cache.path().join("tools")));
    drop(fake);

    // A wheel whose sha256 is not the index's is not installed, fetched
    // or through pip.
    let tampered = index(false);
    // SAFETY: as above.
    unsafe { std::env::set_var("PIP_INDEX_URL", &tampered.url) };
    let cache = tempfile::tempdir().unwrap();
    let err = alto::realize::uv::ensure(&python, cache.path()).unwrap_err();
    // pip, tried next, refuses it too and says why.
    let text = format!("{err:?}");
    assert!(text.contains("uv") && text.contains("sha256"), "{text}");
    assert!(
        !alto::realize::uv::tool_dir(cache.path()).exists(),
        "a tampered uv was put in place"
    );
    assert!(no_leftovers(&cache.path().join("tools")));
}

/// No half-made tool directory is left beside the tools.
fn no_leftovers(tools: &Path) -> bool {
    std::fs::read_dir(tools)
        .map(|d| {
            d.flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with('.'))
        })
        .unwrap_or(true)
}
