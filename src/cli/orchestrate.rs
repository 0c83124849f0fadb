//! `alto orchestrate dagster|airflow [-o FILE]`: an orchestrator's
//! definitions for the project's jobs and schedules, on stdout or written
//! to FILE whole (never half-written).

use std::path::{Path, PathBuf};

use super::printer::out;
use super::{Error, Global, Orchestrator};
use crate::config::Project;
use crate::orchestrate::{self, RootRef, Target};

pub fn orchestrate(g: &Global, project: &Project, which: &Orchestrator) -> Result<(), Error> {
    let output = match which {
        Orchestrator::Dagster { output } | Orchestrator::Airflow { output } => output.as_deref(),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let output = output.map(|o| cwd.join(o));
    let root = std::fs::canonicalize(&project.root).unwrap_or_else(|_| project.root.clone());
    let t = Target {
        root: root_ref(&root, output.as_deref()),
        environment: project.environment.clone(),
        source: project
            .main_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "alto.yaml".into()),
    };
    if project.jobs.is_empty() {
        tracing::warn!(
            "the project has no jobs: the {} file defines nothing to run; add `jobs: {{NAME: [STEP, ...]}}`",
            match which {
                Orchestrator::Dagster { .. } => "Dagster",
                Orchestrator::Airflow { .. } => "Airflow",
            }
        );
    }
    let text = match which {
        Orchestrator::Dagster { .. } => orchestrate::dagster(project, &t),
        Orchestrator::Airflow { .. } => orchestrate::airflow(project, &t),
    };
    match output {
        None => out(&text),
        Some(path) => {
            crate::store::local::write_atomic(&path, text.as_bytes()).map_err(|source| {
                Error::Write {
                    path: path.clone(),
                    source,
                }
            })?;
            g.printer().status(&format!("wrote {}", path.display()));
        }
    }
    Ok(())
}

/// The root as the file finds it: relative to the file's directory when
/// the file is inside the project, else absolute.
fn root_ref(root: &Path, output: Option<&Path>) -> RootRef {
    let abs = || RootRef::Absolute(root.to_string_lossy().into_owned());
    let Some(dir) = output.and_then(Path::parent) else {
        return abs();
    };
    let dir: PathBuf = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match dir.strip_prefix(root) {
        Ok(below) => {
            let ups = below.components().count();
            let rel = if ups == 0 {
                ".".to_string()
            } else {
                vec![".."; ups].join("/")
            };
            RootRef::RelativeToFile(rel)
        }
        Err(_) => abs(),
    }
}
