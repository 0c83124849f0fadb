//! Fetching a tool's wheel from the package index without starting Python
//! (uv's, see [`super::uv`]): pip's configuration read as pip reads it on
//! Linux, so the index and the certificates are pip's; the wheel that fits
//! this machine; its sha256 checked before anything in it is used. A
//! setting alto does not follow, a platform it does not know, or a file it
//! cannot read the way pip would, and it declines (`Err`: why), leaving
//! pip to install the tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

/// The default index, as pip names it.
const PYPI: &str = "https://pypi.org/simple";

/// The largest wheel alto reads into memory (uv's is 17 MB), and the
/// largest index page (uv's is 2.6 MB).
const MAX_WHEEL: usize = 256 << 20;
const MAX_PAGE: usize = 64 << 20;

/// pip's settings alto does not follow: with any of them set, pip
/// installs the tool.
const UNFOLLOWED: [&str; 5] = [
    "extra-index-url",
    "no-index",
    "proxy",
    "client-cert",
    "trusted-host",
];

/// A wheel on PyPI, pinned beside the tool's version: fetched without
/// reading the index page (2.6 MB for uv) when pip uses PyPI, and checked
/// against alto's own sha256, not only the index's word.
pub struct PinnedWheel {
    pub url: &'static str,
    pub sha256: &'static str,
}

impl PinnedWheel {
    fn filename(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }
}

/// Fetches the wheel of `name` `version` that fits this machine from the
/// index pip is set to use (`python`'s pip: its `sys.prefix` holds one of
/// pip's files) and returns its bytes, their sha256 checked: against
/// `pinned` when pip uses PyPI, else against the index's JSON page (PEP
/// 691), as pip checks it.
pub fn fetch_wheel(
    name: &str,
    version: &str,
    pinned: &[PinnedWheel],
    python: &Path,
) -> Result<Vec<u8>, String> {
    if !cfg!(target_os = "linux") {
        return Err("pip's configuration is read by alto on Linux only".into());
    }
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let settings = PipSettings::read(&pip_config(&prefix_of(python, &env), &env)?)?;
    let machine = Machine::this()?;
    let client = settings.client()?;
    on_own_runtime(async move {
        let ((url, sha256), whose) = match &settings.index_url {
            None => {
                let chosen = machine
                    .best(pinned.iter().map(|w| (w.filename(), w)), name, version)
                    .ok_or_else(|| format!("no wheel of {name} {version} fits this machine"))?;
                let url = reqwest::Url::parse(chosen.url).map_err(|e| e.to_string())?;
                ((url, chosen.sha256.to_string()), "alto pins")
            }
            Some(index) => (
                from_page(&client, index, &machine, name, version).await?,
                "the index gave",
            ),
        };
        let wheel = get(&client, url, None, MAX_WHEEL, "the wheel").await?.body;
        if super::pack::hex(&sha2::Sha256::digest(&wheel)) != sha256.to_ascii_lowercase() {
            return Err(format!(
                "the wheel of {name} {version} does not have the sha256 {whose}"
            ));
        }
        Ok(wheel)
    })
}

/// The wheel's URL and sha256 from the index's JSON page for `name`.
async fn from_page(
    client: &reqwest::Client,
    index: &str,
    machine: &Machine,
    name: &str,
    version: &str,
) -> Result<(reqwest::Url, String), String> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: BTreeMap<String, String>,
        #[serde(default)]
        yanked: serde_json::Value,
    }
    let page_url = format!("{}/{name}/", index.trim_end_matches('/'));
    let page_url = reqwest::Url::parse(&page_url).map_err(|e| format!("pip's index-url: {e}"))?;
    let accept = "application/vnd.pypi.simple.v1+json";
    let page = get(client, page_url, Some(accept), MAX_PAGE, "the index page").await?;
    if !page.content_type.contains("json") {
        return Err("the index gave no JSON page".into());
    }
    let (text, base) = (page.body, page.url);
    let page: Page = serde_json::from_slice(&text).map_err(|e| format!("the index page: {e}"))?;
    let yanked = |v: &serde_json::Value| match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(s) => !s.is_empty(),
        _ => false,
    };
    let chosen = machine
        .best(
            page.files
                .iter()
                .filter(|f| !yanked(&f.yanked))
                .map(|f| (f.filename.as_str(), f)),
            name,
            version,
        )
        .ok_or_else(|| format!("no wheel of {name} {version} fits this machine"))?;
    let sha256 = chosen
        .hashes
        .get("sha256")
        .filter(|h| !h.is_empty())
        .ok_or("the index gave no sha256")?;
    let url = base
        .join(&chosen.url)
        .map_err(|e| format!("the index gave a bad URL: {e}"))?;
    Ok((url, sha256.clone()))
}

/// What a GET gave: its URL after redirects, its Content-Type, its body.
struct Fetched {
    url: reqwest::Url,
    content_type: String,
    body: Vec<u8>,
}

/// GETs `url` (`accept`: the Accept header), its body read as it arrives,
/// never more than `limit` bytes. Errors name `what`, never the URL (it
/// may hold an index's credentials).
async fn get(
    client: &reqwest::Client,
    url: reqwest::Url,
    accept: Option<&str>,
    limit: usize,
    what: &str,
) -> Result<Fetched, String> {
    let failed = |e: reqwest::Error| format!("{what}: {}", e.without_url());
    let mut request = client.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let mut response = request
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(failed)?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let url = response.url().clone();
    let mut body = Vec::with_capacity((response.content_length().unwrap_or(0) as usize).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err(format!("{what} passes {} MiB", limit >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        url,
        content_type,
        body,
    })
}

/// Runs `fut` on a runtime of its own, on a thread of its own (the caller
/// may be inside a runtime), ending it early when alto is signalled.
fn on_own_runtime<T: Send>(
    fut: impl std::future::Future<Output = Result<T, String>> + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            rt.block_on(async {
                let signalled = async {
                    while crate::interrupt::signal().is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    done = fut => done,
                    () = signalled => Err("interrupted".into()),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the fetching thread failed".into()))
    })
}

/// What alto takes from pip's configuration.
#[derive(Debug, PartialEq)]
struct PipSettings {
    /// `None`: PyPI.
    index_url: Option<String>,
    /// The certificates pip trusts instead of the system's.
    cert: Option<PathBuf>,
}

impl PipSettings {
    /// A setting is looked for in the variables, then the `install`
    /// section, then `global`, as `pip install` looks for it.
    fn read(items: &BTreeMap<String, String>) -> Result<PipSettings, String> {
        let setting = |key: &str| {
            [":env:", "install", "global"]
                .iter()
                .find_map(|s| items.get(&format!("{s}.{key}")).filter(|v| !v.is_empty()))
                .cloned()
        };
        for key in UNFOLLOWED {
            if setting(key).is_some() {
                return Err(format!("pip is set up with {key}"));
            }
        }
        let index_url = setting("index-url").filter(|u| u.trim_end_matches('/') != PYPI);
        Ok(PipSettings {
            index_url,
            cert: setting("cert").map(PathBuf::from),
        })
    }

    /// An HTTP client trusting what pip trusts: `cert` alone when set,
    /// else the system's certificates. Proxies come from the usual
    /// variables, as for pip.
    fn client(&self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60));
        if let Some(cert) = &self.cert {
            let pem = std::fs::read(cert)
                .map_err(|e| format!("cannot read pip's cert {}: {e}", cert.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| format!("pip's cert {} holds no PEM certificate", cert.display()))?;
            b = b.tls_certs_only(certs);
        }
        b.build().map_err(|e| format!("cannot set up TLS: {e}"))
    }
}

/// `sys.prefix` of `python` without starting it: the venv it belongs to
/// (a `pyvenv.cfg` beside or above its directory), else `PYTHONHOME`,
/// else the directory above the real file's `bin`.
fn prefix_of(python: &Path, env: &BTreeMap<String, String>) -> PathBuf {
    let bin = python.parent().unwrap_or(Path::new("/"));
    for dir in [bin, bin.parent().unwrap_or(bin)] {
        if dir.join("pyvenv.cfg").is_file() {
            return dir.to_path_buf();
        }
    }
    if let Some(home) = env.get("PYTHONHOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home.split(':').next().unwrap_or(home));
    }
    let real = std::fs::canonicalize(python).unwrap_or_else(|_| python.to_path_buf());
    real.parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// pip's configuration as `section.key` to value, as pip's
/// `Configuration.load()` gives it on Linux: its files in override order
/// (`XDG_CONFIG_DIRS`, `/etc`, the user's, the interpreter's prefix,
/// `PIP_CONFIG_FILE`), then `PIP_*` variables as section `:env:`.
fn pip_config(
    prefix: &Path,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let var = |k: &str| env.get(k).map(String::as_str);
    let home = var("HOME").filter(|h| !h.is_empty());
    let expand = |p: &str| -> Result<PathBuf, String> {
        match p.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                let home = home.ok_or("HOME is not set")?;
                Ok(PathBuf::from(format!("{home}{rest}")))
            }
            Some(_) => Err(format!("pip's path {p} names another user's home")),
            None => Ok(PathBuf::from(p)),
        }
    };
    let env_file = var("PIP_CONFIG_FILE");
    let mut items = BTreeMap::new();
    if env_file != Some("/dev/null") {
        let dirs = var("XDG_CONFIG_DIRS")
            .filter(|d| !d.trim().is_empty())
            .unwrap_or("/etc/xdg");
        let mut files = Vec::new();
        for d in dirs.split(':') {
            files.push(expand(d)?.join("pip/pip.conf"));
        }
        files.push(PathBuf::from("/etc/pip.conf"));
        if !env_file.is_some_and(|f| !f.is_empty() && Path::new(f).exists()) {
            let config_home = match var("XDG_CONFIG_HOME").filter(|h| !h.trim().is_empty()) {
                Some(h) => expand(h)?,
                None => expand("~/.config")?,
            };
            files.push(expand("~")?.join(".pip/pip.conf"));
            files.push(config_home.join("pip/pip.conf"));
        }
        files.push(prefix.join("pip.conf"));
        if let Some(f) = env_file {
            files.push(PathBuf::from(f));
        }
        for file in files
            .iter()
            .filter(|f| !f.as_os_str().is_empty() && f.exists())
        {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let entries = read_ini(&text).map_err(|why| format!("{}: {why}", file.display()))?;
            for (section, key, value) in entries {
                items.insert(format!("{section}.{}", pip_key(&key)), value);
            }
        }
    }
    for (key, value) in env {
        let Some(name) = key.strip_prefix("PIP_") else {
            continue;
        };
        if !matches!(name.to_lowercase().as_str(), "version" | "help") {
            items.insert(format!(":env:.{}", pip_key(name)), value.clone());
        }
    }
    Ok(items)
}

/// A key as pip stores it: lower case, `-` for `_`, no leading `--`.
fn pip_key(key: &str) -> String {
    let key = key.to_lowercase().replace('_', "-");
    key.strip_prefix("--").map(str::to_string).unwrap_or(key)
}

/// The `(section, key, value)` of an INI file as Python's
/// `RawConfigParser` reads it and pip lists it (`DEFAULT`'s keys in every
/// other section): `=` or `:` between key and value, whole-line `#` and `;`
/// comments, values continued on lines indented deeper than their key.
/// What it would read differently or refuse (a duplicate, a line that is
/// neither, an odd section header) is an error.
fn read_ini(text: &str) -> Result<Vec<(String, String, String)>, String> {
    // Python reads a lone CR as a line's end; `lines` does not.
    if text.replace("\r\n", "").contains('\r') {
        return Err("a line ending in CR alone".into());
    }
    // Each section's keys in order, with their lines.
    type Keys = Vec<(String, Vec<String>)>;
    let mut sections: Vec<(String, Keys)> = Vec::new();
    let mut defaults: Keys = Vec::new();
    // Where the current key is: in DEFAULT (None) or sections[i].
    let mut current: Option<Option<usize>> = None;
    let mut has_key = false;
    let mut indent_of_key = usize::MAX;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}", n + 1);
        let value = line.trim();
        let comment = value.starts_with('#') || value.starts_with(';');
        let keys = match current {
            Some(None) => Some(&mut defaults),
            Some(Some(i)) => Some(&mut sections[i].1),
            None => None,
        };
        if comment {
            continue;
        }
        if value.is_empty() {
            // Kept inside a value that goes on; trimmed from its end.
            if let Some(last) = keys.filter(|_| has_key).and_then(|k| k.last_mut()) {
                last.1.push(String::new());
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if has_key && indent > indent_of_key {
            if let Some(last) = keys.and_then(|k| k.last_mut()) {
                last.1.push(value.to_string());
            }
            continue;
        }
        indent_of_key = indent;
        if let Some(inner) = value.strip_prefix('[') {
            let name = inner
                .strip_suffix(']')
                .filter(|n| !n.is_empty() && !n.contains(']'))
                .ok_or_else(|| format!("{}: a section header alto does not read", at()))?;
            if name == "DEFAULT" {
                current = Some(None);
            } else if sections.iter().any(|(s, _)| s == name) {
                return Err(format!("{}: section {name} again", at()));
            } else {
                sections.push((name.to_string(), Vec::new()));
                current = Some(Some(sections.len() - 1));
            }
            has_key = false;
            continue;
        }
        let keys = keys.ok_or_else(|| format!("{}: a key before any section", at()))?;
        let split = value
            .find(['=', ':'])
            .ok_or_else(|| format!("{}: neither a key nor a section", at()))?;
        let key = value[..split].trim().to_lowercase();
        if key.is_empty() {
            return Err(format!("{}: a value without a key", at()));
        }
        if keys.iter().any(|(k, _)| *k == key) {
            return Err(format!("{}: key {key} again", at()));
        }
        keys.push((key, vec![value[split + 1..].trim().to_string()]));
        has_key = true;
    }
    let joined = |lines: &[String]| lines.join("\n").trim_end().to_string();
    let mut out = Vec::new();
    for (section, keys) in &sections {
        let mut merged: Vec<(String, String)> = defaults
            .iter()
            .map(|(k, v)| (k.clone(), joined(v)))
            .collect();
        for (k, v) in keys {
            match merged.iter_mut().find(|(d, _)| d == k) {
                Some(slot) => slot.1 = joined(v),
                None => merged.push((k.clone(), joined(v))),
            }
        }
        out.extend(merged.into_iter().map(|(k, v)| (section.clone(), k, v)));
    }
    Ok(out)
}

/// This machine, as wheel platform tags describe it.
struct Machine {
    /// The architecture in wheel tags (`x86_64`, `aarch64`, `i686`).
    arch: &'static str,
    /// glibc's version, or `None` on musl.
    glibc: Option<(u32, u32)>,
}

impl Machine {
    fn this() -> Result<Machine, String> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x86_64",
            "aarch64" => "aarch64",
            "x86" => "i686",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => return Err(format!("no wheel tag alto knows for {other}")),
        };
        Ok(Machine {
            arch,
            glibc: glibc_version(),
        })
    }

    /// How well a wheel's platform tag fits (higher is better): `None`
    /// when it does not run here. The newest manylinux first, as pip
    /// prefers it; `any` last.
    fn fit(&self, platform: &str) -> Option<(u32, u32, u32)> {
        if platform == "any" {
            return Some((0, 0, 0));
        }
        let rest = platform.strip_suffix(self.arch)?.strip_suffix('_')?;
        let version = |v: &str| -> Option<(u32, u32)> {
            let (major, minor) = v.split_once('_')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        };
        match (self.glibc, rest) {
            (Some(_), "linux") => Some((1, 0, 0)),
            (Some(have), _) => {
                let needs = match rest {
                    "manylinux1" => (2, 5),
                    "manylinux2010" => (2, 12),
                    "manylinux2014" => (2, 17),
                    _ => version(rest.strip_prefix("manylinux_")?)?,
                };
                (needs <= have).then_some((2, needs.0, needs.1))
            }
            // musl 1.2 is what every current musl system has.
            (None, _) => {
                let needs = version(rest.strip_prefix("musllinux_")?)?;
                (needs <= (1, 2)).then_some((2, needs.0, needs.1))
            }
        }
    }

    /// The best fitting of `files` (a wheel's file name, and what goes with
    /// it) that is `name` `version` for any Python 3.
    fn best<'f, T>(
        &self,
        files: impl Iterator<Item = (&'f str, T)>,
        name: &str,
        version: &str,
    ) -> Option<T> {
        let prefix = format!("{}-{version}-", name.replace('-', "_"));
        files
            .filter_map(|(filename, item)| {
                let stem = filename.strip_prefix(&prefix)?.strip_suffix(".whl")?;
                let parts: Vec<&str> = stem.split('-').collect();
                // [build tag,] python tag, abi tag, platform tags.
                let [.., py, abi, platforms] = parts[..] else {
                    return None;
                };
                if parts.len() > 4 || abi != "none" || !py.split('.').any(|t| t == "py3") {
                    return None;
                }
                let fit = platforms.split('.').filter_map(|p| self.fit(p)).max()?;
                Some((fit, item))
            })
            .max_by_key(|(fit, _)| *fit)
            .map(|(_, item)| item)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<(u32, u32)> {
    // SAFETY: glibc returns a static NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut parts = text.to_str().ok()?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<(u32, u32)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `pip_config` gives what pip's own `Configuration` gives, for every
    /// way of placing pip's settings (files of each kind, XDG directories,
    /// `PIP_CONFIG_FILE` set, missing or `os.devnull`, variables, `_` and
    /// `--` in keys, what Python's INI reader makes of continued values,
    /// comments, `:` and `DEFAULT`), with the python3 on PATH, whose
    /// `sys.prefix` `prefix_of` finds.
    #[test]
    fn pip_config_reads_what_pip_reads() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |rel: &str, text: &str| {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "home/.pip/pip.conf",
            "[global]\nindex-url = https://legacy/simple\ntimeout = 5\n",
        );
        write(
            "home/.config/pip/pip.conf",
            "# pip's settings\n[global]\nindex_url = https://new/simple\n[install]\n--extra-index-url = https://extra/simple\n  https://more/simple\n\n  ; not a value\n   https://third/simple\n\n[DEFAULT]\nRetries: 3\n",
        );
        write(
            "xdg/pip/pip.conf",
            "[global]\nindex-url = https://xdg/simple\n",
        );
        write(
            "d1/pip/pip.conf",
            "[global]\ncert = /d1\n[install]\nno-index = true\n",
        );
        write(
            "d2/pip/pip.conf",
            "[global]\ncert = /d2\nproxy = http://p\n",
        );
        write(
            "env.conf",
            "[install]\nindex-url=https://envfile/simple:8080\n[freeze]\n  indented = yes\n",
        );
        let p = |rel: &str| d.join(rel).to_string_lossy().into_owned();
        let dirs = format!("{}:{}", p("d1"), p("d2"));
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![],
            vec![("XDG_CONFIG_HOME", p("xdg"))],
            vec![("XDG_CONFIG_DIRS", dirs)],
            vec![("PIP_CONFIG_FILE", p("env.conf"))],
            vec![("PIP_CONFIG_FILE", p("missing.conf"))],
            vec![
                ("PIP_CONFIG_FILE", "/dev/null".into()),
                ("PIP_INDEX_URL", "https://e/simple".into()),
                ("PIP_EXTRA_INDEX_URL", "x".into()),
                ("PIP_VERSION", "1".into()),
            ],
            vec![("PIP_CONFIG_FILE", String::new())],
        ];
        let python = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        let python = PathBuf::from(String::from_utf8(python.stdout).unwrap().trim());
        let compare = "import json, sys\n\
            from pip._internal.configuration import Configuration\n\
            conf = Configuration(isolated=False)\nconf.load()\n\
            print(json.dumps({'prefix': sys.prefix, 'items': dict(conf.items())}))\n";
        for case in cases {
            let mut env: BTreeMap<String, String> = std::env::vars()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "XDG_CONFIG_HOME" | "XDG_CONFIG_DIRS" | "PIP_CONFIG_FILE" | "PYTHONHOME"
                    )
                })
                .collect();
            env.insert("HOME".into(), p("home"));
            env.extend(case.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let out = Command::new(&python)
                .args(["-c", compare])
                .env_clear()
                .envs(&env)
                .output()
                .expect("python3 runs");
            assert!(
                out.status.success(),
                "{case:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let pip: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let prefix = prefix_of(&python, &env);
            assert_eq!(pip["prefix"].as_str(), prefix.to_str(), "sys.prefix");
            let ours = pip_config(&prefix, &env).unwrap();
            let theirs: BTreeMap<String, String> =
                serde_json::from_value(pip["items"].clone()).unwrap();
            assert_eq!(ours, theirs, "{case:?}");
            // Each case read something: the comparison is not of empties.
            assert!(
                ours.keys().any(|k| !k.starts_with(":env:.")) || case.len() > 1,
                "{case:?}"
            );
        }
    }

    /// What Python's reader refuses, or would read otherwise than alto
    /// does, alto declines (pip then installs the tool, and says why).
    #[test]
    fn an_ini_file_alto_might_misread_is_declined() {
        for (text, why) in [
            ("[global]\na = 1\na = 2\n", "key a again"),
            ("[global]\n[global]\n", "section global again"),
            ("a = 1\n", "a key before any section"),
            ("[global]\njust words\n", "neither a key nor a section"),
            ("[global]\n= 1\n", "a value without a key"),
            ("[global] trailing\n", "a section header"),
            ("[global]\ra = 1\n", "CR alone"),
        ] {
            let err = read_ini(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let read = read_ini("[DEFAULT]\nx = 0\n[a]\ny: 1\n  2\n\n[b]\nx=3\n").unwrap();
        let read: Vec<(&str, &str, &str)> = read
            .iter()
            .map(|(s, k, v)| (s.as_str(), k.as_str(), v.as_str()))
            .collect();
        assert_eq!(read, [("a", "x", "0"), ("a", "y", "1\n2"), ("b", "x", "3")]);
    }

    #[test]
    fn pip_settings_alto_does_not_follow_are_declined() {
        let items = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for key in UNFOLLOWED {
            let err = PipSettings::read(&items(&[(&format!("install.{key}"), "x")])).unwrap_err();
            assert!(err.contains(key), "{err}");
        }
        // The variables first, then `install`, then `global`; PyPI by any
        // spelling is PyPI (its wheels pinned).
        let read = PipSettings::read(&items(&[
            ("global.index-url", "https://g/simple"),
            ("install.index-url", "https://i/simple"),
            ("global.cert", "/ca.pem"),
            ("install.extra-index-url", ""),
        ]))
        .unwrap();
        assert_eq!(
            read,
            PipSettings {
                index_url: Some("https://i/simple".into()),
                cert: Some("/ca.pem".into())
            }
        );
        let read = PipSettings::read(&items(&[
            (":env:.index-url", "https://pypi.org/simple/"),
            ("install.index-url", "https://i/simple"),
        ]))
        .unwrap();
        assert_eq!(read.index_url, None);
    }

    /// An index's credentials never reach an error (which `-vv` shows).
    #[test]
    fn a_failed_fetch_does_not_name_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = PipSettings {
            index_url: Some(format!("http://alto:s3cret@127.0.0.1:{port}/simple")),
            cert: None,
        };
        let client = settings.client().unwrap();
        let machine = Machine::this().unwrap();
        let err = on_own_runtime(async {
            let index = settings.index_url.as_deref().unwrap_or_default();
            from_page(&client, index, &machine, "uv", "1.0").await
        })
        .unwrap_err();
        assert!(err.starts_with("the index page: "), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("alto:"), "{err}");
    }

    #[test]
    fn the_wheel_that_fits_is_chosen_as_pip_would() {
        let glibc = Machine {
            arch: "x86_64",
            glibc: Some((2, 28)),
        };
        let musl = Machine {
            arch: "x86_64",
            glibc: None,
        };
        let files = [
            "uv-1.0-py3-none-any.whl",
            "uv-1.0-py3-none-linux_x86_64.whl",
            "uv-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "uv-1.0-py3-none-manylinux_2_31_x86_64.whl",
            "uv-1.0-py3-none-manylinux_2_17_i686.whl",
            "uv-1.0-py3-none-musllinux_1_1_x86_64.whl",
            "uv-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            "uv-1.01-py3-none-manylinux_2_28_x86_64.whl",
            "uv-1.0-py3-none-manylinux_2_28_x86_64.tar.gz",
        ];
        let best = |m: &Machine, files: &[&'static str]| {
            m.best(files.iter().map(|f| (*f, *f)), "uv", "1.0")
        };
        // The newest manylinux this glibc runs; not the one it cannot run,
        // another architecture, musl, another version or a CPython build.
        assert_eq!(
            best(&glibc, &files),
            Some("uv-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        );
        assert_eq!(
            best(&musl, &files),
            Some("uv-1.0-py3-none-musllinux_1_1_x86_64.whl")
        );
        assert_eq!(
            best(&glibc, &files[..2]),
            Some("uv-1.0-py3-none-linux_x86_64.whl")
        );
        assert_eq!(best(&musl, &files[..1]), Some("uv-1.0-py3-none-any.whl"));
        assert_eq!(best(&glibc, &files[3..5]), None);
    }

    #[test]
    fn this_machine_has_a_pinned_uv_wheel() {
        if !cfg!(all(
            target_os = "linux",
            target_arch = "x86_64",
            target_env = "gnu"
        )) {
            return;
        }
        let pinned = crate::realize::uv::PYPI_WHEELS;
        let chosen = Machine::this()
            .unwrap()
            .best(
                pinned.iter().map(|w| (w.filename(), w)),
                "uv",
                crate::realize::uv::UV_VERSION,
            )
            .unwrap();
        assert!(
            chosen
                .url
                .ends_with("manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        );
        for w in pinned {
            assert!(
                w.filename()
                    .starts_with(&format!("uv-{}-", crate::realize::uv::UV_VERSION))
            );
            assert_eq!(w.sha256.len(), 64);
        }
    }
}
