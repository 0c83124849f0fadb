//! No input makes the loaders panic: arbitrary text in every format, valid
//! configs with random edits, and random `ALTO_*` variables all end in a value
//! or a diagnostic that renders.

use std::path::Path;
use std::time::{Duration, Instant};

use alto::config::{self, Format, LoadOptions};
use proptest::prelude::*;

const SEEDS: [(&str, &str); 4] = [
    (
        "yaml",
        "default:\n  project_name: p\n  load_path: raw\n  taps:\n    tap-a:\n      pip_url: a==1\n      load_path: ns\n      config: {x: \"@format {this.load_path}/{env[HOME]}\", l: [1, 2]}\n      target-b: {y: 2}\n    tap-c:\n      inherit_from: tap-a\n  targets:\n    target-b:\n      pip_url: b==1\n      config: {s: \"@format {this.load_path}\"}\ndev:\n  load_path: dev\n",
    ),
    (
        "toml",
        "[default]\nproject_name = \"p\"\nload_path = \"raw\"\n[default.taps.tap-a]\npip_url = \"a==1\"\nconfig = { x = \"@format {this.load_path}\", l = [1, 2] }\n[default.targets.target-b]\npip_url = \"b==1\"\nconfig.s = \"@format {this.load_path}\"\n[dev]\nload_path = \"dev\"\n",
    ),
    (
        "json",
        "{\"default\": {\"project_name\": \"p\", \"load_path\": \"raw\", \"taps\": {\"tap-a\": {\"pip_url\": \"a==1\", \"inherit_from\": \"tap-b\"}, \"tap-b\": {\"config\": {\"x\": \"@format {env[X]}\"}}}, \"targets\": {\"t\": {\"config\": {\"s\": \"@format {this.load_path}\"}}}}}",
    ),
    (
        "kdl",
        "default {\n  project_name \"p\"\n  load_path \"raw\"\n  taps {\n    tap-a {\n      pip_url \"a==1\"\n      config x=\"@format {this.load_path}\" n=1\n      select \"*.*\" \"!a.b\"\n    }\n  }\n  targets {\n    t {\n      config {\n        s \"@format {this.taps.tap_a.pip_url}\"\n      }\n    }\n  }\n}\n",
    ),
];

/// Pieces of hostile or near-valid config spliced into the seeds: anchors
/// and aliases, merge keys, deep nesting, byte-order marks, duplicated keys,
/// very long lines, multi-byte text, KDL strings and comments, and names
/// that are paths.
const HOSTILE: [&str; 40] = [
    "&a ",
    "*a",
    "<<: *a\n",
    "&b [*a, *a, *a, *a]",
    "[",
    "]",
    "{",
    "}",
    "[[[[[[[[[[[[[[[[",
    "{{{{{{{{{{{{{{{{",
    "\u{feff}",
    "taps:\n",
    "default:\n",
    "\n  taps: {}\n",
    "é",
    "日本",
    "\u{1F600}",
    "\t",
    "\r\n",
    "\"",
    "'",
    "\"\"\"\n",
    "#\"",
    "\"#",
    "/*",
    "*/",
    "//",
    "/-",
    "\\u{",
    "\\",
    "../../x",
    "..",
    "a/b",
    "\0",
    "---\n",
    "@format {this.",
    "{env[",
    "#true",
    " : ",
    "- ",
];

/// Loads a project holding `alto.<ext>` = `text` and renders everything it
/// can; any error must render as a diagnostic.
fn exercise(dir: &Path, ext: &str, text: &str, vars: Vec<(String, String)>) {
    exercise_bytes(dir, ext, text.as_bytes(), vars)
}

/// `exercise` for any bytes (a file need not be UTF-8).
fn exercise_bytes(dir: &Path, ext: &str, text: &[u8], vars: Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(dir.join(format!("alto.{ext}")), text).unwrap();
    let opts = LoadOptions {
        root: Some(dir.to_path_buf()),
        cwd: dir.to_path_buf(),
        env: None,
        vars,
        strict: false,
        vault_layer: false,
    };
    match config::load(&opts) {
        Ok(project) => {
            let names: Vec<String> = project.plugins().map(|p| p.name.clone()).collect();
            for name in &names {
                if let Err(e) = project.render_config(name, None) {
                    render(e);
                }
                for tap in project.taps.keys() {
                    if let Err(e) = project.render_config(name, Some(tap)) {
                        render(e);
                    }
                }
                if let Ok(p) = project.plugin(name) {
                    let _ = project.plugin_environment(p);
                }
            }
            if let Err(e) = project.render_dump(&[]) {
                render(e);
            }
            let _ = project.secret_strings();
        }
        Err(e) => render(e),
    }
}

fn render(e: config::ConfigError) {
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    handler.render_report(&mut out, &e).unwrap();
    assert!(!out.is_empty());
}

/// Each case ends in a value or a diagnostic, and soon.
fn bounded(what: &str, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "{what} took {took:?}");
}

/// PROPTEST_CASES, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // A few hundred cases of each, in seconds; PROPTEST_CASES=5000 for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(cases(200)))]

    /// Any bytes at all, as the main file in every format.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        bom in any::<bool>(),
    ) {
        let mut text = if bom { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
        text.extend_from_slice(&bytes);
        let dir = tempfile::tempdir().unwrap();
        for ext in ["yaml", "toml", "json", "kdl"] {
            bounded(ext, || exercise_bytes(dir.path(), ext, &text, Vec::new()));
        }
    }

    /// Valid configs with hostile pieces spliced in, some of them repeated
    /// into long lines or deep nesting.
    #[test]
    fn hostile_edits_never_panic(
        seed in 0usize..SEEDS.len(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop::sample::select(HOSTILE.to_vec()), prop_oneof![4 => Just(1usize), 1 => 2usize..300, 1 => Just(5_000usize)]),
            1..5,
        ),
        env in prop_oneof![Just(None), Just(Some("dev")), Just(Some("../x"))],
    ) {
        let (ext, base) = SEEDS[seed];
        let mut text = base.to_string();
        for (at, piece, times) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, &piece.repeat(times));
        }
        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![("HOME".to_string(), "/home/x".to_string())];
        if let Some(env) = env {
            vars.push(("ALTO_ENV".into(), env.into()));
        }
        bounded(ext, || exercise(dir.path(), ext, &text, vars));
    }

    /// The parsers alone: whatever the text, a value or an error inside it.
    #[test]
    fn parsers_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        for fmt in [Format::Yaml, Format::Json, Format::Toml, Format::Kdl] {
            if let Err(e) = fmt.parse(&text) {
                prop_assert!(e.offset <= text.len());
                if let Some((offset, len)) = e.first {
                    prop_assert!(offset + len <= text.len());
                }
            }
        }
    }
}

proptest! {
    // PROPTEST_CASES=5000 for a longer hunt; the default (256) runs in `cargo test`.
    #[test]
    fn parsers_never_panic(text in "\\PC{0,200}") {
        for fmt in [Format::Yaml, Format::Json, Format::Toml, Format::Kdl] {
            if let Err(e) = fmt.parse(&text) {
                prop_assert!(e.offset <= text.len());
            }
        }
    }

    #[test]
    fn edited_configs_never_panic(
        seed in 0usize..SEEDS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[ -~\\n\\t{}\\[\\]:\"'#@é]{0,4}"), 1..4),
    ) {
        let (ext, base) = SEEDS[seed];
        let mut text: Vec<char> = base.chars().collect();
        for (at, op, ins) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => { text.splice(i..i, ins.chars()); }
                1 => { let end = (i + ins.len().max(1)).min(text.len()); text.drain(i.min(end)..end); }
                _ => { if i < text.len() { text[i] = ins.chars().next().unwrap_or(' '); } }
            }
        }
        let text: String = text.into_iter().collect();
        let dir = tempfile::tempdir().unwrap();
        exercise(dir.path(), ext, &text, vec![("HOME".into(), "/home/x".into())]);
    }

    #[test]
    fn random_overrides_never_panic(
        seed in 0usize..SEEDS.len(),
        vars in prop::collection::vec(("ALTO_[A-Za-z_]{0,3}(__[A-Za-z_-]{0,6}){0,4}", "\\PC{0,12}"), 0..5),
    ) {
        let (ext, base) = SEEDS[seed];
        let dir = tempfile::tempdir().unwrap();
        exercise(dir.path(), ext, base, vars);
    }
}
