//! `alto schedule list`: the schedules, their jobs, intervals and next run times.

use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use serde_json::json;

pub fn list(g: &Global, project: &Project) -> Result<(), Error> {
    let now = chrono::Utc::now();
    let rows: Vec<_> = project
        .schedules
        .values()
        .map(|s| {
            let next = s
                .next_after(&now)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            (s, next)
        })
        .collect();
    if g.printer().json() {
        let list: Vec<_> = rows
            .iter()
            .map(|(s, next)| {
                json!({
                    "name": s.name,
                    "job": s.job,
                    "interval": s.interval,
                    "cron": s.cron(),
                    "next_run": next,
                    "steps": project.jobs.get(&s.job),
                })
            })
            .collect();
        print_json(&json!({"environment": project.environment, "schedules": list}));
        return Ok(());
    }
    if rows.is_empty() {
        g.printer()
            .status("no schedules: add `schedules: {NAME: {job: JOB, interval: \"0 2 * * *\"}}`");
        return Ok(());
    }
    let width = |f: fn(&crate::config::Schedule) -> usize, min: usize| {
        rows.iter().map(|r| f(r.0)).max().unwrap_or(0).max(min)
    };
    let name_w = width(|s| s.name.len(), 4);
    let job_w = width(|s| s.job.len(), 3);
    let int_w = width(|s| s.interval.len(), 8);
    let mut text = format!(
        "{:name_w$}  {:job_w$}  {:int_w$}  NEXT RUN (UTC)\n",
        "NAME", "JOB", "INTERVAL"
    );
    for (s, next) in &rows {
        text.push_str(&format!(
            "{:name_w$}  {:job_w$}  {:int_w$}  {}\n",
            s.name,
            s.job,
            s.interval,
            next.as_deref().unwrap_or("never")
        ));
    }
    out(&text);
    Ok(())
}
