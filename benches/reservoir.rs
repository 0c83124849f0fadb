//! The reservoir: `alto tap:reservoir` against the raw shell pipe `tap | sink`
//! running the same PEX files, `alto reservoir:tap-target` against `cat` of the
//! same Singer lines into the sink, the compression ratio, alto's peak memory,
//! and the original alto (singer-alto 0.2.21, when target/bench-venv has it)
//! doing both on the same data. Prints medians and ratios.
//!
//! `ALTO_BENCH_RECORDS` (default 2 000 000) and `ALTO_BENCH_RUNS` (3) size the
//! run; `ALTO_BENCH_ORIGINAL_RECORDS` and `ALTO_BENCH_ORIGINAL_RUNS` (3) size
//! the original's; `ALTO_ORIGINAL` names another original `alto` executable.

mod common;

use common::copy_dir;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PROJECT: &str = "bench";
const TAP: &str = "tap-synthetic";
const SINK: &str = "target-sink";

/// One finished process: wall time, exit code, and two peaks in KiB.
struct Run {
    wall: Duration,
    /// The exit code, or 128 + the signal that killed it.
    code: i32,
    /// The process's own high-water RSS (`VmHWM`, sampled every 5 ms).
    own_kib: u64,
    /// wait4's `ru_maxrss`: the largest of the process and every child it
    /// reaped (the plugins, for alto), as benches/pipeline.rs reports it
    /// (at least `own_kib`).
    tree_kib: u64,
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a command with stdout and stderr going to `out`.
fn run(c: &mut Command, out: &Path) -> Run {
    let log = File::create(out).unwrap();
    let start = Instant::now();
    let child = c
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    // Reaped by wait4 below, which also reports the peak memory.
    std::mem::forget(child);
    let own = Arc::new(AtomicU64::new(0));
    let sampler = {
        let own = own.clone();
        // A zombie has no VmHWM: the loop ends once the process has exited.
        std::thread::spawn(move || {
            while let Some(kib) = vm_hwm_kib(pid) {
                own.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // SAFETY: waiting on our own child with valid out-pointers; WNOWAIT
    // leaves it a zombie (so its pid is not reused) until the sampler is done.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let wall = start.elapsed();
    sampler.join().unwrap();
    let mut status = 0;
    // SAFETY: as above; this reaps it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed for {c:?}");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Run {
        wall,
        code,
        own_kib: own.load(Ordering::Relaxed),
        tree_kib: (usage.ru_maxrss.max(0) as u64).max(own.load(Ordering::Relaxed)),
    }
}

/// A command as one would type it (the script, for `sh -c`).
fn shown(c: &Command) -> String {
    let args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.as_slice() {
        [c, script] if c == "-c" => script.clone(),
        _ => {
            let program = Path::new(c.get_program());
            let name = program.file_name().unwrap_or(program.as_os_str());
            format!("{} {}", name.to_string_lossy(), args.join(" "))
        }
    }
}

/// The last `n` lines of a run's output, indented, for a failure message.
fn tail(out: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("      | {l}\n"))
        .collect()
}

/// How many lines target-sink said it received (`target-sink: N lines`):
/// the last such line in any of the files, else in the files under `dirs`.
fn sink_lines(files: &[&Path], dirs: &[&Path]) -> Option<u64> {
    fn scan(text: &str) -> Option<u64> {
        text.lines().rev().find_map(|l| {
            let rest = &l[l.find("target-sink: ")? + "target-sink: ".len()..];
            rest.strip_suffix(" lines")?.trim().parse().ok()
        })
    }
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, found)
            } else {
                found.push(p)
            }
        }
    }
    let mut candidates: Vec<PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    for d in dirs {
        walk(d, &mut candidates);
    }
    candidates
        .iter()
        .find_map(|f| scan(&String::from_utf8_lossy(&std::fs::read(f).ok()?)))
}

/// Whether the sink's count fits `records` records plus at most one SCHEMA
/// line per partition (and at least one).
fn check_sink(got: Option<u64>, records: u64, partitions: u64) -> String {
    match got {
        None => "sink count not found: not verified".into(),
        Some(n) if n > records && n <= records + partitions.max(1) => {
            format!("sink got all {records} records (+{} SCHEMA)", n - records)
        }
        Some(n) if n <= records => format!(
            "DATA LOST: the sink got {n} lines for {records} records (at most {} records)",
            n.saturating_sub(1)
        ),
        Some(n) => format!(
            "DUPLICATES: the sink got {n} lines for {records} records in {partitions} partitions"
        ),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Records per second, in millions.
fn mrps(records: u64, d: Duration) -> f64 {
    records as f64 / d.as_secs_f64() / 1e6
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rm(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// The total size and count of the files under `dir` whose names end with `suffix`.
fn files_under(dir: &Path, suffix: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            let (b, n) = files_under(&p, suffix);
            total = (total.0 + b, total.1 + n);
        } else if p.to_string_lossy().ends_with(suffix) {
            total = (
                total.0 + e.metadata().map(|m| m.len()).unwrap_or(0),
                total.1 + 1,
            );
        }
    }
    total
}

/// Runs a set of timed commands; `None` (after printing why) if one failed.
struct Series {
    walls: Vec<Duration>,
    own_kib: u64,
    tree_kib: u64,
}

impl Series {
    fn measure(
        runs: usize,
        out: &Path,
        mut prepare: impl FnMut(),
        mut command: impl FnMut() -> Command,
    ) -> Result<Series, String> {
        let mut s = Series {
            walls: Vec::new(),
            own_kib: 0,
            tree_kib: 0,
        };
        for _ in 0..runs {
            prepare();
            let mut c = command();
            let r = run(&mut c, out);
            if r.code != 0 {
                return Err(format!(
                    "`{}` exited with {}; its last lines:\n{}",
                    shown(&c),
                    r.code,
                    tail(out, 15)
                ));
            }
            s.walls.push(r.wall);
            s.own_kib = s.own_kib.max(r.own_kib);
            s.tree_kib = s.tree_kib.max(r.tree_kib);
        }
        Ok(s)
    }

    fn median(&self) -> Duration {
        median(self.walls.clone())
    }
}

/// What `alto reservoir ls TAP --json` says.
struct Stored {
    partitions: u64,
    records: u64,
    bytes: u64,
    raw_bytes: u64,
}

struct Bench {
    work: PathBuf,
    project: PathBuf,
    home: PathBuf,
    cache: PathBuf,
    python: String,
}

impl Bench {
    fn alto(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
        c.current_dir(&self.project)
            .env("HOME", &self.home)
            .env("ALTO_CACHE_DIR", &self.cache)
            .env_remove("ALTO_ENV")
            .arg("-q");
        c
    }

    /// The project's remote root (the embedded default remote, `$HOME/.alto`).
    fn remote(&self) -> PathBuf {
        self.home.join(".alto").join(PROJECT)
    }

    fn configure(&self, records: u64) {
        std::fs::write(
            self.project.join("alto.yaml"),
            format!("default:\n  project_name: {PROJECT}\n  taps:\n    {TAP}:\n      pip_url: ./plugins/{TAP}\n      capabilities: [catalog]\n      config:\n        records: {records}\n  targets:\n    {SINK}:\n      pip_url: ./plugins/{SINK}\n"),
        )
        .unwrap();
        std::fs::write(
            self.project.join("tap.json"),
            format!("{{\"records\": {records}}}"),
        )
        .unwrap();
    }

    fn pex(&self, plugin: &str) -> PathBuf {
        let out = self
            .alto()
            .args(["--json", "show", plugin])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("alto show {plugin}: {e}"));
        PathBuf::from(v["path"].as_str().unwrap())
    }

    /// `sh -c SCRIPT` in the project, with the PEX files' cache.
    fn sh(&self, script: &str) -> Command {
        let mut c = Command::new("sh");
        c.current_dir(&self.project)
            .env("PEX_ROOT", self.cache.join("pex-root"))
            .args(["-c", script]);
        c
    }

    /// The shell command running a built plugin directly.
    fn plugin(&self, name: &str) -> String {
        format!(
            "PEX_SCRIPT={name} {} {}",
            self.python,
            self.pex(name).display()
        )
    }

    fn stored(&self) -> Result<Stored, String> {
        let out = self
            .alto()
            .args(["reservoir", "ls", TAP, "--json"])
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "alto reservoir ls {TAP} --json failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("alto reservoir ls {TAP} --json: not JSON: {e}"))?;
        let field = |k: &str| {
            v[k].as_u64()
                .ok_or_else(|| format!("alto reservoir ls {TAP} --json: no integer `{k}`"))
        };
        Ok(Stored {
            partitions: field("partitions")?,
            records: field("records")?,
            bytes: field("bytes")?,
            raw_bytes: field("raw_bytes")?,
        })
    }
}

/// The original alto (Python) on its own project and remote.
struct Original {
    exe: PathBuf,
    project: PathBuf,
    home: PathBuf,
}

impl Original {
    fn alto(&self, task: &str) -> Command {
        let mut c = Command::new(&self.exe);
        c.current_dir(&self.project)
            .env("HOME", &self.home)
            .env("ALTO_ENV", "dev")
            .env("NO_COLOR", "1")
            .arg(task);
        c
    }

    fn remote(&self) -> PathBuf {
        self.home.join(".alto").join(PROJECT)
    }

    /// The original's config: the same plugins; its buffer is 10 000 records.
    fn configure(&self, records: u64) {
        std::fs::write(
            self.project.join("alto.yaml"),
            format!("default:\n  project_name: {PROJECT}\n  load_path: raw\n  reservoir_buffer_size: 10000\n  taps:\n    {TAP}:\n      pip_url: ./plugins/{TAP}\n      capabilities: [catalog]\n      config:\n        records: {records}\n  targets:\n    {SINK}:\n      pip_url: ./plugins/{SINK}\n"),
        )
        .unwrap();
    }

    fn reset_ingest(&self) {
        let remote = self.remote();
        rm(&remote.join("reservoir"));
        rm(&remote.join(format!("state/dev/{TAP}-to-reservoir.json")));
    }

    /// The original names the replay position after `tap` replaced by `reservoir`.
    fn reset_replay(&self) {
        let state = format!(
            "state/dev/{}-to-{SINK}.json",
            TAP.replace("tap", "reservoir")
        );
        rm(&self.remote().join(state));
    }
}

/// Figures of one side, for the summary.
struct Side {
    ingest: Duration,
    replay: Duration,
    records: u64,
}

/// `raw_size`: the raw jsonl's size when the original ingests the same records.
fn original(
    root: &Path,
    work: &Path,
    records: u64,
    runs: usize,
    raw_size: Option<u64>,
) -> Result<Side, String> {
    let exe = std::env::var_os("ALTO_ORIGINAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench-venv/bin/alto"));
    if !exe.is_file() {
        return Err(
            "not installed (scripts/bench installs it into target/bench-venv): skipped".into(),
        );
    }
    let o = Original {
        exe,
        project: work.join("original"),
        home: work.join("home-original"),
    };
    std::fs::create_dir_all(&o.home).unwrap();
    copy_dir(&root.join("fixtures/plugins"), &o.project.join("plugins"));
    let out = work.join("original.out");
    // It builds both PEX files with pex, then discovers the catalog: not timed.
    o.configure(10);
    for task in ["build", &format!("{TAP}:reservoir")] {
        let r = run(&mut o.alto(task), &out);
        if r.code != 0 {
            return Err(format!(
                "`alto {task}` failed (exit {}):\n{}",
                r.code,
                tail(&out, 15)
            ));
        }
    }
    o.configure(records);
    let ingest = Series::measure(
        runs,
        &out,
        || o.reset_ingest(),
        || o.alto(&format!("{TAP}:reservoir")),
    )
    .map_err(|e| format!("ingest failed: {e}"))?;
    println!(
        "    ingest   {:8.0} ms  {:5.2} M rec/s   peak {:5.1} MiB own, {:5.1} MiB with the tap",
        ms(ingest.median()),
        mrps(records, ingest.median()),
        mib(ingest.own_kib),
        mib(ingest.tree_kib),
    );
    let base = o.remote().join(format!("reservoir/dev/{TAP}"));
    let (gz_bytes, partitions) = files_under(&base, ".singer.gz");
    println!(
        "    stored   {partitions} gzip partitions, {:.1} MB{}{}",
        mb(gz_bytes),
        match raw_size {
            Some(raw) if gz_bytes > 0 =>
                format!(" (raw jsonl / gzip = {:.1}x)", raw as f64 / gz_bytes as f64),
            _ => String::new(),
        },
        if base.join("_reservoir.lock").exists() {
            "; its _reservoir.lock was left behind"
        } else {
            ""
        }
    );
    let replay_task = format!("reservoir:{TAP}-{SINK}");
    let replay = Series::measure(runs, &out, || o.reset_replay(), || o.alto(&replay_task))
        .map_err(|e| format!("replay failed: {e}"))?;
    println!(
        "    replay   {:8.0} ms  {:5.2} M rec/s   peak {:5.1} MiB own, {:5.1} MiB with the target   {}",
        ms(replay.median()),
        mrps(records, replay.median()),
        mib(replay.own_kib),
        mib(replay.tree_kib),
        check_sink(sink_lines(&[&out], &[]), records, partitions)
    );
    Ok(Side {
        ingest: ingest.median(),
        replay: replay.median(),
        records,
    })
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let b = Bench {
        work: work.path().to_path_buf(),
        project: work.path().join("project"),
        home: work.path().join("home"),
        cache: work.path().join("cache"),
        python: String::from_utf8(
            Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string(),
    };
    std::fs::create_dir_all(&b.home).unwrap();
    std::fs::create_dir_all(&b.cache).unwrap();
    let shared = root.join("target/tmp/shared-cache");
    if shared.join("tools").exists() {
        let _ = std::os::unix::fs::symlink(shared.join("tools"), b.cache.join("tools"));
    }
    copy_dir(&root.join("fixtures/plugins"), &b.project.join("plugins"));
    let records: u64 = env_or("ALTO_BENCH_RECORDS", 2_000_000);
    let runs: usize = env_or("ALTO_BENCH_RUNS", 3usize).max(1);
    b.configure(records);
    let built = b.alto().arg("build").output().unwrap();
    assert!(
        built.status.success(),
        "alto build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let (tap, sink) = (b.plugin(TAP), b.plugin(SINK));
    let out = b.work.join("run.out");
    let remote = b.remote();
    let logs = b.project.join(".alto/logs");
    let mut failed = false;

    // The tap's Singer lines, once, for the `cat` baseline (and warm venvs).
    let events = b.work.join("events.singer");
    let r = run(
        &mut b.sh(&format!(
            "{tap} --config tap.json > {} && {sink} < /dev/null > /dev/null",
            events.display()
        )),
        &out,
    );
    assert_eq!(r.code, 0, "the tap alone failed:\n{}", tail(&out, 15));
    let raw_size = std::fs::metadata(&events).unwrap().len();

    println!(
        "reservoir: {TAP} → reservoir → {SINK}, {records} records (2 cores; medians of {runs})"
    );
    println!(
        "  Singer lines: {:.1} MB of raw jsonl (the tap's output)",
        mb(raw_size)
    );

    // 1. Ingest.
    let raw_ingest = Series::measure(
        runs,
        &out,
        || {},
        || b.sh(&format!("{tap} --config tap.json | {sink} > /dev/null")),
    )
    .unwrap_or_else(|e| panic!("the raw pipe failed: {e}"));
    println!(
        "  ingest   raw pipe tap | sink        {:8.0} ms  {:5.2} M rec/s",
        ms(raw_ingest.median()),
        mrps(records, raw_ingest.median())
    );
    let reset_ingest = || {
        rm(&remote.join("reservoir"));
        rm(&remote.join(format!("state/dev/{TAP}-to-reservoir.json")));
    };
    let ingest = Series::measure(runs, &out, reset_ingest, || {
        let mut c = b.alto();
        c.arg(format!("{TAP}:reservoir"));
        c
    });
    let mut stored = None;
    let ours_ingest = match ingest {
        Ok(s) => {
            println!(
                "           alto {TAP}:reservoir {:8.0} ms  {:5.2} M rec/s  = {:.2}x the raw pipe's throughput   peak {:5.1} MiB own, {:5.1} MiB with the tap",
                ms(s.median()),
                mrps(records, s.median()),
                raw_ingest.median().as_secs_f64() / s.median().as_secs_f64(),
                mib(s.own_kib),
                mib(s.tree_kib)
            );
            match b.stored() {
                Ok(st) => {
                    if st.records != records {
                        failed = true;
                        println!(
                            "           DATA LOST OR DUPLICATED: the reservoir holds {} records, the tap sent {records}",
                            st.records
                        );
                    }
                    println!(
                        "  stored   {} partitions, {} records, {:.1} MB zstd of {:.1} MB Singer = {:.1}x (raw jsonl {:.1} MB = {:.1}x)",
                        st.partitions,
                        st.records,
                        mb(st.bytes),
                        mb(st.raw_bytes),
                        st.raw_bytes as f64 / st.bytes.max(1) as f64,
                        mb(raw_size),
                        raw_size as f64 / st.bytes.max(1) as f64
                    );
                    stored = Some(st);
                }
                Err(e) => {
                    failed = true;
                    println!("  stored   {e}")
                }
            }
            Some(s)
        }
        Err(e) => {
            failed = true;
            println!("           alto {TAP}:reservoir FAILED: {e}");
            None
        }
    };

    // 2. Replay.
    let cat = Series::measure(
        runs,
        &out,
        || {},
        || b.sh(&format!("cat {} | {sink} > /dev/null", events.display())),
    )
    .unwrap_or_else(|e| panic!("cat | sink failed: {e}"));
    println!(
        "  replay   cat | sink                 {:8.0} ms  {:5.2} M rec/s",
        ms(cat.median()),
        mrps(records, cat.median())
    );
    let replay_task = format!("reservoir:{TAP}-{SINK}");
    let position = remote.join(format!("state/dev/{TAP}-reservoir-to-{SINK}.json"));
    let mut ours_replay = None;
    if ours_ingest.is_some() {
        let replay = Series::measure(
            runs,
            &out,
            || {
                rm(&position);
                rm(&logs);
            },
            || {
                let mut c = b.alto();
                c.arg(&replay_task);
                c
            },
        );
        match replay {
            Ok(s) => {
                let partitions = stored.as_ref().map_or(0, |st| st.partitions);
                let check = check_sink(sink_lines(&[&out], &[&logs]), records, partitions);
                failed |= check.starts_with("DATA") || check.starts_with("DUP");
                println!(
                    "           alto {replay_task} {:8.0} ms  {:5.2} M rec/s  = {:.2}x cat's throughput   peak {:5.1} MiB own, {:5.1} MiB with the target   {check}",
                    ms(s.median()),
                    mrps(records, s.median()),
                    cat.median().as_secs_f64() / s.median().as_secs_f64(),
                    mib(s.own_kib),
                    mib(s.tree_kib)
                );
                // Nothing new: the target should not even start.
                let idle = Series::measure(
                    runs,
                    &out,
                    || rm(&logs),
                    || {
                        let mut c = b.alto();
                        c.arg(&replay_task);
                        c
                    },
                );
                match idle {
                    Ok(i) => println!(
                        "           nothing new                {:8.0} ms{}",
                        ms(i.median()),
                        if sink_lines(&[&out], &[&logs]).is_some() {
                            "   (the target was started)"
                        } else {
                            ""
                        }
                    ),
                    Err(e) => {
                        failed = true;
                        println!("           nothing new FAILED: {e}")
                    }
                }
                ours_replay = Some(s);
            }
            Err(e) => {
                failed = true;
                println!("           alto {replay_task} FAILED: {e}");
            }
        }
    }

    // 3. The original.
    let original_records = env_or("ALTO_BENCH_ORIGINAL_RECORDS", records);
    let original_runs = env_or("ALTO_BENCH_ORIGINAL_RUNS", 3usize).max(1);
    println!(
        "  original (singer-alto 0.2.21, its own project; {original_records} records{}; medians of {original_runs}):",
        if original_records == records {
            String::new()
        } else {
            format!(", fewer than alto's {records}: compared in records/s")
        }
    );
    let theirs = original(
        &root,
        &b.work,
        original_records,
        original_runs,
        (original_records == records).then_some(raw_size),
    );
    match (&theirs, &ours_ingest, &ours_replay) {
        (Err(e), ..) => println!("    {e}"),
        (Ok(t), Some(i), Some(r)) => println!(
            "    alto against the original in records/s: ingest {:.1}x, replay {:.1}x",
            mrps(records, i.median()) / mrps(t.records, t.ingest),
            mrps(records, r.median()) / mrps(t.records, t.replay)
        ),
        _ => {}
    }

    println!(
        "  targets: ingest ≥ 0.80x the raw pipe, replay ≥ 0.90x cat, alto's peak under 200 MB"
    );
    if failed {
        std::process::exit(1);
    }
}
