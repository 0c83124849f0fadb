//! Realization benchmarks: a no-op `alto build`, substituting a 30 MB artifact
//! from a directory remote and from a local S3 server (moto), blake3
//! verification throughput, a cold build against raw pex, and plugin start-up.
//! Prints medians; needs python3 with pip (and moto for the S3 line).

mod common;
#[path = "../tests/common/mod.rs"]
mod testkit;

use common::copy_dir;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alto::config::{self, LoadOptions};
use alto::realize::Realizer;
use alto::store::{self, BuilderInfo, ObjectMeta, Remote};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn alto_cmd(project: &Path, home: &Path, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
    c.current_dir(project)
        .env("HOME", home)
        .env("ALTO_CACHE_DIR", cache)
        .arg("-q");
    c
}

fn run_ok(c: &mut Command) -> Duration {
    let start = Instant::now();
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// Puts a random object of `size` bytes into `remote` as the output of the
/// project's `big` plugin, so a build on an empty cache substitutes it.
fn seed_big(
    project_dir: &Path,
    home: &Path,
    cache: &Path,
    remote: &Remote,
    size: usize,
) -> alto::eval::Key {
    // SAFETY: single-threaded at this point; the variables only steer alto's library.
    unsafe {
        std::env::set_var("HOME", home);
        std::env::set_var("ALTO_CACHE_DIR", cache);
    }
    let project = config::load(&LoadOptions::from_process(
        Some(project_dir.to_path_buf()),
        None,
    ))
    .unwrap();
    let realizer = Realizer::new(&project).unwrap();
    let d = realizer
        .derivations(&["big".to_string()])
        .unwrap()
        .remove(0);
    let mut bytes = vec![0u8; size];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (x >> (i * 8)) as u8;
        }
    }
    let tmp = project_dir.join("big.bin");
    std::fs::write(&tmp, &bytes).unwrap();
    let meta = ObjectMeta {
        format: store::META_FORMAT.into(),
        key: d.key.clone(),
        kind: "plugin".into(),
        derivation: d.inputs(),
        blake3: blake3::hash(&bytes).to_hex().to_string(),
        size: size as u64,
        created: store::now_rfc3339(),
        builder: BuilderInfo::here(),
        signature: None,
    };
    remote.upload(&d.key, &tmp, &meta, true).unwrap();
    d.key
}

fn substitution(label: &str, project: &Path, home: &Path, warm: &Path, size: usize, runs: usize) {
    let mut times = Vec::new();
    for _ in 0..runs {
        let cache = tempfile::tempdir().unwrap();
        // An empty store but a known interpreter: time the substitution, not the Python probe.
        copy_dir(&warm.join("python"), &cache.path().join("python"));
        times.push(run_ok(
            alto_cmd(project, home, cache.path()).args(["build", "big"]),
        ));
    }
    let m = median(times);
    println!(
        "  substitute 30 MB from {label:<10} median {:8.1} ms   {:7.1} MB/s (download + verify + commit)",
        ms(m),
        size as f64 / 1e6 / m.as_secs_f64()
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let project = work.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    copy_dir(&root.join("fixtures/plugins"), &project.join("plugins"));
    let config = "default:\n  project_name: bench\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n  utilities:\n    big:\n      pip_url: big-artifact==1.0\n";
    std::fs::write(project.join("alto.yaml"), config).unwrap();
    let cache = work.path().join("cache");
    common::cache_dir(&root, &cache);

    println!("alto build (2 cores; medians)");
    run_ok(alto_cmd(&project, &home, &cache).args(["build", "tap-fixture"]));
    let noop: Vec<Duration> = (0..50)
        .map(|_| run_ok(alto_cmd(&project, &home, &cache).args(["build", "tap-fixture"])))
        .collect();
    println!(
        "  no-op build                      median {:8.2} ms   (target: under 20 ms)",
        ms(median(noop))
    );

    // Cold builds: a fresh key each time (_version), pex's own cache warm, against raw pex.
    let python = common::python3();
    let tools = std::fs::read_dir(cache.join("tools"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    for i in 0..3 {
        let out = work.path().join(format!("raw{i}.pex"));
        raw.push(run_ok(
            Command::new(&python)
                .current_dir(&project)
                .env("PYTHONPATH", &tools)
                .env("PEX_ROOT", cache.join("pex-root"))
                .args(["-m", "pex", "./plugins/tap-fixture", "-o"])
                .arg(&out)
                .args(["--venv", "--no-emit-warnings", "--python", &python]),
        ));
        std::fs::write(
            project.join("alto.yaml"),
            format!("default:\n  project_name: bench\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      _version: 'cold-{i}-{}'\n  utilities:\n    big:\n      pip_url: big-artifact==1.0\n", std::process::id()),
        )
        .unwrap();
        ours.push(run_ok(
            alto_cmd(&project, &home, &cache).args(["build", "tap-fixture"]),
        ));
    }
    std::fs::write(project.join("alto.yaml"), config).unwrap();
    let (r, o) = (median(raw), median(ours));
    println!(
        "  cold build: raw pex {:8.0} ms   alto build {:8.0} ms   overhead {:+.1}% (target: under 5%; alto also hashes, commits and uploads)",
        ms(r),
        ms(o),
        (o.as_secs_f64() / r.as_secs_f64() - 1.0) * 100.0
    );

    // Verification throughput.
    let size = 30 * 1024 * 1024;
    let data = vec![7u8; size];
    let t: Vec<Duration> = (0..10)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(blake3::hash(&data));
            s.elapsed()
        })
        .collect();
    println!(
        "  blake3 verify                    median {:8.1} ms   {:7.0} MB/s",
        ms(median(t.clone())),
        size as f64 / 1e6 / median(t).as_secs_f64()
    );

    // Substitution from the directory remote (the embedded default, ~/.alto).
    let dir_remote = Remote::new(
        store::remote::Backend::Directory(home.join(".alto")),
        String::new(),
        "bench".into(),
        &[],
    )
    .unwrap();
    seed_big(&project, &home, &cache, &dir_remote, size);
    substitution("directory", &project, &home, &cache, size, 5);

    // And from a local S3 server: the tests' moto helper, if moto is installed.
    let has_moto = Command::new("python3")
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    if has_moto {
        let moto = testkit::Moto::start();
        moto.create_bucket("bench");
        let s3_project = work.path().join("s3project");
        std::fs::create_dir_all(&s3_project).unwrap();
        std::fs::write(
            s3_project.join("alto.yaml"),
            format!(
                "default:\n  project_name: bench\n{}  utilities:\n    big:\n      pip_url: big-artifact==1.0\n",
                moto.config("bench")
            ),
        )
        .unwrap();
        let settings: Vec<(String, String)> = [
            ("endpoint", format!("http://127.0.0.1:{}", moto.port)),
            ("allow_http", "true".into()),
            ("region", "us-east-1".into()),
            ("access_key_id", "test".into()),
            ("secret_access_key", "test".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let s3 = Remote::new(
            store::remote::Backend::S3 {
                bucket: "bench".into(),
            },
            "alto".into(),
            "bench".into(),
            &settings,
        )
        .unwrap();
        seed_big(&s3_project, &home, &cache, &s3, size);
        substitution("S3 (moto)", &s3_project, &home, &cache, size, 5);
    } else {
        println!("  (moto is not installed; no S3 line)");
    }

    // Plugin start-up: the PEX launched the way alto launches it, and `alto invoke`.
    let key = serde_json::from_slice::<serde_json::Value>(
        &alto_cmd(&project, &home, &cache)
            .args(["--json", "show", "tap-fixture"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let pex = cache.join("store/v1/objects").join(&key);
    let direct = |c: &mut Command| {
        c.env("PEX_ROOT", cache.join("pex-root"))
            .env("PEX_SCRIPT", "tap-fixture")
            .arg(&pex)
            .arg("--version");
        run_ok(c)
    };
    direct(&mut Command::new(&python));
    let starts: Vec<Duration> = (0..10)
        .map(|_| direct(&mut Command::new(&python)))
        .collect();
    println!(
        "  plugin start (python + venv PEX) median {:8.0} ms   (target: under 400 ms)",
        ms(median(starts))
    );
    let shim = Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
        .unwrap()
        .stdout;
    let shim = String::from_utf8_lossy(&shim).trim().to_string();
    if !shim.is_empty() && shim != python {
        let via: Vec<Duration> = (0..5).map(|_| direct(&mut Command::new(&shim))).collect();
        println!(
            "  the same through {shim:<16} median {:8.0} ms   (alto launches the resolved interpreter instead)",
            ms(median(via))
        );
    }
    let invokes: Vec<Duration> = (0..10)
        .map(|_| {
            run_ok(alto_cmd(&project, &home, &cache).args(["invoke", "tap-fixture", "--version"]))
        })
        .collect();
    println!(
        "  alto invoke tap-fixture          median {:8.0} ms",
        ms(median(invokes))
    );
}
