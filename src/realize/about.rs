//! A plugin's `--about --format json` (what Singer SDK plugins answer), read
//! for its `capabilities` when the config has none. The answer is a
//! derivation output of the plugin, keyed by the plugin's key alone (one
//! `--about` per plugin key), cached in the local store and shared through
//! the project's remote at `about/<key>.json` like base catalogs.

use std::process::Stdio;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{RealizeError, Realizer};
use crate::config::Plugin;
use crate::eval::{Key, PluginDerivation};
use crate::store::local::hash_file;
use crate::store::{self, BuilderInfo, LocalStatus, ObjectMeta};

/// The `--about` output's derivation: the plugin's key, nothing else.
pub fn derivation(plugin: &PluginDerivation) -> (Key, Value) {
    let drv = json!({"kind": "about", "plugin": plugin.key});
    (Key::of(&drv), drv)
}

fn remote_paths(key: &Key) -> (String, String) {
    (
        format!("about/{key}.json"),
        format!("about/{key}.meta.json"),
    )
}

fn read_json(path: &std::path::Path) -> Option<Value> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The answer if it is local or in the remote (substituted then), without
/// running the plugin.
pub fn cached(realizer: &Realizer, d: &PluginDerivation) -> Result<Option<Value>, RealizeError> {
    let (key, _) = derivation(d);
    if let LocalStatus::Valid(_) = realizer.local.status(&key, false)?
        && let Some(v) = read_json(&realizer.local.data_path(&key))
    {
        return Ok(Some(v));
    }
    let Ok(remote) = realizer.remote() else {
        return Ok(None);
    };
    let (data_rel, meta_rel) = remote_paths(&key);
    let Ok(Some(meta)) = remote.read_project_file(&meta_rel) else {
        return Ok(None);
    };
    let meta: Option<ObjectMeta> = serde_json::from_slice(&meta.bytes).ok();
    let (Some(meta), Ok(Some(data))) = (
        meta.filter(|m| m.key == key),
        remote.read_project_file(&data_rel),
    ) else {
        return Ok(None);
    };
    if blake3::hash(&data.bytes).to_hex().as_str() != meta.blake3 {
        tracing::warn!(
            "the remote's {data_rel} does not match its metadata; asking the plugin again"
        );
        return Ok(None);
    }
    let tmp = realizer.local.temp_path(&format!("{key}.about"));
    std::fs::write(&tmp, &data.bytes).map_err(store::StoreError::io("cannot write", &tmp))?;
    realizer.local.commit(&key, &tmp, &meta, false)?;
    Ok(read_json(&realizer.local.data_path(&key)))
}

/// The plugin's `--about` as JSON: cached, else asked (`--about --format
/// json`, then plain `--about` for plugins that print JSON without being
/// asked) and kept locally and in the remote. `Err` with the reason when
/// the plugin cannot answer.
pub fn about(
    realizer: &Realizer,
    plugin: &Plugin,
    d: &PluginDerivation,
) -> Result<Value, RealizeError> {
    if let Some(v) = cached(realizer, d)? {
        return Ok(v);
    }
    let (key, drv) = derivation(d);
    tracing::info!("{}: asking its --about for its capabilities", plugin.name);
    let mut reason = String::new();
    for args in [&["--about", "--format", "json"][..], &["--about"][..]] {
        let mut cmd = realizer.command(plugin, d, false)?;
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = std::path::PathBuf::from(cmd.get_program());
        let output = crate::interrupt::Process::spawn(&mut cmd)
            .and_then(|mut p| p.wait_with_output())
            .map_err(|source| RealizeError::Spawn { program, source })?;
        RealizeError::if_signalled(|| format!("asking {} for its --about", plugin.name))?;
        let answer = if output.status.success() {
            serde_json::from_slice::<Value>(&output.stdout)
                .ok()
                .filter(Value::is_object)
        } else {
            None
        };
        let Some(answer) = answer else {
            reason = if output.status.success() {
                format!("`{}` printed no JSON object", args.join(" "))
            } else {
                format!(
                    "`{}` exited with {}: {}",
                    args.join(" "),
                    output
                        .status
                        .code()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "a signal".into()),
                    super::tail(&String::from_utf8_lossy(&output.stderr), 3)
                )
            };
            continue;
        };
        keep(realizer, &plugin.name, &key, drv, &answer)?;
        return Ok(answer);
    }
    Err(RealizeError::NoCapabilities {
        plugin: plugin.name.clone(),
        section: plugin.kind.section().to_string(),
        reason,
    })
}

/// Commits the answer to the local store and publishes it to the remote
/// (content first, then the record naming its key); an upload that fails is
/// a warning.
fn keep(
    realizer: &Realizer,
    name: &str,
    key: &Key,
    drv: Value,
    answer: &Value,
) -> Result<(), RealizeError> {
    let bytes = serde_json::to_vec_pretty(answer).unwrap_or_default();
    let tmp = realizer.local.temp_path(&format!("{key}.about"));
    std::fs::write(&tmp, &bytes).map_err(store::StoreError::io("cannot write", &tmp))?;
    let (blake3, size) = hash_file(&tmp).map_err(store::StoreError::io("cannot read", &tmp))?;
    let meta = ObjectMeta {
        format: store::META_FORMAT.into(),
        key: key.clone(),
        kind: "about".into(),
        derivation: drv,
        blake3,
        size,
        created: store::now_rfc3339(),
        builder: BuilderInfo::here(),
        signature: None,
    };
    realizer.local.commit(key, &tmp, &meta, false)?;
    if let Ok(remote) = realizer.remote() {
        let (data_rel, meta_rel) = remote_paths(key);
        let pushed = remote
            .overwrite_project_file(&data_rel, Bytes::from(bytes))
            .and_then(|_| {
                remote.overwrite_project_file(
                    &meta_rel,
                    Bytes::from(serde_json::to_vec_pretty(&meta).unwrap_or_default()),
                )
            });
        if let Err(e) = pushed {
            tracing::warn!("could not upload the --about of {name}: {e}");
        }
    }
    Ok(())
}

fn listed(answer: &Value) -> Option<Vec<String>> {
    answer
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|caps| {
            caps.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
}

/// The capabilities known without running the plugin: configured, else a
/// cached `--about`'s; `None` when the plugin would have to be asked.
pub fn known_capabilities(
    realizer: &Realizer,
    plugin: &Plugin,
    d: Option<&PluginDerivation>,
) -> Result<Option<Vec<String>>, RealizeError> {
    if plugin.spec.contains_key("capabilities") {
        return Ok(Some(plugin.capabilities()));
    }
    let Some(d) = d else { return Ok(None) };
    Ok(cached(realizer, d)?.as_ref().and_then(listed))
}

/// The capabilities a plugin runs with: its configured `capabilities`,
/// else what its `--about` says.
pub fn capabilities(
    realizer: &Realizer,
    plugin: &Plugin,
    d: &PluginDerivation,
) -> Result<Vec<String>, RealizeError> {
    if plugin.spec.contains_key("capabilities") {
        return Ok(plugin.capabilities());
    }
    let answer = about(realizer, plugin, d)?;
    match listed(&answer) {
        Some(caps) => Ok(caps),
        None => Err(RealizeError::NoCapabilities {
            plugin: plugin.name.clone(),
            section: plugin.kind.section().to_string(),
            reason: "its answer has no `capabilities` list".into(),
        }),
    }
}
