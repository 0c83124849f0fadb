//! Pipeline derivations: what decides the output of a `tap:target`,
//! `tap:m1:target`, `tap:reservoir` or `reservoir:tap-target` run — the
//! plugins' keys, the runtime catalog, the `~` hash rules and each rendered
//! config with its secrets left out — keyed like every other derivation.
//! Names are not inputs: a renamed plugin, or a rotated password, is the
//! same pipeline.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Key, PluginDerivation, canonical_json};
use crate::config::{ConfigError, Plugin, Project};

/// What a pipeline run does with its plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineKind {
    /// `tap:[mappers:]target`
    Run,
    /// `tap:reservoir`
    Ingest,
    /// `reservoir:tap-target`
    Replay,
}

/// One plugin of a pipeline. Only `key` and `config` are inputs; the name
/// and `pip_url` are kept to say what changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// `tap`, `mapper` or `target`.
    pub role: String,
    pub name: String,
    pub key: Key,
    /// As shown: secrets redacted.
    pub pip_url: String,
    /// blake3 of the rendered config's canonical JSON, each secret value
    /// replaced by `REDACTED`.
    pub config: String,
}

/// The tap's catalog as the pipeline hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "hash")]
pub enum CatalogInput {
    /// The tap takes no catalog (or the pipeline runs no tap: a replay).
    None,
    /// blake3 of the runtime catalog's canonical JSON (select and metadata
    /// rules applied).
    Runtime(String),
    /// Not discovered yet: the key is known once it is.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineDerivation {
    /// `None` while the catalog is unknown.
    pub key: Option<Key>,
    pub kind: PipelineKind,
    /// In pipe order: tap, mappers, target (an ingest has only the tap, a
    /// replay only the target).
    pub steps: Vec<Step>,
    pub catalog: CatalogInput,
    /// The tap's `~` rules, sorted: the order they are written in hashes
    /// nothing differently.
    pub hash_rules: Vec<String>,
}

/// The version of the pipeline inputs' encoding (beside the key prefix
/// every derivation shares): bump it when the inputs change shape.
const PIPELINE_VERSION: u64 = 1;

impl PipelineDerivation {
    /// Exactly what the key is computed from.
    pub fn inputs(&self) -> Value {
        json!({
            "kind": "pipeline",
            "version": PIPELINE_VERSION,
            "type": self.kind,
            "plugins": self.steps.iter().map(|s| json!({"role": s.role, "key": s.key, "config": s.config})).collect::<Vec<_>>(),
            "catalog": match &self.catalog {
                CatalogInput::Runtime(h) => Value::String(h.clone()),
                _ => Value::Null,
            },
            "hash_rules": self.hash_rules,
        })
    }

    /// What changed from `old` (the derivation that produced the current
    /// state) to this one, in words; empty when the key is the same.
    pub fn changes_since(&self, old: &PipelineDerivation) -> Vec<String> {
        let mut out = Vec::new();
        if self.key.is_some() && self.key == old.key {
            return out;
        }
        // Steps are paired by role and place: a renamed plugin is the same step.
        for role in ["tap", "mapper", "target"] {
            let mine: Vec<&Step> = self.steps.iter().filter(|s| s.role == role).collect();
            let theirs: Vec<&Step> = old.steps.iter().filter(|s| s.role == role).collect();
            for (i, s) in mine.iter().enumerate() {
                let Some(o) = theirs.get(i) else {
                    out.push(format!("{role} {} is new since the last run", s.name));
                    continue;
                };
                if o.key != s.key {
                    let what = if o.pip_url != s.pip_url {
                        format!("{} → {}", o.pip_url, s.pip_url)
                    } else {
                        format!("build {} → {}", o.key, s.key)
                    };
                    out.push(format!("{} changed since the last run: {what}", s.name));
                }
                if o.config != s.config {
                    out.push(format!(
                        "the config of {} changed since the last run",
                        s.name
                    ));
                }
            }
            for o in theirs.iter().skip(mine.len()) {
                out.push(format!("{role} {} is gone since the last run", o.name));
            }
        }
        if let (CatalogInput::Runtime(a), CatalogInput::Runtime(b)) = (&old.catalog, &self.catalog)
            && a != b
        {
            out.push("the runtime catalog changed since the last run (select or metadata rules, or a new discovery)".into());
        }
        if old.hash_rules != self.hash_rules {
            out.push(format!(
                "the hash rules changed since the last run: [{}] → [{}]",
                old.hash_rules.join(", "),
                self.hash_rules.join(", ")
            ));
        }
        out
    }
}

/// blake3 of a value's canonical JSON (a runtime catalog's, a config's).
pub fn content_hash(v: &Value) -> String {
    blake3::hash(canonical_json(v).as_bytes())
        .to_hex()
        .to_string()
}

/// The `~` hash rules of a tap, sorted and without repeats.
pub fn hash_rules_of(tap: &Plugin) -> Vec<String> {
    let mut rules: Vec<String> = tap
        .select()
        .into_iter()
        .filter(|r| r.starts_with('~'))
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

/// The pipeline derivation of `plugins` (in pipe order, each with its
/// plugin derivation) run as `kind` for `tap`. A target's config is
/// rendered for the tap, as a run renders it.
pub fn pipeline_derivation(
    project: &Project,
    kind: PipelineKind,
    tap: &Plugin,
    plugins: &[(&Plugin, &PluginDerivation)],
    catalog: CatalogInput,
) -> Result<PipelineDerivation, ConfigError> {
    let mut steps = Vec::new();
    for (p, d) in plugins {
        let role = p.kind.noun().to_string();
        let for_tap = (p.kind == crate::config::PluginKind::Target).then_some(tap.name.as_str());
        let config = project.render_config(&p.name, for_tap)?.redacted();
        steps.push(Step {
            role,
            name: p.name.clone(),
            key: d.key.clone(),
            pip_url: d.pip_url.clone(),
            config: content_hash(&config),
        });
    }
    let mut d = PipelineDerivation {
        key: None,
        kind,
        steps,
        catalog,
        hash_rules: hash_rules_of(tap),
    };
    if d.catalog != CatalogInput::Unknown {
        d.key = Some(Key::of(&d.inputs()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Builder, Builders, Platform, plugin_derivation};

    fn project(yaml: &str, secret: &str) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alto.yaml"), yaml).unwrap();
        std::fs::write(
            dir.path().join("alto.secrets.yaml"),
            format!("default:\n  taps:\n    tap-x:\n      config: {{password: {secret}}}\n"),
        )
        .unwrap();
        let opts = crate::config::LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vec![("TOKEN".into(), secret.into())],
            strict: false,
            vault_layer: false,
        };
        let p = crate::config::load(&opts).unwrap();
        (dir, p)
    }

    fn platform() -> Platform {
        Platform {
            implementation: "cpython".into(),
            python_version: "3.11".into(),
            abi: "cp311".into(),
            platform: "linux_x86_64".into(),
            libc: "glibc 2.36".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    fn builders() -> Builders {
        let b = Builder {
            tool: "uv+pex".into(),
            version: "2".into(),
            flags: vec![],
        };
        Builders {
            uv: b.clone(),
            pip: b,
        }
    }

    /// The key of `tap:target` in `yaml`, the tap's password `secret`, its
    /// runtime catalog made from a base catalog of streams `streams`.
    fn key_of(yaml: &str, secret: &str, streams: &str, tap: &str, target: &str) -> Key {
        let (_d, p) = project(yaml, secret);
        let tap = p.tap(tap).unwrap();
        let target = p.target(target).unwrap();
        let pd = |pl: &Plugin| {
            plugin_derivation(
                &p,
                pl,
                &platform(),
                std::path::Path::new("python3"),
                &builders(),
            )
            .unwrap()
            .unwrap()
        };
        let (dt, dg) = (pd(tap), pd(target));
        let base = json!({"streams": streams.split(',').map(|s| json!({
            "tap_stream_id": s, "stream": s,
            "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}},
            "metadata": [{"breadcrumb": [], "metadata": {}}],
        })).collect::<Vec<_>>()});
        use crate::singer::catalog::{Rules, Strategy, apply};
        let rules = Rules {
            select: tap.select(),
            metadata: tap.metadata(),
            strategy: Strategy::Prune,
        };
        let runtime = apply(&base, &rules).unwrap().catalog;
        pipeline_derivation(
            &p,
            PipelineKind::Run,
            tap,
            &[(tap, &dt), (target, &dg)],
            CatalogInput::Runtime(content_hash(&runtime)),
        )
        .unwrap()
        .key
        .unwrap()
    }

    const BASE: &str = "default:
  taps:
    tap-x:
      pip_url: tap-x==1
      select: ['users.*', '~users.email']
      config: {host: db, user: '@format {env[TOKEN]}'}
  targets:
    target-y: {pip_url: target-y==1, config: {dir: out}}
";

    #[test]
    fn the_key_changes_when_and_only_when_an_input_does() {
        let base = key_of(BASE, "s1", "users,orders", "tap-x", "target-y");
        assert_eq!(
            base,
            key_of(BASE, "s1", "users,orders", "tap-x", "target-y")
        );
        // Secret values (a secrets file, `{env[...]}`) are not inputs.
        assert_eq!(
            base,
            key_of(BASE, "rotated", "users,orders", "tap-x", "target-y")
        );
        // Nor are names: the same plugins renamed are the same pipeline.
        let renamed = BASE
            .replace("tap-x:", "tap-renamed:")
            .replace("target-y:", "target-z:");
        // (the secrets file names tap-x only: both get a password from
        // the environment, so their configs have the same shape)
        let renamed = renamed.replace("user: ", "password: '@format {env[TOKEN]}', user: ");
        let original = BASE.replace("user: ", "password: '@format {env[TOKEN]}', user: ");
        assert_eq!(
            key_of(&original, "s1", "users,orders", "tap-x", "target-y"),
            key_of(&renamed, "s1", "users,orders", "tap-renamed", "target-z")
        );
        // Every real input changes it.
        let changed = [
            BASE.replace("tap-x==1", "tap-x==2"),
            BASE.replace("target-y==1", "target-y==2"),
            BASE.replace("host: db", "host: db2"),
            BASE.replace("dir: out", "dir: out2"),
            BASE.replace("'~users.email'", "'~users.phone'"),
            // A select rule, through the runtime catalog it makes.
            BASE.replace("'users.*', ", "'users.*', 'orders.*', "),
        ];
        for yaml in &changed {
            assert_ne!(
                base,
                key_of(yaml, "s1", "users,orders", "tap-x", "target-y"),
                "{yaml}"
            );
        }
        // A discovered stream the rules do not select changes nothing.
        assert_eq!(
            base,
            key_of(BASE, "s1", "users,orders,items", "tap-x", "target-y")
        );
        // The order hash rules are written in is not.
        let two = BASE.replace("'~users.email'", "'~users.email', '~users.phone'");
        let swapped = BASE.replace("'~users.email'", "'~users.phone', '~users.email'");
        assert_eq!(
            key_of(&two, "s1", "users,orders", "tap-x", "target-y"),
            key_of(&swapped, "s1", "users,orders", "tap-x", "target-y")
        );
    }

    #[test]
    fn no_secret_and_no_name_enters_the_inputs() {
        let (_d, p) = project(BASE, "sekrit-value");
        let tap = p.tap("tap-x").unwrap();
        let d = plugin_derivation(
            &p,
            tap,
            &platform(),
            std::path::Path::new("python3"),
            &builders(),
        )
        .unwrap()
        .unwrap();
        let pd = pipeline_derivation(
            &p,
            PipelineKind::Ingest,
            tap,
            &[(tap, &d)],
            CatalogInput::Unknown,
        )
        .unwrap();
        assert_eq!(pd.key, None, "no key before discovery");
        let inputs = canonical_json(&pd.inputs());
        assert!(!inputs.contains("sekrit"), "{inputs}");
        assert!(!inputs.contains("tap-x"), "{inputs}");
        assert_eq!(pd.hash_rules, vec!["~users.email"]);
    }

    #[test]
    fn changes_are_named() {
        let step = |name: &str, key: &str, pip: &str| Step {
            role: "tap".into(),
            name: name.into(),
            key: Key::of(&json!(key)),
            pip_url: pip.into(),
            config: "c".into(),
        };
        let d = |steps: Vec<Step>, rules: &[&str]| {
            let mut d = PipelineDerivation {
                key: None,
                kind: PipelineKind::Ingest,
                steps,
                catalog: CatalogInput::Runtime("h".into()),
                hash_rules: rules.iter().map(|s| s.to_string()).collect(),
            };
            d.key = Some(Key::of(&d.inputs()));
            d
        };
        let old = d(vec![step("tap-x", "1", "tap-x==0.10.0")], &[]);
        let new = d(vec![step("tap-x", "2", "tap-x==0.11.0")], &["~a.b"]);
        assert!(new.changes_since(&new.clone()).is_empty());
        assert_eq!(
            new.changes_since(&old),
            vec![
                "tap-x changed since the last run: tap-x==0.10.0 → tap-x==0.11.0",
                "the hash rules changed since the last run: [] → [~a.b]"
            ]
        );
        // Renamed, nothing else: the same key, nothing to say.
        let renamed = d(vec![step("tap-y", "1", "tap-x==0.10.0")], &[]);
        assert_eq!(renamed.key, old.key);
        assert!(renamed.changes_since(&old).is_empty());
    }
}
