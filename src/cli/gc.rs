//! `alto gc` and `alto store pin/unpin`.

use std::collections::BTreeSet;

use serde_json::json;

use super::printer::print_json;
use super::{Error, Global};
use crate::config::{LoadOptions, Project};
use crate::eval::Key;
use crate::realize::Realizer;
use crate::store;

/// Keys of every plugin and base catalog of every environment of the project.
pub(super) fn project_roots(project: &Project) -> Result<BTreeSet<Key>, Error> {
    let mut envs = vec![project.environment.clone()];
    for e in &project.environments {
        if !envs.iter().any(|x| x.eq_ignore_ascii_case(e)) {
            envs.push(e.clone());
        }
    }
    let mut keys = BTreeSet::new();
    for env in envs {
        let p = crate::config::load(&LoadOptions::from_process(
            Some(project.root.clone()),
            Some(env),
        ))?;
        let realizer = Realizer::new(&p)?;
        let derivs = realizer.derivations(&[])?;
        for d in &derivs {
            keys.insert(d.key.clone());
            keys.insert(crate::realize::about::derivation(d).0);
            for tap in d.plugins.iter().filter_map(|n| p.taps.get(n)) {
                // A catalog whose inputs cannot be rendered here is simply not a root.
                if let Ok((k, _)) = crate::realize::catalog::derivation(&realizer, tap, d) {
                    keys.insert(k);
                }
            }
        }
    }
    Ok(keys)
}

/// The plugins the provenance of the project's current states names
/// (recorded within the grace period), in every environment. A remote that
/// cannot be read keeps nothing more: a local gc still works offline.
fn provenance_roots(project: &Project, realizer: &Realizer, grace: u64) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    let remote = match realizer.remote() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "cannot read the states' provenance, so gc keeps no plugin for them: {e}"
            );
            return keys;
        }
    };
    let mut envs = vec![project.environment.clone()];
    for e in &project.environments {
        if !envs.iter().any(|x| x.eq_ignore_ascii_case(e)) {
            envs.push(e.clone());
        }
    }
    for env in envs {
        match crate::run::provenance::plugin_roots(&remote, &env, grace) {
            Ok(k) => keys.extend(k),
            Err(e) => tracing::warn!(
                "cannot read the provenance of the {env} states, so gc keeps no plugin for them: {e}"
            ),
        }
    }
    keys
}

pub fn gc(
    g: &Global,
    project: &Project,
    dry_run: bool,
    remote: bool,
    older_than: &str,
) -> Result<(), Error> {
    let grace = store::parse_duration(older_than).ok_or_else(|| Error::BadDuration {
        value: older_than.to_string(),
    })?;
    let opts = store::gc::Options { grace, dry_run };
    let cache = store::cache_dir();
    let mut roots = project_roots(project)?;
    let realizer = Realizer::new(project)?;
    roots.extend(provenance_roots(project, &realizer, grace));
    let mut summary = store::gc::collect_local(&realizer.local, &cache, &roots, &opts)?;
    if remote {
        // Pins are the user's, on this machine; they keep remote objects too.
        let mut remote_roots = roots.clone();
        remote_roots.extend(store::roots::pins(&cache)?);
        let r = store::gc::collect_remote(&*realizer.remote()?, &remote_roots, &opts)?;
        summary.removed.extend(r.removed);
        summary.leftovers.extend(r.leftovers);
        summary.freed += r.freed;
    }
    if g.printer().json() {
        print_json(&json!({
            "dry_run": dry_run,
            "removed": summary.removed,
            "leftovers": summary.leftovers,
            "freed_bytes": summary.freed,
            "roots": roots.len(),
        }));
    } else if g.printer().verbose() {
        eprintln!(
            "{} {} objects and {} leftovers ({:.1} MB); {} roots kept",
            if dry_run { "would remove" } else { "removed" },
            summary.removed.len(),
            summary.leftovers.len(),
            summary.freed as f64 / 1e6,
            roots.len()
        );
    }
    Ok(())
}
