//! `alto extract TAP`: the tap alone, its Singer messages on stdout, for a
//! loader that is not a Singer target (`alto.dlt` in the wheel); and
//! `--streams`, what it would extract (keys, replication) for that loader's
//! schema hints. Selection and stream checks happen here, before anything runs.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value, json};

use super::printer::{out, print_json};
use super::run::build_options;
use super::{Error, ExitStatus, Global};
use crate::config::Project;
use crate::pipeline;
use crate::realize::Realizer;
use crate::run::{self, RunOptions};
use crate::singer::catalog::{self, StreamInfo};

#[derive(Debug, Args, Clone)]
pub struct ExtractArgs {
    pub tap: String,
    /// The Singer state to start from (a state file; Meltano's
    /// `{"singer_state": ...}` works too). Nothing is committed: the state
    /// the tap sends is on stdout for the reader to keep.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Select these streams/fields instead of the tap's `select` rules
    /// (repeatable; `~` hash rules still apply). A stream the tap does not
    /// have is an error.
    #[arg(long, value_name = "PATTERN")]
    pub select: Vec<String>,
    /// Leave these streams/fields out (repeatable; added as `!` rules).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Print the selected streams (key properties, replication method and
    /// key, fields) and run nothing.
    #[arg(long)]
    pub streams: bool,
    /// Who reads the messages: the run's log and lock are `<TAP>-to-<NAME>`.
    #[arg(long, value_name = "NAME", default_value = "stdout")]
    pub name: String,
    /// Wait for a running extract of the same name instead of failing.
    #[arg(long)]
    pub wait: bool,
}

/// A `--select`/`--exclude` pattern naming no stream of the base catalog
/// fails, listing the streams there are.
fn check_patterns(tap: &str, base: &Value, patterns: &[String]) -> Result<(), Error> {
    let available: Vec<String> = catalog::stream_infos(base)
        .into_iter()
        .map(|s| s.tap_stream_id)
        .collect();
    let unknown: Vec<&str> = patterns
        .iter()
        .filter(|p| {
            !available
                .iter()
                .any(|s| catalog::pattern_names_stream(p, s))
        })
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::UnknownStreams {
        tap: tap.to_string(),
        names: unknown
            .iter()
            .map(|u| format!("`{u}`"))
            .collect::<Vec<_>>()
            .join(", "),
        available: if available.is_empty() {
            "none (its discovery found no stream)".into()
        } else {
            available.join(", ")
        },
    })
}

fn streams_text(infos: &[StreamInfo]) -> String {
    let width = infos.iter().map(|s| s.stream.len()).max().unwrap_or(0);
    let mut text = String::new();
    for s in infos {
        text.push_str(&format!(
            "{:width$}  {:11}  keys: {}  replication key: {}\n",
            s.stream,
            s.replication_method,
            if s.key_properties.is_empty() {
                "none".into()
            } else {
                s.key_properties.join(", ")
            },
            s.replication_key.as_deref().unwrap_or("none"),
        ));
    }
    text
}

pub fn extract(g: &Global, project: &mut Project, a: &ExtractArgs) -> Result<ExitStatus, Error> {
    if let Some(why) = crate::config::name::problem(&a.name) {
        return Err(Error::BadRunName {
            name: crate::config::name::shown(&a.name),
            why,
        });
    }
    // Bad input fails before the tap is realized or run.
    let state = match &a.state {
        Some(file) => super::state::read_state_file(file)?,
        None => Map::new(),
    };
    project.tap(&a.tap)?;
    if !a.select.is_empty() || !a.exclude.is_empty() {
        project.override_select(&a.tap, &a.select, &a.exclude)?;
    }
    let patterns: Vec<String> = a.select.iter().chain(&a.exclude).cloned().collect();
    let infos = super::catalog::with_base_catalog(g, project, &a.tap, |tap, base| {
        check_patterns(&tap.name, base, &patterns)?;
        Ok(catalog::stream_infos(&run::apply_rules(base, tap)?))
    })?;
    if a.streams {
        if g.printer().json() {
            print_json(&json!({"tap": a.tap, "streams": infos}));
        } else {
            out(&streams_text(&infos));
        }
        return Ok(ExitStatus::Success);
    }
    let realizer = Realizer::new(project)?;
    let opts = RunOptions {
        full_refresh: false,
        wait: a.wait,
        no_state_update: true,
        strict: g.strict,
        allow_unhashed: false,
        replay_changed: false,
    };
    let s = pipeline::extract(&realizer, &a.tap, &a.name, &state, &opts, &build_options(g))?;
    // stdout is the tap's: the summary goes to stderr.
    g.printer().status(&format!(
        "{}: done in {:.2}s{}",
        s.run,
        s.seconds,
        match &s.records {
            Some(r) => format!(", {} records", r.values().sum::<u64>()),
            None => String::new(),
        }
    ));
    Ok(ExitStatus::Success)
}
