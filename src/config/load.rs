//! Finding the config files of a project, reading them, and layering them with
//! `.env` and `ALTO_*` variables into one tree for the active environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::format::{Format, KeyPath, SpanMap};
use super::source::{Layer, Origin, SourceFile, Sources};
use super::tree::{LayerSource, Tree, find_key};
use super::vault::{Vault, VaultSettings};

/// Variables of the `ALTO_` prefix that steer alto itself and are not config.
const CONTROL_VARS: [&str; 5] = [
    "ALTO_ENV",
    "ALTO_CACHE_DIR",
    "ALTO_LOG",
    "ALTO_ROOT",
    "ALTO_BENCH",
];

/// The keys of a section's top level: every project setting alto reads. One
/// at the top of a file means the user forgot `default:`; the Meltano importer
/// never names an environment after one; any other key of a section is named
/// in a warning (an error with `--strict`, see `config::keys`).
pub(crate) const SETTING_KEYS: [&str; 34] = [
    // config: the project, its plugins and what they get.
    "mappers",
    "project_name",
    "load_path",
    "taps",
    "targets",
    "utilities",
    "environment",
    // config::jobs: named lists of steps, and when to run them.
    "jobs",
    "schedules",
    // config::project: the original's Python extensions (warned about, not run).
    "extensions",
    // store::remote: where the remote store is, and its options
    // (`<filesystem>_settings` for every filesystem name it accepts).
    "filesystem",
    "bucket",
    "bucket_path",
    "filesystem_kwargs",
    "storage_options",
    "file_settings",
    "local_settings",
    "s3_settings",
    "s3a_settings",
    "gcs_settings",
    "gs_settings",
    "azure_settings",
    "az_settings",
    "adls_settings",
    "abfs_settings",
    // realize: the interpreter and pex plugins are built with, signed caches.
    "python",
    "pex",
    "signing_key",
    "trusted_public_keys",
    "untrusted_substitutes",
    // reservoir: the ingest tuning a tap without its own falls back on.
    "reservoir_buffer_size",
    "reservoir_buffer_bytes",
    "reservoir_compression_level",
    // config::vault: where HashiCorp Vault is and how to log in.
    "vault",
];

/// What a load needs from the outside world; tests pass their own.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--root`: the project directory, skipping discovery.
    pub root: Option<PathBuf>,
    /// Where discovery starts.
    pub cwd: PathBuf,
    /// `--env`
    pub env: Option<String>,
    /// The process environment.
    pub vars: Vec<(String, String)>,
    /// `--strict`: a key alto does not read is an error, not a warning.
    pub strict: bool,
    /// Read the Vault layer when it is turned on. Commands that render no
    /// secret (`list`, `show`) leave it off, so they never contact Vault;
    /// `{vault[...]}` fields are fetched only when rendered, whatever this says.
    pub vault_layer: bool,
}

impl LoadOptions {
    pub fn from_process(root: Option<PathBuf>, env: Option<String>) -> Self {
        LoadOptions {
            root,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            env,
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            strict: false,
            vault_layer: true,
        }
    }

    /// The same options with `--strict` on or off.
    pub fn strict(self, strict: bool) -> Self {
        LoadOptions { strict, ..self }
    }

    /// The same options reading the Vault layer or not.
    pub fn vault_layer(self, vault_layer: bool) -> Self {
        LoadOptions {
            vault_layer,
            ..self
        }
    }
}

/// Everything read from disk and the environment, layered for one environment.
pub struct Loaded {
    pub root: PathBuf,
    pub main_file: PathBuf,
    pub format: Format,
    pub environment: String,
    /// Whether some file has a section (even an empty one) for `environment`.
    pub environment_found: bool,
    pub environments: Vec<String>,
    pub sources: Sources,
    pub tree: Tree,
    /// Process variables over `.env` variables.
    pub vars: BTreeMap<String, String>,
    /// Names of the variables that came from `.env` (and not the process).
    pub dotenv_names: Vec<String>,
    /// `--strict`: keys alto does not read are errors.
    pub strict: bool,
    /// The keys at the top of the `default` and active sections of each file,
    /// with the section's name as written and where the key is.
    pub section_keys: Vec<SectionKey>,
    /// Every target named in any section of any file: a tap's block keyed by
    /// one is an override for it, even in an environment without that target.
    pub all_targets: Vec<String>,
    /// Vault, contacted only when a secret from it is needed.
    pub vault: Arc<Vault>,
}

/// A key at the top of a section, as written in one file.
#[derive(Debug, Clone)]
pub struct SectionKey {
    pub section: String,
    pub key: String,
    pub origin: Origin,
}

/// Finds the project root: `--root`, else the nearest directory, from the
/// current one upwards, holding a main config file.
pub fn find_root(opts: &LoadOptions) -> Result<PathBuf, ConfigError> {
    if let Some(root) = &opts.root {
        let root = if root.is_absolute() {
            root.clone()
        } else {
            opts.cwd.join(root)
        };
        return Ok(root);
    }
    let mut dir = Some(opts.cwd.as_path());
    while let Some(d) = dir {
        if !candidates(d, "alto").is_empty() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(ConfigError::NotFound {
        start: opts.cwd.clone(),
    })
}

/// The existing `<stem>.<ext>` files of a directory, in extension order.
pub fn candidates(dir: &Path, stem: &str) -> Vec<(PathBuf, Format)> {
    Format::EXTENSIONS
        .iter()
        .map(|(ext, f)| (dir.join(format!("{stem}.{ext}")), *f))
        .filter(|(p, _)| p.is_file())
        .collect()
}

fn one_file(
    dir: &Path,
    stem: &str,
    role: &'static str,
) -> Result<Option<(PathBuf, Format)>, ConfigError> {
    let mut found = candidates(dir, stem);
    if found.len() > 1 {
        return Err(ConfigError::Ambiguous {
            role,
            dir: dir.to_path_buf(),
            files: found
                .iter()
                .map(|(p, _)| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect(),
        });
    }
    Ok(found.pop())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn display_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A span miette can label: errors reported at the end of the text move back
/// onto its last visible character.
pub(crate) fn visible_span(text: &str, offset: usize, len: usize) -> miette::SourceSpan {
    let end = text.trim_end().len();
    if offset >= end {
        let start = text[..end]
            .char_indices()
            .last()
            .map(|(i, _)| i)
            .unwrap_or(0);
        return (start, end - start).into();
    }
    let len = len
        .clamp(1, super::source::LONG_LINE)
        .min(text.len() - offset);
    (offset, len).into()
}

/// The diagnostic for a file that does not parse.
fn syntax_error(
    name: &str,
    format: Format,
    text: &str,
    e: super::format::SyntaxError,
) -> ConfigError {
    let src = super::source::snippet(name, text);
    let span = visible_span(text, e.offset, e.len);
    match e.first {
        Some((offset, len)) => ConfigError::DuplicateKey {
            file: name.to_string(),
            message: e.message,
            src,
            span,
            first: visible_span(text, offset, len),
        },
        None => ConfigError::Syntax {
            file: name.to_string(),
            format: match format {
                Format::Yaml => "YAML",
                Format::Json => "JSON",
                Format::Toml => "TOML",
                Format::Kdl => "KDL",
            },
            message: e.message,
            src,
            span,
        },
    }
}

/// The original also read `alto.<anything>.<ext>` files as includes; alto reads
/// only `alto.local.*` and `alto.secrets.*`, and says so rather than ignoring
/// a file silently.
fn warn_unread_includes(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name.strip_prefix("alto.") else {
            continue;
        };
        let Some((stem, ext)) = middle.rsplit_once('.') else {
            continue;
        };
        if Format::from_name(ext).is_none()
            || stem.is_empty()
            || stem.starts_with("local")
            || stem.starts_with("secrets")
        {
            continue;
        }
        if stem == "example" {
            continue;
        }
        tracing::warn!(
            "{name} is not read: alto layers alto.{{yaml,toml,json,kdl}}, then alto.local.*, then alto.secrets.*; move its settings into one of those"
        );
    }
}

/// Reads `.env`: `KEY=value` lines, quotes and `export` allowed. Returns
/// the text too, for diagnostics.
pub(crate) fn read_dotenv(root: &Path) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let path = root.join(".env");
    if !path.is_file() {
        return Ok((String::new(), Vec::new()));
    }
    let text = read(&path)?;
    // A byte-order mark would otherwise become part of the first name.
    let text = text
        .strip_prefix(super::format::BOM)
        .map(str::to_string)
        .unwrap_or(text);
    let iter = dotenvy::from_read_iter(text.as_bytes());
    let mut out = Vec::new();
    for item in iter {
        out.push(item.map_err(|e| dotenv_error(&path, &text, e))?);
    }
    Ok((text, out))
}

/// Where the value of the last `NAME=` line of a `.env` text is.
fn dotenv_value_span(text: &str, name: &str) -> (usize, usize) {
    let mut found = (0, 0);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let unexported = trimmed
            .strip_prefix("export ")
            .unwrap_or(trimmed)
            .trim_start();
        if let Some(rest) = unexported.strip_prefix(name)
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            let value = value.trim_start();
            let start = offset + body.len() - value.len();
            found = (start, value.trim_end().len());
        }
        offset += line.len();
    }
    found
}

/// The error for an environment name that cannot become a directory name,
/// naming where it came from.
fn bad_environment(
    environment: &str,
    problem: &str,
    from_flag: bool,
    from_dotenv: bool,
    dotenv_text: &str,
) -> ConfigError {
    let shown = super::name::shown(environment);
    let help = Some(super::name::NAME_RULE.to_string());
    if from_flag {
        return ConfigError::BadName {
            message: format!("environment `{shown}` (from --env) cannot be used: {problem}"),
            help,
        };
    }
    if !from_dotenv {
        return ConfigError::BadName {
            message: format!(
                "environment `{shown}` (from ALTO_ENV in the environment) cannot be used: {problem}"
            ),
            help,
        };
    }
    let (offset, len) = dotenv_value_span(dotenv_text, "ALTO_ENV");
    let span = visible_span(dotenv_text, offset, len);
    ConfigError::Invalid {
        message: format!("environment `{shown}` (from ALTO_ENV in .env) cannot be used: {problem}"),
        src: super::source::snippet(".env", dotenv_text),
        span,
        label: "this environment".into(),
        help,
    }
}

fn dotenv_error(path: &Path, text: &str, e: dotenvy::Error) -> ConfigError {
    let (line, message, offset) = match &e {
        dotenvy::Error::LineParse(line_text, index) => {
            let lineno = text
                .lines()
                .position(|l| l.contains(line_text.as_str()) || line_text.contains(l))
                .unwrap_or(0);
            let start: usize = text.lines().take(lineno).map(|l| l.len() + 1).sum();
            (
                lineno + 1,
                "cannot parse this line".to_string(),
                start + index,
            )
        }
        other => (0, other.to_string(), 0),
    };
    ConfigError::DotEnv {
        file: path.to_path_buf(),
        line,
        message,
        src: super::source::snippet(".env", text),
        span: (offset.min(text.len()), 1).into(),
    }
}

pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let root = find_root(opts)?;
    let (main_file, format) =
        one_file(&root, "alto", "main config")?.ok_or_else(|| ConfigError::NotFound {
            start: root.clone(),
        })?;
    let local = one_file(&root, "alto.local", "local config")?;
    warn_unread_includes(&root);
    let secrets = one_file(&root, "alto.secrets", "secrets")?;

    // Variables: the process wins over `.env`.
    let (dotenv_text, dotenv) = read_dotenv(&root)?;
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut dotenv_names = Vec::new();
    for (k, v) in dotenv {
        dotenv_names.push(k.clone());
        vars.insert(k, v);
    }
    for (k, v) in &opts.vars {
        dotenv_names.retain(|n| n != k);
        vars.insert(k.clone(), v.clone());
    }

    let chosen = opts
        .env
        .clone()
        .filter(|e| !e.is_empty())
        .or_else(|| vars.get("ALTO_ENV").cloned().filter(|e| !e.is_empty()));
    let explicit = chosen.is_some();
    let environment = chosen.unwrap_or_else(|| "dev".to_string());
    // It becomes a directory name (logs, state): it must stay one.
    if let Some(problem) = super::name::problem(&environment) {
        let from_flag = opts.env.as_deref().is_some_and(|e| !e.is_empty());
        let from_dotenv = dotenv_names.iter().any(|n| n == "ALTO_ENV");
        return Err(bad_environment(
            &environment,
            &problem,
            from_flag,
            from_dotenv,
            &dotenv_text,
        ));
    }

    let mut sources = Sources::default();
    let mut tree = Tree::new();
    let mut environments: Vec<String> = Vec::new();
    let mut section_keys: Vec<SectionKey> = Vec::new();
    let mut all_targets: Vec<String> = Vec::new();
    let mut file_names: Vec<String> = Vec::new();
    // Whether any file has a section (even an empty one) for the environment.
    let mut env_found = false;

    let files = [
        (Some((main_file.clone(), format)), Layer::Main),
        (local, Layer::Local),
        (secrets, Layer::Secrets),
    ];
    for (file, layer) in files {
        let Some((path, format)) = file else { continue };
        let text = read(&path)?;
        let name = display_name(&root, &path);
        let parsed = format
            .parse(&text)
            .map_err(|e| syntax_error(&name, format, &text, e))?;
        let id = sources.add(SourceFile {
            name: name.clone(),
            path: Some(path.clone()),
            text: Arc::from(text.as_str()),
            layer,
        });
        file_names.push(name.clone());
        let sections = match parsed.value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                return Err(ConfigError::Invalid {
                    message: format!("{name} must hold sections: `default` and environments"),
                    src: sources.named(Origin {
                        source: id,
                        offset: 0,
                        len: 0,
                    }),
                    span: (0, text.len().min(1)).into(),
                    label: "expected a map of sections".into(),
                    help: Some("start the file with `default:` and put settings under it".into()),
                });
            }
        };
        let mut default = None;
        let mut active = None;
        for (key, section) in sections {
            let path: KeyPath = vec![key.clone()];
            let (offset, len) = parsed.spans.get(&path).copied().unwrap_or((0, 0));
            let here = Origin {
                source: id,
                offset,
                len,
            };
            if key != "default" && key.eq_ignore_ascii_case(&environment) {
                env_found = true;
            }
            if let Some(Value::Object(targets)) = section.get("targets") {
                for t in targets.keys() {
                    if !all_targets.contains(t) {
                        all_targets.push(t.clone());
                    }
                }
            }
            if SETTING_KEYS.contains(&key.as_str()) || !section.is_object() {
                if section.is_null() && key != "default" {
                    // An empty environment section.
                    continue;
                }
                return Err(ConfigError::Invalid {
                    message: format!("`{key}` at the top of {name} is not a section"),
                    src: sources.named(here),
                    span: here.span(),
                    label: "settings belong inside a section".into(),
                    help: Some(format!(
                        "the top level holds `default` and environment sections (dev, prod, ...); move `{key}` under `default:`"
                    )),
                });
            }
            if key == "default" {
                default = Some(section);
            } else {
                if let Some(problem) = super::name::problem(&key) {
                    // `--env` cannot select it (nor `--all-envs` go there).
                    super::keys::warn_once(
                        &format!("section-name:{key}"),
                        &format!(
                            "section `{}` of {name} is never used: it cannot name an environment ({problem})",
                            super::name::shown(&key)
                        ),
                    );
                    continue;
                }
                if !environments.iter().any(|e| e.eq_ignore_ascii_case(&key)) {
                    environments.push(key.clone());
                }
                if key.eq_ignore_ascii_case(&environment) {
                    active = Some((key, section));
                }
            }
        }
        let layer_src = LayerSource {
            source: id,
            spans: &parsed.spans,
            fallback: (0, 0),
        };
        let sections = [
            default.as_ref().map(|d| ("default".to_string(), d)),
            active.as_ref().map(|(k, s)| (k.clone(), s)),
        ];
        for (section, value) in sections.into_iter().flatten() {
            let Value::Object(m) = value else { continue };
            for key in m.keys() {
                let at: KeyPath = vec![section.clone(), key.clone()];
                let (offset, len) = parsed.spans.get(&at).copied().unwrap_or((0, 0));
                section_keys.push(SectionKey {
                    section: section.clone(),
                    key: key.clone(),
                    origin: Origin {
                        source: id,
                        offset,
                        len,
                    },
                });
            }
        }
        if let Some(d) = default {
            tree.merge(d, &vec!["default".to_string()], &vec![], &layer_src);
        }
        if let Some((k, s)) = active {
            tree.merge(s, &vec![k], &vec![], &layer_src);
        }
    }

    // `vault:` configures alto, not plugins: it leaves the tree, so that a
    // token in alto.local.* is never shown by `dump`.
    let vault_section = match &mut tree.value {
        Value::Object(m) => m.remove("vault"),
        _ => None,
    };
    let vault = Arc::new(Vault::new(VaultSettings::resolve(
        vault_section.as_ref(),
        &vars,
        &root,
    )?));
    if opts.vault_layer {
        apply_vault(&mut tree, &mut sources, &vault, &environment)?;
    }
    apply_overrides(&mut tree, &mut sources, &vars)?;
    warn_missing_environment(
        &environment,
        explicit,
        env_found,
        &file_names,
        &environments,
    );

    Ok(Loaded {
        root,
        main_file,
        format,
        environment,
        environment_found: env_found,
        environments,
        sources,
        tree,
        vars,
        dotenv_names,
        strict: opts.strict,
        section_keys,
        all_targets,
        vault,
    })
}

/// The warning for an environment no file has a section for: a typo in
/// `--env` or `ALTO_ENV` would otherwise run with `default` alone. The
/// default `dev` is not warned about unless it was asked for.
fn warn_missing_environment(
    environment: &str,
    explicit: bool,
    found: bool,
    files: &[String],
    environments: &[String],
) {
    let id = format!("environment:{}", environment.to_ascii_lowercase());
    match missing_environment(environment, explicit, found, files, environments) {
        Some(message) => super::keys::warn_once(&id, &message),
        None if !found => {
            // The implicit `dev`: a later load of this process naming it
            // (`build --all-envs` and `gc` reload the active environment by
            // name) must not warn either.
            super::keys::first_time(&id);
        }
        None => {}
    }
}

/// The warning text, when one is due.
pub(crate) fn missing_environment(
    environment: &str,
    explicit: bool,
    found: bool,
    files: &[String],
    environments: &[String],
) -> Option<String> {
    (explicit && !found).then(|| missing_environment_message(environment, files, environments))
}

/// "environment `prod` has no section in alto.yaml, alto.local.yaml; known: dev, staging"
fn missing_environment_message(
    environment: &str,
    files: &[String],
    environments: &[String],
) -> String {
    let known: Vec<&str> = environments
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with('_'))
        .collect();
    let known = if known.is_empty() {
        "none (only `default` applies)".to_string()
    } else {
        known.join(", ")
    };
    format!(
        "environment `{environment}` has no section in {}; known: {known}",
        files.join(", ")
    )
}

/// Applies `ALTO_A__B__C=value` variables: each segment picks an existing key
/// loosely (case and `-`/`_`), else a new lower-case key.
fn apply_overrides(
    tree: &mut Tree,
    sources: &mut Sources,
    vars: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let overrides: Vec<(&String, &String)> = vars
        .iter()
        .filter(|(k, _)| k.len() > 5 && k[..5].eq_ignore_ascii_case("ALTO_"))
        .filter(|(k, _)| !CONTROL_VARS.iter().any(|c| c.eq_ignore_ascii_case(k)))
        .filter(|(k, _)| !k[5..].split("__").any(str::is_empty))
        .collect();
    if overrides.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
    let (id, spans) = listing(sources, "<environment>", Layer::Environment, &names);
    for ((name, raw), span) in overrides.into_iter().zip(spans) {
        let value = parse_override(raw).map_err(|message| ConfigError::Invalid {
            message: format!("{name} is not valid: {message}"),
            src: sources.named(Origin {
                source: id,
                offset: span.0,
                len: span.1,
            }),
            span: span.into(),
            label: "this variable".into(),
            help: Some("`@json` values must be JSON".into()),
        })?;
        merge_at(tree, &name[5..], value, id, span);
    }
    Ok(())
}

/// A synthetic source listing the names of what a layer applied (never their
/// values, which may be secret), one a line, and the span of each name.
fn listing(
    sources: &mut Sources,
    name: &str,
    layer: Layer,
    names: &[&str],
) -> (usize, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    for n in names {
        spans.push((text.len(), n.len()));
        text.push_str(n);
        text.push('\n');
    }
    let id = sources.add(SourceFile {
        name: name.into(),
        path: None,
        text: Arc::from(text.as_str()),
        layer,
    });
    (id, spans)
}

/// Merges `value` at the tree path `A__B__C` names: each segment picks an
/// existing key loosely (case and `-`/`_`), else a new lower-case key.
fn merge_at(tree: &mut Tree, name: &str, value: Value, source: usize, span: (usize, usize)) {
    let mut path: KeyPath = Vec::new();
    let mut node = Some(&tree.value);
    for seg in name.split("__") {
        let key = match node {
            Some(Value::Object(m)) => find_key(m, seg).cloned(),
            _ => None,
        }
        .unwrap_or_else(|| seg.to_ascii_lowercase());
        node = node.and_then(|n| n.get(&key));
        path.push(key);
    }
    let spans_map = SpanMap::new();
    let layer = LayerSource {
        source,
        spans: &spans_map,
        fallback: span,
    };
    tree.merge(value, &vec![], &path, &layer);
}

/// The Vault layer, as Dynaconf's Vault loader reads it: the secrets at
/// `<path>/default`, then `<path>/<environment>`; each key names a setting
/// (`__` nests, as `ALTO_*` variables do) and a string value is read as
/// `ALTO_*` values are. A missing secret is skipped, as Dynaconf does, but
/// not both: then the path is wrong.
fn apply_vault(
    tree: &mut Tree,
    sources: &mut Sources,
    vault: &Vault,
    environment: &str,
) -> Result<(), ConfigError> {
    let settings = vault.settings();
    let Some(by) = settings.layer_by.clone() else {
        return Ok(());
    };
    let base = settings.path.clone();
    let env = environment.to_ascii_lowercase();
    let mut paths = vec![format!("{base}/default")];
    if env != "default" {
        paths.push(format!("{base}/{env}"));
    }
    let mut found = false;
    let mut entries: Vec<(String, String, Value)> = Vec::new();
    for path in &paths {
        let Some(secret) = vault.secret(path, &by)? else {
            continue;
        };
        found = true;
        for (k, v) in secret {
            if k.split("__").any(str::is_empty) {
                super::keys::warn_once(
                    &format!("vault-key:{path}#{k}"),
                    &format!(
                        "{}#{k} is not read: a key of the Vault layer names a setting, its parts joined by `__`",
                        vault.shown(path)
                    ),
                );
                continue;
            }
            entries.push((format!("{}#{k}", vault.shown(path)), k, v));
        }
    }
    if !found {
        let shown: Vec<String> = paths.iter().map(|p| vault.shown(p)).collect();
        return Err(ConfigError::VaultMissing {
            message: format!(
                "the Vault layer ({by}) found no secret at {} in Vault at {}",
                shown.join(" or "),
                settings.url
            ),
            help: "set VAULT_PATH_FOR_DYNACONF (or vault.path) and VAULT_MOUNT_POINT_FOR_DYNACONF (or vault.mount_point) to where the project's secrets are, or write one of them".into(),
        });
    }
    let names: Vec<&str> = entries.iter().map(|(shown, _, _)| shown.as_str()).collect();
    let (id, spans) = listing(sources, "<vault>", Layer::Vault, &names);
    for ((shown, key, value), span) in entries.into_iter().zip(spans) {
        let value = match value {
            Value::String(raw) => parse_override(&raw).map_err(|message| ConfigError::Invalid {
                message: format!("{shown} is not valid: {message}"),
                src: sources.named(Origin {
                    source: id,
                    offset: span.0,
                    len: span.1,
                }),
                span: span.into(),
                label: "this key".into(),
                help: Some("`@json` values must be JSON".into()),
            })?,
            other => other,
        };
        merge_at(tree, &key, value, id, span);
    }
    Ok(())
}

/// `@json {...}` is JSON; anything TOML can read as one value (`42`, `true`,
/// `[1, "a"]`, `'007'`) is that value; the rest is a string.
pub fn parse_override(raw: &str) -> Result<Value, String> {
    if let Some(rest) = raw.strip_prefix("@json") {
        return serde_json::from_str(rest.trim()).map_err(|e| e.to_string());
    }
    if raw.contains('\n') {
        return Ok(Value::String(raw.to_string()));
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(t) if t.len() == 1 => match t.into_iter().next() {
            Some((_, v)) => Ok(super::format::toml_value(v)),
            None => Ok(Value::String(raw.to_string())),
        },
        _ => Ok(Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn override_values() {
        assert_eq!(parse_override("42").unwrap(), json!(42));
        assert_eq!(parse_override("true").unwrap(), json!(true));
        assert_eq!(parse_override("3.5").unwrap(), json!(3.5));
        assert_eq!(
            parse_override("[1, 2, \"three\"]").unwrap(),
            json!([1, 2, "three"])
        );
        assert_eq!(parse_override("'007'").unwrap(), json!("007"));
        assert_eq!(parse_override("env-foo").unwrap(), json!("env-foo"));
        assert_eq!(parse_override("").unwrap(), json!(""));
        assert_eq!(parse_override("1\nx = 2").unwrap(), json!("1\nx = 2"));
        assert_eq!(
            parse_override("@json {\"z\": 26}").unwrap(),
            json!({"z": 26})
        );
        assert!(parse_override("@json {").is_err());
    }

    fn load_in(files: &[(&str, &str)], env: Option<&str>, vars: &[(&str, &str)]) -> Loaded {
        match try_load(files, env, vars) {
            Ok(l) => l,
            Err(e) => panic!("{}", render(&e)),
        }
    }

    fn try_load(
        files: &[(&str, &str)],
        env: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let opts = LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: env.map(str::to_string),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            strict: false,
            vault_layer: false,
        };
        load(&opts)
    }

    /// The diagnostic as `main` prints it, without colours.
    fn render(e: &ConfigError) -> String {
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, e)
            .unwrap();
        out
    }

    #[test]
    fn errors_on_very_long_lines_render_a_window_of_the_line() {
        let long_yaml = |before: &str| format!("default:\n  a: {before} : [\n");
        let cases = [
            ("alto.yaml", long_yaml(&"x".repeat(100_000)), "alto.yaml:2:"),
            ("alto.yaml", long_yaml(&"é".repeat(60_000)), "alto.yaml:2:"),
            (
                "alto.yaml",
                long_yaml(&format!("{}{}", "\t".repeat(20_000), "日本".repeat(20_000))),
                "alto.yaml:2:",
            ),
            (
                "alto.json",
                format!(
                    "{{\"default\": {{\"a\": \"{}\", \"b\": }}}}",
                    "ü".repeat(70_000)
                ),
                "alto.json:1:",
            ),
            (
                "alto.toml",
                format!("[default]\na = \"{}\" b\n", "x".repeat(100_000)),
                "alto.toml:2:",
            ),
        ];
        for (file, text, place) in cases {
            let err = try_load(&[(file, &text)], None, &[]).err().unwrap();
            let out = render(&err);
            assert!(
                out.contains(place),
                "{file}: {}",
                &out[..out.len().min(2000)]
            );
            assert!(out.len() < 4_000, "{file}: the whole line was shown");
        }
    }

    #[test]
    fn dotenv_values_are_found() {
        let text = "ALTO_ENVX=1\nALTO_ENV=a\n  export ALTO_ENV = \"b c\"  \r\nY=2";
        let (off, len) = dotenv_value_span(text, "ALTO_ENV");
        assert_eq!(&text[off..off + len], "\"b c\"");
        assert_eq!(dotenv_value_span("Y=1\n", "ALTO_ENV"), (0, 0));
    }

    #[test]
    fn environment_names_are_checked_where_they_come_from() {
        let files = [("alto.yaml", "default: {}\n../up: {}\n")];
        let message = |e: ConfigError| e.to_string();
        let e = try_load(&files, Some("../up"), &[]).err().map(message);
        assert!(
            e.as_deref().is_some_and(|e| e.contains("(from --env)")),
            "{e:?}"
        );
        let e = try_load(&files, None, &[("ALTO_ENV", "a/b")])
            .err()
            .map(message);
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("(from ALTO_ENV in the environment)")),
            "{e:?}"
        );
        let with_dotenv = [files[0], (".env", "ALTO_ENV=..\n")];
        let e = try_load(&with_dotenv, None, &[]).err().map(message);
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("(from ALTO_ENV in .env)")),
            "{e:?}"
        );
        // The process wins over .env, and a good name from it is used.
        let l = load_in(&with_dotenv, None, &[("ALTO_ENV", "prod")]);
        assert_eq!(l.environment, "prod");
        // A section no name can select is not an environment.
        assert!(load_in(&files, None, &[]).environments.is_empty());
    }

    #[test]
    fn environments_without_a_section_are_found_out() {
        let files = [
            (
                "alto.yaml",
                "default: {}\ndev: {}\nStaging: {load_path: s}\n",
            ),
            ("alto.local.yaml", "prod:\n"),
        ];
        // Case-insensitive, and an empty section counts.
        assert!(load_in(&files, Some("staging"), &[]).environment_found);
        assert!(load_in(&files, Some("PROD"), &[]).environment_found);
        let l = load_in(&files, Some("prd"), &[]);
        assert!(!l.environment_found);
        let names: Vec<String> = l.sources.iter().map(|f| f.name.clone()).collect();
        assert_eq!(
            missing_environment("prd", true, false, &names, &l.environments).as_deref(),
            Some(
                "environment `prd` has no section in alto.yaml, alto.local.yaml; known: dev, Staging"
            )
        );
        let l = load_in(&files, None, &[("ALTO_ENV", "qa")]);
        assert_eq!(l.environment, "qa");
        assert!(!l.environment_found);
        // The implicit default is not warned about; an explicit one is.
        let bare = [("alto.yaml", "default: {}\n")];
        let l = load_in(&bare, None, &[]);
        assert!(!l.environment_found);
        assert_eq!(missing_environment("dev", false, false, &[], &[]), None);
        assert_eq!(
            missing_environment("dev", true, false, &["alto.yaml".into()], &[]).as_deref(),
            Some(
                "environment `dev` has no section in alto.yaml; known: none (only `default` applies)"
            )
        );
    }

    #[test]
    fn section_keys_and_every_target_are_recorded() {
        let files = [(
            "alto.yaml",
            "default:\n  bukcet: b\n  targets: {t-a: {}}\nprod:\n  targets: {t-b: {}}\n  pex: x\nci:\n  targets: {t-c: {}}\n",
        )];
        let l = load_in(&files, Some("prod"), &[]);
        let keys: Vec<(&str, &str)> = l
            .section_keys
            .iter()
            .map(|k| (k.section.as_str(), k.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("default", "bukcet"),
                ("default", "targets"),
                ("prod", "targets"),
                ("prod", "pex")
            ]
        );
        let o = l.section_keys[0].origin;
        assert_eq!(o.offset, "default:\n  bukcet: ".len(), "the value's place");
        assert_eq!(l.all_targets, vec!["t-a", "t-b", "t-c"]);
    }
}
