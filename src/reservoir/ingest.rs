//! Ingest: a tap's output into partitions. The reading thread routes each
//! line to its stream's buffer (hash rules applied first); full buffers are
//! sealed and handed to workers that compress and upload them, through a
//! bounded queue. On a STATE (at most once per commit interval) and at the
//! end, every buffer is sealed, the uploads are awaited, and the index is
//! committed with the new partitions and that state together.

use std::collections::HashMap;
use std::io::BufReader;
use std::process::Stdio;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use object_store::UpdateVersion;
use serde_json::{Map, Value};

use super::ReservoirError;
use super::index::{self, Index, Part, Partition};
use super::partition::{self, Encoding};
use crate::eval::PipelineKind;
use crate::realize::{Options, Realizer};
use crate::run::provenance::{self, Provenance};
use crate::run::{
    self, Launched, Redactor, Role, RunError, RunLog, RunOptions, Session, StateStore,
};
use crate::singer::message::{self, Digests, StreamHasher};
use crate::singer::state;
use crate::store::Remote;

/// Tuning of an ingest.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Messages per partition (`reservoir_buffer_size`).
    pub records: u64,
    /// Uncompressed bytes per partition (`reservoir_buffer_bytes`).
    pub bytes: usize,
    /// All buffers together: past this the largest is sealed early.
    pub total_bytes: usize,
    pub level: i32,
    /// How often a STATE leads to a commit.
    pub commit_every: Duration,
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            records: 10_000,
            bytes: 16 << 20,
            total_bytes: 64 << 20,
            level: 1,
            commit_every: Duration::from_millis(1000),
            workers: 2,
        }
    }
}

struct StreamBuf {
    schema_id: String,
    schema_line: Arc<Vec<u8>>,
    body: Vec<u8>,
    /// Where each line of `body` ends (past its newline): the workers check
    /// lines without searching for them.
    ends: Vec<u32>,
    /// Lines already parsed whole on the reading thread: no need to check again.
    parsed: Vec<bool>,
    records: u64,
    /// Digests of hashed values in `body`, worked out when it is sealed.
    digests: Digests,
}

struct Job {
    ordinal: usize,
    stream: String,
    schema_id: String,
    schema_line: Arc<Vec<u8>>,
    body: Vec<u8>,
    ends: Vec<u32>,
    parsed: Vec<bool>,
    records: u64,
    path: String,
}

/// Partitions sealed since the last commit, filled in by the workers.
#[derive(Default)]
struct Pending {
    /// The ordinal of `slots[0]`.
    base: usize,
    slots: Vec<Option<Partition>>,
    error: Option<String>,
    /// Lines the workers found not to be JSON, with their stream.
    invalid: Vec<(String, String)>,
}

type Shared = Arc<(Mutex<Pending>, Condvar)>;

/// What an ingest did.
#[derive(Debug, Default, serde::Serialize)]
pub struct IngestStats {
    pub records: u64,
    pub partitions: usize,
    pub commits: usize,
    pub skipped_lines: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    /// RECORD messages per stream (lines found not to be JSON taken off).
    #[serde(skip)]
    pub streams: std::collections::BTreeMap<String, u64>,
}

/// The reservoir writer of one ingest.
pub struct Ingestor {
    remote: Arc<Remote>,
    tap: String,
    dir: String,
    index_rel: String,
    index: Index,
    version: Option<UpdateVersion>,
    state: Map<String, Value>,
    state_moved: bool,
    streams: HashMap<String, StreamBuf>,
    buffered: usize,
    hasher: Option<StreamHasher>,
    limits: Limits,
    run_id: String,
    ordinal: usize,
    uploaded_paths: Vec<String>,
    queue: Option<SyncSender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    shared: Shared,
    last_commit: Instant,
    line_no: u64,
    redactor: Redactor,
    log: Option<Arc<RunLog>>,
    /// A line the hash rules rewrote, and the digests it owes.
    out: Vec<u8>,
    digests: Digests,
    /// What this ingest's flushes record as their provenance.
    provenance: Option<(crate::eval::Key, super::index::IngestRecord)>,
    pub stats: IngestStats,
}

impl Ingestor {
    pub fn new(
        remote: Arc<Remote>,
        env: &str,
        tap: &str,
        select: &[String],
        limits: Limits,
        full_refresh: bool,
    ) -> Result<Ingestor, ReservoirError> {
        let loaded = Index::load(&remote, env, tap)?;
        let mut index = loaded.index;
        let state = if full_refresh {
            Map::new()
        } else {
            index.state.clone()
        };
        index.env = env.to_string();
        let shared: Shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let (tx, rx) = sync_channel::<Job>(limits.workers.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..limits.workers.max(1))
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                let remote = remote.clone();
                let level = limits.level;
                std::thread::spawn(move || worker(rx, shared, remote, level))
            })
            .collect();
        let run_id = blake3::hash(
            format!(
                "{}-{}-{}",
                crate::store::hostname(),
                std::process::id(),
                crate::store::local::unique()
            )
            .as_bytes(),
        )
        .to_hex()[..8]
            .to_string();
        Ok(Ingestor {
            dir: super::tap_dir(env, tap),
            index_rel: loaded.rel,
            remote,
            tap: tap.to_string(),
            index,
            version: loaded.version,
            state,
            state_moved: false,
            streams: HashMap::new(),
            buffered: 0,
            hasher: StreamHasher::new(select),
            limits,
            run_id,
            ordinal: 0,
            uploaded_paths: Vec::new(),
            queue: Some(tx),
            workers,
            shared,
            last_commit: Instant::now(),
            line_no: 0,
            redactor: Redactor::default(),
            log: None,
            out: Vec::new(),
            digests: Digests::default(),
            provenance: None,
            stats: IngestStats::default(),
        })
    }

    /// Records `p`'s pipeline key on every flush from now on, and its hash
    /// rules in the index.
    pub fn set_provenance(&mut self, p: &Provenance) {
        let tap = p.derivation.steps.first().map(|s| s.key.clone());
        self.provenance = tap.map(|tap| {
            (
                p.pipeline.clone(),
                super::index::IngestRecord {
                    hash_rules: p.derivation.hash_rules.clone(),
                    run: p.run.clone(),
                    tap,
                },
            )
        });
    }

    /// The state the tap starts from.
    pub fn state(&self) -> &Map<String, Value> {
        &self.state
    }

    fn with_log(&mut self, log: Arc<RunLog>, redactor: Redactor) {
        self.log = Some(log);
        self.redactor = redactor;
    }

    fn skip(&mut self, line: &[u8], why: &str) {
        self.stats.skipped_lines += 1;
        run::skipped_line(
            &self.tap,
            self.line_no,
            why,
            line,
            &self.redactor,
            self.log.as_deref(),
        );
    }

    /// Takes one line of the tap's output (without its newline). It is read
    /// as a Python target reads it (the last of duplicate keys wins), with
    /// the hash rules applied, the same way alto in a pipe does.
    pub fn line(&mut self, line: &[u8]) -> Result<(), ReservoirError> {
        self.line_no += 1;
        let line = partition::trim_newline(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        let result = self.message(line, &mut out);
        self.out = out;
        crate::singer::line::shrink(&mut self.out);
        result
    }

    fn message(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), ReservoirError> {
        out.clear();
        self.digests.clear();
        let read = match &mut self.hasher {
            Some(h) => h.apply_owing(line, out, &mut self.digests),
            None => message::head(line).map(|head| message::Applied {
                head,
                rewritten: false,
            }),
        };
        let applied = match read {
            Ok(a) => a,
            Err(why) => {
                self.skip(line, &why.to_string());
                return Ok(());
            }
        };
        let data: &[u8] = if applied.rewritten { out } else { line };
        let head = applied.head;
        match (&*head.kind, head.stream) {
            ("STATE", _) => {
                let msg: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                match msg.get("value") {
                    Some(Value::Object(m)) => {
                        state::merge(&mut self.state, m.clone());
                        self.state_moved = true;
                        if self.last_commit.elapsed() >= self.limits.commit_every {
                            self.commit()?;
                        }
                    }
                    _ => self.skip(line, "a STATE without an object value"),
                }
                Ok(())
            }
            ("SCHEMA", Some(stream)) => self.schema(stream.into_owned(), data),
            (kind, Some(stream)) => {
                // Checked on the way, or rewritten by alto: no need to check again.
                let parsed = head.checked || applied.rewritten;
                self.record(&stream, data, kind, parsed)
            }
            (_, None) => {
                self.skip(line, "a message without a stream");
                Ok(())
            }
        }
    }

    fn schema(&mut self, stream: String, line: &[u8]) -> Result<(), ReservoirError> {
        let stored = line.to_vec();
        let msg: Value = match serde_json::from_slice(&stored) {
            Ok(v) => v,
            Err(_) => {
                self.skip(line, "not a Singer message");
                return Ok(());
            }
        };
        let id = partition::schema_id(&msg);
        if let Some(buf) = self.streams.get(&stream)
            && buf.schema_id == id
        {
            return Ok(());
        }
        // A new schema group: what was buffered under the old one is sealed, never dropped.
        self.seal(&stream)?;
        self.streams.insert(
            stream,
            StreamBuf {
                schema_id: id,
                schema_line: Arc::new(stored),
                body: Vec::new(),
                ends: Vec::new(),
                parsed: Vec::new(),
                records: 0,
                digests: Digests::default(),
            },
        );
        Ok(())
    }

    fn record(
        &mut self,
        stream: &str,
        line: &[u8],
        kind: &str,
        parsed: bool,
    ) -> Result<(), ReservoirError> {
        let Some(buf) = self.streams.get_mut(stream) else {
            return Err(ReservoirError::RecordBeforeSchema {
                tap: self.tap.clone(),
                kind: kind.to_string(),
                stream: stream.to_string(),
                line: self.line_no,
            });
        };
        let data = line;
        // A rewritten line's digests are owed to the body from where it lands.
        self.digests.move_into(&mut buf.digests, buf.body.len());
        buf.body.extend_from_slice(data);
        buf.body.push(b'\n');
        buf.ends.push(buf.body.len() as u32);
        buf.parsed.push(parsed);
        buf.records += 1;
        self.buffered += data.len() + 1;
        self.stats.records += 1;
        if kind == "RECORD" {
            match self.stats.streams.get_mut(stream) {
                Some(n) => *n += 1,
                None => {
                    self.stats.streams.insert(stream.to_string(), 1);
                }
            }
        }
        if buf.records >= self.limits.records || buf.body.len() >= self.limits.bytes {
            let s = stream.to_string();
            self.seal(&s)?;
        } else if self.buffered >= self.limits.total_bytes {
            let largest = self
                .streams
                .iter()
                .max_by_key(|(_, b)| b.body.len())
                .map(|(k, _)| k.clone());
            if let Some(s) = largest {
                self.seal(&s)?;
            }
        }
        Ok(())
    }

    /// Hands a stream's buffer to the workers (blocking while they are behind).
    fn seal(&mut self, stream: &str) -> Result<(), ReservoirError> {
        let Some(buf) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        if buf.records == 0 {
            return Ok(());
        }
        let mut body = std::mem::take(&mut buf.body);
        buf.digests.fill(&mut body);
        let ends = std::mem::take(&mut buf.ends);
        let parsed = std::mem::take(&mut buf.parsed);
        let records = std::mem::take(&mut buf.records);
        self.buffered = self.buffered.saturating_sub(body.len());
        let ordinal = self.ordinal;
        self.ordinal += 1;
        let path = format!(
            "{}/{}/{}/{}-{}-{:05}.singer.zst",
            self.dir,
            partition::segment(stream),
            buf.schema_id,
            crate::store::now_compact(),
            self.run_id,
            ordinal
        );
        self.uploaded_paths.push(path.clone());
        {
            let (lock, _) = &*self.shared;
            let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = &p.error {
                return Err(upload_error(&self.remote, e));
            }
            p.slots.push(None);
        }
        let job = Job {
            ordinal,
            stream: stream.to_string(),
            schema_id: buf.schema_id.clone(),
            schema_line: buf.schema_line.clone(),
            body,
            ends,
            parsed,
            records,
            path,
        };
        if let Some(q) = &self.queue
            && q.send(job).is_err()
        {
            return Err(upload_error(&self.remote, "the upload workers stopped"));
        }
        Ok(())
    }

    /// Seals everything, waits for the uploads, and commits the index with
    /// the new partitions and the state as of now.
    pub fn commit(&mut self) -> Result<(), ReservoirError> {
        let streams: Vec<String> = self.streams.keys().cloned().collect();
        for s in streams {
            self.seal(&s)?;
        }
        let done: Vec<Partition> = {
            let (lock, cvar) = &*self.shared;
            let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
            while p.error.is_none() && p.slots.iter().any(Option::is_none) {
                p = cvar.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if let Some(e) = &p.error {
                return Err(upload_error(&self.remote, e));
            }
            p.base += p.slots.len();
            for (stream, text) in std::mem::take(&mut p.invalid) {
                self.stats.skipped_lines += 1;
                if let Some(n) = self.stats.streams.get_mut(&stream) {
                    *n = n.saturating_sub(1);
                }
                let text = self.redactor.redact(&text);
                tracing::warn!(
                    "{}: a line that is not JSON, skipped: {}",
                    self.tap,
                    run::printable(&text)
                );
                if let Some(log) = &self.log {
                    log.line(&format!("{} (stdout, skipped) | {text}", self.tap));
                }
            }
            p.slots.drain(..).flatten().collect()
        };
        self.last_commit = Instant::now();
        if done.is_empty() && !self.state_moved {
            return Ok(());
        }
        let mut index = self.index.clone();
        let flushed = !done.is_empty();
        for mut p in done {
            p.parts[0].seq = index.next_seq;
            p.parts[0].pipeline = self.provenance.as_ref().map(|(k, _)| k.clone());
            index.next_seq += 1;
            self.stats.partitions += 1;
            self.stats.bytes += p.bytes;
            self.stats.raw_bytes += p.raw_bytes.unwrap_or(0);
            index.partitions.push(p);
        }
        if flushed && let Some((k, record)) = &self.provenance {
            index
                .pipelines
                .entry(k.to_string())
                .or_insert_with(|| record.clone());
        }
        index.state = self.state.clone();
        index::commit(&self.remote, &self.index_rel, &mut index, &mut self.version)?;
        self.index = index;
        self.uploaded_paths.clear();
        self.state_moved = false;
        self.stats.commits += 1;
        Ok(())
    }

    /// Ends the ingest: commits what the tap sent when it succeeded;
    /// otherwise leaves the last commit standing and removes partitions no
    /// index names.
    pub fn finish(
        mut self,
        success: bool,
    ) -> Result<(IngestStats, Map<String, Value>), ReservoirError> {
        let result = if success { self.commit() } else { Ok(()) };
        self.queue = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if !success || result.is_err() {
            for p in &self.uploaded_paths {
                let _ = self.remote.delete_project_file(p);
            }
        }
        result?;
        Ok((self.stats, self.index.state))
    }
}

fn upload_error(remote: &Remote, e: &str) -> ReservoirError {
    ReservoirError::Run(RunError::Io {
        action: "cannot store a partition in",
        path: remote.describe.clone().into(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>, shared: Shared, remote: Arc<Remote>, level: i32) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { break };
        let mut invalid = Vec::new();
        let result = store_partition(&remote, job_validated(job, &mut invalid), level);
        let (lock, cvar) = &*shared;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        p.invalid.extend(invalid);
        match result {
            Ok((ordinal, part)) => {
                let i = ordinal.wrapping_sub(p.base);
                if let Some(slot) = p.slots.get_mut(i) {
                    *slot = Some(part);
                }
            }
            Err(e) => p.error = Some(e),
        }
        cvar.notify_all();
    }
}

/// Lines routed without a full parse are checked here, off the reading
/// thread: what is not JSON is dropped (and reported), never stored.
fn job_validated(mut job: Job, invalid: &mut Vec<(String, String)>) -> Job {
    let line = |i: usize| {
        let start = if i == 0 { 0 } else { job.ends[i - 1] as usize };
        &job.body[start..job.ends[i] as usize - 1]
    };
    let bad: Vec<usize> = (0..job.ends.len())
        .filter(|&i| {
            !job.parsed[i] && serde_json::from_slice::<serde::de::IgnoredAny>(line(i)).is_err()
        })
        .collect();
    if bad.is_empty() {
        return job;
    }
    let mut body = Vec::with_capacity(job.body.len());
    for i in 0..job.ends.len() {
        if bad.contains(&i) {
            invalid.push((
                job.stream.clone(),
                String::from_utf8_lossy(line(i)).chars().take(200).collect(),
            ));
        } else {
            body.extend_from_slice(line(i));
            body.push(b'\n');
        }
    }
    job.records -= bad.len() as u64;
    job.body = body;
    job
}

fn store_partition(remote: &Remote, job: Job, level: i32) -> Result<(usize, Partition), String> {
    let bytes = partition::encode(&job.schema_line, &job.body, level).map_err(|e| e.to_string())?;
    let size = bytes.len() as u64;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    match remote.create_project_file(&job.path, bytes::Bytes::from(bytes)) {
        Ok(crate::store::remote::Written::Done(_)) => {}
        Ok(crate::store::remote::Written::Conflict) => {
            return Err(format!("{} exists already", job.path));
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok((
        job.ordinal,
        Partition {
            stream: job.stream,
            schema_id: job.schema_id,
            path: job.path,
            encoding: Encoding::Zstd,
            parts: vec![Part {
                seq: 0,
                pipeline: None,
                records: Some(job.records),
            }],
            bytes: size,
            raw_bytes: Some((job.schema_line.len() + 1 + job.body.len()) as u64),
            blake3: Some(hash),
            created: crate::store::now_rfc3339(),
        },
    ))
}

/// What `alto TAP:reservoir` reports.
#[derive(Debug, serde::Serialize)]
pub struct IngestSummary {
    pub pipeline: String,
    #[serde(flatten)]
    pub stats: IngestStats,
    pub seconds: f64,
    pub state: Value,
}

/// The tuning of a tap's ingest from its settings (else the project's).
pub fn limits(realizer: &Realizer, tap: &crate::config::Plugin) -> Result<Limits, ReservoirError> {
    let r = realizer.project.reservoir_settings(tap)?;
    Ok(Limits {
        records: r.records,
        bytes: r.bytes as usize,
        level: r.level,
        commit_every: run::commit_interval(),
        ..Limits::default()
    })
}

/// Runs `TAP:reservoir` once.
pub fn run(
    realizer: &Realizer,
    tap_name: &str,
    opts: &RunOptions,
    build: &Options,
) -> Result<IngestSummary, ReservoirError> {
    let mut log = run::PendingLog::default();
    let result = run_logged(realizer, tap_name, opts, build, &mut log);
    match &result {
        Ok(s) => log.finish(0, None, Some(s.stats.records), Some(s.stats.commits)),
        Err(e) => log.finish(e.exit_code(), Some(e.to_string()), None, None),
    }
    result
}

fn run_logged(
    realizer: &Realizer,
    tap_name: &str,
    opts: &RunOptions,
    build: &Options,
    log: &mut run::PendingLog,
) -> Result<IngestSummary, ReservoirError> {
    let project = realizer.project;
    let tap = project.tap(tap_name)?;
    run::check_stream_maps(tap, opts.strict)?;
    let session = Session::open(realizer, &format!("{tap_name}-to-reservoir"), opts)?;
    let remote = session.remote.clone();
    let env = session.env.clone();
    let limits = limits(realizer, tap)?;
    let mut ingestor = Ingestor::new(
        remote.clone(),
        &env,
        tap_name,
        &tap.select(),
        limits,
        opts.full_refresh,
    )?;
    if opts.full_refresh {
        tracing::info!("{}: full refresh, ignoring the saved state", session.name);
    }
    let prepared = session.prepare(
        &[Role {
            plugin: tap,
            for_tap: None,
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
    let (extra, catalog) = run::tap_args(
        realizer,
        tap,
        &prepared.derivs[0],
        &prepared.dir,
        &prepared.configs[0],
        ingestor.state(),
    )?;
    let drv = provenance::of_run(
        project,
        PipelineKind::Ingest,
        tap,
        &[tap],
        &prepared.derivs,
        catalog,
    )?;
    let (mut mirror, _) = StateStore::open(&remote, &env, tap_name, "reservoir")?;
    provenance::note_changes(&mirror, &drv, &session.name)?;
    let record = Provenance::new(&drv, prepared.log.run_id());
    if let Some(p) = &record {
        ingestor.set_provenance(p);
    }
    ingestor.with_log(prepared.log.clone(), prepared.redactor.clone());

    let Launched {
        mut process,
        tail,
        pump,
        ..
    } = session.launch(&prepared, 0, &extra, Stdio::null())?;
    let mut failure = None;
    if let Some(out) = process.child().stdout.take() {
        run::widen_pipe(&out);
        let mut reader = BufReader::with_capacity(1 << 20, out);
        let mut line = Vec::with_capacity(1 << 12);
        let max = crate::singer::line::max_line_bytes();
        loop {
            line.clear();
            crate::singer::line::shrink(&mut line);
            match crate::singer::line::read_line(&mut reader, &mut line, max) {
                Ok(crate::singer::line::Read::End) => break,
                Ok(crate::singer::line::Read::Line(_)) => {}
                Ok(crate::singer::line::Read::TooLong) => {
                    failure = Some(ReservoirError::Run(RunError::LineTooLong {
                        plugin: tap_name.to_string(),
                        limit: max,
                    }));
                    break;
                }
                Err(e) => {
                    failure = Some(ReservoirError::Run(RunError::Io {
                        action: "cannot read the output of",
                        path: tap_name.into(),
                        source: e,
                    }));
                    break;
                }
            }
            if let Err(e) = ingestor.line(&line) {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_some() {
        process.kill();
    }
    let status = process.wait().map_err(|source| RunError::Io {
        action: "cannot wait for",
        path: tap_name.into(),
        source,
    })?;
    if let Some(p) = pump {
        let _ = p.join();
    }
    // A stopped run keeps what was committed at the tap's last STATE before
    // the stop: its partitions and state are in the index together. What
    // came after is not committed (the tap's state for it never arrived).
    let stopped = session.stopped();
    let ok = failure.is_none() && status.success() && stopped.is_none();
    let finished = ingestor.finish(ok);
    if let Some(e) = stopped {
        return Err(e.into());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (stats, state) = finished?;
    if !status.success() {
        return Err(run::plugin_failed(tap_name, &status, &prepared.log.path, &tail).into());
    }
    // The index holds the tap's state; the original's state file mirrors it
    // so tools reading `state/` keep working.
    if stats.commits > 0 {
        mirror.set_provenance(record);
        mirror.replace(&state)?;
        mirror.keep_history(&state)?;
    }
    Ok(IngestSummary {
        pipeline: format!("{tap_name}:reservoir"),
        stats,
        seconds: session.start.elapsed().as_secs_f64(),
        state: Value::Object(state),
    })
}

#[cfg(test)]
mod tests {
    //! The original's recorded ingest cases (fixtures/golden/reservoir_ingest_*),
    //! replayed through the ingestor. What must hold is the data, not the
    //! original's file names: every record of each stream stored once, in
    //! order, under its schema group, hash rules applied, the state merged.
    //! Where the original loses data (a schema change drops buffered
    //! records) or crashes (a first line that is not JSON), alto differs.
    use super::*;
    use crate::store::remote::Backend;
    use md5::{Digest, Md5};
    use std::path::Path;

    fn golden() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
    }

    fn remote(dir: &Path) -> Arc<Remote> {
        Arc::new(
            Remote::new(
                Backend::Directory(dir.to_path_buf()),
                String::new(),
                "p".into(),
                &[],
            )
            .unwrap(),
        )
    }

    /// Every stored message per stream, in index order, and the schema ids seen.
    fn stored(remote: &Remote) -> (Index, HashMap<String, Vec<Value>>) {
        let loaded = Index::load(remote, "dev", "tap-x").unwrap();
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for p in &loaded.index.partitions {
            let Some(v) = remote.read_project_file(&p.path).unwrap() else {
                continue; // the original's partitions of an earlier run
            };
            let text = partition::decompress(p.encoding, &v.bytes).unwrap();
            let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            let first: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
            assert_eq!(first["type"], "SCHEMA", "{} starts with its SCHEMA", p.path);
            assert_eq!(partition::schema_id(&first), p.schema_id);
            let msgs: Vec<Value> = lines.map(|l| serde_json::from_slice(l).unwrap()).collect();
            assert_eq!(Some(msgs.len() as u64), p.records());
            out.entry(p.stream.clone()).or_default().extend(msgs);
        }
        (loaded.index, out)
    }

    fn md5_hex(s: &str) -> String {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn ingest(case: &Path, dir: &Path) -> Result<Arc<Remote>, ReservoirError> {
        let spec: Value =
            serde_json::from_slice(&std::fs::read(case.join("case.json")).unwrap()).unwrap();
        let remote = remote(dir);
        if let Ok(initial) = std::fs::read(case.join("initial_index.json")) {
            remote
                .overwrite_project_file("reservoir/dev/tap-x/_reservoir.json", initial.into())
                .unwrap();
        }
        if let Ok(state) = std::fs::read(case.join("initial_stream_states.json")) {
            remote
                .overwrite_project_file("state/dev/tap-x-to-reservoir.json", state.into())
                .unwrap();
        }
        let mut select = vec!["*.*".to_string()];
        for h in spec["hash_select"].as_array().unwrap() {
            select.push(format!("~{}", h.as_str().unwrap()));
        }
        let limits = Limits {
            records: spec["buffer_size"].as_u64().unwrap(),
            commit_every: Duration::from_secs(3600),
            ..Limits::default()
        };
        let mut ing = Ingestor::new(remote.clone(), "dev", "tap-x", &select, limits, false)?;
        let stdout = std::fs::read(case.join("tap_stdout.jsonl")).unwrap();
        for line in stdout.split_inclusive(|&b| b == b'\n') {
            if let Err(e) = ing.line(line) {
                ing.finish(false)?;
                return Err(e);
            }
        }
        ing.finish(true)?;
        Ok(remote)
    }

    #[test]
    fn the_originals_ingest_cases() {
        let mut cases: Vec<_> = std::fs::read_dir(golden())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("reservoir_ingest_")
            })
            .collect();
        cases.sort();
        assert!(cases.len() >= 10);
        for case in cases {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let dir = tempfile::tempdir().unwrap();
            let spec: Value =
                serde_json::from_slice(&std::fs::read(case.join("case.json")).unwrap()).unwrap();
            let result = ingest(&case, dir.path());
            if name.ends_with("record_before_schema") {
                assert!(
                    matches!(result, Err(ReservoirError::RecordBeforeSchema { ref stream, line: 1, .. }) if stream == "users"),
                    "{name}: {:?}",
                    result.as_ref().err()
                );
                let r = remote(dir.path());
                assert!(
                    r.read_project_file(&Index::rel("dev", "tap-x"))
                        .unwrap()
                        .is_none(),
                    "{name}: nothing committed"
                );
                assert!(
                    r.list_project("reservoir/dev/tap-x/users")
                        .unwrap()
                        .0
                        .is_empty(),
                    "{name}: no partition left"
                );
                continue;
            }
            let remote = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let (index, stored) = stored(&remote);

            // What the tap sent, per stream, in order (junk lines skipped).
            let stdout = std::fs::read_to_string(case.join("tap_stdout.jsonl")).unwrap();
            let mut sent: HashMap<String, Vec<Value>> = HashMap::new();
            let mut groups: HashMap<String, Vec<String>> = HashMap::new();
            for line in stdout.lines() {
                let Ok(msg) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let stream = msg["stream"].as_str().unwrap_or_default().to_string();
                match msg["type"].as_str() {
                    Some("RECORD") => {
                        let mut msg = msg.clone();
                        for h in spec["hash_select"].as_array().unwrap() {
                            let (s, field) = h.as_str().unwrap().split_once('.').unwrap();
                            if s == stream
                                && let Some(v) = msg["record"].get_mut(field)
                            {
                                *v = Value::String(md5_hex(v.as_str().unwrap()));
                            }
                        }
                        sent.entry(stream).or_default().push(msg);
                    }
                    Some("SCHEMA") => {
                        let g = groups.entry(stream).or_default();
                        let id = partition::schema_id(&msg);
                        if g.last() != Some(&id) {
                            g.push(id);
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(stored.len(), sent.len(), "{name}: streams");
            for (stream, msgs) in &sent {
                assert_eq!(
                    stored.get(stream),
                    Some(msgs),
                    "{name}: {stream}, every record once, in order"
                );
            }
            // A schema change starts a new group; partitions hold at most buffer_size records.
            let buffer = spec["buffer_size"].as_u64().unwrap();
            for (stream, ids) in &groups {
                let mut seen: Vec<String> = Vec::new();
                for p in index
                    .partitions
                    .iter()
                    .filter(|p| &p.stream == stream && p.blake3.is_some())
                {
                    assert!(
                        p.records().unwrap() <= buffer,
                        "{name}: {} over buffer_size",
                        p.path
                    );
                    if !spec["hash_select"].as_array().unwrap().is_empty() {
                        continue; // hashing changes the stored schema, so its id
                    }
                    if seen.last() != Some(&p.schema_id) {
                        seen.push(p.schema_id.clone());
                    }
                }
                if spec["hash_select"].as_array().unwrap().is_empty() {
                    assert_eq!(&seen, ids, "{name}: schema groups of {stream}");
                }
            }
            let expected_state = case.join("expected/state.json");
            if let Ok(bytes) = std::fs::read(&expected_state) {
                let want: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(Value::Object(index.state.clone()), want, "{name}: state");
            }
            if name.ends_with("existing_index_and_state") {
                assert_eq!(
                    index.partitions[0].path,
                    "reservoir/dev/tap-x/users/aaaaaaaaaaaaaaa/20230101000000000000.singer.gz"
                );
                assert_eq!(index.partitions.len(), 2);
            }
        }
    }

    fn ingest_lines(dir: &Path, lines: &[String]) -> (Arc<Remote>, IngestStats) {
        let remote = remote(dir);
        let limits = Limits {
            commit_every: Duration::from_secs(3600),
            ..Limits::default()
        };
        let select = vec!["*.*".to_string()];
        let mut ing =
            Ingestor::new(remote.clone(), "dev", "tap-x", &select, limits, false).unwrap();
        for l in lines {
            ing.line(format!("{l}\n").as_bytes()).unwrap();
        }
        let (stats, _) = ing.finish(true).unwrap();
        (remote, stats)
    }

    fn schema(stream: &str) -> String {
        serde_json::json!({"type": "SCHEMA", "stream": stream, "schema": {"properties": {"id": {"type": "integer"}}}, "key_properties": ["id"]}).to_string()
    }

    fn record(stream: &str, id: u64) -> String {
        serde_json::json!({"type": "RECORD", "stream": stream, "record": {"id": id}}).to_string()
    }

    /// A message of a type Singer does not have is neither stored nor
    /// counted as a record.
    #[test]
    fn unknown_message_types_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![
            schema("users"),
            record("users", 1),
            r#"{"type": "BOGUS", "stream": "users", "record": {"id": 99}}"#.to_string(),
            r#"{"type": "RECORD\u001b[2J", "stream": "users", "record": {"id": 98}}"#.to_string(),
            record("users", 2),
            r#"{"type": "STATE", "value": {"bookmarks": {"users": 2}}}"#.to_string(),
        ];
        let (remote, stats) = ingest_lines(dir.path(), &lines);
        assert_eq!(stats.records, 2);
        assert_eq!(stats.skipped_lines, 2);
        let (_, stored) = stored(&remote);
        let ids: Vec<u64> = stored["users"]
            .iter()
            .map(|m| m["record"]["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2]);
    }

    /// Stream names of any kind are stored once-encoded, within file-name
    /// limits, apart from the index, and read back.
    #[test]
    fn any_stream_name_can_be_ingested_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "é".repeat(150),
            "_index.json".to_string(),
            "a/b".to_string(),
            "x".repeat(400),
            "..".to_string(),
        ];
        let mut lines = Vec::new();
        for (i, n) in names.iter().enumerate() {
            lines.push(schema(n));
            lines.push(record(n, i as u64));
        }
        lines.push(r#"{"type": "STATE", "value": {"done": true}}"#.to_string());
        let (remote, stats) = ingest_lines(dir.path(), &lines);
        assert_eq!(stats.records, names.len() as u64);
        let (index, stored) = stored(&remote);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(stored[n].len(), 1, "{n}");
            assert_eq!(stored[n][0]["record"]["id"], i as u64);
        }
        assert_eq!(index.state["done"], true);
        // Every file and directory name is short, encoded once, and the
        // index is the index.
        for e in walk(dir.path()) {
            let name = e.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.len() <= 200, "{name}");
            assert!(!name.contains("%25"), "encoded twice: {name}");
        }
        let again = Index::load(&remote, "dev", "tap-x").unwrap();
        assert_eq!(again.index.partitions.len(), index.partitions.len());
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Arbitrary bytes from a tap, read as alto reads them (bounded
        /// lines, then the ingestor and the target-side state reader): no
        /// panic, whatever comes; a too-long line is refused, not buffered.
        #[test]
        fn arbitrary_tap_output_never_panics(
            chunks in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                    proptest::prelude::Just(br#"{"type":"SCHEMA","stream":"s","schema":{}}"#.to_vec()),
                    proptest::prelude::Just(br#"{"type":"RECORD","stream":"s","record":{"a":1}}"#.to_vec()),
                    proptest::prelude::Just(br#"{"type":"STATE","value":{"b":1}}"#.to_vec()),
                    proptest::prelude::Just(br#"{"type":"RECORD","stream":"s","stream":"t","record":"x"}"#.to_vec()),
                    proptest::prelude::Just(b"\n".to_vec()),
                ],
                0..40,
            ),
        ) {
            let bytes: Vec<u8> = chunks.concat();
            let dir = tempfile::tempdir().unwrap();
            let limits = Limits {
                commit_every: Duration::from_secs(3600),
                records: 3,
                ..Limits::default()
            };
            let select = vec!["*.*".to_string(), "~s.a".to_string()];
            let mut ing =
                Ingestor::new(remote(dir.path()), "dev", "tap-x", &select, limits, false).unwrap();
            let mut reader = std::io::BufReader::with_capacity(7, bytes.as_slice());
            let mut line = Vec::new();
            let mut ok = true;
            loop {
                line.clear();
                match crate::singer::line::read_line(&mut reader, &mut line, 150).unwrap() {
                    crate::singer::line::Read::End => break,
                    crate::singer::line::Read::TooLong => {
                        proptest::prop_assert!(line.len() <= 150);
                        break;
                    }
                    crate::singer::line::Read::Line(_) => {}
                }
                let _ = crate::singer::state::parse_line(&line);
                if ing.line(&line).is_err() {
                    ok = false;
                    break;
                }
            }
            let _ = ing.finish(ok);
        }
    }
}
