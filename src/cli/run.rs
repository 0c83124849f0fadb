//! `alto run` (and the task names `tap:target`, `tap:reservoir`,
//! `reservoir:tap-target`): pipelines, ingests and replays, one after another or `-j` at once.

use super::printer::{human_bytes, print_json};
use super::run_controls::{self, RunControls};
use super::task::{self, Task};
use super::{Error, ExitStatus, Global};
use crate::config::Project;
use crate::pipeline;
use crate::realize::{Options, Realizer};
use crate::reservoir;
use crate::run::RunOptions;
use serde_json::{Value, json};

pub(super) fn build_options(g: &Global) -> Options {
    Options {
        jobs: 2,
        repair: false,
        progress: g.printer().progress(),
        ..Default::default()
    }
}

/// Runs pipelines (`tap:target`, `tap:reservoir`, `reservoir:tap-target`),
/// one after another, or `jobs` at once; `controls` are the run's flags
/// (`--select`, `--dry-run`, ...).
pub fn run(
    g: &Global,
    project: &mut Project,
    names: &[String],
    opts: &RunOptions,
    jobs: usize,
    controls: &RunControls,
) -> Result<ExitStatus, Error> {
    let mut tasks = Vec::new();
    for n in names {
        match task::parse(project, n) {
            Some(t @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. })) => {
                tasks.push(t)
            }
            _ => {
                return Err(Error::UnknownTask {
                    name: n.clone(),
                    environment: project.environment.clone(),
                });
            }
        }
    }
    controls.apply(project, &tasks)?;
    let project: &Project = project;
    let realizer = Realizer::new(project)?;
    let build = build_options(g);
    if controls.dry_run {
        run_controls::dry_run(g, &realizer, &tasks, opts, controls)?;
        return Ok(ExitStatus::Success);
    }
    if let Some(after) = controls.timeout()? {
        crate::interrupt::stop_after(after);
    }
    if controls.refresh_catalog {
        run_controls::refresh_catalogs(&realizer, &tasks, &build)?;
    }
    type Outcome = Result<(String, Value), Error>;
    let results: std::sync::Mutex<Vec<(usize, Outcome)>> = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let one = |t: &Task| -> Outcome {
        match t {
            Task::Run {
                tap,
                mappers,
                target,
            } => {
                let s = pipeline::run(&realizer, tap, mappers, target, opts, &build)?;
                Ok((
                    format!(
                        "{}: done in {:.2}s, {} state commits",
                        s.pipeline, s.seconds, s.state_commits
                    ),
                    serde_json::to_value(&s).unwrap_or_default(),
                ))
            }
            Task::Ingest { tap } => {
                let s = reservoir::ingest::run(&realizer, tap, opts, &build)?;
                Ok((
                    format!(
                        "{}: {} records into {} partitions ({} stored, {} raw), {} commits in {:.2}s{}",
                        s.pipeline,
                        s.stats.records,
                        s.stats.partitions,
                        human_bytes(s.stats.bytes),
                        human_bytes(s.stats.raw_bytes),
                        s.stats.commits,
                        s.seconds,
                        if s.stats.skipped_lines > 0 {
                            format!("; {} lines skipped", s.stats.skipped_lines)
                        } else {
                            String::new()
                        }
                    ),
                    serde_json::to_value(&s).unwrap_or_default(),
                ))
            }
            Task::Replay { tap, target } => {
                let s = reservoir::replay::run(&realizer, tap, target, opts, &build)?;
                let text = if s.nothing_new {
                    format!(
                        "{}: nothing new to replay; {target} not started",
                        s.pipeline
                    )
                } else {
                    format!(
                        "{}: {} partitions, {} records, {} position commits in {:.2}s",
                        s.pipeline, s.partitions, s.records, s.commits, s.seconds
                    )
                };
                Ok((text, serde_json::to_value(&s).unwrap_or_default()))
            }
            _ => Err(Error::UnknownTask {
                name: t.to_string(),
                environment: project.environment.clone(),
            }),
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(tasks.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(t) = tasks.get(i) else {
                        break;
                    };
                    let r = one(t);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut first_error = None;
    let mut summaries = Vec::new();
    for (_, r) in results {
        match r {
            Ok((text, json)) => {
                g.printer().status(&text);
                summaries.push(json);
            }
            Err(e) => {
                if first_error.is_some() {
                    tracing::error!("{e}");
                } else {
                    first_error = Some(e);
                }
            }
        }
    }
    if g.printer().json() {
        print_json(&json!({"pipelines": summaries}));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(ExitStatus::Success),
    }
}
