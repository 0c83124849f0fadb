//! The controls of one `alto run` (and of the task shorthand): `--select` /
//! `--exclude` (the tap's select rules replaced for this run only),
//! `--refresh-catalog`, `--no-state-update`, `--timeout` and `--dry-run`
//! (what would run, and from where, running nothing).

use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value, json};

use super::printer::{out, print_json};
use super::task::Task;
use super::{Error, Global};
use crate::config::{Plugin, Project};
use crate::eval::PluginDerivation;
use crate::realize::{Availability, Options, Realizer};
use crate::run::{self, RunOptions, StateStore};

#[derive(Debug, Args, Clone, Default)]
pub struct RunControls {
    /// Select these streams/fields for this run instead of the tap's
    /// `select` rules (repeatable; `~` hash rules still apply).
    #[arg(long, value_name = "PATTERN")]
    pub select: Vec<String>,
    /// Leave these streams/fields out for this run (repeatable; added as `!` rules).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Discover the tap's streams again before running.
    #[arg(long)]
    pub refresh_catalog: bool,
    /// Run without committing state (a dry load).
    #[arg(long)]
    pub no_state_update: bool,
    /// Stop the run as an interrupt does once it has run this long (`90s`, `15m`, `2h`).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Print what would run (plugins and where each comes from, the selected
    /// streams and fields, the state passed, the commands) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replay partitions ingested without a `~` hash rule the tap now has
    /// (their fields reach the target unhashed).
    #[arg(long)]
    pub allow_unhashed: bool,
    /// Replay, from the start, what the target loaded under another
    /// derivation of it (a changed pip_url, config, ...).
    #[arg(long)]
    pub replay_changed: bool,
}

fn not_for(flag: &str, task: &Task, why: &str) -> Error {
    Error::FlagNotApplicable {
        flag: flag.to_string(),
        task: task.to_string(),
        why: why.to_string(),
    }
}

impl RunControls {
    /// The run's timeout, checked before any work starts.
    pub fn timeout(&self) -> Result<Option<Duration>, Error> {
        let Some(t) = &self.timeout else {
            return Ok(None);
        };
        match crate::store::parse_duration(t) {
            Some(secs) if secs > 0 => Ok(Some(Duration::from_secs(secs))),
            _ => Err(Error::BadTimeout { value: t.clone() }),
        }
    }

    /// Checks the flags against the tasks, and replaces the select rules of
    /// their taps in `project` (in memory only) when `--select` or
    /// `--exclude` is given.
    pub fn apply(&self, project: &mut Project, tasks: &[Task]) -> Result<(), Error> {
        self.timeout()?;
        let selecting = !self.select.is_empty() || !self.exclude.is_empty();
        for t in tasks {
            match t {
                Task::Run { tap, .. } | Task::Ingest { tap } => {
                    let only_replays = "only a replay sends stored partitions to a target";
                    if self.allow_unhashed {
                        return Err(not_for("--allow-unhashed", t, only_replays));
                    }
                    if self.replay_changed {
                        return Err(not_for("--replay-changed", t, only_replays));
                    }
                    if selecting {
                        project.override_select(tap, &self.select, &self.exclude)?;
                    }
                    if self.no_state_update && matches!(t, Task::Ingest { .. }) {
                        return Err(not_for(
                            "--no-state-update",
                            t,
                            "an ingest commits its state together with the partitions it stores",
                        ));
                    }
                }
                Task::Replay { .. } => {
                    let why =
                        "a replay sends what the ingest selected and stored; select at the ingest";
                    if selecting {
                        return Err(not_for(
                            if self.select.is_empty() {
                                "--exclude"
                            } else {
                                "--select"
                            },
                            t,
                            why,
                        ));
                    }
                    if self.refresh_catalog {
                        return Err(not_for("--refresh-catalog", t, why));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The taps the tasks extract from, once each.
fn taps(tasks: &[Task]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for t in tasks {
        if let Task::Run { tap, .. } | Task::Ingest { tap } = t
            && !out.contains(&tap.as_str())
        {
            out.push(tap);
        }
    }
    out
}

/// `--refresh-catalog`: forgets the base catalog of every tap the tasks run
/// (as `alto clean catalog:TAP`), so the runs discover again.
pub fn refresh_catalogs(realizer: &Realizer, tasks: &[Task], build: &Options) -> Result<(), Error> {
    for name in taps(tasks) {
        let tap = realizer.project.tap(name)?;
        let derivs = run::realize_plugins(realizer, &[tap], build)?;
        crate::realize::catalog::clean(realizer, tap, &derivs[0])?;
        tracing::info!("{name}: discovering the streams again (--refresh-catalog)");
    }
    Ok(())
}

/// One plugin of a dry run: its part, derivation and where its output is.
struct PlannedPlugin<'a> {
    plugin: &'a Plugin,
    role: &'static str,
    deriv: Option<PluginDerivation>,
    availability: Option<Availability>,
}

fn availability_text(a: Option<Availability>) -> &'static str {
    match a {
        Some(Availability::Local) => "in the local store",
        Some(Availability::Remote) => "to substitute from the remote",
        Some(Availability::Build) => "to build with pex",
        Some(Availability::Unknown) => "not local; the remote could not be read",
        None => "no pip_url: cannot run",
    }
}

fn plan_plugins<'a>(
    realizer: &Realizer,
    roles: &[(&'a Plugin, &'static str)],
) -> Result<Vec<PlannedPlugin<'a>>, Error> {
    let names: Vec<String> = roles.iter().map(|(p, _)| p.name.clone()).collect();
    let derivs = realizer.derivations(&names)?;
    let avail = realizer.availability(&derivs, false)?;
    Ok(roles
        .iter()
        .map(|(plugin, role)| {
            let found = derivs
                .iter()
                .zip(&avail)
                .find(|(d, _)| d.plugins.contains(&plugin.name));
            PlannedPlugin {
                plugin,
                role,
                deriv: found.map(|(d, _)| d.clone()),
                availability: found.map(|(_, a)| *a),
            }
        })
        .collect())
}

/// The command a plugin would run with, as alto would start it now (its
/// venv, or its PEX while it has none), and the arguments alto gives;
/// `$RUN` stands for the run's private directory.
fn command_line(realizer: &Realizer, p: &PlannedPlugin, i: usize, extra: &[&str]) -> String {
    let mut parts = Vec::new();
    match p.deriv.as_ref().map(|d| realizer.start(p.plugin, d, false)) {
        Some(Ok(cmd)) => {
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    parts.push(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
                }
            }
            parts.push(cmd.get_program().to_string_lossy().into_owned());
            parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        }
        Some(Err(_)) | None => parts.push(p.plugin.name.clone()),
    }
    parts.push(format!("--config $RUN/config-{i}.json"));
    parts.extend(extra.iter().map(|s| s.to_string()));
    parts.join(" ")
}

/// The streams and fields a runtime catalog selects.
fn selected(runtime: &Value) -> Vec<Value> {
    runtime
        .get("streams")
        .and_then(Value::as_array)
        .map(|streams| {
            streams
                .iter()
                .map(|s| {
                    let id = s
                        .get("tap_stream_id")
                        .or_else(|| s.get("stream"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let fields: Vec<Value> = s
                        .pointer("/schema/properties")
                        .and_then(Value::as_object)
                        .map(|p| p.keys().map(|k| Value::String(k.clone())).collect())
                        .unwrap_or_default();
                    json!({"stream": id, "fields": fields})
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a tap would extract: its selected streams (from the cached base
/// catalog; `None` when a run would have to discover first) and the
/// arguments its catalog is passed with.
fn plan_catalog(
    realizer: &Realizer,
    tap: &PlannedPlugin,
    refresh: bool,
) -> Result<(Option<Vec<Value>>, Option<&'static str>), Error> {
    let Some(caps) =
        crate::realize::about::known_capabilities(realizer, tap.plugin, tap.deriv.as_ref())?
    else {
        return Ok((None, Some("(--catalog or --properties: its --about says)")));
    };
    let flag = if caps.iter().any(|c| c == "catalog") {
        Some("--catalog $RUN/catalog.json")
    } else if caps.iter().any(|c| c == "properties") {
        Some("--properties $RUN/catalog.json")
    } else {
        None
    };
    let (Some(d), Some(_), false) = (&tap.deriv, flag, refresh) else {
        return Ok((None, flag));
    };
    let Some(base) = crate::realize::catalog::cached(realizer, tap.plugin, d)? else {
        return Ok((None, flag));
    };
    let runtime = run::apply_rules(&base, tap.plugin)?;
    Ok((Some(selected(&runtime)), flag))
}

/// `--dry-run`: for each task, the plugins and where each comes from, the
/// selected streams and fields, the state to be passed and the commands.
/// Nothing runs, no lock is taken and nothing is written but a catalog
/// substituted from the remote into the local store.
pub fn dry_run(
    g: &Global,
    realizer: &Realizer,
    tasks: &[Task],
    opts: &RunOptions,
    controls: &RunControls,
) -> Result<(), Error> {
    let project = realizer.project;
    let env = &project.environment;
    let remote = realizer.remote()?;
    let mut plans = Vec::new();
    for t in tasks {
        let (roles, state_rel): (Vec<(&Plugin, &'static str)>, String) = match t {
            Task::Run {
                tap,
                mappers,
                target,
            } => {
                let mut roles = vec![(project.tap(tap)?, "tap")];
                for m in mappers {
                    roles.push((project.mapper(m)?, "mapper"));
                }
                roles.push((project.target(target)?, "target"));
                (roles, StateStore::rel(env, tap, target))
            }
            Task::Ingest { tap } => (
                vec![(project.tap(tap)?, "tap")],
                crate::reservoir::Index::rel(env, tap),
            ),
            Task::Replay { tap, target } => (
                vec![(project.target(target)?, "target")],
                StateStore::rel(env, &crate::reservoir::replay::position_owner(tap), target),
            ),
            _ => continue,
        };
        let planned = plan_plugins(realizer, &roles)?;
        // The state the run would start from.
        let (state, state_note): (Option<Map<String, Value>>, String) = match t {
            Task::Run { tap, target, .. } => {
                let (_, state) = StateStore::open(&remote, env, tap, target)?;
                let tap = project.tap(tap)?;
                if opts.full_refresh {
                    (None, "ignored (--full-refresh)".into())
                } else if !crate::realize::about::known_capabilities(realizer, tap, None)?
                    .is_none_or(|c| c.iter().any(|c| c == "state"))
                {
                    (
                        None,
                        format!("not passed: {} has no `state` capability", tap.name),
                    )
                } else if state.is_empty() {
                    (None, "none yet: the tap starts from the beginning".into())
                } else {
                    (Some(state), "passed with --state".into())
                }
            }
            Task::Ingest { tap } => {
                let loaded = crate::reservoir::Index::load(&remote, env, tap)?;
                if opts.full_refresh || loaded.index.state.is_empty() {
                    (None, "none: the tap starts from the beginning".into())
                } else {
                    (Some(loaded.index.state), "passed with --state".into())
                }
            }
            Task::Replay { tap, target } => {
                let loaded = crate::reservoir::Index::load(&remote, env, tap)?;
                let pos = crate::reservoir::replay::read_position(
                    &remote,
                    env,
                    tap,
                    target,
                    &loaded.index,
                )?;
                (
                    Some(pos.to_state(tap)),
                    "the replay position: partitions after it are sent".into(),
                )
            }
            _ => continue,
        };
        let mut streams = None;
        let mut commands = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            let mut extra = Vec::new();
            if p.role == "tap" {
                let (s, flag) = plan_catalog(realizer, p, controls.refresh_catalog)?;
                streams = s;
                extra.extend(flag);
                if state.is_some() {
                    extra.push("--state $RUN/state.json");
                }
            }
            commands.push(command_line(realizer, p, i, &extra));
        }
        let commits = match t {
            Task::Ingest { .. } => true,
            _ => !opts.no_state_update,
        };
        plans.push(json!({
            "task": t.to_string(),
            "plugins": planned.iter().map(|p| json!({
                "name": p.plugin.name,
                "role": p.role,
                "key": p.deriv.as_ref().map(|d| d.key.to_string()),
                "pip_url": p.deriv.as_ref().map(|d| d.pip_url.clone()),
                "availability": p.availability,
            })).collect::<Vec<_>>(),
            "streams": streams,
            "state": state.map(Value::Object),
            "state_note": state_note,
            "state_file": remote.describe_project_file(&state_rel),
            "commits_state": commits,
            "commands": commands,
        }));
        if !g.printer().json()
            && let Some(plan) = plans.last()
        {
            out(&describe(plan, &planned, controls));
        }
    }
    if g.printer().json() {
        print_json(&json!({"dry_run": true, "tasks": plans}));
    }
    Ok(())
}

fn describe(plan: &Value, planned: &[PlannedPlugin], controls: &RunControls) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut text = format!("{} (dry run: nothing runs)\n", s(&plan["task"]));
    for p in planned {
        text.push_str(&format!(
            "  {:7} {}  {}{}\n",
            p.role,
            p.plugin.name,
            availability_text(p.availability),
            p.deriv
                .as_ref()
                .map(|d| format!(" ({}, pip_url {})", d.key, d.pip_url))
                .unwrap_or_default()
        ));
    }
    match plan["streams"].as_array() {
        Some(streams) => {
            text.push_str("  streams\n");
            for st in streams {
                let fields: Vec<String> = st["fields"]
                    .as_array()
                    .map(|f| f.iter().map(s).collect())
                    .unwrap_or_default();
                text.push_str(&format!(
                    "    {}: {}\n",
                    s(&st["stream"]),
                    fields.join(", ")
                ));
            }
        }
        None if controls.refresh_catalog => {
            text.push_str("  streams   discovered again first (--refresh-catalog)\n")
        }
        None if plan["commands"][0]
            .as_str()
            .is_some_and(|c| c.contains("$RUN/catalog.json")) =>
        {
            text.push_str("  streams   not discovered yet: the run discovers them first\n")
        }
        None => {}
    }
    text.push_str(&format!("  state     {}", s(&plan["state_note"])));
    if plan["state"].is_object() {
        text.push_str(&format!(": {}", plan["state"]));
    }
    text.push('\n');
    text.push_str(&format!(
        "  commits   {}\n",
        if plan["commits_state"] == true {
            format!("to {}", s(&plan["state_file"]))
        } else {
            "nothing (--no-state-update)".into()
        }
    ));
    text.push_str("  commands  ($RUN: the run's private directory)\n");
    if let Some(commands) = plan["commands"].as_array() {
        for (i, c) in commands.iter().enumerate() {
            text.push_str(&format!("    {}{}\n", if i == 0 { "" } else { "| " }, s(c)));
        }
    }
    text
}
