//! Runs that stop cleanly, end to end with real plugins: SIGINT and SIGTERM
//! to alto's pid and to its process group during a pipeline, an ingest, a
//! replay and a build; a SIGKILLed run followed by a new one; a remote that
//! dies mid-run, so the lock cannot be renewed. After each: no process alto
//! started is alive, no run directory remains, the lock is free, the state
//! that was confirmed is committed (and claims only stored data), and the
//! exit code and output say what happened.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Moto, Project, plugin_project};
use serde_json::Value;

/// tap-fixture sends a record (and a STATE) every 10 ms, long enough to be
/// interrupted; target-fixture stores and confirms; target-capture-slow
/// takes 200 ms per STATE.
fn config(remote: &str) -> String {
    format!(
        "default:\n  project_name: stops\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      select: ['users.*']\n      config:\n        rows: 100000\n        sleep: 0.01\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n    target-capture-slow:\n      pip_url: ./plugins/target-capture-slow\n      config:\n        output_path: out/slow.jsonl\n        sleep: 0.2\n{remote}"
    )
}

/// The local store of these tests, kept between runs (with the suite's
/// shared pex): the fixture plugins are built once.
fn cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interrupt-cache");
    let shared = common::shared_cache();
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["tools", "pex-root"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            let _ = std::os::unix::fs::symlink(shared.join(name), &link);
        }
    }
    dir
}

static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Setup {
    p: Project,
    cache: PathBuf,
    /// In the environment of every alto started here, so inherited by every
    /// process it starts: how the test finds them.
    mark: String,
}

impl Setup {
    fn new(remote: &str) -> Setup {
        let s = Setup {
            p: plugin_project(&config(remote)),
            cache: cache(),
            mark: format!("{}-{}", std::process::id(), rand_suffix()),
        };
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let out = s.cmd(&["-q", "build"]).output().unwrap();
        assert!(
            out.status.success(),
            "build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("alto"));
        c.current_dir(self.p.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.p.home.path())
            .env("NO_COLOR", "1")
            .env("ALTO_CACHE_DIR", &self.cache)
            .env("ALTO_STATE_COMMIT_MS", "50")
            .env("ALTO_STOP_GRACE_SECS", "5")
            .env("ALTO_TEST_MARK", &self.mark)
            .args(args);
        c
    }

    /// alto in a process group of its own (as a shell's job is), its stderr
    /// in a file.
    fn start(&self, args: &[&str]) -> Running {
        self.start_cmd(self.cmd(args))
    }

    fn start_cmd(&self, mut c: Command) -> Running {
        let log = self.p.path().join(format!("stderr-{}.log", rand_suffix()));
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .process_group(0)
            .spawn()
            .unwrap();
        Running {
            child: Some(child),
            log,
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The project's directory in the directory remote.
    fn remote(&self) -> PathBuf {
        self.p.home.path().join(".alto/stops")
    }

    fn state(&self, pipeline: &str) -> Option<Value> {
        let text =
            std::fs::read_to_string(self.remote().join(format!("state/dev/{pipeline}.json")))
                .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Processes alive (not zombies) that carry this test's mark.
    fn survivors(&self) -> Vec<(u32, String)> {
        let needle = format!("ALTO_TEST_MARK={}", self.mark);
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(env) = std::fs::read(e.path().join("environ")) else {
                continue;
            };
            if !env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            if !zombie {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
            }
        }
        out
    }

    /// The run directories left in the project.
    fn run_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.p.path().join(".alto/run"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    fn lock(&self, name: &str) -> PathBuf {
        self.remote().join(format!("locks/dev/{name}.lock"))
    }

    /// What must hold after any stop: nothing alto started is alive, no
    /// run directory (rendered configs, secrets in clear) is left, the lock
    /// is free.
    fn assert_clean(&self, lock: &str) {
        // The kernel may take a moment to reap what alto killed last.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.survivors().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.survivors(), vec![], "processes outlived alto");
        assert_eq!(
            self.run_dirs(),
            Vec::<PathBuf>::new(),
            "run directories left"
        );
        assert!(
            !self.lock(lock).exists(),
            "the lock {lock} was not released"
        );
    }
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{n:x}")
}

/// An alto started by a test; killed if the test fails before it ends.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    fn signal_group(&self, sig: i32) {
        unsafe { libc::killpg(self.pid(), sig) };
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for alto to end (at most `limit`).
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "alto did not end within {limit:?}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            unsafe { libc::killpg(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The users the target stored, and the bookmark the committed state holds:
/// the state may claim only stored data.
fn check_state_claims_stored(s: &Setup, pipeline: &str) -> u64 {
    let state = s.state(pipeline).expect("a committed state");
    let bookmark = state["bookmarks"]["users"]["updated_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("no users bookmark in {state}"));
    let stored = std::fs::read_to_string(s.p.path().join("out/users.jsonl"))
        .unwrap_or_default()
        .lines()
        .count() as u64;
    assert!(bookmark > 0, "nothing was confirmed");
    assert!(
        stored >= bookmark,
        "the state claims {bookmark} users, the target stored {stored}"
    );
    bookmark
}

fn pipeline_stop(sig: i32, to_group: bool, code: i32, word: &str) {
    let s = Setup::new("");
    let mut run = s.start(&["tap-fixture:target-fixture"]);
    wait_until("a state commit", Duration::from_secs(60), || {
        s.state("tap-fixture-to-target-fixture").is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    if to_group {
        run.signal_group(sig);
    } else {
        run.signal(sig);
    }
    let status = run.wait(Duration::from_secs(30));
    let err = run.stderr();
    assert_eq!(status.code(), Some(code), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains(word), "{err}");
    assert!(!err.contains("done in"), "{err}");
    s.assert_clean("tap-fixture-to-target-fixture");
    let bookmark = check_state_claims_stored(&s, "tap-fixture-to-target-fixture");

    // The next run starts at once (the lock is free), from the confirmed state.
    s.assert_next_run_continues(bookmark);
}

impl Setup {
    /// A short run of the same pipeline: it takes the lock at once and goes
    /// on from `bookmark`.
    fn assert_next_run_continues(&self, bookmark: u64) {
        let out = self
            .cmd(&["tap-fixture:target-fixture"])
            .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__ROWS", "3")
            .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__SLEEP", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("already running"), "{err}");
        let state = self.state("tap-fixture-to-target-fixture").unwrap();
        assert_eq!(
            state["bookmarks"]["users"]["updated_at"].as_u64(),
            Some(bookmark + 3),
            "{state}"
        );
    }
}

#[test]
fn sigint_to_alto_stops_a_pipeline_cleanly() {
    pipeline_stop(libc::SIGINT, false, 130, "SIGINT");
}

#[test]
fn sigterm_to_the_process_group_stops_a_pipeline_cleanly() {
    pipeline_stop(libc::SIGTERM, true, 143, "SIGTERM");
}

#[test]
fn sigint_stops_a_reservoir_ingest_keeping_what_was_committed() {
    let s = Setup::new("");
    let mut run = s.start(&["tap-fixture:reservoir"]);
    let index = s.remote().join("reservoir/dev/tap-fixture/_index.json");
    let committed = || {
        std::fs::read_to_string(&index)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["state"]["bookmarks"]["users"]["updated_at"].as_u64() > Some(0))
    };
    wait_until("an index commit", Duration::from_secs(60), committed);
    std::thread::sleep(Duration::from_millis(300));
    run.signal(libc::SIGINT);
    let status = run.wait(Duration::from_secs(30));
    let err = run.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    s.assert_clean("tap-fixture-to-reservoir");
    // The index's state claims only records its partitions hold: a replay
    // delivers every user up to the bookmark.
    let idx: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let bookmark = idx["state"]["bookmarks"]["users"]["updated_at"]
        .as_u64()
        .unwrap();
    let (code, err) = s.run(&["reservoir:tap-fixture-target-fixture"]);
    assert_eq!(code, 0, "{err}");
    let users = std::fs::read_to_string(s.p.path().join("out/users.jsonl")).unwrap();
    let ids: Vec<u64> = users
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(ids.len() as u64 >= bookmark, "{} < {bookmark}", ids.len());
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

#[test]
fn sigterm_stops_a_replay_keeping_the_confirmed_position() {
    let s = Setup::new("");
    // A reservoir of 300 users, quickly.
    let out = s
        .cmd(&["tap-fixture:reservoir"])
        .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__ROWS", "300")
        .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__SLEEP", "0")
        .env("ALTO_RESERVOIR_BUFFER_SIZE", "20")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let position = s
        .remote()
        .join("state/dev/tap-fixture-reservoir-to-target-capture-slow.json");
    let mut run = s.start(&["reservoir:tap-fixture-target-capture-slow"]);
    wait_until("a confirmed position", Duration::from_secs(60), || {
        position.exists()
    });
    run.signal_group(libc::SIGTERM);
    let status = run.wait(Duration::from_secs(30));
    let err = run.stderr();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    s.assert_clean("tap-fixture-reservoir-to-target-capture-slow");
    assert!(position.exists());
}

#[test]
fn sigterm_stops_a_build_leaving_no_temporary_file() {
    let s = Setup::new("");
    // A cache-buster: a plugin that must be built now.
    let buster = format!(
        "  taps:\n    tap-fixture:\n      _version: '{}'\n",
        rand_suffix()
    );
    std::fs::write(
        s.p.path().join("alto.local.yaml"),
        format!("default:\n{buster}"),
    )
    .unwrap();
    let mut run = s.start(&["build", "tap-fixture"]);
    let pid = run.pid();
    // Stopped while uv installs, as soon as it is seen (pex no longer runs:
    // alto packs the venv).
    wait_until("uv to install", Duration::from_secs(60), || {
        s.survivors()
            .iter()
            .any(|(_, cmd)| cmd.contains("uv") && cmd.contains("pip install"))
    });
    run.signal(libc::SIGTERM);
    let status = run.wait(Duration::from_secs(30));
    let err = run.stderr();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    s.assert_clean("none");
    let tmp: Vec<_> = std::fs::read_dir(s.cache.join("store/v1/tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let ours: Vec<_> = tmp
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&format!(".{pid}-")))
        })
        .collect();
    assert_eq!(ours, Vec::<&PathBuf>::new(), "temporary files left");
}

#[test]
fn a_run_after_a_sigkilled_one_cleans_up_and_takes_the_lock_over() {
    let s = Setup::new("");
    let mut run = s.start(&["tap-fixture:target-fixture"]);
    wait_until("a state commit", Duration::from_secs(60), || {
        s.state("tap-fixture-to-target-fixture").is_some()
    });
    run.signal(libc::SIGKILL);
    let status = run.wait(Duration::from_secs(10));
    assert_eq!(status.code(), None);
    // Nothing can be caught: the run directory and the lock stay, but the
    // kernel ends the plugins with their parent.
    wait_until(
        "the plugins to die with alto",
        Duration::from_secs(10),
        || s.survivors().is_empty(),
    );
    assert_eq!(s.run_dirs().len(), 1, "the killed run's directory");
    assert!(s.lock("tap-fixture-to-target-fixture").exists());
    let bookmark = check_state_claims_stored(&s, "tap-fixture-to-target-fixture");

    let out = s
        .cmd(&["tap-fixture:target-fixture"])
        .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__ROWS", "3")
        .env("ALTO_TAPS__TAP_FIXTURE__CONFIG__SLEEP", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("took over the lock of pid"), "{err}");
    assert!(err.contains("no longer running"), "{err}");
    s.assert_clean("tap-fixture-to-target-fixture");
    let state = s.state("tap-fixture-to-target-fixture").unwrap();
    assert!(
        state["bookmarks"]["users"]["updated_at"].as_u64() >= Some(bookmark),
        "{state}"
    );
}

#[test]
fn a_remote_that_stops_answering_stops_the_run_before_the_lock_expires() {
    let moto = Moto::start();
    moto.create_bucket("stops");
    let s = Setup::new(&moto.config("stops"));
    let ttl = 9;
    let mut c = s.cmd(&["tap-fixture:target-fixture"]);
    c.env("ALTO_LOCK_TTL", ttl.to_string())
        .env("ALTO_REMOTE_TIMEOUT", "2");
    let mut run = s.start_cmd(c);
    wait_until("the plugins to run", Duration::from_secs(60), || {
        s.p.path().join("out/users.jsonl").exists()
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(moto);
    let died = Instant::now();
    // The lock was last renewed before the remote died: it expires within
    // the TTL from now, and the plugins must be gone before.
    wait_until(
        "the plugins to be stopped",
        Duration::from_secs(ttl),
        || {
            s.survivors()
                .iter()
                .all(|(pid, _)| *pid as i32 == run.pid())
        },
    );
    let stopped_after = died.elapsed();
    let status = run.wait(Duration::from_secs(60));
    let err = run.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("could not be renewed"), "{err}");
    assert!(!err.contains("done in"), "{err}");
    assert!(
        stopped_after < Duration::from_secs(ttl),
        "{stopped_after:?}"
    );
    assert_eq!(s.survivors(), vec![]);
    assert_eq!(s.run_dirs(), Vec::<PathBuf>::new());
}

/// An index that accepts connections and never answers, saying on stdout
/// when one came.
const SILENT_INDEX: &str = r#"
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    print("connected", flush=True)
"#;

#[test]
fn sigint_while_uv_is_fetched_stops_the_build_at_once() {
    use std::io::BufRead;
    let mut index = Command::new("python3")
        .args(["-c", SILENT_INDEX])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(index.stdout.take().unwrap()).lines();
    let port = said.next().unwrap().unwrap();
    let p = plugin_project(&config(""));
    // A machine without uv: alto fetches it first.
    let cache = tempfile::tempdir().unwrap();
    let log = p.path().join("stderr.log");
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("alto"));
    c.current_dir(p.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", p.home.path())
        .env("NO_COLOR", "1")
        .env("ALTO_CACHE_DIR", cache.path())
        .env("PIP_INDEX_URL", format!("http://127.0.0.1:{port}/simple"))
        .args(["build", "tap-fixture"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .process_group(0);
    let mut run = Running {
        child: Some(c.spawn().unwrap()),
        log,
    };
    assert_eq!(said.next().unwrap().unwrap(), "connected");
    let asked = Instant::now();
    run.signal(libc::SIGINT);
    // Not after the index's read timeout (a minute): at once.
    let status = run.wait(Duration::from_secs(10));
    let err = run.stderr();
    assert!(asked.elapsed() < Duration::from_secs(3), "{err}");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let tools: Vec<_> = std::fs::read_dir(cache.path().join("tools"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(tools, Vec::<std::ffi::OsString>::new(), "a tool was left");
    let _ = index.kill();
    let _ = index.wait();
}
