//! `alto invoke [python] PLUGIN [ARGS]`: a plugin (or its Python) run with its environment.

use super::{Error, ExitStatus, Global};
use crate::config::Project;
use crate::realize::{self, Options, Realizer};

/// `alto invoke [python] PLUGIN [ARGS...]`; the plugin's exit code is alto's.
pub fn invoke(g: &Global, project: &Project, args: &[String]) -> Result<ExitStatus, Error> {
    let (interpreter, name, rest) = match args {
        [first, second, rest @ ..] if first == "python" && project.plugin(second).is_ok() => {
            (true, second, rest)
        }
        [first, rest @ ..] => (false, first, rest),
        [] => {
            return Err(Error::UnknownCommand {
                name: String::new(),
            });
        }
    };
    let plugin = project.plugin(name)?;
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(std::slice::from_ref(name))?;
    let Some(d) = derivs.first() else {
        return Err(Error::NothingToRun {
            plugin: name.clone(),
        });
    };
    let opts = Options {
        jobs: 1,
        repair: false,
        progress: g.printer().progress(),
        ..Default::default()
    };
    if let Some(e) = realizer
        .realize(&derivs, &opts)
        .into_iter()
        .next()
        .and_then(|o| o.error)
    {
        return Err(e.into());
    }
    let mut cmd = realizer.command(plugin, d, interpreter)?;
    cmd.args(rest);
    let program = std::path::PathBuf::from(cmd.get_program());
    let status = cmd
        .status()
        .map_err(|source| realize::RealizeError::Spawn { program, source })?;
    Ok(ExitStatus::External(exit_code(status)))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return c.clamp(0, 255) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (128 + sig).clamp(0, 255) as u8;
        }
    }
    1
}
