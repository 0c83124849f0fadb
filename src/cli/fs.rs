//! `alto fs ls|push|pull|rm` on the project's remote root, as in the
//! original, asking before it overwrites or deletes anything (`--yes` skips).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use bytes::Bytes;
use serde_json::json;

use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::Realizer;

/// Asks on a terminal; without one, only `--yes` allows it.
fn confirm(question: &str, yes: bool) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::NotConfirmed {
            what: question.to_string(),
        });
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::NotConfirmed {
            what: question.to_string(),
        })
    }
}

fn clean(rel: &str) -> Result<String, Error> {
    let rel = rel.trim_matches('/');
    if rel.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::BadRemotePath {
            path: rel.to_string(),
        });
    }
    Ok(rel.to_string())
}

pub fn ls(g: &Global, project: &Project, path: Option<&str>) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let rel = clean(path.unwrap_or(""))?;
    let (dirs, files) = remote.list_project(&rel)?;
    if g.printer().json() {
        print_json(&json!({
            "path": remote.describe_project_file(&rel),
            "directories": dirs,
            "files": files.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut text = String::new();
    for d in &dirs {
        text.push_str(&format!("{d}/\n"));
    }
    for (f, size) in &files {
        text.push_str(&format!("{f}  {size}\n"));
    }
    out(&text);
    Ok(())
}

pub fn push(project: &Project, local: &Path, rel: &str, yes: bool) -> Result<(), Error> {
    let rel = clean(rel)?;
    let bytes = std::fs::read(local).map_err(|source| Error::Read {
        path: local.to_path_buf(),
        source,
    })?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    if remote.read_project_file(&rel)?.is_some() {
        confirm(
            &format!("overwrite {}?", remote.describe_project_file(&rel)),
            yes,
        )?;
    }
    remote.overwrite_project_file(&rel, Bytes::from(bytes))?;
    eprintln!(
        "{} → {}",
        local.display(),
        remote.describe_project_file(&rel)
    );
    Ok(())
}

pub fn pull(project: &Project, rel: &str, local: &Path, yes: bool) -> Result<(), Error> {
    let rel = clean(rel)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let Some(file) = remote.read_project_file(&rel)? else {
        return Err(Error::NoSuchRemoteFile {
            path: remote.describe_project_file(&rel),
        });
    };
    if local.exists() {
        confirm(&format!("overwrite {}?", local.display()), yes)?;
    }
    crate::store::local::write_atomic(local, &file.bytes).map_err(|source| Error::Write {
        path: local.to_path_buf(),
        source,
    })?;
    eprintln!(
        "{} → {}",
        remote.describe_project_file(&rel),
        local.display()
    );
    Ok(())
}

pub fn rm(project: &Project, rel: &str, yes: bool) -> Result<(), Error> {
    let rel = clean(rel)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    if remote.read_project_file(&rel)?.is_none() {
        return Err(Error::NoSuchRemoteFile {
            path: remote.describe_project_file(&rel),
        });
    }
    confirm(
        &format!("delete {}?", remote.describe_project_file(&rel)),
        yes,
    )?;
    remote.delete_project_file(&rel)?;
    eprintln!("deleted {}", remote.describe_project_file(&rel));
    Ok(())
}
