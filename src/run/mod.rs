//! One run's lifecycle, for every kind of run (a pipeline, a reservoir
//! ingest or replay, `alto test`, `alto about`): the pipeline lock, the
//! realized plugins, a private run directory with their rendered configs,
//! redaction, the log, launching plugins in process groups of their own,
//! reading the target's confirmations, and teardown — on success, on a
//! failure, on a signal (SIGINT, SIGTERM, SIGHUP) and when the lock is lost.
//! What flows in the pipe belongs to `pipeline` and `reservoir`.

pub mod confirm;
pub mod dir;
pub mod lock;
pub mod log;
pub mod provenance;
pub mod state_store;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use miette::Diagnostic;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::config::{ConfigError, Plugin, Project};
use crate::eval::PluginDerivation;
use crate::interrupt::{self, Process};
use crate::realize::{self, Options, RealizeError, Realizer};
use crate::store::{Remote, StoreError};

pub use confirm::{Confirmations, commit_interval, read_confirmations};
pub use dir::RunDir;
pub use lock::PipelineLock;
pub use log::{PendingLog, Redactor, RunEnd, RunLog, Tail, printable, pump_stderr, skipped_line};
pub use state_store::{HistoryCopy, StateStore};

#[derive(Debug, Error, Diagnostic)]
pub enum RunError {
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

    #[error("`{plugin}` has no pip_url, so there is nothing to run")]
    #[diagnostic(
        code(alto::run::no_pip_url),
        help("give it a pip_url (or `inherit_from` a plugin that has one)")
    )]
    NoPipUrl { plugin: String },

    #[error("{path} changed while this run held it; not overwriting another writer's state")]
    #[diagnostic(
        code(alto::state::conflict),
        help("another process wrote the state; check `alto state show` and run again")
    )]
    StateConflict { path: String },

    #[error("{pipeline} has no state copy `{stamp}`")]
    #[diagnostic(
        code(alto::state::no_such_copy),
        help("its copies: {known}; `alto state history` lists them")
    )]
    NoSuchCopy {
        pipeline: String,
        stamp: String,
        known: String,
    },

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

    #[error(
        "{plugin} failed ({status}); alto committed nothing: the state on stdout is its reader's"
    )]
    #[diagnostic(code(alto::extract::tap_failed), help("last lines of its log ({}):\n{tail}", log.display()))]
    ExtractFailed {
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

    #[error("the select rules of {tap} ({rules}) select no stream, so there is nothing to run")]
    #[diagnostic(
        code(alto::pipeline::nothing_selected),
        help(
            "the catalog's streams: {streams}; `alto select {tap} --list` shows what each rule matches"
        )
    )]
    NothingSelected {
        tap: String,
        rules: String,
        streams: String,
    },

    #[error("{what} interrupted ({}); the state confirmed so far is kept", interrupt::signal_name(*signal))]
    #[diagnostic(code(alto::interrupted))]
    Interrupted { what: String, signal: i32 },

    #[error("{what} stopped: it ran longer than its --timeout; the state confirmed so far is kept")]
    #[diagnostic(
        code(alto::pipeline::timeout),
        help(
            "the plugins were stopped as an interrupt stops them; the next run resumes from the committed state"
        )
    )]
    TimedOut { what: String },

    #[error("{what} stopped: its pipeline lock could not be renewed in time")]
    #[diagnostic(
        code(alto::pipeline::lock_lost),
        help(
            "the remote did not answer (see the warnings above); the plugins were stopped before the lock {path} could expire and another machine take it over. Confirmed state was committed only if the remote was unchanged"
        )
    )]
    LockLost { what: String, path: String },

    #[error("{plugin} sent a line longer than {limit} bytes; the run is stopped")]
    #[diagnostic(
        code(alto::pipeline::line_too_long),
        help(
            "state confirmed before it is kept. If the plugin really sends such records, raise ALTO_MAX_LINE_BYTES"
        )
    )]
    LineTooLong { plugin: String, limit: usize },

    #[error("cannot {action} {}", path.display())]
    #[diagnostic(code(alto::pipeline::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// 2 when the input (config, names, a state file) is at fault, 1 for a
    /// failure while working, 128 + the signal when interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(e) => e.exit_code(),
            RunError::BadState { .. }
            | RunError::NoSuchCopy { .. }
            | RunError::StreamMaps { .. }
            | RunError::NothingSelected { .. }
            | RunError::NoPipUrl { .. } => 2,
            RunError::Realize(r) => r.exit_code(),
            RunError::Interrupted { signal, .. } => interrupt::exit_code(*signal),
            _ => 1,
        }
    }
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> RunError + use<> {
    let path = path.to_path_buf();
    move |source| RunError::Io {
        action,
        path,
        source,
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub full_refresh: bool,
    pub wait: bool,
    /// Run without committing state (`--no-state-update`): a dry load.
    pub no_state_update: bool,
    /// Refuse what alto cannot honour (the original's Python stream maps).
    pub strict: bool,
    /// Replay partitions ingested without a hash rule the config now has.
    pub allow_unhashed: bool,
    /// Replay what the target loaded under another derivation of it.
    pub replay_changed: bool,
}

/// Realizes plugins, returning each one's derivation.
pub fn realize_plugins(
    realizer: &Realizer,
    plugins: &[&Plugin],
    opts: &Options,
) -> Result<Vec<PluginDerivation>, RunError> {
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    let derivs = realizer.derivations(&names)?;
    let mut touched_remote = false;
    for o in realizer.realize(&derivs, opts) {
        if let Some(e) = o.error {
            return Err(e.into());
        }
        touched_remote |= o.status != crate::realize::Status::Local;
    }
    // Plugins all present here: the remote is not asked anything.
    realizer.register_roots(
        &derivs.iter().map(|d| d.key.clone()).collect::<Vec<_>>(),
        false,
        touched_remote,
    );
    let mut out = Vec::new();
    for p in plugins {
        let d = derivs
            .iter()
            .find(|d| d.plugins.contains(&p.name))
            .cloned()
            .ok_or_else(|| RunError::NoPipUrl {
                plugin: p.name.clone(),
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
) -> Result<Value, RunError> {
    let base = realize::catalog::base_catalog(realizer, tap, d, config_path)?;
    apply_rules(&base, tap)
}

pub fn apply_rules(base: &Value, tap: &Plugin) -> Result<Value, RunError> {
    use crate::singer::catalog::{Rules, Strategy, apply};
    let rules = Rules {
        select: tap.select(),
        metadata: tap.metadata(),
        strategy: Strategy::Prune,
    };
    let applied = apply(base, &rules).map_err(|e| RunError::Catalog {
        tap: tap.name.clone(),
        message: e.to_string(),
    })?;
    for w in applied.warnings {
        tracing::warn!("{}: {w}", tap.name);
    }
    Ok(applied.catalog)
}

/// A runtime catalog must select something: a run that extracts nothing
/// would end "done" having done nothing.
fn check_selected(tap: &Plugin, base: &Value, runtime: &Value) -> Result<(), RunError> {
    let streams = |v: &Value| -> Vec<String> {
        v.get("streams")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        s.get("tap_stream_id")
                            .or_else(|| s.get("stream"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if !streams(runtime).is_empty() {
        return Ok(());
    }
    let all = streams(base);
    let select = tap.select();
    Err(RunError::NothingSelected {
        tap: tap.name.clone(),
        rules: if select.is_empty() {
            "none".into()
        } else {
            select.join(", ")
        },
        streams: if all.is_empty() {
            "none (the tap's discovery found no stream)".into()
        } else {
            all.join(", ")
        },
    })
}

/// The arguments a tap runs with besides `--config`: its catalog (as
/// `--catalog` or `--properties`, by its capabilities) and its state; and
/// the catalog as a pipeline derivation's input.
pub fn tap_args(
    realizer: &Realizer,
    tap: &Plugin,
    d: &PluginDerivation,
    run_dir: &RunDir,
    config_path: &Path,
    state: &Map<String, Value>,
) -> Result<(Vec<std::ffi::OsString>, crate::eval::CatalogInput), RunError> {
    let caps = realize::about::capabilities(realizer, tap, d)?;
    let catalog_flag = if caps.iter().any(|c| c == "catalog") {
        Some("--catalog")
    } else if caps.iter().any(|c| c == "properties") {
        Some("--properties")
    } else {
        None
    };
    let mut args = Vec::new();
    let mut catalog = crate::eval::CatalogInput::None;
    if let Some(flag) = catalog_flag {
        let base = realize::catalog::base_catalog(realizer, tap, d, config_path)?;
        let runtime = apply_rules(&base, tap)?;
        check_selected(tap, &base, &runtime)?;
        catalog = provenance::catalog_input(Some(&runtime));
        let path = run_dir.write_json("catalog.json", &runtime)?;
        args.push(flag.into());
        args.push(path.into_os_string());
    }
    if caps.iter().any(|c| c == "state") && !state.is_empty() {
        let path = run_dir.write_json("state.json", &Value::Object(state.clone()))?;
        args.push("--state".into());
        args.push(path.into_os_string());
    }
    Ok((args, catalog))
}

/// The original's Python stream map files are not run: a warning, or an
/// error with `--strict`. `~` hash rules in `select` keep working.
pub fn check_stream_maps(tap: &Plugin, strict: bool) -> Result<(), RunError> {
    let maps = tap.str_list("stream_maps");
    if maps.is_empty() {
        return Ok(());
    }
    if strict {
        return Err(RunError::StreamMaps {
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
) -> RunError {
    use std::os::unix::process::ExitStatusExt;
    RunError::PluginFailed {
        plugin: name.to_string(),
        status: match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "killed by a signal".into(),
        },
        log: log.to_path_buf(),
        tail: tail
            .lock()
            .map(|t| t[t.len().saturating_sub(10)..].join("\n"))
            .unwrap_or_default(),
    }
}

/// Spawns a plugin or tool in a process group of its own (see [`interrupt`]).
pub fn spawn(cmd: &mut Command) -> Result<Process, RunError> {
    let program = PathBuf::from(cmd.get_program());
    Process::spawn(cmd).map_err(|source| RunError::Realize(RealizeError::Spawn { program, source }))
}

/// A plugin's part in a run: the plugin, and for a target the tap whose
/// data it loads (its config is rendered for that tap).
#[derive(Clone, Copy)]
pub struct Role<'a> {
    pub plugin: &'a Plugin,
    pub for_tap: Option<&'a str>,
}

/// One run: holds the pipeline lock for its whole life, and while alive,
/// signals stop it cleanly instead of ending alto.
pub struct Session<'r, 'p> {
    pub realizer: &'r Realizer<'p>,
    pub project: &'p Project,
    pub env: String,
    /// The run's name: `<tap>-to-<target>`, the lock's and the log's.
    pub name: String,
    pub remote: Arc<Remote>,
    pub start: Instant,
    lock: PipelineLock,
    /// Whether this run commits state at all (not with `--no-state-update`).
    commits_state: bool,
    _aware: interrupt::Aware,
}

/// What a run needs to launch its plugins: their derivations, their
/// rendered configs in a private directory, the redactor and the log.
pub struct Prepared<'a> {
    pub roles: Vec<Role<'a>>,
    pub derivs: Vec<PluginDerivation>,
    pub dir: RunDir,
    pub configs: Vec<PathBuf>,
    pub redactor: Redactor,
    pub log: Arc<RunLog>,
}

/// A plugin started with `--config` and more arguments, its stderr pumped to
/// the console and the run's log.
pub struct Launched {
    pub process: Process,
    pub tail: Tail,
    /// Records per stream from the plugin's `METRIC` lines on stderr.
    pub counts: crate::singer::metric::RecordCounts,
    pub pump: Option<std::thread::JoinHandle<()>>,
}

impl<'r, 'p> Session<'r, 'p> {
    /// Starts a run named `name`: takes its lock (or waits for it).
    pub fn open(
        realizer: &'r Realizer<'p>,
        name: &str,
        opts: &RunOptions,
    ) -> Result<Session<'r, 'p>, RunError> {
        let aware = interrupt::Aware::new();
        let project = realizer.project;
        let env = project.environment.clone();
        let remote = realizer.remote()?;
        let lock = PipelineLock::acquire(remote.clone(), &env, name, opts.wait)?;
        Ok(Session {
            realizer,
            project,
            env,
            name: name.to_string(),
            remote,
            start: Instant::now(),
            lock,
            commits_state: !opts.no_state_update,
            _aware: aware,
        })
    }

    /// Realizes the plugins, renders their configs into a private run
    /// directory, and opens the run's log.
    pub fn prepare<'a>(
        &self,
        roles: &[Role<'a>],
        build: &Options,
    ) -> Result<Prepared<'a>, RunError> {
        let plugins: Vec<&Plugin> = roles.iter().map(|r| r.plugin).collect();
        let derivs = realize_plugins(self.realizer, &plugins, build)?;
        self.check()?;
        let dir = RunDir::new(self.project)?;
        let mut secrets = self.project.secret_strings();
        let mut configs = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            let rendered = self.project.render_config(&r.plugin.name, r.for_tap)?;
            secrets.extend(rendered.secret_strings());
            configs.push(dir.write_json(&format!("config-{i}.json"), &rendered.value)?);
        }
        let log = Arc::new(RunLog::create(self.project, &self.env, &self.name)?);
        Ok(Prepared {
            roles: roles.to_vec(),
            derivs,
            dir,
            configs,
            redactor: Redactor::new(secrets),
            log,
        })
    }

    /// The error to end with if the run is being stopped (a signal, or the
    /// lock lost); `Ok` otherwise.
    pub fn check(&self) -> Result<(), RunError> {
        match self.stopped() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Why the run is being stopped, as the error to end with.
    pub fn stopped(&self) -> Option<RunError> {
        if let Some(signal) = interrupt::signal() {
            return Some(RunError::Interrupted {
                what: self.name.clone(),
                signal,
            });
        }
        if interrupt::stopping() == Some(interrupt::Stop::Timeout) {
            return Some(RunError::TimedOut {
                what: self.name.clone(),
            });
        }
        if self.lock.lost() {
            return Some(RunError::LockLost {
                what: self.name.clone(),
                path: self.lock.describe(),
            });
        }
        None
    }

    /// Whether state may still be committed: not once the lock is lost
    /// (another machine may hold it by now), and never with `--no-state-update`.
    pub fn licensed(&self) -> bool {
        self.commits_state && !self.lock.lost()
    }

    /// Launches plugin `i` of `prepared` with `--config`, `args` and `stdin`;
    /// stdout piped, stderr pumped to the console and the log.
    pub fn launch(
        &self,
        prepared: &Prepared,
        i: usize,
        args: &[std::ffi::OsString],
        stdin: Stdio,
    ) -> Result<Launched, RunError> {
        self.launch_to(prepared, i, args, stdin, Stdio::piped())
    }

    /// [`Self::launch`] with its stdout going to `stdout`.
    pub fn launch_to(
        &self,
        prepared: &Prepared,
        i: usize,
        args: &[std::ffi::OsString],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Launched, RunError> {
        self.check()?;
        let plugin = prepared.roles[i].plugin;
        let mut cmd = self.realizer.command(plugin, &prepared.derivs[i], false)?;
        cmd.arg("--config")
            .arg(&prepared.configs[i])
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut process = spawn(&mut cmd)?;
        // The command, and its copy of an upstream pipe, go now: a plugin
        // downstream that dies is then seen as a broken pipe upstream.
        drop(cmd);
        self.lock.guard_group(process.pgid());
        let tail: Tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        let counts = crate::singer::metric::RecordCounts::default();
        let pump = process.child().stderr.take().map(|e| {
            pump_stderr(
                plugin.name.clone(),
                e,
                prepared.log.file.clone(),
                prepared.redactor.clone(),
                true,
                tail.clone(),
                counts.clone(),
            )
        });
        Ok(Launched {
            process,
            tail,
            counts,
            pump,
        })
    }

    /// The error a run ends with when plugins failed: the stop that caused
    /// it if the run was stopped, else the first plugin that failed
    /// (upstream first), the others logged.
    pub fn failure(
        &self,
        statuses: &[(String, std::process::ExitStatus, Tail)],
        log: &Path,
    ) -> Option<RunError> {
        if let Some(e) = self.stopped() {
            return Some(e);
        }
        let failures: Vec<_> = statuses.iter().filter(|(_, s, _)| !s.success()).collect();
        let (name, status, tail) = failures.first()?;
        for (other, st, _) in failures.iter().skip(1) {
            tracing::error!("{other} failed too ({st})");
        }
        Some(plugin_failed(name, status, log, tail))
    }
}
