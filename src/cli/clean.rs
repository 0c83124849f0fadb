//! `alto clean`: drop a pipeline's active state, a tap's base catalog or a replay position; compact a reservoir.

use super::reservoir::reservoir_compact;
use super::task::{self, Task};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::{Options, Realizer};
use crate::reservoir;
use crate::run;

pub fn clean(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    if let Some(tap_name) = name.strip_prefix("catalog:") {
        let tap = project.tap(tap_name)?;
        let derivs = run::realize_plugins(
            &realizer,
            &[tap],
            &Options {
                jobs: 1,
                repair: false,
                progress: false,
                ..Default::default()
            },
        )?;
        crate::realize::catalog::clean(&realizer, tap, &derivs[0])?;
        eprintln!("the base catalog of {tap_name} is forgotten; the next run discovers again");
        return Ok(());
    }
    match task::parse(project, name) {
        Some(Task::Ingest { tap }) => {
            return reservoir_compact(g, project, &tap, false);
        }
        Some(Task::Replay { tap, target }) => {
            let remote = realizer.remote()?;
            reservoir::compact::clear_position(&remote, &project.environment, &tap, &target)?;
            eprintln!(
                "the replay position of {target} in {tap}'s reservoir is dropped; the next replay sends everything"
            );
            return Ok(());
        }
        _ => {}
    }
    super::state::state_clear(project, name)
}
