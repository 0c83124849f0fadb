//! The resolver and installer: a pinned uv, provisioned by alto into the
//! local store's tools like pex. A plugin's `pip_url` is installed with it
//! into a fresh venv for the plugin's interpreter, which pex then packs.

use std::os::unix::ffi::OsStrExt;
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
            fetch: Some(&|tmp: &Path| fetch(python, tmp)),
        },
        python,
        &dir,
        None,
    )?;
    Ok(binary(&dir))
}

/// `pip_config()`: pip's configuration (`section.key` to value), read as
/// pip reads it (`pip/_internal/configuration.py`, `Configuration.load`:
/// its files in override order, then `PIP_*` variables) without importing
/// `pip._internal`, which took a third of a second of every cold build;
/// where pip's file locations differ (not Linux), pip reads it.
macro_rules! pip_config {
    () => {
        r#"
import os, sys
def pip_config():
    if not sys.platform.startswith("linux"):
        from pip._internal.configuration import Configuration
        conf = Configuration(isolated=False)
        conf.load()
        return dict(conf.items())
    import configparser, locale
    def name(key):
        key = key.lower().replace("_", "-")
        return key[2:] if key.startswith("--") else key
    env_file = os.environ.get("PIP_CONFIG_FILE")
    items = {}
    if env_file != os.devnull:
        dirs = os.environ.get("XDG_CONFIG_DIRS", "")
        dirs = dirs if dirs.strip() else "/etc/xdg"
        files = [os.path.join(os.path.expanduser(d), "pip", "pip.conf") for d in dirs.split(os.pathsep)]
        files.append("/etc/pip.conf")
        if not (env_file and os.path.exists(env_file)):
            home = os.environ.get("XDG_CONFIG_HOME", "")
            home = home if home.strip() else os.path.expanduser("~/.config")
            files.append(os.path.join(os.path.expanduser("~"), ".pip", "pip.conf"))
            files.append(os.path.join(home, "pip", "pip.conf"))
        files.append(os.path.join(sys.prefix, "pip.conf"))
        if env_file is not None:
            files.append(env_file)
        for f in files:
            if os.path.exists(f):
                parser = configparser.RawConfigParser()
                parser.read(f, encoding=locale.getpreferredencoding(False))
                for section in parser.sections():
                    for key, value in parser.items(section):
                        items[section + "." + name(key)] = value
    for key, value in os.environ.items():
        if key.startswith("PIP_") and key[4:].lower() not in ("version", "help"):
            items[":env:." + name(key[4:])] = value
    return items
"#
    };
}

/// Fetches uv's wheel for `python`'s platform from the index pip is set to
/// use, checks its sha256 against the index's, and writes it on stdout
/// (alto unpacks it: Python's zlib took 0.26 s to inflate the 38 MB
/// binary, zlib-rs 0.15 s): 0.5 s where `pip install uv` took 3.9 s,
/// weighing every one of the 6 025 files of uv's index page. Python's own
/// HTTP client, so pip's certificate setting and the proxy variables hold
/// as for pip; a setting it does not follow (several indexes, a proxy or a
/// client certificate in pip's configuration), an index without PEP 691's
/// JSON pages, or no fitting wheel, and pip installs uv instead.
const FETCH_WHEEL: &str = concat!(
    pip_config!(),
    r#"
import hashlib, json, ssl, urllib.parse, urllib.request
name, version = sys.argv[1:3]
from pip._vendor.packaging.tags import sys_tags
from pip._vendor.packaging.utils import parse_wheel_filename
items = pip_config()
def setting(key):
    for section in (":env:", "install", "global"):
        if items.get(section + "." + key):
            return items[section + "." + key]
for key in ("extra-index-url", "no-index", "proxy", "client-cert", "trusted-host"):
    if setting(key):
        sys.exit("pip is set up with " + key)
index = setting("index-url") or "https://pypi.org/simple"
context = ssl.create_default_context(cafile=setting("cert"))
page_url = index.rstrip("/") + "/" + name + "/"
request = urllib.request.Request(page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
with urllib.request.urlopen(request, timeout=15, context=context) as r:
    if "json" not in r.headers.get("Content-Type", ""):
        sys.exit("the index gave no JSON page")
    page = json.load(r)
    base = r.geturl()
files = {}
prefix = "%s-%s-" % (name.replace("-", "_"), version)
for f in page.get("files", []):
    if not (f["filename"].startswith(prefix) and f["filename"].endswith(".whl")) or f.get("yanked"):
        continue
    try:
        _, v, _, tags = parse_wheel_filename(f["filename"])
    except Exception:
        continue
    if str(v) == version:
        for tag in tags:
            files.setdefault(tag, f)
chosen = next((files[t] for t in sys_tags() if t in files), None)
if chosen is None:
    sys.exit("no wheel of %s %s fits this interpreter" % (name, version))
digest = chosen.get("hashes", {}).get("sha256")
if not digest:
    sys.exit("the index gave no sha256")
with urllib.request.urlopen(urllib.parse.urljoin(base, chosen["url"]), timeout=120, context=context) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != digest:
    sys.exit("%s does not have the sha256 the index gave" % chosen["filename"])
sys.stdout.buffer.write(data)
"#
);

/// Runs [`FETCH_WHEEL`] for the pinned uv and puts the executables of its
/// wheel (`uv-VERSION.data/scripts/`) in `dest/bin`.
fn fetch(python: &Path, dest: &Path) -> Result<(), String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", FETCH_WHEEL, "uv", UV_VERSION])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = crate::interrupt::Process::spawn(&mut cmd)
        .and_then(|mut p| p.wait_with_output())
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(super::tail(&String::from_utf8_lossy(&out.stderr), 3));
    }
    tracing::debug!("uv {UV_VERSION}: its wheel fetched from the index, sha256 checked");
    unpack_scripts(&out.stdout, &format!("uv-{UV_VERSION}.data/scripts/"), dest)
        .map_err(|e| format!("its wheel: {e}"))
}

/// Writes the files of `wheel` under `scripts` (its `.data/scripts/`
/// directory, no deeper) into `dest/bin`, executable.
fn unpack_scripts(wheel: &[u8], scripts: &str, dest: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dest.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;
    let entries = super::pack::zip::entries(wheel).map_err(|e| e.to_string())?;
    for entry in entries {
        let Some(name) = entry.name.strip_prefix(scripts.as_bytes()) else {
            continue;
        };
        // A name with a slash or nothing after the prefix is a directory or
        // deeper than a script; `..` cannot climb out of `bin`.
        if name.is_empty() || name.contains(&b'/') || name == b".." || name == b"." {
            continue;
        }
        let path = bin.join(std::ffi::OsStr::from_bytes(name));
        let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut file = std::fs::File::create(&path).map_err(cannot)?;
        // Written on a thread of its own while the next chunk is inflated:
        // writing 38 MB into the page cache took as long as inflating it.
        let (chunks, arriving) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let (inflated, written) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                arriving
                    .into_iter()
                    .try_for_each(|chunk| std::io::Write::write_all(&mut file, &chunk))
            });
            let inflated = entry.inflate(|chunk| {
                // A writer that stopped has its error below.
                let _ = chunks.send(chunk);
                Ok(())
            });
            drop(chunks);
            (inflated, writer.join())
        });
        inflated.map_err(|e| e.to_string())?;
        match written {
            Ok(result) => result.map_err(cannot)?,
            Err(_) => return Err(format!("writing {} panicked", path.display())),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(cannot)?;
    }
    Ok(())
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
    fn only_the_wheel_s_scripts_are_unpacked_into_bin() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("uv.whl");
        let made = Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
                 \x20   z.writestr('uv-1.data/scripts/uv', b'#!/bin/sh\\n' * 300000)\n\
                 \x20   z.writestr('uv-1.data/scripts/uvx', b'x')\n\
                 \x20   z.writestr('uv-1.data/scripts/sub/deeper', b'no')\n\
                 \x20   z.writestr('uv-1.data/scripts/..', b'no')\n\
                 \x20   z.writestr('uv-1.data/scripts/', b'')\n\
                 \x20   z.writestr('uv/__init__.py', b'no')\n",
            )
            .arg(&wheel)
            .status()
            .unwrap();
        assert!(made.success());
        let dest = dir.path().join("tool");
        unpack_scripts(&std::fs::read(&wheel).unwrap(), "uv-1.data/scripts/", &dest).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dest.join("bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["uv", "uvx"]);
        let uv = dest.join("bin/uv");
        assert_eq!(std::fs::read(&uv).unwrap(), b"#!/bin/sh\n".repeat(300_000));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&uv).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(!dir.path().join("no").exists());
        // A wheel that is not one is an error, never a panic.
        let err = unpack_scripts(b"not a zip", "uv-1.data/scripts/", &dest).unwrap_err();
        assert!(err.contains("not a zip archive"), "{err}");
    }

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

    /// `pip_config()` gives what pip's own `Configuration` gives, for
    /// every way of placing pip's settings (files of each kind, XDG
    /// directories, `PIP_CONFIG_FILE` set, missing or `os.devnull`,
    /// variables, `_` and `--` in keys), with the python3 on PATH.
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
            "[global]\nindex_url = https://new/simple\n[install]\n--extra-index-url = https://extra/simple\n",
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
            "[install]\nindex-url = https://envfile/simple\n",
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
        let compare = concat!(
            pip_config!(),
            "\nfrom pip._internal.configuration import Configuration\n",
            "conf = Configuration(isolated=False)\nconf.load()\n",
            "assert pip_config() == dict(conf.items()), (pip_config(), dict(conf.items()))\n",
            "print(len(pip_config()))\n",
        );
        for case in cases {
            let mut c = Command::new("python3");
            c.args(["-c", compare]).env("HOME", p("home"));
            for k in ["XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "PIP_CONFIG_FILE"] {
                c.env_remove(k);
            }
            for (k, v) in &case {
                c.env(k, v);
            }
            let out = c.output().expect("python3 runs");
            assert!(
                out.status.success(),
                "{case:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Each case read something: the comparison is not of empties.
            let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            assert!(n > 0, "{case:?} read nothing");
        }
    }
}
