//! `alto run` against the raw shell pipe `tap | target` running the same PEX
//! files: 2 million synthetic records into a sink, a tiny run's fixed
//! overhead, alto's peak memory, and what `~` hash rules cost: one rule on
//! 4-field records, three rules on 10-field records, into the sink and into
//! the reservoir (against the same ingest without rules), and `alto extract`
//! (the tap's messages on stdout, for `alto.dlt`) against the tap alone, without
//! and with a rule. Prints medians and
//! the load average (the machine is shared).
//! `ALTO_BENCH_RECORDS` and `ALTO_BENCH_RUNS` change the size and count;
//! `ALTO_BENCH_BIN` measures another alto binary (before and after a change);
//! `ALTO_BENCH_ONLY=hash` runs just the 10-field pipe cases.

mod common;

use common::copy_dir;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command; wall time and its own peak RSS in KiB (not its children's).
fn timed(c: &mut Command) -> (Duration, i64) {
    let (d, rss, _) = timed_cpu(c);
    (d, rss)
}

/// As [`timed`], with the CPU time (user + system) of the command and of
/// every process it waited for: a shell pipe's tap and sink, alto's plugins.
fn timed_cpu(c: &mut Command) -> (Duration, i64, Duration) {
    let start = Instant::now();
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    std::mem::forget(child);
    let mut status = 0;
    // SAFETY: reaping our own child with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{c:?} failed"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        start.elapsed(),
        usage.ru_maxrss,
        tv(usage.ru_utime) + tv(usage.ru_stime),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Bench {
    project: PathBuf,
    home: PathBuf,
    cache: PathBuf,
    python: String,
}

impl Bench {
    fn alto(&self) -> Command {
        // ALTO_BENCH_BIN: another build of alto to measure (an older one).
        let bin = std::env::var("ALTO_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_alto").into());
        let mut c = Command::new(bin);
        c.current_dir(&self.project)
            .env("HOME", &self.home)
            .env("ALTO_CACHE_DIR", &self.cache)
            .arg("-q");
        c
    }

    /// `rules`: the `~` rules (none: alto is not in the pipe); `fields`:
    /// 10 for the wide records.
    fn configure(&self, records: u64, rules: &[&str], fields: u32) {
        let select = if rules.is_empty() {
            String::new()
        } else {
            let rules: Vec<String> = rules.iter().map(|r| format!("\"~{r}\"")).collect();
            format!("      select: [\"*.*\", {}]\n", rules.join(", "))
        };
        std::fs::write(
            self.project.join("alto.yaml"),
            format!("default:\n  project_name: bench\n  taps:\n    tap-synthetic:\n      pip_url: ./plugins/tap-synthetic\n      capabilities: [catalog]\n{select}      config:\n        records: {records}\n        fields: {fields}\n  targets:\n    target-sink:\n      pip_url: ./plugins/target-sink\n"),
        )
        .unwrap();
        std::fs::write(
            self.project.join("tap.json"),
            format!("{{\"records\": {records}, \"fields\": {fields}}}"),
        )
        .unwrap();
    }

    /// The median of `runs` runs of `alto run TASK`, and alto's peak RSS.
    /// An ingest starts from an empty reservoir.
    fn alto_run(&self, task: &str, runs: usize) -> (Duration, i64) {
        let mut peak = 0;
        let d = median(
            (0..runs)
                .map(|_| {
                    let _ = std::fs::remove_dir_all(self.home.join(".alto/bench/reservoir"));
                    let (d, rss) = timed(self.alto().args(["run", task]));
                    peak = peak.max(rss);
                    d
                })
                .collect(),
        );
        (d, peak)
    }

    /// How alto starts `plugin` (its console script of the same name).
    fn start(&self, plugin: &str) -> String {
        common::start_plugin(self.alto(), plugin, plugin, &self.python)
    }

    /// The tap alone into /dev/null: what the tap costs by itself.
    fn tap_alone(&self) -> Command {
        self.shell(format!(
            "{tap} --config tap.json > /dev/null",
            tap = self.start("tap-synthetic"),
        ))
    }

    fn shell(&self, script: String) -> Command {
        let mut c = Command::new("sh");
        c.current_dir(&self.project)
            .env("PEX_ROOT", self.cache.join("pex-root"))
            .args(["-c", &script]);
        c
    }

    fn raw(&self) -> Command {
        let script = format!(
            "{tap} --config tap.json | {sink} > /dev/null",
            tap = self.start("tap-synthetic"),
            sink = self.start("target-sink")
        );
        self.shell(script)
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let b = Bench {
        project: work.path().join("project"),
        home: work.path().join("home"),
        cache: work.path().join("cache"),
        python: common::python3(),
    };
    std::fs::create_dir_all(&b.home).unwrap();
    common::cache_dir(&root, &b.cache);
    copy_dir(&root.join("fixtures/plugins"), &b.project.join("plugins"));
    b.configure(10, &[], 0);
    assert!(b.alto().arg("build").status().unwrap().success());
    let records: u64 = std::env::var("ALTO_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let runs: usize = std::env::var("ALTO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    println!(
        "tap-synthetic → target-sink (2 cores; {runs} rounds, medians; load average {})",
        load()
    );
    // Warm both plugins' venvs.
    timed(&mut b.raw());
    // ALTO_BENCH_ONLY=hash: just the 10-field pipe cases (raw, 3 rules,
    // a rule on another stream), for measuring a scanner change.
    let only_hash = std::env::var("ALTO_BENCH_ONLY").is_ok_and(|v| v == "hash");
    if !only_hash {
        // The tiny run: alto's fixed overhead.
        b.configure(10, &[], 0);
        let raw = median((0..15).map(|_| timed(&mut b.raw()).0).collect());
        let (ours, peak) = b.alto_run("tap-synthetic:target-sink", 15);
        println!(
            "  {:<18} raw pipe {:8.0} ms   alto run {:8.0} ms   {:+6.1}% ({:+.0} ms)   alto peak {:5.1} MiB",
            "tiny (10 records)",
            ms(raw),
            ms(ours),
            (ours.as_secs_f64() / raw.as_secs_f64() - 1.0) * 100.0,
            ms(ours) - ms(raw),
            peak as f64 / 1024.0
        );
    }
    // The big runs, interleaved: each round runs every case once, so that
    // a change of load on the shared machine hits every case alike.
    let n = records;
    let label = format!("{}M records", n as f64 / 1e6);
    let one = ["events.email"];
    let three = ["events.f1", "events.f4", "events.f7"];
    let sink = Some("tap-synthetic:target-sink");
    let reservoir = Some("tap-synthetic:reservoir");
    let tap = Some("tap alone");
    let extract = Some("extract");
    // (rules, fields, task: None for the raw pipe, "tap alone" for the tap
    // into /dev/null)
    let other = ["other.f1"];
    let cases: [(&[&str], u32, Option<&str>); 14] = [
        (&[], 0, None),
        (&[], 0, sink),
        (&one, 0, sink),
        (&[], 10, None),
        (&three, 10, sink),
        (&[], 0, reservoir),
        (&one, 0, reservoir),
        (&[], 10, reservoir),
        (&three, 10, reservoir),
        (&[], 0, tap),
        (&[], 10, tap),
        (&[], 0, extract),
        (&one, 0, extract),
        // alto in the pipe with nothing to hash: what the pipe itself costs.
        (&other, 10, sink),
    ];
    let wanted = |i: usize| !only_hash || matches!(i, 3 | 4 | 13);
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut cpus: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut peaks = vec![0i64; cases.len()];
    // Each case right after the base its ratio is taken against.
    let order = [0, 2, 1, 3, 4, 13, 5, 6, 7, 8, 9, 11, 12, 10];
    assert!({
        let mut all = order.to_vec();
        all.sort();
        all == (0..cases.len()).collect::<Vec<_>>()
    });
    for _ in 0..runs {
        for i in order {
            if !wanted(i) {
                continue;
            }
            let (rules, fields, task) = &cases[i];
            b.configure(n, rules, *fields);
            let (d, rss, cpu) = match *task {
                None => timed_cpu(&mut b.raw()),
                Some("tap alone") => timed_cpu(&mut b.tap_alone()),
                Some("extract") => timed_cpu(b.alto().args(["extract", "tap-synthetic"])),
                Some(task) => {
                    // Each ingest starts from an empty reservoir.
                    let _ = std::fs::remove_dir_all(b.home.join(".alto/bench/reservoir"));
                    timed_cpu(b.alto().args(["run", task]))
                }
            };
            times[i].push(d);
            cpus[i].push(cpu);
            peaks[i] = peaks[i].max(rss);
        }
    }
    let median_or_zero = |v: Vec<Duration>| {
        if v.is_empty() {
            Duration::ZERO
        } else {
            median(v)
        }
    };
    // A ratio is taken within each round, between runs made one after
    // the other under the same load, and the median of the rounds' ratios
    // printed with their range: on this shared VM the raw pipe's own time
    // moves by half from one round to the next, which a ratio of two
    // medians (taken from different rounds) carries straight into the
    // ratio.
    let x = |base: usize, case: usize| {
        let mut r: Vec<f64> = times[base]
            .iter()
            .zip(&times[case])
            .map(|(b, c)| b.as_secs_f64() / c.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        match (r.first(), r.last()) {
            (Some(lo), Some(hi)) => format!("{:.2}x ({lo:.2}-{hi:.2})", r[r.len() / 2]),
            _ => "-".to_string(),
        }
    };
    let t: Vec<Duration> = times.iter().cloned().map(median_or_zero).collect();
    let cpu: Vec<Duration> = cpus.into_iter().map(median_or_zero).collect();
    // CPU per record in µs: what alto adds to the raw pipe, against what
    // the tap costs by itself (with a core per process, the slowest one
    // sets the pace; on 2 cores every process's CPU adds up).
    let per = |d: f64| d * 1e6 / n as f64;
    let added = |with: usize, base: usize| per(cpu[with].as_secs_f64() - cpu[base].as_secs_f64());
    let mib = |i: usize| peaks[i] as f64 / 1024.0;
    // The 10-field pipe: 3 rules, and a rule on another stream.
    let ten_fields = || {
        println!(
            "  {label:<18} 10 fields: raw pipe {:8.0} ms; 3 rules (~events.f1, f4, f7): alto run {:8.0} ms = {} (target 0.8x)",
            ms(t[3]),
            ms(t[4]),
            x(3, 4)
        );
        println!(
            "  {label:<18} 10 fields, a rule on another stream (alto in the pipe, nothing hashed): alto run {:8.0} ms = {}; alto adds {:.2} µs of CPU per record (3 rules: {:.2} µs)",
            ms(t[13]),
            x(3, 13),
            added(13, 3),
            added(4, 3)
        );
    };
    if only_hash {
        ten_fields();
        println!("  load average now {}", load());
        return;
    }
    println!(
        "  {label:<18} raw pipe {:8.0} ms   alto run {:8.0} ms = {} the raw pipe's throughput   alto peak {:5.1} MiB",
        ms(t[0]),
        ms(t[1]),
        x(0, 1),
        mib(1)
    );
    println!(
        "  {label:<18} 1 rule (~events.email): alto run {:8.0} ms = {} the raw pipe's throughput (target 0.9x), alto peak {:5.1} MiB",
        ms(t[2]),
        x(0, 2),
        mib(2)
    );
    ten_fields();
    println!(
        "  {label:<18} tap:reservoir no rule {:8.0} ms; 1 rule {:8.0} ms = {} (target 0.9x)",
        ms(t[5]),
        ms(t[6]),
        x(5, 6)
    );
    println!(
        "  {label:<18} tap:reservoir 10 fields, no rule {:8.0} ms; 3 rules {:8.0} ms = {} (target 0.8x)",
        ms(t[7]),
        ms(t[8]),
        x(7, 8)
    );
    println!(
        "  {label:<18} CPU per record: tap alone {:.2} µs (10 fields {:.2} µs), tap | sink {:.2} µs (10 fields {:.2} µs); alto adds {:.2} µs with 1 rule, {:.2} µs with 3 rules on 10 fields",
        per(cpu[9].as_secs_f64()),
        per(cpu[10].as_secs_f64()),
        per(cpu[0].as_secs_f64()),
        per(cpu[3].as_secs_f64()),
        added(2, 0),
        added(4, 3)
    );
    println!(
        "  {label:<18} alto extract > /dev/null {:8.0} ms = {} the tap alone's throughput ({:8.0} ms); 1 rule {:8.0} ms = {}; alto peak {:5.1} MiB",
        ms(t[11]),
        x(9, 11),
        ms(t[9]),
        ms(t[12]),
        x(9, 12),
        mib(11).max(mib(12))
    );
    println!(
        "  targets: 2M at 0.95x the raw pipe or better; tiny under 50 ms above it; peak under 50 MiB; load average now {}",
        load()
    );
}

/// The load averages (1, 5, 15 minutes).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
