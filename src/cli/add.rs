//! `alto add KIND NAME --pip-url URL`: a plugin written into the project's
//! main config file under `default` (comments and layout kept; an edit the
//! parser does not read back as exactly that plugin is refused), then built
//! and asked its `--about`, whose capabilities and setting names fill it in.

use serde_json::{Map, Value, json};

use super::run::build_options;
use super::{Error, Global};
use crate::config::{Format, PluginKind, Project};
use crate::realize::Realizer;

/// One setting a plugin's `--about` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub required: bool,
    pub secret: bool,
}

/// What is written for the plugin.
#[derive(Debug, Clone, Default)]
struct Entry {
    pip_url: String,
    executable: Option<String>,
    capabilities: Option<Vec<String>>,
    settings: Vec<Setting>,
}

impl Entry {
    /// The entry's value as the config parser must read it back.
    fn value(&self) -> Value {
        let mut m = Map::new();
        m.insert("pip_url".into(), json!(self.pip_url));
        if let Some(exe) = &self.executable {
            m.insert("executable".into(), json!(exe));
        }
        if let Some(caps) = &self.capabilities {
            m.insert("capabilities".into(), json!(caps));
        }
        Value::Object(m)
    }
}

pub fn add(
    g: &Global,
    kind: PluginKind,
    name: &str,
    pip_url: &str,
    executable: Option<&str>,
    no_build: bool,
) -> Result<(), Error> {
    let project = g.load()?;
    let file = project.main_file.clone();
    let shown = file_name(&project);
    if let Some(problem) = crate::config::name::problem(name) {
        return Err(Error::CannotAdd {
            name: name.into(),
            why: format!("{problem}; {}", crate::config::name::NAME_RULE),
        });
    }
    if let Ok(existing) = project.plugin(name) {
        return Err(Error::CannotAdd {
            name: name.into(),
            why: format!(
                "the project already has a {} of that name",
                existing.kind.noun()
            ),
        });
    }
    let original = std::fs::read_to_string(&file).map_err(|source| Error::Read {
        path: file.clone(),
        source,
    })?;
    let section = kind.section();
    let mut entry = Entry {
        pip_url: pip_url.to_string(),
        executable: executable.map(str::to_string),
        ..Default::default()
    };
    write(&project, &original, section, name, &entry)?;
    if no_build {
        eprintln!("added {name} to {shown} under default.{section}; not built (--no-build)");
        return Ok(());
    }
    // Built from the file as written; any failure puts the file back as it was.
    let described = describe(g, name);
    let (key, about) = match described {
        Ok(d) => d,
        Err(e) => {
            restore(&file, &original);
            return Err(e);
        }
    };
    match about {
        Ok(answer) => {
            entry.capabilities = capabilities(&answer);
            entry.settings = settings(&answer);
        }
        Err(reason) => tracing::warn!(
            "{name} cannot describe itself ({reason}); set `default.{section}.{name}.capabilities` by hand, or, if its command is not named {name}, add it again with --executable"
        ),
    }
    if let Err(e) = write(&project, &original, section, name, &entry) {
        restore(&file, &original);
        return Err(e);
    }
    let mut said = format!("added {name} to {shown} under default.{section}; built {key}");
    if let Some(caps) = &entry.capabilities {
        said.push_str(&format!("; capabilities: {}", caps.join(", ")));
    }
    eprintln!("{said}");
    if g.printer().json() {
        let settings: Vec<Value> = entry
            .settings
            .iter()
            .map(|s| json!({"name": s.name, "required": s.required, "secret": s.secret}))
            .collect();
        println!(
            "{}",
            json!({"plugin": name, "section": section, "file": shown, "key": key,
                   "capabilities": entry.capabilities, "settings": settings})
        );
    } else if !entry.settings.is_empty() {
        println!("settings of {name} (from its --about):");
        for s in &entry.settings {
            println!("  {}", setting_note(s, project.format));
        }
    }
    Ok(())
}

fn file_name(project: &Project) -> String {
    project
        .main_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| project.main_file.display().to_string())
}

/// Builds the plugin from the project as now written and asks its
/// `--about`: its key, and the answer or why there is none.
fn describe(g: &Global, name: &str) -> Result<(String, Result<Value, String>), Error> {
    let project = g.load()?;
    let plugin = project.plugin(name)?;
    let realizer = Realizer::new(&project)?;
    let derivs = crate::run::realize_plugins(&realizer, &[plugin], &build_options(g))?;
    let Some(d) = derivs.first() else {
        return Err(Error::CannotAdd {
            name: name.into(),
            why: "it has nothing to build".into(),
        });
    };
    let about = crate::realize::about::about(&realizer, plugin, d).map_err(|e| e.to_string());
    Ok((d.key.to_string(), about))
}

fn restore(file: &std::path::Path, original: &str) {
    if let Err(e) = crate::store::local::write_atomic(file, original.as_bytes()) {
        tracing::error!("could not put {} back as it was: {e}", file.display());
    }
}

/// Places the entry in `original` and writes the file, once the new text
/// reads back as `original` plus exactly the entry.
fn write(
    project: &Project,
    original: &str,
    section: &str,
    name: &str,
    entry: &Entry,
) -> Result<(), Error> {
    let shown = file_name(project);
    let cannot = |why: String| Error::CannotPlace {
        file: shown.clone(),
        why,
    };
    let text = place(project.format, original, section, name, entry).map_err(cannot)?;
    check(
        project.format,
        original,
        &text,
        section,
        name,
        &entry.value(),
    )
    .map_err(cannot)?;
    crate::store::local::write_atomic(&project.main_file, text.as_bytes()).map_err(|source| {
        Error::Write {
            path: project.main_file.clone(),
            source,
        }
    })
}

/// Whether `new` reads as `old` with `default.<section>.<name>` = `want`
/// and nothing else changed.
fn check(
    format: Format,
    old: &str,
    new: &str,
    section: &str,
    name: &str,
    want: &Value,
) -> Result<(), String> {
    let old = format
        .parse(old)
        .map_err(|e| format!("it does not parse: {}", e.message))?
        .value;
    let mut new = format
        .parse(new)
        .map_err(|e| format!("the edit would not parse: {}", e.message))?
        .value;
    let placed = new
        .get("default")
        .and_then(|d| d.get(section))
        .and_then(|s| s.get(name));
    if placed != Some(want) {
        return Err(format!(
            "the edit would not read back as default.{section}.{name}"
        ));
    }
    // Take the entry (and what was created to hold it) away again.
    if let Some(Value::Object(d)) = new.get_mut("default") {
        if let Some(Value::Object(s)) = d.get_mut(section) {
            s.shift_remove(name);
        }
        let old_has_section = old.get("default").and_then(|d| d.get(section)).is_some();
        if !old_has_section {
            d.shift_remove(section);
        }
    }
    if old.get("default").is_none()
        && let Value::Object(top) = &mut new
    {
        top.shift_remove("default");
    }
    if new != old {
        return Err("the edit would change more than the new plugin".into());
    }
    Ok(())
}

/// The text with the entry placed in `default.<section>`.
fn place(
    format: Format,
    text: &str,
    section: &str,
    name: &str,
    entry: &Entry,
) -> Result<String, String> {
    match format {
        Format::Yaml => yaml::place(text, section, name, entry),
        Format::Toml => Ok(toml_place(text, section, name, entry)),
        Format::Json => json_place(text, section, name, entry),
        Format::Kdl => kdl_place(text, section, name, entry),
    }
}

/// A string quoted for YAML, TOML and KDL alike (JSON's escapes are valid
/// in YAML double-quoted strings, TOML basic strings and KDL strings).
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn setting_note(s: &Setting, format: Format) -> String {
    let mut note = s.name.clone();
    match (s.required, s.secret) {
        (true, true) => note.push_str(&format!(
            " (required, secret: set it in alto.secrets.{})",
            format.extension()
        )),
        (true, false) => note.push_str(" (required)"),
        (false, true) => note.push_str(&format!(
            " (secret: set it in alto.secrets.{})",
            format.extension()
        )),
        (false, false) => {}
    }
    note
}

/// The entry's lines at `indent`, nested by `step`: YAML's.
fn yaml_lines(name: &str, entry: &Entry, indent: usize, step: usize) -> String {
    let pad = " ".repeat(indent);
    let inner = " ".repeat(indent + step);
    let mut out = format!("{pad}{name}:\n{inner}pip_url: {}\n", quoted(&entry.pip_url));
    if let Some(exe) = &entry.executable {
        out.push_str(&format!("{inner}executable: {}\n", quoted(exe)));
    }
    if let Some(caps) = &entry.capabilities {
        let list: Vec<String> = caps.iter().map(|c| quoted(c)).collect();
        out.push_str(&format!("{inner}capabilities: [{}]\n", list.join(", ")));
    }
    if !entry.settings.is_empty() {
        out.push_str(&format!(
            "{inner}# Settings its --about reports; secrets go in alto.secrets.yaml.\n{inner}# config:\n"
        ));
        for s in &entry.settings {
            let mark = note_suffix(s);
            out.push_str(&format!("{inner}# {}{}:{mark}\n", " ".repeat(step), s.name));
        }
    }
    out
}

mod yaml {
    use super::{Entry, yaml_lines};

    /// A line's indentation and content; `None` for blank and comment lines.
    fn content(line: &str) -> Option<(usize, &str)> {
        let rest = line.trim_start_matches(' ');
        if rest.trim().is_empty() || rest.starts_with('#') {
            return None;
        }
        Some((line.len() - rest.len(), rest.trim_end()))
    }

    /// Whether `rest` is `key:` with nothing after it but a comment; an
    /// error for `key:` with an inline value (alto adds only to blocks).
    fn opens(rest: &str, key: &str) -> Result<bool, String> {
        let Some(after) = rest.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            return Ok(false);
        };
        if !after.is_empty() && !after.starts_with(' ') {
            return Ok(false);
        }
        let after = after.trim();
        if after.is_empty() || after.starts_with('#') {
            return Ok(true);
        }
        Err(format!(
            "`{key}:` is written inline (`{key}: {after}`); alto adds only to a block mapping"
        ))
    }

    /// The last content line in `lines[from..to]`, if any.
    fn last_content(lines: &[&str], from: usize, to: usize) -> Option<usize> {
        (from..to).rev().find(|&i| content(lines[i]).is_some())
    }

    /// The end of the block opened at `lines[at]` (indent `indent`): the first
    /// later content line indented no deeper.
    fn block_end(lines: &[&str], at: usize, indent: usize) -> usize {
        (at + 1..lines.len())
            .find(|&i| content(lines[i]).is_some_and(|(n, _)| n <= indent))
            .unwrap_or(lines.len())
    }

    pub fn place(text: &str, section: &str, name: &str, entry: &Entry) -> Result<String, String> {
        if text.contains('\t') {
            return Err("it is indented with tabs".into());
        }
        let lines: Vec<&str> = text.lines().collect();
        let insert = |at: usize, block: String| -> String {
            let mut out: Vec<String> = lines[..at].iter().map(|l| l.to_string()).collect();
            out.push(block.trim_end_matches('\n').to_string());
            out.extend(lines[at..].iter().map(|l| l.to_string()));
            out.join("\n") + "\n"
        };
        let mut default = None;
        for (i, line) in lines.iter().enumerate() {
            if let Some((0, rest)) = content(line)
                && opens(rest, "default")?
            {
                default = Some(i);
            }
        }
        let Some(d) = default else {
            let block = format!("default:\n  {section}:\n{}", yaml_lines(name, entry, 4, 2));
            return Ok(insert(lines.len(), block));
        };
        let d_end = block_end(&lines, d, 0);
        let child = (d + 1..d_end).find_map(|i| content(lines[i]).map(|(n, _)| n));
        let Some(child) = child else {
            return Ok(insert(
                d + 1,
                format!("  {section}:\n{}", yaml_lines(name, entry, 4, 2)),
            ));
        };
        let mut s = None;
        for (i, line) in lines.iter().enumerate().take(d_end).skip(d + 1) {
            if let Some((n, rest)) = content(line)
                && n == child
                && opens(rest, section)?
            {
                s = Some(i);
            }
        }
        let Some(s) = s else {
            let at = last_content(&lines, d + 1, d_end).map_or(d + 1, |i| i + 1);
            let pad = " ".repeat(child);
            return Ok(insert(
                at,
                format!(
                    "{pad}{section}:\n{}",
                    yaml_lines(name, entry, child * 2, child)
                ),
            ));
        };
        let s_end = block_end(&lines, s, child);
        let indent = (s + 1..s_end)
            .find_map(|i| content(lines[i]).map(|(n, _)| n))
            .unwrap_or(child * 2);
        let step = indent.saturating_sub(child).max(1);
        let at = last_content(&lines, s + 1, s_end).map_or(s + 1, |i| i + 1);
        Ok(insert(at, yaml_lines(name, entry, indent, step)))
    }
}

/// TOML: a new table at the end of the file (TOML tables may come in any
/// order), so nothing already written moves.
fn toml_place(text: &str, section: &str, name: &str, entry: &Entry) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "\n[default.{section}.{name}]\npip_url = {}\n",
        quoted(&entry.pip_url)
    ));
    if let Some(exe) = &entry.executable {
        out.push_str(&format!("executable = {}\n", quoted(exe)));
    }
    if let Some(caps) = &entry.capabilities {
        let list: Vec<String> = caps.iter().map(|c| quoted(c)).collect();
        out.push_str(&format!("capabilities = [{}]\n", list.join(", ")));
    }
    if !entry.settings.is_empty() {
        out.push_str("# Settings its --about reports; secrets go in alto.secrets.toml.\n");
        for s in &entry.settings {
            out.push_str(&format!("# config.{} = \"\"{}\n", s.name, note_suffix(s)));
        }
    }
    out
}

fn note_suffix(s: &Setting) -> &'static str {
    match (s.required, s.secret) {
        (true, true) => "  # required, secret",
        (true, false) => "  # required",
        (false, true) => "  # secret",
        (false, false) => "",
    }
}

/// JSON has no comments to keep: the document is written again, in its
/// order, two spaces a level.
fn json_place(text: &str, section: &str, name: &str, entry: &Entry) -> Result<String, String> {
    let mut doc: Value =
        serde_json::from_str(text).map_err(|e| format!("it does not parse: {e}"))?;
    let Value::Object(top) = &mut doc else {
        return Err("it is not a JSON object".into());
    };
    let default = top
        .entry("default")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(default) = default else {
        return Err("`default` is not an object".into());
    };
    let sect = default
        .entry(section)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(sect) = sect else {
        return Err(format!("`default.{section}` is not an object"));
    };
    sect.insert(name.to_string(), entry.value());
    let mut out = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

/// KDL: the document keeps every node's formatting; the new nodes are
/// parsed from text indented like their neighbours.
fn kdl_place(text: &str, section: &str, name: &str, entry: &Entry) -> Result<String, String> {
    use kdl::KdlDocument;
    let mut doc: KdlDocument = text
        .parse()
        .map_err(|e: kdl::KdlError| format!("it does not parse: {e}"))?;
    let node = |indent: usize| -> String {
        let pad = " ".repeat(indent);
        let inner = " ".repeat(indent + 4);
        let mut s = format!(
            "{pad}{name} {{\n{inner}pip_url {}\n",
            quoted(&entry.pip_url)
        );
        if let Some(exe) = &entry.executable {
            s.push_str(&format!("{inner}executable {}\n", quoted(exe)));
        }
        if let Some(caps) = &entry.capabilities {
            let list: Vec<String> = caps.iter().map(|c| quoted(c)).collect();
            s.push_str(&format!("{inner}capabilities {}\n", list.join(" ")));
        }
        if !entry.settings.is_empty() {
            let names: Vec<String> = entry
                .settings
                .iter()
                .map(|s| match note_suffix(s).strip_prefix("  # ") {
                    Some(note) => format!("{} ({note})", s.name),
                    None => s.name.clone(),
                })
                .collect();
            s.push_str(&format!(
                "{inner}// Settings its --about reports (secrets go in alto.secrets.kdl): {}\n",
                names.join(", ")
            ));
        }
        s.push_str(&format!("{pad}}}\n"));
        s
    };
    let parse = |t: String| -> Result<Vec<kdl::KdlNode>, String> {
        t.parse::<KdlDocument>()
            .map(|d| d.nodes().to_vec())
            .map_err(|e| format!("the new plugin does not parse: {e}"))
    };
    let Some(default) = doc.get_mut("default") else {
        let block = format!("default {{\n    {section} {{\n{}    }}\n}}\n", node(8));
        doc.nodes_mut().extend(parse(block)?);
        return Ok(doc.to_string());
    };
    let children = default.ensure_children();
    match children.get_mut(section) {
        Some(sect) => {
            sect.ensure_children().nodes_mut().extend(parse(node(8))?);
        }
        None => {
            let block = format!("    {section} {{\n{}    }}\n", node(8));
            children.nodes_mut().extend(parse(block)?);
        }
    }
    Ok(doc.to_string())
}

/// The capabilities an `--about` answer lists.
fn capabilities(answer: &Value) -> Option<Vec<String>> {
    answer
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
}

/// The settings an `--about` answer reports: the Singer SDK's JSON schema
/// (`properties`, `required`, `secret`/`writeOnly`) or Meltano Hub's list
/// (`name`, `kind: password`, `sensitive`).
pub fn settings(answer: &Value) -> Vec<Setting> {
    let Some(settings) = answer.get("settings") else {
        return Vec::new();
    };
    if let Some(props) = settings.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = settings
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return props
            .iter()
            .map(|(name, schema)| Setting {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                secret: ["secret", "writeOnly", "sensitive"]
                    .iter()
                    .any(|k| schema.get(*k) == Some(&Value::Bool(true))),
            })
            .filter(|s| crate::config::name::problem(&s.name).is_none())
            .collect();
    }
    settings
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    let name = s.get("name")?.as_str()?.to_string();
                    Some(Setting {
                        required: s.get("required") == Some(&Value::Bool(true)),
                        secret: s.get("kind").and_then(Value::as_str) == Some("password")
                            || s.get("sensitive") == Some(&Value::Bool(true)),
                        name,
                    })
                })
                .filter(|s| crate::config::name::problem(&s.name).is_none())
                .collect()
        })
        .unwrap_or_default()
}

/// The plugin kind `alto add` was given.
pub fn kind(k: super::AddKind) -> PluginKind {
    match k {
        super::AddKind::Tap => PluginKind::Tap,
        super::AddKind::Target => PluginKind::Target,
        super::AddKind::Utility => PluginKind::Utility,
        super::AddKind::Mapper => PluginKind::Mapper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            pip_url: "tap-new==1.0".into(),
            executable: Some("tap-x".into()),
            capabilities: Some(vec!["catalog".into(), "state".into()]),
            settings: vec![
                Setting {
                    name: "host".into(),
                    required: true,
                    secret: false,
                },
                Setting {
                    name: "password".into(),
                    required: false,
                    secret: true,
                },
            ],
        }
    }

    fn added(format: Format, text: &str, section: &str) -> String {
        let e = entry();
        let out = place(format, text, section, "tap-new", &e).unwrap();
        check(format, text, &out, section, "tap-new", &e.value()).unwrap();
        out
    }

    #[test]
    fn every_format_init_writes_takes_a_plugin_and_keeps_its_comments() {
        for format in [Format::Yaml, Format::Toml, Format::Json, Format::Kdl] {
            let text = crate::config::template::main_file(format, "p");
            for section in ["taps", "mappers"] {
                let out = added(format, &text, section);
                if format != Format::Json {
                    for line in text
                        .lines()
                        .filter(|l| l.trim_start().starts_with(['#', '/']))
                    {
                        assert!(out.contains(line), "{format:?} lost {line:?}:\n{out}");
                    }
                }
            }
        }
    }

    #[test]
    fn yaml_entries_go_at_the_end_of_their_section_indented_like_it() {
        let text = "# top\ndefault:\n   taps:\n      tap-a:\n         pip_url: a  # why\n\n   # targets next\n   targets: {}\nprod:\n   x: 1\n";
        let out = added(Format::Yaml, text, "taps");
        assert_eq!(
            out,
            "# top\ndefault:\n   taps:\n      tap-a:\n         pip_url: a  # why\n      tap-new:\n         pip_url: \"tap-new==1.0\"\n         executable: \"tap-x\"\n         capabilities: [\"catalog\", \"state\"]\n         # Settings its --about reports; secrets go in alto.secrets.yaml.\n         # config:\n         #    host:  # required\n         #    password:  # secret\n\n   # targets next\n   targets: {}\nprod:\n   x: 1\n"
        );
        // Inline mappings are not edited: the error says why.
        let e = entry();
        let err = place(Format::Yaml, text, "targets", "t", &e).unwrap_err();
        assert!(err.contains("inline"), "{err}");
    }

    #[test]
    fn a_file_without_default_gets_one() {
        let out = added(Format::Yaml, "prod:\n  x: 1\n", "targets");
        assert!(
            out.starts_with("prod:\n  x: 1\ndefault:\n  targets:\n    tap-new:\n"),
            "{out}"
        );
        added(Format::Toml, "[prod]\nx = 1\n", "targets");
        added(Format::Kdl, "prod {\n    x 1\n}\n", "targets");
    }

    #[test]
    fn sdk_and_hub_settings_are_read_with_their_secrets() {
        let sdk = json!({"settings": {"type": "object", "properties": {
            "host": {"type": ["string"]}, "password": {"type": ["string"], "secret": true, "writeOnly": true}},
            "required": ["host"]}});
        assert_eq!(settings(&sdk), entry().settings);
        let hub = json!({"settings": [{"name": "host", "required": true}, {"name": "password", "kind": "password"}]});
        assert_eq!(settings(&hub), entry().settings);
        assert!(settings(&json!({"name": "x"})).is_empty());
    }
}
