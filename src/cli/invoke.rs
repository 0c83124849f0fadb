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
    let realizer = Realizer::new(project)?;
    let mut cmd = command(g, &realizer, name, interpreter)?;
    cmd.args(rest);
    let program = std::path::PathBuf::from(cmd.get_program());
    let status = cmd
        .status()
        .map_err(|source| realize::RealizeError::Spawn { program, source })?;
    Ok(ExitStatus::External(exit_code(status)))
}

/// Runs a utility with `args` and its environment (`alto run UTILITY:COMMAND`);
/// its exit code. With `--json` its stdout goes to stderr: alto's stdout is
/// the summary.
pub(super) fn run_utility(
    g: &Global,
    realizer: &Realizer,
    name: &str,
    args: &[String],
) -> Result<u8, Error> {
    let mut cmd = command(g, realizer, name, false)?;
    cmd.args(args);
    if g.printer().json() {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            cmd.stdout(std::process::Stdio::from(fd));
        }
    }
    let program = std::path::PathBuf::from(cmd.get_program());
    let status = cmd
        .status()
        .map_err(|source| realize::RealizeError::Spawn { program, source })?;
    Ok(exit_code(status))
}

/// The realized plugin `name` as a command, its environment set.
fn command(
    g: &Global,
    realizer: &Realizer,
    name: &str,
    interpreter: bool,
) -> Result<std::process::Command, Error> {
    let plugin = realizer.project.plugin(name)?;
    let derivs = realizer.derivations(&[name.to_string()])?;
    let Some(d) = derivs.first() else {
        return Err(Error::NothingToRun {
            plugin: name.to_string(),
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
    Ok(realizer.command(plugin, d, interpreter)?)
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
