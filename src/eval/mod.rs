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

use crate::config::{ConfigError, Plugin, PluginKind, Project};

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

/// A plugin PEX to realize.
#[derive(Clone, Debug, Serialize)]
pub struct PluginDerivation {
    pub key: Key,
    pub pip_url: String,
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
    /// Exactly the inputs the key is computed from.
    pub fn inputs(&self) -> Value {
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

/// The local paths a pip_url names: `./x`, `../x`, `/x`, `file://x`, or an
/// existing relative path containing `/`; extras (`./x[dev]`) are stripped.
fn local_tokens(pip_url: &str) -> Vec<(String, String)> {
    pip_url
        .split_whitespace()
        .filter(|t| !t.starts_with('-'))
        .filter_map(|t| {
            let raw = t.strip_prefix("file://").unwrap_or(t);
            let path = match raw.find('[') {
                Some(i) if raw.ends_with(']') => &raw[..i],
                _ => raw,
            };
            let looks_local = path.starts_with("./")
                || path.starts_with("../")
                || path.starts_with('/')
                || path.starts_with("~/")
                || path == "."
                || t.starts_with("file://");
            looks_local.then(|| (t.to_string(), path.to_string()))
        })
        .collect()
}

/// The derivation of one plugin, or `None` when it has no `pip_url`.
pub fn plugin_derivation(
    project: &Project,
    plugin: &Plugin,
    platform: &Platform,
    python: &std::path::Path,
    builder: &Builder,
) -> Result<Option<PluginDerivation>, EvalError> {
    let Some(pip_url) = project.setting_str(Some(plugin), "pip_url")? else {
        return Ok(None);
    };
    let pip_url = normalize_pip_url(&pip_url);
    if pip_url.is_empty() {
        return Ok(None);
    }
    let mut local_sources = BTreeMap::new();
    for (token, path) in local_tokens(&pip_url) {
        let full = if let Some(rest) = path.strip_prefix("~/") {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(rest)
        } else {
            project.root.join(&path)
        };
        if !full.exists() {
            let (src, span) = project.locate(Some(plugin), "pip_url");
            return Err(EvalError::MissingLocalSource {
                plugin: plugin.name.clone(),
                token,
                path: full,
                src,
                span,
            });
        }
        let hash = hash_tree(&full).map_err(|source| EvalError::Io {
            path: full.clone(),
            source,
        })?;
        local_sources.insert(token, hash);
    }
    let version = match plugin.spec.get("_version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let mut d = PluginDerivation {
        key: Key(String::new()),
        pip_url,
        local_sources,
        platform: platform.clone(),
        version,
        builder: builder.clone(),
        python: python.to_path_buf(),
        plugins: vec![plugin.name.clone()],
    };
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
        let t = local_tokens(
            "./plugins/tap-x[dev] requests==2 -e ../y file:///abs/z git+https://h/r.git",
        );
        let paths: Vec<&str> = t.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(paths, vec!["./plugins/tap-x", "../y", "/abs/z"]);
        assert_eq!(normalize_pip_url("  a==1 \n b  "), "a==1 b");
    }
}
