//! The reservoir: `alto tap:reservoir` against the raw shell pipe `tap | sink`
//! running the same PEX files, `alto reservoir:tap-target` against `cat` of the
//! same Singer lines into the sink, the compression ratio, alto's peak memory,
//! and the original alto (singer-alto 0.2.21, when target/bench-venv has it)
//! doing both on the same data. Prints medians and ratios.
//!
//! `ALTO_BENCH_RECORDS` (default 2 000 000) and `ALTO_BENCH_RUNS` (5) size the
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

/// One finished process: wall time, exit code, two peaks in KiB, CPU time.
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
    /// The CPU time the process itself used (user and system, not its children's).
    cpu: Duration,
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's own user and system time, from `/proc/PID/stat` (which a
/// zombie still has).
fn own_cpu(pid: libc::pid_t) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name: state is the first, utime the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(fields.iter().sum::<u64>() as f64 / hz)
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
    let cpu = own_cpu(pid);
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
        cpu,
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

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files(&p))
        } else {
            found.push((p, e.metadata().map_or(0, |m| m.len())))
        }
    }
    found
}

/// How many lines target-sink said it received (`target-sink: N lines`):
/// the last such line in any of the files, else in the files under `dirs`.
fn sink_lines(paths: &[&Path], dirs: &[&Path]) -> Option<u64> {
    let scan = |text: &str| {
        text.lines().rev().find_map(|l| {
            let rest = &l[l.find("target-sink: ")? + "target-sink: ".len()..];
            rest.strip_suffix(" lines")?.trim().parse().ok()
        })
    };
    let mut candidates: Vec<PathBuf> = paths.iter().map(|f| f.to_path_buf()).collect();
    for d in dirs {
        candidates.extend(files(d).into_iter().map(|(p, _)| p));
    }
    candidates
        .iter()
        .find_map(|f| scan(&String::from_utf8_lossy(&std::fs::read(f).ok()?)))
}

/// Whether the sink's count fits `records` records plus at most one SCHEMA
/// line per partition (and at least one): `Err` when data was lost or
/// duplicated.
fn check_sink(got: Option<u64>, records: u64, partitions: u64) -> Result<String, String> {
    match got {
        None => Ok("sink count not found: not verified".into()),
        Some(n) if n > records && n <= records + partitions.max(1) => Ok(format!(
            "sink got all {records} records (+{} SCHEMA)",
            n - records
        )),
        Some(n) if n <= records => Err(format!(
            "DATA LOST: the sink got {n} lines for {records} records (at most {} records)",
            n.saturating_sub(1)
        )),
        Some(n) => Err(format!(
            "DUPLICATES: the sink got {n} lines for {records} records in {partitions} partitions"
        )),
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

/// The runs of one command.
struct Series {
    walls: Vec<Duration>,
    cpus: Vec<Duration>,
    own_kib: u64,
    tree_kib: u64,
}

impl Series {
    fn median(&self) -> Duration {
        median(self.walls.clone())
    }

    /// The median of the process's own CPU time.
    fn cpu(&self) -> Duration {
        median(self.cpus.clone())
    }
}

/// A command to time, what to do before each run, and where its output goes.
struct Case<'a> {
    out: PathBuf,
    prepare: Box<dyn Fn() + 'a>,
    command: Box<dyn Fn() -> Command + 'a>,
}

impl<'a> Case<'a> {
    fn new(out: PathBuf, prepare: impl Fn() + 'a, command: impl Fn() -> Command + 'a) -> Self {
        Case {
            out,
            prepare: Box::new(prepare),
            command: Box::new(command),
        }
    }
}

/// Runs the cases in turn, `runs` rounds, so that a busy spell of the
/// machine falls on all of them alike. A case whose command fails is not run
/// again; its result says why.
fn interleaved(runs: usize, cases: &[Case]) -> Vec<Result<Series, String>> {
    let mut results: Vec<Result<Series, String>> = cases
        .iter()
        .map(|_| {
            Ok(Series {
                walls: Vec::new(),
                cpus: Vec::new(),
                own_kib: 0,
                tree_kib: 0,
            })
        })
        .collect();
    for _ in 0..runs {
        for (case, result) in cases.iter().zip(results.iter_mut()) {
            let Ok(s) = result else { continue };
            (case.prepare)();
            let mut c = (case.command)();
            let r = run(&mut c, &case.out);
            if r.code != 0 {
                *result = Err(format!(
                    "`{}` exited with {}; its last lines:\n{}",
                    shown(&c),
                    r.code,
                    tail(&case.out, 15)
                ));
                continue;
            }
            s.walls.push(r.wall);
            s.cpus.push(r.cpu);
            s.own_kib = s.own_kib.max(r.own_kib);
            s.tree_kib = s.tree_kib.max(r.tree_kib);
        }
    }
    results
}

/// One case alone.
fn measure(runs: usize, case: Case) -> Result<Series, String> {
    interleaved(runs, &[case]).pop().unwrap()
}

/// What `alto reservoir ls TAP --json` says.
struct Stored {
    partitions: u64,
    records: u64,
    bytes: u64,
    raw_bytes: u64,
}

/// A project's `alto.yaml`: the two fixture plugins, `extra` top-level keys.
fn alto_yaml(records: u64, extra: &str) -> String {
    format!(
        "default:\n  project_name: {PROJECT}\n{extra}  taps:\n    {TAP}:\n      pip_url: ./plugins/{TAP}\n      capabilities: [catalog]\n      config:\n        records: {records}\n  targets:\n    {SINK}:\n      pip_url: ./plugins/{SINK}\n"
    )
}

/// The project's remote root under the embedded default remote, `$HOME/.alto`
/// (the original's too).
fn remote_root(home: &Path) -> PathBuf {
    home.join(".alto").join(PROJECT)
}

/// Makes the next ingest start over (both alto's layout and the original's):
/// no partitions, no index, no tap state.
fn reset_ingest(remote: &Path) {
    rm(&remote.join("reservoir"));
    rm(&remote.join(format!("state/dev/{TAP}-to-reservoir.json")));
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

    fn configure(&self, records: u64) {
        std::fs::write(self.project.join("alto.yaml"), alto_yaml(records, "")).unwrap();
        std::fs::write(
            self.project.join("tap.json"),
            format!("{{\"records\": {records}}}"),
        )
        .unwrap();
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
        common::start_plugin(self.alto(), name, name, &self.python)
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

    /// The same plugins; it needs a `load_path`, and its buffer is 10 000
    /// records like alto's default.
    fn configure(&self, records: u64) {
        let extra = "  load_path: raw\n  reservoir_buffer_size: 10000\n";
        std::fs::write(self.project.join("alto.yaml"), alto_yaml(records, extra)).unwrap();
    }

    /// The original names the replay position after `tap` replaced by `reservoir`.
    fn reset_replay(&self) {
        let state = format!(
            "state/dev/{}-to-{SINK}.json",
            TAP.replace("tap", "reservoir")
        );
        rm(&remote_root(&self.home).join(state));
    }
}

/// The raw baselines' throughput, in records per second.
struct Baselines {
    ingest: f64,
    replay: f64,
}

/// The original's throughput, in records per second.
struct Theirs {
    ingest: f64,
    replay: f64,
}

/// The original's rows; `raw_size` is the raw jsonl's size when it ingests
/// the same records as alto.
fn original(
    root: &Path,
    work: &Path,
    records: u64,
    runs: usize,
    raw_size: Option<u64>,
    base: &Baselines,
) -> Result<Theirs, String> {
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
    let ingest_task = format!("{TAP}:reservoir");
    // It builds both PEX files with pex and discovers the catalog: not timed.
    o.configure(10);
    for task in ["build", &ingest_task] {
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
    let ingest = measure(
        runs,
        Case::new(
            out.clone(),
            || reset_ingest(&remote_root(&o.home)),
            || o.alto(&ingest_task),
        ),
    )
    .map_err(|e| format!("ingest failed: {e}"))?;
    let rate = records as f64 / ingest.median().as_secs_f64();
    println!(
        "    ingest   {:8.0} ms  {:5.2} M rec/s  = {:.2}x the raw pipe's throughput   CPU {:5.0} ms own   peak {:5.1} MiB own, {:5.1} MiB with the tap",
        ms(ingest.median()),
        rate / 1e6,
        rate / base.ingest,
        ms(ingest.cpu()),
        mib(ingest.own_kib),
        mib(ingest.tree_kib),
    );
    let dir = remote_root(&o.home).join(format!("reservoir/dev/{TAP}"));
    let gz: Vec<u64> = files(&dir)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".singer.gz"))
        .map(|(_, size)| size)
        .collect();
    let (gz_bytes, partitions) = (gz.iter().sum::<u64>(), gz.len() as u64);
    println!(
        "    stored   {partitions} gzip partitions, {:.1} MB{}{}",
        mb(gz_bytes),
        match raw_size {
            Some(raw) if gz_bytes > 0 => {
                format!(", raw jsonl / gzip = {:.1}x", raw as f64 / gz_bytes as f64)
            }
            _ => String::new(),
        },
        if dir.join("_reservoir.lock").exists() {
            "; it left its _reservoir.lock behind"
        } else {
            ""
        }
    );
    let replay_task = format!("reservoir:{TAP}-{SINK}");
    let replay = measure(
        runs,
        Case::new(out.clone(), || o.reset_replay(), || o.alto(&replay_task)),
    )
    .map_err(|e| format!("replay failed: {e}"))?;
    let check = check_sink(sink_lines(&[&out], &[]), records, partitions);
    let (Ok(verified) | Err(verified)) = &check;
    let replay_rate = records as f64 / replay.median().as_secs_f64();
    println!(
        "    replay   {:8.0} ms  {:5.2} M rec/s  = {:.2}x cat's throughput   CPU {:5.0} ms own   peak {:5.1} MiB own, {:5.1} MiB with the target   {verified}",
        ms(replay.median()),
        replay_rate / 1e6,
        replay_rate / base.replay,
        ms(replay.cpu()),
        mib(replay.own_kib),
        mib(replay.tree_kib),
    );
    if check.is_err() {
        return Err("its replay is not counted: it did not deliver exactly the records".into());
    }
    Ok(Theirs {
        ingest: rate,
        replay: replay_rate,
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let b = Bench {
        work: work.path().to_path_buf(),
        project: work.path().join("project"),
        home: work.path().join("home"),
        cache: work.path().join("cache"),
        python: common::python3(),
    };
    std::fs::create_dir_all(&b.home).unwrap();
    common::cache_dir(&root, &b.cache);
    copy_dir(&root.join("fixtures/plugins"), &b.project.join("plugins"));
    let records: u64 = env_or("ALTO_BENCH_RECORDS", 2_000_000);
    let runs: usize = env_or("ALTO_BENCH_RUNS", 5usize).max(1);
    b.configure(records);
    let built = b.alto().arg("build").output().unwrap();
    assert!(
        built.status.success(),
        "alto build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let (tap, sink) = (b.plugin(TAP), b.plugin(SINK));
    let out = b.work.join("setup.out");
    let remote = remote_root(&b.home);
    let logs = b.project.join(".alto/logs");
    let mut failed = false;
    let mut peak_kib = 0u64;

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

    // A busy machine shows in every figure: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!(
        "reservoir: {TAP} → reservoir → {SINK}, {records} records (2 cores, load {load} at the start; medians of {runs}, run in turn)"
    );
    println!(
        "  Singer lines: {:.1} MB of raw jsonl (the tap's output)",
        mb(raw_size)
    );

    // 1. Ingest: the tap alone (for reference), the raw pipe and alto, in turn.
    let ingest_task = format!("{TAP}:reservoir");
    let mut results = interleaved(
        runs,
        &[
            Case::new(
                b.work.join("alone.out"),
                || {},
                || b.sh(&format!("{tap} --config tap.json > /dev/null")),
            ),
            Case::new(
                b.work.join("raw.out"),
                || {},
                || b.sh(&format!("{tap} --config tap.json | {sink} > /dev/null")),
            ),
            Case::new(
                b.work.join("ingest.out"),
                || reset_ingest(&remote),
                || {
                    let mut c = b.alto();
                    c.arg(&ingest_task);
                    c
                },
            ),
        ],
    )
    .into_iter();
    let mut baseline = |what: &str| {
        results
            .next()
            .unwrap()
            .unwrap_or_else(|e| panic!("{what} failed: {e}"))
            .median()
    };
    let alone = baseline("the tap");
    let raw = baseline("the raw pipe");
    let ingest = results.next().unwrap();
    println!(
        "  ingest   {:<40} {:8.0} ms  {:5.2} M rec/s",
        "tap > /dev/null (for reference)",
        ms(alone),
        mrps(records, alone)
    );
    println!(
        "           {:<40} {:8.0} ms  {:5.2} M rec/s",
        "raw pipe tap | sink",
        ms(raw),
        mrps(records, raw)
    );
    let mut stored = None;
    let ingest_ratio = match &ingest {
        Ok(s) => {
            let ratio = raw.as_secs_f64() / s.median().as_secs_f64();
            peak_kib = peak_kib.max(s.own_kib);
            println!(
                "           {:<40} {:8.0} ms  {:5.2} M rec/s  = {ratio:.2}x the raw pipe's throughput   CPU {:5.0} ms own   peak {:5.1} MiB own, {:5.1} MiB with the tap",
                format!("alto {ingest_task}"),
                ms(s.median()),
                mrps(records, s.median()),
                ms(s.cpu()),
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
                        "  stored   {} partitions, {} records: {:.1} MB zstd of {:.1} MB Singer = {:.1}x (raw jsonl {:.1} MB)",
                        st.partitions,
                        st.records,
                        mb(st.bytes),
                        mb(st.raw_bytes),
                        st.raw_bytes as f64 / st.bytes.max(1) as f64,
                        mb(raw_size),
                    );
                    stored = Some(st);
                }
                Err(e) => {
                    failed = true;
                    println!("  stored   {e}")
                }
            }
            Some(ratio)
        }
        Err(e) => {
            failed = true;
            println!("           alto {ingest_task} FAILED: {e}");
            None
        }
    };

    // 2. Replay: `cat` of the same lines into the sink and alto, in turn.
    let replay_task = format!("reservoir:{TAP}-{SINK}");
    let replay_cmd = || {
        let mut c = b.alto();
        c.arg(&replay_task);
        c
    };
    let position = remote.join(format!("state/dev/{TAP}-reservoir-to-{SINK}.json"));
    let replay_out = b.work.join("replay.out");
    let reset_replay = || {
        rm(&position);
        rm(&logs);
    };
    let cat_case = Case::new(
        b.work.join("cat.out"),
        || {},
        || b.sh(&format!("cat {} | {sink} > /dev/null", events.display())),
    );
    let mut results = if ingest.is_ok() {
        interleaved(
            runs,
            &[
                cat_case,
                Case::new(replay_out.clone(), reset_replay, replay_cmd),
            ],
        )
    } else {
        interleaved(runs, &[cat_case])
    }
    .into_iter();
    let cat = results
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("cat | sink failed: {e}"))
        .median();
    println!(
        "  replay   {:<40} {:8.0} ms  {:5.2} M rec/s",
        "cat | sink",
        ms(cat),
        mrps(records, cat)
    );
    let mut replay_ratio = None;
    match results.next() {
        None => {}
        Some(Ok(s)) => {
            let partitions = stored.as_ref().map_or(0, |st| st.partitions);
            let check = check_sink(sink_lines(&[&replay_out], &[&logs]), records, partitions);
            failed |= check.is_err();
            let (Ok(verified) | Err(verified)) = &check;
            let ratio = cat.as_secs_f64() / s.median().as_secs_f64();
            peak_kib = peak_kib.max(s.own_kib);
            println!(
                "           {:<40} {:8.0} ms  {:5.2} M rec/s  = {ratio:.2}x cat's throughput   CPU {:5.0} ms own   peak {:5.1} MiB own, {:5.1} MiB with the target   {verified}",
                format!("alto {replay_task}"),
                ms(s.median()),
                mrps(records, s.median()),
                ms(s.cpu()),
                mib(s.own_kib),
                mib(s.tree_kib)
            );
            replay_ratio = Some(ratio);
            // Nothing new since: the target should not even start.
            match measure(
                runs,
                Case::new(replay_out.clone(), || rm(&logs), replay_cmd),
            ) {
                Ok(i) => {
                    let started = sink_lines(&[&replay_out], &[&logs]).is_some();
                    failed |= started;
                    println!(
                        "           {:<40} {:8.0} ms{}",
                        "again, nothing new",
                        ms(i.median()),
                        if started {
                            "   BUT the target was started (its position was not kept)"
                        } else {
                            "   (the target is not started)"
                        }
                    )
                }
                Err(e) => {
                    failed = true;
                    println!("           again, nothing new: FAILED: {e}")
                }
            }
        }
        Some(Err(e)) => {
            failed = true;
            println!("           alto {replay_task} FAILED: {e}");
        }
    }

    // 3. The original.
    let original_records = env_or("ALTO_BENCH_ORIGINAL_RECORDS", records);
    let original_runs = env_or("ALTO_BENCH_ORIGINAL_RUNS", 3usize).max(1);
    println!(
        "  original (singer-alto 0.2.21 on its own project; {original_records} records{}; medians of {original_runs}):",
        if original_records == records {
            String::new()
        } else {
            format!(", not alto's {records}: compared in records/s")
        }
    );
    let base = Baselines {
        ingest: records as f64 / raw.as_secs_f64(),
        replay: records as f64 / cat.as_secs_f64(),
    };
    let theirs = original(
        &root,
        &b.work,
        original_records,
        original_runs,
        (original_records == records).then_some(raw_size),
        &base,
    );
    match (&theirs, ingest_ratio, replay_ratio) {
        (Err(e), ..) => println!("    {e}"),
        (Ok(t), Some(i), Some(r)) => println!(
            "    alto against the original, in records/s: ingest {:.1}x, replay {:.1}x",
            i * base.ingest / t.ingest,
            r * base.replay / t.replay
        ),
        _ => {}
    }

    let ratio_text = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{r:.3}x"));
    println!(
        "  targets: ingest ≥ 0.80x the raw pipe: {} ({}); replay ≥ 0.90x cat: {} ({}); alto's own peak < 200 MB: {} ({:.1} MiB)",
        ratio_text(ingest_ratio),
        verdict(ingest_ratio.is_some_and(|r| r >= 0.8)),
        ratio_text(replay_ratio),
        verdict(replay_ratio.is_some_and(|r| r >= 0.9)),
        verdict(peak_kib > 0 && (peak_kib as f64) * 1024.0 < 200e6),
        mib(peak_kib)
    );
    if failed {
        std::process::exit(1);
    }
}
