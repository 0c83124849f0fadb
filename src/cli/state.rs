//! `alto state show|set`: a pipeline's active state.

use super::Error;
use super::printer::print_json;
use super::task::{self, Task};
use crate::config::Project;
use crate::realize::Realizer;
use crate::reservoir;
use crate::run::{self, RunError, StateStore};
use crate::singer::state;
use serde_json::Value;

/// A `TAP:TARGET` (or `tap-target`) pair of configured names.
pub fn pair(project: &Project, name: &str) -> Result<(String, String), Error> {
    let parsed =
        task::parse(project, name).or_else(|| task::parse(project, &format!("state:{name}")));
    match parsed {
        Some(Task::Run {
            tap,
            mappers,
            target,
        }) if mappers.is_empty() => Ok((tap, target)),
        Some(Task::State { tap, target }) => Ok((tap, target)),
        _ => Err(Error::UnknownTask {
            name: name.to_string(),
            environment: project.environment.clone(),
        }),
    }
}

pub fn state_show(project: &Project, name: &str) -> Result<(), Error> {
    // `TAP:reservoir`: the tap's state as the reservoir's index holds it;
    // `reservoir:TAP-TARGET`: the target's replay position.
    match task::parse(project, name) {
        Some(Task::Ingest { tap }) => {
            let remote = Realizer::new(project)?.remote()?;
            let loaded = reservoir::Index::load(&remote, &project.environment, &tap)?;
            print_json(&Value::Object(loaded.index.state));
            return Ok(());
        }
        Some(Task::Replay { tap, target }) => {
            let remote = Realizer::new(project)?.remote()?;
            let loaded = reservoir::Index::load(&remote, &project.environment, &tap)?;
            let pos = reservoir::replay::read_position(
                &remote,
                &project.environment,
                &tap,
                &target,
                &loaded.index,
            )?;
            print_json(&Value::Object(pos.to_state(&tap)));
            return Ok(());
        }
        _ => {}
    }
    let (tap, target) = pair(project, name)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let (_, state) = StateStore::open(&remote, &project.environment, &tap, &target)?;
    print_json(&Value::Object(state));
    Ok(())
}

pub fn state_set(project: &Project, name: &str, file: &std::path::Path) -> Result<(), Error> {
    let (tap, target) = pair(project, name)?;
    let bytes = std::fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let new = state::parse_file(&bytes).map_err(|e| RunError::BadState {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let _lock = run::PipelineLock::acquire(
        remote.clone(),
        &project.environment,
        &format!("{tap}-to-{target}"),
        false,
    )?;
    let (mut store, _) = StateStore::open(&remote, &project.environment, &tap, &target)?;
    store.replace(&new)?;
    store.keep_history(&new)?;
    eprintln!("state of {tap}:{target} replaced");
    Ok(())
}
