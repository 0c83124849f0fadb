//! Shared helpers for the CLI tests: a project on disk and the real binary run
//! in a clean environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// `alto` run in `dir` with only PATH and an empty HOME from the outside.
pub fn alto(dir: &Path, home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("alto").unwrap();
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1");
    cmd
}

/// A project directory holding the given files.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

impl Project {
    pub fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, text).unwrap();
        }
        Project {
            dir,
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn alto(&self) -> Command {
        alto(self.dir.path(), self.home.path())
    }

    /// Runs alto and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.alto().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "alto {args:?} failed:\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// A directory shared by every test of this run: the provisioned pex and
/// pex's own cache, so the suite builds each requirement once.
pub fn shared_cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-cache");
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    std::fs::create_dir_all(dir.join("pex-root")).unwrap();
    dir
}

/// One machine's local store. With `with_builder`, it shares the provisioned
/// pex and pex's cache; without, it cannot build at all (no pex is there).
pub struct Machine {
    pub cache: tempfile::TempDir,
}

impl Machine {
    pub fn new(with_builder: bool) -> Machine {
        let cache = tempfile::tempdir().unwrap();
        if with_builder {
            let shared = shared_cache();
            std::os::unix::fs::symlink(shared.join("tools"), cache.path().join("tools")).unwrap();
            std::os::unix::fs::symlink(shared.join("pex-root"), cache.path().join("pex-root"))
                .unwrap();
        }
        Machine { cache }
    }

    pub fn objects(&self) -> PathBuf {
        self.cache.path().join("store/v1/objects")
    }

    /// Whether this machine ever provisioned or ran pex.
    pub fn has_pex(&self) -> bool {
        self.cache.path().join("tools").exists()
    }
}

/// A project with the fixture plugins copied in.
pub fn plugin_project(config: &str) -> Project {
    let p = Project::new(&[("alto.yaml", config)]);
    copy_dir(&fixtures().join("plugins"), &p.path().join("plugins"));
    p
}

impl Project {
    /// alto on `machine`.
    pub fn on(&self, machine: &Machine) -> Command {
        let mut c = self.alto();
        c.env("ALTO_CACHE_DIR", machine.cache.path());
        c
    }

    /// Runs alto on `machine`: (exit code, stdout, stderr).
    pub fn run_on(&self, machine: &Machine, args: &[&str]) -> (i32, String, String) {
        let out = self.on(machine).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `alto --json ARGS` on `machine`, which must succeed.
    pub fn json_on(&self, machine: &Machine, args: &[&str]) -> serde_json::Value {
        let (code, out, err) = self.run_on(machine, &[&["--json"], args].concat());
        assert_eq!(code, 0, "alto {args:?} failed:\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let moto = Moto { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto
    }

    /// Creates a bucket with a plain HTTP PUT (moto accepts it unsigned).
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
            "{resp}"
        );
    }

    /// Config lines pointing alto at this server.
    pub fn config(&self, bucket: &str) -> String {
        format!(
            "  filesystem: s3\n  bucket: {bucket}\n  s3_settings:\n    endpoint: http://127.0.0.1:{}\n    allow_http: true\n    region: us-east-1\n    access_key_id: test\n    secret_access_key: test\n",
            self.port
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Flips one byte in the middle of a file, keeping its size.
pub fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x55;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(path, bytes).unwrap();
}

/// A PostgreSQL server on a free loopback port in a temporary directory,
/// stopped when dropped. Run as the `postgres` user when the tests run as root.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    if let Ok(out) = std::process::Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return std::fs::canonicalize(&p)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_default();
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL is not installed (.ci/run installs it)")
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            dir,
            port,
            bin,
            as_postgres,
        };
        if as_postgres {
            let _ = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status();
        }
        let data = pg.dir.path().join("data");
        let data_s = data.to_string_lossy().into_owned();
        assert!(
            pg.cmd(
                "initdb",
                &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"]
            )
            .status()
            .unwrap()
            .success()
        );
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("log").to_string_lossy().into_owned();
        assert!(
            pg.cmd(
                "pg_ctl",
                &["-D", &data_s, "-o", &opts, "-l", &log, "-w", "start"]
            )
            .status()
            .unwrap()
            .success()
        );
        pg
    }

    fn cmd(&self, tool: &str, args: &[&str]) -> std::process::Command {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        c.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }

    /// Runs SQL as the superuser.
    pub fn sql(&self, sql: &str) {
        let port = self.port.to_string();
        let ok = std::process::Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let _ = self
            .cmd("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .status();
    }
}

/// A private package index on a free loopback port, stopped when dropped:
/// one hand-made wheel, `tap-probe==1.0` (console script `tap-probe`), served
/// only to requests carrying HTTP basic auth `user:password`.
pub struct PrivateIndex {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl PrivateIndex {
    pub fn start(user: &str, password: &str) -> PrivateIndex {
        let dir = tempfile::tempdir().unwrap();
        let make_wheel = r#"
import base64, hashlib, os, sys, zipfile
root = sys.argv[1]
dist = "tap_probe-1.0.dist-info"
files = {
    "tap_probe/__init__.py": b"def main():\n    print('probe 1.0')\n",
    dist + "/METADATA": b"Metadata-Version: 2.1\nName: tap-probe\nVersion: 1.0\n",
    dist + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: alto-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    dist + "/entry_points.txt": b"[console_scripts]\ntap-probe = tap_probe:main\n",
}
record = []
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
record.append(dist + "/RECORD,,")
files[dist + "/RECORD"] = ("\n".join(record) + "\n").encode()
project = os.path.join(root, "simple", "tap-probe")
os.makedirs(project)
wheel = "tap_probe-1.0-py3-none-any.whl"
with zipfile.ZipFile(os.path.join(project, wheel), "w") as z:
    for path, data in files.items():
        z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
with open(os.path.join(project, "index.html"), "w") as f:
    f.write('<html><body><a href="%s">%s</a></body></html>' % (wheel, wheel))
"#;
        assert!(
            std::process::Command::new("python3")
                .args(["-c", make_wheel])
                .arg(dir.path())
                .status()
                .unwrap()
                .success()
        );
        let serve = r#"
import base64, functools, http.server, sys
want = "Basic " + base64.b64encode(sys.argv[2].encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return super().do_GET()
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3])), handler).serve_forever()
"#;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args(["-c", serve])
            .arg(dir.path())
            .arg(format!("{user}:{password}"))
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let index = PrivateIndex { child, dir, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the index did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        index
    }
}

impl Drop for PrivateIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            out.push(path);
        }
    }
    out
}

/// What the original's `~` hash rules make of `lines` (rules without their
/// `~`), computed by Python itself (`tests/hash_reference.py`): each line as
/// a Python target reads it, `null` for a line `json.loads` refuses.
pub fn hash_reference(rules: &[&str], lines: &[String]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hash_reference.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args(rules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "hash_reference.py failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fake of Vault's HTTP API (`tests/fake_vault.py`) on a free loopback
/// port, stopped when dropped. `config` is its JSON configuration: mount,
/// KV version, token, AppRole ids, optional TLS files and the secrets.
pub struct FakeVault {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl FakeVault {
    pub fn start(config: &serde_json::Value) -> FakeVault {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vault.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_vault.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 tests/fake_vault.py");
        // It prints its port once it listens.
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("fake_vault.py printed no port: {line:?}")
        });
        FakeVault { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests it answered, one `METHOD path` each.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("vault.json.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
