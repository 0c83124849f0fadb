//! `alto init`: a new project.

use super::{Error, Global, InitFormat};
use crate::config::{Format, template};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

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
