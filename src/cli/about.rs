//! `alto about PLUGIN`: the plugin's `--about`.

use super::run::build_options;
use super::{Error, ExitStatus, Global};
use crate::config::Project;
use crate::realize::Realizer;
use crate::run::{self, RunDir};

pub fn about(g: &Global, project: &Project, tap_name: &str) -> Result<ExitStatus, Error> {
    let tap = project.plugin(tap_name)?;
    let realizer = Realizer::new(project)?;
    let derivs = run::realize_plugins(&realizer, &[tap], &build_options(g))?;
    let dir = RunDir::new(project)?;
    let config = dir.write_json("config.json", &project.render_config(tap_name, None)?.value)?;
    let mut cmd = realizer.command(tap, &derivs[0], false)?;
    cmd.arg("--about").arg("--config").arg(&config);
    if g.printer().json() {
        cmd.args(["--format", "json"]);
    }
    let _aware = crate::interrupt::Aware::new();
    let mut p = run::spawn(&mut cmd)?;
    let status = p.wait().map_err(|e| Error::Read {
        path: tap_name.into(),
        source: e,
    })?;
    if let Some(signal) = crate::interrupt::signal() {
        return Err(Error::Interrupted { signal });
    }
    Ok(ExitStatus::External(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}
