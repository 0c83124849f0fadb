//! The README's quick start, as a new user runs it: `alto init`, then the
//! example pipeline with plugins from the package registry, on the embedded
//! default remote (a directory under ~/.alto).

mod common;

use common::{Machine, Project};

#[test]
fn init_then_run_the_example_pipeline() {
    let p = Project::new(&[]);
    let m = Machine::new(true);
    let (code, _, err) = p.run_on(&m, &["init", "--no-prompt", "--name", "quick"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.run_on(&m, &["tap-jsonl:target-jsonl"]);
    assert_eq!(code, 0, "{err}");
    let out = std::fs::read_to_string(p.path().join("output/example/events.jsonl")).unwrap();
    let ids: Vec<i64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    // The state landed where the original keeps it.
    assert!(
        p.home
            .path()
            .join(".alto/quick/state/dev/tap-jsonl-to-target-jsonl.json")
            .is_file()
    );
    // And the base catalog at the original's path.
    assert!(
        p.home
            .path()
            .join(".alto/quick/catalogs/tap-jsonl.base.json")
            .is_file()
    );
    let (code, out, _) = p.run_on(&m, &["select", "tap-jsonl", "--list"]);
    assert_eq!(code, 0);
    assert!(out.contains("events"), "{out}");
}
