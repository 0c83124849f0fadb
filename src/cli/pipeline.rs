//! `alto run` and the task names `tap:target`, `catalog:tap`, `state:tap-target`;
//! `alto state`, `alto clean`, `alto catalog`, `alto select`, `alto test`, `alto about`.

use std::io::{BufRead, BufReader, IsTerminal};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::output::{out, print_json};
use super::task::{self, Task};
use super::{Error, Global};
use crate::config::Project;
use crate::pipeline;
use crate::realize::{Options, Realizer};
use crate::reservoir;
use crate::run::{self, RunDir, RunError, RunOptions, StateStore};
use crate::singer::{catalog, state};

fn build_options(g: &Global) -> Options {
    Options {
        jobs: 2,
        repair: false,
        progress: !g.json && std::io::stderr().is_terminal() && g.quiet == 0,
        ..Default::default()
    }
}

/// A `TAP:TARGET` (or `tap-target`) pair of configured names.
pub fn pair(project: &Project, name: &str) -> Result<(String, String), Error> {
    let parsed =
        task::parse(project, name).or_else(|| task::parse(project, &format!("state:{name}")));
    match parsed {
        Some(Task::Run {
            tap,
            mappers,
            target,
        }) if mappers.is_empty() => Ok((tap, target)),
        Some(Task::State { tap, target }) => Ok((tap, target)),
        _ => Err(Error::UnknownTask {
            name: name.to_string(),
            environment: project.environment.clone(),
        }),
    }
}

/// Runs pipelines (`tap:target`, `tap:reservoir`, `reservoir:tap-target`),
/// one after another, or `jobs` at once.
pub fn run(
    g: &Global,
    project: &Project,
    names: &[String],
    opts: &RunOptions,
    jobs: usize,
) -> Result<u8, Error> {
    let mut tasks = Vec::new();
    for n in names {
        match task::parse(project, n) {
            Some(t @ (Task::Run { .. } | Task::Ingest { .. } | Task::Replay { .. })) => {
                tasks.push(t)
            }
            _ => {
                return Err(Error::UnknownTask {
                    name: n.clone(),
                    environment: project.environment.clone(),
                });
            }
        }
    }
    let realizer = Realizer::new(project)?;
    let build = build_options(g);
    type Outcome = Result<(String, Value), Error>;
    let results: std::sync::Mutex<Vec<(usize, Outcome)>> = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let one = |t: &Task| -> Outcome {
        match t {
            Task::Run {
                tap,
                mappers,
                target,
            } => {
                let s = pipeline::run(&realizer, tap, mappers, target, opts, &build)?;
                Ok((
                    format!(
                        "{}: done in {:.2}s, {} state commits",
                        s.pipeline, s.seconds, s.state_commits
                    ),
                    serde_json::to_value(&s).unwrap_or_default(),
                ))
            }
            Task::Ingest { tap } => {
                let s = reservoir::ingest::run(&realizer, tap, opts, &build)?;
                Ok((
                    format!(
                        "{}: {} records into {} partitions ({} stored, {} raw), {} commits in {:.2}s{}",
                        s.pipeline,
                        s.stats.records,
                        s.stats.partitions,
                        human_bytes(s.stats.bytes),
                        human_bytes(s.stats.raw_bytes),
                        s.stats.commits,
                        s.seconds,
                        if s.stats.skipped_lines > 0 {
                            format!("; {} lines skipped", s.stats.skipped_lines)
                        } else {
                            String::new()
                        }
                    ),
                    serde_json::to_value(&s).unwrap_or_default(),
                ))
            }
            Task::Replay { tap, target } => {
                let s = reservoir::replay::run(&realizer, tap, target, opts, &build)?;
                let text = if s.nothing_new {
                    format!(
                        "{}: nothing new to replay; {target} not started",
                        s.pipeline
                    )
                } else {
                    format!(
                        "{}: {} partitions, {} records, {} position commits in {:.2}s",
                        s.pipeline, s.partitions, s.records, s.commits, s.seconds
                    )
                };
                Ok((text, serde_json::to_value(&s).unwrap_or_default()))
            }
            _ => Err(Error::UnknownTask {
                name: t.to_string(),
                environment: project.environment.clone(),
            }),
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(tasks.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(t) = tasks.get(i) else {
                        break;
                    };
                    let r = one(t);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut first_error = None;
    let mut summaries = Vec::new();
    for (_, r) in results {
        match r {
            Ok((text, json)) => {
                if !g.json && g.quiet == 0 {
                    eprintln!("{text}");
                }
                summaries.push(json);
            }
            Err(e) => {
                if first_error.is_some() {
                    tracing::error!("{e}");
                } else {
                    first_error = Some(e);
                }
            }
        }
    }
    if g.json {
        print_json(&json!({"pipelines": summaries}));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 10 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 10 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

pub fn state_show(project: &Project, name: &str) -> Result<(), Error> {
    // `TAP:reservoir`: the tap's state as the reservoir's index holds it;
    // `reservoir:TAP-TARGET`: the target's replay position.
    match task::parse(project, name) {
        Some(Task::Ingest { tap }) => {
            let remote = Realizer::new(project)?.remote()?;
            let loaded = reservoir::Index::load(&remote, &project.environment, &tap)?;
            print_json(&Value::Object(loaded.index.state));
            return Ok(());
        }
        Some(Task::Replay { tap, target }) => {
            let remote = Realizer::new(project)?.remote()?;
            let loaded = reservoir::Index::load(&remote, &project.environment, &tap)?;
            let pos = reservoir::replay::read_position(
                &remote,
                &project.environment,
                &tap,
                &target,
                &loaded.index,
            )?;
            print_json(&Value::Object(pos.to_state(&tap)));
            return Ok(());
        }
        _ => {}
    }
    let (tap, target) = pair(project, name)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let (_, state) = StateStore::open(&remote, &project.environment, &tap, &target)?;
    print_json(&Value::Object(state));
    Ok(())
}

pub fn state_set(project: &Project, name: &str, file: &std::path::Path) -> Result<(), Error> {
    let (tap, target) = pair(project, name)?;
    let bytes = std::fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let new = state::parse_file(&bytes).map_err(|e| RunError::BadState {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let _lock = run::PipelineLock::acquire(
        remote.clone(),
        &project.environment,
        &format!("{tap}-to-{target}"),
        false,
    )?;
    let (mut store, _) = StateStore::open(&remote, &project.environment, &tap, &target)?;
    store.replace(&new)?;
    store.keep_history(&new)?;
    eprintln!("state of {tap}:{target} replaced");
    Ok(())
}

pub fn clean(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    if let Some(tap_name) = name.strip_prefix("catalog:") {
        let tap = project.tap(tap_name)?;
        let derivs = run::realize_plugins(
            &realizer,
            &[tap],
            &Options {
                jobs: 1,
                repair: false,
                progress: false,
                ..Default::default()
            },
        )?;
        crate::realize::catalog::clean(&realizer, tap, &derivs[0])?;
        eprintln!("the base catalog of {tap_name} is forgotten; the next run discovers again");
        return Ok(());
    }
    match task::parse(project, name) {
        Some(Task::Ingest { tap }) => {
            return reservoir_compact(g, project, &tap, false);
        }
        Some(Task::Replay { tap, target }) => {
            let remote = realizer.remote()?;
            reservoir::compact::clear_position(&remote, &project.environment, &tap, &target)?;
            eprintln!(
                "the replay position of {target} in {tap}'s reservoir is dropped; the next replay sends everything"
            );
            return Ok(());
        }
        _ => {}
    }
    let (tap, target) = pair(project, name)?;
    let remote = realizer.remote()?;
    let (store, _) = StateStore::open(&remote, &project.environment, &tap, &target)?;
    store.clear()?;
    eprintln!("the state of {tap}:{target} is dropped (its history stays)");
    Ok(())
}

/// Reads a JSON file given on the command line, with a diagnostic on error.
fn read_json(path: &std::path::Path) -> Result<Value, Error> {
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
            src: miette::NamedSource::new(path.display().to_string(), text.clone()),
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
fn with_base_catalog<T>(
    g: &Global,
    project: &Project,
    tap_name: &str,
    f: impl FnOnce(&crate::config::Plugin, &Value) -> Result<T, Error>,
) -> Result<T, Error> {
    let tap = project.tap(tap_name)?;
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
        if g.json {
            print_json(&Value::Array(
                rows.iter()
                    .map(|r| json!({"stream": r.stream, "field": r.field, "inclusion": r.inclusion, "selected": r.selected}))
                    .collect(),
            ));
            return Ok(());
        }
        let mut text = format!("{} select rules: {}\n", tap.name, tap.select().join(", "));
        for r in rows {
            let mark = match (r.selected, r.inclusion.as_str()) {
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

/// `alto test TAP`: the tap's `--test` if it has the capability, else the
/// first RECORD within a timeout.
pub fn test(g: &Global, project: &Project, tap_name: &str, timeout: Duration) -> Result<u8, Error> {
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
        return Ok(if status.success() { 0 } else { 1 });
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
            if let Ok(head) = serde_json::from_str::<crate::singer::message::Head>(&line)
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
        Ok(0)
    } else {
        eprintln!("{tap_name}: no record within {}s", timeout.as_secs());
        Ok(1)
    }
}

pub fn about(g: &Global, project: &Project, tap_name: &str) -> Result<u8, Error> {
    let tap = project.plugin(tap_name)?;
    let realizer = Realizer::new(project)?;
    let derivs = run::realize_plugins(&realizer, &[tap], &build_options(g))?;
    let dir = RunDir::new(project)?;
    let config = dir.write_json("config.json", &project.render_config(tap_name, None)?.value)?;
    let mut cmd = realizer.command(tap, &derivs[0], false)?;
    cmd.arg("--about").arg("--config").arg(&config);
    if g.json {
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
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

/// `alto reservoir ls TAP`.
pub fn reservoir_ls(g: &Global, project: &Project, tap: &str) -> Result<(), Error> {
    project.tap(tap)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let targets: Vec<String> = project.targets.keys().cloned().collect();
    let l = reservoir::compact::ls(&remote, &project.environment, tap, &targets)?;
    if g.json {
        print_json(&serde_json::to_value(&l).unwrap_or_default());
        return Ok(());
    }
    let mut text = format!(
        "{} ({}){}\n",
        l.index,
        l.updated,
        if l.original {
            ", the original alto's"
        } else {
            ""
        }
    );
    for s in &l.streams {
        text.push_str(&format!(
            "{}: {} partitions, {} records, {} ({} raw)\n",
            s.stream,
            s.partitions,
            s.records,
            human_bytes(s.bytes),
            human_bytes(s.raw_bytes)
        ));
        for gr in &s.groups {
            text.push_str(&format!(
                "  schema {}: {} partitions, {} records, {}\n",
                gr.schema_id,
                gr.partitions,
                gr.records,
                human_bytes(gr.bytes)
            ));
        }
    }
    text.push_str(&format!(
        "total: {} partitions, {} records, {} ({} raw)\n",
        l.partitions,
        l.records,
        human_bytes(l.bytes),
        human_bytes(l.raw_bytes)
    ));
    for t in &l.targets {
        if !t.position.is_empty() || t.pending < l.partitions {
            text.push_str(&format!(
                "{}: {} partitions to replay\n",
                t.target, t.pending
            ));
        }
    }
    out(&text);
    Ok(())
}

/// `alto reservoir compact TAP` (and the original's `alto clean TAP:reservoir`).
pub fn reservoir_compact(
    g: &Global,
    project: &Project,
    tap: &str,
    wait: bool,
) -> Result<(), Error> {
    project.tap(tap)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let opts = reservoir::compact::CompactOptions {
        wait,
        ..Default::default()
    };
    let s = reservoir::compact::compact(&remote, &project.environment, tap, &opts)?;
    if g.json {
        print_json(&serde_json::to_value(&s).unwrap_or_default());
    } else if g.quiet == 0 {
        eprintln!(
            "{tap}: {} partitions merged into {}, {} unindexed partitions removed; {} -> {}",
            s.merged,
            s.written,
            s.orphans_removed,
            human_bytes(s.bytes_before),
            human_bytes(s.bytes_after)
        );
    }
    Ok(())
}
