//! `alto show PLUGIN`: a plugin's derivation, its inputs and where its
//! output is; `alto show TAP:TARGET` (or any pipeline task): the pipeline's
//! derivation, input by input.

use super::build::{derivation_json, describe_derivation};
use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::config::task::Task;
use crate::eval::{CatalogInput, PipelineDerivation};
use crate::realize::Realizer;
use serde_json::{Value, json};

/// A pipeline derivation as `--json` prints it.
pub(super) fn pipeline_json(name: &str, d: &PipelineDerivation) -> Value {
    json!({"kind": "pipeline", "pipeline": name, "key": d.key, "inputs": d.inputs(), "derivation": d})
}

/// A pipeline derivation, input by input.
pub(super) fn describe_pipeline(name: &str, d: &PipelineDerivation) -> String {
    let key = d
        .key
        .as_ref()
        .map(|k| k.to_string())
        .unwrap_or_else(|| "(known once the tap's streams are discovered)".into());
    let mut s = format!("{name}  {key}\n");
    s.push_str(&format!(
        "  pipeline  {}\n",
        json!(d.kind).as_str().unwrap_or("")
    ));
    for step in &d.steps {
        s.push_str(&format!(
            "  {:<9} {} {} ({})\n",
            step.role, step.name, step.key, step.pip_url
        ));
        s.push_str(&format!(
            "            config {} (secrets left out)\n",
            &step.config[..16.min(step.config.len())]
        ));
    }
    s.push_str(&match &d.catalog {
        CatalogInput::None => "  catalog   none\n".to_string(),
        CatalogInput::Runtime(h) => format!(
            "  catalog   {} (runtime: select and metadata rules applied)\n",
            &h[..16.min(h.len())]
        ),
        CatalogInput::Unknown => {
            "  catalog   not discovered yet (`alto build --catalogs` discovers it)\n".to_string()
        }
    });
    s.push_str(&format!(
        "  hash      {}\n",
        if d.hash_rules.is_empty() {
            "no rules".to_string()
        } else {
            d.hash_rules.join(", ")
        }
    ));
    s
}

pub fn show(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
    if name.contains(':')
        && let Some(task @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. })) =
            crate::config::task::parse(project, name)
    {
        let realizer = Realizer::new(project)?;
        let d = crate::run::provenance::evaluate(&realizer, &task, false)?;
        if g.printer().json() {
            print_json(&pipeline_json(&task.to_string(), &d));
        } else {
            out(&describe_pipeline(&task.to_string(), &d));
        }
        return Ok(());
    }
    let plugin = project.plugin(name)?;
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(&[name.to_string()])?;
    let entry = crate::eval::entry(project, plugin)?;
    let Some(d) = derivs.first() else {
        if g.printer().json() {
            print_json(&json!({"plugin": name, "derivation": null}));
        } else {
            out(&format!("{name} has no pip_url: nothing to build\n"));
        }
        return Ok(());
    };
    let avail = realizer.availability(&derivs, false)?[0];
    // Where it runs from, once realized and prepared.
    let venv = realizer.local.venv(&d.key);
    if g.printer().json() {
        let mut v = derivation_json(d, avail);
        v["entry"] = json!(entry);
        v["path"] = json!(realizer.local.data_path(&d.key));
        v["venv"] = json!(venv);
        print_json(&v);
    } else {
        out(&describe_derivation(d, avail));
        out(&match entry {
            crate::eval::Entry::Script(s) => format!("  entry     script {s} (PEX_SCRIPT)\n"),
            crate::eval::Entry::Module(m) => format!("  entry     module {m} (PEX_MODULE)\n"),
        });
        out(&format!(
            "  path      {}\n",
            realizer.local.data_path(&d.key).display()
        ));
        out(&match venv {
            Some(v) => format!("  venv      {}\n", v.display()),
            None => "  venv      none yet (made when it is realized)\n".to_string(),
        });
    }
    Ok(())
}
