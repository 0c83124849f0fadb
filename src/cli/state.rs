//! `alto state show|set|list|history|restore|clear|copy|merge|export|import`:
//! the states of an environment. Every write holds the pipeline's lock (so
//! it never races a run) and is conditional, as a run's commits are.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::Error;
use super::printer::{out, print_json};
use super::task::{self, Task};
use super::{Global, printer::human_bytes};
use crate::config::Project;
use crate::realize::Realizer;
use crate::reservoir;
use crate::run::state_store::{self, EXPORT_FORMAT, EXPORT_VERSION};
use crate::run::{self, RunError, StateStore};
use crate::singer::catalog::Glob;
use crate::singer::state;
use crate::store::Remote;

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

/// What kind of run a state file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `TAP:TARGET`: the target's confirmations.
    Pipeline,
    /// `TAP:reservoir`: the mirror of the tap's state kept in the reservoir's index.
    Ingest,
    /// `reservoir:TAP-TARGET`: a target's replay position.
    Replay,
    /// `TAP:dlt_PIPELINE`: the mirror of a dlt pipeline's Singer state
    /// (`alto.dlt`; dlt's own state is the one its runs resume from).
    Dlt,
    /// A state file no configured pipeline of this environment names.
    Other,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Ingest => "ingest",
            Kind::Replay => "replay",
            Kind::Dlt => "dlt",
            Kind::Other => "unconfigured",
        }
    }
}

/// A state a command names: its file's stem (also its lock's name) and how
/// it is shown.
#[derive(Clone, Debug)]
struct StateId {
    stem: String,
    shown: String,
    kind: Kind,
}

/// Resolves `TAP:TARGET`, `tap-target`, `TAP:reservoir` or
/// `reservoir:TAP-TARGET` to the state it names.
fn state_id(project: &Project, name: &str) -> Result<StateId, Error> {
    match task::parse(project, name) {
        Some(Task::Ingest { tap }) => {
            return Ok(StateId {
                stem: format!("{tap}-to-reservoir"),
                shown: format!("{tap}:reservoir"),
                kind: Kind::Ingest,
            });
        }
        Some(Task::Replay { tap, target }) => {
            return Ok(StateId {
                stem: format!("{}-to-{target}", reservoir::replay::position_owner(&tap)),
                shown: format!("reservoir:{tap}-{target}"),
                kind: Kind::Replay,
            });
        }
        _ => {}
    }
    if let Some(id) = dlt_id(project, name) {
        return Ok(id);
    }
    let (tap, target) = pair(project, name)?;
    Ok(StateId {
        stem: format!("{tap}-to-{target}"),
        shown: format!("{tap}:{target}"),
        kind: Kind::Pipeline,
    })
}

/// `TAP:dlt_PIPELINE`, a configured tap read by the dlt pipeline PIPELINE
/// (`alto.dlt` mirrors its state there); a target named so wins.
fn dlt_id(project: &Project, name: &str) -> Option<StateId> {
    let (tap, reader) = name.split_once(':')?;
    let ok = project.taps.contains_key(tap)
        && reader.starts_with("dlt_")
        && crate::config::name::problem(reader).is_none()
        && !project.targets.contains_key(reader);
    ok.then(|| StateId {
        stem: format!("{tap}-to-{reader}"),
        shown: name.to_string(),
        kind: Kind::Dlt,
    })
}

/// The name a run's lock, log and state go by (`<tap>-to-<target>`, ...)
/// for `TAP:TARGET`, `tap-target`, `TAP:reservoir` or `reservoir:TAP-TARGET`.
pub fn run_name(project: &Project, name: &str) -> Result<String, Error> {
    Ok(state_id(project, name)?.stem)
}

/// The state a file stem belongs to, by the configured names.
fn from_stem(project: &Project, stem: &str) -> StateId {
    for tap in project.taps.keys() {
        if stem == format!("{tap}-to-reservoir") {
            return StateId {
                stem: stem.into(),
                shown: format!("{tap}:reservoir"),
                kind: Kind::Ingest,
            };
        }
        let owner = reservoir::replay::position_owner(tap);
        for target in project.targets.keys() {
            if stem == format!("{owner}-to-{target}") {
                return StateId {
                    stem: stem.into(),
                    shown: format!("reservoir:{tap}-{target}"),
                    kind: Kind::Replay,
                };
            }
            if stem == format!("{tap}-to-{target}") {
                return StateId {
                    stem: stem.into(),
                    shown: format!("{tap}:{target}"),
                    kind: Kind::Pipeline,
                };
            }
        }
    }
    for tap in project.taps.keys() {
        if let Some(reader) = stem.strip_prefix(&format!("{tap}-to-"))
            && let Some(id) = dlt_id(project, &format!("{tap}:{reader}"))
        {
            return id;
        }
    }
    StateId {
        stem: stem.into(),
        shown: stem.into(),
        kind: Kind::Other,
    }
}

/// Refuses writes to an ingest's state: the reservoir's index holds it
/// together with the partitions, and the file is only its mirror.
fn writable(id: &StateId) -> Result<(), Error> {
    if id.kind == Kind::Ingest {
        return Err(Error::StateNotWritable {
            name: id.shown.clone(),
        });
    }
    Ok(())
}

fn remote_of(project: &Project) -> Result<std::sync::Arc<Remote>, Error> {
    Ok(Realizer::new(project)?.remote()?)
}

fn lock(
    project: &Project,
    remote: &std::sync::Arc<Remote>,
    id: &StateId,
) -> Result<run::PipelineLock, Error> {
    Ok(run::PipelineLock::acquire(
        remote.clone(),
        &project.environment,
        &id.stem,
        false,
    )?)
}

pub(super) fn read_state_file(file: &Path) -> Result<Map<String, Value>, Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(state::parse_file(&bytes).map_err(|e| RunError::BadState {
        path: file.display().to_string(),
        message: e.to_string(),
    })?)
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
    let id = state_id(project, name)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let (_, state) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    print_json(&Value::Object(state));
    Ok(())
}

/// `alto state show NAME --provenance`: what produced the active state.
pub fn state_provenance(project: &Project, name: &str) -> Result<(), Error> {
    let id = state_id(project, name)?;
    let remote = remote_of(project)?;
    let (store, _) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    let record = store.provenance()?;
    if record.is_none() {
        eprintln!(
            "{} has no provenance record: its state was written before alto kept them, by hand (`alto state set`, ...), or there is none",
            id.shown
        );
    }
    print_json(&json!(record));
    Ok(())
}

pub fn state_set(project: &Project, name: &str, file: &Path) -> Result<(), Error> {
    let id = state_id(project, name)?;
    writable(&id)?;
    let new = read_state_file(file)?;
    let remote = remote_of(project)?;
    let _lock = lock(project, &remote, &id)?;
    let (mut store, _) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    store.commit(&new)?;
    store.keep_history(&new)?;
    eprintln!("state of {} replaced", id.shown);
    Ok(())
}

/// `alto state list [PATTERN]`: every state of the environment whose name
/// (or file stem) matches.
pub fn state_list(g: &Global, project: &Project, pattern: Option<&str>) -> Result<(), Error> {
    let glob = pattern.map(Glob::new);
    let remote = remote_of(project)?;
    let mut rows = Vec::new();
    for active in state_store::list(&remote, &project.environment)? {
        let id = from_stem(project, &active.stem);
        if let Some(g) = &glob
            && !g.matches(&id.shown)
            && !g.matches(&id.stem)
        {
            continue;
        }
        rows.push((id, active));
    }
    if g.printer().json() {
        print_json(&json!({
            "environment": project.environment,
            "states": rows.iter().map(|(id, a)| json!({
                "name": id.shown,
                "kind": id.kind.as_str(),
                "file": format!("state/{}/{}.json", project.environment, id.stem),
                "last_commit": a.modified,
                "size": a.size,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let width = rows.iter().map(|(id, _)| id.shown.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (id, a) in &rows {
        text.push_str(&format!(
            "{:width$}  {:12}  {}  {}\n",
            id.shown,
            id.kind.as_str(),
            a.modified,
            human_bytes(a.size)
        ));
    }
    if rows.is_empty() {
        g.printer().status(&format!(
            "no state in the {} environment{}",
            project.environment,
            pattern
                .map(|p| format!(" matches `{p}`"))
                .unwrap_or_default()
        ));
    }
    out(&text);
    Ok(())
}

/// `alto state history TAP:TARGET`: the timestamped copies, oldest first.
pub fn state_history(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
    let id = state_id(project, name)?;
    let remote = remote_of(project)?;
    let (store, _) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    let copies = store.history()?;
    // What produced each copy, where recorded.
    let mut made_by = Vec::new();
    for c in &copies {
        made_by.push(store.copy_provenance(&c.stamp)?);
    }
    if g.printer().json() {
        let rows: Vec<Value> = copies
            .iter()
            .zip(&made_by)
            .map(|(c, p)| {
                let mut v = json!(c);
                v["pipeline"] = json!(p.as_ref().map(|p| &p.pipeline));
                v["run"] = json!(p.as_ref().map(|p| &p.run));
                v
            })
            .collect();
        print_json(&json!({"name": id.shown, "copies": rows}));
        return Ok(());
    }
    if copies.is_empty() {
        g.printer()
            .status(&format!("{} has no state history", id.shown));
    }
    let mut text = String::new();
    for (c, p) in copies.iter().zip(&made_by) {
        let by = match p {
            Some(p) => format!("  pipeline {}  run {}", p.pipeline, p.run),
            None => String::new(),
        };
        text.push_str(&format!(
            "{:17}  {}  {}{by}\n",
            c.stamp,
            c.modified,
            human_bytes(c.size)
        ));
    }
    out(&text);
    Ok(())
}

/// `alto state restore TAP:TARGET --at STAMP`.
pub fn state_restore(g: &Global, project: &Project, name: &str, stamp: &str) -> Result<(), Error> {
    let id = state_id(project, name)?;
    writable(&id)?;
    let remote = remote_of(project)?;
    let _lock = lock(project, &remote, &id)?;
    let (mut store, current) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    let (restored, kept) = store.restore(&current, stamp)?;
    // The copy's stamp, as `history` lists it.
    let kept = kept
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .and_then(state_store::split_name)
        .and_then(|(_, s)| s.map(str::to_string));
    g.printer().result(
        || {
            format!(
                "the state of {} is the copy {stamp} again{}",
                id.shown,
                kept.as_deref()
                    .map(|k| format!("; the one it replaced is kept as the copy {k}"))
                    .unwrap_or_default()
            )
        },
        || json!({"name": id.shown, "restored": stamp, "kept": kept, "state": restored}),
    );
    Ok(())
}

/// `alto state clear TAP:TARGET` (also `alto clean TAP:TARGET`): drops the
/// active state or replay position; the history stays.
pub fn state_clear(project: &Project, name: &str) -> Result<(), Error> {
    let id = state_id(project, name)?;
    writable(&id)?;
    let remote = remote_of(project)?;
    let _lock = lock(project, &remote, &id)?;
    let (store, _) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    store.clear()?;
    match id.kind {
        Kind::Replay => eprintln!(
            "the replay position {} is dropped; the next replay sends everything",
            id.shown
        ),
        _ => eprintln!("the state of {} is dropped (its history stays)", id.shown),
    }
    Ok(())
}

/// `alto state copy FROM TO`: FROM's active state becomes TO's.
pub fn state_copy(project: &Project, from: &str, to: &str) -> Result<(), Error> {
    let from = state_id(project, from)?;
    let to = state_id(project, to)?;
    writable(&to)?;
    let remote = remote_of(project)?;
    let (source, state) = StateStore::open_named(&remote, &project.environment, &from.stem)?;
    if !source.exists() {
        return Err(Error::NoState { name: from.shown });
    }
    let _lock = lock(project, &remote, &to)?;
    let (mut store, _) = StateStore::open_named(&remote, &project.environment, &to.stem)?;
    store.commit(&state)?;
    store.keep_history(&state)?;
    eprintln!("the state of {} is copied to {}", from.shown, to.shown);
    Ok(())
}

/// `alto state merge TAP:TARGET FILE`: deep-merges FILE into the active
/// state as Meltano's `state merge` does: objects merge key by key, the
/// file's lists and scalars replace, keys are never removed.
pub fn state_merge(g: &Global, project: &Project, name: &str, file: &Path) -> Result<(), Error> {
    let id = state_id(project, name)?;
    writable(&id)?;
    let patch = read_state_file(file)?;
    let remote = remote_of(project)?;
    let _lock = lock(project, &remote, &id)?;
    let (mut store, mut current) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
    state::merge(&mut current, patch);
    store.commit(&current)?;
    store.keep_history(&current)?;
    g.printer().result(
        || format!("{} merged into the state of {}", file.display(), id.shown),
        || json!({"name": id.shown, "state": current}),
    );
    Ok(())
}

/// `alto state export [PATTERN]`: every matching state of the environment
/// (pipelines and replay positions; an ingest's state lives in its
/// reservoir) in one JSON document on stdout, each with the fingerprint
/// `import` checks.
pub fn state_export(project: &Project, pattern: Option<&str>) -> Result<(), Error> {
    let glob = pattern.map(Glob::new);
    let remote = remote_of(project)?;
    let mut states = Map::new();
    for active in state_store::list(&remote, &project.environment)? {
        let id = from_stem(project, &active.stem);
        if id.kind == Kind::Ingest
            || glob
                .as_ref()
                .is_some_and(|g| !g.matches(&id.shown) && !g.matches(&id.stem))
        {
            continue;
        }
        let (store, state) = StateStore::open_named(&remote, &project.environment, &id.stem)?;
        if !store.exists() {
            continue;
        }
        states.insert(
            id.stem.clone(),
            json!({
                "name": id.shown,
                "fingerprint": state_store::fingerprint(&state),
                "state": state,
            }),
        );
    }
    print_json(&json!({
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "environment": project.environment,
        "exported": crate::store::now_rfc3339(),
        "states": states,
    }));
    Ok(())
}

/// One state of an export document.
struct Exported {
    stem: String,
    fingerprint: String,
    state: Map<String, Value>,
}

fn parse_export(file: &Path, bytes: &[u8]) -> Result<Vec<Exported>, Error> {
    let bad = |message: String| Error::BadExport {
        file: file.display().to_string(),
        message,
    };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if doc.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT) {
        return Err(bad(format!(
            "it is not an `alto state export` document (its `format` is not `{EXPORT_FORMAT}`)"
        )));
    }
    match doc.get("version").and_then(Value::as_u64) {
        Some(EXPORT_VERSION) => {}
        v => {
            return Err(bad(format!(
                "its version is {}, this alto reads version {EXPORT_VERSION}",
                v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into())
            )));
        }
    }
    let Some(states) = doc.get("states").and_then(Value::as_object) else {
        return Err(bad("it has no `states` object".into()));
    };
    let mut out = Vec::new();
    for (stem, entry) in states {
        if let Some(why) = crate::config::name::problem(stem) {
            return Err(bad(format!("`{stem}` cannot name a state file: {why}")));
        }
        if stem.ends_with("-to-reservoir") {
            return Err(bad(format!(
                "`{stem}` is an ingest's state, which lives in its reservoir"
            )));
        }
        let fingerprint = entry.get("fingerprint").and_then(Value::as_str);
        let state = entry.get("state").and_then(Value::as_object);
        let (Some(fingerprint), Some(state)) = (fingerprint, state) else {
            return Err(bad(format!(
                "`states.{stem}` needs a `fingerprint` string and a `state` object"
            )));
        };
        out.push(Exported {
            stem: stem.clone(),
            fingerprint: fingerprint.to_string(),
            state: state.clone(),
        });
    }
    Ok(out)
}

/// `alto state import FILE [--force]`: writes the states of an export.
/// A state changed since the export (it exists and is neither what was
/// exported nor what is imported) is not overwritten unless `force`; then
/// nothing is written at all.
pub fn state_import(g: &Global, project: &Project, file: &Path, force: bool) -> Result<(), Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let entries = parse_export(file, &bytes)?;
    let remote = remote_of(project)?;
    let env = project.environment.clone();
    // Every lock first, then every check, then the writes: no run changes
    // a state between its check and its write.
    let mut locks = Vec::new();
    for e in &entries {
        locks.push(run::PipelineLock::acquire(
            remote.clone(),
            &env,
            &e.stem,
            false,
        )?);
    }
    let mut changed = Vec::new();
    let mut writes = Vec::new();
    let mut unchanged = 0;
    for e in entries {
        let (store, current) = StateStore::open_named(&remote, &env, &e.stem)?;
        let now = state_store::fingerprint(&current);
        if store.exists() && now == state_store::fingerprint(&e.state) {
            unchanged += 1;
            continue;
        }
        if store.exists() && now != e.fingerprint && !force {
            changed.push(from_stem(project, &e.stem).shown);
            continue;
        }
        writes.push((store, e));
    }
    if !changed.is_empty() {
        return Err(Error::StateChangedSinceExport {
            file: file.display().to_string(),
            names: changed.join(", "),
        });
    }
    let mut written = Vec::new();
    for (mut store, e) in writes {
        store.commit(&e.state)?;
        store.keep_history(&e.state)?;
        written.push(from_stem(project, &e.stem).shown);
    }
    drop(locks);
    g.printer().result(
        || {
            format!(
                "{} states imported{}{}",
                written.len(),
                if written.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", written.join(", "))
                },
                if unchanged > 0 {
                    format!("; {unchanged} already as imported")
                } else {
                    String::new()
                }
            )
        },
        || json!({"imported": written, "unchanged": unchanged}),
    );
    Ok(())
}
