//! `alto test TAP`: the tap's `--test`, else a first record within a timeout.

use super::run::build_options;
use super::{Error, ExitStatus, Global};
use crate::config::Project;
use crate::realize::Realizer;
use crate::run::{self, RunDir, RunError};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `alto test TAP`: the tap's `--test` if it has the capability, else the
/// first RECORD within a timeout.
pub fn test(
    g: &Global,
    project: &Project,
    tap_name: &str,
    timeout: Duration,
) -> Result<ExitStatus, Error> {
    let tap = project.tap(tap_name)?;
    let realizer = Realizer::new(project)?;
    let derivs = run::realize_plugins(&realizer, &[tap], &build_options(g))?;
    let dir = RunDir::new(project)?;
    let config = dir.write_json("tap.json", &project.render_config(tap_name, None)?.value)?;
    let mut cmd = realizer.command(tap, &derivs[0], false)?;
    cmd.arg("--config").arg(&config);
    let _aware = crate::interrupt::Aware::new();
    let spawn_err = |e: RunError| -> Error { e.into() };
    if tap.has_capability("test") {
        cmd.arg("--test");
        let mut p = run::spawn(&mut cmd).map_err(spawn_err)?;
        let status = p.wait().map_err(|e| Error::Read {
            path: tap_name.into(),
            source: e,
        })?;
        if let Some(signal) = crate::interrupt::signal() {
            return Err(Error::Interrupted { signal });
        }
        return Ok(if status.success() {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        });
    }
    if tap.has_capability("catalog") || tap.has_capability("properties") {
        let catalog = run::runtime_catalog(&realizer, tap, &derivs[0], &config)?;
        let path = dir.write_json("catalog.json", &catalog)?;
        cmd.arg(if tap.has_capability("catalog") {
            "--catalog"
        } else {
            "--properties"
        })
        .arg(path);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut p = run::spawn(&mut cmd).map_err(spawn_err)?;
    let stdout = p.child().stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(head) = crate::singer::message::head(line.as_bytes())
                && head.kind == "RECORD"
            {
                let _ = tx.send(true);
                return;
            }
        }
        let _ = tx.send(false);
    });
    let start = Instant::now();
    let got = rx.recv_timeout(timeout).unwrap_or(false);
    // Dropping the process stops the tap and whatever it started.
    drop(p);
    if let Some(signal) = crate::interrupt::signal() {
        return Err(Error::Interrupted { signal });
    }
    if got {
        eprintln!(
            "{tap_name}: a record arrived after {:.1}s; the connection works",
            start.elapsed().as_secs_f64()
        );
        Ok(ExitStatus::Success)
    } else {
        eprintln!("{tap_name}: no record within {}s", timeout.as_secs());
        Ok(ExitStatus::Failure)
    }
}
