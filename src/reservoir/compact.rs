//! Maintenance of a tap's reservoir: `alto reservoir ls` and `alto reservoir
//! compact`. Compaction merges runs of small partitions of one stream and
//! schema group, writes the merged partitions, swaps the index by
//! conditional put, and only then deletes what it replaced; merged
//! partitions list the flushes they hold, so replay positions stay valid. It
//! also removes partitions no index names (left by an ingest that died)
//! once they are older than a grace period.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use super::ReservoirError;
use super::index::{self, Index, Part, Partition};
use super::partition::{self, Encoding, Line};
use crate::run::{PipelineLock, StateStore};
use crate::store::Remote;

/// One schema group of a stream, as listed.
#[derive(Debug, Default, Serialize)]
pub struct Group {
    pub schema_id: String,
    pub partitions: usize,
    pub records: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    /// The distinct `~` rule sets its flushes were ingested under; `null`
    /// for flushes ingested before alto recorded them.
    pub hash_rules: Vec<Option<Vec<String>>>,
}

#[derive(Debug, Default, Serialize)]
pub struct StreamListing {
    pub stream: String,
    pub partitions: usize,
    pub records: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
pub struct TargetPosition {
    pub target: String,
    pub position: std::collections::BTreeMap<String, u64>,
    /// Partitions it has not confirmed yet.
    pub pending: usize,
}

/// `alto reservoir ls TAP`.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub tap: String,
    pub env: String,
    pub index: String,
    /// Read from the original alto's `_reservoir.json`.
    pub original: bool,
    pub partitions: usize,
    /// Messages stored; the original's partitions count as unknown (0).
    pub records: u64,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub next_seq: u64,
    pub updated: String,
    pub streams: Vec<StreamListing>,
    pub targets: Vec<TargetPosition>,
}

pub fn ls(
    remote: &Remote,
    env: &str,
    tap: &str,
    targets: &[String],
) -> Result<Listing, ReservoirError> {
    let loaded = Index::load(remote, env, tap)?;
    let idx = &loaded.index;
    let mut streams: Vec<StreamListing> = Vec::new();
    for name in idx.streams() {
        let mut s = StreamListing {
            stream: name.clone(),
            ..Default::default()
        };
        for p in idx.partitions.iter().filter(|p| p.stream == name) {
            let records = p.records().unwrap_or(0);
            let raw = p.raw_bytes.unwrap_or(0);
            s.partitions += 1;
            s.records += records;
            s.bytes += p.bytes;
            s.raw_bytes += raw;
            let g = match s.groups.iter_mut().position(|g| g.schema_id == p.schema_id) {
                Some(i) => &mut s.groups[i],
                None => {
                    s.groups.push(Group {
                        schema_id: p.schema_id.clone(),
                        ..Default::default()
                    });
                    let last = s.groups.len() - 1;
                    &mut s.groups[last]
                }
            };
            for part in &p.parts {
                let rules = idx.flush_rules(part).map(<[String]>::to_vec);
                if !g.hash_rules.contains(&rules) {
                    g.hash_rules.push(rules);
                }
            }
            g.partitions += 1;
            g.records += records;
            g.bytes += p.bytes;
            g.raw_bytes += raw;
        }
        streams.push(s);
    }
    let mut positions = Vec::new();
    for t in targets {
        let pos = super::replay::read_position(remote, env, tap, t, idx)?;
        positions.push(TargetPosition {
            target: t.clone(),
            pending: idx.pending(&pos).len(),
            position: pos.streams,
        });
    }
    Ok(Listing {
        tap: tap.into(),
        env: env.into(),
        index: remote.describe_project_file(loaded.legacy.as_deref().unwrap_or(&loaded.rel)),
        original: loaded.legacy.is_some(),
        partitions: streams.iter().map(|s| s.partitions).sum(),
        records: streams.iter().map(|s| s.records).sum(),
        bytes: streams.iter().map(|s| s.bytes).sum(),
        raw_bytes: streams.iter().map(|s| s.raw_bytes).sum(),
        next_seq: idx.next_seq,
        updated: idx.updated.clone(),
        streams,
        targets: positions,
    })
}

/// What compaction did.
#[derive(Debug, Default, Serialize)]
pub struct CompactSummary {
    pub merged: usize,
    pub written: usize,
    pub orphans_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Tuning of compaction.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Merged partitions grow up to this many uncompressed bytes.
    pub target_bytes: u64,
    /// Unindexed partitions younger than this are left alone (an ingest may
    /// be about to commit them).
    pub orphan_grace_secs: u64,
    pub level: i32,
    pub wait: bool,
}

impl Default for CompactOptions {
    fn default() -> CompactOptions {
        CompactOptions {
            target_bytes: 64 << 20,
            orphan_grace_secs: std::env::var("ALTO_RESERVOIR_ORPHAN_GRACE_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3600),
            level: 3,
            wait: false,
        }
    }
}

/// `alto reservoir compact TAP`. Holds the tap's ingest lock; replays go on.
pub fn compact(
    remote: &Arc<Remote>,
    env: &str,
    tap: &str,
    opts: &CompactOptions,
) -> Result<CompactSummary, ReservoirError> {
    let _lock = PipelineLock::acquire(
        remote.clone(),
        env,
        &format!("{tap}-to-reservoir"),
        opts.wait,
    )?;
    let loaded = Index::load(remote, env, tap)?;
    let mut version = loaded.version.clone();
    let old = loaded.index;
    let mut summary = CompactSummary {
        bytes_before: old.partitions.iter().map(|p| p.bytes).sum(),
        ..Default::default()
    };

    // Runs of consecutive partitions of one stream and schema group, each
    // small, chunked up to the target size. The original's partitions are
    // rewritten even alone: alto's carry counts and checksums.
    let worth = |chunk: &[usize]| {
        chunk.len() > 1
            || chunk
                .first()
                .is_some_and(|&i| old.partitions[i].encoding == Encoding::Gzip)
    };
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    for stream in old.streams() {
        let mut current: Vec<usize> = Vec::new();
        let mut size = 0u64;
        for (i, p) in old
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.stream == stream)
        {
            let raw = p.raw_bytes.unwrap_or(0);
            let small = raw < opts.target_bytes / 2;
            let same = current
                .last()
                .is_some_and(|&j| old.partitions[j].schema_id == p.schema_id);
            if !small || !same || size + raw > opts.target_bytes || current.len() >= 10_000 {
                if worth(&current) {
                    chunks.push(std::mem::take(&mut current));
                }
                current.clear();
                size = 0;
            }
            if small {
                current.push(i);
                size += raw;
            }
        }
        if worth(&current) {
            chunks.push(current);
        }
    }

    let run_id = blake3::hash(crate::store::local::unique().as_bytes()).to_hex()[..8].to_string();
    let mut written: Vec<String> = Vec::new();
    let mut replaced: HashSet<usize> = HashSet::new();
    let mut merged_parts: Vec<Partition> = Vec::new();
    let result = (|| -> Result<(), ReservoirError> {
        for (k, chunk) in chunks.iter().enumerate() {
            let first = &old.partitions[chunk[0]];
            let path = format!(
                "{}/{}/{}/{}-{run_id}-c{k:05}.singer.zst",
                super::tap_dir(env, tap),
                partition::segment(&first.stream),
                first.schema_id,
                crate::store::now_compact()
            );
            let p = merge(remote, &old, chunk, path.clone(), opts.level)?;
            match remote.create_project_file(&path, bytes::Bytes::from(p.1))? {
                crate::store::remote::Written::Done(_) => written.push(path),
                crate::store::remote::Written::Conflict => {
                    return Err(ReservoirError::IndexConflict {
                        path: remote.describe_project_file(&path),
                    });
                }
            }
            replaced.extend(chunk.iter().copied());
            merged_parts.push(p.0);
        }
        Ok(())
    })();
    if let Err(e) = result {
        for w in &written {
            let _ = remote.delete_project_file(w);
        }
        return Err(e);
    }

    let mut new = old.clone();
    new.partitions = old
        .partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| !replaced.contains(i))
        .map(|(_, p)| p.clone())
        .chain(merged_parts)
        .collect();
    new.partitions.sort_by_key(Partition::first_seq);
    if !chunks.is_empty()
        && let Err(e) = index::commit(remote, &loaded.rel, &mut new, &mut version)
    {
        for w in &written {
            let _ = remote.delete_project_file(w);
        }
        return Err(e);
    }
    // The new index is committed: what it no longer names can go.
    for i in &replaced {
        remote.delete_project_file(&old.partitions[*i].path)?;
    }
    summary.merged = replaced.len();
    summary.written = written.len();
    let kept: HashSet<&str> = new.partitions.iter().map(|p| p.path.as_str()).collect();
    summary.orphans_removed = remove_orphans(remote, env, tap, &kept, opts.orphan_grace_secs)?;
    summary.bytes_after = new.partitions.iter().map(|p| p.bytes).sum();
    Ok(summary)
}

/// Reads the partitions of a chunk (checking each) into one.
fn merge(
    remote: &Remote,
    idx: &Index,
    chunk: &[usize],
    path: String,
    level: i32,
) -> Result<(Partition, Vec<u8>), ReservoirError> {
    let first = &idx.partitions[chunk[0]];
    let mut enc = zstd::stream::Encoder::new(Vec::new(), level).map_err(io(&path))?;
    let mut parts: Vec<Part> = Vec::new();
    let mut raw = 0u64;
    let mut schema_written = false;
    for &i in chunk {
        let p = &idx.partitions[i];
        let bytes = p.fetch(remote)?.ok_or_else(|| p.missing(remote))?;
        let mut count = 0u64;
        let mut write = |data: &[u8], raw: &mut u64| -> std::io::Result<()> {
            enc.write_all(data)?;
            enc.write_all(b"\n")?;
            *raw += data.len() as u64 + 1;
            Ok(())
        };
        partition::for_each_line(p.encoding, &bytes, |line| match line {
            Line::Schema(s) if !schema_written => {
                schema_written = true;
                write(s, &mut raw)
            }
            Line::Message(m) => {
                count += 1;
                write(m, &mut raw)
            }
            _ => Ok(()),
        })
        .map_err(|e| ReservoirError::Damaged {
            path: remote.describe_project_file(&p.path),
            reason: e.to_string(),
        })?;
        if p.parts.len() == 1 {
            parts.push(Part {
                seq: p.parts[0].seq,
                pipeline: p.parts[0].pipeline.clone(),
                records: Some(count),
            });
        } else {
            parts.extend(p.parts.iter().cloned());
        }
    }
    let bytes = enc.finish().map_err(io(&path))?;
    Ok((
        Partition {
            stream: first.stream.clone(),
            schema_id: first.schema_id.clone(),
            path,
            encoding: Encoding::Zstd,
            parts,
            bytes: bytes.len() as u64,
            raw_bytes: Some(raw),
            blake3: Some(blake3::hash(&bytes).to_hex().to_string()),
            created: crate::store::now_rfc3339(),
        },
        bytes,
    ))
}

fn io(path: &str) -> impl Fn(std::io::Error) -> ReservoirError + '_ {
    move |e| ReservoirError::Damaged {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// Deletes alto partitions under the tap's directory that the index does not
/// name and whose name says they were written longer ago than `grace_secs`.
fn remove_orphans(
    remote: &Remote,
    env: &str,
    tap: &str,
    kept: &HashSet<&str>,
    grace_secs: u64,
) -> Result<usize, ReservoirError> {
    let dir = super::tap_dir(env, tap);
    let now = crate::store::now_epoch();
    let mut removed = 0;
    // Listings give names as stored, percent-encoded by object_store; paths
    // given to it are encoded again, so names are decoded before reuse.
    let decode = |n: &str| {
        percent_encoding::percent_decode_str(n)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (streams, _) = remote.list_project(&dir)?;
    for s in streams.iter().map(|s| decode(s)) {
        let (groups, _) = remote.list_project(&format!("{dir}/{s}"))?;
        for g in groups.iter().map(|g| decode(g)) {
            let gdir = format!("{dir}/{s}/{g}");
            let (_, files) = remote.list_project(&gdir)?;
            for (f, _) in files {
                let f = decode(&f);
                let rel = format!("{gdir}/{f}");
                // A temporary file of an upload that died: `.<time>-<unique>.tmp`.
                let tmp = f.starts_with('.') && f.ends_with(".tmp");
                if !(f.ends_with(".singer.zst") || tmp) || kept.contains(rel.as_str()) {
                    continue;
                }
                let Some(written) = name_time(f.trim_start_matches('.')) else {
                    continue;
                };
                if now.saturating_sub(written) >= grace_secs {
                    remote.delete_project_file(&rel)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// The time in a partition name `YYYYmmddHHMMSS-...`, as epoch seconds.
fn name_time(name: &str) -> Option<u64> {
    let t = name.get(..14)?;
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    );
    crate::store::parse_rfc3339(&iso)
}

/// Drops everything a target confirmed (`alto clean reservoir:TAP-TARGET`).
pub fn clear_position(
    remote: &Remote,
    env: &str,
    tap: &str,
    target: &str,
) -> Result<(), ReservoirError> {
    let (store, _) = StateStore::open(remote, env, &super::replay::position_owner(tap), target)?;
    store.clear()?;
    Ok(())
}
