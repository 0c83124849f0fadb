//! Pipelines: spawning tap and target, wiring the pipe between them (a direct
//! OS pipe unless a `~` hash rule needs alto in the middle), capturing the
//! target's STATE lines and committing the merged state as it arrives, and
//! streaming both plugins' stderr to the console and to logs, redacted.

pub mod lock;
pub mod state_store;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use miette::Diagnostic;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::config::{ConfigError, Plugin, Project};
use crate::eval::PluginDerivation;
use crate::realize::{self, Options, RealizeError, Realizer};
use crate::singer::message::StreamHasher;
use crate::singer::state;
use crate::store::StoreError;

pub use lock::PipelineLock;
pub use state_store::StateStore;

#[derive(Debug, Error, Diagnostic)]
pub enum PipelineError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Realize(#[from] RealizeError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error("the state file {path} is not valid: {message}")]
    #[diagnostic(
        code(alto::state::invalid),
        help(
            "fix it with `alto state set TAP:TARGET FILE`, or drop it with `alto clean TAP:TARGET`"
        )
    )]
    BadState { path: String, message: String },

    #[error("{path} changed while this run held it; not overwriting another writer's state")]
    #[diagnostic(
        code(alto::state::conflict),
        help("another process wrote the state; check `alto state show` and run again")
    )]
    StateConflict { path: String },

    #[error("{pipeline} is already running on {host} (pid {pid}, since {since})")]
    #[diagnostic(
        code(alto::pipeline::locked),
        help("wait for it, or pass --wait; the lock is {path} and expires if its holder dies")
    )]
    Locked {
        pipeline: String,
        host: String,
        pid: u32,
        since: String,
        path: String,
    },

    #[error("{plugin} failed ({status}); the state it confirmed is kept")]
    #[diagnostic(code(alto::pipeline::plugin_failed), help("last lines of its log ({}):\n{tail}", log.display()))]
    PluginFailed {
        plugin: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{tap} has stream_maps ({maps}), Python files alto does not run")]
    #[diagnostic(
        code(alto::pipeline::stream_maps),
        help(
            "without --strict alto warns and runs the pipeline without them; `~` hash rules and Singer mappers (`mappers`) are alto's ways to map streams"
        )
    )]
    StreamMaps { tap: String, maps: String },

    #[error("the base catalog of {tap} cannot be applied: {message}")]
    #[diagnostic(code(alto::pipeline::catalog))]
    Catalog { tap: String, message: String },

    #[error("cannot {action} {}", path.display())]
    #[diagnostic(code(alto::pipeline::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> PipelineError + use<> {
    let path = path.to_path_buf();
    move |source| PipelineError::Io {
        action,
        path,
        source,
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub full_refresh: bool,
    pub wait: bool,
    /// Refuse what alto cannot honour (the original's Python stream maps).
    pub strict: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub state_commits: usize,
    pub skipped_lines: usize,
    pub seconds: f64,
    pub state: Value,
}

/// A private directory for one run's rendered configs, catalog and state;
/// removed when dropped.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(project: &Project) -> Result<RunDir, PipelineError> {
        let path = project
            .root
            .join(".alto/run")
            .join(crate::store::local::unique());
        std::fs::create_dir_all(&path).map_err(io_err("cannot create", &path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("cannot protect", &path))?;
        }
        Ok(RunDir { path })
    }

    /// Writes a private (0600) JSON file.
    pub fn write_json(&self, name: &str, v: &Value) -> Result<PathBuf, PipelineError> {
        let path = self.path.join(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(io_err("cannot create", &path))?;
        f.write_all(&serde_json::to_vec(v).unwrap_or_default())
            .map_err(io_err("cannot write", &path))?;
        Ok(path)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Scrubs secret values from log lines.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Redactor {
        // Longest first, so a secret containing another is scrubbed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor {
            secrets: Arc::new(secrets),
        }
    }

    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), crate::config::REDACTED);
            }
        }
        out
    }
}

/// The last lines a plugin wrote on stderr, for error messages.
pub type Tail = Arc<Mutex<Vec<String>>>;

/// Streams a plugin's stderr to the console (prefixed) and to the run's log.
pub fn pump_stderr(
    name: String,
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<std::fs::File>>,
    redactor: Redactor,
    echo: bool,
    tail: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            let line = redactor.redact(text.trim_end_matches(['\n', '\r']));
            if echo {
                eprintln!("{name} | {line}");
            }
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{name} | {line}");
            }
            if let Ok(mut t) = tail.lock() {
                t.push(line);
                if t.len() > 40 {
                    t.remove(0);
                }
            }
        }
    })
}

/// Realizes plugins, returning each one's derivation.
pub fn realize_plugins(
    realizer: &Realizer,
    plugins: &[&Plugin],
    opts: &Options,
) -> Result<Vec<PluginDerivation>, PipelineError> {
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    let derivs = realizer.derivations(&names)?;
    for o in realizer.realize(&derivs, opts) {
        if let Some(e) = o.error {
            return Err(e.into());
        }
    }
    realizer.register_roots(
        &derivs.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
        false,
    );
    let mut out = Vec::new();
    for p in plugins {
        let d = derivs
            .iter()
            .find(|d| d.plugins.contains(&p.name))
            .cloned()
            .ok_or_else(|| {
                PipelineError::Realize(RealizeError::Damaged {
                    plugins: p.name.clone(),
                    key: crate::eval::Key(String::new()),
                    reason: "it has no pip_url to build".into(),
                })
            })?;
        out.push(d);
    }
    Ok(out)
}

/// The runtime catalog of a tap: its base catalog with its select and metadata rules applied.
pub fn runtime_catalog(
    realizer: &Realizer,
    tap: &Plugin,
    d: &PluginDerivation,
    config_path: &Path,
) -> Result<Value, PipelineError> {
    let base = realize::catalog::base_catalog(realizer, tap, d, config_path)?;
    apply_rules(&base, tap)
}

pub fn apply_rules(base: &Value, tap: &Plugin) -> Result<Value, PipelineError> {
    use crate::singer::catalog::{Rules, Strategy, apply};
    let rules = Rules {
        select: tap.select(),
        metadata: tap.metadata(),
        strategy: Strategy::Prune,
    };
    let applied = apply(base, &rules).map_err(|e| PipelineError::Catalog {
        tap: tap.name.clone(),
        message: e.to_string(),
    })?;
    for w in applied.warnings {
        tracing::warn!("{}: {w}", tap.name);
    }
    Ok(applied.catalog)
}

/// A run's log under `.alto/logs/<env>/`, uploaded to `logs/<env>/` when the run ends.
pub struct RunLog {
    pub path: PathBuf,
    name: String,
    pub file: Arc<Mutex<std::fs::File>>,
}

impl RunLog {
    pub fn create(project: &Project, env: &str, pipeline: &str) -> Result<RunLog, PipelineError> {
        let dir = project.root.join(".alto/logs").join(env);
        std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        // Runs within one second get distinct logs: never overwrite one.
        let stamp = crate::store::now_compact();
        let mut n = 1;
        loop {
            let name = if n == 1 {
                format!("{pipeline}.{stamp}.log")
            } else {
                format!("{pipeline}.{stamp}-{n}.log")
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(&name))
            {
                Ok(f) => {
                    return Ok(RunLog {
                        path: dir.join(&name),
                        name,
                        file: Arc::new(Mutex::new(f)),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io_err("cannot create", &dir.join(&name))(e)),
            }
        }
    }

    /// Appends a line.
    pub fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Copies the log to the remote; a failure is only a warning.
    pub fn upload(&self, remote: &crate::store::Remote, env: &str) {
        if let Ok(bytes) = std::fs::read(&self.path)
            && let Err(e) = remote
                .overwrite_project_file(&format!("logs/{env}/{}", self.name), Bytes::from(bytes))
        {
            tracing::warn!("could not upload the log: {e}");
        }
    }
}

/// The arguments a tap runs with besides `--config`: its catalog (as
/// `--catalog` or `--properties`, by its capabilities) and its state.
pub fn tap_args(
    realizer: &Realizer,
    tap: &Plugin,
    d: &PluginDerivation,
    run_dir: &RunDir,
    config_path: &Path,
    state: &Map<String, Value>,
) -> Result<Vec<std::ffi::OsString>, PipelineError> {
    let caps = tap.capabilities();
    let catalog_flag = if caps.iter().any(|c| c == "catalog") {
        Some("--catalog")
    } else if caps.iter().any(|c| c == "properties") {
        Some("--properties")
    } else {
        None
    };
    let mut args = Vec::new();
    if let Some(flag) = catalog_flag {
        let path = run_dir.write_json(
            "catalog.json",
            &runtime_catalog(realizer, tap, d, config_path)?,
        )?;
        args.push(flag.into());
        args.push(path.into_os_string());
    }
    if caps.iter().any(|c| c == "state") && !state.is_empty() {
        let path = run_dir.write_json("state.json", &Value::Object(state.clone()))?;
        args.push("--state".into());
        args.push(path.into_os_string());
    }
    Ok(args)
}

/// How often state may be committed while a run goes on (`ALTO_STATE_COMMIT_MS`,
/// default 1000).
pub fn commit_interval() -> Duration {
    Duration::from_millis(
        std::env::var("ALTO_STATE_COMMIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    )
}

/// What reading a target's stdout to its end gave.
#[derive(Default)]
pub struct Confirmations {
    pub commits: usize,
    pub skipped: usize,
    /// The state moved since the last commit.
    pub dirty: bool,
    /// The first commit that failed; no commit is tried after it.
    pub error: Option<PipelineError>,
}

/// Reads a target's stdout: each state line goes to `take`, which says
/// whether it moved what is confirmed; anything else is logged (redacted) and
/// skipped. While the state moved, `commit` runs at most once per
/// [`commit_interval`]; the caller commits what is left once the target ended.
#[allow(clippy::too_many_arguments)]
pub fn read_confirmations<S>(
    out: impl Read,
    target: &str,
    redactor: &Redactor,
    log: &RunLog,
    confirmed: &mut S,
    mut take: impl FnMut(&mut S, Map<String, Value>) -> bool,
    mut commit: impl FnMut(&S) -> Result<(), PipelineError>,
) -> Confirmations {
    let mut read = Confirmations::default();
    let throttle = commit_interval();
    let mut last_commit = Instant::now();
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        match state::parse_line(body) {
            state::Line::State(m) => {
                if take(confirmed, m) {
                    read.dirty = true;
                }
            }
            state::Line::Blank => {}
            state::Line::Skipped(why) => {
                read.skipped += 1;
                let text = redactor.redact(String::from_utf8_lossy(body).trim_end());
                tracing::warn!("{target} stdout ({why}), skipped: {text}");
                log.line(&format!("{target} (stdout) | {text}"));
            }
        }
        if read.dirty && read.error.is_none() && last_commit.elapsed() >= throttle {
            match commit(confirmed) {
                Ok(()) => {
                    read.commits += 1;
                    read.dirty = false;
                    last_commit = Instant::now();
                }
                Err(e) => read.error = Some(e),
            }
        }
    }
    read
}

/// A plugin started with `--config` and more arguments, its stderr pumped to
/// the console and the run's log.
pub struct Launched {
    pub child: Child,
    pub tail: Tail,
    pub pump: Option<std::thread::JoinHandle<()>>,
}

#[allow(clippy::too_many_arguments)]
pub fn launch(
    realizer: &Realizer,
    plugin: &Plugin,
    d: &PluginDerivation,
    config: &Path,
    args: &[std::ffi::OsString],
    stdin: Stdio,
    log: &RunLog,
    redactor: &Redactor,
) -> Result<Launched, PipelineError> {
    let mut cmd = realizer.command(plugin, d, false)?;
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut cmd)?;
    let tail: Tail = Arc::new(Mutex::new(Vec::new()));
    let pump = child.stderr.take().map(|e| {
        pump_stderr(
            plugin.name.clone(),
            e,
            log.file.clone(),
            redactor.clone(),
            true,
            tail.clone(),
        )
    });
    Ok(Launched { child, tail, pump })
}

/// Asks for a 1 MiB pipe buffer (Linux), so a fast writer and reader switch
/// less often; a refusal changes nothing but speed.
pub fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a pipe descriptor we own; failure is harmless.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// The error for a plugin that exited unsuccessfully.
pub fn plugin_failed(
    name: &str,
    status: &std::process::ExitStatus,
    log: &Path,
    tail: &Tail,
) -> PipelineError {
    PipelineError::PluginFailed {
        plugin: name.to_string(),
        status: match status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".into(),
        },
        log: log.to_path_buf(),
        tail: tail
            .lock()
            .map(|t| t[t.len().saturating_sub(10)..].join("\n"))
            .unwrap_or_default(),
    }
}

/// Runs `tap → [mappers →] target` once.
pub fn run(
    realizer: &Realizer,
    tap_name: &str,
    mapper_names: &[String],
    target_name: &str,
    opts: &RunOptions,
    build: &Options,
) -> Result<RunSummary, PipelineError> {
    let start = Instant::now();
    let project = realizer.project;
    let tap = project.tap(tap_name)?;
    let target = project.target(target_name)?;
    let mappers: Vec<&Plugin> = mapper_names
        .iter()
        .map(|m| project.mapper(m))
        .collect::<Result<_, _>>()?;
    // The state is the tap's: mappers in between do not change where it lives.
    let pipeline = format!("{tap_name}-to-{target_name}");
    let env = project.environment.clone();
    check_stream_maps(tap, opts.strict)?;

    let mut plugins = vec![tap];
    plugins.extend(mappers.iter().copied());
    plugins.push(target);
    let derivs = realize_plugins(realizer, &plugins, build)?;
    let remote = realizer.remote()?;
    let _lock = PipelineLock::acquire(remote.clone(), &env, &pipeline, opts.wait)?;

    let run_dir = RunDir::new(project)?;
    let mut secrets = project.secret_strings();
    let mut config_paths = Vec::new();
    for (i, p) in plugins.iter().enumerate() {
        let for_tap = (p.kind == crate::config::PluginKind::Target).then_some(tap_name);
        let rendered = project.render_config(&p.name, for_tap)?;
        secrets.extend(rendered.secret_strings());
        config_paths.push(run_dir.write_json(&format!("config-{i}.json"), &rendered.value)?);
    }
    let redactor = Redactor::new(secrets);
    let tap_d = &derivs[0];

    let (mut store, mut state) = StateStore::open(&remote, &env, tap_name, target_name)?;
    if opts.full_refresh {
        tracing::info!("{pipeline}: full refresh, ignoring the saved state");
        state = Map::new();
    }
    let tap_extra = tap_args(realizer, tap, tap_d, &run_dir, &config_paths[0], &state)?;
    let run_log = RunLog::create(project, &env, &pipeline)?;
    let log_path = run_log.path.clone();
    let log = run_log.file.clone();

    // Spawn the chain: tap, mappers, target. Between two plugins the pipe is a
    // direct OS pipe, except after the tap when `~` hash rules need alto there.
    let mut hasher = StreamHasher::new(&tap.select());
    let mut children: Vec<(String, Child, Tail)> = Vec::new();
    let mut pumps = Vec::new();
    let mut middle = None;
    let mut upstream: Option<std::process::ChildStdout> = None;
    let mut target_stdout = None;
    let kill_all = |children: &mut Vec<(String, Child, Tail)>| {
        for (_, c, _) in children.iter_mut() {
            let _ = c.kill();
        }
    };
    for (i, p) in plugins.iter().enumerate() {
        let mut cmd = match realizer.command(p, &derivs[i], false) {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut children);
                return Err(e.into());
            }
        };
        cmd.arg("--config")
            .arg(&config_paths[i])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if i == 0 {
            cmd.args(&tap_extra);
            cmd.stdin(Stdio::null());
        } else if i == 1 && hasher.is_some() {
            cmd.stdin(Stdio::piped());
        } else if let Some(out) = upstream.take() {
            cmd.stdin(Stdio::from(out));
        }
        let mut child = match spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut children);
                return Err(e);
            }
        };
        // The command, and its copy of the upstream pipe, go now: a plugin
        // downstream that dies is then seen as a broken pipe upstream.
        drop(cmd);
        let tail = Arc::new(Mutex::new(Vec::new()));
        if let Some(e) = child.stderr.take() {
            pumps.push(pump_stderr(
                p.name.clone(),
                e,
                log.clone(),
                redactor.clone(),
                true,
                tail.clone(),
            ));
        }
        if i == 1
            && let (Some(mut h), Some(from), Some(to)) =
                (hasher.take(), upstream.take(), child.stdin.take())
        {
            // alto in the pipe: only the affected streams' messages are parsed.
            middle = Some(std::thread::spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, from);
                let mut writer = BufWriter::with_capacity(1 << 16, to);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let body = line.strip_suffix(b"\n").unwrap_or(&line);
                    let written = match h.transform(body) {
                        Some(out) => writer.write_all(&out).and_then(|_| writer.write_all(b"\n")),
                        None => writer.write_all(&line),
                    };
                    if written.is_err() {
                        break;
                    }
                }
                let _ = writer.flush();
            }));
        }
        if i + 1 == plugins.len() {
            target_stdout = child.stdout.take();
        } else {
            upstream = child.stdout.take();
        }
        children.push((p.name.clone(), child, tail));
    }

    // The target's stdout: every JSON object line is state to merge and commit.
    let mut read = Confirmations::default();
    if let Some(out) = target_stdout {
        read = read_confirmations(
            out,
            target_name,
            &redactor,
            &run_log,
            &mut state,
            |state, m| {
                state::merge(state, m);
                true
            },
            |state| store.commit(state),
        );
    }
    // Wait downstream first: the target finishing is what confirms the state.
    let mut statuses = Vec::new();
    for (name, mut child, tail) in children.into_iter().rev() {
        let status = child
            .wait()
            .map_err(io_err("cannot wait for", Path::new(&name)))?;
        statuses.push((name, status, tail));
    }
    statuses.reverse();
    if let Some(m) = middle {
        let _ = m.join();
    }
    for p in pumps {
        let _ = p.join();
    }
    if let Some(e) = read.error {
        return Err(e);
    }
    let mut commits = read.commits;
    if read.dirty {
        store.commit(&state)?;
        commits += 1;
    }
    if commits > 0 {
        store.keep_history(&state)?;
    }
    run_log.upload(&remote, &env);
    // The first plugin that failed, upstream first, is the one to report.
    let failures: Vec<&(String, std::process::ExitStatus, Tail)> =
        statuses.iter().filter(|(_, st, _)| !st.success()).collect();
    if let Some((name, status, tail)) = failures.first() {
        for (other, st, _) in failures.iter().skip(1) {
            tracing::error!("{other} failed too ({st})");
        }
        return Err(plugin_failed(name, status, &log_path, tail));
    }
    let mut name = tap_name.to_string();
    for m in mapper_names {
        name.push(':');
        name.push_str(m);
    }
    Ok(RunSummary {
        pipeline: format!("{name}:{target_name}"),
        state_commits: commits,
        skipped_lines: read.skipped,
        seconds: start.elapsed().as_secs_f64(),
        state: Value::Object(state),
    })
}

/// The original's Python stream map files are not run: a warning, or an
/// error with `--strict`. `~` hash rules in `select` keep working.
pub fn check_stream_maps(tap: &Plugin, strict: bool) -> Result<(), PipelineError> {
    let maps = tap.str_list("stream_maps");
    if maps.is_empty() {
        return Ok(());
    }
    if strict {
        return Err(PipelineError::StreamMaps {
            tap: tap.name.clone(),
            maps: maps.join(", "),
        });
    }
    tracing::warn!(
        "{}: stream_maps ({}) are Python files of the original alto and are not run; use `~` hash rules in select, or a Singer mapper (`mappers`, `alto run TAP:MAPPER:TARGET`)",
        tap.name,
        maps.join(", ")
    );
    Ok(())
}

pub fn spawn(cmd: &mut std::process::Command) -> Result<Child, PipelineError> {
    let program = PathBuf::from(cmd.get_program());
    cmd.spawn()
        .map_err(|source| PipelineError::Realize(RealizeError::Spawn { program, source }))
}
