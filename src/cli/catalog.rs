//! `alto catalog TAP`, `alto catalog apply` and `alto select TAP --list`: a tap's catalog and what its rules select.

use super::printer::{out, print_json};
use super::run::build_options;
use super::{Error, Global};
use crate::config::Project;
use crate::realize::Realizer;
use crate::run::{self, RunDir};
use crate::singer::catalog;
use serde_json::{Value, json};

/// Reads a JSON file given on the command line, with a diagnostic on error.
pub(super) fn read_json(path: &std::path::Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| {
        let offset = crate::config::source::offset_of(&text, e.line(), e.column())
            .min(text.len().saturating_sub(1));
        Error::BadJson {
            file: path.display().to_string(),
            message: e.to_string(),
            src: crate::config::source::snippet(&path.display().to_string(), text.as_str()),
            span: (offset, 1).into(),
        }
    })
}

pub fn catalog_apply(base: &std::path::Path, rules: &std::path::Path) -> Result<(), Error> {
    let base_v = read_json(base)?;
    let rules_v = read_json(rules)?;
    let rules = catalog::Rules::from_json(&rules_v).map_err(|e| Error::Catalog {
        file: rules.display().to_string(),
        message: e.to_string(),
    })?;
    let applied = catalog::apply(&base_v, &rules).map_err(|e| Error::Catalog {
        file: base.display().to_string(),
        message: e.to_string(),
    })?;
    for w in &applied.warnings {
        tracing::warn!("{w}");
    }
    print_json(&applied.catalog);
    Ok(())
}

/// Realizes the tap and its base catalog; runs `f` with them.
pub(super) fn with_base_catalog<T>(
    g: &Global,
    project: &Project,
    tap_name: &str,
    f: impl FnOnce(&crate::config::Plugin, &Value) -> Result<T, Error>,
) -> Result<T, Error> {
    let tap = project.tap(tap_name)?;
    // Discovery can take minutes: a signal stops it cleanly.
    let _aware = crate::interrupt::Aware::new();
    let realizer = Realizer::new(project)?;
    let derivs = run::realize_plugins(&realizer, &[tap], &build_options(g))?;
    let dir = RunDir::new(project)?;
    let config = dir.write_json("tap.json", &project.render_config(tap_name, None)?.value)?;
    let base = crate::realize::catalog::base_catalog(&realizer, tap, &derivs[0], &config)?;
    f(tap, &base)
}

pub fn catalog_show(g: &Global, project: &Project, tap: &str) -> Result<(), Error> {
    with_base_catalog(g, project, tap, |tap, base| {
        print_json(&run::apply_rules(base, tap)?);
        Ok(())
    })
}

pub fn select_list(g: &Global, project: &Project, tap: &str) -> Result<(), Error> {
    with_base_catalog(g, project, tap, |tap, base| {
        let rows = catalog::list(base, &tap.select()).map_err(|e| Error::Catalog {
            file: format!("the base catalog of {}", tap.name),
            message: e.to_string(),
        })?;
        if g.printer().json() {
            print_json(&Value::Array(
                rows.iter()
                    .map(|r| json!({"stream": r.stream, "field": r.field, "inclusion": r.inclusion, "selected": r.selected, "hashed": r.hashed}))
                    .collect(),
            ));
            return Ok(());
        }
        let mut text = format!("{} select rules: {}\n", tap.name, tap.select().join(", "));
        for r in rows {
            let mark = match (r.selected, r.inclusion.as_str()) {
                // Selected, its values hashed by a `~` rule.
                (true, _) if r.hashed => "[hashed   ]",
                (true, "automatic") => "[automatic]",
                (true, _) => "[selected ]",
                (false, "unsupported") => "[unsupported]",
                (false, _) => "[excluded ]",
            };
            if r.field.is_empty() {
                text.push_str(&format!("{mark} {}\n", r.stream));
            } else {
                text.push_str(&format!("{mark}     {}.{}\n", r.stream, r.field.join(".")));
            }
        }
        out(&text);
        Ok(())
    })
}
