//! The resolver and installer: a pinned uv, provisioned by alto into the
//! local store's tools like pex. A plugin's `pip_url` is installed with it
//! into a fresh venv for the plugin's interpreter, which pex then packs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::RealizeError;
use super::tools::{self, Pinned};
use crate::eval::UvInput;

/// The uv alto provisions (the registry's binary wheel).
pub const UV_VERSION: &str = "0.13.8";

/// Where the provisioned uv lives.
pub fn tool_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("tools").join(format!("uv-{UV_VERSION}"))
}

/// The uv executable in `dir`.
fn binary(dir: &Path) -> PathBuf {
    dir.join("bin").join("uv")
}

/// uv's cache, shared by every build on the machine: uv locks it, so
/// parallel builds (threads or processes) use it safely.
pub fn cache(cache_dir: &Path) -> PathBuf {
    cache_dir.join("uv-cache")
}

/// Makes sure the provisioned uv exists and is the pinned version.
pub fn ensure(python: &Path, cache_dir: &Path) -> Result<PathBuf, RealizeError> {
    let verify = |dir: &Path| -> Result<(), String> {
        let out = Command::new(binary(dir))
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && said.starts_with(&format!("uv {UV_VERSION}")) {
            Ok(())
        } else {
            Err(format!("`uv --version` said `{}`", said.trim()))
        }
    };
    let dir = tool_dir(cache_dir);
    tools::ensure(
        &Pinned {
            name: "uv",
            version: UV_VERSION,
            marker: "bin/uv",
            verify: &verify,
        },
        python,
        &dir,
        None,
    )?;
    Ok(binary(&dir))
}

/// A uv command with a fixed environment: its cache, no user or project
/// configuration, no interpreter downloads (plugins use the interpreter
/// the config names), and the system's certificates, as pip trusts them
/// (an index behind a TLS-inspecting proxy works as it does for pip).
pub fn command(uv: &Path, cache_dir: &Path) -> Command {
    let mut c = Command::new(uv);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("UV_") {
            c.env_remove(k);
        }
    }
    c.env("UV_CACHE_DIR", cache(cache_dir))
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env("UV_SYSTEM_CERTS", "1");
    c
}

/// `uv venv` for `python` at `venv`.
pub fn venv(uv: &Path, cache_dir: &Path, python: &Path, venv: &Path) -> Command {
    let mut c = command(uv, cache_dir);
    c.args(["venv", "--no-project", "--python"])
        .arg(python)
        .arg(venv);
    c
}

/// `uv pip install` of a `pip_url` into `venv`. Index URLs go through uv's
/// environment, never its command line (they may hold credentials). Several
/// indexes are searched as pip searches them: the best match of all.
pub fn install(uv: &Path, cache_dir: &Path, venv: &Path, input: &UvInput) -> Command {
    let mut c = command(uv, cache_dir);
    c.args(["pip", "install", "--python"])
        .arg(venv.join("bin").join("python"));
    // pex's `--no-pypi` without an index URL: the first extra index is the index.
    let extras = &input.extra_index_urls;
    let (index, extras) = match (&input.index_url, input.no_pypi) {
        (Some(url), _) => (Some(url), &extras[..]),
        (None, true) if !extras.is_empty() => (Some(&extras[0]), &extras[1..]),
        (None, true) => {
            c.arg("--no-index");
            (None, &extras[..0])
        }
        (None, false) => (None, &extras[..]),
    };
    if let Some(url) = index {
        c.env("UV_INDEX_URL", url);
    }
    if !extras.is_empty() {
        c.env("UV_EXTRA_INDEX_URL", extras.join(" "))
            .args(["--index-strategy", "unsafe-best-match"]);
    }
    for f in &input.find_links {
        c.arg("--find-links").arg(f);
    }
    if input.pre {
        c.args(["--prerelease", "allow"]);
    }
    c.arg("--").args(&input.requirements);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_urls_reach_uv_through_its_environment_only() {
        let input = UvInput {
            index_url: Some("https://u:tok3n@h/simple".into()),
            extra_index_urls: vec!["https://e/simple".into(), "https://f/simple".into()],
            find_links: vec!["./wheels".into()],
            pre: true,
            no_pypi: true,
            requirements: vec!["tap-x==1".into(), "./plugins/tap-y[dev]".into()],
        };
        let cmd = install(Path::new("/t/uv"), Path::new("/c"), Path::new("/v"), &input);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "pip",
                "install",
                "--python",
                "/v/bin/python",
                "--index-strategy",
                "unsafe-best-match",
                "--find-links",
                "./wheels",
                "--prerelease",
                "allow",
                "--",
                "tap-x==1",
                "./plugins/tap-y[dev]"
            ]
        );
        let env: std::collections::HashMap<String, Option<String>> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            env["UV_INDEX_URL"].as_deref(),
            Some("https://u:tok3n@h/simple")
        );
        assert_eq!(
            env["UV_EXTRA_INDEX_URL"].as_deref(),
            Some("https://e/simple https://f/simple")
        );
        assert_eq!(env["UV_CACHE_DIR"].as_deref(), Some("/c/uv-cache"));
    }
}
