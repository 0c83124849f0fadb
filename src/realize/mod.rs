//! Realization: making each derivation's output exist in the local store, by
//! finding it there, substituting it from the remote (verifying its hash), or
//! building it (uv installs, pex packs) and publishing it; then preparing
//! its venv so its first run starts as fast as any; in parallel, with progress.

pub mod about;
pub mod catalog;
mod index;
pub mod pack;
pub mod pex;
pub mod python;
pub mod tools;
pub mod uv;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use miette::Diagnostic;
use serde::Serialize;
use thiserror::Error;

use crate::config::{ConfigError, Plugin, Project};
use crate::eval::{self, Entry, EvalError, Key, PluginDerivation, Resolve};
use crate::store::local::StoreLock;
use crate::store::local::hash_file;
use crate::store::roots::TempRoots;
use crate::store::{
    self, BuilderInfo, LocalStatus, LocalStore, ObjectMeta, Remote, RemoteObject, RemoteSettings,
    StoreError,
};

pub use pex::PexTool;
pub use python::PythonInfo;

#[derive(Debug, Error, Diagnostic)]
pub enum RealizeError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Eval(#[from] EvalError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error("no Python interpreter `{name}` found")]
    #[diagnostic(
        code(alto::realize::no_python),
        help(
            "install Python 3, or set `python: /path/to/python3` in the config (project-wide or per plugin)"
        )
    )]
    PythonNotFound { name: String },

    #[error("probing the Python interpreter {} failed: {message}", python.display())]
    #[diagnostic(code(alto::realize::python_probe))]
    PythonProbe { python: PathBuf, message: String },

    #[error("cannot provision {tool}: {message}")]
    #[diagnostic(code(alto::realize::tool), help("{}", log.as_deref().unwrap_or("alto installs pex and uv with the interpreter's pip from the package registry; or set `pex: /path/to/pex`")))]
    ToolProvision {
        tool: String,
        message: String,
        log: Option<String>,
    },

    #[error("building {plugins} failed ({step} exited with {status}); the full log is {}", log.display())]
    #[diagnostic(code(alto::realize::build_failed), help("{reason}"))]
    BuildFailed {
        plugins: String,
        /// The command that failed (`uv pip install`, `pex`).
        step: String,
        status: String,
        log: PathBuf,
        /// What the resolver said went wrong, or the last lines of the log.
        reason: String,
    },

    #[error("preparing the venv of {plugins} failed")]
    #[diagnostic(code(alto::realize::prepare_failed), help("its last lines:\n{reason}"))]
    PrepareFailed { plugins: String, reason: String },

    #[error(
        "the PEX built for {plugins} holds a secret of its pip_url (in {entry}), so alto keeps nothing of it"
    )]
    #[diagnostic(
        code(alto::realize::secret_in_output),
        help(
            "pex records direct references (`name @ https://user:token@host/...`, `git+https://token@host/...`) in the PEX, which is shared through the remote store; give credentials in an index URL instead (`--index-url https://user:{{env[TOKEN]}}@host/simple name==1.0`), which pex uses without recording it"
        )
    )]
    SecretInOutput { plugins: String, entry: String },

    #[error(
        "cannot check the PEX built for {plugins} for secrets, so alto keeps nothing of it: {message}"
    )]
    #[diagnostic(code(alto::realize::secret_check))]
    SecretCheck { plugins: String, message: String },

    #[error("the local copy of {plugins} ({key}) is damaged: {reason}")]
    #[diagnostic(code(alto::realize::damaged), help("`alto build` replaces it"))]
    Damaged {
        plugins: String,
        key: Key,
        reason: String,
    },

    #[error("{object} in {remote} has no valid signature from a trusted key; it is not used")]
    #[diagnostic(
        code(alto::realize::untrusted),
        help(
            "sign the cache with `signing_key` where it is built, add that key to `trusted_public_keys`, or set `untrusted_substitutes: build` to build such plugins here"
        )
    )]
    Untrusted { object: String, remote: String },

    #[error("signing key setting `{setting}`: {message}")]
    #[diagnostic(
        code(alto::realize::signing_key),
        help("`alto store keygen --name NAME` writes a key file; keys are written `<name>:<hex>`")
    )]
    SigningKey { setting: String, message: String },

    #[error("discovering the streams of {tap} failed: {message}")]
    #[diagnostic(
        code(alto::realize::discovery),
        help("last lines of its stderr:\n{tail}")
    )]
    Discovery {
        tap: String,
        message: String,
        tail: String,
    },

    #[error("{plugin} has no `capabilities`, and its `--about` does not say them: {reason}")]
    #[diagnostic(
        code(alto::realize::no_capabilities),
        help(
            "set `capabilities` in {section}.{plugin} (any of catalog, properties, state, discover, about, test); alto asks `--about --format json` only when it is absent"
        )
    )]
    NoCapabilities {
        plugin: String,
        section: String,
        reason: String,
    },

    #[error("cannot run {}", program.display())]
    #[diagnostic(code(alto::realize::spawn))]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} interrupted ({})", crate::interrupt::signal_name(*signal))]
    #[diagnostic(code(alto::interrupted))]
    Interrupted { what: String, signal: i32 },
}

impl RealizeError {
    /// [`RealizeError::Interrupted`] if a signal asked alto to stop, naming
    /// what it was doing; else nothing.
    pub(crate) fn if_signalled(what: impl FnOnce() -> String) -> Result<(), RealizeError> {
        match crate::interrupt::signal() {
            Some(signal) => Err(RealizeError::Interrupted {
                what: what(),
                signal,
            }),
            None => Ok(()),
        }
    }

    /// 2 when the input (config, a missing interpreter or local source) is
    /// at fault, 1 for a failure while working, 128 + the signal when
    /// interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            RealizeError::Config(e) => e.exit_code(),
            RealizeError::PythonNotFound { .. } => 2,
            RealizeError::SigningKey { .. }
            | RealizeError::SecretInOutput { .. }
            | RealizeError::NoCapabilities { .. } => 2,
            RealizeError::Eval(e) => e.exit_code(),
            RealizeError::Interrupted { signal, .. } => crate::interrupt::exit_code(*signal),
            RealizeError::Spawn { source, .. }
                if source.kind() == std::io::ErrorKind::Interrupted =>
            {
                crate::interrupt::signal()
                    .map(crate::interrupt::exit_code)
                    .unwrap_or(1)
            }
            _ => 1,
        }
    }
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Why a build failed, from its log: the resolver's own error (uv's
/// `error:` or `× ...` and the lines explaining it, pip's `ERROR:` lines),
/// else the log's last lines.
pub fn failure_reason(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let is_error = |l: &&str| {
        let t = l.trim_start();
        t.starts_with("error:") || t.starts_with('×') || t.contains("ERROR:")
    };
    match lines.iter().position(is_error) {
        Some(i) => {
            let pip: Vec<&str> = lines[i..]
                .iter()
                .filter(|l| l.contains("ERROR:"))
                .copied()
                .collect();
            // pip's errors are one line each, among pex's debug output.
            let picked = if lines[i].contains("ERROR:") {
                pip
            } else {
                lines[i..].to_vec()
            };
            let picked = &picked[..picked.len().min(12)];
            format!("the resolver said:\n{}", picked.join("\n"))
        }
        None => format!("last lines of the log:\n{}", tail(log, 15)),
    }
}

/// Where a derivation's output is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Local,
    Remote,
    Build,
    /// Not in the local store; the remote was not (or could not be) checked.
    Unknown,
}

/// How a derivation was realized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Local,
    Substituted,
    Built,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub key: Key,
    pub plugins: Vec<String>,
    pub status: Status,
    /// Whether alto uploaded it to the remote during this realization.
    pub pushed: bool,
    pub seconds: f64,
    #[serde(skip)]
    pub error: Option<RealizeError>,
    #[serde(rename = "error")]
    pub message: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub jobs: usize,
    pub repair: bool,
    pub progress: bool,
    /// Upload what is built to the remote; `false` for `alto build --no-push`.
    pub push: bool,
    /// Also upload what is only local (`alto build`; a run uploads only
    /// what it builds, so a plugin present here costs it no remote call).
    pub publish_local: bool,
}

/// What a realization knows of the remote.
pub enum RemoteUse {
    /// Not used (`--offline`, or unreachable with `--no-push`).
    Off,
    /// A plugin missing here is looked up by key (one metadata read) when
    /// needed; an unreachable remote is a warning.
    Lazy,
    /// Looked up already, one metadata read per derivation.
    Known(HashMap<Key, Option<RemoteObject>>),
}

/// Builds to run at once by default: one a core (uv's cache is shared safely).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: default_jobs(),
            repair: false,
            progress: false,
            push: true,
            publish_local: false,
        }
    }
}

/// The project's `trusted_public_keys`: store objects from elsewhere (the
/// remote, an imported archive) must be signed by one of them; none means
/// signatures are not required.
pub fn trusted_keys(project: &Project) -> Result<Vec<store::signing::PublicKey>, RealizeError> {
    parse_trusted(&project.build_settings()?.trusted_public_keys)
}

fn parse_trusted(keys: &[String]) -> Result<Vec<store::signing::PublicKey>, RealizeError> {
    keys.iter()
        .map(|k| {
            store::signing::PublicKey::parse(k).map_err(|e| RealizeError::SigningKey {
                setting: "trusted_public_keys".into(),
                message: e.0,
            })
        })
        .collect()
}

/// The project's remote store settings, as the store takes them.
pub fn remote_settings(project: &Project) -> Result<RemoteSettings, ConfigError> {
    let r = project.remote_settings()?;
    Ok(RemoteSettings {
        filesystem: r.filesystem,
        bucket: r.bucket,
        bucket_path: r.bucket_path,
        options: r.options,
    })
}

/// A plugin just built: its record, and the venv uv installed it into
/// (kept to run from) when uv did.
struct Built {
    meta: ObjectMeta,
    venv: Option<KeptVenv>,
}

/// uv's venv, kept to be the one the plugin runs from, and the
/// byte-compiling of it ([`COMPILE_VENV`]) started while pex packed it:
/// [`Realizer::ready`] waits for that, so the upload goes on beside it.
struct KeptVenv {
    path: PathBuf,
    compiling: crate::interrupt::Process,
    started: std::time::Instant,
}

impl KeptVenv {
    /// Stops the compiling, then removes the venv.
    fn discard(self) {
        drop(self.compiling);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Calls a `module:function` entry point (`-c`, then the module and the
/// function, then the plugin's arguments), as pex's `PEX_MODULE` does.
const CALL_ENTRY: &str = "import importlib, sys; module, function = sys.argv[1:3]; del sys.argv[1:3]; sys.argv[0] = module; sys.exit(getattr(importlib.import_module(module), function)())";

/// How [`COMPILE_VENV`] says which venv it ran in (its last line).
const VENV_SAID: &str = "alto-venv:";

/// Makes derivations' outputs exist, for one project.
pub struct Realizer<'p> {
    pub project: &'p Project,
    pub cache_dir: PathBuf,
    pub local: LocalStore,
    remote: Mutex<Option<Arc<Remote>>>,
    pex: PexTool,
    pythons: Mutex<HashMap<PathBuf, PythonInfo>>,
    /// Held while pex (and its pip) is provisioned.
    provision_pex: Mutex<()>,
    /// Held while uv is provisioned: a lock of its own, so that one build
    /// provisioning pex does not hold back another build's uv install.
    provision_uv: Mutex<()>,
    /// Interpreters the provisioned pex was byte-compiled for.
    pex_compiled: Mutex<HashSet<PathBuf>>,
    signing: Option<store::signing::SecretKey>,
    trusted: Vec<store::signing::PublicKey>,
    /// `untrusted_substitutes: build`: build what the remote cannot prove.
    build_untrusted: bool,
    /// This process's temporary gc roots, created on first use.
    temp_roots: Mutex<Option<TempRoots>>,
    /// Set once a lazy remote lookup failed: the remote is not used again.
    remote_down: std::sync::atomic::AtomicBool,
}

/// Run inside a plugin's venv (`PEX_INTERPRETER=1`), as its first run
/// would: imports what the plugin's entry points import, which has Python
/// write the byte code of every module the plugin starts with, and nothing
/// else (for meltanolabs-tap-postgres 591 of its 1 861 modules, 2 s of CPU
/// against 7.7 s for all of them; its first run imported them in 4.0 s, a
/// later one in 1.8 s). Each argument is `script:NAME` (a console script,
/// looked up in the venv's entry points) or `module:NAME`. With no
/// argument, `all`, or a script it cannot find, it byte-compiles all of
/// site-packages in parallel instead, walking the files itself: a pex
/// venv links its packages in from pex's root, and `compileall` does not
/// follow links. An import that fails is left for the run to report; the
/// process ends without waiting for threads an import started. Its last
/// line names the venv ([`VENV_SAID`]).
const COMPILE_VENV: &str = r#"
import configparser, functools, glob, importlib, os, py_compile, site, sys
sys.dont_write_bytecode = False
wanted = sys.argv[1:]
def entry_modules():
    scripts = set(w[7:] for w in wanted if w.startswith("script:"))
    modules = [w[7:] for w in wanted if w.startswith("module:")]
    if not wanted or "all" in wanted:
        return None
    found = set()
    for sp in site.getsitepackages():
        for path in glob.glob(os.path.join(sp, "*.dist-info", "entry_points.txt")):
            points = configparser.RawConfigParser(delimiters=("=",))
            points.optionxform = str
            try:
                points.read(path, encoding="utf-8")
            except Exception:
                continue
            if not points.has_section("console_scripts"):
                continue
            for name, value in points.items("console_scripts"):
                if name in scripts:
                    found.add(name)
                    modules.append(value.split("[")[0].split(":")[0].strip())
    return modules if found == scripts else None
def compile_all():
    paths = []
    for sp in site.getsitepackages():
        for root, dirs, names in os.walk(sp, followlinks=True):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            paths.extend(os.path.join(root, n) for n in names if n.endswith(".py"))
    byte_compile = functools.partial(py_compile.compile, doraise=False)
    try:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor() as ex:
            list(ex.map(byte_compile, paths, chunksize=64))
    except Exception:
        # No process pool here (no /dev/shm, say): one file after another; a
        # file that cannot be written is left to be compiled when imported.
        for p in paths:
            try:
                byte_compile(p)
            except Exception:
                pass
modules = entry_modules()
if modules is None:
    compile_all()
else:
    for m in modules:
        try:
            importlib.import_module(m)
        except BaseException:
            pass
sys.stdout.write("\nalto-venv:" + sys.prefix + "\n")
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"#;

impl<'p> Realizer<'p> {
    pub fn new(project: &'p Project) -> Result<Realizer<'p>, RealizeError> {
        let cache_dir = store::cache_dir();
        let local = LocalStore::open(&cache_dir)?;
        let settings = project.build_settings()?;
        let pex = pex::planned_tool(&cache_dir, settings.pex.as_deref())?;
        let key_error = |setting: &str, message: String| RealizeError::SigningKey {
            setting: setting.into(),
            message,
        };
        let signing = match settings.signing_key.clone() {
            None => None,
            Some(v) => {
                // The key itself (`name:hex`, e.g. from {env[...]}), or a file holding it.
                let text = if v.contains(':') && !std::path::Path::new(&v).exists() {
                    v
                } else {
                    let path = project.root.join(&v);
                    std::fs::read_to_string(&path).map_err(|e| {
                        key_error(
                            "signing_key",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                };
                Some(
                    store::signing::SecretKey::parse(&text)
                        .map_err(|e| key_error("signing_key", e.0))?,
                )
            }
        };
        let trusted = parse_trusted(&settings.trusted_public_keys)?;
        let build_untrusted = settings.build_untrusted;
        Ok(Realizer {
            signing,
            trusted,
            build_untrusted,
            project,
            cache_dir,
            local,
            remote: Mutex::new(None),
            pex,
            pythons: Mutex::new(HashMap::new()),
            provision_pex: Mutex::new(()),
            provision_uv: Mutex::new(()),
            pex_compiled: Mutex::new(HashSet::new()),
            temp_roots: Mutex::new(None),
            remote_down: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Takes the store lock shared and registers `keys` as temporary roots
    /// of this process (kept until it exits), before any of them is looked
    /// up or used: gc, which takes the lock exclusively, then either ran
    /// before or sees them.
    pub fn hold(&self, keys: &[Key]) -> Result<StoreLock, RealizeError> {
        let lock = self.local.lock(false)?;
        let mut roots = self.temp_roots.lock().unwrap_or_else(|e| e.into_inner());
        if roots.is_none() {
            *roots = Some(TempRoots::create(&self.cache_dir)?);
        }
        if let Some(r) = roots.as_mut() {
            r.add(keys)?;
        }
        Ok(lock)
    }

    /// The remote record of each derivation: one metadata read per key,
    /// never a listing.
    pub fn lookup(
        &self,
        derivs: &[PluginDerivation],
    ) -> Result<HashMap<Key, Option<RemoteObject>>, RealizeError> {
        let remote = self.remote()?;
        let mut out = HashMap::new();
        for d in derivs {
            if !out.contains_key(&d.key) {
                out.insert(d.key.clone(), remote.object(&d.key)?);
            }
        }
        Ok(out)
    }

    /// The remote store, opened on first use.
    pub fn remote(&self) -> Result<Arc<Remote>, RealizeError> {
        let mut guard = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = guard.as_ref() {
            return Ok(r.clone());
        }
        let r = Arc::new(Remote::open(
            &remote_settings(self.project)?,
            &self.project.root,
            &self.project.name,
        )?);
        *guard = Some(r.clone());
        Ok(r)
    }

    /// The interpreter a plugin uses: its `python`, else the project's, else `python3`.
    pub fn python_for(&self, plugin: Option<&Plugin>) -> Result<PythonInfo, RealizeError> {
        let setting = self.project.python_setting(plugin)?;
        let path = python::find(setting.as_deref())?;
        if let Some(info) = self
            .pythons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path)
        {
            return Ok(info.clone());
        }
        let info = python::probe(&path, &self.cache_dir)?;
        self.pythons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, info.clone());
        Ok(info)
    }

    /// The plugin derivations for the named plugins (all when none).
    pub fn derivations(&self, names: &[String]) -> Result<Vec<PluginDerivation>, RealizeError> {
        let builders = self.pex.builders();
        let mut platform_of = |p: &Plugin| -> Result<(eval::Platform, PathBuf), RealizeError> {
            let info = self.python_for(Some(p))?;
            Ok((info.platform(), info.executable.clone()))
        };
        eval::plugin_derivations(self.project, names, &mut platform_of, &builders)
    }

    /// Where each derivation's output is, without changing anything.
    pub fn availability(
        &self,
        derivs: &[PluginDerivation],
        offline: bool,
    ) -> Result<Vec<Availability>, RealizeError> {
        // `None`: not listed yet; `Some(None)`: the remote could not be read.
        let mut remote_keys: Option<Option<HashSet<Key>>> = offline.then_some(None);
        let mut out = Vec::new();
        for d in derivs {
            if matches!(self.local.status(&d.key, false)?, LocalStatus::Valid(_)) {
                out.push(Availability::Local);
                continue;
            }
            let keys = remote_keys.get_or_insert_with(|| match self.remote().and_then(|r| Ok(r.meta_keys()?)) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!("the remote store cannot be read ({e}); where outputs are is partly unknown");
                    None
                }
            });
            out.push(match keys {
                None => Availability::Unknown,
                Some(k) if k.contains(&d.key) => Availability::Remote,
                Some(_) => Availability::Build,
            });
        }
        Ok(out)
    }

    /// Realizes every derivation, `opts.jobs` at a time, looking up in the
    /// remote only what is missing here; an unreachable remote is a warning
    /// (the local store and builds still serve).
    pub fn realize(&self, derivs: &[PluginDerivation], opts: &Options) -> Vec<Outcome> {
        self.realize_with(derivs, opts, RemoteUse::Lazy)
    }

    /// Realizes every derivation. Holds the store lock shared throughout,
    /// with every key registered as a temporary root first; each object's
    /// commit point is its local metadata record (`LocalStore::commit`).
    pub fn realize_with(
        &self,
        derivs: &[PluginDerivation],
        opts: &Options,
        remote: RemoteUse,
    ) -> Vec<Outcome> {
        let keys: Vec<Key> = derivs.iter().map(|d| d.key.clone()).collect();
        let _held = match self.hold(&keys) {
            Ok(l) => l,
            Err(e) => {
                let message = e.to_string();
                let mut error = Some(e);
                return derivs
                    .iter()
                    .map(|d| Outcome {
                        key: d.key.clone(),
                        plugins: d.plugins.clone(),
                        status: Status::Failed,
                        pushed: false,
                        seconds: 0.0,
                        error: error.take(),
                        message: Some(message.clone()),
                    })
                    .collect();
            }
        };
        let remote_keys = &remote;
        let progress = Progress::new(opts.progress);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Outcome>>> =
            Mutex::new((0..derivs.len()).map(|_| None).collect());
        let workers = opts.jobs.max(1).min(derivs.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(d) = derivs.get(i) else { break };
                        let start = Instant::now();
                        let bar = progress.start(&d.plugins.join(", "));
                        let mut pushed = false;
                        let result = self.realize_one(d, remote_keys, opts, &bar, &mut pushed);
                        let seconds = start.elapsed().as_secs_f64();
                        let outcome = match result {
                            Ok(status) => {
                                bar.finish(&format!(
                                    "{} ({seconds:.1}s)",
                                    describe(status, pushed)
                                ));
                                Outcome {
                                    key: d.key.clone(),
                                    plugins: d.plugins.clone(),
                                    status,
                                    pushed,
                                    seconds,
                                    error: None,
                                    message: None,
                                }
                            }
                            Err(e) => {
                                bar.finish("failed");
                                Outcome {
                                    key: d.key.clone(),
                                    plugins: d.plugins.clone(),
                                    status: Status::Failed,
                                    pushed,
                                    seconds,
                                    message: Some(e.to_string()),
                                    error: Some(e),
                                }
                            }
                        };
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect()
    }

    /// The remote record of `d`, as `remote` knows it or by one lookup
    /// (`Err(())`: the remote is not used).
    fn remote_object(
        &self,
        d: &PluginDerivation,
        remote: &RemoteUse,
    ) -> Result<Option<RemoteObject>, ()> {
        match remote {
            RemoteUse::Off => Err(()),
            RemoteUse::Known(map) => Ok(map.get(&d.key).cloned().flatten()),
            RemoteUse::Lazy => {
                if self.remote_down.load(Ordering::SeqCst) {
                    return Err(());
                }
                match self.remote().and_then(|r| Ok(r.object(&d.key)?)) {
                    Ok(o) => Ok(o),
                    Err(e) => {
                        if !self.remote_down.swap(true, Ordering::SeqCst) {
                            tracing::warn!(
                                "the remote store is unavailable ({}); realizing from the local store and builds only",
                                crate::store::causes(&e)
                            );
                        }
                        Err(())
                    }
                }
            }
        }
    }

    fn realize_one(
        &self,
        d: &PluginDerivation,
        remote: &RemoteUse,
        opts: &Options,
        bar: &Bar,
        pushed: &mut bool,
    ) -> Result<Status, RealizeError> {
        match self.local.status(&d.key, false)? {
            LocalStatus::Valid(meta) => {
                // A store from before plugins ran from their venv, or a venv
                // whose interpreter went: prepared again. The PEX still
                // starts without it, so a failure is only a warning.
                if self.local.venv(&d.key).is_none() {
                    bar.set("preparing");
                    if let Err(e) = self.prepare(d) {
                        tracing::warn!("{}: {e}; it starts from its PEX", d.plugins.join(", "));
                    }
                }
                // A run needs nothing of the remote for a plugin it has.
                if !(opts.publish_local || opts.repair) {
                    return Ok(Status::Local);
                }
                match self.remote_object(d, remote) {
                    Ok(None) if opts.push => {
                        bar.set("uploading");
                        self.push(d, &meta)?;
                        *pushed = true;
                    }
                    Ok(Some(object)) if opts.repair && opts.push => {
                        bar.set("verifying the remote copy");
                        let r = self.remote()?;
                        if let Some(problem) = store::verify::remote_problem(&r, &object, &mut 0)? {
                            tracing::warn!(
                                "{} ({}) in {}: {problem}; replacing it with the local copy",
                                d.plugins.join(", "),
                                d.key,
                                r.describe
                            );
                            bar.set("replacing the remote copy");
                            if !store::verify::repair_from_local(&r, &self.local, &d.key)? {
                                return Err(RealizeError::Damaged {
                                    plugins: d.plugins.join(", "),
                                    key: d.key.clone(),
                                    reason: "it changed while the remote copy was repaired".into(),
                                });
                            }
                            *pushed = true;
                        }
                    }
                    _ => {}
                }
                return Ok(Status::Local);
            }
            LocalStatus::Damaged { reason, .. } => {
                tracing::warn!(
                    "the local copy of {} ({}) is damaged ({reason}); replacing it",
                    d.plugins.join(", "),
                    d.key
                );
                self.local.remove(&d.key)?;
            }
            LocalStatus::Missing => {}
        }
        let found = self.remote_object(d, remote);
        let use_remote = found.is_ok();
        if let Ok(Some(object)) = found {
            bar.set("downloading");
            match self.substitute(d, &object) {
                Ok(()) => {
                    bar.set("preparing");
                    self.prepare(d)?;
                    return Ok(Status::Substituted);
                }
                Err(RealizeError::Store(StoreError::HashMismatch {
                    object,
                    remote,
                    expected,
                    actual,
                })) => {
                    tracing::error!(
                        "{object} in {remote} does not match its metadata (expected blake3 {expected}, got {actual}); it is not used"
                    );
                    if !opts.repair {
                        return Err(StoreError::HashMismatch {
                            object,
                            remote,
                            expected,
                            actual,
                        }
                        .into());
                    }
                    bar.set("building (repair)");
                    let meta = self.build(d)?;
                    bar.set("replacing the remote copy");
                    self.remote()?
                        .upload(&d.key, &self.local.data_path(&d.key), &meta, true)?;
                    *pushed = true;
                    return Ok(Status::Built);
                }
                Err(RealizeError::Untrusted { object, remote }) if self.build_untrusted => {
                    tracing::warn!(
                        "{object} in {remote} is not signed by a trusted key; building it here"
                    );
                    bar.set("building (untrusted remote copy)");
                    self.build(d)?;
                    return Ok(Status::Built);
                }
                Err(e) => return Err(e),
            }
        }
        bar.set("building");
        if !(opts.push && use_remote) {
            self.build(d)?;
            return Ok(Status::Built);
        }
        let Built { meta, venv } = self.build_committed(d)?;
        // The upload (mostly compressing) and preparing the venv (where pex
        // resolved, a child process) go on at once: the last plugin of a
        // build ends sooner.
        bar.set("uploading, preparing");
        let (uploaded, prepared) = alongside(
            || self.ready(d, venv),
            || self.push(d, &meta),
            || prepare_panicked(d),
        );
        uploaded?;
        *pushed = true;
        prepared?;
        Ok(Status::Built)
    }

    fn push(&self, d: &PluginDerivation, meta: &ObjectMeta) -> Result<(), RealizeError> {
        // An object built before a signing key was set is signed on its way out.
        let mut meta = meta.clone();
        if let (Some(key), None) = (&self.signing, &meta.signature) {
            key.sign(&mut meta);
        }
        self.remote()?
            .upload(&d.key, &self.local.data_path(&d.key), &meta, false)?;
        Ok(())
    }

    /// Downloads, verifies against the remote metadata, and commits locally.
    fn substitute(&self, d: &PluginDerivation, object: &RemoteObject) -> Result<(), RealizeError> {
        let remote = self.remote()?;
        let meta = &object.meta;
        if !self.trusted.is_empty() && !store::signing::verify(meta, &self.trusted) {
            return Err(RealizeError::Untrusted {
                object: format!("{} ({})", d.plugins.join(", "), d.key),
                remote: remote.describe.clone(),
            });
        }
        let tmp = self.local.temp_path(d.key.as_str());
        let result = (|| {
            // Content that does not decompress is a mismatch like any other.
            let (actual, size) = match remote.download(object, Some(&tmp)) {
                Err(StoreError::Undecodable { reason, .. }) => {
                    (format!("content that does not decompress ({reason})"), 0)
                }
                other => other?,
            };
            if actual != meta.blake3 || size != meta.size || meta.key != d.key {
                return Err(RealizeError::Store(StoreError::HashMismatch {
                    object: format!("{} ({})", d.plugins.join(", "), d.key),
                    remote: remote.describe.clone(),
                    expected: meta.blake3.clone(),
                    actual,
                }));
            }
            self.local.commit(&d.key, &tmp, meta, true)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Provisions pex (with uv when alto has it); with `run`, byte-compiled
    /// for `python` too, once per interpreter in this process.
    fn pex_ready(&self, python: &Path, uv: Option<&Path>, run: bool) -> Result<(), RealizeError> {
        let _guard = self.provision_pex.lock().unwrap_or_else(|e| e.into_inner());
        pex::ensure(&self.pex, python, uv.map(|u| (u, self.cache_dir.as_path())))?;
        if run
            && self
                .pex_compiled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(python.to_path_buf())
        {
            pex::byte_compile(&self.pex, python);
        }
        Ok(())
    }

    /// Makes sure pex has its pinned pip for `d`'s interpreter, fetched from
    /// the package registry once per machine and interpreter (see
    /// [`pex::provision_pip`]); a marker in pex's root says it is done.
    fn pex_pip_ready(
        &self,
        d: &PluginDerivation,
        log: &Arc<Mutex<std::fs::File>>,
        log_path: &Path,
        redactor: &crate::config::Redactor,
    ) -> Result<(), RealizeError> {
        let _guard = self.provision_pex.lock().unwrap_or_else(|e| e.into_inner());
        let python = blake3::hash(d.python.as_os_str().as_encoded_bytes()).to_hex();
        let marker = self.pex_root().join(format!(
            ".alto-pip-{}-{}-{}",
            pex::PIP_FLAGS[1],
            self.pex.version(),
            &python[..16]
        ));
        if marker.exists() {
            return Ok(());
        }
        tracing::info!(
            "provisioning pip {} for pex (once per machine and interpreter)",
            pex::PIP_FLAGS[1]
        );
        let out = self.local.temp_path("pex-pip.pex");
        let done = self.step(
            d,
            "pex (its pip)",
            pex::provision_pip(&self.pex, &d.python, &out),
            None,
            log,
            log_path,
            redactor,
        );
        let _ = std::fs::remove_file(&out);
        done?;
        std::fs::write(&marker, b"").map_err(StoreError::io("cannot write", &marker))?;
        Ok(())
    }

    fn uv_ready(&self, python: &Path) -> Result<PathBuf, RealizeError> {
        let _guard = self.provision_uv.lock().unwrap_or_else(|e| e.into_inner());
        uv::ensure(python, &self.cache_dir)
    }

    /// A new log file for one attempt at building (or preparing) `d`:
    /// `.alto/logs/build/<plugin>-<key>-<UTC time>[.<n>].log`.
    fn attempt_log(&self, d: &PluginDerivation) -> Result<(PathBuf, std::fs::File), RealizeError> {
        let logs = self.project.root.join(".alto/logs/build");
        std::fs::create_dir_all(&logs).map_err(StoreError::io("cannot create", &logs))?;
        let stem = format!(
            "{}-{}-{}",
            d.plugins.first().map(String::as_str).unwrap_or("plugin"),
            d.key,
            store::now_rfc3339().replace([':', '-'], "")
        );
        let mut n = 0;
        loop {
            let name = if n == 0 {
                format!("{stem}.log")
            } else {
                format!("{stem}.{n}.log")
            };
            let path = logs.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(StoreError::io("cannot create", &path)(e).into()),
            }
        }
    }

    /// Runs one step of a build with its output going to the log; a
    /// failure names the step and what the resolver said.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        d: &PluginDerivation,
        name: &str,
        cmd: Command,
        stdin: Option<Vec<u8>>,
        log: &Arc<Mutex<std::fs::File>>,
        log_path: &Path,
        redactor: &crate::config::Redactor,
    ) -> Result<(), RealizeError> {
        log_line(log, &format!("running {name}"));
        let started = std::time::Instant::now();
        let step = self.start_step(cmd, stdin.is_some(), log, redactor)?;
        self.finish_step(d, name, step, started, stdin, log, log_path, redactor)
    }

    /// Starts a step's process, its output going to the log.
    fn start_step(
        &self,
        mut cmd: Command,
        piped_stdin: bool,
        log: &Arc<Mutex<std::fs::File>>,
        redactor: &crate::config::Redactor,
    ) -> Result<Step, RealizeError> {
        cmd.env("PEX_ROOT", self.pex_root())
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .current_dir(&self.project.root)
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = PathBuf::from(cmd.get_program());
        let mut process = crate::interrupt::Process::spawn(&mut cmd)
            .map_err(|source| RealizeError::Spawn { program, source })?;
        let pumps = [
            process
                .child()
                .stdout
                .take()
                .map(|o| pump_log(o, log, redactor)),
            process
                .child()
                .stderr
                .take()
                .map(|e| pump_log(e, log, redactor)),
        ];
        Ok(Step {
            process,
            pumps,
            program: PathBuf::from(cmd.get_program()),
        })
    }

    /// Hands a started step its stdin, if any, and waits for it.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &self,
        d: &PluginDerivation,
        name: &str,
        step: Step,
        started: std::time::Instant,
        stdin: Option<Vec<u8>>,
        log: &Arc<Mutex<std::fs::File>>,
        log_path: &Path,
        redactor: &crate::config::Redactor,
    ) -> Result<(), RealizeError> {
        let Step {
            mut process,
            pumps,
            program,
        } = step;
        let waited = (|| {
            if let (Some(args), Some(mut input)) = (&stdin, process.child().stdin.take()) {
                // pex reads its arguments from this pipe, then sees it closed.
                let written = std::io::Write::write_all(&mut input, args);
                drop(input);
                if let Err(e) = written {
                    process.terminate();
                    let _ = process.wait();
                    return Err(e);
                }
            }
            process.wait()
        })();
        // Whatever is left of the step's process group goes, so the pipes close.
        drop(process);
        for pump in pumps.into_iter().flatten() {
            let _ = pump.join();
        }
        let status = waited.map_err(|source| RealizeError::Spawn { program, source })?;
        log_line(
            log,
            &format!(
                "{name} ended after {:.2} s",
                started.elapsed().as_secs_f64()
            ),
        );
        RealizeError::if_signalled(|| format!("building {}", d.plugins.join(", ")))?;
        if !status.success() {
            let text = std::fs::read_to_string(log_path).unwrap_or_default();
            return Err(RealizeError::BuildFailed {
                plugins: d.plugins.join(", "),
                step: name.to_string(),
                status: status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "a signal".into()),
                log: log_path.to_path_buf(),
                reason: failure_reason(&redactor.redact(&text)),
            });
        }
        Ok(())
    }

    /// Builds a derivation into a temporary file; returns its metadata.
    /// uv installs `pip_url` into a fresh venv which pex packs, or, for what
    /// uv cannot take, pex resolves it with pip. Their output goes to a new
    /// log in `.alto/logs/build/` each attempt, scrubbed of the secrets of
    /// `pip_url` on its way there.
    ///
    /// With `keep_venv`, uv's venv is kept as the one the plugin runs from
    /// (the caller puts it in place): what the plugin's entry points import
    /// is byte-compiled in it, started as pex packs it (pex packs what each
    /// distribution's RECORD lists, never the byte code) and waited for by
    /// [`Realizer::ready`]: the commit and the upload need not wait.
    fn build_to(
        &self,
        d: &PluginDerivation,
        out: &Path,
        keep_venv: bool,
    ) -> Result<Built, RealizeError> {
        if let Resolve::Pip(_) = d.build.resolve {
            self.pex_ready(&d.python, None, true)?;
        }
        let (log_path, log) = self.attempt_log(d)?;
        let log = Arc::new(Mutex::new(log));
        let redactor = crate::config::Redactor::new(secret_fragments(&d.build.secrets));
        let say = |line: &str| log_line(&log, line);
        let mut kept = None;
        let built = match &d.build.resolve {
            Resolve::Uv(input) => {
                let uv = self.uv_ready(&d.python)?;
                let venv = self.local.temp_path(&format!("{}.venv", d.key));
                // alto writes the PEX itself where it can (see `pack`): the
                // provisioned pex's bytes, for a CPython venv.
                let own = match &self.pex {
                    PexTool::Provisioned { lib } if d.platform.implementation == "cpython" => {
                        Some(lib.join("pex"))
                    }
                    _ => None,
                };
                say(&format!(
                    "uv {} installs pip_url into a fresh venv, {} packs it",
                    uv::UV_VERSION,
                    match own {
                        Some(_) => format!("alto (as pex {})", self.pex.version()),
                        None => format!("pex {}", self.pex.version()),
                    }
                ));
                // While uv installs, pex is provisioned (once per machine)
                // and, where alto does not pack, started (see
                // `pex::prestarted`). Started here, not on uv's thread: a
                // step's process is killed when the thread that started it
                // ends (PR_SET_PDEATHSIG).
                let (pex_started, installed) = alongside(
                    || {
                        self.step(
                            d,
                            "uv venv",
                            uv::venv(&uv, &self.cache_dir, &d.python, &venv),
                            None,
                            &log,
                            &log_path,
                            &redactor,
                        )?;
                        self.step(
                            d,
                            "uv pip install",
                            uv::install(&uv, &self.cache_dir, &venv, input),
                            None,
                            &log,
                            &log_path,
                            &redactor,
                        )
                    },
                    || {
                        self.pex_ready(&d.python, Some(&uv), own.is_none())?;
                        if own.is_some() {
                            return Ok(None);
                        }
                        pex::prestarted(&self.pex, &d.python, &venv, out)
                            .map(|(cmd, args)| {
                                Ok((self.start_step(cmd, true, &log, &redactor)?, args))
                            })
                            .transpose()
                    },
                    || RealizeError::BuildFailed {
                        plugins: d.plugins.join(", "),
                        step: "uv pip install".into(),
                        status: "a panic".into(),
                        log: log_path.clone(),
                        reason: "installing it panicked".into(),
                    },
                );
                // A pex started ahead that is not given its arguments (uv
                // failed) is killed as it is dropped.
                let result = installed.and(pex_started).and_then(|started| {
                    let pack = || {
                        let begun = std::time::Instant::now();
                        if let Some(pex_dir) = &own {
                            match pack::pack(&venv, pex_dir, &d.platform.python_version, out) {
                                Ok(()) => {
                                    log_line(
                                        &log,
                                        &format!(
                                            "alto packed the venv as pex {} would, in {:.2} s",
                                            pex::PEX_VERSION,
                                            begun.elapsed().as_secs_f64()
                                        ),
                                    );
                                    return Ok(());
                                }
                                Err(why) => log_line(
                                    &log,
                                    &format!(
                                        "alto does not pack this venv itself ({}): pex packs it",
                                        redactor.redact(&why.0)
                                    ),
                                ),
                            }
                        }
                        if own.is_some() {
                            self.pex_ready(&d.python, None, true)?;
                        }
                        log_line(&log, "running pex");
                        match started {
                            Some((step, args)) => self.finish_step(
                                d,
                                "pex",
                                step,
                                begun,
                                Some(args),
                                &log,
                                &log_path,
                                &redactor,
                            ),
                            None => {
                                let step = self.start_step(
                                    pex::pack(&self.pex, &d.python, &venv, out),
                                    false,
                                    &log,
                                    &redactor,
                                )?;
                                self.finish_step(
                                    d, "pex", step, begun, None, &log, &log_path, &redactor,
                                )
                            }
                        }
                    };
                    if !keep_venv {
                        return pack().map(|()| None);
                    }
                    // Started on this thread, which outlives it (see
                    // `interrupt::Process`); a failed pack drops it, killed.
                    let mut cmd = Command::new(venv.join("bin").join("python"));
                    cmd.arg("-I");
                    let started = std::time::Instant::now();
                    let compiling = self.start_compile(d, cmd)?;
                    pack()?;
                    // A signal during the pack stops the build here, before
                    // the commit and the upload (the compiling is killed).
                    RealizeError::if_signalled(|| format!("building {}", d.plugins.join(", ")))?;
                    Ok(Some((compiling, started)))
                });
                match result {
                    Ok(Some((compiling, started))) => {
                        kept = Some(KeptVenv {
                            path: venv,
                            compiling,
                            started,
                        });
                        Ok(())
                    }
                    other => {
                        let _ = std::fs::remove_dir_all(&venv);
                        other.map(|_| ())
                    }
                }
            }
            Resolve::Pip(reason) => {
                let why = format!(
                    "uv cannot take this pip_url ({}): pex {} resolves it with pip ({})",
                    redactor.redact(reason),
                    self.pex.version(),
                    pex::PIP_FLAGS.join(" ")
                );
                say(&why);
                tracing::info!("{}: {why}", d.plugins.join(", "));
                self.pex_pip_ready(d, &log, &log_path, &redactor)?;
                let (cmd, argfile) = pex::invocation(&self.pex, d, out);
                self.step(d, "pex", cmd, argfile, &log, &log_path, &redactor)
            }
        };
        let discard = |kept: Option<KeptVenv>| {
            let _ = std::fs::remove_file(out);
            if let Some(venv) = kept {
                venv.discard();
            }
        };
        if let Err(e) = built {
            discard(kept);
            return Err(e);
        }
        if !d.build.secrets.is_empty() {
            let refused = match pex::find_secrets(&d.python, out, &d.build.secrets) {
                Ok(None) => None,
                Ok(Some(entry)) => Some(RealizeError::SecretInOutput {
                    plugins: d.plugins.join(", "),
                    entry: redactor.redact(&entry),
                }),
                Err(message) => Some(RealizeError::SecretCheck {
                    plugins: d.plugins.join(", "),
                    message: redactor.redact(&message),
                }),
            };
            if let Some(e) = refused {
                discard(kept);
                return Err(e);
            }
        }
        let (blake3, size) = match hash_file(out) {
            Ok(hashed) => hashed,
            Err(e) => {
                discard(kept);
                return Err(StoreError::io("cannot read", out)(e).into());
            }
        };
        let mut meta = ObjectMeta {
            format: store::META_FORMAT.to_string(),
            key: d.key.clone(),
            kind: "plugin".into(),
            derivation: d.inputs(),
            blake3,
            size,
            created: store::now_rfc3339(),
            builder: BuilderInfo::here(),
            signature: None,
        };
        if let Some(key) = &self.signing {
            key.sign(&mut meta);
        }
        Ok(Built { meta, venv: kept })
    }

    /// Makes a realized PEX ready to start: installs it into its venv under
    /// pex's root, as a `--venv` PEX does on its first run (a PEX pex
    /// resolved was installed there as it was built, [`pex::SEED`]),
    /// byte-compiles what its entry points import there, as its first run
    /// would ([`COMPILE_VENV`]), and links the store's venv path to it, so
    /// that runs start the venv, not the zip (0.04 s against 0.22 s), and
    /// the first run starts as fast as any later one (an image made by
    /// `alto build` starts fast the first time).
    pub fn prepare(&self, d: &PluginDerivation) -> Result<(), RealizeError> {
        let mut cmd = Command::new(&d.python);
        cmd.arg(self.local.data_path(&d.key))
            .env("PEX_ROOT", self.pex_root())
            .env("PEX_INTERPRETER", "1");
        let said = self.compile(d, cmd)?;
        let Some(prefix) = said.lines().rev().find_map(|l| l.strip_prefix(VENV_SAID)) else {
            return Err(RealizeError::PrepareFailed {
                plugins: d.plugins.join(", "),
                reason: "it did not say where its venv is".into(),
            });
        };
        let link = self.local.temp_path(&format!("{}.venv-link", d.key));
        std::os::unix::fs::symlink(prefix, &link)
            .map_err(StoreError::io("cannot create", &link))?;
        self.local.install_venv(&d.key, &link).inspect_err(|_| {
            let _ = std::fs::remove_file(&link);
        })?;
        Ok(())
    }

    /// Runs [`COMPILE_VENV`] with `python` (its arguments so far start the
    /// plugin's venv) for `d`'s entry points; what it printed.
    fn compile(&self, d: &PluginDerivation, cmd: Command) -> Result<String, RealizeError> {
        let program = PathBuf::from(cmd.get_program());
        let compiling = self.start_compile(d, cmd)?;
        self.finish_compile(d, &program, compiling)
    }

    /// Starts [`COMPILE_VENV`] (see [`Realizer::compile`]).
    fn start_compile(
        &self,
        d: &PluginDerivation,
        mut cmd: Command,
    ) -> Result<crate::interrupt::Process, RealizeError> {
        // Ten nice steps below alto: it runs beside other builds' uv, whose
        // work (resolving, building sdists) is what a cold build waits for;
        // on an idle machine it changes nothing.
        use std::os::unix::process::CommandExt;
        // SAFETY: nice is a plain system call and touches no memory of the
        // parent; a refusal leaves the priority as it was.
        unsafe {
            cmd.pre_exec(|| {
                libc::nice(10);
                Ok(())
            });
        }
        cmd.args(["-c", COMPILE_VENV])
            .args(self.entry_modules(d))
            .current_dir(&self.project.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = PathBuf::from(cmd.get_program());
        crate::interrupt::Process::spawn(&mut cmd)
            .map_err(|source| RealizeError::Spawn { program, source })
    }

    /// Waits for a started [`COMPILE_VENV`] (run by `program`); what it printed.
    fn finish_compile(
        &self,
        d: &PluginDerivation,
        program: &Path,
        mut compiling: crate::interrupt::Process,
    ) -> Result<String, RealizeError> {
        let out = compiling
            .wait_with_output()
            .map_err(|source| RealizeError::Spawn {
                program: program.to_path_buf(),
                source,
            })?;
        RealizeError::if_signalled(|| format!("preparing {}", d.plugins.join(", ")))?;
        if !out.status.success() {
            return Err(RealizeError::PrepareFailed {
                plugins: d.plugins.join(", "),
                reason: tail(&String::from_utf8_lossy(&out.stderr), 15),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What preparing `d` imports: see [`import_args`].
    fn entry_modules(&self, d: &PluginDerivation) -> Vec<String> {
        import_args(d.plugins.iter().map(|name| {
            self.project
                .plugin(name)
                .ok()
                .and_then(|plugin| eval::entry(self.project, plugin).ok())
        }))
    }

    /// Makes what was just built ready to start: uv's venv put in place,
    /// or, where pex resolved, the PEX prepared.
    fn ready(&self, d: &PluginDerivation, venv: Option<KeptVenv>) -> Result<(), RealizeError> {
        let Some(KeptVenv {
            path,
            compiling,
            started,
        }) = venv
        else {
            return self.prepare(d);
        };
        // The venv moves only once nothing writes into it.
        self.finish_compile(d, &path.join("bin").join("python"), compiling)
            .and_then(|_| {
                tracing::debug!(
                    "{}: what it imports byte-compiled ({:.1}s)",
                    d.plugins.join(", "),
                    started.elapsed().as_secs_f64()
                );
                Ok(self.local.install_venv(&d.key, &path)?)
            })
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&path);
            })
    }

    /// Builds, commits to the local store, and makes it ready to start.
    fn build(&self, d: &PluginDerivation) -> Result<ObjectMeta, RealizeError> {
        let built = self.build_committed(d)?;
        self.ready(d, built.venv)?;
        Ok(built.meta)
    }

    /// Builds and commits to the local store; uv's venv, if any, is the
    /// caller's to put in place.
    fn build_committed(&self, d: &PluginDerivation) -> Result<Built, RealizeError> {
        let tmp = self.local.temp_path(&format!("{}.pex", d.key));
        let built = self.build_to(d, &tmp, true)?;
        if let Err(e) = self.local.commit(&d.key, &tmp, &built.meta, true) {
            let _ = std::fs::remove_file(&tmp);
            if let Some(venv) = built.venv {
                venv.discard();
            }
            return Err(e.into());
        }
        Ok(built)
    }

    /// Rebuilds a realized derivation and compares with the stored object.
    pub fn check(&self, d: &PluginDerivation) -> Result<Option<(String, String)>, RealizeError> {
        let stored = match self.local.status(&d.key, true)? {
            LocalStatus::Valid(m) => m,
            LocalStatus::Damaged { reason, .. } => {
                return Err(RealizeError::Damaged {
                    plugins: d.plugins.join(", "),
                    key: d.key.clone(),
                    reason,
                });
            }
            LocalStatus::Missing => {
                return Err(RealizeError::Damaged {
                    plugins: d.plugins.join(", "),
                    key: d.key.clone(),
                    reason: "it is not in the local store".into(),
                });
            }
        };
        let tmp = self.local.temp_path(&format!("{}.check.pex", d.key));
        let rebuilt = self.build_to(d, &tmp, false);
        let _ = std::fs::remove_file(&tmp);
        let rebuilt = rebuilt?.meta;
        Ok((rebuilt.blake3 != stored.blake3).then_some((stored.blake3, rebuilt.blake3)))
    }

    /// Registers realized keys as GC roots of this project and environment,
    /// locally and, with `remote`, in the remote (a compare-and-swap).
    /// `replace` (a full build) drops keys the config no longer names;
    /// otherwise the keys are added.
    pub fn register_roots(&self, keys: &[Key], replace: bool, remote: bool) {
        use crate::store::roots::{self, RootSet};
        let set = RootSet {
            project: self.project.name.clone(),
            project_root: Some(self.project.root.clone()),
            environment: self.project.environment.clone(),
            keys: keys.iter().cloned().collect(),
            updated: store::now_rfc3339(),
        };
        if let Err(e) = roots::register_local(&self.cache_dir, &set, replace) {
            tracing::warn!("could not register gc roots: {e}");
        }
        if !remote || self.remote_down.load(Ordering::SeqCst) {
            return;
        }
        match self.remote() {
            Ok(r) => {
                if let Err(e) = roots::register_remote(&r, &set, replace) {
                    tracing::warn!("could not register gc roots in the remote: {e}");
                }
            }
            Err(e) => tracing::warn!("could not register gc roots in the remote: {e}"),
        }
    }

    pub fn pex_root(&self) -> PathBuf {
        self.cache_dir.join("pex-root")
    }

    /// A command running a realized plugin (or, with `interpreter`, its
    /// Python), with its environment, in the project root. The object is
    /// verified before it is handed out.
    pub fn command(
        &self,
        plugin: &Plugin,
        d: &PluginDerivation,
        interpreter: bool,
    ) -> Result<Command, RealizeError> {
        match self.local.status(&d.key, false)? {
            LocalStatus::Valid(_) => {}
            LocalStatus::Damaged { reason, .. } => {
                return Err(RealizeError::Damaged {
                    plugins: plugin.name.clone(),
                    key: d.key.clone(),
                    reason,
                });
            }
            LocalStatus::Missing => {
                return Err(RealizeError::Damaged {
                    plugins: plugin.name.clone(),
                    key: d.key.clone(),
                    reason: "it is not in the local store".into(),
                });
            }
        }
        let mut cmd = self.start(plugin, d, interpreter)?;
        cmd.current_dir(&self.project.root);
        for (k, v) in self.project.plugin_environment(plugin)? {
            cmd.env(k, v);
        }
        cmd.env("PEX_ROOT", self.pex_root())
            .env("ALTO_PLUGIN", &plugin.name);
        Ok(cmd)
    }

    /// How a realized plugin starts: its venv's interpreter in isolated
    /// mode (`-I`, as the scripts of a pex venv start) on the entry point
    /// (`-sE` for the interpreter itself),
    /// or, when its venv is not there or not usable (its interpreter gone),
    /// the PEX, which makes its venv under pex's root on its first run.
    pub fn start(
        &self,
        plugin: &Plugin,
        d: &PluginDerivation,
        interpreter: bool,
    ) -> Result<Command, RealizeError> {
        let entry = if interpreter {
            None
        } else {
            Some(eval::entry(self.project, plugin)?)
        };
        if let Some(venv) = self.local.venv(&d.key) {
            let mut cmd = Command::new(venv.join("bin").join("python"));
            match &entry {
                // As `PEX_INTERPRETER`: hermetic (`-sE`), but a script's own
                // directory (or the current one) heads sys.path, as in Python.
                None => {
                    cmd.arg("-sE");
                    return Ok(cmd);
                }
                Some(Entry::Script(s)) => {
                    let script = venv.join("bin").join(s);
                    if script.is_file() {
                        cmd.arg("-I").arg(script);
                        return Ok(cmd);
                    }
                }
                Some(Entry::Module(m)) => {
                    cmd.arg("-I");
                    match m.split_once(':') {
                        Some((module, function)) => cmd.args(["-c", CALL_ENTRY, module, function]),
                        None => cmd.args(["-m", m]),
                    };
                    return Ok(cmd);
                }
            }
        }
        let mut cmd = Command::new(&d.python);
        cmd.arg(self.local.data_path(&d.key));
        match entry {
            None => cmd.env("PEX_INTERPRETER", "1"),
            Some(Entry::Script(s)) => cmd.env("PEX_SCRIPT", s),
            Some(Entry::Module(m)) => cmd.env("PEX_MODULE", m),
        };
        Ok(cmd)
    }
}

/// A step's process, started, its output being copied to the log.
struct Step {
    process: crate::interrupt::Process,
    pumps: [Option<std::thread::JoinHandle<()>>; 2],
    program: PathBuf,
}

/// A line of alto's own in a build log.
fn log_line(log: &Mutex<std::fs::File>, line: &str) {
    use std::io::Write;
    let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(f, "alto: {line}");
}

/// Runs `background` on a thread of its own while `foreground` runs here;
/// both results, a panic of `background` being `panicked()`.
fn alongside<A: Send, B>(
    background: impl FnOnce() -> Result<A, RealizeError> + Send,
    foreground: impl FnOnce() -> B,
    panicked: impl FnOnce() -> RealizeError,
) -> (B, Result<A, RealizeError>) {
    std::thread::scope(|scope| {
        let handle = scope.spawn(background);
        let done = foreground();
        (done, handle.join().unwrap_or_else(|_| Err(panicked())))
    })
}

fn prepare_panicked(d: &PluginDerivation) -> RealizeError {
    RealizeError::PrepareFailed {
        plugins: d.plugins.join(", "),
        reason: "preparing it panicked".into(),
    }
}

/// The arguments of [`COMPILE_VENV`] for plugins entered by `entries`:
/// each console script, or the package of a module entry point (a module
/// run as `__main__` is never cached, but what it is in is imported first).
/// `all` where that says nothing: a top-level module entry point, or a
/// plugin the project does not have.
fn import_args(entries: impl Iterator<Item = Option<Entry>>) -> Vec<String> {
    let mut out = Vec::new();
    for entry in entries {
        let arg = match entry {
            Some(Entry::Script(s)) => format!("script:{s}"),
            Some(Entry::Module(m)) => match m.split_once(':') {
                Some((module, _)) => format!("module:{module}"),
                None => match m.rsplit_once('.') {
                    Some((package, _)) => format!("module:{package}"),
                    None => "all".into(),
                },
            },
            None => "all".into(),
        };
        if !out.contains(&arg) {
            out.push(arg);
        }
    }
    out
}

/// What to scrub from build logs: each secret, and each whitespace-separated
/// part of one (a secret with a space in it reaches pex as two tokens).
fn secret_fragments(secrets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = secrets.to_vec();
    for s in secrets {
        out.extend(s.split_whitespace().map(str::to_string));
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Copies a stream into the build log line by line, redacted.
fn pump_log(
    stream: impl std::io::Read + Send + 'static,
    log: &Arc<Mutex<std::fs::File>>,
    redactor: &crate::config::Redactor,
) -> std::thread::JoinHandle<()> {
    let log = log.clone();
    let redactor = redactor.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let mut reader = std::io::BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            let line = redactor.redact(text.trim_end_matches(['\n', '\r']));
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{line}");
        }
    })
}

fn describe(status: Status, pushed: bool) -> &'static str {
    match (status, pushed) {
        (Status::Local, false) => "present",
        (Status::Local, true) => "present, uploaded",
        (Status::Substituted, _) => "substituted",
        (Status::Built, false) => "built",
        (Status::Built, true) => "built, uploaded",
        (Status::Failed, _) => "failed",
    }
}

/// Progress bars on a terminal, plain log lines otherwise.
struct Progress {
    multi: Option<indicatif::MultiProgress>,
}

struct Bar {
    bar: Option<indicatif::ProgressBar>,
    label: String,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            multi: tty.then(indicatif::MultiProgress::new),
        }
    }

    fn start(&self, label: &str) -> Bar {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new_spinner());
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Bar {
            bar,
            label: label.to_string(),
        }
    }
}

impl Bar {
    fn set(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => tracing::info!("{}: {msg}", self.label),
        }
    }

    fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None => tracing::debug!("{}: {msg}", self.label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparing_imports_what_each_entry_point_starts_with() {
        let script = |s: &str| Some(Entry::Script(s.into()));
        let module = |m: &str| Some(Entry::Module(m.into()));
        assert_eq!(
            import_args(
                [
                    script("tap-x"),
                    module("tap_y.cli:main"),
                    module("tap_z.__main__"),
                    script("tap-x"),
                ]
                .into_iter()
            ),
            vec!["script:tap-x", "module:tap_y.cli", "module:tap_z"]
        );
        assert_eq!(
            import_args([module("tap_w"), None].into_iter()),
            vec!["all"]
        );
    }

    #[test]
    fn a_failed_build_shows_what_the_resolver_said() {
        let uv = "alto: running uv pip install\nUsing Python 3.11.7 environment at: /x\n  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of tap-x==9 and you require tap-x==9, we can conclude that your requirements are unsatisfiable.\n";
        assert_eq!(
            failure_reason(uv),
            "the resolver said:\n  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of tap-x==9 and you require tap-x==9, we can conclude that your requirements are unsatisfiable."
        );
        let pip = "pex: Building pex\npip: Looking in indexes: https://h/simple\npip: ERROR: Could not find a version that satisfies the requirement tap-x==9\npex: debug noise\npip: ERROR: No matching distribution found for tap-x==9\nTraceback (most recent call last):\n";
        assert_eq!(
            failure_reason(pip),
            "the resolver said:\npip: ERROR: Could not find a version that satisfies the requirement tap-x==9\npip: ERROR: No matching distribution found for tap-x==9"
        );
        assert_eq!(failure_reason("a\nb\n"), "last lines of the log:\na\nb");
    }
}
