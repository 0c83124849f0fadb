//! `alto show PLUGIN`: a plugin's derivation, its inputs and where its output is.

use super::build::{derivation_json, describe_derivation};
use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::Realizer;
use serde_json::json;

pub fn show(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
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
    if g.printer().json() {
        let mut v = derivation_json(d, avail);
        v["entry"] = json!(entry);
        v["path"] = json!(realizer.local.data_path(&d.key));
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
    }
    Ok(())
}
