//! `alto import meltano`: a Meltano project file (`meltano.yml`) translated
//! into an `alto.yaml`, with everything that has no alto equivalent listed
//! rather than dropped.
//!
//! Meltano resolves plugin settings leaf by leaf: an environment's value
//! replaces the base one (lists included) and an inheriting plugin falls back
//! on its parent. alto merges maps the same way, and `inherit_from` replaces
//! lists too, but an environment section *appends* its lists to `default`'s;
//! so a base list that some environment overrides moves out of `default` into
//! the environment sections. `$VAR` and `${VAR}` become `@format` strings
//! reading `{env[VAR]}`, and the extractor's load schema becomes each tap's
//! `load_path`, which targets read as `{this.load_path}`.

use super::load::visible_span;
use std::collections::BTreeSet;

use miette::{Diagnostic, SourceSpan};
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use super::format::{Format, KeyPath, SpanMap, child};
use super::interpolate;

/// What `translate` produces: the text of `alto.yaml` and what it left out.
#[derive(Debug, Clone)]
pub struct Translation {
    pub alto_yaml: String,
    /// Every plugin written: its alto section (`taps`, ...) and name.
    pub plugins: Vec<(String, String)>,
    /// Meltano settings with no alto equivalent, by their path in meltano.yml.
    pub untranslated: Vec<Untranslated>,
    /// Translations that change the shape of the config, worth knowing about.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untranslated {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Error, Diagnostic)]
pub enum MeltanoError {
    #[error("{file} is not valid YAML: {message}")]
    #[diagnostic(code(alto::meltano::syntax))]
    Syntax {
        file: String,
        message: String,
        #[source_code]
        src: super::source::Snippet,
        #[label("here")]
        span: SourceSpan,
        /// For a key given twice: where it was first given.
        #[label("first given here")]
        first: Option<SourceSpan>,
    },

    #[error("{file} is not a Meltano project file alto can read: {message}")]
    #[diagnostic(code(alto::meltano::invalid))]
    Invalid {
        file: String,
        message: String,
        #[source_code]
        src: super::source::Snippet,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },
}

/// Translates the text of a `meltano.yml`; `project_name` becomes alto's
/// `project_name` (the Meltano project's directory name).
pub fn translate(meltano_yml: &str, project_name: &str) -> Result<Translation, MeltanoError> {
    translate_named(meltano_yml, project_name, "meltano.yml")
}

/// `translate`, with the file's name for diagnostics and the header comment.
pub fn translate_named(
    text: &str,
    project_name: &str,
    file: &str,
) -> Result<Translation, MeltanoError> {
    let parsed = Format::Yaml.parse(text).map_err(|e| MeltanoError::Syntax {
        file: file.to_string(),
        message: e.message.clone(),
        src: super::source::snippet(file, text),
        span: visible_span(text, e.offset, e.len),
        first: e.first.map(|(offset, len)| visible_span(text, offset, len)),
    })?;
    let empty = Map::new();
    let root = match &parsed.value {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => {
            return Err(MeltanoError::Invalid {
                file: file.to_string(),
                message: "the top level must be a map".into(),
                src: super::source::snippet(file, text),
                span: visible_span(text, 0, 1),
                label: "expected `version`, `plugins`, `environments`, ...".into(),
                help: None,
            });
        }
    };
    let mut src = Src {
        file,
        text,
        spans: &parsed.spans,
        plugins: Vec::new(),
        envs: Vec::new(),
        early: Vec::new(),
    };
    src.collect_plugins(root)?;
    src.collect_envs(root)?;
    src.check_cycles()?;
    let tr = Tr {
        src: &src,
        config_env: BTreeSet::new(),
        untranslated: Vec::new(),
        notes: Vec::new(),
        uses_load_path: false,
    };
    Ok(tr.run(root, project_name))
}

/// A plugin setting Meltano reads from a variable: `TAP_X_PASSWORD` is
/// setting `password` of plugin `tap-x` (the plugin's name upper-cased, `-`
/// as `_`, then the setting's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSetting {
    /// The plugin's alto section (`taps`, `targets`, ...).
    pub section: String,
    pub plugin: String,
    pub setting: String,
    pub var: String,
    pub value: String,
}

/// The `.env` variables that are settings of `plugins` (section, name); the
/// longest plugin name wins (`TAP_X_EU_KEY` is `tap-x-eu`'s `key`).
pub fn env_settings(plugins: &[(String, String)], vars: &[(String, String)]) -> Vec<EnvSetting> {
    let mut by_prefix: Vec<(String, &(String, String))> = plugins
        .iter()
        .map(|p| {
            (
                format!("{}_", p.1.to_ascii_uppercase().replace(['-', '.'], "_")),
                p,
            )
        })
        .collect();
    by_prefix.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let mut out = Vec::new();
    for (var, value) in vars {
        let Some((prefix, (section, plugin))) = by_prefix
            .iter()
            .find(|(prefix, _)| var.starts_with(prefix.as_str()) && var.len() > prefix.len())
        else {
            continue;
        };
        let setting = var[prefix.len()..].to_ascii_lowercase();
        out.push(EnvSetting {
            section: section.clone(),
            plugin: plugin.clone(),
            setting,
            var: var.clone(),
            value: value.clone(),
        });
    }
    out
}

/// `alto.secrets.yaml` holding those settings in the `default` section.
pub fn secrets_yaml(settings: &[EnvSetting]) -> String {
    let mut out = String::from(
        "# Plugin settings Meltano read from .env, moved here by `alto import meltano`.\n# Keep this file out of version control.\ndefault:\n",
    );
    let mut last_section = "";
    let mut last_plugin = "";
    let mut sorted: Vec<&EnvSetting> = settings.iter().collect();
    sorted.sort_by(|a, b| (&a.section, &a.plugin).cmp(&(&b.section, &b.plugin)));
    for s in sorted {
        if s.section != last_section {
            out.push_str(&format!("  {}:\n", s.section));
            last_section = &s.section;
            last_plugin = "";
        }
        if s.plugin != last_plugin {
            out.push_str(&format!("    {}:\n      config:\n", s.plugin));
            last_plugin = &s.plugin;
        }
        // JSON strings are YAML strings: quotes and escapes kept exact.
        out.push_str(&format!(
            "        {}: {}\n",
            s.setting,
            Value::String(s.value.clone())
        ));
    }
    out
}

// ----- plugins and environments as read -----------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Extractor,
    Loader,
    Utility,
    Mapper,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Extractor, Kind::Loader, Kind::Utility, Kind::Mapper];

    fn meltano(self) -> &'static str {
        match self {
            Kind::Extractor => "extractors",
            Kind::Loader => "loaders",
            Kind::Utility => "utilities",
            Kind::Mapper => "mappers",
        }
    }

    fn alto(self) -> &'static str {
        match self {
            Kind::Extractor => "taps",
            Kind::Loader => "targets",
            Kind::Utility => "utilities",
            Kind::Mapper => "mappers",
        }
    }

    /// Its place in `ALL`, which is the order of alto's sections.
    fn index(self) -> usize {
        self as usize
    }

    fn from_meltano(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.meltano() == s)
    }
}

/// Why Meltano's other plugin types have no place in alto.yaml.
fn other_plugin_type(t: &str) -> &'static str {
    match t {
        "transformers" => "alto has no transformers; run dbt as a utility with `alto invoke`",
        "orchestrators" => "alto has no orchestrator; run `alto` commands from cron or CI",
        "files" => "alto has no file bundles",
        _ => "not a plugin type alto knows",
    }
}

/// A plugin of meltano.yml's `plugins` section.
struct Plugin<'a> {
    kind: Kind,
    name: String,
    raw: &'a Map<String, Value>,
    at: KeyPath,
}

/// A named entry of a list (a plugin, an environment): name, map, place.
type Entry<'a> = (String, &'a Map<String, Value>, KeyPath);

/// An entry of meltano.yml's `environments` list.
struct Env<'a> {
    name: String,
    raw: &'a Map<String, Value>,
    /// Plugin overrides of `config.plugins`, in file order.
    overrides: Vec<(Kind, String, &'a Map<String, Value>)>,
    /// Why this environment gets no alto section, if it does not.
    skip: Option<String>,
}

impl<'a> Env<'a> {
    fn plugin(&self, kind: Kind, name: &str) -> Option<&'a Map<String, Value>> {
        self.overrides
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, m)| *m)
    }
}

/// Whether an environment of this name would be read as something else: the
/// `default` section, or a setting alto expects inside a section.
fn reserved_section(name: &str) -> bool {
    name == "default" || super::load::SETTING_KEYS.contains(&name)
}

/// Meltano variables that name the running extractor's load schema; a
/// target's `{this.load_path}` is alto's equivalent.
const LOAD_SCHEMA_VARS: [&str; 2] = [
    "MELTANO_EXTRACT__LOAD_SCHEMA",
    "MELTANO_EXTRACTOR_NAMESPACE",
];

/// meltano.yml as read: its plugins and environments, and lookups on them.
struct Src<'a> {
    file: &'a str,
    text: &'a str,
    spans: &'a SpanMap,
    plugins: Vec<Plugin<'a>>,
    envs: Vec<Env<'a>>,
    /// Reports made while reading (plugin types alto has no section for).
    early: Vec<Untranslated>,
}

/// The translation under way: what it reports.
struct Tr<'s, 'a> {
    src: &'s Src<'a>,
    /// Variables alto's `{env[...]}` finds in the config: the project's and
    /// every environment's `env`.
    config_env: BTreeSet<String>,
    untranslated: Vec<Untranslated>,
    notes: Vec<String>,
    uses_load_path: bool,
}

impl<'a> Src<'a> {
    fn invalid(
        &self,
        at: &[String],
        message: impl Into<String>,
        label: &str,
        help: Option<&str>,
    ) -> MeltanoError {
        let mut p = at.to_vec();
        let (offset, len) = loop {
            if let Some(s) = self.spans.get(&p) {
                break *s;
            }
            if p.pop().is_none() {
                break (0, 1);
            }
        };
        MeltanoError::Invalid {
            file: self.file.to_string(),
            message: message.into(),
            src: super::source::snippet(self.file, self.text),
            span: visible_span(self.text, offset, len),
            label: label.to_string(),
            help: help.map(str::to_string),
        }
    }

    /// The named entries of a plugin list (`extractors: [{name: ...}]`).
    fn entries(
        &self,
        list: &'a Value,
        at: &[String],
        what: &str,
    ) -> Result<Vec<Entry<'a>>, MeltanoError> {
        let items = match list {
            Value::Null => return Ok(Vec::new()),
            Value::Array(a) => a,
            _ => {
                return Err(self.invalid(
                    at,
                    format!("`{}` must be a list of {what}", at.join(".")),
                    "expected a list",
                    Some("each entry is a map with at least a `name`"),
                ));
            }
        };
        let mut out: Vec<Entry<'a>> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let here = child(at, i.to_string());
            let Value::Object(m) = item else {
                return Err(self.invalid(
                    &here,
                    format!("an entry of `{}` must be a map", at.join(".")),
                    "expected a map with a `name`",
                    None,
                ));
            };
            let Some(Value::String(name)) = m.get("name") else {
                return Err(self.invalid(
                    &here,
                    format!("an entry of `{}` has no `name`", at.join(".")),
                    "no name",
                    None,
                ));
            };
            if out.iter().any(|(n, _, _)| n == name) {
                return Err(self.invalid(
                    &child(&here, "name"),
                    format!("`{}` names `{name}` twice", at.join(".")),
                    "a second entry with this name",
                    Some("Meltano refuses this too; keep one of them"),
                ));
            }
            out.push((name.clone(), m, here));
        }
        Ok(out)
    }

    fn collect_plugins(&mut self, root: &'a Map<String, Value>) -> Result<(), MeltanoError> {
        let at: KeyPath = vec!["plugins".into()];
        let types = match root.get("plugins") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(self.invalid(
                    &at,
                    "`plugins` must be a map of plugin types",
                    "expected a map",
                    Some("for example `plugins: {extractors: [...], loaders: [...]}`"),
                ));
            }
        };
        for (t, list) in types {
            let here = child(&at, t.clone());
            match Kind::from_meltano(t) {
                Some(kind) => {
                    for (name, raw, at) in self.entries(list, &here, "plugins")? {
                        self.plugins.push(Plugin {
                            kind,
                            name,
                            raw,
                            at,
                        });
                    }
                }
                None => {
                    let reason = other_plugin_type(t);
                    match self.entries(list, &here, "plugins") {
                        Ok(items) if !items.is_empty() => {
                            for (name, _, _) in items {
                                self.early.push(Untranslated {
                                    path: format!("plugins.{t}.{name}"),
                                    reason: reason.into(),
                                });
                            }
                        }
                        _ => self.early.push(Untranslated {
                            path: format!("plugins.{t}"),
                            reason: reason.into(),
                        }),
                    }
                }
            }
        }
        Ok(())
    }

    fn collect_envs(&mut self, root: &'a Map<String, Value>) -> Result<(), MeltanoError> {
        let at: KeyPath = vec!["environments".into()];
        let Some(list) = root.get("environments") else {
            return Ok(());
        };
        let mut seen: Vec<String> = Vec::new();
        for (name, raw, here) in self.entries(list, &at, "environments")? {
            let mut overrides = Vec::new();
            if let Some(Value::Object(config)) = raw.get("config")
                && let Some(Value::Object(types)) = config.get("plugins")
            {
                let cat = child(&child(&here, "config"), "plugins");
                for (t, plist) in types {
                    let Some(kind) = Kind::from_meltano(t) else {
                        continue;
                    };
                    for (pname, praw, _) in
                        self.entries(plist, &child(&cat, t.clone()), "plugins")?
                    {
                        overrides.push((kind, pname, praw));
                    }
                }
            }
            let lower = name.to_ascii_lowercase();
            let skip = if name.trim().is_empty() {
                Some("an empty name cannot be an alto section".to_string())
            } else if reserved_section(&lower) {
                Some(format!(
                    "`{name}` is a reserved key at the top of alto.yaml; rename the environment"
                ))
            } else if let Some(problem) = super::name::problem(&name) {
                Some(format!(
                    "alto cannot use this environment name: {problem}; {}",
                    super::name::NAME_RULE
                ))
            } else if seen.contains(&lower) {
                Some("alto matches environment names case-insensitively, and another environment has this name".to_string())
            } else {
                None
            };
            seen.push(lower);
            self.envs.push(Env {
                name,
                raw,
                overrides,
                skip,
            });
        }
        Ok(())
    }

    fn find(&self, kind: Kind, name: &str) -> Option<&Plugin<'a>> {
        self.plugins
            .iter()
            .find(|p| p.kind == kind && p.name == name)
    }

    /// The project plugin a plugin inherits from, if it names one.
    fn parent_of(&self, p: &Plugin<'a>) -> Option<&Plugin<'a>> {
        match p.raw.get("inherit_from") {
            Some(Value::String(parent)) if *parent != p.name => self.find(p.kind, parent),
            _ => None,
        }
    }

    /// The plugin and its project ancestors, nearest first (cycles cut).
    fn chain<'s>(&'s self, p: &'s Plugin<'a>) -> Vec<&'s Plugin<'a>> {
        let mut out: Vec<&'s Plugin<'a>> = vec![p];
        let mut cur = p;
        while let Some(parent) = self.parent_of(cur) {
            if out.iter().any(|q| q.name == parent.name) {
                break;
            }
            out.push(parent);
            cur = parent;
        }
        out
    }

    fn check_cycles(&self) -> Result<(), MeltanoError> {
        for p in &self.plugins {
            let mut names = vec![p.name.clone()];
            let mut cur = p;
            while let Some(parent) = self.parent_of(cur) {
                if names.contains(&parent.name) {
                    names.push(parent.name.clone());
                    return Err(self.invalid(
                        &child(&p.at, "inherit_from"),
                        format!("`inherit_from` forms a cycle: {}", names.join(" → ")),
                        "part of the cycle",
                        Some("Meltano refuses this too"),
                    ));
                }
                names.push(parent.name.clone());
                cur = parent;
            }
        }
        Ok(())
    }

    /// The first value of `key` along the plugin's inheritance chain.
    fn inherited(&self, p: &Plugin<'a>, key: &str) -> Option<&'a Value> {
        self.chain(p)
            .into_iter()
            .find_map(|q| q.raw.get(key).filter(|v| !v.is_null()))
    }

    /// Variables set by a plugin's own `env` (or its ancestors', or in an
    /// environment), which alto's `{env[...]}` in its config does not read.
    fn plugin_env_names(&self, p: &Plugin<'a>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for q in self.chain(p) {
            out.extend(env_keys(q.raw.get("env")));
            for e in &self.envs {
                if let Some(o) = e.plugin(q.kind, &q.name) {
                    out.extend(env_keys(o.get("env")));
                }
            }
        }
        out
    }

    /// The Meltano namespace of an extractor: its own, else its name with `-`
    /// as `_` (Meltano's default for inheriting plugins, and what Hub
    /// definitions use).
    fn namespace(&self, p: &Plugin<'a>) -> String {
        match p.raw.get("namespace") {
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            _ => p.name.replace('-', "_"),
        }
    }

    /// The tap's `load_path` in an environment (or the base): Meltano's
    /// `load_schema` extra along the inheritance chain, environment values
    /// first, else `$MELTANO_EXTRACTOR_NAMESPACE`.
    fn load_path(&self, p: &Plugin<'a>, env: Option<&Env<'a>>) -> Value {
        let mut raw: Option<&'a str> = None;
        for q in self.chain(p) {
            if let Some(e) = env
                && let Some(Value::String(s)) =
                    e.plugin(q.kind, &q.name).and_then(|o| o.get("load_schema"))
            {
                raw = Some(s);
                break;
            }
            if let Some(Value::String(s)) = q.raw.get("load_schema") {
                raw = Some(s);
                break;
            }
        }
        let raw = raw.unwrap_or("$MELTANO_EXTRACTOR_NAMESPACE");
        let ns = self.namespace(p);
        let pieces = meltano_pieces(raw);
        let mut vars = false;
        let mut plain = String::new();
        let mut template = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => {
                    plain.push_str(&t);
                    template.push_str(&escape_braces(&t));
                }
                Piece::Var(v) if LOAD_SCHEMA_VARS.contains(&v.as_str()) => {
                    plain.push_str(&ns);
                    template.push_str(&escape_braces(&ns));
                }
                Piece::Var(v) => {
                    vars = true;
                    template.push_str(&format!("{{env[{v}]}}"));
                }
            }
        }
        if vars {
            Value::String(format!("@format {template}"))
        } else {
            Value::String(protect(plain))
        }
    }
}

impl<'s, 'a> Tr<'s, 'a> {
    fn report(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        let item = Untranslated {
            path: path.into(),
            reason: reason.into(),
        };
        if !self.untranslated.contains(&item) {
            self.untranslated.push(item);
        }
    }

    fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    // ----- the translation ---------------------------------------------------

    fn run(mut self, root: &'a Map<String, Value>, project_name: &str) -> Translation {
        let src = self.src;
        // Variables the config can read back as {env[...]}.
        self.config_env.extend(env_keys(root.get("env")));
        for e in &src.envs {
            self.config_env.extend(env_keys(e.raw.get("env")));
        }
        let mut header_env = None;
        let mut jobs_value = None;
        let mut schedules_value = None;
        let mut default = Map::new();
        default.insert("project_name".into(), Value::String(project_name.into()));
        for (key, value) in root {
            match key.as_str() {
                "plugins" | "environments" => {}
                "version" => {
                    if value.as_i64() != Some(1) {
                        self.report("version", "alto reads version 1 of meltano.yml");
                    }
                }
                "default_environment" => header_env = value.as_str().map(str::to_string),
                "env" => {
                    if let Some(env) = self.env_map(value, "env", true) {
                        default.insert("environment".into(), Value::Object(env));
                    }
                }
                "python" => {
                    if let Value::String(s) = value {
                        let v = self.tr_str(s, &Ctx::new("python"));
                        default.insert("python".into(), v);
                    } else {
                        self.report("python", "must be a string");
                    }
                }
                "schedules" => schedules_value = Some(value),
                "jobs" => jobs_value = Some(value),
                other => {
                    let reason = match other {
                        "project_id" => "alto has no project id",
                        "send_anonymous_usage_stats" => "alto sends no usage statistics",
                        "state_backend" => {
                            "alto keeps state in its store (`filesystem`, `bucket`); move it with `meltano state get` and `alto state set`"
                        }
                        "include_paths" => {
                            "alto import reads only this file; add the included files' plugins by hand"
                        }
                        "database_uri" => "alto has no system database",
                        _ => "alto has no equivalent",
                    };
                    self.report(other, reason);
                }
            }
        }
        for u in &src.early {
            self.report(u.path.clone(), u.reason.clone());
        }

        let mut sections: Vec<Map<String, Value>> = Kind::ALL.iter().map(|_| Map::new()).collect();
        for p in &src.plugins {
            let spec = self.plugin_spec(p);
            sections[p.kind.index()].insert(p.name.clone(), Value::Object(spec));
            if p.kind == Kind::Mapper {
                self.mappings(p, &mut sections[p.kind.index()]);
            }
        }

        let mut envs: Vec<(String, Map<String, Value>)> = Vec::new();
        for e in &src.envs {
            if let Some(reason) = &e.skip {
                self.report(format!("environments.{}", e.name), reason.clone());
                continue;
            }
            let section = self.env_section(e);
            envs.push((e.name.clone(), section));
        }

        if self.uses_load_path {
            // Only a target rendered without a tap (`alto config TARGET`,
            // `alto dump`) reads the root one; every tap sets its own.
            default.insert(
                "load_path".into(),
                Value::String(snake(project_name).unwrap_or_else(|| "raw".into())),
            );
        }
        // Jobs name mappings (the mappers section's entries) and utility commands.
        let mapper_names: BTreeSet<String> =
            sections[Kind::Mapper.index()].keys().cloned().collect();
        let mut jobs = match jobs_value {
            Some(v) => self.jobs(v, &mapper_names),
            None => Map::new(),
        };
        let schedules = match schedules_value {
            Some(v) => self.schedules(v, &mut jobs),
            None => Map::new(),
        };
        for (kind, section) in Kind::ALL.iter().zip(sections) {
            if !section.is_empty() {
                default.insert(kind.alto().into(), Value::Object(section));
            }
        }
        if !jobs.is_empty() {
            default.insert("jobs".into(), Value::Object(jobs));
        }
        if !schedules.is_empty() {
            default.insert("schedules".into(), Value::Object(schedules));
        }
        let mut default = Value::Object(default);
        self.fix_env_precedence(&default, &mut envs);
        self.hoist_lists(&mut default, &mut envs);

        let mut out = self.header(header_env.as_deref());
        let order = [
            "project_name",
            "load_path",
            "python",
            "environment",
            "taps",
            "targets",
            "utilities",
            "mappers",
            "jobs",
            "schedules",
        ];
        let mut ordered = Map::new();
        if let Value::Object(m) = &mut default {
            for k in order {
                if let Some(v) = m.remove(k) {
                    ordered.insert(k.into(), v);
                }
            }
            ordered.append(m);
        }
        out.push_str("default:\n");
        emit_map(&mut out, &ordered, 2);
        for (name, section) in &envs {
            out.push('\n');
            out.push_str(&format!("# Meltano environment `{}`.\n", one_line(name)));
            out.push_str(&key_text(name));
            if section.is_empty() {
                out.push_str(": {}\n");
            } else {
                out.push_str(":\n");
                emit_map(&mut out, section, 2);
            }
        }
        Translation {
            alto_yaml: out,
            plugins: self
                .src
                .plugins
                .iter()
                .map(|p| (p.kind.alto().to_string(), p.name.clone()))
                .collect(),
            untranslated: self.untranslated,
            notes: self.notes,
        }
    }

    fn header(&self, default_env: Option<&str>) -> String {
        let mut h = String::new();
        h.push_str(&format!(
            "# Generated by `alto import meltano` from {}; edit freely.\n",
            one_line(self.src.file)
        ));
        match default_env {
            Some(e) if e.eq_ignore_ascii_case("dev") => h.push_str(
                "# Meltano's default_environment is `dev`, as alto's: --env, else ALTO_ENV, else dev.\n",
            ),
            Some(e) => h.push_str(&format!(
                "# Meltano's default_environment is `{0}`; alto uses --env, else ALTO_ENV, else `dev`:\n# put ALTO_ENV={0} in .env to keep Meltano's default.\n",
                one_line(e)
            )),
            None => h.push_str(
                "# alto's environment is --env, else ALTO_ENV, else `dev`.\n",
            ),
        }
        h.push_str("#\n");
        if self.untranslated.is_empty() {
            h.push_str("# Everything was translated.\n");
        } else {
            h.push_str("# Not translated:\n");
            for u in &self.untranslated {
                h.push_str(&format!(
                    "#   {}: {}\n",
                    one_line(&u.path),
                    one_line(&u.reason)
                ));
            }
        }
        if !self.notes.is_empty() {
            h.push_str("#\n# Notes:\n");
            for n in &self.notes {
                h.push_str(&format!("#   {}\n", one_line(n)));
            }
        }
        h.push('\n');
        h
    }

    /// Meltano's `schedules`: a job's on an interval, or an extractor and
    /// loader's (which becomes a job of the schedule's name). The jobs made
    /// are added to `jobs`.
    fn schedules(&mut self, value: &Value, jobs: &mut Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        let Value::Array(items) = value else {
            if !value.is_null() {
                self.report("schedules", "must be a list of schedules");
            }
            return out;
        };
        for (i, s) in items.iter().enumerate() {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string());
            let path = format!("schedules.{name}");
            if let Some(problem) = super::name::problem(&name) {
                self.report(
                    path,
                    format!("its name cannot be an alto schedule's: {problem}"),
                );
                continue;
            }
            let interval = match s.get("interval").and_then(Value::as_str) {
                Some(i) if i.trim() == "@once" => {
                    self.report(
                        path,
                        "alto schedules repeat; run it once with `alto run` instead",
                    );
                    continue;
                }
                Some(i) => match super::jobs::parse_interval(i) {
                    Ok(_) => i.to_string(),
                    Err(why) => {
                        self.report(
                            path,
                            format!("its interval `{i}` is not one alto reads: {why}"),
                        );
                        continue;
                    }
                },
                None => {
                    self.report(path, "it has no interval");
                    continue;
                }
            };
            let job = match (
                s.get("extractor").and_then(Value::as_str),
                s.get("loader").and_then(Value::as_str),
                s.get("job").and_then(Value::as_str),
            ) {
                (_, _, Some(j)) if jobs.contains_key(j) => j.to_string(),
                (_, _, Some(j)) => {
                    self.report(path, format!("its job `{j}` was not translated"));
                    continue;
                }
                (Some(e), Some(l), _)
                    if self.src.find(Kind::Extractor, e).is_some()
                        && self.src.find(Kind::Loader, l).is_some() =>
                {
                    // The pipeline becomes a job of the schedule's name.
                    let mut job = name.clone();
                    while jobs.contains_key(&job) {
                        job.push_str("-job");
                    }
                    jobs.insert(job.clone(), json_list(&[format!("{e}:{l}")]));
                    match s.get("transform").and_then(Value::as_str) {
                        None | Some("skip") => {}
                        Some(t) => self.report(
                            format!("{path}.transform"),
                            format!("alto has no transformers (`transform: {t}`); add a utility command to job `{job}`"),
                        ),
                    }
                    job
                }
                _ => {
                    self.report(
                        path,
                        "it names no job, nor an extractor and loader of this project",
                    );
                    continue;
                }
            };
            if let Value::Object(m) = s {
                for k in m.keys() {
                    let reason = match k.as_str() {
                        "name" | "interval" | "job" | "extractor" | "loader" | "transform" => {
                            continue;
                        }
                        "env" => {
                            "alto schedules have no environment of their own; set it on the worker"
                        }
                        "start_date" => {
                            "alto schedules start now; an orchestrator's start date is its own"
                        }
                        _ => "alto has no equivalent",
                    };
                    self.report(format!("{path}.{k}"), reason);
                }
            }
            let mut sched = Map::new();
            sched.insert("job".into(), Value::String(job));
            sched.insert("interval".into(), Value::String(interval));
            out.insert(name, Value::Object(sched));
        }
        out
    }

    /// A utility's `commands`: a name to its arguments (a string, or
    /// `{args: ...}`); what else a command may say is reported.
    fn commands(&mut self, v: &Value, path: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let Value::Object(m) = v else {
            self.report(path, "must be a map of commands");
            return out;
        };
        for (name, c) in m {
            let here = format!("{path}.{name}");
            let args = match c {
                Value::String(a) => a.clone(),
                Value::Object(o) => {
                    for k in o.keys() {
                        let reason = match k.as_str() {
                            "args" | "description" => continue,
                            "executable" => {
                                "alto runs the utility's own executable; make another utility for this one"
                            }
                            "container_spec" => "alto runs no containers",
                            _ => "alto has no equivalent",
                        };
                        self.report(format!("{here}.{k}"), reason);
                    }
                    match o.get("args").and_then(Value::as_str) {
                        Some(a) => a.to_string(),
                        None => {
                            self.report(here, "a command without `args` alto can read");
                            continue;
                        }
                    }
                }
                _ => {
                    self.report(here, "must be a string of arguments");
                    continue;
                }
            };
            if shlex::split(&args).is_none() {
                self.report(here, "its arguments do not split as a shell's would");
                continue;
            }
            if args.contains('$') {
                self.note(format!(
                    "{here}: alto passes `$` in a command's arguments as written (Meltano expands variables there)"
                ));
            }
            out.insert(name.clone(), Value::String(args));
        }
        out
    }

    /// Meltano's `jobs`: each task block (`tap target`, `tap mapping
    /// target`, `utility:command`) becomes steps; a job with a block alto
    /// cannot run is reported whole rather than run in part.
    fn jobs(&mut self, value: &Value, mappers: &BTreeSet<String>) -> Map<String, Value> {
        let mut out = Map::new();
        let Value::Array(items) = value else {
            if !value.is_null() {
                self.report("jobs", "must be a list of jobs");
            }
            return out;
        };
        for (i, j) in items.iter().enumerate() {
            let name = j
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string());
            let path = format!("jobs.{name}");
            if let Some(problem) = super::name::problem(&name) {
                self.report(path, format!("its name cannot be an alto job's: {problem}"));
                continue;
            }
            let mut blocks: Vec<&str> = Vec::new();
            collect_strings(j.get("tasks").unwrap_or(&Value::Null), &mut blocks);
            let mut steps = Vec::new();
            let mut bad = Vec::new();
            for block in blocks {
                match self.block_steps(block, mappers) {
                    Ok(s) => steps.extend(s),
                    Err(why) => bad.push(why),
                }
            }
            if !bad.is_empty() || steps.is_empty() {
                let why = if bad.is_empty() {
                    "it has no tasks".to_string()
                } else {
                    bad.join("; ")
                };
                self.report(
                    path,
                    format!("not translated, so that no part of it runs alone: {why}"),
                );
                continue;
            }
            out.insert(name, json_list(&steps));
        }
        out
    }

    /// The alto steps of one Meltano task block.
    fn block_steps(&self, block: &str, mappers: &BTreeSet<String>) -> Result<Vec<String>, String> {
        let words: Vec<&str> = block.split_whitespace().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if self.src.find(Kind::Extractor, w).is_some() {
                let mut j = i + 1;
                while j < words.len() && mappers.contains(words[j]) {
                    j += 1;
                }
                match words.get(j) {
                    Some(l) if self.src.find(Kind::Loader, l).is_some() => {
                        steps.push(words[i..=j].join(":"));
                        i = j + 1;
                        continue;
                    }
                    _ => return Err(format!("`{w}` in `{block}` is not followed by a loader")),
                }
            }
            let command = w.split_once(':').and_then(|(u, c)| {
                let p = self.src.find(Kind::Utility, u)?;
                self.src.inherited(p, "commands")?.get(c).map(|_| ())
            });
            if command.is_some() {
                steps.push(w.to_string());
                i += 1;
                continue;
            }
            return Err(format!(
                "`{w}` in `{block}` is not an extractor, mapping or utility command alto can run"
            ));
        }
        Ok(steps)
    }

    /// A Meltano `env` map as an alto `environment` map; `root` when it is
    /// read back by `{env[...]}` (the project's or an environment's).
    fn env_map(&mut self, value: &Value, path: &str, root: bool) -> Option<Map<String, Value>> {
        let m = match value {
            Value::Object(m) => m,
            Value::Null => return None,
            _ => {
                self.report(path, "must be a map of variables");
                return None;
            }
        };
        let mut out = Map::new();
        for (k, v) in m {
            if v.is_null() {
                continue;
            }
            let p = format!("{path}.{k}");
            let mut ctx = Ctx::new(&p);
            if root {
                ctx.self_var = Some(k.clone());
            }
            out.insert(k.clone(), self.tr_value(v, &ctx));
        }
        (!out.is_empty()).then_some(out)
    }

    fn plugin_spec(&mut self, p: &'s Plugin<'a>) -> Map<String, Value> {
        let path = format!("plugins.{}.{}", p.kind.meltano(), p.name);
        let penv = self.src.plugin_env_names(p);
        let mut out = Map::new();
        match p.raw.get("inherit_from") {
            None | Some(Value::Null) => {}
            Some(Value::String(parent)) if *parent == p.name => {}
            Some(Value::String(parent)) => {
                if self.src.find(p.kind, parent).is_some() {
                    out.insert("inherit_from".into(), Value::String(parent.clone()));
                } else {
                    self.report(
                        format!("{path}.inherit_from"),
                        format!(
                            "`{parent}` is not one of this project's {}: Meltano takes it from the Hub, alto needs it in the project",
                            p.kind.meltano()
                        ),
                    );
                }
            }
            Some(_) => self.report(format!("{path}.inherit_from"), "must name a plugin"),
        }
        for key in ["pip_url", "executable", "python"] {
            match p.raw.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => {
                    let s = if key == "pip_url" {
                        self.pip_url(s, &path)
                    } else {
                        s.clone()
                    };
                    let v = self.tr_str(&s, &Ctx::new(&format!("{path}.{key}")));
                    out.insert(key.into(), v);
                }
                Some(_) => self.report(format!("{path}.{key}"), "must be a string"),
            }
        }
        // An inheriting plugin may take its parent's pip_url.
        let has_pip_url = out.contains_key("pip_url")
            || (out.contains_key("inherit_from")
                && self
                    .src
                    .inherited(p, "pip_url")
                    .is_some_and(Value::is_string));
        if !has_pip_url {
            self.report(path.clone(), "no pip_url; Meltano resolves it from the Hub");
        }
        if p.kind == Kind::Extractor {
            let lp = self.src.load_path(p, None);
            out.insert("load_path".into(), lp);
        }
        match p.raw.get("capabilities") {
            None | Some(Value::Null) => {
                let inherited = out.contains_key("inherit_from")
                    && self.src.inherited(p, "capabilities").is_some();
                if p.kind == Kind::Extractor && !inherited {
                    self.report(
                        format!("{path}.capabilities"),
                        "not in meltano.yml (Meltano reads them from the Hub definition); without `catalog` or `properties`, and `state`, alto runs the tap with no catalog and no state: add them",
                    );
                }
            }
            Some(v) if is_string_list(v) => {
                out.insert("capabilities".into(), v.clone());
            }
            Some(_) => self.report(format!("{path}.capabilities"), "must be a list of strings"),
        }
        if p.kind == Kind::Extractor {
            if let Some(v) = p.raw.get("select")
                && let Some(sel) = self.select(v, &format!("{path}.select"))
            {
                out.insert("select".into(), sel);
            }
            if let Some(v) = p.raw.get("metadata")
                && let Some(md) = self.metadata(v, &format!("{path}.metadata"))
            {
                out.insert("metadata".into(), md);
            }
        }
        match p.raw.get("config") {
            None | Some(Value::Null) => {}
            Some(Value::Object(c)) => {
                let mut ctx = Ctx::new(&format!("{path}.config"));
                ctx.plugin_env = penv.clone();
                let v = self.tr_value(&Value::Object(nest_dotted(c)), &ctx);
                out.insert("config".into(), v);
            }
            Some(_) => self.report(format!("{path}.config"), "must be a map"),
        }
        if let Some(v) = p.raw.get("env")
            && let Some(env) = self.env_map(v, &format!("{path}.env"), false)
        {
            out.insert("environment".into(), Value::Object(env));
        }
        if p.kind == Kind::Utility
            && let Some(v) = p.raw.get("commands")
        {
            let commands = self.commands(v, &format!("{path}.commands"));
            if !commands.is_empty() {
                out.insert("commands".into(), Value::Object(commands));
            }
        }
        for (key, _) in p.raw {
            let reason = match (key.as_str(), p.kind) {
                (
                    "name" | "inherit_from" | "pip_url" | "executable" | "python" | "capabilities"
                    | "config" | "env",
                    _,
                ) => continue,
                ("select" | "metadata" | "load_schema" | "namespace", Kind::Extractor) => continue,
                ("mappings", Kind::Mapper) | ("commands", Kind::Utility) => continue,
                ("variant", _) => {
                    "alto installs `pip_url` as given; a variant only picks a Meltano Hub definition"
                }
                ("namespace", _) => "alto has no plugin namespaces",
                ("settings" | "settings_group_validation", _) => {
                    "setting definitions (kinds, defaults, env aliases) have no alto equivalent"
                }
                ("commands", _) => {
                    "alto runs the named commands of utilities only; run `alto invoke PLUGIN ARGS`"
                }
                ("schema", _) => "alto has no stream schema overrides",
                ("select_filter", _) => "alto has no select_filter",
                ("select" | "metadata", _) => "only taps have select and metadata in alto",
                ("requires", _) => "alto does not install plugin requirements",
                ("label" | "logo_url" | "description" | "docs" | "repo" | "hidden", _) => {
                    "presentation only"
                }
                _ => "alto has no equivalent",
            };
            self.report(format!("{path}.{key}"), reason);
        }
        out
    }

    /// Meltano's editable installs of local paths (`-e extract/tap-x`)
    /// become local paths alto builds (and rebuilds when they change).
    fn pip_url(&mut self, s: &str, path: &str) -> String {
        let words: Vec<&str> = s.split_whitespace().collect();
        if !words.contains(&"-e") {
            return s.to_string();
        }
        let mut out: Vec<String> = Vec::new();
        let mut editable = false;
        for w in words {
            if w == "-e" {
                editable = true;
                continue;
            }
            if std::mem::take(&mut editable)
                && !w.contains("://")
                && !w.starts_with("git+")
                && !w.starts_with(['/', '.', '~', '$'])
            {
                out.push(format!("./{w}"));
            } else {
                out.push(w.to_string());
            }
        }
        let joined = out.join(" ");
        self.note(format!(
            "{path}.pip_url: `-e` dropped ({joined}); alto builds local paths and rebuilds them when their files change"
        ));
        joined
    }

    fn select(&mut self, v: &Value, path: &str) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Array(a) if a.iter().all(Value::is_string) => {
                if a.is_empty() {
                    self.report(
                        path,
                        "Meltano selects nothing with an empty list; alto reads it as `*.*`",
                    );
                }
                self.literal_strings(v, path, "select rules");
                Some(v.clone())
            }
            _ => {
                self.report(path, "must be a list of strings");
                None
            }
        }
    }

    fn metadata(&mut self, v: &Value, path: &str) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Object(_) => {
                self.literal_strings(v, path, "metadata");
                Some(drop_nulls(v))
            }
            _ => {
                self.report(path, "must be a map of stream patterns");
                None
            }
        }
    }

    /// Select rules and metadata are not `@format`-rendered by alto: a Meltano
    /// variable in them stays literal, which is worth reporting.
    fn literal_strings(&mut self, v: &Value, path: &str, what: &str) {
        let mut strings = Vec::new();
        collect_strings(v, &mut strings);
        for s in strings {
            if meltano_pieces(s).iter().any(|p| matches!(p, Piece::Var(_))) {
                self.report(
                    path,
                    format!("alto does not expand variables in {what}; `{s}` is kept as written"),
                );
            }
        }
    }

    /// Meltano mappings (`mappings: [{name, config}]`) become mappers that
    /// inherit from the mapper plugin, named after the mapping.
    fn mappings(&mut self, p: &'s Plugin<'a>, section: &mut Map<String, Value>) {
        let path = format!("plugins.mappers.{}.mappings", p.name);
        let items = match p.raw.get("mappings") {
            None | Some(Value::Null) => return,
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.report(path, "must be a list of mappings");
                return;
            }
        };
        for (i, m) in items.iter().enumerate() {
            let Some(name) = m.get("name").and_then(Value::as_str) else {
                self.report(format!("{path}.{i}"), "a mapping needs a name");
                continue;
            };
            let here = format!("{path}.{name}");
            if section.contains_key(name) || self.src.plugins.iter().any(|q| q.name == name) {
                self.report(here, "its name is already a plugin's");
                continue;
            }
            let mut spec = Map::new();
            spec.insert("inherit_from".into(), Value::String(p.name.clone()));
            if let Some(Value::Object(c)) = m.get("config") {
                let v = self.tr_value(
                    &Value::Object(nest_dotted(c)),
                    &Ctx::new(&format!("{here}.config")),
                );
                spec.insert("config".into(), v);
            }
            if let Value::Object(mm) = m {
                for k in mm.keys() {
                    if k != "name" && k != "config" {
                        self.report(format!("{here}.{k}"), "alto has no equivalent");
                    }
                }
            }
            section.insert(name.to_string(), Value::Object(spec));
            self.note(format!(
                "mappers.{name}: the Meltano mapping, as a mapper inheriting from {}; alto does not run mappers yet",
                p.name
            ));
        }
    }

    fn env_section(&mut self, e: &'s Env<'a>) -> Map<String, Value> {
        let src = self.src;
        let base = format!("environments.{}", e.name);
        let mut sec = Map::new();
        let mut kinds: Vec<Map<String, Value>> = Kind::ALL.iter().map(|_| Map::new()).collect();
        for (key, value) in e.raw {
            match key.as_str() {
                "name" => {}
                "env" => {
                    if let Some(env) = self.env_map(value, &format!("{base}.env"), true) {
                        sec.insert("environment".into(), Value::Object(env));
                    }
                }
                "config" => {
                    let Value::Object(config) = value else {
                        if !value.is_null() {
                            self.report(format!("{base}.config"), "must be a map");
                        }
                        continue;
                    };
                    for (ck, cv) in config {
                        match ck.as_str() {
                            "plugins" => {
                                if let Value::Object(types) = cv {
                                    for t in types.keys() {
                                        if Kind::from_meltano(t).is_none() {
                                            self.report(
                                                format!("{base}.config.plugins.{t}"),
                                                other_plugin_type(t),
                                            );
                                        }
                                    }
                                }
                            }
                            _ => {
                                self.report(format!("{base}.config.{ck}"), "alto has no equivalent")
                            }
                        }
                    }
                }
                "state_id_suffix" => self.report(
                    format!("{base}.state_id_suffix"),
                    "alto keeps each environment's state apart already (state/<env>/...)",
                ),
                _ => self.report(format!("{base}.{key}"), "alto has no equivalent"),
            }
        }
        for (kind, name, raw) in &e.overrides {
            let path = format!("{base}.config.plugins.{}.{name}", kind.meltano());
            let Some(plugin) = src.find(*kind, name) else {
                self.report(
                    path,
                    format!("no {} of this name in `plugins`", kind.meltano()),
                );
                continue;
            };
            let over = self.plugin_override(plugin, raw, &path);
            if !over.is_empty() {
                kinds[kind.index()].insert(name.clone(), Value::Object(over));
            }
        }
        // A tap's load_path changes when its (or an ancestor's) load_schema
        // does in this environment.
        for p in &src.plugins {
            if p.kind != Kind::Extractor {
                continue;
            }
            let here = self.src.load_path(p, Some(e));
            if here != self.src.load_path(p, None) {
                let entry = kinds[Kind::Extractor.index()]
                    .entry(p.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert("load_path".into(), here);
                }
            }
        }
        for (kind, m) in Kind::ALL.iter().zip(kinds) {
            if !m.is_empty() {
                sec.insert(kind.alto().into(), Value::Object(m));
            }
        }
        sec
    }

    /// One plugin's overrides in an environment. Nulls are dropped: Meltano
    /// falls back on the base value for them.
    fn plugin_override(
        &mut self,
        p: &'s Plugin<'a>,
        raw: &Map<String, Value>,
        path: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let penv = self.src.plugin_env_names(p);
        for (key, value) in raw {
            match (key.as_str(), p.kind) {
                ("name", _) => {}
                ("load_schema", Kind::Extractor) => {}
                ("config", _) => match value {
                    Value::Object(c) => {
                        let mut ctx = Ctx::new(&format!("{path}.config"));
                        ctx.plugin_env = penv.clone();
                        let v = self.tr_value(&drop_nulls(&Value::Object(nest_dotted(c))), &ctx);
                        out.insert("config".into(), v);
                    }
                    Value::Null => {}
                    _ => self.report(format!("{path}.config"), "must be a map"),
                },
                ("env", _) => {
                    if let Some(env) = self.env_map(value, &format!("{path}.env"), false) {
                        out.insert("environment".into(), Value::Object(env));
                    }
                }
                ("select", Kind::Extractor) => {
                    if let Some(v) = self.select(value, &format!("{path}.select")) {
                        out.insert("select".into(), v);
                    }
                }
                ("metadata", Kind::Extractor) => {
                    if let Some(v) = self.metadata(value, &format!("{path}.metadata")) {
                        out.insert("metadata".into(), v);
                    }
                }
                ("select" | "metadata", _) => {
                    self.report(
                        format!("{path}.{key}"),
                        "only taps have select and metadata in alto",
                    );
                }
                ("schema", _) => self.report(
                    format!("{path}.schema"),
                    "alto has no stream schema overrides",
                ),
                ("select_filter", _) => {
                    self.report(format!("{path}.select_filter"), "alto has no select_filter")
                }
                _ => self.report(format!("{path}.{key}"), "alto has no equivalent"),
            }
        }
        out
    }

    /// Meltano lets an environment's `env` override a plugin's own `env`;
    /// alto's plugin `environment` wins over the top-level one, so such
    /// variables are repeated in the plugin's environment override.
    fn fix_env_precedence(&mut self, default: &Value, envs: &mut [(String, Map<String, Value>)]) {
        let src = self.src;
        for (env_name, section) in envs.iter_mut() {
            let Some(Value::Object(root_env)) = section.get("environment").cloned() else {
                continue;
            };
            for p in &src.plugins {
                let kind = p.kind.alto();
                let mut names = BTreeSet::new();
                for q in self.src.chain(p) {
                    if let Some(Value::Object(env)) = default
                        .get(kind)
                        .and_then(|s| s.get(&q.name))
                        .and_then(|s| s.get("environment"))
                    {
                        names.extend(env.keys().cloned());
                    }
                }
                for (var, value) in &root_env {
                    if !names.contains(var) || refers_to(value, var) {
                        continue;
                    }
                    let plugins = section
                        .entry(kind)
                        .or_insert_with(|| Value::Object(Map::new()));
                    let Some(m) = set_default_path(plugins, &[&p.name, "environment"]) else {
                        continue;
                    };
                    if !m.contains_key(var) {
                        m.insert(var.clone(), value.clone());
                        self.notes.push(format!(
                            "{env_name}.{kind}.{}.environment.{var}: repeats the environment's {var}, which Meltano lets override the plugin's own",
                            p.name
                        ));
                    }
                }
            }
        }
    }

    /// Base lists some environment overrides move from `default` into every
    /// environment section that does not override them (and into `dev`,
    /// alto's default environment, when Meltano has none).
    fn hoist_lists(&mut self, default: &mut Value, envs: &mut Vec<(String, Map<String, Value>)>) {
        let mut paths: BTreeSet<KeyPath> = BTreeSet::new();
        for (_, section) in envs.iter() {
            list_conflicts(
                default,
                &Value::Object(section.clone()),
                &mut Vec::new(),
                &mut paths,
            );
        }
        if paths.is_empty() {
            return;
        }
        if !envs.iter().any(|(n, _)| n.eq_ignore_ascii_case("dev")) {
            envs.insert(0, ("dev".to_string(), Map::new()));
            self.note(
                "dev: added to hold the lists moved out of `default`, as alto's default environment (Meltano had no `dev`)",
            );
        }
        for path in paths {
            let Some(value) = remove_path(default, &path) else {
                continue;
            };
            let mut into = Vec::new();
            for (name, section) in envs.iter_mut() {
                let mut sec = Value::Object(std::mem::take(section));
                if can_set(&sec, &path) && set_path(&mut sec, &path, value.clone()) {
                    into.push(name.clone());
                }
                if let Value::Object(m) = sec {
                    *section = m;
                }
            }
            self.note(format!(
                "{}: Meltano environments replace lists and alto appends them, so the base list moved from `default` into {}; an environment with no section does not get it",
                path.join("."),
                if into.is_empty() {
                    "no section".to_string()
                } else {
                    into.join(", ")
                }
            ));
        }
    }

    // ----- values ------------------------------------------------------------

    fn tr_value(&mut self, v: &Value, ctx: &Ctx) -> Value {
        match v {
            Value::String(s) => self.tr_str(s, ctx),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, c)| self.tr_value(c, &ctx.child(&i.to_string())))
                    .collect(),
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, c)| (k.clone(), self.tr_value(c, &ctx.child(k))))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A Meltano string as an alto one: `$VAR`/`${VAR}` become `{env[VAR]}`
    /// in an `@format` string, the load-schema variables `{this.load_path}`.
    fn tr_str(&mut self, s: &str, ctx: &Ctx) -> Value {
        let pieces = meltano_pieces(s);
        if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
            let text: String = pieces
                .into_iter()
                .map(|p| match p {
                    Piece::Text(t) | Piece::Var(t) => t,
                })
                .collect();
            return Value::String(protect(text));
        }
        if let Some(Piece::Text(t)) = pieces.first()
            && t.starts_with(char::is_whitespace)
        {
            self.report(
                ctx.path.clone(),
                "alto trims the whitespace that starts an @format string",
            );
        }
        let mut template = String::from("@format ");
        for piece in pieces {
            match piece {
                Piece::Text(t) => template.push_str(&escape_braces(&t)),
                Piece::Var(v) if LOAD_SCHEMA_VARS.contains(&v.as_str()) => {
                    self.uses_load_path = true;
                    self.note(format!(
                        "{}: ${v} became {{this.load_path}}, the tap's load_path (its Meltano load schema)",
                        ctx.path
                    ));
                    template.push_str("{this.load_path}");
                }
                Piece::Var(v) => {
                    if v.starts_with("MELTANO_") {
                        self.report(
                            ctx.path.clone(),
                            format!("${v} is set by Meltano at run time; alto does not set it"),
                        );
                    } else if ctx.self_var.as_deref() == Some(v.as_str()) {
                        self.report(
                            ctx.path.clone(),
                            format!(
                                "refers to itself: alto reads {{env[{v}]}} from this same map first"
                            ),
                        );
                    } else if ctx.plugin_env.contains(&v) && !self.config_env.contains(&v) {
                        self.report(
                            ctx.path.clone(),
                            format!(
                                "${v} is set in the plugin's `env`; alto's {{env[{v}]}} reads the top-level environment, the process and .env"
                            ),
                        );
                    }
                    template.push_str(&format!("{{env[{v}]}}"));
                }
            }
        }
        Value::String(template)
    }
}

/// Where a string being translated is, for reports.
struct Ctx {
    path: String,
    /// Variables of the plugin's own `env`.
    plugin_env: BTreeSet<String>,
    /// The variable this value defines, in a top-level `env`.
    self_var: Option<String>,
}

impl Ctx {
    fn new(path: &str) -> Ctx {
        Ctx {
            path: path.to_string(),
            plugin_env: BTreeSet::new(),
            self_var: None,
        }
    }

    fn child(&self, key: &str) -> Ctx {
        Ctx {
            path: format!("{}.{key}", self.path),
            plugin_env: self.plugin_env.clone(),
            self_var: self.self_var.clone(),
        }
    }
}

// ----- Meltano's variable syntax --------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// Splits a string the way Meltano's `expand_env_vars` reads it: `${WORD}`
/// and `$UPPER_CASE` are variables, and a backslash before either makes it
/// literal text (the backslash is dropped).
fn meltano_pieces(s: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let escaped = rest.starts_with("\\$");
        let dollar = if escaped { i + 1 } else { i };
        if (escaped || rest.starts_with('$'))
            && let Some((name, end)) = var_at(s, dollar)
        {
            if escaped {
                text.push_str(&s[dollar..end]);
            } else {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Var(name));
            }
            i = end;
            continue;
        }
        let Some(c) = rest.chars().next() else {
            break;
        };
        text.push(c);
        i += c.len_utf8();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

/// The variable whose `$` is at byte `at`, and the byte after it.
fn var_at(s: &str, at: usize) -> Option<(String, usize)> {
    let after = s.get(at + 1..)?;
    if let Some(inner) = after.strip_prefix('{') {
        let len: usize = inner
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .map(char::len_utf8)
            .sum();
        if len > 0 && inner[len..].starts_with('}') {
            return Some((inner[..len].to_string(), at + 2 + len + 1));
        }
        return None;
    }
    let mut chars = after.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let len = after
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .count();
    Some((after[..len].to_string(), at + 1 + len))
}

fn escape_braces(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

/// A literal string alto would take for a template is made a template of
/// itself.
fn protect(s: String) -> String {
    if interpolate::template(&s).is_some() {
        format!("@format {}", escape_braces(&s))
    } else {
        s
    }
}

// ----- tree helpers ---------------------------------------------------------

fn env_keys(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn json_list(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn is_string_list(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.iter().all(Value::is_string))
}

fn collect_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|c| collect_strings(c, out)),
        Value::Object(m) => m.values().for_each(|c| collect_strings(c, out)),
        _ => {}
    }
}

fn refers_to(v: &Value, var: &str) -> bool {
    v.as_str()
        .is_some_and(|s| s.contains(&format!("{{env[{var}]}}")))
}

/// Map entries whose value is null, removed at every depth (lists are kept
/// whole: Meltano treats a list as one value).
fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), drop_nulls(c)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Meltano nests config keys with dots (`a.b: 1` is `a: {b: 1}`); `\.` is a
/// literal dot.
fn nest_dotted(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in m {
        let v = match v {
            Value::Object(c) => Value::Object(nest_dotted(c)),
            other => other.clone(),
        };
        let segs = split_key(k);
        if segs.iter().any(String::is_empty) {
            insert_merged(&mut out, &[k.replace("\\.", ".")], v);
        } else {
            insert_merged(&mut out, &segs, v);
        }
    }
    out
}

fn split_key(k: &str) -> Vec<String> {
    let mut segs = vec![String::new()];
    let mut chars = k.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(s) = segs.last_mut() {
                    s.push('.');
                }
            }
            '.' => segs.push(String::new()),
            c => {
                if let Some(s) = segs.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    segs
}

fn insert_merged(m: &mut Map<String, Value>, path: &[String], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        match (m.get_mut(first), v) {
            (Some(Value::Object(existing)), Value::Object(new)) => {
                for (k, c) in new {
                    insert_merged(existing, &[k], c);
                }
            }
            (_, v) => {
                m.insert(first.clone(), v);
            }
        }
        return;
    }
    let entry = m
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert_merged(inner, rest, v);
    }
}

/// Paths where both `default` and an environment section hold a list: alto
/// would append where Meltano replaces.
fn list_conflicts(d: &Value, e: &Value, path: &mut KeyPath, out: &mut BTreeSet<KeyPath>) {
    match (d, e) {
        (Value::Object(dm), Value::Object(em)) => {
            for (k, ev) in em {
                if let Some(dv) = dm.get(k) {
                    path.push(k.clone());
                    list_conflicts(dv, ev, path, out);
                    path.pop();
                }
            }
        }
        (Value::Array(_), Value::Array(_)) => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

fn remove_path(v: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for seg in parents {
        cur = cur.as_object_mut()?.get_mut(seg)?;
    }
    cur.as_object_mut()?.remove(last)
}

/// Whether a section leaves `path` to `default`: nothing there, and no
/// scalar or list on the way that would replace it.
fn can_set(v: &Value, path: &[String]) -> bool {
    let mut cur = v;
    for seg in path {
        match cur {
            Value::Object(m) => match m.get(seg) {
                Some(next) => cur = next,
                None => return true,
            },
            _ => return false,
        }
    }
    false
}

fn set_path(v: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = v;
    for seg in parents {
        let Some(m) = cur.as_object_mut() else {
            return false;
        };
        cur = m
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    match cur.as_object_mut() {
        Some(m) => {
            m.insert(last.clone(), value);
            true
        }
        None => false,
    }
}

/// The map at `path` under `v`, created where missing.
fn set_default_path<'v>(v: &'v mut Value, path: &[&str]) -> Option<&'v mut Map<String, Value>> {
    let mut cur = v;
    for seg in path {
        cur = cur
            .as_object_mut()?
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    cur.as_object_mut()
}

fn snake(name: &str) -> Option<String> {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_').to_string();
    (!s.is_empty()).then_some(s)
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

// ----- YAML output ----------------------------------------------------------
//
// A small block-style emitter: alto.yaml must read back exactly as built, so
// a string is written plain only when it cannot be read as anything else,
// and double-quoted with escapes otherwise.

fn emit_map(out: &mut String, m: &Map<String, Value>, indent: usize) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(k));
        out.push(':');
        emit_after_key(out, v, indent);
    }
}

fn emit_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => match flow_list(a) {
            Some(flow) if indent + flow.len() < 90 => {
                out.push(' ');
                out.push_str(&flow);
                out.push('\n');
            }
            _ => {
                out.push('\n');
                emit_seq(out, a, indent + 2);
            }
        },
        other => {
            out.push(' ');
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first entry goes on the dash's line.
                let mut inner = String::new();
                emit_map(&mut inner, m, indent + 2);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => match flow_list(inner) {
                Some(flow) => {
                    out.push(' ');
                    out.push_str(&flow);
                    out.push('\n');
                }
                None => {
                    out.push('\n');
                    emit_seq(out, inner, indent + 2);
                }
            },
            other => {
                out.push(' ');
                out.push_str(&scalar_text(other));
                out.push('\n');
            }
        }
    }
}

/// `[a, "b c", 1]` when every item is a scalar.
fn flow_list(a: &[Value]) -> Option<String> {
    let items: Option<Vec<String>> = a
        .iter()
        .map(|v| match v {
            Value::Array(_) | Value::Object(_) => None,
            other => Some(scalar_text(other)),
        })
        .collect();
    Some(format!("[{}]", items?.join(", ")))
}

fn key_text(k: &str) -> String {
    if plain_ok(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Whether a string can be written unquoted in block and flow context and
/// read back as the same string by any YAML reader (1.1 booleans included).
fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || "_/.".contains(first)) {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./=+~@^%".contains(c))
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ]
    .contains(&lower.as_str())
    {
        return false;
    }
    matches!(
        yaml_rust2::Yaml::from_str(s),
        yaml_rust2::Yaml::String(ref r) if r == s
    )
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
