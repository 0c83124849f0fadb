//! The commands of this version: `init`, `config`, `dump`, `list`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::output::print_json;
use super::task;
use super::{Error, Global, InitFormat};
use crate::config::{Format, Project, REDACTED, Rendered, template};

fn shown(g: &Global, r: &Rendered) -> Value {
    if g.show_secrets {
        r.value.clone()
    } else {
        r.redacted()
    }
}

pub fn config(g: &Global, project: &Project, plugin: &str, tap: Option<&str>) -> Result<(), Error> {
    let rendered = project.render_config(plugin, tap)?;
    print_json(&shown(g, &rendered));
    Ok(())
}

pub fn dump(g: &Global, project: &Project, keys: &[String]) -> Result<(), Error> {
    let rendered = project.render_dump(keys)?;
    print_json(&shown(g, &rendered));
    Ok(())
}

/// The plugin's pip_url as `list` shows it: unrendered, redacted if secret.
fn pip_url_shown(project: &Project, p: &crate::config::Plugin, g: &Global) -> Option<String> {
    let url = p.raw_str("pip_url")?;
    let secret = p.lineage.iter().any(|base| {
        let mut path = base.clone();
        path.push("pip_url".into());
        project
            .tree
            .exact_origin(&path)
            .and_then(|o| project.sources.layer(o))
            .is_some_and(|l| l.is_secret())
    });
    Some(if secret && !g.show_secrets {
        REDACTED.to_string()
    } else {
        url.split_whitespace().collect::<Vec<_>>().join(" ")
    })
}

pub fn list(g: &Global, project: &Project) -> Result<(), Error> {
    let tasks: Vec<String> = task::all(project).iter().map(|t| t.to_string()).collect();
    if g.json {
        let plugins = |m: &indexmap::IndexMap<String, crate::config::Plugin>| -> Vec<Value> {
            m.values()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "pip_url": pip_url_shown(project, p, g),
                        "inherit_from": p.parent,
                        "capabilities": p.capabilities(),
                    })
                })
                .collect()
        };
        print_json(&json!({
            "project": project.name,
            "environment": project.environment,
            "taps": plugins(&project.taps),
            "targets": plugins(&project.targets),
            "utilities": plugins(&project.utilities),
            "mappers": plugins(&project.mappers),
            "tasks": tasks,
        }));
        return Ok(());
    }
    let mut out = String::new();
    out.push_str(&format!(
        "project {} (environment {})\n",
        project.name, project.environment
    ));
    let width = project.plugins().map(|p| p.name.len()).max().unwrap_or(0);
    for (title, m) in [
        ("taps", &project.taps),
        ("targets", &project.targets),
        ("utilities", &project.utilities),
        ("mappers", &project.mappers),
    ] {
        if title == "mappers" && m.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}\n"));
        if m.is_empty() {
            out.push_str("  (none)\n");
        }
        for p in m.values() {
            let mut detail = pip_url_shown(project, p, g).unwrap_or_else(|| "(no pip_url)".into());
            if let Some(parent) = &p.parent {
                detail.push_str(&format!("  (inherits {parent})"));
            }
            out.push_str(&format!("  {:width$}  {detail}\n", p.name));
        }
    }
    out.push_str("\ntasks\n");
    for t in &tasks {
        out.push_str(&format!("  {t}\n"));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

pub fn init(
    g: &Global,
    format: InitFormat,
    name: Option<String>,
    no_prompt: bool,
) -> Result<(), Error> {
    let dir = match &g.root {
        Some(r) => r.clone(),
        None => std::env::current_dir().map_err(|source| Error::Write {
            path: ".".into(),
            source,
        })?,
    };
    let format = match format {
        InitFormat::Yaml => Format::Yaml,
        InitFormat::Toml => Format::Toml,
        InitFormat::Json => Format::Json,
        InitFormat::Kdl => Format::Kdl,
    };
    if let Some((existing, _)) = crate::config::load::candidates(&dir, "alto").first() {
        return Err(Error::AlreadyInitialized {
            dir: dir.clone(),
            file: existing
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    let default_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "alto-project".to_string());
    let name = match name {
        Some(n) => n,
        None if !no_prompt && std::io::stdin().is_terminal() => {
            eprint!("Project name [{default_name}]: ");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let line = line.trim();
            if line.is_empty() {
                default_name
            } else {
                line.to_string()
            }
        }
        None => default_name,
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    let ext = format.extension();
    let mut written = Vec::new();
    let files = [
        (format!("alto.{ext}"), template::main_file(format, &name)),
        (
            format!("alto.local.{ext}"),
            template::local_file(format).to_string(),
        ),
        (".env".to_string(), template::DOTENV.to_string()),
        (
            "data/events.jsonl".to_string(),
            template::SAMPLE_DATA.to_string(),
        ),
    ];
    for (file, text) in files {
        if write_new(&dir.join(&file), &text)? {
            written.push(file);
        }
    }
    if add_gitignore_lines(&dir.join(".gitignore"))? {
        written.push(".gitignore".to_string());
    }
    for f in &written {
        eprintln!("wrote {f}");
    }
    eprintln!(
        "next: `alto tap-jsonl:target-jsonl` runs the example pipeline; `alto list` shows every task"
    );
    Ok(())
}

/// Writes a file that must not exist yet; `false` if it already did.
pub(super) fn write_new(path: &Path, text: &str) -> Result<bool, Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => {
            return Err(Error::Write {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    f.write_all(text.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(true)
}

/// Adds alto's lines to `.gitignore`, keeping what is there.
fn add_gitignore_lines(path: &Path) -> Result<bool, Error> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let missing: Vec<&str> = template::GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|l| !existing.lines().any(|e| e.trim() == *l))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    for l in missing {
        text.push_str(l);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(text.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(true)
}
