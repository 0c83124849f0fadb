//! Jobs (named lists of steps), schedules (a job on a cron interval) and
//! utilities' named `commands`: typed and checked when the config loads, so
//! a bad step or interval is an error at its key before anything runs.

use std::str::FromStr;

use indexmap::IndexMap;
use serde_json::Value;

use super::error::ConfigError;
use super::project::Project;
use super::task::{self, Task};

/// One step of a job, resolved against the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A pipeline, an ingest or a replay.
    Task(Task),
    /// `UTILITY:COMMAND`: one of a utility's named commands.
    Command { utility: String, command: String },
}

/// A schedule: a job and when to run it.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub job: String,
    /// The interval as written (`0 2 * * *`, `@daily`).
    pub interval: String,
    cron: croner::Cron,
}

impl Schedule {
    /// The interval as a five-field cron expression (aliases spelled out),
    /// which every orchestrator reads.
    pub fn cron(&self) -> String {
        alias(&self.interval)
            .unwrap_or(&self.interval)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The first time after `now` the schedule fires (UTC).
    pub fn next_after(
        &self,
        now: &chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(now, false).ok()
    }
}

/// The aliases alto accepts, as five-field expressions.
fn alias(interval: &str) -> Option<&'static str> {
    Some(match interval.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return None,
    })
}

/// Parses an interval: an alias, or five cron fields (minute, hour, day of
/// month, month, day of week) — what Dagster and Airflow both read.
pub(crate) fn parse_interval(interval: &str) -> Result<croner::Cron, String> {
    let expr = alias(interval).unwrap_or(interval);
    if interval.trim_start().starts_with('@') && alias(interval).is_none() {
        return Err("unknown alias: use @hourly, @daily, @weekly, @monthly or @yearly".to_string());
    }
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week); this has {fields}"
        ));
    }
    croner::Cron::from_str(expr).map_err(|e| e.to_string())
}

/// The keys a schedule reads.
const SCHEDULE_KEYS: [&str; 2] = ["job", "interval"];

impl Project {
    /// Resolves a step name: a pipeline, ingest or replay task, else a
    /// utility's named command.
    pub fn step(&self, name: &str) -> Option<Step> {
        if let Some(t @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. })) =
            task::parse(self, name)
        {
            return Some(Step::Task(t));
        }
        let (utility, command) = name.split_once(':')?;
        self.command_args(utility, command)?;
        Some(Step::Command {
            utility: utility.to_string(),
            command: command.to_string(),
        })
    }

    /// The arguments of a utility's named command (its `commands` entry,
    /// split as a shell would, without running one).
    pub fn command_args(&self, utility: &str, command: &str) -> Option<Vec<String>> {
        let spec = self.utilities.get(utility)?;
        let args = match spec.spec.get("commands")?.get(command)? {
            Value::String(s) => s.as_str(),
            Value::Object(m) => m.get("args")?.as_str()?,
            _ => return None,
        };
        shlex::split(args)
    }

    /// The steps `names` stand for, in order: a job's steps (jobs inside
    /// it expanded), or the step itself. `Err` with the first name that is
    /// neither.
    pub fn expand_steps(&self, names: &[String]) -> Result<Vec<(String, Step)>, String> {
        let mut out = Vec::new();
        for n in names {
            self.expand_one(n, &mut out, 0)?;
        }
        Ok(out)
    }

    fn expand_one(
        &self,
        name: &str,
        out: &mut Vec<(String, Step)>,
        depth: usize,
    ) -> Result<(), String> {
        if let Some(steps) = self.jobs.get(name) {
            // Cycles are refused when the config loads; the depth is a backstop.
            if depth > self.jobs.len() {
                return Err(name.to_string());
            }
            for s in steps {
                self.expand_one(s, out, depth + 1)?;
            }
            return Ok(());
        }
        match self.step(name) {
            Some(step) => {
                out.push((name.to_string(), step));
                Ok(())
            }
            None => Err(name.to_string()),
        }
    }

    /// Reads and checks `utilities.*.commands`, `jobs` and `schedules`.
    pub(super) fn load_jobs(&mut self, strict: bool) -> Result<(), ConfigError> {
        self.check_commands()?;
        let jobs = match self.tree.value.get("jobs") {
            None | Some(Value::Null) => IndexMap::new(),
            Some(Value::Object(m)) => {
                let mut jobs = IndexMap::new();
                for (name, v) in m {
                    let path = vec!["jobs".to_string(), name.clone()];
                    if let Some(problem) = super::name::problem(name).or_else(|| {
                        name.contains(':')
                            .then(|| "a job name cannot hold `:` (task names do)".to_string())
                    }) {
                        return Err(self.invalid_at(
                            &path,
                            &format!("job name `{name}` cannot be used: {problem}"),
                            "this job",
                            Some(super::name::NAME_RULE.into()),
                        ));
                    }
                    let steps: Vec<String> = match v {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) if a.iter().all(Value::is_string) && !a.is_empty() => a
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                        _ => {
                            return Err(self.invalid_at(
                                &path,
                                &format!("job `{name}` must be a list of steps"),
                                "expected a non-empty list of step names",
                                Some(
                                    "e.g. `[tap-x:reservoir, reservoir:tap-x-target-y, dbt:run]`"
                                        .into(),
                                ),
                            ));
                        }
                    };
                    jobs.insert(name.clone(), steps);
                }
                jobs
            }
            Some(_) => {
                return Err(self.invalid_at(
                    &["jobs".into()],
                    "`jobs` must be a map of job names to lists of steps",
                    "expected a map",
                    None,
                ));
            }
        };
        self.jobs = jobs;
        for (name, steps) in &self.jobs {
            for (i, s) in steps.iter().enumerate() {
                let path = vec!["jobs".to_string(), name.clone(), i.to_string()];
                if s == name {
                    return Err(self.invalid_at(
                        &path,
                        &format!("job `{name}` names itself"),
                        "this step",
                        Some("a job's steps are pipelines, utility commands or other jobs".into()),
                    ));
                }
                if self.jobs.contains_key(s) {
                    if let Some(cycle) = self.cycle_from(name, s) {
                        return Err(self.invalid_at(
                            &path,
                            &format!("job `{name}` runs itself: {}", cycle.join(" → ")),
                            "this step",
                            Some("jobs may run other jobs, but not in a cycle".into()),
                        ));
                    }
                    continue;
                }
                if self.step(s).is_none() {
                    return Err(self.invalid_at(
                        &path,
                        &format!(
                            "job `{name}`: step `{s}` names no pipeline, utility command or job in environment `{}`",
                            self.environment
                        ),
                        "unknown step",
                        Some(
                            "a step is TAP:TARGET, TAP:MAPPER:TARGET, TAP:reservoir, reservoir:TAP-TARGET, \
                             UTILITY:COMMAND (a key of the utility's `commands`) or a job's name; \
                             `alto list` shows the task names"
                                .into(),
                        ),
                    ));
                }
            }
        }
        self.schedules = self.read_schedules(strict)?;
        Ok(())
    }

    /// The jobs `from` reaches back to `to`'s caller through, if `to` leads
    /// back to `from`: the cycle's names.
    fn cycle_from(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut stack = vec![(to.to_string(), vec![from.to_string(), to.to_string()])];
        let mut seen = std::collections::HashSet::new();
        while let Some((job, path)) = stack.pop() {
            if !seen.insert(job.clone()) {
                continue;
            }
            for s in self.jobs.get(&job).into_iter().flatten() {
                if s == from {
                    let mut p = path.clone();
                    p.push(s.clone());
                    return Some(p);
                }
                if self.jobs.contains_key(s) {
                    let mut p = path.clone();
                    p.push(s.clone());
                    stack.push((s.clone(), p));
                }
            }
        }
        None
    }

    fn read_schedules(&self, strict: bool) -> Result<IndexMap<String, Schedule>, ConfigError> {
        let m = match self.tree.value.get("schedules") {
            None | Some(Value::Null) => return Ok(IndexMap::new()),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(self.invalid_at(
                    &["schedules".into()],
                    "`schedules` must be a map of schedule names to `{job, interval}`",
                    "expected a map",
                    None,
                ));
            }
        };
        let mut out = IndexMap::new();
        for (name, v) in m {
            let path = vec!["schedules".to_string(), name.clone()];
            let Value::Object(spec) = v else {
                return Err(self.invalid_at(
                    &path,
                    &format!("schedule `{name}` must be a map with `job` and `interval`"),
                    "expected a map",
                    Some("e.g. `{job: shop-daily, interval: \"0 2 * * *\"}`".into()),
                ));
            };
            for key in spec.keys() {
                if SCHEDULE_KEYS.contains(&key.as_str()) || key.starts_with('_') {
                    continue;
                }
                let mut p = path.clone();
                p.push(key.clone());
                let message = format!(
                    "schedules.{name}: unknown key `{key}`; alto reads `job` and `interval`"
                );
                if strict {
                    return Err(self.invalid_at(&p, &message, "unknown key", None));
                }
                super::keys::warn_once(&format!("key:{message}"), &message);
            }
            let at = |key: &str| {
                let mut p = path.clone();
                p.push(key.to_string());
                p
            };
            let job = match spec.get("job") {
                Some(Value::String(j)) if self.jobs.contains_key(j) => j.clone(),
                Some(Value::String(j)) => {
                    let known: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
                    return Err(self.invalid_at(
                        &at("job"),
                        &format!(
                            "schedule `{name}`: no job `{j}` in environment `{}`",
                            self.environment
                        ),
                        "unknown job",
                        Some(if known.is_empty() {
                            "define it under `jobs:`".to_string()
                        } else {
                            format!("jobs: {}", known.join(", "))
                        }),
                    ));
                }
                _ => {
                    return Err(self.invalid_at(
                        &at("job"),
                        &format!("schedule `{name}` needs `job`: the name of a job"),
                        "here",
                        None,
                    ));
                }
            };
            let Some(Value::String(interval)) = spec.get("interval") else {
                return Err(self.invalid_at(
                    &at("interval"),
                    &format!("schedule `{name}` needs `interval`: a cron expression or @hourly/@daily/@weekly"),
                    "here",
                    None,
                ));
            };
            let cron = parse_interval(interval).map_err(|why| {
                self.invalid_at(
                    &at("interval"),
                    &format!("schedule `{name}`: invalid interval `{interval}`: {why}"),
                    "invalid cron expression",
                    Some("five fields, minute hour day-of-month month day-of-week (`0 2 * * *`), or @hourly, @daily, @weekly, @monthly, @yearly".into()),
                )
            })?;
            out.insert(
                name.clone(),
                Schedule {
                    name: name.clone(),
                    job,
                    interval: interval.clone(),
                    cron,
                },
            );
        }
        Ok(out)
    }

    /// Every utility's `commands`: a map of names to argument strings (or
    /// `{args: ...}`, Meltano's long form) that split as a shell would.
    fn check_commands(&self) -> Result<(), ConfigError> {
        for (uname, u) in &self.utilities {
            let Some(commands) = u.spec.get("commands") else {
                continue;
            };
            let base = u.lineage.first().cloned().unwrap_or_default();
            let at = |rest: &[&str]| {
                let mut p = base.clone();
                p.extend(rest.iter().map(|s| s.to_string()));
                p
            };
            let Value::Object(m) = commands else {
                return Err(self.invalid_at(
                    &at(&["commands"]),
                    &format!("utility `{uname}`: `commands` must be a map of names to arguments"),
                    "expected a map",
                    Some("e.g. `commands: {run: run --project-dir transform}`".into()),
                ));
            };
            for (cname, v) in m {
                let args = match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("args").and_then(Value::as_str),
                    _ => None,
                };
                let ok = args.is_some_and(|a| shlex::split(a).is_some());
                if !ok {
                    return Err(self.invalid_at(
                        &at(&["commands", cname]),
                        &format!(
                            "utility `{uname}`: command `{cname}` must be an argument string (quoted as a shell would)"
                        ),
                        "expected arguments",
                        Some("e.g. `run: run --project-dir transform`".into()),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_five_fields_or_aliases() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * 1-5",
            "@hourly",
            "@daily",
            "@weekly",
        ] {
            assert!(parse_interval(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0 2 * *",
            "0 0 2 * * *",
            "@fortnightly",
            "61 * * * *",
            "nonsense",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
        let s = Schedule {
            name: "n".into(),
            job: "j".into(),
            interval: "@daily".into(),
            cron: parse_interval("@daily").unwrap(),
        };
        assert_eq!(s.cron(), "0 0 * * *");
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            s.next_after(&now).unwrap().to_rfc3339(),
            "2026-01-02T00:00:00+00:00"
        );
    }
}
