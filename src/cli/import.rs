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
    let secrets = move_env_settings(&dir, file.parent().unwrap_or(&dir), &translation.plugins)?;
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
            "secrets": secrets,
        }));
    }
    Ok(())
}

/// Meltano reads plugin settings from `.env` (`TAP_X_PASSWORD=...`); alto
/// reads them from its secrets file. They go into a new
/// `alto.secrets.yaml`; one that exists is never overwritten, and the
/// settings are then listed to add by hand. Values are never printed.
fn move_env_settings(
    dir: &Path,
    meltano_dir: &Path,
    plugins: &[(String, String)],
) -> Result<serde_json::Value, Error> {
    let (_, vars) = crate::config::load::read_dotenv(meltano_dir)?;
    let settings = meltano::env_settings(plugins, &vars);
    if settings.is_empty() {
        return Ok(json!(null));
    }
    let keys: Vec<String> = settings
        .iter()
        .map(|s| {
            format!(
                "{}.{}.config.{} (from {})",
                s.section, s.plugin, s.setting, s.var
            )
        })
        .collect();
    if let Some((existing, _)) = crate::config::load::candidates(dir, "alto.secrets").first() {
        eprintln!(
            "{} exists and is left as is; add these settings from .env to it:",
            file_name(existing)
        );
        for k in &keys {
            eprintln!("  {k}");
        }
        return Ok(json!({"written": null, "settings": keys}));
    }
    let path = dir.join("alto.secrets.yaml");
    if !write_private(&path, &meltano::secrets_yaml(&settings))? {
        return Ok(json!({"written": null, "settings": keys}));
    }
    eprintln!(
        "wrote alto.secrets.yaml with {} plugin settings from .env (keep it out of version control):",
        settings.len()
    );
    for k in &keys {
        eprintln!("  {k}");
    }
    Ok(json!({"written": "alto.secrets.yaml", "settings": keys}))
}

/// Creates a file only this user can read (it holds secrets); `false` if it exists.
fn write_private(path: &Path, text: &str) -> Result<bool, Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => {
            // Nothing half-written stays behind.
            let _ = std::fs::remove_file(path);
            Err(Error::Write {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
