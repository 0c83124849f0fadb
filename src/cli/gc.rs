//! `alto gc` and `alto store pin/unpin`.

use std::collections::BTreeSet;

use serde_json::json;

use super::printer::print_json;
use super::{Error, Global};
use crate::config::{LoadOptions, Project};
use crate::eval::Key;
use crate::realize::Realizer;
use crate::store::{self, LocalStatus, roots};

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
    let cutoff = store::now_epoch().saturating_sub(grace);
    let old_enough = |created: &str| store::parse_rfc3339(created).is_some_and(|t| t <= cutoff);
    let cache = store::cache_dir();
    let mut roots = project_roots(project)?;
    roots.extend(roots::pins(&cache));
    let realizer = Realizer::new(project)?;

    // The local store: other projects' registered roots are kept too.
    let mut local_roots = roots.clone();
    local_roots.extend(roots::local_roots(&cache)?);
    let (mut freed, mut removed) = (0u64, Vec::new());
    for key in realizer.local.keys()? {
        if local_roots.contains(&key) {
            continue;
        }
        let meta = match realizer.local.status(&key, false)? {
            LocalStatus::Valid(m) | LocalStatus::Damaged { meta: m, .. } => m,
            LocalStatus::Missing => continue,
        };
        if !meta.created.is_empty() && !old_enough(&meta.created) {
            continue;
        }
        if !dry_run {
            realizer.local.remove(&key)?;
        }
        freed += meta.size;
        removed.push(json!({"key": key, "where": "local", "kind": meta.kind, "size": meta.size}));
    }

    // The remote: every project's registered roots are kept.
    if remote {
        let r = realizer.remote()?;
        let mut remote_roots = roots.clone();
        remote_roots.extend(roots::remote_roots(&r)?);
        let mut keys: Vec<Key> = r.meta_keys()?.into_iter().collect();
        keys.sort();
        for key in keys {
            if remote_roots.contains(&key) {
                continue;
            }
            let Some(meta) = r.meta(&key)? else { continue };
            if !old_enough(&meta.created) {
                continue;
            }
            if !dry_run {
                r.delete_object(&key)?;
            }
            freed += meta.size;
            removed.push(
                json!({"key": key, "where": r.describe, "kind": meta.kind, "size": meta.size}),
            );
        }
    }
    if g.printer().json() {
        print_json(
            &json!({"dry_run": dry_run, "removed": removed, "freed_bytes": freed, "roots": roots.len()}),
        );
    } else if g.printer().verbose() {
        eprintln!(
            "{} {} objects ({:.1} MB); {} roots kept",
            if dry_run { "would remove" } else { "removed" },
            removed.len(),
            freed as f64 / 1e6,
            roots.len()
        );
    }
    Ok(())
}
