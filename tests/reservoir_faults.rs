//! Faults in the reservoir, end to end with real plugins: alto killed
//! (SIGKILL) at seeded random points of ingests, compactions and replays,
//! replays racing ingests on an S3 server, and compactions racing replays.
//! Each checks that what is committed (the index and the tap's state in it, a
//! target's replay position) claims only stored data, and that every record
//! reaches the target exactly once, in order; and that compaction removes the
//! partitions no index names, whatever their stream is called.
//!
//! The kill points come from a xorshift seeded with ALTO_FAULT_SEED (a fixed
//! default otherwise); a failure prints the seed to rerun with.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Moto, Project, plugin_project};
use serde_json::Value;

const TAP: &str = "tap-fixture";
const STREAMS: [&str; 2] = ["users", "orders"];

/// A seeded xorshift64* of kill points.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed: u64 = std::env::var("ALTO_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_261_124);
        eprintln!("{test}: ALTO_FAULT_SEED={seed}");
        // Each test its own sequence from the one seed.
        let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in test.bytes() {
            x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        Rng(x | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration between `lo` and `hi` milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// The project: tap-fixture into a reservoir with `buffer` records per
/// partition; target-capture (`out/capture.jsonl`) and target-capture-slow
/// (`out/slow.jsonl`, with `slow` extra settings) to replay into; `remote`
/// lines for an S3 server, or none for `$HOME/.alto`.
fn config(buffer: u64, tap: &str, slow: &str, remote: &str) -> String {
    format!(
        "default:\n  project_name: faults\n  load_path: raw\n  reservoir_buffer_size: {buffer}\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      config:\n{tap}  targets:\n    target-capture:\n      pip_url: ./plugins/target-capture\n      config:\n        output_path: out/capture.jsonl\n    target-capture-slow:\n      pip_url: ./plugins/target-capture-slow\n      config:\n        output_path: out/slow.jsonl\n{slow}{remote}"
    )
}

/// The local store of every test here, kept between runs under the target
/// directory (with the suite's shared pex): the fixture plugins are built
/// once, not once per test.
fn cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reservoir-faults-cache");
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

/// One build at a time: the first builds, the others find the plugins built.
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Setup {
    p: Project,
    cache: PathBuf,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let s = Setup {
            p: plugin_project(config),
            cache: cache(),
        };
        // Built first, so that kills land in the pipelines, not in builds.
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        s.ok(&["-q", "build"]);
        s
    }

    fn write_config(&self, config: &str) {
        std::fs::write(self.p.path().join("alto.yaml"), config).unwrap();
    }

    /// alto in a clean environment: state committed every 50 ms, locks
    /// expiring 1 s after their holder died.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("alto"));
        c.current_dir(self.p.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.p.home.path())
            .env("NO_COLOR", "1")
            .env("ALTO_CACHE_DIR", &self.cache)
            .env("ALTO_STATE_COMMIT_MS", "50")
            .env("ALTO_LOCK_TTL", "1")
            .args(args);
        c
    }

    /// Runs a command that must succeed; its stdout.
    fn run_ok(&self, mut c: Command, what: &str) -> String {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "alto {what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run_ok(self.cmd(args), &args.join(" "))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// A file for the stderr of a run, kept in the project for failures.
    fn log(&self, name: &str) -> (PathBuf, std::fs::File) {
        let dir = self.p.path().join("test-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        (path, f)
    }

    /// alto in a process group of its own, to be killed.
    fn spawn(&self, mut c: Command, log: &str) -> (Child, PathBuf) {
        let (path, f) = self.log(log);
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .process_group(0)
            .spawn()
            .unwrap();
        (child, path)
    }

    /// The project's directory in the remote (`$HOME/.alto/faults`).
    fn root(&self) -> PathBuf {
        self.p.home.path().join(".alto/faults")
    }

    /// Removes the pipeline lock a killed run left, after checking it names
    /// that run, whose processes are all gone: the test plays the TTL's
    /// expiry, as `--wait` takes up to 2 s a time. The last kill of each
    /// test goes through `run --wait` instead.
    fn release_dead_lock(&self, pipeline: &str, pid: u32) {
        let path = self.root().join(format!("locks/dev/{pipeline}.lock"));
        if let Ok(bytes) = std::fs::read(&path) {
            let holder: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("the lock {} is not JSON: {e}", path.display()));
            assert_eq!(
                holder["pid"], pid,
                "the lock names another process: {holder}"
            );
            std::fs::remove_file(&path).unwrap();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Kills a process group when dropped before `ended`: a test that fails
/// leaves nothing running.
struct Group(i32);

impl Group {
    fn ended(mut self) {
        self.0 = 0;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.0 > 0 {
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

/// Whether a process of group `pgid`, other than a zombie, still runs.
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[2].parse::<i32>() == Ok(pgid) && !matches!(f[0], "Z" | "X") {
            return true;
        }
    }
    false
}

/// Kills alto alone, as a crash would: its plugins only see their pipes
/// close. Then waits for them to end by themselves, kills what is left after
/// 10 s, and checks nothing of the run survives. `Some` if alto had exited by
/// itself before the kill.
fn kill_alto(child: &mut Child) -> Option<ExitStatus> {
    let pid = child.id() as i32;
    let before = child.try_wait().unwrap();
    if before.is_none() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "processes of the killed run {pid} (its tap or target) are still running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    before
}

/// A tap's reservoir as its index names it, read back from the directory
/// remote and checked against the index.
struct Reservoir {
    index: Value,
    /// Record ids of each stream, in index order.
    ids: BTreeMap<String, Vec<i64>>,
    /// The flush (sequence number) that stored each record.
    seq: HashMap<(String, i64), u64>,
    /// The last sequence number of each stream.
    last: BTreeMap<String, u64>,
    paths: BTreeSet<String>,
}

impl Reservoir {
    fn index_path(root: &Path) -> PathBuf {
        root.join(format!("reservoir/dev/{TAP}/_index.json"))
    }

    /// `None` while there is no index. Panics on any disagreement between the
    /// index and the partitions: every named partition exists, has the size
    /// and blake3 the index says, begins with its stream's SCHEMA and holds
    /// as many RECORDs of that stream as its parts say.
    fn read(root: &Path) -> Option<Reservoir> {
        let path = Reservoir::index_path(root);
        let bytes = std::fs::read(&path).ok()?;
        let index: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the index is not valid JSON ({e}):\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(index["format"], "alto-reservoir-index", "{index}");
        let next_seq = index["next_seq"].as_u64().expect("next_seq");
        let mut r = Reservoir {
            index: Value::Null,
            ids: BTreeMap::new(),
            seq: HashMap::new(),
            last: BTreeMap::new(),
            paths: BTreeSet::new(),
        };
        let mut seqs = BTreeSet::new();
        for p in index["partitions"].as_array().expect("partitions") {
            let rel = p["path"].as_str().unwrap();
            let stream = p["stream"].as_str().unwrap().to_string();
            assert!(r.paths.insert(rel.to_string()), "{rel} is named twice");
            let data = std::fs::read(root.join(rel))
                .unwrap_or_else(|e| panic!("the index names {rel}, which cannot be read ({e})"));
            assert_eq!(data.len() as u64, p["bytes"].as_u64().unwrap(), "{rel}");
            assert_eq!(
                blake3::hash(&data).to_hex().as_str(),
                p["blake3"].as_str().unwrap(),
                "{rel}"
            );
            let text = String::from_utf8(zstd::stream::decode_all(&data[..]).unwrap()).unwrap();
            let mut lines = text.lines();
            let schema: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            assert_eq!(schema["type"], "SCHEMA", "{rel}");
            assert_eq!(schema["stream"], stream.as_str(), "{rel}");
            let records: Vec<i64> = lines
                .map(|l| {
                    let m: Value = serde_json::from_str(l).unwrap();
                    assert_eq!(m["type"], "RECORD", "{rel}: {l}");
                    assert_eq!(m["stream"], stream.as_str(), "{rel}: {l}");
                    m["record"]["id"].as_i64().unwrap()
                })
                .collect();
            let mut at = 0usize;
            for part in p["parts"].as_array().unwrap() {
                let seq = part["seq"].as_u64().unwrap();
                let n = part["records"].as_u64().unwrap() as usize;
                assert!(seq < next_seq, "{rel}: seq {seq}, next_seq {next_seq}");
                assert!(seqs.insert(seq), "seq {seq} is used twice");
                assert!(at + n <= records.len(), "{rel}: parts hold more than it");
                for id in &records[at..at + n] {
                    r.seq.insert((stream.clone(), *id), seq);
                }
                at += n;
                let last = r.last.entry(stream.clone()).or_default();
                assert!(seq > *last, "{rel}: flushes out of order");
                *last = seq;
            }
            assert_eq!(at, records.len(), "{rel}: its parts count other records");
            r.ids.entry(stream).or_default().extend(records);
        }
        r.index = index;
        Some(r)
    }

    fn bookmark(&self, stream: &str) -> i64 {
        self.index["state"]["bookmarks"][stream]["updated_at"]
            .as_i64()
            .unwrap_or(0)
    }

    fn ids(&self, stream: &str) -> &[i64] {
        self.ids.get(stream).map(Vec::as_slice).unwrap_or(&[])
    }

    /// tap-fixture's ids count from 1 and its state is a bookmark on the last
    /// one sent, after every record: the reservoir holds each id once, in
    /// order, and the state claims nothing beyond what is stored (nor less,
    /// which would store records twice).
    fn check_state(&self, when: &str) {
        for stream in STREAMS {
            let ids = self.ids(stream);
            let n = ids.len() as i64;
            assert!(
                ids.iter().copied().eq(1..=n),
                "{when}: the reservoir does not hold {stream} 1..={n} once each, in order: {ids:?}"
            );
            let b = self.bookmark(stream);
            assert!(
                b <= n,
                "{when}: the state claims {stream} up to {b}, the partitions hold up to {n}"
            );
            assert_eq!(
                b, n,
                "{when}: {stream} up to {n} is stored but the state says {b}: the next ingest stores them again"
            );
        }
    }

    /// The `.singer.zst` files under the tap's directory, relative to the root.
    fn files(root: &Path) -> BTreeSet<String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if path.to_string_lossy().ends_with(".singer.zst") {
                    let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                    out.insert(rel.into_owned());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&root.join(format!("reservoir/dev/{TAP}")), root, &mut out);
        out
    }
}

/// The names of the files under a directory.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_names(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// A replay position: the last confirmed sequence number of each stream.
type Position = BTreeMap<String, u64>;

fn position_of(value: &Value) -> Position {
    let streams = &value["alto_reservoir"]["streams"];
    assert_eq!(value["alto_reservoir"]["tap"], TAP, "{value}");
    streams
        .as_object()
        .unwrap_or_else(|| panic!("not a position: {value}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// The committed position of a target, empty before the first commit.
fn committed(root: &Path, target: &str) -> Position {
    let path = root.join(format!("state/dev/{TAP}-reservoir-to-{target}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => position_of(&serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the position {} is not JSON ({e}): {}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            )
        })),
        Err(_) => Position::new(),
    }
}

fn at(pos: &Position, stream: &str) -> u64 {
    pos.get(stream).copied().unwrap_or(0)
}

/// What one replay run wrote into a capturing target's file.
struct Received {
    /// Each record, with the position of the STATE that followed it, if any.
    records: Vec<(String, i64, Option<Position>)>,
    states: usize,
}

/// Parses the lines one run appended (`#RUN` lines and SCHEMAs aside). A last
/// line without its newline (a target killed mid-write) is ignored.
fn received(bytes: &[u8]) -> Received {
    let text = String::from_utf8_lossy(bytes);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut out = Received {
        records: Vec::new(),
        states: 0,
    };
    let mut open = 0;
    for line in complete.lines() {
        if line.starts_with("#RUN") || line.trim().is_empty() {
            continue;
        }
        let m: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("the target received a line that is not JSON ({e}): {line}")
        });
        match m["type"].as_str() {
            Some("RECORD") => {
                out.records.push((
                    m["stream"].as_str().unwrap().to_string(),
                    m["record"]["id"].as_i64().unwrap(),
                    None,
                ));
            }
            Some("STATE") => {
                let pos = position_of(&m["value"]);
                for r in &mut out.records[open..] {
                    r.2 = Some(pos.clone());
                }
                open = out.records.len();
                out.states += 1;
            }
            _ => {}
        }
    }
    out
}

/// Record ids of each stream the target-capture file holds, in order.
fn ids_by_stream(bytes: &[u8]) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (stream, id, _) in received(bytes).records {
        out.entry(stream).or_default().push(id);
    }
    out
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

/// 1. alto killed at random points of ingests (tap-fixture, 2 × 200 records a
///    run, 7 records a partition, a commit every 50 ms). After each kill the
///    index is valid JSON, names only partitions that exist and match it, and
///    its tap state claims exactly what they hold. A complete ingest then
///    takes over the last dead run's lock; compactions are killed at random
///    points, with the same checks; a last one (orphan grace 0) leaves only
///    the partitions its index names; a replay delivers every record once,
///    in order.
#[test]
fn killed_ingests_leave_an_index_whose_state_claims_only_stored_data() {
    let mut rng = Rng::new("killed_ingests");
    let s = Setup::new(&config(
        7,
        "        rows: 200\n        sleep: 0.002\n",
        "",
        "",
    ));
    let root = s.root();
    const KILLS: usize = 24;
    let (mut early, mut mid, mut finished) = (0, 0, 0);
    let mut next_seq = 1;
    for i in 0..KILLS {
        let (mut child, log) = s.spawn(
            s.cmd(&["-q", "tap-fixture:reservoir"]),
            &format!("ingest-{i}"),
        );
        let pid = child.id();
        if i % 2 == 0 {
            std::thread::sleep(rng.ms(20, 1100));
        } else {
            // Half the kills land after a commit whatever the machine's
            // load: wait for one (or for the run to end), then a little.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && matches!(child.try_wait(), Ok(None))
                && Reservoir::read(&root).map_or(1, |r| r.index["next_seq"].as_u64().unwrap())
                    <= next_seq
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(rng.ms(0, 100));
        }
        let ended = kill_alto(&mut child);
        if let Some(status) = ended {
            assert!(status.success(), "ingest {i} failed:\n{}", read(&log));
        }
        if i + 1 < KILLS {
            s.release_dead_lock("tap-fixture-to-reservoir", pid);
        }
        let when = format!("after kill {i}");
        let r = Reservoir::read(&root);
        if let Some(r) = &r {
            r.check_state(&when);
        }
        let n = r.map_or(1, |r| r.index["next_seq"].as_u64().unwrap());
        match (ended, n > next_seq) {
            (Some(_), _) => finished += 1,
            (None, true) => mid += 1,
            (None, false) => early += 1,
        }
        next_seq = n;
    }
    eprintln!(
        "killed_ingests: {mid} kills after a commit, {early} before any, {finished} runs ended first"
    );
    assert!(mid >= 5, "too few kills landed mid-ingest: {mid}");

    // The last dead run's lock expires; this run waits for it.
    s.ok(&["-q", "run", "--wait", "tap-fixture:reservoir"]);
    let r = Reservoir::read(&root).expect("an index");
    r.check_state("after the complete ingest");
    for stream in STREAMS {
        assert!(r.bookmark(stream) >= 200, "{}", r.index["state"]);
    }
    // The state mirror of the original's layout agrees with the index.
    let mirror: Value = serde_json::from_str(&read(
        &root.join(format!("state/dev/{TAP}-to-reservoir.json")),
    ))
    .unwrap();
    assert_eq!(mirror, r.index["state"]);

    // Compactions killed at random points (reading, writing the merged
    // partitions, committing, deleting what they replaced): the index stays
    // valid, names only partitions that exist, and holds every record once.
    let partitions = r.index["partitions"].as_array().unwrap().len();
    let (mut ended, mut before_commit, mut after_commit) = (false, 0, 0);
    let mut named = partitions;
    for k in 0..4 {
        if ended {
            break;
        }
        let (mut child, log) = s.spawn(
            s.cmd(&["-q", "reservoir", "compact", TAP]),
            &format!("compact-{k}"),
        );
        let pid = child.id();
        std::thread::sleep(rng.ms(5, 100));
        let status = kill_alto(&mut child);
        if let Some(status) = status {
            assert!(status.success(), "compaction {k} failed:\n{}", read(&log));
            ended = true;
        }
        s.release_dead_lock("tap-fixture-to-reservoir", pid);
        let now = Reservoir::read(&root).unwrap();
        now.check_state(&format!("after compaction {k}"));
        assert_eq!(now.ids, r.ids, "compaction {k} changed the data");
        assert_eq!(now.seq, r.seq, "compaction {k} renumbered flushes");
        match (status.is_none(), now.paths.len() < named) {
            (true, false) => before_commit += 1,
            (true, true) => after_commit += 1,
            _ => {}
        }
        named = now.paths.len();
    }
    // Then one to the end, removing every partition no index names: those
    // of the killed ingests and of the killed compactions.
    let t = Instant::now();
    let mut c = s.cmd(&["--json", "reservoir", "compact", TAP]);
    c.env("ALTO_RESERVOIR_ORPHAN_GRACE_SECS", "0");
    let done: Value = serde_json::from_str(&s.run_ok(c, "reservoir compact")).unwrap();
    eprintln!(
        "killed_ingests: {partitions} partitions; compactions killed before their commit: {before_commit}, after: {after_commit}; the last {done} in {:?}",
        t.elapsed()
    );
    let r = Reservoir::read(&root).unwrap();
    r.check_state("after the last compaction");
    // Not asserted: a partition killed mid-upload leaves its temporary file
    // (`.<unique>.tmp`, src/store/remote.rs create_project_file), which no
    // compaction removes.
    let temporary = walk_names(&root.join(format!("reservoir/dev/{TAP}")))
        .iter()
        .filter(|n| n.ends_with(".tmp"))
        .count();
    eprintln!("killed_ingests: {temporary} temporary files of killed uploads are left");
    assert_eq!(r.index["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(
        Reservoir::files(&root),
        r.paths,
        "the partitions stored are not the ones the index names"
    );

    s.ok(&["-q", "reservoir:tap-fixture-target-capture"]);
    let got = ids_by_stream(&std::fs::read(s.p.path().join("out/capture.jsonl")).unwrap());
    for stream in STREAMS {
        assert_eq!(
            got.get(stream).map(Vec::as_slice).unwrap_or(&[]),
            r.ids(stream),
            "{stream}: the replay does not deliver each stored record once, in order"
        );
    }
}

/// 2. alto killed at random points of replays into target-capture-slow (10 ms
///    a flush). A record is confirmed in run i when the STATE that follows it
///    in that run carries a position the run committed. Across runs, the
///    confirmed records of each stream are exactly the stored ones, once
///    each, in order; no run receives a flush confirmed before it started;
///    positions only move forward; every STATE names the flush it follows.
///    Twice, `alto reservoir compact` merges the partitions while a replay
///    runs (the second time after an ingest added new ones), so later runs
///    resume from positions inside merged partitions.
#[test]
fn killed_replays_confirm_every_record_once_in_order() {
    let mut rng = Rng::new("killed_replays");
    let s = Setup::new(&config(
        7,
        "        rows: 900\n",
        "        sleep: 0.01\n",
        "",
    ));
    let root = s.root();
    s.ok(&["-q", "tap-fixture:reservoir"]);
    let mut r = Reservoir::read(&root).unwrap();
    r.check_state("after the ingest");
    let target = "target-capture-slow";
    let pipeline = format!("{TAP}-reservoir-to-{target}");
    let out = s.p.path().join("out/slow.jsonl");
    const KILLS: usize = 30;
    let mut confirmed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut before = Position::new();
    let (mut mid, mut runs, mut inside, mut last_run) = (0, 0, 0, 0);
    for i in 0..=KILLS {
        if i == 20 {
            // New partitions after the merged ones.
            s.write_config(&config(
                7,
                "        rows: 150\n",
                "        sleep: 0.01\n",
                "",
            ));
            s.ok(&["-q", "tap-fixture:reservoir"]);
            r = Reservoir::read(&root).unwrap();
            r.check_state("after the second ingest");
        }
        let compact = i == 10 || i == 20;
        let offset = file_len(&out);
        let last = i == KILLS;
        if last {
            // The last dead run's lock expires; this run waits for it, then
            // sends the rest to the end.
            s.ok(&[
                "-q",
                "run",
                "--wait",
                "reservoir:tap-fixture-target-capture-slow",
            ]);
        } else {
            let (mut child, log) = s.spawn(
                s.cmd(&["-q", "reservoir:tap-fixture-target-capture-slow"]),
                &format!("replay-{i}"),
            );
            let pid = child.id();
            if compact || rng.below(5) != 0 {
                // Once the target runs, a little later.
                let deadline = Instant::now() + Duration::from_secs(30);
                while file_len(&out) == offset && child.try_wait().unwrap().is_none() {
                    assert!(Instant::now() < deadline, "the target never started");
                    std::thread::sleep(Duration::from_millis(5));
                }
                if compact {
                    let merged = s.json(&["--json", "reservoir", "compact", TAP]);
                    assert!(merged["merged"].as_u64().unwrap() > 2, "{merged}");
                }
                std::thread::sleep(rng.ms(0, 250));
            } else {
                // Anywhere from alto's start to the target's first flushes.
                std::thread::sleep(rng.ms(0, 400));
            }
            if let Some(status) = kill_alto(&mut child) {
                assert!(status.success(), "replay {i} failed:\n{}", read(&log));
            }
            if i + 1 < KILLS {
                s.release_dead_lock(&pipeline, pid);
            }
        }
        if compact {
            let merged = Reservoir::read(&root).unwrap();
            assert_eq!(
                merged.ids, r.ids,
                "run {i}: the compaction changed the data"
            );
            assert_eq!(
                merged.seq, r.seq,
                "run {i}: the compaction renumbered flushes"
            );
            assert_eq!(merged.index["partitions"].as_array().unwrap().len(), 2);
            r = merged;
        }
        if r.index["partitions"].as_array().unwrap().iter().any(|p| {
            let seqs: Vec<u64> = p["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["seq"].as_u64().unwrap())
                .collect();
            let done = at(&before, p["stream"].as_str().unwrap());
            seqs[0] <= done && done < seqs[seqs.len() - 1]
        }) {
            inside += 1;
        }
        let after = committed(&root, target);
        let bytes = std::fs::read(&out).unwrap_or_default();
        let got = received(&bytes[offset.min(bytes.len())..]);
        let when = format!("run {i}");
        for stream in STREAMS {
            assert!(
                at(&after, stream) >= at(&before, stream),
                "{when}: the position of {stream} went back from {before:?} to {after:?}"
            );
            assert!(at(&after, stream) <= r.last[stream], "{when}: {after:?}");
        }
        let mut confirmed_now = 0;
        for (stream, id, state) in &got.records {
            let seq = *r
                .seq
                .get(&(stream.clone(), *id))
                .unwrap_or_else(|| panic!("{when}: {stream} {id} is not in the reservoir"));
            assert!(
                seq > at(&before, stream),
                "{when} received {stream} {id} of flush {seq}, confirmed before it started ({before:?})"
            );
            match state {
                Some(pos) => {
                    assert_eq!(
                        at(pos, stream),
                        seq,
                        "{when}: the STATE after {stream} {id} does not name its flush {seq}: {pos:?}"
                    );
                    if seq <= at(&after, stream) {
                        confirmed.entry(stream.clone()).or_default().push(*id);
                        confirmed_now += 1;
                    }
                }
                None => assert!(
                    seq > at(&after, stream),
                    "{when}: {stream} {id} of flush {seq} is committed ({after:?}) but no STATE followed it"
                ),
            }
        }
        if last {
            last_run = confirmed_now;
        }
        if !got.records.is_empty() {
            runs += 1;
            if !last && confirmed_now > 0 && confirmed_now < got.records.len() {
                mid += 1;
            }
        }
        before = after;
    }
    let total: usize = r.ids.values().map(Vec::len).sum();
    eprintln!(
        "killed_replays: {runs} runs received records; {mid} were killed between confirmations; {inside} started inside a merged partition; the last run confirmed {last_run} of {total}"
    );
    assert!(mid >= 8, "too few kills landed mid-replay: {mid}");
    assert!(
        inside >= 3,
        "too few runs resumed inside a merged partition: {inside}"
    );
    assert_eq!(
        before, r.last,
        "the final replay did not confirm everything"
    );
    for stream in STREAMS {
        assert_eq!(
            confirmed.get(stream).map(Vec::as_slice).unwrap_or(&[]),
            r.ids(stream),
            "{stream}: the confirmed records are not the stored ones, once each, in order"
        );
    }
}

/// 3. On an S3 server: an ingest with a slow tap runs in the background while
///    replays loop in the foreground, reading the index the ingest keeps
///    committing; then a second ingest with a schema change, the same way;
///    then a final replay. Every record arrives once, in order, each under
///    its own schema.
#[test]
fn replays_racing_ingests_on_s3_deliver_every_record_once_in_order() {
    let moto = Moto::start();
    moto.create_bucket("faults-reservoir");
    let s3 = moto.config("faults-reservoir");
    let tap = |version: u32| {
        format!("        rows: 60\n        sleep: 0.012\n        schema_version: {version}\n")
    };
    let s = Setup::new(&config(7, &tap(1), "", &s3));
    let mut during = 0;
    for version in [1, 2] {
        if version == 2 {
            s.write_config(&config(7, &tap(2), "", &s3));
            // Discovered again, with the new field.
            s.ok(&["-q", "clean", "catalog:tap-fixture"]);
        }
        let (mut ingest, log) = s.spawn(
            s.cmd(&["-q", "tap-fixture:reservoir"]),
            &format!("ingest-v{version}"),
        );
        let group = Group(ingest.id() as i32);
        loop {
            let running = ingest.try_wait().unwrap().is_none();
            let summary = s.json(&["--json", "reservoir:tap-fixture-target-capture"]);
            let summary = &summary["pipelines"][0];
            if running && summary["records"].as_u64().unwrap_or(0) > 0 {
                during += 1;
            }
            if !running {
                break;
            }
        }
        let status = ingest.wait().unwrap();
        assert!(status.success(), "the ingest failed:\n{}", read(&log));
        group.ended();
    }
    s.ok(&["-q", "reservoir:tap-fixture-target-capture"]);
    eprintln!("s3: {during} replays delivered records while an ingest was committing");
    assert!(during >= 2, "no replay overlapped an ingest");

    let bytes = std::fs::read(s.p.path().join("out/capture.jsonl")).unwrap();
    let got = ids_by_stream(&bytes);
    for stream in STREAMS {
        assert_eq!(
            got.get(stream).cloned().unwrap_or_default(),
            (1..=120).collect::<Vec<i64>>(),
            "{stream}: not every record once, in order"
        );
    }
    // Each users record comes under the schema of its ingest.
    let mut tier = None;
    for line in String::from_utf8_lossy(&bytes).lines() {
        let Ok(m) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if m["stream"] != "users" {
            continue;
        }
        match m["type"].as_str() {
            Some("SCHEMA") => tier = Some(m["schema"]["properties"].get("tier").is_some()),
            Some("RECORD") => {
                let id = m["record"]["id"].as_i64().unwrap();
                assert_eq!(tier, Some(id > 60), "users {id} under the wrong schema");
                assert_eq!(m["record"].get("tier").is_some(), id > 60, "{line}");
            }
            _ => {}
        }
    }
    let ls = s.json(&["--json", "reservoir", "ls", TAP]);
    assert_eq!(ls["records"], 240, "{ls}");
    let users = ls["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["stream"] == "users")
        .unwrap();
    assert_eq!(users["groups"].as_array().unwrap().len(), 2, "{ls}");
}

/// 4. A replay is held at its first flush (target-capture-slow waits for a
///    gate file) while `alto reservoir compact` merges every partition it has
///    yet to read and removes the partitions a killed ingest left unindexed
///    (ALTO_RESERVOIR_ORPHAN_GRACE_SECS=0); the indexed data stays. The
///    replay then picks up the merged partitions where it was, and finishes;
///    with a following replay, and a new target replaying the merged
///    partitions from the start, every record arrives once, in order.
#[test]
fn compaction_during_a_replay_keeps_every_record_once_and_removes_orphans() {
    let gate = "        gate: out/gate\n";
    let s = Setup::new(&config(400, "        rows: 12000\n", gate, ""));
    let root = s.root();
    // 60 partitions of 400 records (more than alto's 1 MiB pipe to the
    // target holds), committed together at the end.
    let mut c = s.cmd(&["-q", "tap-fixture:reservoir"]);
    c.env("ALTO_STATE_COMMIT_MS", "600000");
    s.run_ok(c, "tap-fixture:reservoir");
    let before = Reservoir::read(&root).unwrap();
    before.check_state("after the ingest");
    assert_eq!(before.index["partitions"].as_array().unwrap().len(), 60);

    // An ingest killed once it stored partitions no index names yet.
    s.write_config(&config(
        400,
        "        rows: 12000\n        sleep: 0.0002\n",
        gate,
        "",
    ));
    let mut c = s.cmd(&["-q", "tap-fixture:reservoir"]);
    c.env("ALTO_STATE_COMMIT_MS", "600000");
    let (mut child, log) = s.spawn(c, "killed-ingest");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Reservoir::files(&root).len() < before.paths.len() + 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended:\n{}",
            read(&log)
        );
        assert!(Instant::now() < deadline, "no partitions were stored");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(kill_alto(&mut child).is_none());
    s.release_dead_lock("tap-fixture-to-reservoir", pid);
    let orphans: BTreeSet<String> = Reservoir::files(&root)
        .difference(&before.paths)
        .cloned()
        .collect();
    assert!(orphans.len() >= 3);
    let still = Reservoir::read(&root).unwrap();
    assert_eq!(still.index, before.index, "the killed ingest committed");

    // A replay held at its first flush, with the pipe to the target full.
    let out = s.p.path().join("out/slow.jsonl");
    let mut c = s.cmd(&["--json", "reservoir:tap-fixture-target-capture-slow"]);
    let (summary_path, summary_file) = s.log("replay-summary.json");
    c.stdout(Stdio::from(summary_file));
    let (log_path, log_file) = s.log("replay");
    let mut replay = c
        .stderr(Stdio::from(log_file))
        .process_group(0)
        .spawn()
        .unwrap();
    let group = Group(replay.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received(&std::fs::read(&out).unwrap_or_default()).states == 0 {
        assert!(
            replay.try_wait().unwrap().is_none(),
            "the replay ended:\n{}",
            read(&log_path)
        );
        assert!(Instant::now() < deadline, "the replay never flushed");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));

    let mut c = s.cmd(&["--json", "reservoir", "compact", TAP]);
    c.env("ALTO_RESERVOIR_ORPHAN_GRACE_SECS", "0");
    let done: Value = serde_json::from_str(&s.run_ok(c, "reservoir compact")).unwrap();
    assert_eq!(done["merged"], 60, "{done}");
    assert_eq!(done["written"], 2, "{done}");
    assert_eq!(done["orphans_removed"], orphans.len(), "{done}");
    let after = Reservoir::read(&root).unwrap();
    after.check_state("after compaction");
    assert_eq!(after.ids, before.ids);
    assert_eq!(after.seq, before.seq, "compaction renumbered flushes");
    assert_eq!(after.index["state"], before.index["state"]);
    assert_eq!(
        Reservoir::files(&root),
        after.paths,
        "the partitions stored are not the ones the index names"
    );
    assert!(
        replay.try_wait().unwrap().is_none(),
        "the replay did not run through the compaction"
    );

    std::fs::write(s.p.path().join("out/gate"), "").unwrap();
    let status = replay.wait().unwrap();
    assert!(status.success(), "the replay failed:\n{}", read(&log_path));
    group.ended();
    let summary: Value = serde_json::from_str(&read(&summary_path)).unwrap();
    let summary = &summary["pipelines"][0];
    eprintln!("compaction: {done}; the replay through it: {summary}");
    assert_eq!(summary["records"], 24000, "{summary}");
    // Fewer than the 60 partitions it started with: it went on with the merged ones.
    assert!(
        summary["partitions"].as_u64().unwrap() < 60,
        "the replay read every partition before the compaction: {summary}"
    );
    assert_eq!(committed(&root, "target-capture-slow"), after.last);

    // A following replay has nothing new.
    let again = s.json(&["--json", "reservoir:tap-fixture-target-capture-slow"]);
    assert_eq!(again["pipelines"][0]["nothing_new"], true, "{again}");
    let got = ids_by_stream(&std::fs::read(&out).unwrap());
    for stream in STREAMS {
        assert_eq!(
            got.get(stream).map(Vec::as_slice).unwrap_or(&[]),
            after.ids(stream),
            "{stream}: not every record once, in order"
        );
    }
    // A new target gets the merged partitions whole, a STATE after each flush.
    s.ok(&["-q", "reservoir:tap-fixture-target-capture"]);
    let got = received(&std::fs::read(s.p.path().join("out/capture.jsonl")).unwrap());
    assert_eq!(got.states, 60);
    for (stream, id, state) in &got.records {
        let seq = after.seq[&(stream.clone(), *id)];
        assert_eq!(state.as_ref().map(|p| at(p, stream)), Some(seq));
    }
    let got = ids_by_stream(&std::fs::read(s.p.path().join("out/capture.jsonl")).unwrap());
    for stream in STREAMS {
        assert_eq!(
            got.get(stream).map(Vec::as_slice).unwrap_or(&[]),
            after.ids(stream)
        );
    }
}

/// 5. Compaction removes unindexed partitions whatever their stream is
///    called. A stream's directory is its name percent-encoded
///    (`partition::segment`: "Public Users" is `Public%20Users`), which the
///    directory remote, through object_store, keeps on disk as
///    `Public%2520Users`; a killed ingest of such a stream leaves its
///    partitions there, as one of `users` leaves them under `users`.
#[test]
fn compaction_removes_orphans_of_streams_with_encoded_names() {
    let s = Setup::new(&config(7, "        rows: 10\n", "", ""));
    let root = s.root();
    s.ok(&["-q", "tap-fixture:reservoir"]);
    let r = Reservoir::read(&root).unwrap();
    let orphan = |stream: &str| {
        let schema = format!(
            "{{\"type\":\"SCHEMA\",\"stream\":\"{stream}\",\"schema\":{{\"properties\":{{\"id\":{{\"type\":\"integer\"}}}}}},\"key_properties\":[\"id\"]}}\n{{\"type\":\"RECORD\",\"stream\":\"{stream}\",\"record\":{{\"id\":1}}}}\n"
        );
        zstd::stream::encode_all(schema.as_bytes(), 3).unwrap()
    };
    let name = "20200101000000-0badc0de-00000.singer.zst";
    let plain = root.join(format!("reservoir/dev/{TAP}/users/0123456789abcdef/{name}"));
    let encoded = root.join(format!(
        "reservoir/dev/{TAP}/Public%2520Users/0123456789abcdef/{name}"
    ));
    for (path, stream) in [(&plain, "users"), (&encoded, "Public Users")] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, orphan(stream)).unwrap();
    }
    let mut c = s.cmd(&["--json", "reservoir", "compact", TAP]);
    c.env("ALTO_RESERVOIR_ORPHAN_GRACE_SECS", "0");
    let done: Value = serde_json::from_str(&s.run_ok(c, "reservoir compact")).unwrap();
    let after = Reservoir::read(&root).unwrap();
    after.check_state("after compaction");
    assert_eq!(after.ids, r.ids);
    assert!(
        !plain.exists(),
        "the orphan of users is still there: {done}"
    );
    // Listed names are object_store's encoded path parts
    // (`Public%2520Users`); compaction decodes them before reusing them as
    // paths, or the orphans of such streams would never be found.
    assert!(
        !encoded.exists(),
        "the orphan of `Public Users` is still there: {done}"
    );
    assert_eq!(done["orphans_removed"], 2, "{done}");
    assert_eq!(Reservoir::files(&root), after.paths);
}
