//! Evaluation: the project's plugins become derivations, each keyed by blake3
//! over a canonical, versioned encoding of exactly the inputs that decide its
//! output. Pure but for hashing local plugin sources (a Nix path input).

mod local;
pub mod pipeline;

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::{Diagnostic, SourceSpan};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::config::{ConfigError, Plugin, PluginKind, Project, REDACTED, SecretAware};

pub use local::hash_tree;
pub use pipeline::{CatalogInput, PipelineDerivation, PipelineKind, pipeline_derivation};

pub use crate::store::key::{Key, canonical_json};

/// The interpreter a plugin is built for, as probed: what decides which
/// wheels fit it, and nothing else. Not its patch version: 3.11.2 and
/// 3.11.7 take the same wheels and run the same PEX.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub implementation: String,
    /// `major.minor`.
    pub python_version: String,
    /// The ABI tag wheels are chosen by (`cp311`, `cp313t`, `pypy310_pp73`).
    pub abi: String,
    /// The platform tag (`linux_x86_64`, `macosx_11_0_arm64`).
    pub platform: String,
    /// The C library and its version (`glibc 2.36`): manylinux wheels need
    /// at least the version they were built for.
    pub libc: String,
    pub os: String,
    pub arch: String,
}

/// Who builds plugins, and how: part of every plugin key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub tool: String,
    pub version: String,
    pub flags: Vec<String>,
}

/// The two ways a plugin is built: uv installs `pip_url` into a venv that
/// pex packs, or, for what uv cannot take, pex resolves it with a modern pip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Builders {
    pub uv: Builder,
    pub pip: Builder,
}

/// What uv is given for a `pip_url` it can take (real values, secrets and all).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UvInput {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub find_links: Vec<String>,
    pub pre: bool,
    /// Not the default index (pex's `--no-pypi`).
    pub no_pypi: bool,
    /// Requirements, VCS URLs and local paths, in order.
    pub requirements: Vec<String>,
}

/// How a plugin's `pip_url` is resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum Resolve {
    Uv(UvInput),
    /// pex's own resolver; the reason uv cannot take the `pip_url`.
    Pip(String),
}

/// Oldest Python uv builds venvs for.
const UV_MIN_PYTHON: (u32, u32) = (3, 8);

/// Whether uv can take a `pip_url` for `platform`, from its tokens (real
/// and as shown): options uv understands, requirements without secrets (a
/// requirement goes on uv's command line, an index URL through its
/// environment). Decided from the inputs alone, so the key names the
/// builder that really builds.
fn resolve(tokens: &[Token], platform: &Platform) -> Resolve {
    let minor = |v: &str| -> Option<(u32, u32)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    if minor(&platform.python_version).is_none_or(|v| v < UV_MIN_PYTHON) {
        return Resolve::Pip(format!(
            "uv builds for Python {}.{} and later, not {}",
            UV_MIN_PYTHON.0, UV_MIN_PYTHON.1, platform.python_version
        ));
    }
    let mut input = UvInput::default();
    let mut it = tokens.iter();
    while let Some(t) = it.next() {
        let real = t.real.as_str();
        if !real.starts_with('-') {
            if t.real != t.shown {
                return Resolve::Pip(format!(
                    "the requirement `{}` holds a secret, which uv would see on its command line",
                    t.shown
                ));
            }
            input.requirements.push(t.real.clone());
            continue;
        }
        let (name, inline) = match real.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (real, None),
        };
        if name == "--pre" && inline.is_none() {
            input.pre = true;
            continue;
        }
        // pex's `--no-pypi`: uv then searches only the indexes and links given.
        if name == "--no-pypi" && inline.is_none() {
            input.no_pypi = true;
            continue;
        }
        let slot = match name {
            "-i" | "--index-url" => 0,
            "--extra-index-url" => 1,
            "-f" | "--find-links" => 2,
            _ => {
                return Resolve::Pip(format!("uv does not take the option `{}`", t.shown));
            }
        };
        let value = match inline {
            Some(v) => v,
            None => match it.next() {
                Some(v) => v.real.clone(),
                None => return Resolve::Pip(format!("`{}` has no value", t.shown)),
            },
        };
        match slot {
            0 => input.index_url = Some(value),
            1 => input.extra_index_urls.push(value),
            _ => input.find_links.push(value),
        }
    }
    if input.requirements.is_empty() {
        return Resolve::Pip("pip_url names no requirement".into());
    }
    Resolve::Uv(input)
}

/// How a built plugin is entered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Entry {
    /// A console script (`PEX_SCRIPT`).
    Script(String),
    /// A module (`PEX_MODULE`), `module` or `module:function`.
    Module(String),
}

/// What pex is given to build a plugin: the real `pip_url` tokens, secrets
/// and all. Never serialized, and its `Debug` shows no secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildArgs {
    /// The `pip_url` tokens as pex must see them.
    pub tokens: Vec<String>,
    /// The secret values interpolated into them, to keep out of logs.
    pub secrets: Vec<String>,
    /// How they are resolved.
    pub resolve: Resolve,
}

impl std::fmt::Debug for Resolve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The values may hold secrets.
            Resolve::Uv(i) => write!(f, "Uv({} requirements)", i.requirements.len()),
            Resolve::Pip(reason) => write!(f, "Pip({reason:?})"),
        }
    }
}

impl Default for Resolve {
    fn default() -> Resolve {
        Resolve::Pip(String::new())
    }
}

impl std::fmt::Debug for BuildArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildArgs")
            .field("tokens", &self.tokens.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// A plugin PEX to realize.
#[derive(Clone, Debug, Serialize)]
pub struct PluginDerivation {
    pub key: Key,
    /// `pip_url` as shown and hashed: whitespace normalised, each secret
    /// replaced by `REDACTED`.
    pub pip_url: String,
    /// For each secret in `pip_url`, in order, its salted hash (see
    /// [`secret_digest`]): the key changes with the secret, which is never
    /// shown or stored.
    pub secrets: Vec<String>,
    /// What pex is given (not an input: `pip_url` and `secrets` are).
    #[serde(skip)]
    pub build: BuildArgs,
    /// For each local path in `pip_url`, the blake3 of its contents.
    pub local_sources: BTreeMap<String, String>,
    pub platform: Platform,
    pub version: Option<String>,
    pub builder: Builder,
    /// The interpreter the build runs with (not an input: the platform is).
    #[serde(skip)]
    pub python: PathBuf,
    /// Plugins sharing this artifact (not an input).
    pub plugins: Vec<String>,
}

impl PluginDerivation {
    /// Exactly the inputs the key is computed from. `secrets` is there only
    /// when `pip_url` has any, so other keys are what they always were.
    pub fn inputs(&self) -> Value {
        let mut inputs = self.public_inputs();
        if !self.secrets.is_empty() {
            inputs["secrets"] = json!(self.secrets);
        }
        inputs
    }

    /// The inputs but for the secrets' hashes: what salts them.
    fn public_inputs(&self) -> Value {
        json!({
            "kind": "plugin",
            "pip_url": self.pip_url,
            "local_sources": self.local_sources,
            "python": {"implementation": self.platform.implementation, "version": self.platform.python_version, "abi": self.platform.abi},
            "platform": self.platform.platform,
            "libc": self.platform.libc,
            "os": self.platform.os,
            "arch": self.platform.arch,
            "version": self.version,
            "builder": self.builder,
        })
    }
}

/// The blake3 key derivation context of secret inputs.
const SECRET_CONTEXT: &str = "alto-drv-v1 secret input";

/// Rounds of keyed blake3 a secret goes through: each guess at a secret
/// from a published key or record costs as many hashes.
const SECRET_ROUNDS: u32 = 1 << 16;

/// The hash a secret enters a derivation as: keyed blake3 of the value, the
/// key derived from the canonical encoding of the derivation's other
/// inputs (so one secret hashes differently in every derivation, and no
/// table can be computed ahead), chained `SECRET_ROUNDS` times.
pub fn secret_digest(public_inputs: &Value, secret: &str) -> String {
    let salt = blake3::derive_key(SECRET_CONTEXT, canonical_json(public_inputs).as_bytes());
    let mut h = blake3::keyed_hash(&salt, secret.as_bytes());
    for _ in 1..SECRET_ROUNDS {
        h = blake3::keyed_hash(&salt, h.as_bytes());
    }
    h.to_hex().to_string()
}

/// One `pip_url` token: as pex must see it, and as it is shown and hashed.
#[derive(Debug, PartialEq)]
struct Token {
    real: String,
    shown: String,
}

/// Splits a rendered `pip_url` on whitespace, each token twice: real, and
/// with every run of secret characters replaced by `REDACTED`.
fn tokens(rendered: &SecretAware) -> Vec<Token> {
    let mut out = Vec::new();
    let mut real = String::new();
    let mut shown = String::new();
    for (text, secret) in rendered.pieces() {
        let mut redacting = false;
        for c in text.chars() {
            if c.is_whitespace() {
                if !real.is_empty() {
                    out.push(Token {
                        real: std::mem::take(&mut real),
                        shown: std::mem::take(&mut shown),
                    });
                }
                redacting = false;
                continue;
            }
            real.push(c);
            if !secret {
                shown.push(c);
            } else if !redacting {
                shown.push_str(REDACTED);
                redacting = true;
            }
        }
    }
    if !real.is_empty() {
        out.push(Token { real, shown });
    }
    out
}

#[derive(Debug, Error, Diagnostic)]
pub enum EvalError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error("`{token}` in the pip_url of `{plugin}` looks like a local path, but {} does not exist", path.display())]
    #[diagnostic(
        code(alto::eval::missing_source),
        help("paths in pip_url are relative to the project root")
    )]
    MissingLocalSource {
        plugin: String,
        token: String,
        path: PathBuf,
        #[source_code]
        src: crate::config::source::Snippet,
        #[label("this pip_url")]
        span: SourceSpan,
    },

    #[error("cannot read the local plugin source {}", path.display())]
    #[diagnostic(code(alto::eval::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EvalError {
    /// 2: the config or a local source it names is at fault; 1: reading failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            EvalError::Io { .. } => 1,
            EvalError::Config(e) => e.exit_code(),
            _ => 2,
        }
    }
}

/// `pip_url` with whitespace normalised.
pub fn normalize_pip_url(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How the plugin's PEX is entered. The nearest spec of its `inherit_from`
/// chain (itself first) that sets `entrypoint` (a module) or `executable` (a
/// script) decides, `entrypoint` winning within one spec; when none does, the
/// console script named after the root of the chain, as in Meltano: an
/// inheriting plugin runs its parent's package. Not a key input: the PEX is
/// the same whatever runs it.
pub fn entry(project: &Project, plugin: &Plugin) -> Result<Entry, ConfigError> {
    let sets = |path: &Vec<String>, key: &str| {
        project
            .tree
            .get(path)
            .and_then(|spec| spec.get(key))
            .is_some_and(|v| !v.is_null())
    };
    let deciding = plugin
        .lineage
        .iter()
        .find(|path| sets(path, "entrypoint") || sets(path, "executable"));
    if let Some(path) = deciding {
        if sets(path, "entrypoint")
            && let Some(m) = project.setting_str(Some(plugin), "entrypoint")?
        {
            return Ok(Entry::Module(m));
        }
        if let Some(s) = project.setting_str(Some(plugin), "executable")? {
            return Ok(Entry::Script(s));
        }
    }
    Ok(Entry::Script(plugin.root_ancestor().to_string()))
}

/// The local path a pip_url token names: `./x`, `../x`, `/x`, `~/x`, `.`
/// or `file://x`; extras (`./x[dev]`) are stripped.
fn local_path(token: &str) -> Option<&str> {
    if token.starts_with('-') {
        return None;
    }
    let raw = token.strip_prefix("file://").unwrap_or(token);
    let path = match raw.find('[') {
        Some(i) if raw.ends_with(']') => &raw[..i],
        _ => raw,
    };
    let looks_local = path.starts_with("./")
        || path.starts_with("../")
        || path.starts_with('/')
        || path.starts_with("~/")
        || path == "."
        || token.starts_with("file://");
    looks_local.then_some(path)
}

/// The derivation of one plugin, or `None` when it has no `pip_url`.
pub fn plugin_derivation(
    project: &Project,
    plugin: &Plugin,
    platform: &Platform,
    python: &std::path::Path,
    builders: &Builders,
) -> Result<Option<PluginDerivation>, EvalError> {
    let Some(rendered) = project.setting_secret_aware(plugin, "pip_url")? else {
        return Ok(None);
    };
    let tokens = tokens(&rendered);
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut local_sources = BTreeMap::new();
    for Token { real, shown } in &tokens {
        let Some(path) = local_path(real) else {
            continue;
        };
        let token = shown.clone();
        let full = if let Some(rest) = path.strip_prefix("~/") {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(rest)
        } else {
            project.root.join(path)
        };
        // A path with a secret in it is named as shown, never as it is.
        let named = if real == shown {
            full.clone()
        } else {
            PathBuf::from(shown)
        };
        if !full.exists() {
            let (src, span) = project.locate(Some(plugin), "pip_url");
            return Err(EvalError::MissingLocalSource {
                plugin: plugin.name.clone(),
                token,
                path: named,
                src,
                span,
            });
        }
        let hash = hash_tree(&full).map_err(|source| EvalError::Io {
            path: named,
            source,
        })?;
        local_sources.insert(token, hash);
    }
    let version = match plugin.spec.get("_version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let secrets: Vec<String> = rendered
        .secrets()
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let resolve = resolve(&tokens, platform);
    let builder = match resolve {
        Resolve::Uv(_) => &builders.uv,
        Resolve::Pip(_) => &builders.pip,
    };
    let mut d = PluginDerivation {
        // Replaced below, once the inputs are complete.
        key: Key::of(&Value::Null),
        pip_url: tokens
            .iter()
            .map(|t| t.shown.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        secrets: Vec::new(),
        build: BuildArgs {
            tokens: tokens.into_iter().map(|t| t.real).collect(),
            secrets,
            resolve,
        },
        local_sources,
        platform: platform.clone(),
        version,
        builder: builder.clone(),
        python: python.to_path_buf(),
        plugins: vec![plugin.name.clone()],
    };
    let public = d.public_inputs();
    d.secrets = d
        .build
        .secrets
        .iter()
        .map(|s| secret_digest(&public, s))
        .collect();
    d.key = Key::of(&d.inputs());
    Ok(Some(d))
}

/// A plugin's platform and the interpreter that builds for it.
pub type PlatformOf = (Platform, PathBuf);

/// The plugins `alto build` with no names realizes: every plugin with a
/// `pip_url`. Utilities may have none (they are then only config); a tap,
/// target or mapper without one is skipped with a warning, once.
pub fn buildable_plugins(project: &Project) -> Vec<&Plugin> {
    project
        .plugins()
        .filter(|p| {
            if p.has_pip_url() {
                return true;
            }
            warn_no_pip_url(p);
            false
        })
        .collect()
}

fn warn_no_pip_url(p: &Plugin) {
    if p.kind != PluginKind::Utility {
        let noun = p.kind.noun();
        crate::config::keys::warn_once(
            &format!("no-pip-url:{noun}:{}", p.name),
            &format!(
                "{noun} `{}` has no `pip_url`, so alto cannot build it; skipping it \
                 (add `pip_url: ...`, or `inherit_from` a {noun} that has one)",
                p.name
            ),
        );
    }
}

/// Derivations for the named plugins (all buildable ones when `names` is
/// empty), one per key: plugins with the same inputs share one artifact. A
/// named tap, target or mapper without a `pip_url` is an error (a named
/// utility without one has no derivation).
pub fn plugin_derivations<E: From<EvalError>>(
    project: &Project,
    names: &[String],
    platform_of: &mut dyn FnMut(&Plugin) -> Result<PlatformOf, E>,
    builders: &Builders,
) -> Result<Vec<PluginDerivation>, E> {
    let named = !names.is_empty();
    let plugins: Vec<&Plugin> = if named {
        names
            .iter()
            .map(|n| project.plugin(n))
            .collect::<Result<_, _>>()
            .map_err(|e| E::from(EvalError::Config(e)))?
    } else {
        buildable_plugins(project)
    };
    let missing = |p: &Plugin| -> Result<(), E> {
        if named && p.kind != PluginKind::Utility {
            return Err(E::from(EvalError::Config(project.no_pip_url(p))));
        }
        warn_no_pip_url(p);
        Ok(())
    };
    let mut out: Vec<PluginDerivation> = Vec::new();
    for p in plugins {
        if !p.has_pip_url() {
            missing(p)?;
            continue;
        }
        let (platform, python) = platform_of(p)?;
        match plugin_derivation(project, p, &platform, &python, builders).map_err(E::from)? {
            Some(d) => match out.iter_mut().find(|e| e.key == d.key) {
                Some(existing) => existing.plugins.push(p.name.clone()),
                None => out.push(d),
            },
            // A pip_url that renders blank.
            None => missing(p)?,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn keys_are_stable_and_input_sensitive() {
        let a = Key::of(&json!({"pip_url": "x==1", "os": "linux"}));
        let b = Key::of(&json!({"os": "linux", "pip_url": "x==1"}));
        let c = Key::of(&json!({"os": "linux", "pip_url": "x==2"}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str().len(), 32);
        assert!(Key::parse(a.as_str()).is_some());
        assert!(Key::parse("../etc/passwd").is_none());
    }

    fn project(yaml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alto.yaml"), yaml).unwrap();
        let opts = crate::config::LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vec![],
            strict: false,
            vault_layer: false,
        };
        crate::config::load(&opts).unwrap()
    }

    fn derivations(p: &Project, names: &[&str]) -> Result<Vec<PluginDerivation>, EvalError> {
        derivations_for(p, names, &platform("3.11"))
    }

    fn platform(version: &str) -> Platform {
        Platform {
            implementation: "cpython".into(),
            python_version: version.into(),
            abi: format!("cp{}", version.replace('.', "")),
            platform: "linux_x86_64".into(),
            libc: "glibc 2.36".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    fn builders() -> Builders {
        let b = |tool: &str| Builder {
            tool: tool.into(),
            version: "2".into(),
            flags: vec![],
        };
        Builders {
            uv: b("uv+pex"),
            pip: b("pex"),
        }
    }

    fn derivations_for(
        p: &Project,
        names: &[&str],
        platform: &Platform,
    ) -> Result<Vec<PluginDerivation>, EvalError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        plugin_derivations(
            p,
            &names,
            &mut |_: &Plugin| Ok::<_, EvalError>((platform.clone(), PathBuf::from("python3"))),
            &builders(),
        )
    }

    fn resolved(pip_url: &str, version: &str) -> Resolve {
        let toks: Vec<Token> = pip_url
            .split_whitespace()
            .map(|t| Token {
                real: t.replace("SECRET", "s3cr3t"),
                shown: t.replace("SECRET", REDACTED),
            })
            .collect();
        resolve(&toks, &platform(version))
    }

    #[test]
    fn uv_takes_every_usual_pip_url_form_and_pex_the_rest() {
        let uv = |pip_url: &str| match resolved(pip_url, "3.11") {
            Resolve::Uv(i) => i,
            Resolve::Pip(why) => panic!("{pip_url}: {why}"),
        };
        assert_eq!(
            uv("tap-x==1 target-y[s3]>=2").requirements,
            vec!["tap-x==1", "target-y[s3]>=2"]
        );
        assert_eq!(
            uv("git+https://h/r.git@v1#egg=tap-x").requirements,
            vec!["git+https://h/r.git@v1#egg=tap-x"]
        );
        assert_eq!(
            uv("./plugins/tap-x[dev]").requirements,
            vec!["./plugins/tap-x[dev]"]
        );
        let i = uv(
            "--index-url https://u:SECRET@h/simple --extra-index-url=https://e/simple -f ./wheels --pre tap-x==1",
        );
        assert_eq!(i.index_url.as_deref(), Some("https://u:s3cr3t@h/simple"));
        assert_eq!(i.extra_index_urls, vec!["https://e/simple"]);
        assert_eq!(i.find_links, vec!["./wheels"]);
        assert!(i.pre);
        assert_eq!(i.requirements, vec!["tap-x==1"]);
        let pip = |pip_url: &str, version: &str| match resolved(pip_url, version) {
            Resolve::Uv(_) => panic!("{pip_url}: uv"),
            Resolve::Pip(why) => why,
        };
        assert_eq!(
            pip("-e ./plugins/tap-x", "3.11"),
            "uv does not take the option `-e`"
        );
        assert_eq!(
            pip("--trusted-host h tap-x", "3.11"),
            "uv does not take the option `--trusted-host`"
        );
        assert_eq!(
            pip("tap-x==1", "3.7"),
            "uv builds for Python 3.8 and later, not 3.7"
        );
        assert_eq!(
            pip("git+https://SECRET@h/r.git", "3.11"),
            "the requirement `git+https://********@h/r.git` holds a secret, which uv would see on its command line"
        );
        assert_eq!(pip("--index-url", "3.11"), "`--index-url` has no value");
    }

    #[test]
    fn the_builder_in_the_key_is_the_one_that_builds() {
        let p = project(
            "default:\n  taps:\n    tap-a: {pip_url: tap-a==1}\n    tap-b: {pip_url: '--trusted-host h tap-a==1'}\n",
        );
        let ds = derivations(&p, &["tap-a", "tap-b"]).unwrap();
        assert_eq!(ds[0].builder.tool, "uv+pex");
        assert_eq!(ds[1].builder.tool, "pex");
        assert_eq!(ds[0].inputs()["builder"]["tool"], "uv+pex");
    }

    #[test]
    fn the_key_names_the_interpreters_abi_and_platform_not_its_patch_version() {
        let p = project("default:\n  taps:\n    tap-a: {pip_url: tap-a==1}\n");
        let key = |platform: &Platform| {
            derivations_for(&p, &["tap-a"], platform).unwrap()[0]
                .key
                .clone()
        };
        let base = platform("3.11");
        let inputs = derivations_for(&p, &["tap-a"], &base).unwrap()[0].inputs();
        assert_eq!(
            inputs["python"],
            json!({"implementation": "cpython", "version": "3.11", "abi": "cp311"})
        );
        assert_eq!(inputs["platform"], "linux_x86_64");
        assert_eq!(inputs["libc"], "glibc 2.36");
        let k = key(&base);
        assert_ne!(k, key(&platform("3.12")));
        let changed = |f: &dyn Fn(&mut Platform)| {
            let mut p = base.clone();
            f(&mut p);
            key(&p)
        };
        assert_ne!(k, changed(&|p| p.abi = "cp311t".into()));
        assert_ne!(k, changed(&|p| p.platform = "linux_aarch64".into()));
        assert_ne!(k, changed(&|p| p.libc = "glibc 2.28".into()));
    }

    const PLUGINS: &str = "default:
  taps:
    tap-x: {pip_url: tap-x==1, capabilities: [catalog]}
    tap-x-eu: {inherit_from: tap-x, config: {region: eu}}
    tap-x-eu2: {inherit_from: tap-x-eu}
    tap-m: {pip_url: tap-m==1, entrypoint: tap_m.cli}
    tap-m-own: {inherit_from: tap-m, executable: tap-m-own}
    tap-s: {pip_url: tap-s==1, executable: tap-s-main}
    tap-s-child: {inherit_from: tap-s}
    tap-typo: {pip_ulr: tap-typo==1}
  targets:
    target-y: {pip_url: target-y==1}
    target-blank: {pip_url: '  '}
  utilities:
    notes: {config: {a: 1}}
";

    #[test]
    fn inheriting_plugins_run_their_ancestors_entry() {
        let p = project(PLUGINS);
        let e = |n: &str| entry(&p, p.plugin(n).unwrap()).unwrap();
        assert_eq!(e("tap-x"), Entry::Script("tap-x".into()));
        assert_eq!(e("tap-x-eu"), Entry::Script("tap-x".into()));
        assert_eq!(e("tap-x-eu2"), Entry::Script("tap-x".into()));
        assert_eq!(e("tap-m"), Entry::Module("tap_m.cli".into()));
        // The child's own executable wins over an inherited entrypoint.
        assert_eq!(e("tap-m-own"), Entry::Script("tap-m-own".into()));
        assert_eq!(e("tap-s-child"), Entry::Script("tap-s-main".into()));
        // The entry is not a key input: parent and child share one artifact.
        let ds = derivations(&p, &["tap-x", "tap-x-eu"]).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].plugins, vec!["tap-x", "tap-x-eu"]);
    }

    #[test]
    fn named_plugins_without_pip_url_are_errors() {
        let p = project(PLUGINS);
        for (name, noun) in [("tap-typo", "tap"), ("target-blank", "target")] {
            let err = derivations(&p, &[name]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{noun} `{name}` has no `pip_url`, so alto cannot build it")
            );
            assert!(matches!(
                err,
                EvalError::Config(ConfigError::NoPipUrl { .. })
            ));
        }
        let EvalError::Config(ConfigError::NoPipUrl { help, .. }) =
            derivations(&p, &["tap-typo"]).unwrap_err()
        else {
            unreachable!()
        };
        assert!(
            help.unwrap()
                .starts_with("`pip_ulr` is not a key alto reads: did you mean `pip_url`?")
        );
        // A utility without one has no derivation, as before.
        assert!(derivations(&p, &["notes"]).unwrap().is_empty());
    }

    #[test]
    fn building_everything_skips_plugins_without_pip_url() {
        let p = project(PLUGINS);
        let names: Vec<&str> = buildable_plugins(&p)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "tap-x",
                "tap-x-eu",
                "tap-x-eu2",
                "tap-m",
                "tap-m-own",
                "tap-s",
                "tap-s-child",
                "target-y"
            ]
        );
        let ds = derivations(&p, &[]).unwrap();
        assert_eq!(ds.len(), 4);
    }

    #[test]
    fn local_tokens_are_found() {
        let paths: Vec<&str> =
            "./plugins/tap-x[dev] requests==2 -e ../y file:///abs/z git+https://h/r.git"
                .split_whitespace()
                .filter_map(local_path)
                .collect();
        assert_eq!(paths, vec!["./plugins/tap-x", "../y", "/abs/z"]);
        assert_eq!(normalize_pip_url("  a==1 \n b  "), "a==1 b");
    }

    #[test]
    fn tokens_hide_secret_runs_and_keep_the_rest() {
        let mut r = SecretAware::plain("--index-url  https://u:");
        r.push("tok en".into(), true);
        r.push("@host/simple\n tap-x==1 ".into(), false);
        r.push("".into(), true);
        let t = tokens(&r);
        let real: Vec<&str> = t.iter().map(|t| t.real.as_str()).collect();
        let shown: Vec<&str> = t.iter().map(|t| t.shown.as_str()).collect();
        assert_eq!(
            real,
            vec!["--index-url", "https://u:tok", "en@host/simple", "tap-x==1"]
        );
        assert_eq!(
            shown,
            vec![
                "--index-url",
                "https://u:********",
                "********@host/simple",
                "tap-x==1"
            ]
        );
        // Without secrets the tokens are the normalised pip_url's.
        let plain = tokens(&SecretAware::plain(" a==1 \n\t b "));
        assert_eq!(
            plain,
            vec![
                Token {
                    real: "a==1".into(),
                    shown: "a==1".into()
                },
                Token {
                    real: "b".into(),
                    shown: "b".into()
                }
            ]
        );
    }

    #[test]
    fn secrets_are_salted_by_the_other_inputs() {
        let a = json!({"kind": "plugin", "pip_url": "x"});
        let b = json!({"kind": "plugin", "pip_url": "y"});
        assert_eq!(secret_digest(&a, "hunter2"), secret_digest(&a, "hunter2"));
        assert_ne!(secret_digest(&a, "hunter2"), secret_digest(&b, "hunter2"));
        assert_ne!(secret_digest(&a, "hunter2"), secret_digest(&a, "hunter3"));
        assert_ne!(
            secret_digest(&a, "hunter2"),
            blake3::hash(b"hunter2").to_hex().to_string()
        );
    }

    fn project_with_env(yaml: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alto.yaml"), yaml).unwrap();
        let opts = crate::config::LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            strict: false,
            vault_layer: false,
        };
        let p = crate::config::load(&opts).unwrap();
        (dir, p)
    }

    #[test]
    fn a_secret_in_pip_url_is_hashed_into_the_key_and_never_shown() {
        let yaml = "default:\n  taps:\n    tap-x:\n      pip_url: '@format --index-url https://u:{env[TOKEN]}@h/simple tap-x==1'\n    tap-plain:\n      pip_url: tap-x==1\n";
        let (_d1, p1) = project_with_env(yaml, &[("TOKEN", "sekrit-1")]);
        let (_d2, p2) = project_with_env(yaml, &[("TOKEN", "sekrit-2")]);
        let d1 = &derivations(&p1, &["tap-x"]).unwrap()[0];
        let d2 = &derivations(&p2, &["tap-x"]).unwrap()[0];
        assert_eq!(
            d1.pip_url,
            "--index-url https://u:********@h/simple tap-x==1"
        );
        assert_eq!(d1.pip_url, d2.pip_url);
        assert_ne!(d1.key, d2.key, "the key follows the secret");
        assert_eq!(d1.secrets.len(), 1);
        assert_eq!(
            d1.build.tokens,
            vec!["--index-url", "https://u:sekrit-1@h/simple", "tap-x==1"]
        );
        assert_eq!(d1.build.secrets, vec!["sekrit-1"]);
        for shown in [
            d1.inputs().to_string(),
            serde_json::to_string(d1).unwrap(),
            format!("{d1:?}"),
        ] {
            assert!(!shown.contains("sekrit"), "{shown}");
        }
        // A pip_url without secrets has no `secrets` input: its key is as before.
        let plain = &derivations(&p1, &["tap-plain"]).unwrap()[0];
        assert!(plain.inputs().get("secrets").is_none());
        assert_eq!(plain.build.tokens, vec!["tap-x==1"]);
    }

    #[test]
    fn a_pip_url_from_a_secrets_file_is_secret_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alto.yaml"),
            "default:\n  taps:\n    tap-x: {capabilities: [catalog]}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("alto.secrets.yaml"),
            "default:\n  taps:\n    tap-x:\n      pip_url: git+https://tok@h/r.git\n",
        )
        .unwrap();
        let opts = crate::config::LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vec![],
            strict: false,
            vault_layer: false,
        };
        let p = crate::config::load(&opts).unwrap();
        let d = &derivations(&p, &["tap-x"]).unwrap()[0];
        assert_eq!(d.pip_url, "********");
        assert_eq!(d.build.tokens, vec!["git+https://tok@h/r.git"]);
    }
}
