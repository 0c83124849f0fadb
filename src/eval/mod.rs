//! Evaluation: the project's plugins become derivations, each keyed by blake3
//! over a canonical, versioned encoding of exactly the inputs that decide its
//! output. Pure but for hashing local plugin sources (a Nix path input).

mod local;

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::{Diagnostic, SourceSpan};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use crate::config::{ConfigError, Plugin, PluginKind, Project, REDACTED, SecretAware};

pub use local::hash_tree;

/// The encoding's version: bump it and every key changes.
const KEY_PREFIX: &str = "alto-drv-v1:";

/// A derivation key: 32 hex characters (128 bits) of blake3.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(pub String);

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Key {
    pub fn of(inputs: &Value) -> Key {
        let text = format!("{KEY_PREFIX}{}", canonical_json(inputs));
        Key(blake3::hash(text.as_bytes()).to_hex()[..32].to_string())
    }

    /// Whether a string can be a key (guards paths built from remote listings).
    pub fn parse(s: &str) -> Option<Key> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| Key(s.to_string()))
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k.as_str()]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

/// The interpreter a plugin is built for, as probed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub implementation: String,
    pub python_version: String,
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
            "python": {"implementation": self.platform.implementation, "version": self.platform.python_version},
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
    builder: &Builder,
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
    let mut d = PluginDerivation {
        key: Key(String::new()),
        pip_url: tokens
            .iter()
            .map(|t| t.shown.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        secrets: Vec::new(),
        build: BuildArgs {
            tokens: tokens.into_iter().map(|t| t.real).collect(),
            secrets,
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
    builder: &Builder,
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
        match plugin_derivation(project, p, &platform, &python, builder).map_err(E::from)? {
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
        assert_eq!(a.0.len(), 32);
        assert!(Key::parse(&a.0).is_some());
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
        let platform = Platform {
            implementation: "cpython".into(),
            python_version: "3.11".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        };
        let builder = Builder {
            tool: "pex".into(),
            version: "2".into(),
            flags: vec![],
        };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        plugin_derivations(
            p,
            &names,
            &mut |_: &Plugin| Ok::<_, EvalError>((platform.clone(), PathBuf::from("python3"))),
            &builder,
        )
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
