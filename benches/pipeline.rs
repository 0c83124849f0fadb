//! `alto run` against the raw shell pipe `tap | target` running the same PEX
//! files: 2 million synthetic records into a sink, a tiny run's fixed
//! overhead, a hash rule's cost, and alto's peak memory. Prints medians.

mod common;

use common::copy_dir;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command; wall time and its own peak RSS in KiB (not its children's).
fn timed(c: &mut Command) -> (Duration, i64) {
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
    (start.elapsed(), usage.ru_maxrss)
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
        c.current_dir(&self.project)
            .env("HOME", &self.home)
            .env("ALTO_CACHE_DIR", &self.cache)
            .arg("-q");
        c
    }

    fn configure(&self, records: u64, hash: bool) {
        let select = if hash {
            "      select: [\"*.*\", \"~events.email\"]\n"
        } else {
            ""
        };
        std::fs::write(
            self.project.join("alto.yaml"),
            format!("default:\n  project_name: bench\n  taps:\n    tap-synthetic:\n      pip_url: ./plugins/tap-synthetic\n      capabilities: [catalog]\n{select}      config:\n        records: {records}\n  targets:\n    target-sink:\n      pip_url: ./plugins/target-sink\n"),
        )
        .unwrap();
        std::fs::write(
            self.project.join("tap.json"),
            format!("{{\"records\": {records}}}"),
        )
        .unwrap();
    }

    fn pex(&self, plugin: &str) -> PathBuf {
        common::pex_path(self.alto(), plugin)
    }

    fn raw(&self) -> Command {
        let script = format!(
            "PEX_SCRIPT=tap-synthetic {py} {tap} --config tap.json | PEX_SCRIPT=target-sink {py} {sink} > /dev/null",
            py = self.python,
            tap = self.pex("tap-synthetic").display(),
            sink = self.pex("target-sink").display()
        );
        let mut c = Command::new("sh");
        c.current_dir(&self.project)
            .env("PEX_ROOT", self.cache.join("pex-root"))
            .args(["-c", &script]);
        c
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
    b.configure(10, false);
    assert!(b.alto().arg("build").status().unwrap().success());
    let records: u64 = std::env::var("ALTO_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let runs = 3;

    println!("tap-synthetic → target-sink (2 cores; medians of {runs})");
    // Warm both plugins' venvs.
    timed(&mut b.raw());
    for (label, n) in [("tiny (10 records)", 10u64), ("2M records", records)] {
        b.configure(n, false);
        let k = if n < 1000 { 15 } else { runs };
        let raw = median((0..k).map(|_| timed(&mut b.raw()).0).collect());
        let mut peak = 0;
        let ours = median(
            (0..k)
                .map(|_| {
                    let (d, rss) = timed(b.alto().args(["run", "tap-synthetic:target-sink"]));
                    peak = peak.max(rss);
                    d
                })
                .collect(),
        );
        println!(
            "  {label:<18} raw pipe {:8.0} ms   alto run {:8.0} ms   {:+6.1}% ({:+.0} ms)   alto peak {:5.1} MiB",
            raw.as_secs_f64() * 1e3,
            ours.as_secs_f64() * 1e3,
            (ours.as_secs_f64() / raw.as_secs_f64() - 1.0) * 100.0,
            (ours.as_secs_f64() - raw.as_secs_f64()) * 1e3,
            peak as f64 / 1024.0
        );
        if n >= 1000 {
            b.configure(n, true);
            let mut peak = 0;
            let hashed = median(
                (0..runs)
                    .map(|_| {
                        let (d, rss) = timed(b.alto().args(["run", "tap-synthetic:target-sink"]));
                        peak = peak.max(rss);
                        d
                    })
                    .collect(),
            );
            println!(
                "  {:<18} with ~events.email: alto run {:8.0} ms = {:.2}x the raw pipe's throughput, alto peak {:5.1} MiB",
                label,
                hashed.as_secs_f64() * 1e3,
                raw.as_secs_f64() / hashed.as_secs_f64(),
                peak as f64 / 1024.0
            );
        }
    }
    println!(
        "  targets: 2M within 5% of the raw pipe; tiny under 50 ms above it; peak under 50 MiB"
    );
}
