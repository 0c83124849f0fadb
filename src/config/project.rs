//! The typed project of one environment: settings, taps, targets and utilities
//! with `inherit_from` resolved, and the lazy rendering of their configs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::error::ConfigError;
use super::format::{Format, KeyPath, child};
use super::interpolate::{self, Piece};
use super::keys::{self, UnknownKey};
use super::load::{Loaded, SectionKey};
use super::source::{Origin, Sources};
use super::tree::{Tree, find_key, overlay};

/// What secrets are replaced with in dumps and logs.
pub const REDACTED: &str = "********";

/// How deep `{this.x}` references may chain before alto calls it a cycle.
const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    Tap,
    Target,
    Utility,
    /// A Singer mapper, run between a tap and a target.
    Mapper,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::Tap,
        PluginKind::Target,
        PluginKind::Utility,
        PluginKind::Mapper,
    ];

    /// The config section holding plugins of this kind.
    pub fn section(self) -> &'static str {
        match self {
            PluginKind::Tap => "taps",
            PluginKind::Target => "targets",
            PluginKind::Utility => "utilities",
            PluginKind::Mapper => "mappers",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            PluginKind::Tap => "tap",
            PluginKind::Target => "target",
            PluginKind::Utility => "utility",
            PluginKind::Mapper => "mapper",
        }
    }
}

/// A tap, target or utility as configured, after `inherit_from`.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub name: String,
    pub kind: PluginKind,
    /// The plugin named by `inherit_from`.
    pub parent: Option<String>,
    /// Config paths of this plugin and its ancestors, nearest first: where its
    /// values came from, for error messages and secret tracking.
    pub lineage: Vec<KeyPath>,
    /// The spec (parent's deep-copied, this plugin's merged over it), not rendered.
    pub spec: Map<String, Value>,
}

impl Plugin {
    /// The name of the plugin at the root of its `inherit_from` chain (its own
    /// name when it inherits from nothing).
    pub fn root_ancestor(&self) -> &str {
        self.lineage
            .last()
            .and_then(|path| path.get(1))
            .map(String::as_str)
            .unwrap_or(&self.name)
    }

    /// Whether the spec names something to build: a non-blank `pip_url`.
    pub fn has_pip_url(&self) -> bool {
        match self.spec.get("pip_url") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        }
    }

    /// A string setting, unrendered.
    pub fn raw_str(&self, key: &str) -> Option<&str> {
        self.spec.get(key).and_then(Value::as_str)
    }

    /// A list-of-strings setting; a single string counts as a list of one.
    pub fn str_list(&self, key: &str) -> Vec<String> {
        match self.spec.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    pub fn capabilities(&self) -> Vec<String> {
        self.str_list("capabilities")
    }

    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities().iter().any(|c| c == cap)
    }

    /// The tap's select rules, `*.*` when none are given.
    pub fn select(&self) -> Vec<String> {
        let s = self.str_list("select");
        if s.is_empty() {
            vec!["*.*".to_string()]
        } else {
            s
        }
    }

    pub fn metadata(&self) -> Map<String, Value> {
        self.spec
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// A rendered value and the paths (relative to it) of the leaves that are secret.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub value: Value,
    pub secrets: Vec<KeyPath>,
}

impl Rendered {
    /// The value with every secret leaf replaced by `REDACTED`.
    pub fn redacted(&self) -> Value {
        let mut v = self.value.clone();
        for path in &self.secrets {
            if let Some(leaf) = get_mut(&mut v, path)
                && !leaf.is_object()
                && !leaf.is_array()
                && !leaf.is_null()
            {
                *leaf = Value::String(REDACTED.to_string());
            }
        }
        v
    }

    /// The secret strings themselves, to scrub from logs.
    pub fn secret_strings(&self) -> Vec<String> {
        self.secrets
            .iter()
            .filter_map(|p| super::tree::get(&self.value, p))
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| s.len() >= 3)
            .collect()
    }
}

/// A rendered string as the pieces it was made of, each marked secret or
/// not: the value, the form to show (each secret piece `REDACTED`), and the
/// secrets themselves can all be had from it.
#[derive(Clone, Default, PartialEq)]
pub struct SecretAware {
    pieces: Vec<(String, bool)>,
}

impl SecretAware {
    pub fn plain(s: &str) -> SecretAware {
        SecretAware {
            pieces: vec![(s.to_string(), false)],
        }
    }

    pub fn secret(s: String) -> SecretAware {
        SecretAware {
            pieces: vec![(s, true)],
        }
    }

    pub fn push(&mut self, text: String, secret: bool) {
        self.pieces.push((text, secret));
    }

    /// The pieces in order: `(text, secret)`.
    pub fn pieces(&self) -> &[(String, bool)] {
        &self.pieces
    }

    pub fn has_secrets(&self) -> bool {
        self.pieces.iter().any(|(_, s)| *s)
    }

    /// The real value.
    pub fn value(&self) -> String {
        self.pieces.iter().map(|(t, _)| t.as_str()).collect()
    }

    /// The value with each secret piece replaced by `REDACTED`.
    pub fn redacted(&self) -> String {
        self.pieces
            .iter()
            .map(|(t, s)| if *s { REDACTED } else { t.as_str() })
            .collect()
    }

    /// The secret pieces, in order.
    pub fn secrets(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter(|(_, s)| *s)
            .map(|(t, _)| t.as_str())
            .collect()
    }
}

/// Never prints a secret piece.
impl std::fmt::Debug for SecretAware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretAware")
            .field(&self.redacted())
            .finish()
    }
}

fn get_mut<'v>(mut v: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    for seg in path {
        v = match v {
            Value::Object(m) => m.get_mut(seg)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A loaded project in its active environment.
pub struct Project {
    pub root: PathBuf,
    pub main_file: PathBuf,
    pub format: Format,
    /// The active environment's name, as the user gave it.
    pub environment: String,
    /// Every environment section found in the files.
    pub environments: Vec<String>,
    pub name: String,
    pub sources: Sources,
    pub tree: Tree,
    pub taps: IndexMap<String, Plugin>,
    pub targets: IndexMap<String, Plugin>,
    pub utilities: IndexMap<String, Plugin>,
    pub mappers: IndexMap<String, Plugin>,
    /// `jobs`: each job's step names as written (steps or other jobs).
    pub jobs: IndexMap<String, Vec<String>>,
    pub schedules: IndexMap<String, super::jobs::Schedule>,
    vars: BTreeMap<String, String>,
    dotenv_names: Vec<String>,
    /// Vault, for `{vault[...]}` fields: contacted when one is rendered.
    vault: std::sync::Arc<super::vault::Vault>,
}

/// Where the raw values being rendered live: a plugin's lineage and a prefix.
struct Owner<'a> {
    lineage: &'a [KeyPath],
    prefix: KeyPath,
}

struct Ctx {
    load_path: Option<String>,
    depth: usize,
}

impl Project {
    pub fn from_loaded(loaded: Loaded) -> Result<Project, ConfigError> {
        let Loaded {
            root,
            main_file,
            format,
            environment,
            environment_found: _,
            environments,
            sources,
            tree,
            vars,
            dotenv_names,
            strict,
            section_keys,
            all_targets,
            vault,
        } = loaded;
        let mut project = Project {
            name: String::new(),
            root,
            main_file,
            format,
            environment,
            environments,
            sources,
            tree,
            taps: IndexMap::new(),
            targets: IndexMap::new(),
            utilities: IndexMap::new(),
            mappers: IndexMap::new(),
            jobs: IndexMap::new(),
            schedules: IndexMap::new(),
            vars,
            dotenv_names,
            vault,
        };
        project.name = match project.tree.value.get("project_name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None | Some(Value::Null) => project
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "alto".to_string()),
            Some(_) => {
                return Err(project.invalid(
                    &["project_name".into()],
                    "`project_name` must be a string",
                    "expected a string",
                    None,
                ));
            }
        };
        for key in ["load_path", "bucket", "bucket_path", "filesystem"] {
            if let Some(v) = project.tree.value.get(key)
                && !v.is_string()
                && !v.is_null()
            {
                return Err(project.invalid(
                    &[key.into()],
                    &format!("`{key}` must be a string"),
                    "expected a string",
                    None,
                ));
            }
        }
        for key in ["environment", "taps", "targets", "utilities", "mappers"] {
            if let Some(v) = project.tree.value.get(key)
                && !v.is_object()
                && !v.is_null()
            {
                return Err(project.invalid(
                    &[key.into()],
                    &format!("`{key}` must be a map"),
                    "expected a map",
                    None,
                ));
            }
        }
        project.warn_extensions();
        for kind in PluginKind::ALL {
            let names: Vec<String> = project
                .tree
                .value
                .get(kind.section())
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for name in &names {
                if let Some(problem) = super::name::problem(name) {
                    return Err(project.bad_name(kind, name, &problem));
                }
            }
            let mut resolved = IndexMap::new();
            for name in names {
                let plugin = project.resolve(kind, &name, &mut Vec::new())?;
                project.validate(&plugin)?;
                resolved.insert(name, plugin);
            }
            match kind {
                PluginKind::Tap => project.taps = resolved,
                PluginKind::Target => project.targets = resolved,
                PluginKind::Utility => project.utilities = resolved,
                PluginKind::Mapper => project.mappers = resolved,
            }
        }
        project.load_jobs(strict)?;
        for unknown in project.unknown_keys(&section_keys, &all_targets) {
            if strict {
                return Err(project.unknown_key_error(&unknown));
            }
            let message = unknown.message();
            keys::warn_once(&format!("key:{message}"), &message);
        }
        Ok(project)
    }

    /// The keys of the active environment alto does not read: at the top of
    /// the `default` and active sections, and in plugin specs (each where it
    /// is written, not where it is inherited).
    fn unknown_keys(&self, section_keys: &[SectionKey], all_targets: &[String]) -> Vec<UnknownKey> {
        let references = keys::references(&self.tree.value);
        let mut found: Vec<UnknownKey> = section_keys
            .iter()
            .filter_map(|k| keys::check_section_key(&k.section, &k.key, k.origin, &references))
            .collect();
        let mut targets: Vec<String> = self.targets.keys().cloned().collect();
        for t in all_targets {
            if !targets.contains(t) {
                targets.push(t.clone());
            }
        }
        for kind in PluginKind::ALL {
            let Some(Value::Object(section)) = self.tree.value.get(kind.section()) else {
                continue;
            };
            for (name, spec) in section {
                let Value::Object(spec) = spec else { continue };
                for mut u in keys::check_plugin(kind, name, spec, &targets, &references) {
                    u.origin = self.tree.origin(&u.path);
                    found.push(u);
                }
            }
        }
        found
    }

    /// `--strict`: an unknown key is an error pointing at it.
    fn unknown_key_error(&self, u: &UnknownKey) -> ConfigError {
        let origin = self.key_origin(
            &u.key,
            u.origin.unwrap_or(Origin {
                source: 0,
                offset: 0,
                len: 0,
            }),
        );
        let free = "keys starting with `_` are yours (comments, anchors)";
        let help = match (&u.other_kind, &u.suggestion) {
            (Some(kinds), _) => format!("move it to one of the {kinds}, or remove it"),
            (None, Some(_)) => format!("without --strict alto warns and ignores it; {free}"),
            (None, None) => {
                let known: Vec<&str> = match u.path.as_slice() {
                    [section, _, _] => PluginKind::ALL
                        .into_iter()
                        .find(|k| k.section() == section)
                        .map(keys::plugin_keys)
                        .unwrap_or_default(),
                    _ => super::load::SETTING_KEYS.to_vec(),
                };
                format!("alto reads {} here; {free}", known.join(", "))
            }
        };
        ConfigError::UnknownKey {
            message: u.message(),
            src: self.sources.named(origin),
            span: origin.span(),
            help: Some(help),
        }
    }

    /// Where a key is written, from where its value is.
    fn key_origin(&self, key: &str, value: Origin) -> Origin {
        match self.sources.get(value.source) {
            Some(f)
                if !matches!(
                    f.layer,
                    super::source::Layer::Environment | super::source::Layer::Vault
                ) =>
            {
                keys::key_origin(&f.text, key, value)
            }
            _ => value,
        }
    }

    /// The error for a plugin name that cannot become a file name, at the name.
    fn bad_name(&self, kind: PluginKind, name: &str, problem: &str) -> ConfigError {
        let path: KeyPath = vec![kind.section().to_string(), name.to_string()];
        let origin = self.tree.origin(&path).unwrap_or(Origin {
            source: 0,
            offset: 0,
            len: 0,
        });
        let origin = self.key_origin(name, origin);
        ConfigError::Invalid {
            message: format!(
                "{} name `{}` cannot be used: {problem}",
                kind.noun(),
                super::name::shown(name)
            ),
            src: self.sources.named(origin),
            span: origin.span(),
            label: "this name".into(),
            help: Some(super::name::NAME_RULE.into()),
        }
    }

    /// The error for a plugin a command must build or run that has no
    /// `pip_url`, pointing at its spec.
    pub fn no_pip_url(&self, plugin: &Plugin) -> ConfigError {
        let path = plugin.lineage.first().cloned().unwrap_or_default();
        let origin = self.tree.origin(&path).unwrap_or(Origin {
            source: 0,
            offset: 0,
            len: 0,
        });
        let origin = self.key_origin(&plugin.name, origin);
        let noun = plugin.kind.noun();
        let mut help = format!(
            "add `pip_url: ...` (what pip installs: a requirement, a VCS URL or a local path), \
             or `inherit_from` a {noun} that has one"
        );
        // A near miss of `pip_url` in the plugin's spec or an ancestor's.
        let typo = plugin.lineage.iter().find_map(|path| {
            let Some(Value::Object(spec)) = self.tree.get(path) else {
                return None;
            };
            let key = spec
                .keys()
                .find(|k| k.as_str() != "pip_url" && keys::closest(k, &["pip_url"]).is_some())?;
            Some((key.clone(), path.join(".")))
        });
        if let Some((key, at)) = typo {
            let place = if at == path.join(".") {
                String::new()
            } else {
                format!(" (in {at})")
            };
            help = format!(
                "`{key}`{place} is not a key alto reads: did you mean `pip_url`? Else {help}"
            );
        }
        ConfigError::NoPipUrl {
            noun,
            name: plugin.name.clone(),
            src: self.sources.named(origin),
            span: origin.span(),
            help: Some(help),
        }
    }

    /// The original's `extensions` (built-in `evidence`, `rill`, or Python
    /// files) are Python-only: alto accepts the key and says, once each, that
    /// they are not run.
    fn warn_extensions(&self) {
        let list = match self.tree.value.get("extensions") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        for ext in list {
            if seen.insert(ext.clone()) {
                tracing::warn!(
                    "extension `{ext}` is a Python extension of the original alto and is not run; \
                     run the tool as a utility instead (`utilities: {{{ext}: {{pip_url: ...}}}}`, then `alto invoke {ext}`)"
                );
            }
        }
    }

    fn resolve(
        &self,
        kind: PluginKind,
        name: &str,
        stack: &mut Vec<String>,
    ) -> Result<Plugin, ConfigError> {
        let path: KeyPath = vec![kind.section().to_string(), name.to_string()];
        let raw = match self.tree.get(&path) {
            Some(Value::Object(m)) => m.clone(),
            Some(Value::Null) | None => Map::new(),
            Some(_) => {
                return Err(self.invalid(
                    &path,
                    &format!("{} `{name}` must be a map of settings", kind.noun()),
                    "expected a map",
                    Some("give it at least a `pip_url`".into()),
                ));
            }
        };
        let Some(parent_value) = raw.get("inherit_from").cloned() else {
            return Ok(Plugin {
                name: name.to_string(),
                kind,
                parent: None,
                lineage: vec![path],
                spec: raw,
            });
        };
        let inherit_path = child(&path, "inherit_from");
        let Some(parent) = parent_value.as_str().map(str::to_string) else {
            return Err(self.invalid(
                &inherit_path,
                "`inherit_from` must name a plugin",
                "expected a name",
                None,
            ));
        };
        stack.push(name.to_string());
        let parent = parent.as_str();
        if stack.iter().any(|s| s == parent) {
            stack.push(parent.to_string());
            return Err(self.invalid(
                &inherit_path,
                &format!("`inherit_from` forms a cycle: {}", stack.join(" → ")),
                "this closes the cycle",
                None,
            ));
        }
        let exists = self
            .tree
            .get(&[kind.section().to_string()])
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(parent));
        if !exists {
            let available: Vec<String> = self
                .tree
                .get(&[kind.section().to_string()])
                .and_then(Value::as_object)
                .map(|m| m.keys().filter(|k| *k != name).cloned().collect())
                .unwrap_or_default();
            return Err(self.invalid(
                &inherit_path,
                &format!(
                    "{} `{name}` inherits from `{parent}`, which is not a configured {}",
                    kind.noun(),
                    kind.noun()
                ),
                "unknown plugin",
                Some(if available.is_empty() {
                    format!("no other {} is configured", kind.section())
                } else {
                    format!("configured {}: {}", kind.section(), available.join(", "))
                }),
            ));
        }
        let base = self.resolve(kind, parent, stack)?;
        stack.pop();
        let mut spec = Value::Object(base.spec.clone());
        let mut own = raw;
        own.remove("inherit_from");
        overlay(&mut spec, &Value::Object(own));
        let mut lineage = vec![path];
        lineage.extend(base.lineage);
        Ok(Plugin {
            name: name.to_string(),
            kind,
            parent: Some(parent.to_string()),
            lineage,
            spec: match spec {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        })
    }

    fn validate(&self, plugin: &Plugin) -> Result<(), ConfigError> {
        let owner = Owner {
            lineage: &plugin.lineage,
            prefix: Vec::new(),
        };
        for (key, want) in [
            ("pip_url", "a string"),
            ("executable", "a string"),
            ("entrypoint", "a string"),
            ("load_path", "a string"),
            ("python", "a string"),
            ("config", "a map"),
            ("environment", "a map"),
            ("metadata", "a map"),
            ("capabilities", "a list of strings"),
            ("select", "a list of strings"),
        ] {
            let Some(v) = plugin.spec.get(key) else {
                continue;
            };
            let ok = match want {
                "a string" => v.is_string() || v.is_null(),
                "a map" => v.is_object() || v.is_null(),
                _ => match v {
                    Value::Array(a) => a.iter().all(Value::is_string),
                    Value::String(_) | Value::Null => true,
                    _ => false,
                },
            };
            if !ok {
                let path = self.owner_path(&owner, &[key.to_string()]);
                return Err(self.invalid(
                    &path,
                    &format!(
                        "`{key}` of {} `{}` must be {want}",
                        plugin.kind.noun(),
                        plugin.name
                    ),
                    &format!("expected {want}"),
                    None,
                ));
            }
        }
        if let Some(Value::String(v)) = plugin.spec.get("_version") {
            let _ = v;
        }
        Ok(())
    }

    /// An error pointing at a setting of `plugin` (in it or the ancestor
    /// that set it), or of the project.
    pub(super) fn invalid_setting(
        &self,
        plugin: Option<&Plugin>,
        key: &str,
        message: &str,
        label: &str,
    ) -> ConfigError {
        let path = match plugin {
            Some(p) => self.owner_path(
                &Owner {
                    lineage: &p.lineage,
                    prefix: Vec::new(),
                },
                &[key.to_string()],
            ),
            None => vec![key.to_string()],
        };
        self.invalid(&path, message, label, None)
    }

    /// An error pointing at the value at `path` in the merged tree.
    pub(super) fn invalid_at(
        &self,
        path: &[String],
        message: &str,
        label: &str,
        help: Option<String>,
    ) -> ConfigError {
        self.invalid(path, message, label, help)
    }

    fn invalid(
        &self,
        path: &[String],
        message: &str,
        label: &str,
        help: Option<String>,
    ) -> ConfigError {
        let origin = self.tree.origin(path).unwrap_or(Origin {
            source: 0,
            offset: 0,
            len: 0,
        });
        ConfigError::Invalid {
            message: message.to_string(),
            src: self.sources.named(origin),
            span: origin.span(),
            label: label.to_string(),
            help,
        }
    }

    /// The tree path (in the plugin or an ancestor) a raw value came from.
    fn owner_path(&self, owner: &Owner, rel: &[String]) -> KeyPath {
        let mut suffix = owner.prefix.clone();
        suffix.extend_from_slice(rel);
        for base in owner.lineage {
            let mut p = base.clone();
            p.extend_from_slice(&suffix);
            if self.tree.exact_origin(&p).is_some() {
                return p;
            }
        }
        let mut p = owner.lineage.first().cloned().unwrap_or_default();
        p.extend_from_slice(&suffix);
        p
    }

    fn origin_of(&self, owner: &Owner, rel: &[String]) -> Origin {
        let p = self.owner_path(owner, rel);
        self.tree.origin(&p).unwrap_or(Origin {
            source: 0,
            offset: 0,
            len: 0,
        })
    }

    fn is_secret_origin(&self, path: &[String]) -> bool {
        self.tree
            .exact_origin(path)
            .and_then(|o| self.sources.layer(o))
            .is_some_and(|l| l.is_secret())
    }

    /// Replaces a tap's select rules for this process only (`alto run
    /// --select/--exclude`): `select` replaces the configured rules (all of
    /// them but the `~` hash rules, which still apply), each `exclude`
    /// becomes a `!` rule after them. The files are not touched.
    pub fn override_select(
        &mut self,
        tap: &str,
        select: &[String],
        exclude: &[String],
    ) -> Result<(), ConfigError> {
        let configured = self.tap(tap)?.str_list("select");
        let (hash, plain): (Vec<String>, Vec<String>) =
            configured.into_iter().partition(|r| r.starts_with('~'));
        let mut rules = if select.is_empty() {
            plain
        } else {
            select.to_vec()
        };
        rules.extend(exclude.iter().map(|e| {
            if e.starts_with('!') {
                e.clone()
            } else {
                format!("!{e}")
            }
        }));
        rules.extend(hash);
        if let Some(plugin) = self.taps.get_mut(tap) {
            plugin.spec.insert(
                "select".into(),
                Value::Array(rules.into_iter().map(Value::String).collect()),
            );
        }
        Ok(())
    }

    // ----- lookups ---------------------------------------------------------

    /// A plugin of any kind by name (taps first, then targets, then utilities).
    pub fn plugin(&self, name: &str) -> Result<&Plugin, ConfigError> {
        self.taps
            .get(name)
            .or_else(|| self.targets.get(name))
            .or_else(|| self.utilities.get(name))
            .or_else(|| self.mappers.get(name))
            .ok_or_else(|| self.unknown(name, None))
    }

    pub fn tap(&self, name: &str) -> Result<&Plugin, ConfigError> {
        self.taps
            .get(name)
            .ok_or_else(|| self.unknown(name, Some(PluginKind::Tap)))
    }

    pub fn mapper(&self, name: &str) -> Result<&Plugin, ConfigError> {
        self.mappers
            .get(name)
            .ok_or_else(|| self.unknown(name, Some(PluginKind::Mapper)))
    }

    pub fn target(&self, name: &str) -> Result<&Plugin, ConfigError> {
        self.targets
            .get(name)
            .ok_or_else(|| self.unknown(name, Some(PluginKind::Target)))
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.taps
            .values()
            .chain(self.targets.values())
            .chain(self.utilities.values())
            .chain(self.mappers.values())
    }

    fn unknown(&self, name: &str, kind: Option<PluginKind>) -> ConfigError {
        let kinds: Vec<PluginKind> = match kind {
            Some(k) => vec![k],
            None => PluginKind::ALL.to_vec(),
        };
        let mut names = Vec::new();
        for k in &kinds {
            let m = match k {
                PluginKind::Tap => &self.taps,
                PluginKind::Target => &self.targets,
                PluginKind::Utility => &self.utilities,
                PluginKind::Mapper => &self.mappers,
            };
            names.extend(m.keys().cloned());
        }
        let noun = kind.map(|k| k.noun()).unwrap_or("plugin");
        let close = names
            .iter()
            .find(|n| super::tree::key_matches(n, name))
            .cloned();
        ConfigError::Unknown {
            message: format!(
                "no {noun} named `{name}` in the {} environment",
                self.environment
            ),
            help: Some(match close {
                Some(c) => format!("did you mean `{c}`?"),
                None if names.is_empty() => format!(
                    "no {noun}s are configured; add one under `{}`",
                    kinds[0].section()
                ),
                None => format!("configured: {}", names.join(", ")),
            }),
        }
    }

    /// The root `load_path` setting, unrendered.
    pub fn root_load_path(&self) -> Option<&str> {
        self.tree.value.get("load_path").and_then(Value::as_str)
    }

    /// The load path data from this tap lands in: the tap's own, else the root's.
    pub fn load_path_of(&self, plugin: &Plugin) -> Result<Option<String>, ConfigError> {
        let owner = Owner {
            lineage: &plugin.lineage,
            prefix: Vec::new(),
        };
        let root_ctx = Ctx {
            load_path: None,
            depth: 0,
        };
        let raw = match plugin.spec.get("load_path") {
            Some(Value::String(s)) => Some((s.clone(), &owner)),
            _ => None,
        };
        let root_owner = Owner {
            lineage: &[Vec::new()][..],
            prefix: Vec::new(),
        };
        let raw = raw.or_else(|| self.root_load_path().map(|s| (s.to_string(), &root_owner)));
        match raw {
            None => Ok(None),
            Some((s, owner)) => {
                let mut secret = false;
                let v = self.render_str(
                    &s,
                    owner,
                    &["load_path".to_string()],
                    &root_ctx,
                    &mut secret,
                )?;
                Ok(Some(v))
            }
        }
    }

    /// A string setting of a plugin (or, with `None`, of the project),
    /// `@format` rendered; `None` when unset.
    pub fn setting_str(
        &self,
        plugin: Option<&Plugin>,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let root_lineage = [Vec::new()];
        let (value, owner) = match plugin {
            Some(p) => (
                p.spec.get(key),
                Owner {
                    lineage: &p.lineage,
                    prefix: Vec::new(),
                },
            ),
            None => (
                self.tree.value.get(key),
                Owner {
                    lineage: &root_lineage,
                    prefix: Vec::new(),
                },
            ),
        };
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let ctx = Ctx {
                    load_path: self.root_load_path().map(str::to_string),
                    depth: 0,
                };
                let mut secret = false;
                self.render_str(s, &owner, &[key.to_string()], &ctx, &mut secret)
                    .map(Some)
            }
            Some(other) => Ok(Some(python_str(other))),
        }
    }

    /// A string setting of a plugin, `@format` rendered piece by piece, so
    /// that what came from secrets can be told from the rest: a value from
    /// a secret layer (`alto.secrets.*`, `ALTO_*`) is one secret piece,
    /// `{env[...]}` fields (and `{this...}` fields rendering a secret) are
    /// secret pieces, text is not. `None` when unset.
    pub fn setting_secret_aware(
        &self,
        plugin: &Plugin,
        key: &str,
    ) -> Result<Option<SecretAware>, ConfigError> {
        let owner = Owner {
            lineage: &plugin.lineage,
            prefix: Vec::new(),
        };
        let rel = [key.to_string()];
        let rendered = match plugin.spec.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => {
                let ctx = Ctx {
                    load_path: self.root_load_path().map(str::to_string),
                    depth: 0,
                };
                self.render_segments(s, &owner, &rel, &ctx)?
            }
            Some(other) => SecretAware::plain(&python_str(other)),
        };
        if self.is_secret_origin(&self.owner_path(&owner, &rel)) {
            return Ok(Some(SecretAware::secret(rendered.value())));
        }
        Ok(Some(rendered))
    }

    /// A map setting of the project (`s3_settings`, ...), rendered.
    pub fn setting_map(&self, key: &str) -> Result<Option<Map<String, Value>>, ConfigError> {
        let Some(v) = self.tree.value.get(key) else {
            return Ok(None);
        };
        if v.is_null() {
            return Ok(None);
        }
        let lineage = [Vec::new()];
        let owner = Owner {
            lineage: &lineage,
            prefix: vec![key.to_string()],
        };
        let ctx = Ctx {
            load_path: self.root_load_path().map(str::to_string),
            depth: 0,
        };
        match self.render_value(v, &owner, &mut Vec::new(), &ctx, &mut Vec::new())? {
            Value::Object(m) => Ok(Some(m)),
            _ => Err(self.invalid(
                &[key.to_string()],
                &format!("`{key}` must be a map"),
                "expected a map",
                None,
            )),
        }
    }

    /// Where in the files a setting is, for errors raised by later stages.
    pub fn locate(
        &self,
        plugin: Option<&Plugin>,
        key: &str,
    ) -> (super::source::Snippet, miette::SourceSpan) {
        let root_lineage = [Vec::new()];
        let owner = match plugin {
            Some(p) => Owner {
                lineage: &p.lineage,
                prefix: Vec::new(),
            },
            None => Owner {
                lineage: &root_lineage,
                prefix: Vec::new(),
            },
        };
        let o = self.origin_of(&owner, &[key.to_string()]);
        (self.sources.named(o), o.span())
    }

    // ----- rendering -------------------------------------------------------

    /// The config a plugin receives, `@format` rendered. With `for_tap`, a
    /// target's config as it loads that tap's data: the tap's `load_path` and
    /// the tap's override block for this target apply.
    pub fn render_config(
        &self,
        name: &str,
        for_tap: Option<&str>,
    ) -> Result<Rendered, ConfigError> {
        let plugin = self.plugin(name)?;
        let tap = match for_tap {
            Some(t) => {
                if plugin.kind != PluginKind::Target {
                    return Err(ConfigError::Unknown {
                        message: format!(
                            "`--tap` applies to targets, and `{name}` is a {}",
                            plugin.kind.noun()
                        ),
                        help: None,
                    });
                }
                Some(self.tap(t)?)
            }
            None => None,
        };
        let load_path = self.load_path_of(tap.unwrap_or(plugin))?;
        let ctx = Ctx {
            load_path,
            depth: 0,
        };
        let owner = Owner {
            lineage: &plugin.lineage,
            prefix: vec!["config".to_string()],
        };
        let base = match plugin.spec.get("config") {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::Object(Map::new()),
        };
        let mut secrets = Vec::new();
        let mut value = self.render_value(&base, &owner, &mut Vec::new(), &ctx, &mut secrets)?;
        if let Some(tap) = tap
            && let Some(over) = tap.spec.get(&plugin.name)
        {
            let over_owner = Owner {
                lineage: &tap.lineage,
                prefix: vec![plugin.name.clone()],
            };
            if !over.is_object() {
                let path = self.owner_path(&over_owner, &[]);
                return Err(self.invalid(
                    &path,
                    &format!(
                        "the `{}` block of tap `{}` must be a map of target settings",
                        plugin.name, tap.name
                    ),
                    "expected a map",
                    None,
                ));
            }
            let rendered =
                self.render_value(over, &over_owner, &mut Vec::new(), &ctx, &mut secrets)?;
            overlay(&mut value, &rendered);
        }
        Ok(Rendered { value, secrets })
    }

    /// The whole merged config of the active environment, or the parts named by
    /// dotted keys, rendered.
    pub fn render_dump(&self, keys: &[String]) -> Result<Rendered, ConfigError> {
        let ctx = Ctx {
            load_path: self.root_load_path().map(str::to_string),
            depth: 0,
        };
        let root_lineage = [Vec::new()];
        if keys.is_empty() {
            let owner = Owner {
                lineage: &root_lineage,
                prefix: Vec::new(),
            };
            let mut secrets = Vec::new();
            let value = self.render_value(
                &self.tree.value,
                &owner,
                &mut Vec::new(),
                &ctx,
                &mut secrets,
            )?;
            return Ok(Rendered { value, secrets });
        }
        let mut out = Map::new();
        let mut secrets = Vec::new();
        for key in keys {
            let path = self
                .lookup_path(&key.split('.').map(str::to_string).collect::<Vec<_>>())
                .ok_or_else(|| ConfigError::Unknown {
                    message: format!(
                        "`{key}` is not in the config of the {} environment",
                        self.environment
                    ),
                    help: Some("`alto dump` with no key shows everything".into()),
                })?;
            let raw = self.tree.get(&path).cloned().unwrap_or(Value::Null);
            let owner = Owner {
                lineage: &root_lineage,
                prefix: path.clone(),
            };
            let mut s = Vec::new();
            let v = self.render_value(&raw, &owner, &mut Vec::new(), &ctx, &mut s)?;
            secrets.extend(s.into_iter().map(|p| {
                let mut q = vec![key.clone()];
                q.extend(p);
                q
            }));
            out.insert(key.clone(), v);
        }
        Ok(Rendered {
            value: Value::Object(out),
            secrets,
        })
    }

    /// The environment a plugin's process gets from the config: the top-level
    /// `environment` map, then the plugin's own; values as strings.
    pub fn plugin_environment(
        &self,
        plugin: &Plugin,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let ctx = Ctx {
            load_path: self.load_path_of(plugin)?,
            depth: 0,
        };
        let mut out: IndexMap<String, String> = IndexMap::new();
        let root_lineage = [Vec::new()];
        let sources = [
            (
                self.tree.value.get("environment"),
                Owner {
                    lineage: &root_lineage,
                    prefix: vec!["environment".into()],
                },
            ),
            (
                plugin.spec.get("environment"),
                Owner {
                    lineage: &plugin.lineage,
                    prefix: vec!["environment".into()],
                },
            ),
        ];
        for (map, owner) in sources {
            let Some(Value::Object(m)) = map else {
                continue;
            };
            for (k, v) in m {
                let mut secrets = Vec::new();
                let r = self.render_value(v, &owner, &mut vec![k.clone()], &ctx, &mut secrets)?;
                out.insert(k.clone(), python_str(&r));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Every secret string of the active environment, to scrub from logs.
    pub fn secret_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .dotenv_names
            .iter()
            .filter(|k| !k.starts_with("ALTO_ENV"))
            .filter_map(|k| self.vars.get(k).cloned())
            .collect();
        out.extend(self.vault.settings().secrets());
        if let Ok(r) = self.render_dump(&[]) {
            out.extend(r.secret_strings());
        }
        out.retain(|s| s.len() >= 3);
        out.sort();
        out.dedup();
        out
    }

    fn render_value(
        &self,
        v: &Value,
        owner: &Owner,
        rel: &mut KeyPath,
        ctx: &Ctx,
        secrets: &mut Vec<KeyPath>,
    ) -> Result<Value, ConfigError> {
        match v {
            Value::Object(m) => {
                let mut out = Map::with_capacity(m.len());
                for (k, c) in m {
                    rel.push(k.clone());
                    let r = self.render_value(c, owner, rel, ctx, secrets);
                    rel.pop();
                    out.insert(k.clone(), r?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, c) in a.iter().enumerate() {
                    rel.push(i.to_string());
                    let r = self.render_value(c, owner, rel, ctx, secrets);
                    rel.pop();
                    out.push(r?);
                }
                Ok(Value::Array(out))
            }
            leaf => {
                let mut secret = self.is_secret_origin(&self.owner_path(owner, rel));
                let out = match leaf {
                    Value::String(s) => {
                        Value::String(self.render_str(s, owner, rel, ctx, &mut secret)?)
                    }
                    other => other.clone(),
                };
                if secret {
                    secrets.push(rel.clone());
                }
                Ok(out)
            }
        }
    }

    fn render_str(
        &self,
        s: &str,
        owner: &Owner,
        rel: &[String],
        ctx: &Ctx,
        secret: &mut bool,
    ) -> Result<String, ConfigError> {
        let rendered = self.render_segments(s, owner, rel, ctx)?;
        if rendered.has_secrets() {
            *secret = true;
        }
        Ok(rendered.value())
    }

    /// A string rendered piece by piece, each piece knowing whether it came
    /// from a secret (`{env[...]}`, or a `{this...}` that renders one).
    fn render_segments(
        &self,
        s: &str,
        owner: &Owner,
        rel: &[String],
        ctx: &Ctx,
    ) -> Result<SecretAware, ConfigError> {
        let Some(template) = interpolate::template(s) else {
            return Ok(SecretAware::plain(s));
        };
        let key = || self.owner_path(owner, rel).join(".");
        let pieces = interpolate::parse(template).map_err(|message| {
            let o = self.origin_of(owner, rel);
            ConfigError::Invalid {
                message: format!("`{}`: {message}", key()),
                src: self.sources.named(o),
                span: o.span(),
                label: "in this @format string".into(),
                help: None,
            }
        })?;
        if ctx.depth > MAX_DEPTH {
            let o = self.origin_of(owner, rel);
            return Err(ConfigError::Invalid {
                message: format!("`{}`: @format references form a cycle", key()),
                src: self.sources.named(o),
                span: o.span(),
                label: "refers back to itself".into(),
                help: None,
            });
        }
        let mut out = SecretAware::default();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push(t, false),
                Piece::Env(name) => {
                    out.push(
                        self.env_var(&name, ctx).ok_or_else(|| {
                            let o = self.origin_of(owner, rel);
                            ConfigError::UnsetVariable {
                                var: name.clone(),
                                key: key(),
                                src: self.sources.named(o),
                                span: o.span(),
                            }
                        })??,
                        true,
                    );
                }
                Piece::Vault { path, key: name } => {
                    let v = self.vault.value(&path, &name, &key())?;
                    out.push(python_str(&v), true);
                }
                Piece::This(path) => {
                    if path.len() == 1 && path[0] == "load_path" {
                        match &ctx.load_path {
                            Some(lp) => {
                                out.push(lp.clone(), false);
                                continue;
                            }
                            None => {
                                let o = self.origin_of(owner, rel);
                                return Err(ConfigError::MissingPath {
                                    path: "load_path".into(),
                                    key: key(),
                                    src: self.sources.named(o),
                                    span: o.span(),
                                    help: Some(
                                        "set `load_path` at the top of the config or on the tap"
                                            .into(),
                                    ),
                                });
                            }
                        }
                    }
                    let Some(full) = self.lookup_path(&path) else {
                        let o = self.origin_of(owner, rel);
                        return Err(ConfigError::MissingPath {
                            path: path.join("."),
                            key: key(),
                            src: self.sources.named(o),
                            span: o.span(),
                            help: Some(
                                "`this` is the merged config of the active environment".into(),
                            ),
                        });
                    };
                    let target = self.tree.get(&full).cloned().unwrap_or(Value::Null);
                    let target_owner = Owner {
                        lineage: &[Vec::new()][..],
                        prefix: Vec::new(),
                    };
                    let inner = Ctx {
                        load_path: ctx.load_path.clone(),
                        depth: ctx.depth + 1,
                    };
                    let mut inner_secrets = Vec::new();
                    let rendered = self.render_value(
                        &target,
                        &target_owner,
                        &mut full.clone(),
                        &inner,
                        &mut inner_secrets,
                    )?;
                    out.push(python_str(&rendered), !inner_secrets.is_empty());
                }
            }
        }
        Ok(out)
    }

    /// `{env[NAME]}`: the config's `environment` map, else the process, else `.env`.
    fn env_var(&self, name: &str, ctx: &Ctx) -> Option<Result<String, ConfigError>> {
        if let Some(v) = self.tree.value.get("environment").and_then(|e| e.get(name)) {
            let owner = Owner {
                lineage: &[Vec::new()][..],
                prefix: vec!["environment".into()],
            };
            let inner = Ctx {
                load_path: ctx.load_path.clone(),
                depth: ctx.depth + 1,
            };
            let mut s = Vec::new();
            return Some(
                self.render_value(v, &owner, &mut vec![name.to_string()], &inner, &mut s)
                    .map(|v| python_str(&v)),
            );
        }
        self.vars.get(name).cloned().map(Ok)
    }

    /// A `this.` path resolved against the tree, each segment matched loosely.
    fn lookup_path(&self, path: &[String]) -> Option<KeyPath> {
        let mut node = &self.tree.value;
        let mut out = Vec::new();
        for seg in path {
            match node {
                Value::Object(m) => {
                    let k = find_key(m, seg)?;
                    node = &m[k.as_str()];
                    out.push(k.clone());
                }
                Value::Array(a) => {
                    let i: usize = seg.parse().ok()?;
                    node = a.get(i)?;
                    out.push(seg.clone());
                }
                _ => return None,
            }
        }
        Some(out)
    }
}

/// How Python's `str()` shows a value, as the original's @format and hash
/// rules did (floats in Python's repr).
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

/// Python's float repr: the shortest digits that read back as the same
/// float, of those the nearest to it (a tie goes to the even digit, as
/// Python's dtoa does); exponent form below 1e-4 and from 1e16.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's shortest digits; their count, rounded exactly (half to even).
    let shortest = format!("{:e}", f.abs());
    let count = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let exact = format!("{:.*e}", count.saturating_sub(1), f.abs());
    let chosen = if exact.parse::<f64>() == Ok(f.abs()) {
        exact
    } else {
        shortest
    };
    let (mantissa, exp) = chosen.split_once('e').unwrap_or((&chosen, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        return format!(
            "{sign}{first}{dot}{rest}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        let zeros = "0".repeat(int_len - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadOptions;

    fn load(
        files: &[(&str, &str)],
        env: Option<&str>,
        strict: bool,
    ) -> Result<Project, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let opts = LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: env.map(str::to_string),
            vars: vec![],
            strict,
            vault_layer: false,
        };
        crate::config::load(&opts)
    }

    fn unknown(files: &[(&str, &str)], env: Option<&str>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let opts = LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: env.map(str::to_string),
            vars: vec![],
            strict: false,
            vault_layer: false,
        };
        let loaded = super::super::load::load(&opts).unwrap();
        let section_keys = loaded.section_keys.clone();
        let all_targets = loaded.all_targets.clone();
        let p = Project::from_loaded(loaded).unwrap();
        p.unknown_keys(&section_keys, &all_targets)
            .iter()
            .map(UnknownKey::message)
            .collect()
    }

    const CONFIG: &str = "default:
  project_name: p
  buket: b
  _anchors: {x: 1}
  taps:
    tap-x:
      pip_ulr: tap-x==1
      target-y: {batch: 1}
      target-prod: {batch: 2}
      _note: hi
    tap-x-eu:
      inherit_from: tap-x
      confg: {}
  targets:
    target-y: {pip_url: target-y==1, select: ['a.*']}
prod:
  targets:
    target-prod: {pip_url: target-prod==1}
  taps:
    tap-x:
      capabilites: [catalog]
";

    #[test]
    fn unknown_keys_of_the_active_environment_are_found() {
        assert_eq!(
            unknown(&[("alto.yaml", CONFIG)], None),
            vec![
                "default: unknown key `buket`; did you mean `bucket`?",
                "taps.tap-x: unknown key `pip_ulr`; did you mean `pip_url`?",
                "taps.tap-x-eu: unknown key `confg`; did you mean `config`?",
                "targets.target-y: `select` applies to taps only; alto ignores it here",
            ]
        );
        // prod's section is checked only when prod is active.
        assert!(unknown(&[("alto.yaml", CONFIG)], Some("prod")).contains(
            &"taps.tap-x: unknown key `capabilites`; did you mean `capabilities`?".to_string()
        ));
    }

    #[test]
    fn strict_makes_the_first_unknown_key_an_error_at_the_key() {
        assert!(load(&[("alto.yaml", CONFIG)], None, false).is_ok());
        let err = load(&[("alto.yaml", CONFIG)], None, true).err().unwrap();
        assert_eq!(
            err.to_string(),
            "default: unknown key `buket`; did you mean `bucket`?"
        );
        let ConfigError::UnknownKey { src, span, .. } = &err else {
            panic!("{err:?}")
        };
        let text = miette::SourceCode::read_span(src, span, 0, 0).unwrap();
        assert_eq!(std::str::from_utf8(text.data()).unwrap(), "buket");
        assert_eq!(text.line(), 2);
        let plugin_only = "default:\n  taps:\n    tap-x:\n      pip_ulr: tap-x==1\n";
        let err = load(&[("alto.yaml", plugin_only)], None, true)
            .err()
            .unwrap();
        let ConfigError::UnknownKey { span, help, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(span.offset(), plugin_only.find("pip_ulr").unwrap());
        assert_eq!(span.len(), "pip_ulr".len());
        assert!(help.as_deref().unwrap().contains("without --strict"));
    }

    #[test]
    fn the_no_pip_url_error_points_at_the_spec() {
        let text = "default:\n  taps:\n    tap-x:\n      pip_ulr: tap-x==1\n";
        let p = load(&[("alto.yaml", text)], None, false).unwrap();
        let err = p.no_pip_url(p.tap("tap-x").unwrap());
        assert_eq!(
            err.to_string(),
            "tap `tap-x` has no `pip_url`, so alto cannot build it"
        );
        let ConfigError::NoPipUrl { span, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(span.offset(), text.find("tap-x:").unwrap());
    }

    #[test]
    fn root_ancestors() {
        let text = "default:\n  taps:\n    a: {pip_url: a}\n    b: {inherit_from: a}\n    c: {inherit_from: b}\n";
        let p = load(&[("alto.yaml", text)], None, false).unwrap();
        assert_eq!(p.tap("a").unwrap().root_ancestor(), "a");
        assert_eq!(p.tap("c").unwrap().root_ancestor(), "a");
        assert!(p.tap("c").unwrap().has_pip_url());
    }
}
