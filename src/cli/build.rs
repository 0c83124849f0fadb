//! `alto build`: realize plugins (and, with `--catalogs`, base catalogs) from the
//! local store, the remote or a pex build; `--dry-run`, `--check`, `--repair`.

use super::printer::{out, print_json};
use super::{Error, Global};
use crate::config::{LoadOptions, Project};
use crate::eval::PluginDerivation;
use crate::realize::{Availability, Options, Realizer, RemoteUse, Status};
use serde_json::{Value, json};

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
    pub no_push: bool,
}

/// The error for a remote a build cannot use, with its cause and where alto
/// looked for credentials.
fn remote_unreachable(project: &Project, e: &dyn std::error::Error, action: &str) -> Error {
    let filesystem = project
        .remote_settings()
        .ok()
        .and_then(|r| r.filesystem)
        .unwrap_or_else(|| "file".into());
    let looked_at = match filesystem.as_str() {
        "s3" | "s3a" => {
            "`bucket`, `bucket_path` and `s3_settings` (endpoint, region, access_key_id, secret_access_key) in the config, then AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT and the instance's metadata service"
        }
        "gcs" | "gs" => {
            "`bucket`, `bucket_path` and `gcs_settings` (token, endpoint_url, service_account_path, service_account_key) in the config, then GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_KEY, GOOGLE_APPLICATION_CREDENTIALS and the instance's metadata service"
        }
        "azure" | "az" | "adls" | "abfs" => {
            "`bucket` (the container), `bucket_path` and `azure_settings` (connection_string, account_name, account_key, sas_token, account_host) in the config, then AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY and AZURE_CLIENT_ID/SECRET/TENANT_ID"
        }
        _ => {
            "`filesystem`, `bucket` and `bucket_path` in the config (a directory remote needs a writable directory)"
        }
    };
    let remote = crate::realize::remote_settings(project)
        .ok()
        .and_then(|s| crate::store::Remote::open(&s, &project.root, &project.name).ok())
        .map(|r| r.describe.clone())
        .unwrap_or_else(|| filesystem.clone());
    Error::RemoteUnreachable {
        remote,
        action: action.to_string(),
        cause: crate::store::causes(e),
        hint: format!(
            "alto looked at {looked_at}. `alto build --no-push` builds here and substitutes only what the remote can give; `--offline` leaves the remote alone"
        ),
    }
}

pub(super) fn availability_word(a: Availability) -> &'static str {
    match a {
        Availability::Local => "in the local store",
        Availability::Remote => "in the remote store (will be substituted)",
        Availability::Build => "must be built",
        Availability::Unknown => "not in the local store (the remote was not checked)",
    }
}

pub(super) fn describe_derivation(d: &PluginDerivation, a: Availability) -> String {
    let mut s = format!("{}  {}\n", d.plugins.join(", "), d.key);
    s.push_str(&format!("  status    {}\n", availability_word(a)));
    s.push_str(&format!("  pip_url   {}\n", d.pip_url));
    if !d.secrets.is_empty() {
        s.push_str(&format!(
            "  secrets   {} (hashed into the key, shown as {})\n",
            d.secrets.len(),
            crate::config::REDACTED
        ));
    }
    for (token, hash) in &d.local_sources {
        s.push_str(&format!("  source    {token} (contents {})\n", &hash[..16]));
    }
    s.push_str(&format!(
        "  python    {} {} {} ({} {}, {})\n",
        d.platform.implementation,
        d.platform.python_version,
        d.platform.abi,
        d.platform.os,
        d.platform.platform,
        d.platform.libc
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

pub(super) fn derivation_json(d: &PluginDerivation, a: Availability) -> Value {
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
        progress: g.printer().progress(),
        push: !args.no_push,
        publish_local: true,
    };
    let _aware = crate::interrupt::Aware::new();
    // A build is how CI seeds the shared store: a remote that cannot be
    // reached fails it, unless a local-only build was asked for.
    // One metadata read per derivation, never a listing of the bucket.
    let remote = if args.offline {
        RemoteUse::Off
    } else {
        match realizer.lookup(&derivs) {
            Ok(k) => RemoteUse::Known(k),
            Err(e) if args.no_push => {
                tracing::warn!(
                    "the remote store is unavailable ({}); building locally (--no-push)",
                    crate::store::causes(&e)
                );
                RemoteUse::Off
            }
            Err(e) => return Err(remote_unreachable(project, &e, "read")),
        }
    };
    let remote_used = !matches!(remote, RemoteUse::Off);
    let outcomes = realizer.realize_with(&derivs, &opts, remote);
    if let Some(signal) = crate::interrupt::signal() {
        return Err(Error::Interrupted { signal });
    }
    let realized: Vec<crate::eval::Key> = outcomes
        .iter()
        .filter(|o| o.status != Status::Failed)
        .map(|o| o.key.clone())
        .collect();
    realizer.register_roots(
        &realized,
        args.plugins.is_empty() && realized.len() == derivs.len(),
        remote_used,
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
    if g.printer().json() {
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
    } else if g.printer().verbose() {
        eprintln!(
            "{} plugin{}: {} present, {} substituted, {} built, {} failed ({seconds:.2}s)",
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" },
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
        let dir = crate::run::RunDir::new(project)?;
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
    // The pipelines the config's jobs run, beside the plugins they use.
    let mut pipelines = Vec::new();
    if args.plugins.is_empty() {
        for task in crate::run::provenance::configured_tasks(project) {
            let name = task.to_string();
            pipelines.push((
                name,
                crate::run::provenance::evaluate(realizer, &task, args.offline),
            ));
        }
    }
    if g.printer().json() {
        let mut rows: Vec<Value> = derivs
            .iter()
            .zip(&avail)
            .map(|(d, a)| derivation_json(d, *a))
            .collect();
        rows.extend(missing.iter().map(
            |(n, m)| json!({"key": null, "plugins": [n], "status": "missing-source", "error": m}),
        ));
        for (name, d) in &pipelines {
            rows.push(match d {
                Ok(d) => super::show::pipeline_json(name, d),
                Err(e) => json!({"kind": "pipeline", "pipeline": name, "key": null, "error": e.to_string()}),
            });
        }
        print_json(&Value::Array(rows));
    } else {
        for (d, a) in derivs.iter().zip(&avail) {
            out(&describe_derivation(d, *a));
        }
        for (n, m) in &missing {
            out(&format!("{n}\n  status    cannot be keyed: {m}\n"));
        }
        for (name, d) in &pipelines {
            out(&match d {
                Ok(d) => super::show::describe_pipeline(name, d),
                Err(e) => format!("{name}\n  status    cannot be keyed: {e}\n"),
            });
        }
    }
    Ok(())
}
