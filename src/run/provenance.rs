//! Provenance: the pipeline derivation a run evaluates to, and the record
//! of it kept beside each state file it writes (`<state>.provenance.json`),
//! so a state says which plugins, catalog, configs and hash rules produced
//! it, and which run wrote it. A sidecar, not an envelope: the original's
//! and Meltano's state readers read the state file as it always was.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RunError, apply_rules};
use crate::config::task::Task;
use crate::config::{ConfigError, Plugin, Project};
use crate::eval::pipeline::content_hash;
use crate::eval::{CatalogInput, Key, PipelineDerivation, PipelineKind, PluginDerivation};
use crate::realize::Realizer;

/// The `format` of a provenance record.
pub const FORMAT: &str = "alto-provenance";
pub const VERSION: u64 = 1;

/// What produced a state (or a reservoir flush, or a replay position).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provenance {
    pub format: String,
    pub version: u64,
    /// The pipeline derivation's key.
    pub pipeline: Key,
    /// The run's id: its log's name, `<run>.<stamp>`.
    pub run: String,
    /// When the record was written (RFC 3339).
    pub written: String,
    pub derivation: PipelineDerivation,
}

impl Provenance {
    /// The record of `derivation` for run `run`; `None` while its key is unknown.
    pub fn new(derivation: &PipelineDerivation, run: &str) -> Option<Provenance> {
        Some(Provenance {
            format: FORMAT.into(),
            version: VERSION,
            pipeline: derivation.key.clone()?,
            run: run.to_string(),
            written: crate::store::now_rfc3339(),
            derivation: derivation.clone(),
        })
    }

    /// A record read from a file; `None` for anything that is not one
    /// (a newer format is not guessed at).
    pub fn parse(bytes: &[u8]) -> Option<Provenance> {
        serde_json::from_slice::<Provenance>(bytes)
            .ok()
            .filter(|p| p.format == FORMAT && p.version == VERSION)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

/// The sidecar of a state file `<stem>.json` or `<stem>.<stamp>.json`.
pub fn sidecar(state_rel: &str) -> String {
    let base = state_rel.strip_suffix(".json").unwrap_or(state_rel);
    format!("{base}{SUFFIX}")
}

/// How a provenance sidecar's name ends.
pub const SUFFIX: &str = ".provenance.json";

/// The plugins a pipeline task runs, in pipe order, with its kind and tap.
pub fn task_plugins<'p>(
    project: &'p Project,
    task: &Task,
) -> Result<(PipelineKind, &'p Plugin, Vec<&'p Plugin>), ConfigError> {
    match task {
        Task::Run {
            tap,
            mappers,
            target,
        } => {
            let t = project.tap(tap)?;
            let mut plugins = vec![t];
            for m in mappers {
                plugins.push(project.mapper(m)?);
            }
            plugins.push(project.target(target)?);
            Ok((PipelineKind::Run, t, plugins))
        }
        Task::Ingest { tap } => {
            let t = project.tap(tap)?;
            Ok((PipelineKind::Ingest, t, vec![t]))
        }
        Task::Replay { tap, target } => Ok((
            PipelineKind::Replay,
            project.tap(tap)?,
            vec![project.target(target)?],
        )),
        other => Err(ConfigError::Unknown {
            message: format!("`{other}` is not a pipeline"),
            help: Some(
                "a pipeline is TAP:TARGET, TAP:MAPPER:TARGET, TAP:reservoir or reservoir:TAP-TARGET"
                    .into(),
            ),
        }),
    }
}

/// The pipeline derivation of a run from its realized plugins (in pipe
/// order, as `plugins`) and the runtime catalog it hands the tap.
pub fn of_run(
    project: &Project,
    kind: PipelineKind,
    tap: &Plugin,
    plugins: &[&Plugin],
    derivs: &[PluginDerivation],
    catalog: CatalogInput,
) -> Result<PipelineDerivation, RunError> {
    let pairs: Vec<(&Plugin, &PluginDerivation)> =
        plugins.iter().copied().zip(derivs.iter()).collect();
    Ok(crate::eval::pipeline_derivation(
        project, kind, tap, &pairs, catalog,
    )?)
}

/// The catalog input of a runtime catalog.
pub fn catalog_input(runtime: Option<&Value>) -> CatalogInput {
    match runtime {
        Some(c) => CatalogInput::Runtime(content_hash(c)),
        None => CatalogInput::None,
    }
}

/// A task's pipeline derivation without running or building anything: the
/// plugins' keys as evaluated, and the runtime catalog from the base
/// catalog if it was discovered already (else the key is not known yet).
/// `offline`: only the local store is looked at.
pub fn evaluate(
    realizer: &Realizer,
    task: &Task,
    offline: bool,
) -> Result<PipelineDerivation, RunError> {
    let project = realizer.project;
    let (kind, tap, plugins) = task_plugins(project, task)?;
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    let all = realizer.derivations(&names)?;
    let of = |p: &Plugin| {
        all.iter()
            .find(|d| d.plugins.contains(&p.name))
            .cloned()
            .ok_or_else(|| RunError::NoPipUrl {
                plugin: p.name.clone(),
            })
    };
    let derivs = plugins
        .iter()
        .map(|p| of(p))
        .collect::<Result<Vec<_>, _>>()?;
    let catalog = if kind == PipelineKind::Replay {
        CatalogInput::None
    } else {
        let d = of(tap)?;
        let caps = if offline {
            tap.spec
                .contains_key("capabilities")
                .then(|| tap.capabilities())
        } else {
            crate::realize::about::known_capabilities(realizer, tap, Some(&d))?
        };
        let base = |d: &PluginDerivation| {
            if offline {
                crate::realize::catalog::local(realizer, tap, d)
            } else {
                crate::realize::catalog::cached(realizer, tap, d)
            }
        };
        match caps {
            Some(caps) if !caps.iter().any(|c| c == "catalog" || c == "properties") => {
                CatalogInput::None
            }
            Some(_) => match base(&d)? {
                Some(base) => catalog_input(Some(&apply_rules(&base, tap)?)),
                None => CatalogInput::Unknown,
            },
            None => CatalogInput::Unknown,
        }
    };
    of_run(project, kind, tap, &plugins, &derivs, catalog)
}

/// Says, in one line, what changed since the derivation that produced the
/// current state, if that is known and differs.
pub fn note_changes(
    store: &super::StateStore,
    drv: &PipelineDerivation,
    run: &str,
) -> Result<(), RunError> {
    let Some(old) = store.provenance()? else {
        return Ok(());
    };
    let changes = drv.changes_since(&old.derivation);
    if !changes.is_empty() {
        tracing::info!(
            "{run}: {} (the current state is from run {})",
            changes.join("; "),
            old.run
        );
    }
    Ok(())
}

/// The plugin keys the provenance records of an environment's active
/// states name, for records written within the last `grace` seconds: gc
/// keeps them, so a rollback to the build that produced a state can still
/// substitute it.
pub fn plugin_roots(
    remote: &crate::store::Remote,
    env: &str,
    grace: u64,
) -> Result<std::collections::BTreeSet<Key>, RunError> {
    let cutoff = crate::store::now_epoch().saturating_sub(grace);
    let mut keys = std::collections::BTreeSet::new();
    for active in super::state_store::list(remote, env)? {
        let rel = sidecar(&format!("state/{env}/{}.json", active.stem));
        let Some(v) = remote.read_project_file(&rel)? else {
            continue;
        };
        let Some(p) = Provenance::parse(&v.bytes) else {
            continue;
        };
        if crate::store::parse_rfc3339(&p.written).is_some_and(|t| t >= cutoff) {
            keys.extend(p.derivation.steps.into_iter().map(|s| s.key));
        }
    }
    Ok(keys)
}

/// The pipeline tasks the config names: its jobs' pipeline steps, in order,
/// each once.
pub fn configured_tasks(project: &Project) -> Vec<Task> {
    let mut out: Vec<Task> = Vec::new();
    let names: Vec<String> = project.jobs.keys().cloned().collect();
    for (_, step) in project.expand_steps(&names).unwrap_or_default() {
        if let crate::config::Step::Task(
            t @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. }),
        ) = step
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_sit_beside_their_state() {
        assert_eq!(
            sidecar("state/dev/a-to-b.json"),
            "state/dev/a-to-b.provenance.json"
        );
        assert_eq!(
            sidecar("state/dev/a-to-b.20261127180000-2.json"),
            "state/dev/a-to-b.20261127180000-2.provenance.json"
        );
        assert!(Provenance::parse(b"{\"bookmarks\": {}}").is_none());
    }

    #[test]
    fn gc_roots_are_the_plugins_of_recent_records() {
        use crate::store::remote::Backend;
        let dir = tempfile::tempdir().unwrap();
        let remote = crate::store::Remote::new(
            Backend::Directory(dir.path().to_path_buf()),
            String::new(),
            "p".into(),
            &[],
        )
        .unwrap();
        let step = |n: u8| crate::eval::pipeline::Step {
            role: "tap".into(),
            name: "tap-x".into(),
            key: Key::of(&serde_json::json!(n)),
            pip_url: "tap-x".into(),
            config: String::new(),
        };
        let record = |n: u8, written: &str| {
            let mut d = PipelineDerivation {
                key: None,
                kind: PipelineKind::Ingest,
                steps: vec![step(n)],
                catalog: CatalogInput::None,
                hash_rules: vec![],
            };
            d.key = Some(Key::of(&d.inputs()));
            let mut p = Provenance::new(&d, "run").unwrap();
            p.written = written.into();
            p
        };
        let day_ago =
            chrono::DateTime::from_timestamp((crate::store::now_epoch() - 86_400) as i64, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (stem, p) in [
            ("a-to-b", record(1, &crate::store::now_rfc3339())),
            ("c-to-d", record(2, &day_ago)),
        ] {
            let rel = format!("state/dev/{stem}.json");
            remote
                .overwrite_project_file(&rel, bytes::Bytes::from_static(b"{}"))
                .unwrap();
            remote
                .overwrite_project_file(&sidecar(&rel), p.to_bytes())
                .unwrap();
        }
        let roots = plugin_roots(&remote, "dev", 3600).unwrap();
        assert_eq!(roots.into_iter().collect::<Vec<_>>(), vec![step(1).key]);
        assert_eq!(plugin_roots(&remote, "dev", 2 * 86_400).unwrap().len(), 2);
    }
}
