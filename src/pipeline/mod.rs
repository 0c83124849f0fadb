//! Pipelines: `tap → [mappers →] target`, wired as direct OS pipes, except
//! after the tap when `~` hash rules need alto in the middle; the target's
//! STATE lines merged into the state and committed as they arrive. The run's
//! lifecycle (lock, configs, logs, signals, teardown) is `run`'s.
//! `extract` is a tap alone, its messages on stdout for another loader.

mod extract;
pub mod middle;

pub use extract::{ExtractSummary, extract};

use std::process::Stdio;

use serde_json::{Map, Value};

use crate::config::Plugin;
use crate::eval::PipelineKind;
use crate::realize::{Options, Realizer};
use crate::run::provenance::{self, Provenance};
use crate::run::{self, Launched, Role, RunError, RunOptions, Session, StateStore, Tail};
use crate::singer::line;
use crate::singer::message::StreamHasher;
use crate::singer::state;

#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub state_commits: usize,
    /// STATE lines the target sent back.
    pub confirmations: usize,
    /// Lines skipped: the target's stdout lines that are not state, and,
    /// with alto in the pipe, the tap's lines that are not Singer messages.
    pub skipped_lines: usize,
    pub seconds: f64,
    pub state: Value,
    /// Records per stream: counted by alto when it is in the pipe, else
    /// from the tap's `METRIC` lines, else unknown.
    #[serde(skip)]
    pub records: Option<std::collections::BTreeMap<String, u64>>,
    /// Who counted them: `alto` or `metrics`.
    #[serde(skip)]
    pub records_counted_by: Option<&'static str>,
}

/// Runs `tap → [mappers →] target` once; its log ends with how it ended.
pub fn run(
    realizer: &Realizer,
    tap_name: &str,
    mapper_names: &[String],
    target_name: &str,
    opts: &RunOptions,
    build: &Options,
) -> Result<RunSummary, RunError> {
    let mut log = run::PendingLog::default();
    let result = run_logged(
        realizer,
        tap_name,
        mapper_names,
        target_name,
        opts,
        build,
        &mut log,
    );
    match &result {
        Ok(s) => log.finish(0, None, None, Some(s.state_commits)),
        Err(e) => log.finish(e.exit_code(), Some(e.to_string()), None, None),
    }
    result
}

fn run_logged(
    realizer: &Realizer,
    tap_name: &str,
    mapper_names: &[String],
    target_name: &str,
    opts: &RunOptions,
    build: &Options,
    log: &mut run::PendingLog,
) -> Result<RunSummary, RunError> {
    let project = realizer.project;
    let tap = project.tap(tap_name)?;
    let target = project.target(target_name)?;
    let mappers: Vec<&Plugin> = mapper_names
        .iter()
        .map(|m| project.mapper(m))
        .collect::<Result<_, _>>()?;
    run::check_stream_maps(tap, opts.strict)?;
    // The state is the tap's: mappers in between do not change where it lives.
    let session = Session::open(realizer, &format!("{tap_name}-to-{target_name}"), opts)?;
    let mut roles = vec![Role {
        plugin: tap,
        for_tap: None,
    }];
    roles.extend(mappers.iter().map(|m| Role {
        plugin: m,
        for_tap: None,
    }));
    roles.push(Role {
        plugin: target,
        for_tap: Some(tap_name),
    });
    let prepared = session.prepare(&roles, build)?;
    log.set(
        &prepared.log,
        &session.remote,
        &session.env,
        &prepared.redactor,
        session.start,
    );

    let (mut store, mut state) =
        StateStore::open(&session.remote, &session.env, tap_name, target_name)?;
    if opts.full_refresh {
        tracing::info!("{}: full refresh, ignoring the saved state", session.name);
        state = Map::new();
    }
    let (tap_extra, catalog) = run::tap_args(
        realizer,
        tap,
        &prepared.derivs[0],
        &prepared.dir,
        &prepared.configs[0],
        &state,
    )?;
    let plugins: Vec<&Plugin> = roles.iter().map(|r| r.plugin).collect();
    let drv = provenance::of_run(
        project,
        PipelineKind::Run,
        tap,
        &plugins,
        &prepared.derivs,
        catalog,
    )?;
    provenance::note_changes(&store, &drv, &session.name)?;
    store.set_provenance(Provenance::new(&drv, prepared.log.run_id()));

    // Spawn the chain: tap, mappers, target. Between two plugins the pipe is a
    // direct OS pipe, except after the tap when `~` hash rules need alto there.
    // A failure to start one drops those already started, which kills them.
    let mut hasher = StreamHasher::new(&tap.select());
    let mut running: Vec<(String, Launched)> = Vec::new();
    let mut middle = None;
    let mut upstream: Option<std::process::ChildStdout> = None;
    let mut target_stdout = None;
    for (i, r) in roles.iter().enumerate() {
        let (args, stdin) = if i == 0 {
            (tap_extra.as_slice(), Stdio::null())
        } else if i == 1 && hasher.is_some() {
            (&[][..], Stdio::piped())
        } else {
            (
                &[][..],
                upstream.take().map(Stdio::from).unwrap_or(Stdio::null()),
            )
        };
        let mut launched = session.launch(&prepared, i, args, stdin)?;
        let child = launched.process.child();
        if i == 1
            && let (Some(h), Some(from), Some(to)) =
                (hasher.take(), upstream.take(), child.stdin.take())
        {
            // alto in the pipe: only the affected streams' messages are parsed.
            let tap_name = tap_name.to_string();
            let redactor = prepared.redactor.clone();
            let log = prepared.log.clone();
            run::widen_pipe(&from);
            run::widen_pipe(&to);
            middle = Some(std::thread::spawn(
                move || -> Result<middle::Passed, RunError> {
                    let report = middle::Report {
                        tap: &tap_name,
                        redactor: &redactor,
                        log: Some(&log),
                    };
                    middle::run(from, to, h, report, line::max_line_bytes())
                },
            ));
        }
        if i + 1 == roles.len() {
            target_stdout = child.stdout.take();
        } else {
            upstream = child.stdout.take();
        }
        running.push((r.plugin.name.clone(), launched));
    }

    // The target's stdout: every JSON object line is state to merge and commit.
    let mut read = run::Confirmations::default();
    if let Some(out) = target_stdout {
        read = run::read_confirmations(
            out,
            target_name,
            &prepared.redactor,
            &prepared.log,
            &mut state,
            |state, m| {
                state::merge(state, m);
                true
            },
            |state| {
                if session.licensed() {
                    store.commit(state)
                } else {
                    Ok(())
                }
            },
        );
    }
    // Wait downstream first: the target finishing is what confirms the state.
    let mut statuses: Vec<(String, std::process::ExitStatus, Tail)> = Vec::new();
    let tap_counts = running.first().map(|(_, l)| l.counts.clone());
    for (name, mut l) in running.into_iter().rev() {
        let status = l
            .process
            .wait()
            .map_err(run::io_err("cannot wait for", std::path::Path::new(&name)))?;
        if let Some(p) = l.pump.take() {
            let _ = p.join();
        }
        statuses.push((name, status, l.tail.clone()));
    }
    statuses.reverse();
    // A line too long between tap and target fails the run, after what the
    // target confirmed is committed below.
    let in_pipe = middle.is_some();
    let (passed, middle_error) = match middle.and_then(|m| m.join().ok()) {
        Some(Ok(passed)) => (passed, None),
        Some(Err(e)) => (middle::Passed::default(), Some(e)),
        None => (middle::Passed::default(), None),
    };
    let middle_skipped = passed.skipped;
    // alto's own count when it was in the pipe; else what the tap said in
    // its METRIC lines, if it said anything; else unknown.
    let (records, records_counted_by) = if in_pipe {
        (Some(passed.records), Some("alto"))
    } else {
        match tap_counts.map(|c| c.lock().map(|m| m.clone()).unwrap_or_default()) {
            Some(m) if !m.is_empty() => (Some(m), Some("metrics")),
            _ => (None, None),
        }
    };
    if let Some(e) = read.error {
        return Err(e);
    }
    // What the target confirmed is committed however the run ended: a
    // failure or a stop loses at most what was not confirmed.
    let mut commits = read.commits;
    if read.dirty && session.licensed() {
        store.commit(&state)?;
        commits += 1;
    }
    if commits > 0 && session.licensed() {
        store.keep_history(&state)?;
    }
    if opts.no_state_update {
        // Confirmations were read, none committed.
        commits = 0;
    }
    if let Some(e) = session.stopped().or(middle_error) {
        return Err(e);
    }
    if let Some(e) = session.failure(&statuses, &prepared.log.path) {
        return Err(e);
    }
    if read.states == 0 {
        tracing::warn!(
            "{target_name} confirmed no state: nothing of this run is recorded as loaded, and the next run starts from the same state"
        );
    }
    let mut name = tap_name.to_string();
    for m in mapper_names {
        name.push(':');
        name.push_str(m);
    }
    Ok(RunSummary {
        pipeline: format!("{name}:{target_name}"),
        state_commits: commits,
        confirmations: read.states,
        skipped_lines: read.skipped + middle_skipped as usize,
        seconds: session.start.elapsed().as_secs_f64(),
        state: Value::Object(state),
        records,
        records_counted_by,
    })
}
