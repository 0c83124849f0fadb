//! Realization benchmarks: a cold `alto build` of two registry plugins on a
//! fresh HOME against Meltano's `meltano install` and the floor (`uv pip
//! install` into two venvs); time to the first output of a plugin's first
//! run after substitution against its hundredth; a no-op `alto build`,
//! substituting a 30 MB artifact from a directory remote and from a local S3
//! server (moto), blake3 verification throughput, a cold build against raw
//! pex, and plugin start-up. Prints medians and the load average; needs
//! python3 with pip (and moto for the S3 line). `ALTO_BENCH_RUNS` sets the
//! runs of the cold builds (default 3).

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

/// CPU time (user + system) of every child this process has reaped so far,
/// theirs included: what a run took of the machine, which its load moves
/// less than wall time.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
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

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Meltano 4.4.1 in `target/bench-meltano`, installed when it can be.
fn meltano(root: &Path) -> Option<PathBuf> {
    let venv = root.join("target/bench-meltano");
    let bin = venv.join("bin/meltano");
    if !bin.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "meltano==4.4.1"])
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            return None;
        }
    }
    bin.exists().then_some(bin)
}

const TAP: &str = "meltanolabs-tap-postgres==0.10.0";
const TARGET: &str = "target-jsonl==0.1.4";

/// Cold builds of the two plugins, each on a fresh HOME (empty caches):
/// alto, Meltano, and `uv pip install` of both into two venvs.
fn versus_meltano(root: &Path, python: &str) {
    let runs: usize = std::env::var("ALTO_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "cold build of {TAP} + {TARGET}, a fresh HOME each run, {runs} runs (2 cores shared with other engineers' compiles: load average before each line)"
    );
    let alto_config = format!(
        "default:\n  project_name: cold\n  taps:\n    tap-postgres:\n      pip_url: {TAP}\n  targets:\n    target-jsonl:\n      pip_url: {TARGET}\n"
    );
    // Every run's trees are deleted together at the end: ext4 skips inodes
    // freed in the last half minute as it creates files
    // (`recently_deleted`), which made a build right after deleting the
    // last one's trees up to 60% slower.
    let all = tempfile::tempdir().unwrap();
    let count = std::cell::Cell::new(0);
    let fresh = || {
        count.set(count.get() + 1);
        let w = all.path().join(count.get().to_string());
        std::fs::create_dir_all(w.join("home")).unwrap();
        std::fs::create_dir_all(w.join("project")).unwrap();
        w
    };
    let mut alto = Vec::new();
    let mut alto_tools = Vec::new();
    let mut melt = Vec::new();
    let mut alto_cpu = Vec::new();
    let mut melt_cpu = Vec::new();
    let mut floor = Vec::new();
    let meltano = meltano(root);
    let tools = tempfile::tempdir().unwrap();
    let load_before = load();
    for _ in 0..runs {
        // alto, from nothing: provisions uv and pex, builds, prepares, uploads to ~/.alto.
        let w = fresh();
        let project = w.join("project");
        std::fs::write(project.join("alto.yaml"), &alto_config).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
        c.current_dir(&project)
            .env("HOME", w.join("home"))
            .env_remove("ALTO_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .args(["-q", "build"]);
        alto.push(run_ok(&mut c));
        let cache = w.join("home/.cache/alto/tools");
        if !tools.path().join("tools").exists() {
            copy_dir(&cache, &tools.path().join("tools"));
        }
        // alto with its tools already provisioned (as on any machine after the first build).
        let w = fresh();
        let project = w.join("project");
        std::fs::write(project.join("alto.yaml"), &alto_config).unwrap();
        copy_dir(
            &tools.path().join("tools"),
            &w.join("home/.cache/alto/tools"),
        );
        let mut c = Command::new(env!("CARGO_BIN_EXE_alto"));
        c.current_dir(&project)
            .env("HOME", w.join("home"))
            .env_remove("ALTO_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .args(["-q", "build"]);
        let cpu = children_cpu();
        alto_tools.push(run_ok(&mut c));
        alto_cpu.push(children_cpu() - cpu);
        if let Some(meltano) = &meltano {
            let w = fresh();
            let project = w.join("project");
            std::fs::write(
                project.join("meltano.yml"),
                format!("version: 1\ndefault_environment: dev\nproject_id: cold-bench\nenvironments:\n- name: dev\nplugins:\n  extractors:\n  - name: tap-postgres\n    namespace: tap_postgres\n    pip_url: {TAP}\n    executable: tap-postgres\n  loaders:\n  - name: target-jsonl\n    namespace: target_jsonl\n    pip_url: {TARGET}\n    executable: target-jsonl\n"),
            )
            .unwrap();
            let mut c = Command::new(meltano);
            c.current_dir(&project)
                .env("HOME", w.join("home"))
                .env("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
                .env_remove("XDG_CACHE_HOME")
                .args(["install"]);
            let cpu = children_cpu();
            melt.push(run_ok(&mut c));
            melt_cpu.push(children_cpu() - cpu);
        }
        // The floor: uv (the one alto provisioned) into two venvs, its cache empty.
        let w = fresh();
        let uv = tools
            .path()
            .join("tools")
            .join(format!("uv-{}", alto::realize::uv::UV_VERSION))
            .join("bin/uv");
        let start = Instant::now();
        for (venv, req) in [("tap", TAP), ("target", TARGET)] {
            let v = w.join(venv);
            let env = |c: &mut Command| {
                c.env("UV_CACHE_DIR", w.join("uv-cache"))
                    .env("UV_SYSTEM_CERTS", "1")
                    .arg("-q");
            };
            let mut c = Command::new(&uv);
            c.args(["venv", "--python", python]).arg(&v);
            env(&mut c);
            run_ok(&mut c);
            let mut c = Command::new(&uv);
            c.args(["pip", "install", "--python"])
                .arg(v.join("bin/python"))
                .arg(req);
            env(&mut c);
            run_ok(&mut c);
        }
        floor.push(start.elapsed());
    }
    let f = median(floor.clone());
    // The median, and every run's time: on a shared machine the spread says
    // how far one median can be trusted.
    let line = |label: &str, runs: &[Duration]| {
        let d = median(runs.to_vec());
        let each: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.1}", r.as_secs_f64()))
            .collect();
        println!(
            "  {label:<44} median {:7.1} s   {:5.2}x the floor   (runs: {} s)",
            d.as_secs_f64(),
            d.as_secs_f64() / f.as_secs_f64(),
            each.join(", ")
        );
    };
    println!(
        "  (load average at the start: {load_before}; at the end: {})",
        load()
    );
    line("alto build, nothing provisioned", &alto);
    line("alto build, uv and pex provisioned", &alto_tools);
    match meltano {
        Some(_) => {
            let m = median(melt.clone());
            line("meltano install (Meltano 4.4.1)", &melt);
            println!(
                "  alto / Meltano: {:.2}x from nothing, {:.2}x with tools provisioned (goal: at most 1.0x, never above 1.5x)",
                median(alto).as_secs_f64() / m.as_secs_f64(),
                median(alto_tools).as_secs_f64() / m.as_secs_f64()
            );
            let (a, m) = (median(alto_cpu.clone()), median(melt_cpu.clone()));
            println!(
                "  CPU (user + system, medians): alto build {:.1} s, meltano install {:.1} s ({:.2}x): on 2 cores a build short of CPU takes at least half its CPU time",
                a.as_secs_f64(),
                m.as_secs_f64(),
                a.as_secs_f64() / m.as_secs_f64()
            );
        }
        None => println!(
            "  (Meltano 4.4.1 could not be installed into target/bench-meltano; no Meltano line)"
        ),
    }
    line("floor: uv venv + uv pip install, two venvs", &floor);
}

/// Seconds from starting `alto invoke PLUGIN ARGS` to its first line of output.
fn first_output(project: &Path, home: &Path, cache: &Path, args: &[&str]) -> Duration {
    use std::io::BufRead;
    let start = Instant::now();
    let mut child = alto_cmd(project, home, cache)
        .arg("invoke")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("alto invoke");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let took = start.elapsed();
    assert!(!line.is_empty(), "alto invoke {args:?} printed nothing");
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// The first run of a plugin on a machine that just substituted it, against
/// its hundredth run.
fn first_run_after_substitution(root: &Path) {
    let w = tempfile::tempdir().unwrap();
    let home = w.path().join("home");
    let project = w.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    copy_dir(&root.join("fixtures/plugins"), &project.join("plugins"));
    std::fs::write(
        project.join("alto.yaml"),
        format!("default:\n  project_name: first\n  taps:\n    tap-postgres:\n      pip_url: {TAP}\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n"),
    )
    .unwrap();
    let builder = w.path().join("builder");
    common::cache_dir(root, &builder);
    run_ok(alto_cmd(&project, &home, &builder).arg("build"));
    println!(
        "first run after substitution against the hundredth (load average {})",
        load()
    );
    for (label, args) in [
        (
            "tap-postgres --about, first line",
            &["tap-postgres", "--about"][..],
        ),
        ("tap-fixture, first message", &["tap-fixture"][..]),
    ] {
        let mut firsts = Vec::new();
        let mut later = Vec::new();
        for round in 0..3 {
            // A new machine: an empty store substitutes from the remote (~/.alto).
            let cache = w
                .path()
                .join(format!("machine-{label}-{round}").replace(' ', "_"));
            std::fs::create_dir_all(&cache).unwrap();
            run_ok(alto_cmd(&project, &home, &cache).arg("build"));
            firsts.push(first_output(&project, &home, &cache, args));
            if round == 0 {
                // 100 runs of tap-postgres take over half an hour on a loaded
                // machine: ALTO_BENCH_LATER_RUNS shortens it (default 99 more).
                let more: usize = std::env::var("ALTO_BENCH_LATER_RUNS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(99);
                for _ in 0..more.max(1) {
                    later.push(first_output(&project, &home, &cache, args));
                }
            }
        }
        let last = later.len().min(10);
        let (a, b) = (median(firsts), median(later[later.len() - last..].to_vec()));
        println!(
            "  {label:<34} first {:6.2} s   last runs {:6.2} s   difference {:+.2} s (goal: within 0.2 s)",
            a.as_secs_f64(),
            b.as_secs_f64(),
            a.as_secs_f64() - b.as_secs_f64()
        );
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python3 = common::python3();
    versus_meltano(&root, &python3);
    first_run_after_substitution(&root);
    if std::env::var_os("ALTO_BENCH_ONLY_COLD").is_some() {
        return;
    }
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
                .args([
                    "--venv",
                    "--no-emit-warnings",
                    "--no-compress",
                    "--python",
                    &python,
                ]),
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
