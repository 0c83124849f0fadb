//! `alto build`, `alto show`, `alto invoke` and `alto store verify`.

use std::io::IsTerminal;

use serde_json::{Value, json};

use super::output::{out, print_json};
use super::{Error, Global};
use crate::config::{LoadOptions, Project};
use crate::eval::PluginDerivation;
use crate::realize::{self, Availability, Options, Realizer, Status};
use crate::store::{self, LocalStatus, LocalStore};

#[derive(Debug, Default, Clone)]
pub struct BuildArgs {
    pub plugins: Vec<String>,
    pub jobs: usize,
    pub dry_run: bool,
    pub check: bool,
    pub repair: bool,
    pub all_envs: bool,
    pub catalogs: bool,
    pub offline: bool,
}

fn availability_word(a: Availability) -> &'static str {
    match a {
        Availability::Local => "in the local store",
        Availability::Remote => "in the remote store (will be substituted)",
        Availability::Build => "must be built",
        Availability::Unknown => "not in the local store (the remote was not checked)",
    }
}

fn describe_derivation(d: &PluginDerivation, a: Availability) -> String {
    let mut s = format!("{}  {}\n", d.plugins.join(", "), d.key);
    s.push_str(&format!("  status    {}\n", availability_word(a)));
    s.push_str(&format!("  pip_url   {}\n", d.pip_url));
    for (token, hash) in &d.local_sources {
        s.push_str(&format!("  source    {token} (contents {})\n", &hash[..16]));
    }
    s.push_str(&format!(
        "  python    {} {} ({} {})\n",
        d.platform.implementation, d.platform.python_version, d.platform.os, d.platform.arch
    ));
    s.push_str(&format!(
        "  builder   {} {} {}\n",
        d.builder.tool,
        d.builder.version,
        d.builder.flags.join(" ")
    ));
    if let Some(v) = &d.version {
        s.push_str(&format!("  _version  {v}\n"));
    }
    s
}

fn derivation_json(d: &PluginDerivation, a: Availability) -> Value {
    json!({"key": d.key, "plugins": d.plugins, "inputs": d.inputs(), "status": a})
}

pub fn build(g: &Global, project: &Project, args: &BuildArgs) -> Result<(), Error> {
    if args.all_envs {
        let mut envs = vec![project.environment.clone()];
        for e in &project.environments {
            if !envs.iter().any(|x| x.eq_ignore_ascii_case(e)) {
                envs.push(e.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for env in envs {
            let opts = LoadOptions::from_process(Some(project.root.clone()), Some(env.clone()))
                .strict(g.strict);
            let p = crate::config::load(&opts)?;
            tracing::info!("environment {env}");
            build_one(g, &p, args, &mut seen)?;
        }
        return Ok(());
    }
    build_one(g, project, args, &mut std::collections::HashSet::new())
}

fn build_one(
    g: &Global,
    project: &Project,
    args: &BuildArgs,
    seen: &mut std::collections::HashSet<crate::eval::Key>,
) -> Result<(), Error> {
    let start = std::time::Instant::now();
    let realizer = Realizer::new(project)?;
    if args.dry_run {
        return dry_run(g, project, &realizer, args, seen);
    }
    let mut derivs = realizer.derivations(&args.plugins)?;
    derivs.retain(|d| seen.insert(d.key.clone()));
    let opts = Options {
        jobs: args.jobs,
        repair: args.repair,
        progress: !g.json && std::io::stderr().is_terminal() && g.quiet == 0,
    };
    let outcomes = realizer.realize(&derivs, &opts);
    let realized: Vec<crate::eval::Key> = outcomes
        .iter()
        .filter(|o| o.status != Status::Failed)
        .map(|o| o.key.clone())
        .collect();
    realizer.register_roots(
        &realized,
        args.plugins.is_empty() && realized.len() == derivs.len(),
    );
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let failed = count(Status::Failed);
    let mut differing = 0;
    let mut checks = Vec::new();
    if args.check && failed == 0 {
        for d in &derivs {
            match realizer.check(d)? {
                None => checks.push(json!({"key": d.key, "plugins": d.plugins, "identical": true})),
                Some((stored, rebuilt)) => {
                    differing += 1;
                    tracing::error!(
                        "{} ({}): the rebuild differs from the stored object (stored blake3 {stored}, rebuilt {rebuilt})",
                        d.plugins.join(", "),
                        d.key
                    );
                    checks.push(json!({"key": d.key, "plugins": d.plugins, "identical": false, "stored": stored, "rebuilt": rebuilt}));
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if g.json {
        let mut summary = json!({
            "environment": project.environment,
            "derivations": outcomes,
            "local": count(Status::Local),
            "substituted": count(Status::Substituted),
            "built": count(Status::Built),
            "failed": failed,
            "seconds": seconds,
        });
        if args.check {
            summary["check"] = Value::Array(checks);
        }
        print_json(&summary);
    } else if g.quiet == 0 {
        eprintln!(
            "{} plugins: {} present, {} substituted, {} built, {} failed ({seconds:.2}s)",
            outcomes.len(),
            count(Status::Local),
            count(Status::Substituted),
            count(Status::Built),
            failed
        );
        if args.check && differing == 0 && failed == 0 {
            eprintln!("check: every rebuild is identical to the stored object");
        }
    }
    let mut errors = outcomes.into_iter().filter_map(|o| o.error);
    if let Some(first) = errors.next() {
        for other in errors {
            tracing::error!("{other}");
        }
        if failed == 1 {
            return Err(first.into());
        }
        tracing::error!("{first}");
        return Err(Error::BuildFailed {
            failed,
            total: derivs.len(),
        });
    }
    if differing > 0 {
        return Err(Error::CheckFailed { count: differing });
    }
    if args.catalogs {
        build_catalogs(project, &realizer, &derivs)?;
    }
    Ok(())
}

/// Realizes the base catalog of every built tap that takes a catalog.
fn build_catalogs(
    project: &Project,
    realizer: &Realizer,
    derivs: &[PluginDerivation],
) -> Result<(), Error> {
    for tap in project.taps.values() {
        if !(tap.has_capability("catalog") || tap.has_capability("properties")) {
            continue;
        }
        let Some(d) = derivs.iter().find(|d| d.plugins.contains(&tap.name)) else {
            continue;
        };
        let dir = crate::pipeline::RunDir::new(project)?;
        let config = dir.write_json("tap.json", &project.render_config(&tap.name, None)?.value)?;
        let catalog = crate::realize::catalog::base_catalog(realizer, tap, d, &config)?;
        let streams = catalog
            .get("streams")
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or(0);
        eprintln!("{}: base catalog with {streams} streams", tap.name);
    }
    Ok(())
}

/// Prints each derivation and where its output is. A plugin whose local
/// source is missing is reported, not fatal: a dry run describes, it does not build.
fn dry_run(
    g: &Global,
    project: &Project,
    realizer: &Realizer,
    args: &BuildArgs,
    seen: &mut std::collections::HashSet<crate::eval::Key>,
) -> Result<(), Error> {
    let names: Vec<String> = if args.plugins.is_empty() {
        crate::eval::buildable_plugins(project)
            .iter()
            .map(|p| p.name.clone())
            .collect()
    } else {
        args.plugins.clone()
    };
    let mut derivs: Vec<PluginDerivation> = Vec::new();
    let mut missing = Vec::new();
    for name in &names {
        match realizer.derivations(std::slice::from_ref(name)) {
            Ok(ds) => {
                for d in ds {
                    match derivs.iter_mut().find(|e| e.key == d.key) {
                        Some(e) => e.plugins.extend(d.plugins),
                        None => derivs.push(d),
                    }
                }
            }
            Err(crate::realize::RealizeError::Eval(
                e @ crate::eval::EvalError::MissingLocalSource { .. },
            )) => {
                missing.push((name.clone(), e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    derivs.retain(|d| seen.insert(d.key.clone()));
    let avail = realizer.availability(&derivs, args.offline)?;
    if g.json {
        let mut rows: Vec<Value> = derivs
            .iter()
            .zip(&avail)
            .map(|(d, a)| derivation_json(d, *a))
            .collect();
        rows.extend(missing.iter().map(
            |(n, m)| json!({"key": null, "plugins": [n], "status": "missing-source", "error": m}),
        ));
        print_json(&Value::Array(rows));
    } else {
        for (d, a) in derivs.iter().zip(&avail) {
            out(&describe_derivation(d, *a));
        }
        for (n, m) in &missing {
            out(&format!("{n}\n  status    cannot be keyed: {m}\n"));
        }
    }
    Ok(())
}

pub fn show(g: &Global, project: &Project, name: &str) -> Result<(), Error> {
    let plugin = project.plugin(name)?;
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(&[name.to_string()])?;
    let entry = crate::eval::entry(project, plugin)?;
    let Some(d) = derivs.first() else {
        if g.json {
            print_json(&json!({"plugin": name, "derivation": null}));
        } else {
            out(&format!("{name} has no pip_url: nothing to build\n"));
        }
        return Ok(());
    };
    let avail = realizer.availability(&derivs, false)?[0];
    if g.json {
        let mut v = derivation_json(d, avail);
        v["entry"] = json!(entry);
        v["path"] = json!(realizer.local.data_path(&d.key));
        print_json(&v);
    } else {
        out(&describe_derivation(d, avail));
        out(&match entry {
            crate::eval::Entry::Script(s) => format!("  entry     script {s} (PEX_SCRIPT)\n"),
            crate::eval::Entry::Module(m) => format!("  entry     module {m} (PEX_MODULE)\n"),
        });
        out(&format!(
            "  path      {}\n",
            realizer.local.data_path(&d.key).display()
        ));
    }
    Ok(())
}

/// `alto invoke [python] PLUGIN [ARGS...]`; the plugin's exit code is alto's.
pub fn invoke(g: &Global, project: &Project, args: &[String]) -> Result<u8, Error> {
    let (interpreter, name, rest) = match args {
        [first, second, rest @ ..] if first == "python" && project.plugin(second).is_ok() => {
            (true, second, rest)
        }
        [first, rest @ ..] => (false, first, rest),
        [] => {
            return Err(Error::UnknownCommand {
                name: String::new(),
            });
        }
    };
    let plugin = project.plugin(name)?;
    let realizer = Realizer::new(project)?;
    let derivs = realizer.derivations(std::slice::from_ref(name))?;
    let Some(d) = derivs.first() else {
        return Err(Error::NothingToRun {
            plugin: name.clone(),
        });
    };
    let opts = Options {
        jobs: 1,
        repair: false,
        progress: std::io::stderr().is_terminal() && g.quiet == 0,
    };
    if let Some(e) = realizer
        .realize(&derivs, &opts)
        .into_iter()
        .next()
        .and_then(|o| o.error)
    {
        return Err(e.into());
    }
    let mut cmd = realizer.command(plugin, d, interpreter)?;
    cmd.args(rest);
    let program = std::path::PathBuf::from(cmd.get_program());
    let status = cmd
        .status()
        .map_err(|source| realize::RealizeError::Spawn { program, source })?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return c.clamp(0, 255) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (128 + sig).clamp(0, 255) as u8;
        }
    }
    1
}

pub fn verify(g: &Global, repair: bool) -> Result<(), Error> {
    let local = LocalStore::open(&store::cache_dir())?;
    let mut damaged = 0;
    let mut report = Vec::new();
    let keys = local.keys()?;
    for key in &keys {
        let reason = match local.status(key, true)? {
            LocalStatus::Valid(_) => None,
            LocalStatus::Damaged { reason, .. } => Some(reason),
            LocalStatus::Missing => continue,
        };
        if let Some(r) = &reason {
            damaged += 1;
            tracing::error!("{key}: {r}");
            if repair {
                // Gone from the store, it is substituted or rebuilt by the next build.
                local.remove(key)?;
                tracing::info!("{key}: removed; `alto build` fetches or rebuilds it");
            }
        }
        report.push(json!({"key": key, "ok": reason.is_none(), "reason": reason, "removed": repair && reason.is_some()}));
    }
    if g.json {
        print_json(&Value::Array(report));
    } else if g.quiet == 0 {
        eprintln!("{} objects verified, {damaged} damaged", keys.len());
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
    let mut keys: Vec<crate::eval::Key> = remote.meta_keys()?.into_iter().collect();
    keys.sort();
    let start = std::time::Instant::now();
    let (mut damaged, mut repaired, mut bytes) = (0, 0, 0u64);
    let mut report = Vec::new();
    for key in &keys {
        let Some(meta) = remote.meta(key)? else {
            continue;
        };
        let tmp = realizer.local.temp_path(&format!("{key}.verify"));
        let result = remote.download(key, &tmp);
        let _ = std::fs::remove_file(&tmp);
        let problem = match result {
            Ok((blake3, size)) => {
                bytes += size;
                (blake3 != meta.blake3 || size != meta.size)
                    .then(|| format!("blake3 {blake3} differs from the recorded {}", meta.blake3))
            }
            Err(e) => Some(e.to_string()),
        };
        let mut fixed = false;
        if let Some(p) = &problem {
            damaged += 1;
            tracing::error!("{key} in {}: {p}", remote.describe);
            if repair {
                if let LocalStatus::Valid(local_meta) = realizer.local.status(key, true)?
                    && local_meta.blake3 == meta.blake3
                {
                    remote.upload(key, &realizer.local.data_path(key), &local_meta, true)?;
                    fixed = true;
                    repaired += 1;
                }
                if !fixed {
                    tracing::error!(
                        "{key}: no intact local copy here; `alto build --repair` on a machine that builds it replaces it"
                    );
                }
            }
        }
        report.push(
            json!({"key": key, "ok": problem.is_none(), "reason": problem, "repaired": fixed}),
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    if g.json {
        print_json(
            &json!({"remote": remote.describe, "objects": report, "bytes": bytes, "seconds": seconds}),
        );
    } else if g.quiet == 0 {
        eprintln!(
            "{} remote objects verified ({:.1} MB in {seconds:.2}s), {damaged} damaged, {repaired} repaired",
            keys.len(),
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
        progress: !g.json && std::io::stderr().is_terminal() && g.quiet == 0,
    };
    for o in realizer.realize(&derivs, &opts) {
        if let Some(e) = o.error {
            return Err(e.into());
        }
    }
    let keys: Vec<crate::eval::Key> = derivs.iter().map(|d| d.key.clone()).collect();
    let bytes = crate::store::archive::export(&realizer.local, &keys, output)?;
    if g.json {
        print_json(&json!({"file": output, "objects": keys, "bytes": bytes}));
    } else if g.quiet == 0 {
        eprintln!(
            "{} plugins ({:.1} MB) written to {}",
            keys.len(),
            bytes as f64 / 1e6,
            output.display()
        );
    }
    Ok(())
}

/// `alto store import`: needs no project, only the file.
pub fn import(g: &Global, file: &std::path::Path) -> Result<(), Error> {
    let local = LocalStore::open(&store::cache_dir())?;
    let keys = crate::store::archive::import(&local, file)?;
    if g.json {
        print_json(&json!({"imported": keys}));
    } else if g.quiet == 0 {
        eprintln!(
            "{} objects imported and verified into {}",
            keys.len(),
            store::cache_dir().display()
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
    if g.json {
        print_json(&json!({"secret_key_file": output, "public_key": public}));
    } else {
        out(&format!("{public}\n"));
        if g.quiet == 0 {
            eprintln!(
                "secret key written to {} (keep it out of version control); set `signing_key: {}` where the cache is built and add the line above to `trusted_public_keys` everywhere",
                output.display(),
                output.display()
            );
        }
    }
    Ok(())
}
