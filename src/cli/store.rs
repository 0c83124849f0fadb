//! `alto store verify|export|import|keygen`: maintaining the local store.

use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::Project;
use crate::realize::{Options, Realizer};
use crate::store::{self, LocalStore, roots};
use serde_json::{Value, json};

pub fn verify(g: &Global, repair: bool) -> Result<(), Error> {
    let local = LocalStore::open(&store::cache_dir())?;
    let checks = store::verify::verify_local(&local, repair)?;
    let mut report = Vec::new();
    let mut damaged = 0;
    for c in &checks {
        if let Some(r) = &c.reason {
            damaged += 1;
            tracing::error!("{}: {r}", c.key);
            if c.fixed {
                tracing::info!("{}: removed; `alto build` fetches or rebuilds it", c.key);
            }
        }
        report.push(json!({"key": c.key, "ok": c.ok, "reason": c.reason, "removed": c.fixed}));
    }
    if g.printer().json() {
        print_json(&Value::Array(report));
    } else if g.printer().verbose() {
        eprintln!("{} objects verified, {damaged} damaged", checks.len());
    }
    if damaged > 0 && !repair {
        return Err(Error::VerifyFailed { count: damaged });
    }
    Ok(())
}

/// `alto store verify --remote`: downloads and re-hashes every remote object.
/// `--repair` replaces a damaged one from an intact local copy of the same content.
pub fn verify_remote(g: &Global, project: &Project, repair: bool) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    let remote = realizer.remote()?;
    let start = std::time::Instant::now();
    let (checks, bytes) = store::verify::verify_remote(&remote, &realizer.local, repair)?;
    let (mut damaged, mut repaired) = (0, 0);
    let mut report = Vec::new();
    for c in &checks {
        if let Some(p) = &c.reason {
            damaged += 1;
            tracing::error!("{} in {}: {p}", c.key, remote.describe);
            if c.fixed {
                repaired += 1;
            } else if repair {
                tracing::error!(
                    "{}: no intact local copy here; `alto build --repair` on a machine that builds it replaces it",
                    c.key
                );
            }
        }
        report.push(json!({"key": c.key, "ok": c.ok, "reason": c.reason, "repaired": c.fixed}));
    }
    let seconds = start.elapsed().as_secs_f64();
    if g.printer().json() {
        print_json(
            &json!({"remote": remote.describe, "objects": report, "bytes": bytes, "seconds": seconds}),
        );
    } else if g.printer().verbose() {
        eprintln!(
            "{} remote objects verified ({:.1} MB in {seconds:.2}s), {damaged} damaged, {repaired} repaired",
            checks.len(),
            bytes as f64 / 1e6
        );
    }
    if damaged > repaired {
        return Err(Error::VerifyFailed {
            count: damaged - repaired,
        });
    }
    Ok(())
}

/// `alto store export`: realizes the plugins, then writes them to one file.
pub fn export(
    g: &Global,
    project: &Project,
    plugins: &[String],
    output: &std::path::Path,
) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(plugins)?;
    let opts = Options {
        jobs: 2,
        repair: false,
        progress: g.printer().progress(),
        ..Default::default()
    };
    for o in realizer.realize(&derivs, &opts) {
        if let Some(e) = o.error {
            return Err(e.into());
        }
    }
    let keys: Vec<crate::eval::Key> = derivs.iter().map(|d| d.key.clone()).collect();
    let bytes = crate::store::archive::export(&realizer.local, &keys, output)?;
    if g.printer().json() {
        print_json(&json!({"file": output, "objects": keys, "bytes": bytes}));
    } else if g.printer().verbose() {
        eprintln!(
            "{} plugins ({:.1} MB) written to {}",
            keys.len(),
            bytes as f64 / 1e6,
            output.display()
        );
    }
    Ok(())
}

/// `alto store import`: in a project, its `trusted_public_keys` decide
/// which signatures are required; outside one, objects are accepted on their
/// keys and hashes alone, and the command says so.
pub fn import(g: &Global, file: &std::path::Path) -> Result<(), Error> {
    let trusted = match crate::config::load::find_root(&g.load_options()) {
        Ok(_) => crate::realize::trusted_keys(&g.load()?)?,
        Err(crate::config::ConfigError::NotFound { .. }) => {
            tracing::warn!(
                "not in an alto project: signatures are not checked (`trusted_public_keys` is a project setting); objects are accepted when their derivation recomputes to their key and their content to their record"
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let local = LocalStore::open(&store::cache_dir())?;
    // Shared store lock: gc does not run while objects are committed.
    let _lock = local.lock(false)?;
    let done = crate::store::archive::import(&local, file, &trusted)?;
    if g.printer().json() {
        print_json(&json!({
            "imported": done.imported,
            "present": done.present,
            "signatures_checked": !trusted.is_empty(),
        }));
    } else if g.printer().verbose() {
        for key in &done.present {
            eprintln!("{key}: already present, left as it is");
        }
        eprintln!(
            "{} objects imported and verified into {}, {} already present",
            done.imported.len(),
            store::cache_dir().display(),
            done.present.len()
        );
    }
    Ok(())
}

/// `alto store keygen`: the secret key goes to a new private file; the public
/// key is printed.
pub fn keygen(g: &Global, name: &str, output: &std::path::Path) -> Result<(), Error> {
    let key = store::signing::SecretKey::generate(name).map_err(|source| Error::Write {
        path: "/dev/urandom".into(),
        source,
    })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(output).map_err(|source| Error::Write {
        path: output.to_path_buf(),
        source,
    })?;
    std::io::Write::write_all(&mut f, format!("{}\n", key.to_text()).as_bytes()).map_err(
        |source| Error::Write {
            path: output.to_path_buf(),
            source,
        },
    )?;
    let public = key.public().to_text();
    if g.printer().json() {
        print_json(&json!({"secret_key_file": output, "public_key": public}));
    } else {
        out(&format!("{public}\n"));
        if g.printer().verbose() {
            eprintln!(
                "secret key written to {} (keep it out of version control); set `signing_key: {}` where the cache is built and add the line above to `trusted_public_keys` everywhere",
                output.display(),
                output.display()
            );
        }
    }
    Ok(())
}

pub fn pin(g: &Global, project: &Project, plugins: &[String], unpin: bool) -> Result<(), Error> {
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(plugins)?;
    let pins = roots::update_pins(&store::cache_dir(), |pins| {
        for d in &derivs {
            if unpin {
                pins.remove(&d.key);
            } else {
                pins.insert(d.key.clone());
            }
        }
    })?;
    if g.printer().json() {
        print_json(&json!({"pins": pins}));
    } else if g.printer().verbose() {
        eprintln!("{} pinned objects", pins.len());
    }
    Ok(())
}
