//! What `~` hash rules cost alto per record, with nothing else running:
//! the lines tap-synthetic writes, through `StreamHasher::apply`, in
//! process. `cargo bench --bench pipeline` measures the same rules in a
//! real pipe; this one isolates alto's share of it.

use std::time::Instant;

use alto::pipeline::middle;
use alto::run::Redactor;
use alto::singer::message::StreamHasher;

fn lines(n: u64, wide: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let prefix = r#"{"type": "RECORD", "stream": "events", "record": {"id": "#;
    for i in 1..=n {
        let line = if wide {
            format!(
                "{prefix}{i}, \"f1\": \"user{i}@example.com\", \"f2\": {}, \"f3\": \"some text\", \"f4\": {i}.5, \"f5\": true, \"f6\": \"name {i}\", \"f7\": \"2024-01-01T00:00:00Z\", \"f8\": null, \"f9\": \"xyz\"}}}}\n",
                i * 3
            )
        } else {
            format!(
                "{prefix}{i}, \"email\": \"user{i}@example.com\", \"amount\": {i}.5, \"note\": \"some text for the benchmark\"}}}}\n"
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// ns per line of alto in the pipe (`pipeline::middle`) over `input`,
/// into a sink, the median of `runs`.
fn per_line(rules: &[&str], input: &[u8], runs: usize) -> f64 {
    let select: Vec<String> = std::iter::once("*.*".to_string())
        .chain(rules.iter().map(|r| format!("~{r}")))
        .collect();
    let count = memchr::memchr_iter(b'\n', input).count();
    let redactor = Redactor::default();
    let mut times = Vec::new();
    for _ in 0..runs {
        let hasher = StreamHasher::new(&select).expect("rules");
        let report = middle::Report {
            tap: "tap-synthetic",
            redactor: &redactor,
            log: None,
        };
        let t = Instant::now();
        let passed = middle::run(input, std::io::sink(), hasher, report, 1 << 30).expect("a run");
        let d = t.elapsed();
        assert_eq!(passed.skipped, 0);
        times.push(d.as_secs_f64() * 1e9 / count as f64);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    // ALTO_BENCH_RECORDS, ALTO_BENCH_RUNS: fewer, under callgrind.
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("ALTO_BENCH_RECORDS", 500_000) as u64;
    let runs = env("ALTO_BENCH_RUNS", 5);
    let narrow = lines(n, false);
    let wide = lines(n, true);
    // ALTO_BENCH_CASE=1|3|other: just that case (for a profiler); `skip`:
    // the scanner alone, each line skipped as one value.
    let only = std::env::var("ALTO_BENCH_CASE").ok();
    let cases: [(&str, &[&str], &[u8], &str); 3] = [
        (
            "1",
            &["events.email"],
            &narrow,
            "1 rule (~events.email), 4 fields:",
        ),
        (
            "3",
            &["events.f1", "events.f4", "events.f7"],
            &wide,
            "3 rules (~events.f1, f4, f7), 10 fields:",
        ),
        (
            "other",
            &["other.email"],
            &narrow,
            "a rule on another stream, 4 fields:",
        ),
    ];
    if only.as_deref() == Some("skip") {
        for (label, input) in [("4 fields", &narrow), ("10 fields", &wide)] {
            let mut times = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let mut ok = 0usize;
                let mut from = 0;
                for nl in memchr::memchr_iter(b'\n', input) {
                    let line = &input[from..nl];
                    from = nl + 1;
                    let mut sc = alto::singer::json::Scanner::new(line);
                    ok += usize::from(sc.skip(0).is_ok());
                }
                times.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
                assert_eq!(ok as u64, n);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "  skip, {label}: {:6.0} ns per record",
                times[times.len() / 2]
            );
        }
        return;
    }
    println!("alto in the pipe, in process, into a sink (medians of {runs}, {n} records):");
    for (name, rules, input, label) in cases {
        if only.as_deref().is_none_or(|o| o == name) {
            println!(
                "  {label:<42} {:6.0} ns per record",
                per_line(rules, input, runs)
            );
        }
    }
}
