//! Realization: making each derivation's output exist in the local store, by
//! finding it there, substituting it from the remote (verifying its hash), or
//! building it with pex and publishing it; in parallel, with progress.

pub mod catalog;
pub mod pex;
pub mod python;

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
use crate::eval::{self, Entry, EvalError, Key, PluginDerivation};
use crate::store::local::hash_file;
use crate::store::{self, BuilderInfo, LocalStatus, LocalStore, ObjectMeta, Remote, StoreError};

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

    #[error("cannot provision pex: {message}")]
    #[diagnostic(code(alto::realize::pex), help("{}", log.as_deref().unwrap_or("alto installs pex with the interpreter's pip from the package registry; or set `pex: /path/to/pex`")))]
    PexProvision {
        message: String,
        log: Option<String>,
    },

    #[error("building {plugins} failed (pex exited with {status}); the full log is {}", log.display())]
    #[diagnostic(
        code(alto::realize::build_failed),
        help("last lines of the log:\n{tail}")
    )]
    BuildFailed {
        plugins: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

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
    /// 2 when the input (config, a missing interpreter or local source) is
    /// at fault, 1 for a failure while working, 128 + the signal when
    /// interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            RealizeError::Config(e) => e.exit_code(),
            RealizeError::PythonNotFound { .. } => 2,
            RealizeError::SigningKey { .. } | RealizeError::SecretInOutput { .. } => 2,
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
    /// Upload what is built (or only local) to the remote; `false` for
    /// `alto build --no-push`.
    pub push: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: 2,
            repair: false,
            progress: false,
            push: true,
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

/// Makes derivations' outputs exist, for one project.
pub struct Realizer<'p> {
    pub project: &'p Project,
    pub cache_dir: PathBuf,
    pub local: LocalStore,
    remote: Mutex<Option<Arc<Remote>>>,
    pex: PexTool,
    pythons: Mutex<HashMap<PathBuf, PythonInfo>>,
    provision: Mutex<()>,
    signing: Option<store::signing::SecretKey>,
    trusted: Vec<store::signing::PublicKey>,
    /// `untrusted_substitutes: build`: build what the remote cannot prove.
    build_untrusted: bool,
}

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
            provision: Mutex::new(()),
        })
    }

    /// The remote store, opened on first use.
    pub fn remote(&self) -> Result<Arc<Remote>, RealizeError> {
        let mut guard = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = guard.as_ref() {
            return Ok(r.clone());
        }
        let r = Arc::new(Remote::open(self.project)?);
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
        let builder = self.pex.builder();
        let mut platform_of = |p: &Plugin| -> Result<(eval::Platform, PathBuf), RealizeError> {
            let info = self.python_for(Some(p))?;
            Ok((info.platform(), info.executable.clone()))
        };
        eval::plugin_derivations(self.project, names, &mut platform_of, &builder)
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

    /// The keys the remote holds: one listing of its metadata serves every
    /// derivation of a realization.
    pub fn remote_keys(&self) -> Result<HashSet<Key>, RealizeError> {
        Ok(self.remote()?.meta_keys()?)
    }

    /// Realizes every derivation, `opts.jobs` at a time; an unreachable
    /// remote is a warning (the local store and builds still serve).
    pub fn realize(&self, derivs: &[PluginDerivation], opts: &Options) -> Vec<Outcome> {
        let remote_keys = match self.remote_keys() {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(
                    "the remote store is unavailable ({}); realizing from the local store and builds only",
                    crate::store::causes(&e)
                );
                None
            }
        };
        self.realize_with(derivs, opts, remote_keys)
    }

    /// Realizes every derivation against what the remote holds (`None`:
    /// the remote is not used at all).
    pub fn realize_with(
        &self,
        derivs: &[PluginDerivation],
        opts: &Options,
        remote_keys: Option<HashSet<Key>>,
    ) -> Vec<Outcome> {
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
                        let result =
                            self.realize_one(d, remote_keys.as_ref(), opts, &bar, &mut pushed);
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

    fn realize_one(
        &self,
        d: &PluginDerivation,
        remote_keys: Option<&HashSet<Key>>,
        opts: &Options,
        bar: &Bar,
        pushed: &mut bool,
    ) -> Result<Status, RealizeError> {
        let in_remote = remote_keys.is_some_and(|k| k.contains(&d.key));
        match self.local.status(&d.key, false)? {
            LocalStatus::Valid(meta) => {
                if opts.push && remote_keys.is_some() && !in_remote {
                    bar.set("uploading");
                    self.push(d, &meta)?;
                    *pushed = true;
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
        if in_remote {
            bar.set("downloading");
            match self.substitute(d) {
                Ok(()) => return Ok(Status::Substituted),
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
        let meta = self.build(d)?;
        if opts.push && remote_keys.is_some() {
            bar.set("uploading");
            self.push(d, &meta)?;
            *pushed = true;
        }
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
    fn substitute(&self, d: &PluginDerivation) -> Result<(), RealizeError> {
        let remote = self.remote()?;
        let Some(meta) = remote.meta(&d.key)? else {
            return Err(StoreError::BadMeta {
                path: d.key.0.clone(),
                message: "vanished".into(),
            }
            .into());
        };
        if !self.trusted.is_empty() && !store::signing::verify(&meta, &self.trusted) {
            return Err(RealizeError::Untrusted {
                object: format!("{} ({})", d.plugins.join(", "), d.key),
                remote: remote.describe.clone(),
            });
        }
        let tmp = self.local.temp_path(&d.key.0);
        let result = (|| {
            let (actual, size) = remote.download(&d.key, &tmp)?;
            if actual != meta.blake3 || size != meta.size || meta.key != d.key {
                return Err(RealizeError::Store(StoreError::HashMismatch {
                    object: format!("{} ({})", d.plugins.join(", "), d.key),
                    remote: remote.describe.clone(),
                    expected: meta.blake3.clone(),
                    actual,
                }));
            }
            self.local.commit(&d.key, &tmp, &meta, true)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn pex_ready(&self, python: &Path) -> Result<(), RealizeError> {
        let _guard = self.provision.lock().unwrap_or_else(|e| e.into_inner());
        pex::ensure(&self.pex, python, &self.cache_dir)
    }

    /// Builds a derivation into a temporary file; returns its metadata.
    /// pex's output goes to `.alto/logs/build/`, scrubbed of the secrets of
    /// `pip_url` on its way there.
    fn build_to(&self, d: &PluginDerivation, out: &Path) -> Result<ObjectMeta, RealizeError> {
        self.pex_ready(&d.python)?;
        let logs = self.project.root.join(".alto/logs/build");
        std::fs::create_dir_all(&logs).map_err(StoreError::io("cannot create", &logs))?;
        let log_path = logs.join(format!(
            "{}-{}.log",
            d.plugins.first().map(String::as_str).unwrap_or("plugin"),
            d.key
        ));
        let log =
            std::fs::File::create(&log_path).map_err(StoreError::io("cannot create", &log_path))?;
        let log = Arc::new(Mutex::new(log));
        let redactor = crate::config::Redactor::new(secret_fragments(&d.build.secrets));
        let (mut cmd, argfile) = pex::invocation(&self.pex, d, out);
        cmd.env("PEX_ROOT", self.pex_root())
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .current_dir(&self.project.root)
            .stdin(if argfile.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = PathBuf::from(cmd.get_program());
        let spawned = crate::interrupt::Process::spawn(&mut cmd).and_then(|mut p| {
            let pumps = [
                p.child()
                    .stdout
                    .take()
                    .map(|o| pump_log(o, &log, &redactor)),
                p.child()
                    .stderr
                    .take()
                    .map(|e| pump_log(e, &log, &redactor)),
            ];
            if let (Some(args), Some(mut stdin)) = (&argfile, p.child().stdin.take()) {
                // pex reads its arguments from this pipe, then sees it closed.
                let written = std::io::Write::write_all(&mut stdin, args);
                drop(stdin);
                if let Err(e) = written {
                    p.terminate();
                    let _ = p.wait();
                    return Err(e);
                }
            }
            let status = p.wait();
            // Whatever is left of pex's process group goes, so the pipes close.
            drop(p);
            for pump in pumps.into_iter().flatten() {
                let _ = pump.join();
            }
            status
        });
        let status = spawned.map_err(|source| {
            let _ = std::fs::remove_file(out);
            RealizeError::Spawn { program, source }
        })?;
        if let Some(signal) = crate::interrupt::signal() {
            let _ = std::fs::remove_file(out);
            return Err(RealizeError::Interrupted {
                what: format!("building {}", d.plugins.join(", ")),
                signal,
            });
        }
        if !status.success() {
            let _ = std::fs::remove_file(out);
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(RealizeError::BuildFailed {
                plugins: d.plugins.join(", "),
                status: status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "a signal".into()),
                log: log_path,
                tail: tail(&redactor.redact(&text), 15),
            });
        }
        if !d.build.secrets.is_empty() {
            let found = pex::find_secrets(&d.python, out, &d.build.secrets);
            if !matches!(found, Ok(None)) {
                let _ = std::fs::remove_file(out);
            }
            match found {
                Ok(None) => {}
                Ok(Some(entry)) => {
                    return Err(RealizeError::SecretInOutput {
                        plugins: d.plugins.join(", "),
                        entry: redactor.redact(&entry),
                    });
                }
                Err(message) => {
                    return Err(RealizeError::SecretCheck {
                        plugins: d.plugins.join(", "),
                        message: redactor.redact(&message),
                    });
                }
            }
        }
        let (blake3, size) = hash_file(out).map_err(StoreError::io("cannot read", out))?;
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
        Ok(meta)
    }

    /// Builds and commits to the local store.
    fn build(&self, d: &PluginDerivation) -> Result<ObjectMeta, RealizeError> {
        let tmp = self.local.temp_path(&format!("{}.pex", d.key));
        let meta = self.build_to(d, &tmp)?;
        let result = self.local.commit(&d.key, &tmp, &meta, true);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        Ok(meta)
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
        let rebuilt = self.build_to(d, &tmp);
        let _ = std::fs::remove_file(&tmp);
        let rebuilt = rebuilt?;
        Ok((rebuilt.blake3 != stored.blake3).then_some((stored.blake3, rebuilt.blake3)))
    }

    /// Registers realized keys as GC roots of this project and environment,
    /// locally and in the remote. `replace` (a full build) drops keys the
    /// config no longer names; otherwise the keys are added.
    pub fn register_roots(&self, keys: &[Key], replace: bool) {
        use crate::store::roots::{self, RootSet};
        let mut set = RootSet {
            project: self.project.name.clone(),
            project_root: Some(self.project.root.clone()),
            environment: self.project.environment.clone(),
            keys: keys.iter().cloned().collect(),
            updated: store::now_rfc3339(),
        };
        if !replace {
            // Local: add to what this project and environment registered before.
            let id_dir = self.cache_dir.join("store/v1/roots");
            if let Ok(entries) = std::fs::read_dir(&id_dir) {
                for e in entries.flatten() {
                    if let Some(old) = std::fs::read(e.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice::<RootSet>(&b).ok())
                        && old.project_root == set.project_root
                        && old.environment == set.environment
                    {
                        set.keys.extend(old.keys);
                    }
                }
            }
        }
        if let Err(e) = roots::register_local(&self.cache_dir, &set) {
            tracing::warn!("could not register gc roots: {e}");
        }
        if let Ok(remote) = self.remote() {
            let mut remote_set = set.clone();
            if !replace {
                let rel = format!(".store/v1/roots/{}/{}.json", set.project, set.environment);
                if let Ok(files) = remote.read_root_files(&rel) {
                    for b in files {
                        if let Ok(old) = serde_json::from_slice::<RootSet>(&b) {
                            remote_set.keys.extend(old.keys);
                        }
                    }
                }
            }
            if let Err(e) = roots::register_remote(&remote, &remote_set) {
                tracing::warn!("could not register gc roots in the remote: {e}");
            }
        }
    }

    /// pex's own cache (and the venvs `--venv` PEXes install themselves into).
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
        let mut cmd = Command::new(&d.python);
        cmd.arg(self.local.data_path(&d.key))
            .current_dir(&self.project.root);
        for (k, v) in self.project.plugin_environment(plugin)? {
            cmd.env(k, v);
        }
        cmd.env("PEX_ROOT", self.pex_root())
            .env("ALTO_PLUGIN", &plugin.name);
        if interpreter {
            cmd.env("PEX_INTERPRETER", "1");
        } else {
            match eval::entry(self.project, plugin)? {
                Entry::Script(s) => cmd.env("PEX_SCRIPT", s),
                Entry::Module(m) => cmd.env("PEX_MODULE", m),
            };
        }
        Ok(cmd)
    }
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
