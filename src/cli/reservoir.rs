//! `alto reservoir ls|compact TAP`.

use super::printer::{human_bytes, out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::Realizer;
use crate::reservoir;

/// `alto reservoir ls TAP`.
pub fn reservoir_ls(g: &Global, project: &Project, tap: &str) -> Result<(), Error> {
    project.tap(tap)?;
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let targets: Vec<String> = project.targets.keys().cloned().collect();
    let l = reservoir::compact::ls(&remote, &project.environment, tap, &targets)?;
    if g.printer().json() {
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
            let hashed: Vec<String> = gr
                .hash_rules
                .iter()
                .map(|r| match r {
                    None => "unrecorded".to_string(),
                    Some(r) if r.is_empty() => "no hash rules".to_string(),
                    Some(r) => r.join(" "),
                })
                .collect();
            text.push_str(&format!(
                "  schema {}: {} partitions, {} records, {}; hashed: {}\n",
                gr.schema_id,
                gr.partitions,
                gr.records,
                human_bytes(gr.bytes),
                hashed.join(" | ")
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
    if g.printer().json() {
        print_json(&serde_json::to_value(&s).unwrap_or_default());
    } else if g.printer().verbose() {
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
