//! Replay: a tap's reservoir into a target, from the position the target
//! last confirmed. Each stream's partitions go in ingest order, each
//! beginning with its SCHEMA; after each flush alto sends a STATE carrying the
//! new position, and commits a position only once the target echoes it.

use std::io::{BufRead, BufWriter, Write};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::Value;

use super::ReservoirError;
use super::index::{Index, Position, Unit};
use super::partition::{self, Encoding, Line};
use crate::eval::{CatalogInput, PipelineKind};
use crate::realize::{Options, Realizer};
use crate::run::provenance::{self, Provenance};
use crate::run::{self, Launched, Role, RunError, RunOptions, Session, StateStore};
use crate::store::Remote;

/// What `alto reservoir:TAP-TARGET` reports.
#[derive(Debug, serde::Serialize)]
pub struct ReplaySummary {
    pub pipeline: String,
    /// Partitions sent to the target.
    pub partitions: usize,
    /// Messages sent (confirmed ones inside compacted partitions are not).
    pub records: u64,
    pub commits: usize,
    pub seconds: f64,
    pub position: Value,
    /// Nothing was new: the target was not started.
    pub nothing_new: bool,
    /// Records sent per stream.
    #[serde(skip)]
    pub streams: std::collections::BTreeMap<String, u64>,
}

/// The name replay positions are kept under: `<tap>-reservoir-to-<target>`.
pub fn position_owner(tap: &str) -> String {
    format!("{tap}-reservoir")
}

/// `--replay-changed`: the position to replay from so that everything the
/// target loaded under another derivation of it goes again — the start,
/// when the position was confirmed under another one (or under none
/// recorded); the position itself when the current one confirmed it.
fn since_changed(
    realizer: &Realizer,
    store: &StateStore,
    target: &crate::config::Plugin,
    confirmed: Position,
) -> Result<Position, ReservoirError> {
    let now = realizer
        .derivations(std::slice::from_ref(&target.name))
        .map_err(RunError::from)?
        .into_iter()
        .find(|d| d.plugins.contains(&target.name))
        .map(|d| d.key);
    let then = store.provenance()?.and_then(|p| {
        p.derivation
            .steps
            .into_iter()
            .find(|s| s.role == "target")
            .map(|s| s.key)
    });
    if then.is_some() && then == now {
        tracing::info!(
            "{}: its position was confirmed by the same build of it; nothing loaded under another to replay (--replay-changed)",
            target.name
        );
        return Ok(confirmed);
    }
    tracing::info!(
        "{}: {}; replaying from the start what it loaded (--replay-changed)",
        target.name,
        match &then {
            Some(k) => format!("its position was confirmed by build {k}, not the current one"),
            None => "its position has no provenance record".to_string(),
        }
    );
    Ok(Position::default())
}

/// The confirmed position of a target, from its file (or the original's).
pub fn read_position(
    remote: &Remote,
    env: &str,
    tap: &str,
    target: &str,
    index: &Index,
) -> Result<Position, ReservoirError> {
    let owner = position_owner(tap);
    let (_, saved) = StateStore::open(remote, env, &owner, target)?;
    if saved.is_empty() {
        return original_position(remote, env, tap, target, index);
    }
    Position::from_state(&saved).ok_or_else(|| ReservoirError::BadPosition {
        path: remote.describe_project_file(&StateStore::rel(env, &owner, target)),
        message: format!(
            "it has no `{}` with stream positions",
            super::index::POSITION_KEY
        ),
    })
}

/// The original's replay state, `state/<env>/reservoir-<tap without
/// "tap-">-to-<target>.json` naming the last file emitted per stream, mapped
/// onto the flushes of the index read from its `_reservoir.json`.
fn original_position(
    remote: &Remote,
    env: &str,
    tap: &str,
    target: &str,
    index: &Index,
) -> Result<Position, ReservoirError> {
    let short = tap.strip_prefix("tap-").unwrap_or(tap);
    let mut envs = vec![env];
    if env == "dev" {
        envs.push("DEVELOPMENT");
    }
    for e in envs {
        let rel = format!("state/{e}/reservoir-{short}-to-{target}.json");
        let Some(v) = remote.read_project_file(&rel)? else {
            continue;
        };
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&v.bytes) else {
            tracing::warn!(
                "{} is not a JSON object; ignored",
                remote.describe_project_file(&rel)
            );
            continue;
        };
        let mut pos = Position::default();
        for (stream, v) in m {
            let Some(emitted) = v.get("emitted").and_then(Value::as_str) else {
                continue;
            };
            match index
                .partitions
                .iter()
                .find(|p| p.stream == stream && p.path.rsplit('/').next() == Some(emitted))
            {
                Some(p) => {
                    pos.streams.insert(stream, p.last_seq());
                }
                None => tracing::warn!(
                    "the original's replay state names {emitted} for {stream}, which the index does not hold; {stream} is replayed from its start"
                ),
            }
        }
        tracing::info!(
            "continuing from the original alto's replay state {}",
            remote.describe_project_file(&rel)
        );
        return Ok(pos);
    }
    Ok(Position::default())
}

/// A STATE message spelled as singer-python spells it (`{"type": "STATE", ...}`),
/// for targets that look for that text rather than parse.
fn state_line(tap: &str, pos: &Position) -> Vec<u8> {
    let value = serde_json::to_string(&Value::Object(pos.to_state(tap))).unwrap_or_default();
    format!("{{\"type\": \"STATE\", \"value\": {value}}}\n").into_bytes()
}

/// The sending side: partitions into the target's stdin.
struct Sender {
    remote: Arc<Remote>,
    env: String,
    tap: String,
    sent: Position,
    partitions: usize,
    records: u64,
    streams: std::collections::BTreeMap<String, u64>,
}

enum SendError {
    /// The target stopped reading; its exit status tells why.
    Closed,
    Reservoir(ReservoirError),
}

impl From<std::io::Error> for SendError {
    fn from(_: std::io::Error) -> SendError {
        SendError::Closed
    }
}

impl Sender {
    fn run(&mut self, mut units: Vec<Unit>, out: &mut impl Write) -> Result<(), SendError> {
        let mut reloads = 0;
        let mut i = 0;
        while i < units.len() {
            let unit = &units[i];
            let Some(bytes) = unit
                .partition
                .fetch(&self.remote)
                .map_err(SendError::Reservoir)?
            else {
                // Compacted away since the index was read: the new index holds
                // the same flushes, and the position is valid against it.
                reloads += 1;
                if reloads > 5 {
                    return Err(SendError::Reservoir(unit.partition.missing(&self.remote)));
                }
                let loaded = Index::load(&self.remote, &self.env, &self.tap)
                    .map_err(SendError::Reservoir)?;
                units = loaded.index.pending(&self.sent);
                i = 0;
                continue;
            };
            self.send(unit, &bytes, out)?;
            self.partitions += 1;
            i += 1;
        }
        out.flush()?;
        Ok(())
    }

    fn send(&mut self, unit: &Unit, bytes: &[u8], out: &mut impl Write) -> Result<(), SendError> {
        let p = &unit.partition;
        let damaged = |e: std::io::Error| {
            SendError::Reservoir(ReservoirError::Damaged {
                path: p.path.clone(),
                reason: e.to_string(),
            })
        };
        if unit.skip == 0 && unit.parts.len() == 1 && p.encoding == Encoding::Zstd {
            // The common case: alto's own partition, verified, sent whole.
            let mut r = partition::decoder(p.encoding, bytes).map_err(damaged)?;
            let mut n = 0u64;
            loop {
                let buf = r.fill_buf().map_err(damaged)?;
                if buf.is_empty() {
                    break;
                }
                n += memchr::memchr_iter(b'\n', buf).count() as u64;
                out.write_all(buf)?;
                let len = buf.len();
                r.consume(len);
            }
            self.records += n.saturating_sub(1);
            *self.streams.entry(p.stream.clone()).or_default() += n.saturating_sub(1);
            self.sent
                .streams
                .insert(p.stream.clone(), unit.parts[0].seq);
            out.write_all(&state_line(&self.tap, &self.sent))?;
            return Ok(());
        }
        let mut skipped = 0u64;
        let mut part = 0usize;
        let mut in_part = 0u64;
        let mut schema_sent = false;
        let mut write_err = None;
        let tap = self.tap.clone();
        let stream = p.stream.clone();
        let mut sent_records = 0u64;
        let sent = &mut self.sent;
        partition::for_each_line(p.encoding, bytes, |line| {
            let mut emit = |data: &[u8]| -> std::io::Result<()> {
                out.write_all(data)?;
                out.write_all(b"\n")
            };
            let r = match line {
                Line::Skip => Ok(()),
                Line::Schema(s) => {
                    if schema_sent {
                        Ok(())
                    } else {
                        schema_sent = true;
                        emit(s)
                    }
                }
                Line::Message(m) => {
                    if skipped < unit.skip {
                        skipped += 1;
                        return Ok(());
                    }
                    sent_records += 1;
                    let r = emit(m);
                    in_part += 1;
                    if let Some(cur) = unit.parts.get(part)
                        && cur.records == Some(in_part)
                        && part + 1 < unit.parts.len()
                    {
                        sent.streams.insert(stream.clone(), cur.seq);
                        part += 1;
                        in_part = 0;
                        r.and_then(|_| out.write_all(&state_line(&tap, sent)))
                    } else {
                        r
                    }
                }
            };
            if let Err(e) = r {
                write_err = Some(e);
                return Err(std::io::Error::other("stopped"));
            }
            Ok(())
        })
        .or_else(|e| if write_err.is_some() { Ok(()) } else { Err(e) })
        .map_err(damaged)?;
        if write_err.is_some() {
            return Err(SendError::Closed);
        }
        self.records += sent_records;
        *self.streams.entry(stream.clone()).or_default() += sent_records;
        if let Some(last) = unit.parts.last() {
            self.sent.streams.insert(stream, last.seq);
        }
        out.write_all(&state_line(&tap, &self.sent))?;
        Ok(())
    }
}

/// Runs `reservoir:TAP-TARGET` once.
pub fn run(
    realizer: &Realizer,
    tap_name: &str,
    target_name: &str,
    opts: &RunOptions,
    build: &Options,
) -> Result<ReplaySummary, ReservoirError> {
    let mut log = run::PendingLog::default();
    let result = run_logged(realizer, tap_name, target_name, opts, build, &mut log);
    match &result {
        Ok(s) => log.finish(0, None, Some(s.records), Some(s.commits)),
        Err(e) => log.finish(e.exit_code(), Some(e.to_string()), None, None),
    }
    result
}

fn run_logged(
    realizer: &Realizer,
    tap_name: &str,
    target_name: &str,
    opts: &RunOptions,
    build: &Options,
    log: &mut run::PendingLog,
) -> Result<ReplaySummary, ReservoirError> {
    let project = realizer.project;
    let tap = project.tap(tap_name)?;
    let target = project.target(target_name)?;
    let owner = position_owner(tap_name);
    let pipeline_name = format!("reservoir:{tap_name}:{target_name}");
    let session = Session::open(realizer, &format!("{owner}-to-{target_name}"), opts)?;
    let remote = session.remote.clone();
    let env = session.env.clone();

    let loaded = Index::load(&remote, &env, tap_name)?;
    let (mut store, _) = StateStore::open(&remote, &env, &owner, target_name)?;
    let mut confirmed = if opts.full_refresh {
        tracing::info!("{pipeline_name}: full refresh, replaying everything");
        Position::default()
    } else {
        read_position(&remote, &env, tap_name, target_name, &loaded.index)?
    };
    if opts.replay_changed && !opts.full_refresh {
        confirmed = since_changed(realizer, &store, target, confirmed)?;
    }
    let units = loaded.index.pending(&confirmed);
    // PII guard: a flush ingested without a hash rule the tap has now would
    // send the field in clear.
    let unhashed = loaded
        .index
        .unhashed(&units, &crate::eval::pipeline::hash_rules_of(tap));
    if !unhashed.is_empty() {
        let rules: Vec<&str> = unhashed.iter().map(|(r, _)| r.as_str()).collect();
        let mut paths: Vec<&str> = unhashed
            .iter()
            .flat_map(|(_, ps)| ps.iter().map(String::as_str))
            .collect();
        paths.sort();
        paths.dedup();
        if opts.allow_unhashed {
            tracing::warn!(
                "{pipeline_name}: replaying {} partitions ingested without {} (--allow-unhashed)",
                paths.len(),
                rules.join(", ")
            );
        } else {
            return Err(ReservoirError::Unhashed {
                tap: tap_name.to_string(),
                rules: rules.join(", "),
                partitions: paths.join(", "),
            });
        }
    }
    if units.is_empty() {
        tracing::info!("{pipeline_name}: nothing new to replay; {target_name} not started");
        return Ok(ReplaySummary {
            pipeline: pipeline_name,
            partitions: 0,
            records: 0,
            commits: 0,
            seconds: session.start.elapsed().as_secs_f64(),
            position: Value::Object(confirmed.to_state(tap_name)),
            nothing_new: true,
            streams: Default::default(),
        });
    }

    let prepared = session.prepare(
        &[Role {
            plugin: target,
            for_tap: Some(tap_name),
        }],
        build,
    )?;
    log.set(
        &prepared.log,
        &session.remote,
        &session.env,
        &prepared.redactor,
        session.start,
    );
    let drv = provenance::of_run(
        project,
        PipelineKind::Replay,
        tap,
        &[target],
        &prepared.derivs,
        CatalogInput::None,
    )?;
    provenance::note_changes(&store, &drv, &pipeline_name)?;
    let loaded_by = store
        .provenance()?
        .and_then(|p| p.derivation.steps.into_iter().next());
    if let (Some(old), Some(new)) = (loaded_by, drv.steps.first())
        && old.key != new.key
        && !opts.replay_changed
    {
        tracing::info!(
            "{pipeline_name}: `--replay-changed` replays what {target_name} loaded under its old build"
        );
    }
    store.set_provenance(Provenance::new(&drv, prepared.log.run_id()));
    let Launched {
        mut process,
        tail,
        pump,
        ..
    } = session.launch(&prepared, 0, &[], Stdio::piped())?;
    let stdin = process.child().stdin.take();
    let mut sender = Sender {
        remote: remote.clone(),
        env: env.clone(),
        tap: tap_name.to_string(),
        sent: confirmed.clone(),
        partitions: 0,
        records: 0,
        streams: Default::default(),
    };
    let writer = std::thread::spawn(move || {
        let r = match stdin {
            Some(s) => {
                run::widen_pipe(&s);
                let mut out = BufWriter::with_capacity(1 << 16, s);
                sender.run(units, &mut out)
            }
            None => Err(SendError::Closed),
        };
        (sender, r)
    });

    let mut read = run::Confirmations::default();
    if let Some(out) = process.child().stdout.take() {
        read = run::read_confirmations(
            out,
            target_name,
            &prepared.redactor,
            &prepared.log,
            &mut confirmed,
            |confirmed, m| Position::from_state(&m).is_some_and(|p| confirmed.advance(&p)),
            |confirmed| {
                if session.licensed() {
                    store.commit(&confirmed.to_state(tap_name))
                } else {
                    Ok(())
                }
            },
        );
    }
    let status = process.wait().map_err(|source| RunError::Io {
        action: "cannot wait for",
        path: target_name.into(),
        source,
    })?;
    let (sender, sent) = match writer.join() {
        Ok(r) => r,
        Err(_) => {
            return Err(RunError::Io {
                action: "cannot replay into",
                path: target_name.into(),
                source: std::io::Error::other("the sending thread panicked"),
            }
            .into());
        }
    };
    if let Some(p) = pump {
        let _ = p.join();
    }
    if let Some(e) = read.error {
        return Err(e.into());
    }
    let mut commits = read.commits;
    if read.dirty && session.licensed() {
        store.commit(&confirmed.to_state(tap_name))?;
        commits += 1;
    }
    if commits > 0 && session.licensed() {
        store.keep_history(&confirmed.to_state(tap_name))?;
    }
    if let Some(e) = session.stopped() {
        return Err(e.into());
    }
    if let Err(SendError::Reservoir(e)) = sent {
        return Err(e);
    }
    if !status.success() {
        return Err(run::plugin_failed(target_name, &status, &prepared.log.path, &tail).into());
    }
    if let Err(SendError::Closed) = sent {
        return Err(RunError::Io {
            action: "cannot replay into",
            path: target_name.into(),
            source: std::io::Error::other("it stopped reading its input"),
        }
        .into());
    }
    if confirmed != sender.sent {
        tracing::warn!(
            "{target_name} did not confirm everything it was sent; the next replay sends the rest again"
        );
    }
    Ok(ReplaySummary {
        pipeline: pipeline_name,
        partitions: sender.partitions,
        records: sender.records,
        commits,
        seconds: session.start.elapsed().as_secs_f64(),
        position: Value::Object(confirmed.to_state(tap_name)),
        nothing_new: false,
        streams: sender.streams,
    })
}
