//! The original's task names (`tap:target`, `tap:reservoir`,
//! `reservoir:tap-target`, `build:plugin`, `catalog:tap`, `state:tap-target`),
//! resolved against the configured plugin names.

use crate::config::Project;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// `tap:target`, or `tap:mapper:...:target`
    Run {
        tap: String,
        mappers: Vec<String>,
        target: String,
    },
    /// `tap:reservoir`
    Ingest { tap: String },
    /// `reservoir:tap-target` or `reservoir:tap:target`
    Replay { tap: String, target: String },
    /// `build:plugin`
    Build { plugin: String },
    /// `catalog:tap`
    Catalog { tap: String },
    /// `state:tap-target`
    State { tap: String, target: String },
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Task::Run {
                tap,
                mappers,
                target,
            } => {
                write!(f, "{tap}:")?;
                for m in mappers {
                    write!(f, "{m}:")?;
                }
                write!(f, "{target}")
            }
            Task::Ingest { tap } => write!(f, "{tap}:reservoir"),
            Task::Replay { tap, target } => write!(f, "reservoir:{tap}-{target}"),
            Task::Build { plugin } => write!(f, "build:{plugin}"),
            Task::Catalog { tap } => write!(f, "catalog:{tap}"),
            Task::State { tap, target } => write!(f, "state:{tap}-{target}"),
        }
    }
}

/// Splits `tap-target` into a configured tap and target.
fn split_pair(project: &Project, s: &str) -> Option<(String, String)> {
    project.taps.keys().find_map(|tap| {
        let rest = s.strip_prefix(tap.as_str())?.strip_prefix('-')?;
        project
            .targets
            .contains_key(rest)
            .then(|| (tap.clone(), rest.to_string()))
    })
}

/// Resolves a task name; `None` when it names nothing configured.
pub fn parse(project: &Project, name: &str) -> Option<Task> {
    let parts: Vec<&str> = name.split(':').collect();
    match parts.as_slice() {
        ["build", plugin] => project
            .plugins()
            .any(|p| p.name == *plugin)
            .then(|| Task::Build {
                plugin: plugin.to_string(),
            }),
        ["catalog", tap] => project.taps.contains_key(*tap).then(|| Task::Catalog {
            tap: tap.to_string(),
        }),
        ["state", pair] => {
            split_pair(project, pair).map(|(tap, target)| Task::State { tap, target })
        }
        ["reservoir", pair] => {
            split_pair(project, pair).map(|(tap, target)| Task::Replay { tap, target })
        }
        ["reservoir", tap, target]
            if project.taps.contains_key(*tap) && project.targets.contains_key(*target) =>
        {
            Some(Task::Replay {
                tap: tap.to_string(),
                target: target.to_string(),
            })
        }
        [tap, "reservoir"] => project.taps.contains_key(*tap).then(|| Task::Ingest {
            tap: tap.to_string(),
        }),
        [tap, middle @ .., target]
            if project.taps.contains_key(*tap)
                && project.targets.contains_key(*target)
                && middle.iter().all(|m| project.mappers.contains_key(*m)) =>
        {
            Some(Task::Run {
                tap: tap.to_string(),
                mappers: middle.iter().map(|m| m.to_string()).collect(),
                target: target.to_string(),
            })
        }
        _ => None,
    }
}

/// Every task name the project gives, in a stable order.
pub fn all(project: &Project) -> Vec<Task> {
    let mut out = Vec::new();
    for tap in project.taps.keys() {
        for target in project.targets.keys() {
            out.push(Task::Run {
                tap: tap.clone(),
                mappers: Vec::new(),
                target: target.clone(),
            });
        }
        out.push(Task::Ingest { tap: tap.clone() });
        for target in project.targets.keys() {
            out.push(Task::Replay {
                tap: tap.clone(),
                target: target.clone(),
            });
        }
        out.push(Task::Catalog { tap: tap.clone() });
        for target in project.targets.keys() {
            out.push(Task::State {
                tap: tap.clone(),
                target: target.clone(),
            });
        }
    }
    for p in project.plugins() {
        out.push(Task::Build {
            plugin: p.name.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alto.yaml"),
            "default:\n  taps:\n    tap-a: {}\n    tap-a-b: {}\n  targets:\n    b-c: {}\n    c: {}\n",
        )
        .unwrap();
        let opts = crate::config::LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vec![],
            strict: false,
            vault_layer: false,
        };
        crate::config::load(&opts).unwrap()
    }

    #[test]
    fn names_resolve_against_the_project() {
        let p = project();
        let s = |x: &str| x.to_string();
        assert_eq!(
            parse(&p, "tap-a:c"),
            Some(Task::Run {
                tap: s("tap-a"),
                mappers: vec![],
                target: s("c")
            })
        );
        assert_eq!(
            parse(&p, "tap-a:reservoir"),
            Some(Task::Ingest { tap: s("tap-a") })
        );
        assert_eq!(
            parse(&p, "build:b-c"),
            Some(Task::Build { plugin: s("b-c") })
        );
        assert_eq!(
            parse(&p, "catalog:tap-a-b"),
            Some(Task::Catalog { tap: s("tap-a-b") })
        );
        // Hyphens in names: `tap-a-b-c` is tap-a + b-c or tap-a-b + c; the first configured tap wins.
        assert_eq!(
            parse(&p, "reservoir:tap-a-b-c"),
            Some(Task::Replay {
                tap: s("tap-a"),
                target: s("b-c")
            })
        );
        assert_eq!(
            parse(&p, "reservoir:tap-a-b:c"),
            Some(Task::Replay {
                tap: s("tap-a-b"),
                target: s("c")
            })
        );
        assert_eq!(
            parse(&p, "state:tap-a-c"),
            Some(Task::State {
                tap: s("tap-a"),
                target: s("c")
            })
        );
        assert_eq!(parse(&p, "tap-x:c"), None);
        assert_eq!(parse(&p, "build:nope"), None);
    }
}
