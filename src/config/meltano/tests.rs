use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::config::{LoadOptions, Project};

/// Loads a translation with alto's own loader in one environment.
fn load(t: &Translation, env: &str, vars: &[(&str, &str)]) -> Result<Project, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("alto.yaml"), &t.alto_yaml).map_err(|e| e.to_string())?;
    let opts = LoadOptions {
        root: Some(dir.path().to_path_buf()),
        cwd: dir.path().to_path_buf(),
        env: Some(env.to_string()),
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        // Every key the importer writes is one alto reads.
        strict: true,
        vault_layer: false,
    };
    crate::config::load(&opts).map_err(|e| format!("{e:?}\n{}", t.alto_yaml))
}

fn tr(yml: &str) -> Translation {
    translate(yml, "proj").unwrap_or_else(|e| panic!("{e:?}"))
}

fn reported(t: &Translation, path: &str) -> bool {
    t.untranslated.iter().any(|u| u.path == path)
}

#[test]
fn variables_split_like_meltano() {
    use Piece::*;
    assert_eq!(
        meltano_pieces("a $UP_1 ${low} \\$ESC \\${esc} $lower $ ${} ${a-b} $9"),
        vec![
            Text("a ".into()),
            Var("UP_1".into()),
            Text(" ".into()),
            Var("low".into()),
            Text(" $ESC ${esc} $lower $ ${} ${a-b} $9".into()),
        ]
    );
    assert_eq!(
        meltano_pieces("$A$B"),
        vec![Var("A".into()), Var("B".into())]
    );
    assert_eq!(
        meltano_pieces("é${X}é"),
        vec![Text("é".into()), Var("X".into()), Text("é".into())]
    );
}

#[test]
fn strings_become_format_strings_only_with_variables() {
    let t = tr(r#"
plugins:
  extractors:
  - name: tap-x
    pip_url: tap-x==1
    capabilities: [catalog]
    config:
      url: https://${HOST}/api/{v1}
      token: $TOKEN
      plain: "{not a template}"
      escaped: \$HOME
      looks_like_one: "@format {x}"
      n: 5
      f: 1.0
      b: true
      yes_string: "yes"
      list: [1, "two", $TOKEN]
      nested: {deep: {x: "${HOST}"}}
"#);
    let p = load(&t, "dev", &[("HOST", "h"), ("TOKEN", "t")]).unwrap();
    assert_eq!(
        p.render_config("tap-x", None).unwrap().value,
        json!({
            "url": "https://h/api/{v1}",
            "token": "t",
            "plain": "{not a template}",
            "escaped": "$HOME",
            "looks_like_one": "@format {x}",
            "n": 5,
            "f": 1.0,
            "b": true,
            "yes_string": "yes",
            "list": [1, "two", "t"],
            "nested": {"deep": {"x": "h"}},
        })
    );
    assert!(
        t.alto_yaml
            .contains(r#"url: "@format https://{env[HOST]}/api/{{v1}}""#),
        "{}",
        t.alto_yaml
    );
}

#[test]
fn environment_select_replaces_the_base_one() {
    let yml = r#"
plugins:
  extractors:
  - name: tap-x
    pip_url: tap-x==1
    capabilities: [catalog]
    select: [a.*, b.*]
    config: {ids: [1, 2], keep: k}
  - name: tap-y
    inherit_from: tap-x
environments:
- name: prod
  config:
    plugins:
      extractors:
      - name: tap-x
        select: [c.*]
        config: {ids: [3]}
- name: staging
"#;
    let t = tr(yml);
    for (env, select, ids) in [
        ("prod", vec!["c.*"], json!([3])),
        ("staging", vec!["a.*", "b.*"], json!([1, 2])),
        // No Meltano `dev`: alto's default environment is Meltano's base.
        ("dev", vec!["a.*", "b.*"], json!([1, 2])),
    ] {
        let p = load(&t, env, &[]).unwrap();
        for tap in ["tap-x", "tap-y"] {
            assert_eq!(p.tap(tap).unwrap().select(), select, "{env} {tap}");
            assert_eq!(
                p.render_config(tap, None).unwrap().value,
                json!({"ids": ids, "keep": "k"}),
                "{env} {tap}"
            );
        }
    }
    assert!(t.notes.iter().any(|n| n.starts_with("taps.tap-x.select:")));
}

#[test]
fn load_schema_becomes_load_path() {
    let yml = r#"
plugins:
  extractors:
  - name: tap-a
    pip_url: a==1
    capabilities: [catalog]
  - name: tap-b
    namespace: bee
    pip_url: b==1
    capabilities: [catalog]
  - name: tap-c
    inherit_from: tap-b
  - name: tap-d
    pip_url: d==1
    capabilities: [catalog]
    load_schema: ${MELTANO_EXTRACTOR_NAMESPACE}_raw
  loaders:
  - name: target-x
    pip_url: x==1
    config:
      schema: $MELTANO_EXTRACT__LOAD_SCHEMA
      ns: prefix_${MELTANO_EXTRACTOR_NAMESPACE}
environments:
- name: prod
  config:
    plugins:
      extractors:
      - name: tap-b
        load_schema: prod_$SUFFIX
"#;
    let t = tr(yml);
    let schema = |p: &Project, tap: &str| p.render_config("target-x", Some(tap)).unwrap().value;
    let dev = load(&t, "dev", &[]).unwrap();
    assert_eq!(
        schema(&dev, "tap-a"),
        json!({"schema": "tap_a", "ns": "prefix_tap_a"})
    );
    assert_eq!(schema(&dev, "tap-b")["schema"], "bee");
    // An inheriting plugin's namespace derives from its own name.
    assert_eq!(schema(&dev, "tap-c")["schema"], "tap_c");
    assert_eq!(schema(&dev, "tap-d")["schema"], "tap_d_raw");
    let prod = load(&t, "prod", &[("SUFFIX", "s")]).unwrap();
    assert_eq!(schema(&prod, "tap-b")["schema"], "prod_s");
    // tap-c inherits tap-b's load_schema in prod, as in Meltano.
    assert_eq!(schema(&prod, "tap-c")["schema"], "prod_s");
    assert_eq!(schema(&prod, "tap-a")["schema"], "tap_a");
    // A target rendered for no tap still renders.
    assert!(dev.render_config("target-x", None).is_ok());
}

#[test]
fn hub_plugins_and_unknown_keys_are_reported() {
    let t = tr(r#"
version: 1
project_id: abc
plugins:
  extractors:
  - name: tap-hub
    variant: meltanolabs
  - name: tap-child
    inherit_from: tap-elsewhere
    config: {x: 1}
    schema: {s: {}}
  loaders:
  - name: target-x
    pip_url: x==1
    select: [a]
  orchestrators:
  - name: airflow
schedules:
- name: daily
  extractor: tap-hub
  loader: target-x
  interval: '@daily'
jobs:
- name: j
  tasks: [tap-hub target-x]
"#);
    for path in [
        "project_id",
        "plugins.extractors.tap-hub",
        "plugins.extractors.tap-hub.variant",
        "plugins.extractors.tap-hub.capabilities",
        "plugins.extractors.tap-child",
        "plugins.extractors.tap-child.inherit_from",
        "plugins.extractors.tap-child.schema",
        "plugins.loaders.target-x.select",
        "plugins.orchestrators.airflow",
    ] {
        assert!(
            reported(&t, path),
            "{path} not reported: {:#?}",
            t.untranslated
        );
    }
    assert!(!reported(&t, "version"));
    // The job and the schedule translate: their plugins are the project's.
    assert!(!reported(&t, "jobs.j") && !reported(&t, "schedules.daily"));
    assert!(
        t.alto_yaml
            .contains("  jobs:\n    j: [\"tap-hub:target-x\"]\n"),
        "{}",
        t.alto_yaml
    );
    let hub = t
        .untranslated
        .iter()
        .find(|u| u.path == "plugins.extractors.tap-hub")
        .unwrap();
    assert_eq!(hub.reason, "no pip_url; Meltano resolves it from the Hub");
    // The header lists them all.
    assert!(
        t.alto_yaml
            .starts_with("# Generated by `alto import meltano` from meltano.yml")
    );
    for u in &t.untranslated {
        assert!(
            t.alto_yaml
                .contains(&format!("#   {}: {}", u.path, u.reason))
        );
    }
    let p = load(&t, "dev", &[]).unwrap();
    assert!(p.tap("tap-hub").unwrap().raw_str("pip_url").is_none());
    assert!(p.tap("tap-child").unwrap().parent.is_none());
}

#[test]
fn environment_env_overrides_a_plugins_own() {
    let t = tr(r#"
env: {A: project}
plugins:
  utilities:
  - name: u
    pip_url: u==1
    env: {A: plugin, B: plugin}
environments:
- name: prod
  env: {A: prod}
"#);
    let env = |name: &str| {
        let p = load(&t, name, &[]).unwrap();
        let u = p.utilities.get("u").unwrap().clone();
        p.plugin_environment(&u)
            .unwrap()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(env("dev")["A"], "plugin");
    assert_eq!(env("prod")["A"], "prod");
    assert_eq!(env("prod")["B"], "plugin");
}

#[test]
fn problems_in_variables_are_reported() {
    let t = tr(r#"
env:
  PATH: $PATH:/opt/bin
plugins:
  extractors:
  - name: tap-x
    pip_url: -e extract/tap-x
    capabilities: [catalog]
    env: {OWN: v}
    select: [$STREAM.*]
    config:
      a: $OWN
      b: ${MELTANO_PROJECT_ROOT}/x
      c: "  $LEADING"
"#);
    for path in [
        "env.PATH",
        "plugins.extractors.tap-x.select",
        "plugins.extractors.tap-x.config.a",
        "plugins.extractors.tap-x.config.b",
        "plugins.extractors.tap-x.config.c",
    ] {
        assert!(reported(&t, path), "{path}: {:#?}", t.untranslated);
    }
    assert!(
        t.alto_yaml.contains("pip_url: ./extract/tap-x"),
        "{}",
        t.alto_yaml
    );
}

#[test]
fn mappings_become_inheriting_mappers() {
    let t = tr(r#"
plugins:
  mappers:
  - name: meltano-map-transformer
    pip_url: m==1
    mappings:
    - name: hash
      config:
        stream_maps: {users: {email: md5(email), __else__: null}}
"#);
    let p = crate::config::Format::Yaml.parse(&t.alto_yaml).unwrap();
    assert_eq!(
        p.value["default"]["mappers"]["hash"],
        json!({"inherit_from": "meltano-map-transformer",
               "config": {"stream_maps": {"users": {"email": "md5(email)", "__else__": null}}}})
    );
}

#[test]
fn environment_names_alto_cannot_use_are_reported() {
    let t = tr(r#"
environments:
- name: default
- name: prod
- name: PROD
- name: taps
- name: ../up
"#);
    assert!(reported(&t, "environments.../up"));
    assert!(reported(&t, "environments.default"));
    assert!(reported(&t, "environments.PROD"));
    assert!(reported(&t, "environments.taps"));
    assert!(!reported(&t, "environments.prod"));
    load(&t, "prod", &[]).unwrap();
}

#[test]
fn bad_input_points_into_the_file() {
    let text = "plugins:\n  extractors:\n  - name: tap-x\n  - pip_url: x\n";
    let Err(MeltanoError::Invalid { span, message, .. }) = translate(text, "p") else {
        panic!("accepted");
    };
    assert!(message.contains("no `name`"), "{message}");
    let line_start = text[..span.offset()].rfind('\n').map_or(0, |i| i + 1);
    assert!(text[line_start..].starts_with("  - pip_url: x"), "{span:?}");

    let text = "plugins:\n  extractors: [\n";
    let Err(MeltanoError::Syntax { span, .. }) = translate(text, "p") else {
        panic!("accepted");
    };
    assert!(span.offset() <= text.len());

    let text =
        "plugins:\n  extractors:\n  - {name: a, inherit_from: b}\n  - {name: b, inherit_from: a}\n";
    let Err(MeltanoError::Invalid { message, .. }) = translate(text, "p") else {
        panic!("accepted");
    };
    assert!(message.contains("cycle"), "{message}");

    assert!(matches!(
        translate("- a\n- b\n", "p"),
        Err(MeltanoError::Invalid { .. })
    ));
    assert!(matches!(
        translate("plugins: [1]\n", "p"),
        Err(MeltanoError::Invalid { .. })
    ));
}

#[test]
fn an_empty_file_is_an_empty_project() {
    let t = tr("");
    let p = load(&t, "dev", &[]).unwrap();
    assert_eq!(p.name, "proj");
    assert!(p.taps.is_empty());
}

// ----- the YAML emitter -------------------------------------------------------

#[test]
fn tricky_scalars_round_trip() {
    let v = json!({
        "*": "*.*", "!x": "!x", "@format a": "@format {env[X]}", "yes": "yes",
        "1.0": "1.0", "null": "null", "~": "~", "": "", " lead": "trail ",
        "a: b": "a #b", "-": "- x", "multi\nline": "tab\tand\u{7f}\u{85}\u{2028}",
        "quote\"s": "back\\slash", "[": "{", "nums": [1, -2, 1.5, 1e300, 0.0, -0.0],
        "list": [[], {}, [1, [2]], {"a": [{"b": 1}]}], "t": true, "n": null,
        "date": "2024-01-01", "oct": "0o17", "hex": "0x1F", "inf": ".inf", "On": "Off",
        "é": "ünïcode"
    });
    let mut out = String::new();
    if let Value::Object(m) = &v {
        emit_map(&mut out, m, 0);
    }
    assert_eq!(Format::Yaml.parse(&out).unwrap().value, v, "{out}");
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn emitted_yaml_reads_back(v in prop::collection::vec(("[ -~]{0,6}|\\PC{0,4}", json_value()), 0..5)) {
        let m: Map<String, Value> = v.into_iter().collect();
        prop_assume!(!m.is_empty());
        let mut out = String::new();
        emit_map(&mut out, &m, 2);
        let text = format!("default:\n{out}");
        let parsed = Format::Yaml.parse(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        prop_assert_eq!(&parsed.value["default"], &Value::Object(m), "{}", text);
    }
}

// ----- translations against a model of Meltano --------------------------------

const NAMES: [&str; 3] = ["tap-a", "tap-b", "tap-c"];
const ENV_NAMES: [&str; 6] = ["dev", "prod", "ci", "Prod", "default", "taps"];
const VARS: [(&str, &str); 2] = [("A", "pa"), ("B_1", "pb")];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("plain".to_string()),
        Just("$A".to_string()),
        Just("x-${B_1}-{y}".to_string()),
        Just("@format z".to_string()),
        Just("\\$A".to_string()),
        Just("yes".to_string()),
        Just("*.*".to_string()),
        Just("!b.c".to_string()),
        "[a-z{}$ ]{0,6}",
    ]
}

fn config_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::String),
        any::<i32>().prop_map(|n| json!(n)),
        Just(json!(2.5)),
        any::<bool>().prop_map(Value::Bool),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(
                (prop::sample::select(vec!["a", "b", "a.b", "*", "1"]), inner),
                1..3
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn config_map() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "a.b", "host", "1"]),
            config_value(),
        ),
        1..4,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn select() -> impl Strategy<Value = Value> {
    prop::collection::vec(text(), 1..3).prop_map(|v| json!(v))
}

fn metadata() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["*", "s1", "s2"]),
            prop::sample::select(vec!["INCREMENTAL", "FULL_TABLE"]),
            prop::collection::vec(text(), 0..2),
        ),
        1..3,
    )
    .prop_map(|v| {
        let mut m = Map::new();
        for (stream, method, keys) in v {
            m.insert(
                stream.to_string(),
                json!({"replication-method": method, "table-key-properties": keys}),
            );
        }
        Value::Object(m)
    })
}

fn load_schema() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec![
        "fixed".to_string(),
        "s_$A".to_string(),
        "${MELTANO_EXTRACTOR_NAMESPACE}_raw".to_string(),
    ]))
}

fn extractor(i: usize) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::option::of(0..4usize),
        prop::option::of(Just("ns")),
        load_schema(),
        prop::option::of(select()),
        prop::option::of(metadata()),
        prop::option::of(config_map()),
    )
        .prop_map(move |(pip, parent, ns, ls, sel, md, cfg)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(NAMES[i]));
            if pip {
                m.insert("pip_url".into(), json!(format!("{}==1", NAMES[i])));
            }
            if let Some(p) = parent {
                m.insert(
                    "inherit_from".into(),
                    json!(NAMES.get(p).copied().unwrap_or("tap-hub")),
                );
            }
            if let Some(ns) = ns {
                m.insert("namespace".into(), json!(ns));
            }
            if let Some(ls) = ls {
                m.insert("load_schema".into(), json!(ls));
            }
            for (k, v) in [("select", sel), ("metadata", md), ("config", cfg)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn env_override(i: usize) -> impl Strategy<Value = Value> {
    (
        prop::option::of(config_map()),
        prop::option::of(select()),
        prop::option::of(metadata()),
        load_schema(),
    )
        .prop_map(move |(cfg, sel, md, ls)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(NAMES[i]));
            for (k, v) in [("config", cfg), ("select", sel), ("metadata", md)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            if let Some(ls) = ls {
                m.insert("load_schema".into(), json!(ls));
            }
            Value::Object(m)
        })
}

fn vars_map() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(
        prop::collection::btree_map(prop::sample::select(vec!["A", "B_1"]), "[a-z]{1,3}", 1..3)
            .prop_map(|m| json!(m)),
    )
}

fn meltano_doc() -> impl Strategy<Value = Value> {
    let extractors = (
        prop::option::of(extractor(0)),
        prop::option::of(extractor(1)),
        prop::option::of(extractor(2)),
    )
        .prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().collect::<Vec<_>>());
    let env = (
        prop::sample::select(ENV_NAMES.to_vec()),
        vars_map(),
        prop::option::of(env_override(0)),
        prop::option::of(env_override(1)),
        prop::option::of(env_override(2)),
    )
        .prop_map(|(name, vars, a, b, c)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            if let Some(v) = vars {
                m.insert("env".into(), v);
            }
            let overrides: Vec<Value> = [a, b, c].into_iter().flatten().collect();
            m.insert(
                "config".into(),
                json!({"plugins": {"extractors": overrides}}),
            );
            Value::Object(m)
        });
    (extractors, vars_map(), prop::collection::vec(env, 0..4)).prop_map(|(ex, vars, envs)| {
        let mut doc = json!({
            "version": 1,
            "plugins": {
                "extractors": ex,
                "loaders": [{"name": "target-x", "pip_url": "x==1",
                             "config": {"schema": "$MELTANO_EXTRACT__LOAD_SCHEMA"}}],
            },
            "environments": envs,
        });
        if let Some(v) = vars {
            doc["env"] = v;
        }
        doc
    })
}

/// Meltano's resolution, written from its documented rules: per-leaf layering
/// (maps merge, anything else replaces), an inheriting plugin's own values
/// (environment first) over its parent's, `$VAR` expansion.
///
/// A plugin's own layers (base, then its environment override) are merged
/// first and the result laid over its parent's: Meltano looks each dotted
/// setting up on the plugin before its parent, so a parent's `a.b` survives
/// a child whose base sets `a` to a scalar and whose environment sets `a.a`
/// (Meltano 4.4 gives `a: {b: ..., a: ...}`, as alto does).
struct Model<'d> {
    doc: &'d Value,
    env: Option<&'d Value>,
}

impl<'d> Model<'d> {
    fn plugin(&self, name: &str) -> Option<&'d Value> {
        self.doc["plugins"]["extractors"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    fn override_of(&self, name: &str) -> Option<&'d Value> {
        self.env?["config"]["plugins"]["extractors"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
    }

    /// Nearest first.
    fn chain(&self, name: &str) -> Vec<&'d Value> {
        let mut out = Vec::new();
        let mut cur = self.plugin(name);
        while let Some(p) = cur {
            if out.iter().any(|q: &&Value| q["name"] == p["name"]) {
                break;
            }
            out.push(p);
            cur = p["inherit_from"].as_str().and_then(|n| self.plugin(n));
        }
        out
    }

    /// Layers of `key`, lowest first.
    fn layers(&self, name: &str, key: &str) -> Vec<&'d Value> {
        let mut out = Vec::new();
        for p in self.chain(name).into_iter().rev() {
            if let Some(v) = p.get(key) {
                out.push(v);
            }
            if let Some(v) = self
                .override_of(p["name"].as_str().unwrap_or_default())
                .and_then(|o| o.get(key))
            {
                out.push(v);
            }
        }
        out
    }

    /// `key` resolved: each plugin of the chain its base then its
    /// environment override, laid over its parent's, root first.
    fn merged(&self, name: &str, key: &str) -> Value {
        let nested = |v: &Value| match v {
            Value::Object(m) if key == "config" => Value::Object(nest_dotted(m)),
            other => other.clone(),
        };
        let mut out = json!({});
        for p in self.chain(name).into_iter().rev() {
            let base = p.get(key);
            let env = self
                .override_of(p["name"].as_str().unwrap_or_default())
                .and_then(|o| o.get(key));
            let mut own = json!({});
            for layer in [base, env].into_iter().flatten() {
                crate::config::tree::overlay(&mut own, &nested(layer));
            }
            crate::config::tree::overlay(&mut out, &own);
        }
        out
    }

    fn vars(&self) -> Map<String, Value> {
        let mut vars: Map<String, Value> = VARS
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        for src in [self.doc.get("env"), self.env.and_then(|e| e.get("env"))] {
            if let Some(Value::Object(m)) = src {
                vars.extend(m.clone());
            }
        }
        vars
    }

    fn expand(&self, v: &Value, vars: &Map<String, Value>) -> Value {
        match v {
            Value::String(s) => Value::String(
                meltano_pieces(s)
                    .into_iter()
                    .map(|p| match p {
                        Piece::Text(t) => t,
                        Piece::Var(v) => vars[&v].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|c| self.expand(c, vars)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, c)| (k.clone(), self.expand(c, vars)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn config(&self, name: &str) -> Value {
        self.expand(&self.merged(name, "config"), &self.vars())
    }

    /// Variables the resolved config reads that nothing sets.
    fn unset_vars(&self, name: &str) -> BTreeSet<String> {
        let merged = self.merged(name, "config");
        let mut strings = Vec::new();
        collect_strings(&merged, &mut strings);
        let vars = self.vars();
        strings
            .into_iter()
            .flat_map(meltano_pieces)
            .filter_map(|p| match p {
                Piece::Var(v) if !vars.contains_key(&v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn select(&self, name: &str) -> Vec<String> {
        match self.layers(name, "select").last() {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            _ => vec!["*.*".to_string()],
        }
    }

    fn load_schema(&self, name: &str) -> String {
        let raw = self
            .layers(name, "load_schema")
            .last()
            .and_then(|v| v.as_str())
            .unwrap_or("$MELTANO_EXTRACTOR_NAMESPACE")
            .to_string();
        let plugin = self.plugin(name).cloned().unwrap_or_default();
        let ns = plugin["namespace"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| name.replace('-', "_"));
        let mut vars = self.vars();
        vars.insert("MELTANO_EXTRACTOR_NAMESPACE".into(), json!(ns));
        self.expand(&json!(raw), &vars)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn translations_load_and_resolve_as_meltano_does(doc in meltano_doc()) {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        let t = match translate(&text, "proj") {
            Ok(t) => t,
            // Only an inheritance cycle and a name given twice are refused;
            // Meltano refuses them too.
            Err(MeltanoError::Invalid { message, .. })
                if message.contains("cycle") || message.contains("twice") => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}\n{text}"))),
        };
        let envs: Vec<&Value> = doc["environments"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        // The environments alto gets a section for: the first of each name,
        // and `dev` standing for Meltano's base when Meltano has none.
        let mut cases: Vec<(String, Option<&Value>)> = Vec::new();
        for e in &envs {
            let name = e["name"].as_str().unwrap_or_default();
            if reported(&t, &format!("environments.{name}")) {
                continue;
            }
            if !cases.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                cases.push((name.to_string(), Some(*e)));
            }
        }
        if !cases.iter().any(|(n, _)| n == "dev") {
            cases.push(("dev".into(), None));
        }
        for (name, env) in cases {
            let p = load(&t, &name, &VARS).map_err(TestCaseError::fail)?;
            let model = Model { doc: &doc, env };
            for tap in p.taps.keys() {
                let ctx = format!("{name} {tap}\n{text}\n{}", t.alto_yaml);
                let unset = model.unset_vars(tap);
                match p.render_config(tap, None) {
                    // Meltano renders an unset variable as an empty string
                    // (and drops a value that was nothing else); alto
                    // refuses, as Meltano's strict_env_var_mode does.
                    Err(crate::config::ConfigError::UnsetVariable { var, .. }) if !unset.is_empty() => {
                        prop_assert!(unset.contains(&var), "{} is set {:?} {}", var, unset, ctx);
                    }
                    Ok(cfg) if unset.is_empty() => {
                        prop_assert_eq!(&cfg.value, &model.config(tap), "config {}", ctx);
                    }
                    other => return Err(TestCaseError::fail(format!("{other:?}, unset {unset:?} {ctx}"))),
                }
                prop_assert_eq!(p.tap(tap).map_err(|e| TestCaseError::fail(format!("{e:?}")))?.select(), model.select(tap), "select {}", ctx);
                let md = p.tap(tap).map(|t| t.metadata()).unwrap_or_default();
                prop_assert_eq!(Value::Object(md), model.merged(tap, "metadata"), "metadata {}", ctx);
                let target = p.render_config("target-x", Some(tap)).map_err(|e| TestCaseError::fail(format!("{e:?} {ctx}")))?;
                prop_assert_eq!(&target.value["schema"], &json!(model.load_schema(tap)), "load schema {}", ctx);
            }
        }
    }
}

#[test]
fn jobs_schedules_and_commands_translate_or_are_reported_whole() {
    let t = tr(r#"
version: 1
plugins:
  extractors:
  - name: tap-a
    pip_url: tap-a==1
  loaders:
  - name: target-b
    pip_url: target-b==1
  mappers:
  - name: mapper
    pip_url: m==1
    mappings:
    - name: hash-it
      config: {}
  utilities:
  - name: dbt
    pip_url: dbt-core
    commands:
      run: run --project-dir transform
      test:
        args: test --select 'tag:x'
        description: tests
      docker:
        args: serve
        container_spec: {image: x}
jobs:
- name: daily
  tasks:
  - tap-a hash-it target-b
  - [tap-a target-b, dbt:run]
- name: broken
  tasks: [tap-a target-b, dbt:nope]
- name: dangling
  tasks: [tap-a]
schedules:
- name: nightly
  job: daily
  interval: 0 2 * * *
- name: pipe
  extractor: tap-a
  loader: target-b
  transform: run
  interval: '@hourly'
- name: once
  job: daily
  interval: '@once'
- name: of-broken
  job: broken
  interval: '@daily'
- name: bad-cron
  job: daily
  interval: 0 2 * *
"#);
    let y = &t.alto_yaml;
    for line in [
        "      commands:\n        run: \"run --project-dir transform\"\n        test: \"test --select 'tag:x'\"\n",
        "  jobs:\n    daily: [\"tap-a:hash-it:target-b\", \"tap-a:target-b\", \"dbt:run\"]\n    pipe: [\"tap-a:target-b\"]\n",
        "  schedules:\n    nightly:\n      job: daily\n      interval: \"0 2 * * *\"\n    pipe:\n      job: pipe\n      interval: \"@hourly\"\n",
    ] {
        assert!(y.contains(line), "lacks {line:?}:\n{y}");
    }
    for path in [
        "jobs.broken",
        "jobs.dangling",
        "schedules.pipe.transform",
        "schedules.once",
        "schedules.of-broken",
        "schedules.bad-cron",
        "plugins.utilities.dbt.commands.docker.container_spec",
    ] {
        assert!(
            reported(&t, path),
            "{path} not reported: {:#?}",
            t.untranslated
        );
    }
    assert!(!reported(&t, "plugins.utilities.dbt.commands"));
    assert!(!reported(&t, "jobs.daily") && !reported(&t, "schedules.nightly"));
}
