//! Start-up of `alto list` on the example project, against the original
//! Python alto when it is installed (scripts/bench installs it into
//! target/bench-venv). Prints medians and peak memory side by side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Sample {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs a command to completion and returns its wall time and peak RSS.
fn run_once(program: &Path, args: &[&str], dir: &Path) -> Sample {
    let start = Instant::now();
    let child = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let pid = child.id() as libc::pid_t;
    // Reaped by wait4 below, which also reports the child's peak memory.
    std::mem::forget(child);
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} {args:?} failed",
        program.display()
    );
    Sample {
        wall,
        max_rss_kib: usage.ru_maxrss,
    }
}

struct Summary {
    median: Duration,
    p90: Duration,
    max_rss_mib: f64,
}

fn measure(program: &Path, args: &[&str], dir: &Path, runs: usize) -> Summary {
    for _ in 0..3 {
        run_once(program, args, dir);
    }
    let mut samples: Vec<Sample> = (0..runs).map(|_| run_once(program, args, dir)).collect();
    samples.sort_by_key(|s| s.wall);
    Summary {
        median: samples[samples.len() / 2].wall,
        p90: samples[samples.len() * 9 / 10].wall,
        max_rss_mib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let alto = PathBuf::from(env!("CARGO_BIN_EXE_alto"));
    let runs: usize = std::env::var("ALTO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root.join("alto.example.yaml"),
        project.path().join("alto.yaml"),
    )
    .expect("copy example");

    println!("alto list on alto.example.yaml ({runs} runs; median, p90, peak RSS)");
    let ours = measure(&alto, &["list"], project.path(), runs);
    println!(
        "  alto (rust)      median {:7.2} ms   p90 {:7.2} ms   peak {:6.1} MiB",
        ms(ours.median),
        ms(ours.p90),
        ours.max_rss_mib
    );
    let original = std::env::var_os("ALTO_ORIGINAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench-venv/bin/alto"));
    if original.is_file() {
        let theirs = measure(&original, &["list"], project.path(), (runs / 10).max(5));
        println!(
            "  alto (original)  median {:7.2} ms   p90 {:7.2} ms   peak {:6.1} MiB",
            ms(theirs.median),
            ms(theirs.p90),
            theirs.max_rss_mib
        );
        println!(
            "  ratio            {:.0}x faster, {:.1}x less memory",
            theirs.median.as_secs_f64() / ours.median.as_secs_f64(),
            theirs.max_rss_mib / ours.max_rss_mib.max(0.001)
        );
    } else {
        println!(
            "  (the original is not installed; scripts/bench installs it into target/bench-venv)"
        );
    }
    println!("  target: median under 5 ms, peak under 10 MiB");
}
