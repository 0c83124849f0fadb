//! `alto logs [TAP:TARGET] [--last N]` and `alto logs show RUN`: the logs of
//! past runs, from `.alto/logs/<env>/` and the remote's `logs/<env>/`.

use serde_json::{Value, json};

use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::Realizer;
use crate::run::RunEnd;
use crate::run::log::{PastRun, past_runs, read_past_run};
use crate::store::Remote;

/// The remote, or `None` with a warning when it cannot be reached: the
/// local logs are still worth listing.
fn remote(project: &Project) -> Option<std::sync::Arc<Remote>> {
    match Realizer::new(project).and_then(|r| r.remote()) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("the remote's logs cannot be read ({e}); listing this machine's only");
            None
        }
    }
}

/// `alto logs`: the last `last` runs (of one pipeline when named), oldest first.
pub fn logs(
    g: &Global,
    project: &Project,
    pipeline: Option<&str>,
    last: usize,
) -> Result<(), Error> {
    let name = match pipeline {
        Some(p) => Some(super::state::run_name(project, p)?),
        None => None,
    };
    let remote = remote(project);
    let env = &project.environment;
    let mut runs = past_runs(project, remote.as_deref(), env)?;
    if let Some(n) = &name {
        runs.retain(|r| &r.name == n);
    }
    let runs = &runs[runs.len().saturating_sub(last)..];
    let mut rows = Vec::new();
    for r in runs {
        let end = read_past_run(r, remote.as_deref(), env)?
            .as_deref()
            .and_then(RunEnd::of_log);
        rows.push((r, end));
    }
    if g.printer().json() {
        print_json(&json!({
            "environment": env,
            "runs": rows.iter().map(|(r, end)| json!({
                "run": r.id,
                "name": r.name,
                "started": r.started(),
                "local": r.local.is_some(),
                "remote": r.remote,
                "end": end,
            })).collect::<Vec<Value>>(),
        }));
        return Ok(());
    }
    if rows.is_empty() {
        g.printer().status(&format!(
            "no run logs in the {env} environment{}",
            pipeline.map(|p| format!(" for {p}")).unwrap_or_default()
        ));
        return Ok(());
    }
    let width = rows.iter().map(|(r, _)| r.id.len()).max().unwrap_or(0);
    let mut text = format!(
        "{:width$}  {:20}  {:>9}  {:>4}  {:>8}  {}\n",
        "RUN", "STARTED", "DURATION", "EXIT", "RECORDS", "WHERE"
    );
    for (r, end) in &rows {
        let (duration, exit, records) = match end {
            Some(e) => (
                format!("{:.1}s", e.seconds),
                e.exit.to_string(),
                e.records
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            // No end record: still running, or alto was killed.
            None => ("-".into(), "?".into(), "-".into()),
        };
        text.push_str(&format!(
            "{:width$}  {:20}  {:>9}  {:>4}  {:>8}  {}\n",
            r.id,
            r.started(),
            duration,
            exit,
            records,
            where_(r)
        ));
    }
    out(&text);
    Ok(())
}

fn where_(r: &PastRun) -> &'static str {
    match (r.local.is_some(), r.remote) {
        (true, true) => "here+remote",
        (true, false) => "here",
        _ => "remote",
    }
}

/// `alto logs show RUN`: one run's log (`RUN` as `alto logs` lists it).
pub fn show(project: &Project, run: &str) -> Result<(), Error> {
    let id = run.strip_suffix(".log").unwrap_or(run);
    let remote = remote(project);
    let env = &project.environment;
    let runs = past_runs(project, remote.as_deref(), env)?;
    let found = runs.iter().find(|r| r.id == id);
    let text = match found {
        Some(r) => read_past_run(r, remote.as_deref(), env)?,
        None => None,
    };
    let Some(text) = text else {
        return Err(Error::NoSuchRun {
            run: run.to_string(),
            environment: env.clone(),
        });
    };
    out(&text);
    Ok(())
}
