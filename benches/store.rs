//! Store lifecycle benchmarks: `alto gc --remote` over 10 000 unreferenced
//! objects in the directory remote, and `alto store verify --remote`
//! throughput. Prints medians.

mod common;

use common::copy_dir;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn meta(key: &str, blake3: &str, size: usize) -> String {
    format!(
        "{{\"format\": \"alto-object/v1\", \"key\": \"{key}\", \"kind\": \"plugin\", \"derivation\": {{}}, \"blake3\": \"{blake3}\", \"size\": {size}, \"created\": \"2020-01-01T00:00:00Z\", \"builder\": {{\"alto\": \"0\", \"host\": \"bench\"}}}}"
    )
}

fn seed(remote: &Path, n: usize, size: usize, offset: usize) {
    let (meta_dir, data_dir) = (remote.join(".store/v1/meta"), remote.join(".store/v1/data"));
    std::fs::create_dir_all(&meta_dir).unwrap();
    std::fs::create_dir_all(&data_dir).unwrap();
    for i in 0..n {
        let key = format!("{:032x}", offset + i);
        let data: Vec<u8> = (0..size).map(|j| ((i * 31 + j) % 251) as u8).collect();
        std::fs::write(data_dir.join(&key), &data).unwrap();
        std::fs::write(
            meta_dir.join(format!("{key}.json")),
            meta(&key, blake3::hash(&data).to_hex().as_str(), size),
        )
        .unwrap();
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let (project, home, cache) = (
        work.path().join("project"),
        work.path().join("home"),
        work.path().join("cache"),
    );
    std::fs::create_dir_all(&home).unwrap();
    common::cache_dir(&root, &cache);
    copy_dir(&root.join("fixtures/plugins"), &project.join("plugins"));
    std::fs::write(
        project.join("alto.yaml"),
        "default:\n  project_name: bench\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n",
    )
    .unwrap();
    let alto = |args: &[&str]| -> Duration {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_alto"))
            .current_dir(&project)
            .env("HOME", &home)
            .env("ALTO_CACHE_DIR", &cache)
            .arg("-q")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    };
    alto(&["build"]);
    let remote = home.join(".alto");
    println!("store lifecycle (2 cores)");
    let mut dry = Vec::new();
    let mut real = Vec::new();
    for round in 0..3 {
        seed(&remote, 10_000, 16, round * 10_000);
        dry.push(alto(&["gc", "--remote", "--older-than", "0", "--dry-run"]));
        real.push(alto(&["gc", "--remote", "--older-than", "0"]));
    }
    dry.sort();
    real.sort();
    println!(
        "  gc --remote over 10 000 unreferenced objects: dry run {:7.0} ms, deleting them {:7.0} ms (medians of 3)",
        dry[1].as_secs_f64() * 1e3,
        real[1].as_secs_f64() * 1e3
    );

    let (n, size) = (50, 2 * 1024 * 1024);
    seed(&remote, n, size, 1_000_000);
    let mut v: Vec<Duration> = (0..3)
        .map(|_| alto(&["store", "verify", "--remote"]))
        .collect();
    v.sort();
    let mb = (n * size) as f64 / 1e6;
    println!(
        "  store verify --remote, {n} objects of 2 MiB: {:7.0} ms = {:6.0} MB/s (download + blake3)",
        v[1].as_secs_f64() * 1e3,
        mb / v[1].as_secs_f64()
    );
}
