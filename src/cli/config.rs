//! `alto config PLUGIN` and `alto dump`: the config a plugin receives, and the merged config.

use super::printer::print_json;
use super::{Error, Global};
use crate::config::{Project, Rendered};
use serde_json::Value;

fn shown(g: &Global, r: &Rendered) -> Value {
    if g.show_secrets {
        r.value.clone()
    } else {
        r.redacted()
    }
}

pub fn config(g: &Global, project: &Project, plugin: &str, tap: Option<&str>) -> Result<(), Error> {
    let rendered = project.render_config(plugin, tap)?;
    print_json(&shown(g, &rendered));
    Ok(())
}

pub fn dump(g: &Global, project: &Project, keys: &[String]) -> Result<(), Error> {
    let rendered = project.render_dump(keys)?;
    print_json(&shown(g, &rendered));
    Ok(())
}
