//! No input makes the loaders panic: arbitrary text in every format, valid
//! configs with random edits, and random `ALTO_*` variables all end in a value
//! or a diagnostic that renders.

use std::path::Path;

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

/// Loads a project holding `alto.<ext>` = `text` and renders everything it
/// can; any error must render as a diagnostic.
fn exercise(dir: &Path, ext: &str, text: &str, vars: Vec<(String, String)>) {
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
