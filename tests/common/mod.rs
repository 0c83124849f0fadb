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
/// uv, and their caches, so the suite downloads each requirement once.
pub fn shared_cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-cache");
    for sub in ["tools", "pex-root", "uv-cache"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

/// One machine's local store. With `with_builder`, it shares the provisioned
/// pex and uv and their caches; without, it cannot build at all (no pex is there).
pub struct Machine {
    pub cache: tempfile::TempDir,
}

impl Machine {
    pub fn new(with_builder: bool) -> Machine {
        let cache = tempfile::tempdir().unwrap();
        if with_builder {
            let shared = shared_cache();
            std::os::unix::fs::symlink(shared.join("tools"), cache.path().join("tools")).unwrap();
            for sub in ["pex-root", "uv-cache"] {
                std::os::unix::fs::symlink(shared.join(sub), cache.path().join(sub)).unwrap();
            }
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

    /// Starts alto on `machine` in the background, with `envs` added to the
    /// same clean environment as `on`; its stderr goes to `log` (a pipe
    /// nobody reads would stop it once full), its stdout nowhere.
    pub fn spawn_on(
        &self,
        machine: &Machine,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("alto"))
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("ALTO_CACHE_DIR", machine.cache.path())
            .envs(envs.iter().copied())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
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

impl Moto {
    /// A plain HTTP request: (status, body). moto does not check signatures,
    /// but reads only for a request that carries one.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let mut rest = &resp[split + 4..];
        if !head.contains("transfer-encoding: chunked") {
            return (status, rest.to_vec());
        }
        let mut out = Vec::new();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                return (status, out);
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
    }
}

/// A file of the remote store, on a directory remote or in a moto bucket:
/// what the tests damage, remove or plant there.
pub enum RemoteFiles<'a> {
    /// The remote's root directory.
    Dir(PathBuf),
    /// The server and `<bucket>/<bucket_path>`.
    S3(&'a Moto, String),
}

impl RemoteFiles<'_> {
    pub fn get(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            RemoteFiles::Dir(d) => std::fs::read(d.join(rel)).ok(),
            RemoteFiles::S3(m, root) => {
                let (status, body) = m.request("GET", &format!("/{root}/{rel}"), b"");
                (status == 200).then_some(body)
            }
        }
    }

    pub fn put(&self, rel: &str, bytes: &[u8]) {
        match self {
            RemoteFiles::Dir(d) => {
                let path = d.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            RemoteFiles::S3(m, root) => {
                let (status, body) = m.request("PUT", &format!("/{root}/{rel}"), bytes);
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            }
        }
    }

    pub fn delete(&self, rel: &str) {
        match self {
            RemoteFiles::Dir(d) => {
                let _ = std::fs::remove_file(d.join(rel));
            }
            RemoteFiles::S3(m, root) => {
                m.request("DELETE", &format!("/{root}/{rel}"), b"");
            }
        }
    }

    /// `.store/v1/data/<name>` of the content the record of `key` names.
    pub fn content_rel(&self, key: &str) -> String {
        let meta: serde_json::Value =
            serde_json::from_slice(&self.get(&format!(".store/v1/meta/{key}.json")).unwrap())
                .unwrap();
        format!(".store/v1/data/{}", meta["content"].as_str().unwrap_or(key))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (for servers that cannot report their own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads a child's stdout until a line containing `marker`, returns the
/// rest of that line after it, and keeps draining the pipe so the child
/// never blocks on it.
fn read_until(child: &mut std::process::Child, marker: &str, what: &str) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "{what} exited before it was ready");
        if let Some(at) = line.find(marker) {
            let rest = line[at + marker.len()..].trim().to_string();
            std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
            return rest;
        }
    }
}

/// A raw HTTP/1.1 PUT with an empty body; the status line of the answer.
fn http_put(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.lines().next().unwrap_or_default().to_string()
}

/// The in-memory fake of the GCS XML API (`tests/support/gcs_fake.py`,
/// Python's standard library only) on a free loopback port, stopped when
/// dropped (and by itself if this process dies: it exits when its stdin
/// closes).
pub struct GcsFake {
    child: std::process::Child,
    pub port: u16,
    /// Holds `token.json`, the credentials file alto is given.
    dir: tempfile::TempDir,
}

impl GcsFake {
    /// A service account key that object_store accepts without OAuth:
    /// requests go out with an empty bearer token, which the fake ignores.
    pub const KEY: &str = r#"{"type":"service_account","private_key":"","private_key_id":"","client_email":"","disable_oauth":true}"#;

    pub fn start() -> GcsFake {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gcs_fake.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg("0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let addr = read_until(&mut child, "listening on 127.0.0.1:", "the GCS fake");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.json"), Self::KEY).unwrap();
        GcsFake {
            port: addr.parse().expect("the GCS fake printed its port"),
            child,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, name: &str) {
        let status = http_put(self.port, &format!("/{name}"));
        assert!(status.contains(" 200"), "{status}");
    }

    /// The credentials file a user would name in `token`.
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("token.json")
    }

    /// Config lines pointing alto at this server, as a gcsfs user writes
    /// them (`project`, `token`), plus where the API is.
    pub fn config(&self, bucket: &str) -> String {
        format!(
            "  filesystem: gcs\n  bucket: {bucket}\n  gcs_settings:\n    project: alto-tests\n    token: {}\n    endpoint_url: {}\n",
            self.token_file().display(),
            self.url()
        )
    }
}

impl Drop for GcsFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's Blob service (npm `azurite@3`, installed by `.ci/run` into
/// `target/tools`, or found on PATH) on a free loopback port, in memory,
/// stopped when dropped.
pub struct Azurite {
    child: std::process::Child,
    pub port: u16,
}

impl Azurite {
    /// The emulator's well-known development account and its published key.
    pub const ACCOUNT: &str = "devstoreaccount1";
    pub const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn bin() -> PathBuf {
        let local = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tools/node_modules/.bin/azurite-blob");
        if local.exists() {
            local
        } else {
            PathBuf::from("azurite-blob")
        }
    }

    pub fn start() -> Azurite {
        let mut child = std::process::Command::new(Self::bin())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("azurite-blob (.ci/run installs npm's azurite@3 into target/tools)");
        let addr = read_until(&mut child, "listens on http://127.0.0.1:", "Azurite");
        Azurite {
            port: addr.parse().expect("Azurite printed its port"),
            child,
        }
    }

    /// The account's path-style endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, Self::ACCOUNT)
    }

    /// What the Azure portal (and Azurite's documentation) hands out.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            Self::ACCOUNT,
            Self::KEY,
            self.endpoint()
        )
    }

    /// Creates a container (a Shared Key request made by
    /// `tests/support/azure_container.py`).
    pub fn create_container(&self, name: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azure_container.py");
        let out = std::process::Command::new("python3")
            .arg(script)
            .args([&self.endpoint(), Self::ACCOUNT, Self::KEY, name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Config lines pointing alto at this server with adlfs's
    /// `connection_string`.
    pub fn config(&self, container: &str) -> String {
        format!(
            "  filesystem: azure\n  bucket: {container}\n  azure_settings:\n    connection_string: \"{}\"\n",
            self.connection_string()
        )
    }
}

impl Drop for Azurite {
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

/// The fixture plugins as a shop's project with jobs and a schedule (for
/// tests/jobs.rs and tests/orchestrate.rs): `tap-fixture` logs Singer SDK
/// METRIC lines; `tap-hashed` has a hash rule, so alto sits in its pipe;
/// `tap-plain` reports no counts; `util` writes what its commands say.
pub const SHOP: &str = r#"default:
  project_name: shop
  taps:
    tap-fixture:
      pip_url: ./plugins/tap-fixture
      capabilities: [catalog, state, discover]
      config:
        rows: 4
        metrics: true
    tap-hashed:
      inherit_from: tap-fixture
      select: ["*.*", "~users.email"]
    tap-plain:
      inherit_from: tap-fixture
      config:
        metrics: false
  targets:
    target-fixture:
      pip_url: ./plugins/target-fixture
      config:
        destination: out
  utilities:
    util:
      pip_url: ./plugins/utility-fixture
      executable: utility-fixture
      environment:
        GREETING: hello from util
      commands:
        write: write done.txt "step ran"
        fail: fail 3
  jobs:
    shop: [tap-fixture:reservoir, reservoir:tap-fixture-target-fixture, util:write]
    direct: [tap-fixture:target-fixture, tap-plain:target-fixture]
    broken: [tap-hashed:target-fixture, util:fail, tap-plain:target-fixture]
  schedules:
    nightly: {job: shop, interval: "30 1 * * *"}
"#;

pub fn shop_project() -> Project {
    plugin_project(SHOP)
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
