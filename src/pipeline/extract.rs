//! `alto extract`: a tap alone, its messages on alto's stdout for another
//! loader (the Python side of `alto.dlt`) to read. The tap runs as it does in
//! a pipeline — realized, configs rendered, runtime catalog, the state it is
//! given, stderr logged and redacted — and `~` hash rules put alto in the
//! pipe exactly as before a target; without them the tap writes to alto's
//! stdout itself. State is the caller's: nothing is committed.

use std::collections::BTreeMap;
use std::process::Stdio;

use serde_json::{Map, Value};

use super::middle;
use crate::realize::{Options, Realizer};
use crate::run::{self, Role, RunError, RunOptions, Session, Tail};
use crate::singer::line;
use crate::singer::message::StreamHasher;

/// How an extract ended.
#[derive(Debug)]
pub struct ExtractSummary {
    /// The run's name (`<tap>-to-<name>`): its log's and lock's.
    pub run: String,
    pub seconds: f64,
    /// RECORD messages per stream when alto was in the pipe; else from the
    /// tap's `METRIC` lines; else unknown.
    pub records: Option<BTreeMap<String, u64>>,
}

/// Runs `tap_name` with `state`, writing its messages to stdout. `name` is
/// who reads them: the run goes by `<tap>-to-<name>` (its lock and log).
pub fn extract(
    realizer: &Realizer,
    tap_name: &str,
    name: &str,
    state: &Map<String, Value>,
    opts: &RunOptions,
    build: &Options,
) -> Result<ExtractSummary, RunError> {
    let mut log = run::PendingLog::default();
    let result = extract_logged(realizer, tap_name, name, state, opts, build, &mut log);
    match &result {
        Ok(s) => log.finish(
            0,
            None,
            s.records.as_ref().map(|r| r.values().sum()),
            Some(0),
        ),
        Err(e) => log.finish(e.exit_code(), Some(e.to_string()), None, None),
    }
    result
}

fn extract_logged(
    realizer: &Realizer,
    tap_name: &str,
    name: &str,
    state: &Map<String, Value>,
    opts: &RunOptions,
    build: &Options,
    log: &mut run::PendingLog,
) -> Result<ExtractSummary, RunError> {
    let project = realizer.project;
    let tap = project.tap(tap_name)?;
    run::check_stream_maps(tap, opts.strict)?;
    let session = Session::open(realizer, &format!("{tap_name}-to-{name}"), opts)?;
    let roles = [Role {
        plugin: tap,
        for_tap: None,
    }];
    let prepared = session.prepare(&roles, build)?;
    log.set(
        &prepared.log,
        &session.remote,
        &session.env,
        &prepared.redactor,
        session.start,
    );
    // The tap alone commits nothing, so no provenance: the catalog input
    // a pipeline derivation would take is not needed.
    let (args, _catalog) = run::tap_args(
        realizer,
        tap,
        &prepared.derivs[0],
        &prepared.dir,
        &prepared.configs[0],
        state,
    )?;
    let hasher = StreamHasher::new(&tap.select());
    let in_pipe = hasher.is_some();
    // Without hash rules the tap writes to alto's stdout itself: a copy by
    // alto woke it for each of the tap's small writes (0.65x the tap's own
    // throughput into /dev/null, cargo bench --bench pipeline).
    let stdout = if in_pipe {
        Stdio::piped()
    } else {
        Stdio::inherit()
    };
    let mut launched = session.launch_to(&prepared, 0, &args, Stdio::null(), stdout)?;
    let from = launched.process.child().stdout.take();
    // The reader going away (a broken pipe) ends the copy; dropping the tap's
    // stdout then stops the tap the same way, and its status tells.
    let passed = match (hasher, from) {
        (Some(h), Some(from)) => {
            run::widen_pipe(&from);
            let report = middle::Report {
                tap: tap_name,
                redactor: &prepared.redactor,
                log: Some(&prepared.log),
            };
            middle::run(
                from,
                std::io::stdout().lock(),
                h,
                report,
                line::max_line_bytes(),
            )
        }
        _ => Ok(middle::Passed::default()),
    };
    let status = launched.process.wait().map_err(run::io_err(
        "cannot wait for",
        std::path::Path::new(tap_name),
    ))?;
    if let Some(p) = launched.pump.take() {
        let _ = p.join();
    }
    let passed = passed?;
    let statuses: Vec<(String, std::process::ExitStatus, Tail)> =
        vec![(tap_name.to_string(), status, launched.tail.clone())];
    match session.failure(&statuses, &prepared.log.path) {
        // Nothing is confirmed here, unlike a pipeline's failure.
        Some(RunError::PluginFailed {
            plugin,
            status,
            log,
            tail,
        }) => {
            return Err(RunError::ExtractFailed {
                plugin,
                status,
                log,
                tail,
            });
        }
        Some(e) => return Err(e),
        None => {}
    }
    let records = if in_pipe {
        Some(passed.records)
    } else {
        launched
            .counts
            .lock()
            .ok()
            .map(|m| m.clone())
            .filter(|m| !m.is_empty())
    };
    Ok(ExtractSummary {
        run: session.name.clone(),
        seconds: session.start.elapsed().as_secs_f64(),
        records,
    })
}
