//! Base catalogs: a tap's `--discover` output is a derivation output too,
//! keyed by the tap's plugin key, the tap's name and the hash of whatever
//! rendered config keys the user lists in `catalog_inputs`. Cached in the
//! local store and at the original's remote path `catalogs/<tap>.base.json`.

use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{RealizeError, Realizer};
use crate::config::Plugin;
use crate::eval::{Key, PluginDerivation};
use crate::store::local::hash_file;
use crate::store::{self, BuilderInfo, LocalStatus, ObjectMeta};

/// The base catalog's derivation inputs and key.
pub fn derivation(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
) -> Result<(Key, Value), RealizeError> {
    let keys = tap.str_list("catalog_inputs");
    let mut inputs = serde_json::Map::new();
    if !keys.is_empty() {
        let config = realizer.project.render_config(&tap.name, None)?.value;
        for k in keys {
            let v = config.get(&k).cloned().unwrap_or(Value::Null);
            inputs.insert(
                k,
                Value::String(blake3::hash(v.to_string().as_bytes()).to_hex().to_string()),
            );
        }
    }
    let drv = json!({"kind": "catalog", "plugin": plugin.key, "tap": tap.name, "inputs": inputs});
    Ok((Key::of(&drv), drv))
}

fn remote_paths(tap: &str) -> (String, String) {
    (
        format!("catalogs/{tap}.base.json"),
        format!("catalogs/{tap}.base.meta.json"),
    )
}

/// The tap's base catalog: local store, else the remote, else `--discover`.
pub fn base_catalog(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
    config: &Path,
) -> Result<Value, RealizeError> {
    let (key, drv) = derivation(realizer, tap, plugin)?;
    // Shared store lock and a temporary root: gc cannot take it meanwhile.
    let _held = realizer.hold(std::slice::from_ref(&key))?;
    if let Some(v) = cached_held(realizer, tap, &key)? {
        return Ok(v);
    }
    discover(realizer, tap, plugin, config, &key, drv)
}

/// The tap's base catalog if it is in the local store or the remote
/// (substituted then), without discovering: `None` when a run would discover.
pub fn cached(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
) -> Result<Option<Value>, RealizeError> {
    let (key, _) = derivation(realizer, tap, plugin)?;
    let _held = realizer.hold(std::slice::from_ref(&key))?;
    cached_held(realizer, tap, &key)
}

/// The tap's base catalog if it is in the local store; the remote is not asked.
pub fn local(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
) -> Result<Option<Value>, RealizeError> {
    let (key, _) = derivation(realizer, tap, plugin)?;
    Ok(match realizer.local.status(&key, false)? {
        LocalStatus::Valid(_) => read_catalog(&realizer.local.data_path(&key)),
        _ => None,
    })
}

/// [`cached`], with the store lock and the key's temporary root held.
fn cached_held(
    realizer: &Realizer,
    tap: &Plugin,
    key: &Key,
) -> Result<Option<Value>, RealizeError> {
    let key = key.clone();
    if let LocalStatus::Valid(_) = realizer.local.status(&key, false)?
        && let Some(v) = read_catalog(&realizer.local.data_path(&key))
    {
        return Ok(Some(v));
    }
    let (data_rel, meta_rel) = remote_paths(&tap.name);
    let remote = realizer.remote().ok();
    if let Some(remote) = &remote
        && let Ok(Some(meta)) = remote.read_project_file(&meta_rel)
    {
        let meta: Option<ObjectMeta> = serde_json::from_slice(&meta.bytes).ok();
        if let (Some(meta), Ok(Some(data))) = (
            meta.filter(|m| m.key == key),
            remote.read_project_file(&data_rel),
        ) {
            if blake3::hash(&data.bytes).to_hex().as_str() == meta.blake3 {
                let tmp = realizer.local.temp_path(&format!("{key}.catalog"));
                std::fs::write(&tmp, &data.bytes)
                    .map_err(store::StoreError::io("cannot write", &tmp))?;
                realizer.local.commit(&key, &tmp, &meta, false)?;
                if let Some(v) = read_catalog(&realizer.local.data_path(&key)) {
                    return Ok(Some(v));
                }
            } else {
                tracing::warn!(
                    "the remote base catalog of {} does not match its metadata; discovering again",
                    tap.name
                );
            }
        }
    }
    Ok(None)
}

fn read_catalog(path: &Path) -> Option<Value> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Runs `--discover`; a tap that fails leaves no catalog behind.
fn discover(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
    config: &Path,
    key: &Key,
    drv: Value,
) -> Result<Value, RealizeError> {
    tracing::info!("{}: discovering streams", tap.name);
    let tmp = realizer.local.temp_path(&format!("{key}.discover"));
    let out = std::fs::File::create(&tmp).map_err(store::StoreError::io("cannot create", &tmp))?;
    let mut cmd = realizer.command(tap, plugin, false)?;
    cmd.arg("--config")
        .arg(config)
        .arg("--discover")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped());
    let program = std::path::PathBuf::from(cmd.get_program());
    let output = crate::interrupt::Process::spawn(&mut cmd)
        .and_then(|mut p| p.wait_with_output())
        .map_err(|source| RealizeError::Spawn { program, source })?;
    RealizeError::if_signalled(|| format!("discovering the streams of {}", tap.name)).inspect_err(
        |_| {
            let _ = std::fs::remove_file(&tmp);
        },
    )?;
    let fail = |message: String| {
        let _ = std::fs::remove_file(&tmp);
        RealizeError::Discovery {
            tap: tap.name.clone(),
            message,
            tail: super::tail(&String::from_utf8_lossy(&output.stderr), 15),
        }
    };
    if !output.status.success() {
        return Err(fail(format!(
            "it exited with {}",
            output
                .status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into())
        )));
    }
    let catalog: Value = match std::fs::read(&tmp)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) => v,
        None => return Err(fail("its output is not JSON".into())),
    };
    if !catalog.get("streams").is_some_and(Value::is_array) {
        return Err(fail("its output has no `streams` list".into()));
    }
    let (blake3, size) = hash_file(&tmp).map_err(store::StoreError::io("cannot read", &tmp))?;
    let meta = ObjectMeta {
        format: store::META_FORMAT.into(),
        key: key.clone(),
        kind: "catalog".into(),
        derivation: drv,
        blake3,
        size,
        created: store::now_rfc3339(),
        builder: BuilderInfo::here(),
        signature: None,
    };
    let bytes = std::fs::read(&tmp).map_err(store::StoreError::io("cannot read", &tmp))?;
    realizer.local.commit(key, &tmp, &meta, false)?;
    if let Ok(remote) = realizer.remote() {
        let (data_rel, meta_rel) = remote_paths(&tap.name);
        // Content first, then the record naming its key.
        let pushed = remote
            .overwrite_project_file(&data_rel, Bytes::from(bytes))
            .and_then(|_| {
                remote.overwrite_project_file(
                    &meta_rel,
                    Bytes::from(serde_json::to_vec_pretty(&meta).unwrap_or_default()),
                )
            });
        if let Err(e) = pushed {
            tracing::warn!("could not upload the base catalog of {}: {e}", tap.name);
        }
    }
    Ok(catalog)
}

/// Forgets the tap's base catalog locally and remotely: the next run discovers again.
pub fn clean(
    realizer: &Realizer,
    tap: &Plugin,
    plugin: &PluginDerivation,
) -> Result<(), RealizeError> {
    let (key, _) = derivation(realizer, tap, plugin)?;
    realizer.local.remove(&key)?;
    let (data_rel, meta_rel) = remote_paths(&tap.name);
    let remote = realizer.remote()?;
    remote.delete_project_file(&meta_rel)?;
    remote.delete_project_file(&data_rel)?;
    Ok(())
}
