//! `alto import meltano`: writes `alto.yaml` from a Meltano project and says
//! what could not be translated.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::init::write_new;
use super::printer::print_json;
use super::{Error, Global};
use crate::config::meltano;

pub fn meltano(g: &Global, path: Option<&Path>) -> Result<(), Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Read {
        path: ".".into(),
        source,
    })?;
    let dir = match &g.root {
        Some(r) => cwd.join(r),
        None => cwd.clone(),
    };
    // Without a path, the Meltano project is the alto project's directory.
    let mut file = match path {
        Some(p) => cwd.join(p),
        None => dir.join("meltano.yml"),
    };
    if file.is_dir() {
        file = file.join("meltano.yml");
    }
    if let Some((existing, _)) = crate::config::load::candidates(&dir, "alto").first() {
        return Err(Error::ImportTargetExists {
            dir: dir.clone(),
            file: file_name(existing),
        });
    }
    let text = std::fs::read_to_string(&file).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MeltanoNotFound { path: file.clone() }
        } else {
            Error::Read {
                path: file.clone(),
                source,
            }
        }
    })?;
    let shown = match path {
        Some(p) => p.to_string_lossy().into_owned(),
        None => file_name(&file),
    };
    let project_name = std::fs::canonicalize(&file)
        .ok()
        .and_then(|f| {
            f.parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "alto".to_string());
    let translation = meltano::translate_named(&text, &project_name, &shown)?;

    let target = dir.join("alto.yaml");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    if !write_new(&target, &translation.alto_yaml)? {
        return Err(Error::ImportTargetExists {
            dir: dir.clone(),
            file: "alto.yaml".into(),
        });
    }
    let written: PathBuf = match &g.root {
        Some(r) => r.join("alto.yaml"),
        None => "alto.yaml".into(),
    };
    eprintln!("wrote {} from {shown}", written.display());
    if !translation.untranslated.is_empty() {
        eprintln!("not translated (also listed at the top of the file):");
        for u in &translation.untranslated {
            eprintln!("  {}: {}", u.path, u.reason);
        }
    }
    if g.quiet == 0 {
        for n in &translation.notes {
            eprintln!("note: {n}");
        }
    }
    if g.printer().json() {
        print_json(&json!({
            "written": written.to_string_lossy(),
            "untranslated": translation.untranslated,
        }));
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
