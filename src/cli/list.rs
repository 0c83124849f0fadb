//! `alto list`: taps, targets, utilities and their task names.

use super::printer::print_json;
use super::task;
use super::{Error, Global};
use crate::config::{Project, REDACTED};
use serde_json::{Value, json};
use std::io::Write;

/// The plugin's pip_url as `list` shows it: unrendered, redacted if secret.
fn pip_url_shown(project: &Project, p: &crate::config::Plugin, g: &Global) -> Option<String> {
    let url = p.raw_str("pip_url")?;
    let secret = p.lineage.iter().any(|base| {
        let mut path = base.clone();
        path.push("pip_url".into());
        project
            .tree
            .exact_origin(&path)
            .and_then(|o| project.sources.layer(o))
            .is_some_and(|l| l.is_secret())
    });
    Some(if secret && !g.show_secrets {
        REDACTED.to_string()
    } else {
        url.split_whitespace().collect::<Vec<_>>().join(" ")
    })
}

pub fn list(g: &Global, project: &Project) -> Result<(), Error> {
    let tasks: Vec<String> = task::all(project).iter().map(|t| t.to_string()).collect();
    if g.printer().json() {
        let plugins = |m: &indexmap::IndexMap<String, crate::config::Plugin>| -> Vec<Value> {
            m.values()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "pip_url": pip_url_shown(project, p, g),
                        "inherit_from": p.parent,
                        "capabilities": p.capabilities(),
                    })
                })
                .collect()
        };
        print_json(&json!({
            "project": project.name,
            "environment": project.environment,
            "taps": plugins(&project.taps),
            "targets": plugins(&project.targets),
            "utilities": plugins(&project.utilities),
            "mappers": plugins(&project.mappers),
            "tasks": tasks,
        }));
        return Ok(());
    }
    let mut out = String::new();
    out.push_str(&format!(
        "project {} (environment {})\n",
        project.name, project.environment
    ));
    let width = project.plugins().map(|p| p.name.len()).max().unwrap_or(0);
    for (title, m) in [
        ("taps", &project.taps),
        ("targets", &project.targets),
        ("utilities", &project.utilities),
        ("mappers", &project.mappers),
    ] {
        if title == "mappers" && m.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}\n"));
        if m.is_empty() {
            out.push_str("  (none)\n");
        }
        for p in m.values() {
            let mut detail = pip_url_shown(project, p, g).unwrap_or_else(|| "(no pip_url)".into());
            if let Some(parent) = &p.parent {
                detail.push_str(&format!("  (inherits {parent})"));
            }
            out.push_str(&format!("  {:width$}  {detail}\n", p.name));
        }
    }
    out.push_str("\ntasks\n");
    for t in &tasks {
        out.push_str(&format!("  {t}\n"));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}
