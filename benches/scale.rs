//! What a run costs as the shared bucket grows: a no-op `alto build` and a
//! tiny `alto run tap:target` (10 records) against a moto S3 bucket holding
//! 10, 1 000 and 20 000 unrelated objects (metadata records of other
//! projects' plugins, what a listing of the binary cache would read). Prints
//! medians and their ratio to the smallest bucket; they should agree within
//! 10%. Needs python3 with moto and boto3 (seeding writes the objects with
//! 16 concurrent boto3 clients, not one alto call each).
//! `ALTO_BENCH_RUNS` sets the runs per median (default 9).

mod common;
#[path = "../tests/common/mod.rs"]
mod testkit;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Puts objects `from..to` (metadata records of unrelated keys) into the bucket.
fn seed(port: u16, bucket: &str, from: usize, to: usize) {
    let script = format!(
        r#"
import boto3, concurrent.futures, json
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
def put(i):
    key = "%032x" % (0xabc0000000000000000000000000000 + i)
    record = {{"format": "alto-object/v1", "key": key, "kind": "plugin", "derivation": {{}},
              "blake3": "0" * 64, "size": 1, "created": "2020-01-01T00:00:00Z",
              "builder": {{"alto": "0", "host": "bench"}}}}
    s3.put_object(Bucket="{bucket}", Key="alto/.store/v1/meta/%s.json" % key, Body=json.dumps(record))
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(put, range({from}, {to})))
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "seeding failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn timed(c: &mut Command) -> Duration {
    let start = Instant::now();
    let out = c.output().expect("alto");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

fn main() {
    let runs: usize = std::env::var("ALTO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let (project, home, cache) = (
        work.path().join("project"),
        work.path().join("home"),
        work.path().join("cache"),
    );
    std::fs::create_dir_all(&home).unwrap();
    common::cache_dir(root, &cache);
    common::copy_dir(&root.join("fixtures/plugins"), &project.join("plugins"));
    let moto = testkit::Moto::start();
    moto.create_bucket("scale");
    std::fs::write(
        project.join("alto.yaml"),
        format!(
            "default:\n  project_name: scale\n  taps:\n    tap-synthetic:\n      pip_url: ./plugins/tap-synthetic\n      capabilities: [catalog]\n      config:\n        records: 10\n        fields: 4\n  targets:\n    target-sink:\n      pip_url: ./plugins/target-sink\n{}",
            moto.config("scale")
        ),
    )
    .unwrap();
    let alto = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
        c.current_dir(&project)
            .env("HOME", &home)
            .env("ALTO_CACHE_DIR", &cache)
            .arg("-q")
            .args(args);
        c
    };
    // Built and published once; every timed build is a no-op.
    timed(&mut alto(&["build"]));

    let mut rows: Vec<(usize, Duration, Duration, String)> = Vec::new();
    let mut seeded = 0;
    for n in [10, 1_000, 20_000] {
        let start = Instant::now();
        seed(moto.port, "scale", seeded, n);
        seeded = n;
        eprintln!("seeded {n} objects ({:.1}s)", start.elapsed().as_secs_f64());
        let (mut builds, mut pipes) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            builds.push(timed(&mut alto(&["build"])));
            pipes.push(timed(&mut alto(&["run", "tap-synthetic:target-sink"])));
        }
        rows.push((n, median(builds), median(pipes), load()));
    }
    println!("bucket size scaling (moto S3, 2 cores, medians of {runs}; ratio to 10 objects)");
    println!("| objects | no-op build | tiny tap:target | load |");
    println!("|---|---|---|---|");
    let (b0, p0) = (ms(rows[0].1), ms(rows[0].2));
    for (n, b, p, l) in &rows {
        println!(
            "| {n} | {:.0} ms ({:.2}x) | {:.0} ms ({:.2}x) | {l} |",
            ms(*b),
            ms(*b) / b0,
            ms(*p),
            ms(*p) / p0
        );
    }
}
