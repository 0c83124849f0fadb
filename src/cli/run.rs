//! `alto run` (and the task names `tap:target`, `tap:reservoir`,
//! `reservoir:tap-target`): pipelines, ingests, replays and utility
//! commands, a job's steps in order (or `-j` at once), stopping at the first
//! failure, each step summarized (records per stream among it) for people
//! and, with `--json`, for orchestrators.

use std::collections::BTreeMap;
use std::time::Instant;

use super::printer::{human_bytes, print_json};
use super::run_controls::{self, RunControls};
use super::task::Task;
use super::{Error, ExitStatus, Global};
use crate::config::{Project, Step};
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

/// What one step did: its line for people, its object for `--json`.
struct Done {
    text: String,
    json: Value,
}

/// Records per stream as a step reports them: the total, the streams, and
/// who counted (`alto`, `metrics`), or all unknown.
fn records_fields(
    streams: Option<&BTreeMap<String, u64>>,
    counted_by: Option<&str>,
) -> (Value, Value, Value) {
    match streams {
        Some(s) => (json!(s.values().sum::<u64>()), json!(s), json!(counted_by)),
        None => (Value::Null, Value::Null, Value::Null),
    }
}

/// `, 12 records (orders 5, users 7)`, or that nobody counted them.
fn records_text(streams: Option<&BTreeMap<String, u64>>) -> String {
    match streams {
        None => ", records not counted (the tap logs no METRIC record_count lines)".to_string(),
        Some(s) if s.is_empty() => ", 0 records".to_string(),
        Some(s) => {
            let per: Vec<String> = s.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!(", {} records ({})", s.values().sum::<u64>(), per.join(", "))
        }
    }
}

/// The summary object of a step that ran to the end.
fn step_json(
    step: &str,
    task: &str,
    base: Value,
    state_commits: usize,
    state: Value,
    streams: Option<&BTreeMap<String, u64>>,
    counted_by: Option<&str>,
) -> Value {
    let mut m = match base {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let (records, per_stream, by) = records_fields(streams, counted_by);
    m.insert("step".into(), json!(step));
    m.insert("task".into(), json!(task));
    m.insert("status".into(), json!("success"));
    m.insert("exit_code".into(), json!(0));
    m.insert("state_commits".into(), json!(state_commits));
    m.insert("state".into(), state);
    m.insert("records".into(), records);
    m.insert("streams".into(), per_stream);
    m.insert("records_counted_by".into(), by);
    Value::Object(m)
}

/// Runs one step.
fn run_step(
    g: &Global,
    realizer: &Realizer,
    name: &str,
    step: &Step,
    opts: &RunOptions,
) -> Result<Done, Error> {
    let build = build_options(g);
    match step {
        Step::Task(Task::Run {
            tap,
            mappers,
            target,
        }) => {
            let s = pipeline::run(realizer, tap, mappers, target, opts, &build)?;
            let text = format!(
                "{}: done in {:.2}s, {} state commits{}",
                s.pipeline,
                s.seconds,
                s.state_commits,
                records_text(s.records.as_ref())
            );
            let json = step_json(
                name,
                "pipeline",
                serde_json::to_value(&s).unwrap_or_default(),
                s.state_commits,
                s.state.clone(),
                s.records.as_ref(),
                s.records_counted_by,
            );
            Ok(Done { text, json })
        }
        Step::Task(Task::Ingest { tap }) => {
            let s = reservoir::ingest::run(realizer, tap, opts, &build)?;
            let text = format!(
                "{}: {} records into {} partitions ({} stored, {} raw), {} commits in {:.2}s{}{}",
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
                },
                records_text(Some(&s.stats.streams)),
            );
            let mut json = step_json(
                name,
                "ingest",
                serde_json::to_value(&s).unwrap_or_default(),
                s.stats.commits,
                s.state.clone(),
                Some(&s.stats.streams),
                Some("alto"),
            );
            // Every message stored, as before; the RECORDs are `streams`.
            json["records"] = json!(s.stats.records);
            Ok(Done { text, json })
        }
        Step::Task(Task::Replay { tap, target }) => {
            let s = reservoir::replay::run(realizer, tap, target, opts, &build)?;
            let text = if s.nothing_new {
                format!(
                    "{}: nothing new to replay; {target} not started",
                    s.pipeline
                )
            } else {
                format!(
                    "{}: {} partitions, {} position commits in {:.2}s{}",
                    s.pipeline,
                    s.partitions,
                    s.commits,
                    s.seconds,
                    records_text(Some(&s.streams))
                )
            };
            let json = step_json(
                name,
                "replay",
                serde_json::to_value(&s).unwrap_or_default(),
                s.commits,
                s.position.clone(),
                Some(&s.streams),
                Some("alto"),
            );
            Ok(Done { text, json })
        }
        Step::Command { utility, command } => {
            let start = Instant::now();
            let args = realizer
                .project
                .command_args(utility, command)
                .unwrap_or_default();
            let code = super::invoke::run_utility(g, realizer, utility, &args)?;
            if code != 0 {
                return Err(Error::CommandFailed {
                    step: name.to_string(),
                    code,
                });
            }
            let seconds = start.elapsed().as_secs_f64();
            let text = format!("{name}: done in {seconds:.2}s");
            let json = step_json(
                name,
                "command",
                json!({"pipeline": name, "seconds": seconds}),
                0,
                Value::Null,
                None,
                None,
            );
            Ok(Done { text, json })
        }
        Step::Task(t) => Err(Error::UnknownTask {
            name: t.to_string(),
            environment: realizer.project.environment.clone(),
        }),
    }
}

/// Runs steps (pipelines, ingests, replays, utility commands, or jobs of
/// them) in order, or `jobs` at once; after a failure no step starts.
pub fn run(
    g: &Global,
    project: &mut Project,
    names: &[String],
    opts: &RunOptions,
    jobs: usize,
    controls: &RunControls,
) -> Result<ExitStatus, Error> {
    let steps = project
        .expand_steps(names)
        .map_err(|name| Error::UnknownTask {
            name,
            environment: project.environment.clone(),
        })?;
    // The run's flags apply to the pipelines among the steps.
    let tasks: Vec<Task> = steps
        .iter()
        .filter_map(|(_, step)| match step {
            Step::Task(t @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. })) => {
                Some(t.clone())
            }
            _ => None,
        })
        .collect();
    controls.apply(project, &tasks)?;
    let project: &Project = project;
    let realizer = Realizer::new(project)?;
    if controls.dry_run {
        run_controls::dry_run(g, &realizer, &tasks, opts, controls)?;
        return Ok(ExitStatus::Success);
    }
    if let Some(after) = controls.timeout()? {
        crate::interrupt::stop_after(after);
    }
    if controls.refresh_catalog {
        run_controls::refresh_catalogs(&realizer, &tasks, &build_options(g))?;
    }
    type Outcome = (f64, Result<Done, Error>);
    let results: std::sync::Mutex<Vec<(usize, Outcome)>> = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(steps.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((name, step)) = steps.get(i) else {
                        break;
                    };
                    let start = Instant::now();
                    let r = run_step(g, &realizer, name, step, opts);
                    if r.is_err() {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, (start.elapsed().as_secs_f64(), r)));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut first_error: Option<(usize, Error)> = None;
    let mut summaries = Vec::new();
    let mut ran = vec![false; steps.len()];
    for (i, (seconds, r)) in results {
        ran[i] = true;
        let name = &steps[i].0;
        match r {
            Ok(done) => {
                g.printer().status(&done.text);
                summaries.push(done.json);
            }
            Err(e) => {
                summaries.push(json!({
                    "step": name,
                    "task": task_kind(&steps[i].1),
                    "status": "failed",
                    "exit_code": e.exit_code(),
                    "seconds": seconds,
                    "error": e.to_string(),
                    "state_commits": null,
                    "state": null,
                    "records": null,
                    "streams": null,
                    "records_counted_by": null,
                }));
                if first_error.is_some() {
                    tracing::error!("{name}: {e}");
                } else {
                    first_error = Some((i, e));
                }
            }
        }
    }
    let not_run: Vec<String> = steps
        .iter()
        .zip(&ran)
        .filter(|(_, r)| !**r)
        .map(|((n, _), _)| n.clone())
        .collect();
    for ((name, step), _) in steps.iter().zip(&ran).filter(|(_, r)| !**r) {
        summaries.push(json!({"step": name, "task": task_kind(step), "status": "not_run"}));
    }
    if g.printer().json() {
        print_json(&json!({
            "pipelines": summaries,
            "failed": first_error.as_ref().map(|(i, _)| steps[*i].0.clone()),
        }));
    }
    match first_error {
        Some((_, e)) if steps.len() == 1 => Err(e),
        Some((i, e)) => Err(Error::StepFailed {
            step: steps[i].0.clone(),
            number: i + 1,
            total: steps.len(),
            not_run: if not_run.is_empty() {
                String::new()
            } else {
                format!("; not run: {}", not_run.join(", "))
            },
            source: Box::new(e),
        }),
        None => Ok(ExitStatus::Success),
    }
}

fn task_kind(step: &Step) -> &'static str {
    match step {
        Step::Task(Task::Ingest { .. }) => "ingest",
        Step::Task(Task::Replay { .. }) => "replay",
        Step::Command { .. } => "command",
        Step::Task(_) => "pipeline",
    }
}
