//! alto's own PEX writer: packs a venv uv installed into the PEX that the
//! provisioned pex makes of it (`pex --venv-repository VENV --venv
//! --no-emit-warnings --no-compress`), byte for byte, without starting
//! Python. pex spent 1.2-4 s of CPU a plugin on this (importing itself,
//! identifying two interpreters in subprocesses, copying every file into
//! installed-wheel chroots under its root, then zipping them); here it is
//! reading the files once and writing the zip.
//!
//! Each rule follows pex 2.105.2's source (cited as `file.py:function`).
//! Whatever this writer does not reproduce exactly (egg-info or editable
//! installs, quoted RECORD rows, `/bin/sh` launcher scripts, zip64 sizes,
//! ...) it declines, saying why, and the caller runs pex itself. The test
//! `tests/build.rs` compares its output with pex's for real plugins.

pub mod zip;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::Engine;
use indexmap::IndexMap;
use regex::Regex;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::pex::PEX_VERSION;

/// Why the writer left a venv to pex: a rule it does not reproduce, or a
/// file it could not read or write.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Declined(pub String);

fn declined<T>(why: impl Into<String>) -> Result<T, Declined> {
    Err(Declined(why.into()))
}

fn read(path: &Path) -> Result<Vec<u8>, Declined> {
    fs::read(path).map_err(|e| Declined(format!("cannot read {}: {e}", path.display())))
}

fn utf8(path: &Path) -> Result<String, Declined> {
    String::from_utf8(read(path)?).map_err(|_| Declined(format!("{} is not UTF-8", path.display())))
}

/// A file of the PEX: its bytes and whether it is executable.
type Files = BTreeMap<String, (Vec<u8>, bool)>;

/// `pex.os.is_exe`: a regular file this user may read and execute.
fn is_exe(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads a NUL-terminated path.
    path.is_file() && unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::X_OK) } == 0
}

/// `pex.common.is_pyc_file`.
fn is_pyc(name: &str) -> bool {
    static TEMP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\.pyc\.[0-9]+$").unwrap());
    name.ends_with(".pyc") || name.ends_with(".pyo") || TEMP.is_match(name)
}

/// Lines as `str.splitlines()` splits them, for text already refused if it
/// holds a separator other than `\r\n`, `\r`, `\n`.
fn lines(text: &str, keep_ends: bool) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&text[start..if keep_ends { end } else { i }]);
        start = end;
        i = end;
    }
    if start < bytes.len() {
        out.push(&text[start..]);
    }
    out
}

/// `str.splitlines()` separators this writer does not split on.
fn exotic_separator(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(
            c,
            '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    })
}

/// RFC 822 headers as `email.parser.Parser` (compat32) gives pex the ones it
/// reads: lower-cased names, values after `:` and leading blanks,
/// continuation lines appended, trailing line breaks stripped.
fn headers(text: &str) -> Result<Vec<(String, String)>, Declined> {
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^([\x21-\x39\x3b-\x7e]*):").unwrap());
    if exotic_separator(text.split("\n\n").next().unwrap_or("")) {
        return declined("exotic line separators in metadata headers");
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for line in lines(text, true) {
        if matches!(line, "\n" | "\r\n" | "\r") {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some((_, value)) => value.push_str(line),
                None => return declined("a header continuation line without a header"),
            }
            continue;
        }
        if line.starts_with("From ") {
            return declined("a 'From ' line in metadata headers");
        }
        let Some(m) = NAME.captures(line) else { break };
        let value = line[m[0].len()..].trim_start_matches([' ', '\t']);
        out.push((m[1].to_ascii_lowercase(), value.to_string()));
    }
    for (_, value) in &mut out {
        let trimmed = value.trim_end_matches(['\r', '\n']).len();
        value.truncate(trimmed);
    }
    Ok(out)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `"sha256=" + urlsafe_b64encode(digest).rstrip("=")`, as RECORD holds it.
fn record_hash(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// `os.path.normpath` of an absolute path.
fn normpath(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `os.path.realpath` (not strict): the longest existing prefix resolved,
/// the rest appended.
fn realpath(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => realpath(parent).join(name),
        _ => path.to_path_buf(),
    }
}

fn path_str(path: &Path) -> Result<&str, Declined> {
    path.to_str()
        .ok_or_else(|| Declined(format!("{} is not UTF-8", path.display())))
}

/// `path` under `base` (`commonpath((base, path)) == base`): the rest.
fn under<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if path == base {
        return Some(".");
    }
    path.strip_prefix(base)?.strip_prefix('/')
}

/// The venv facts pex reads through the venv's interpreter.
struct Venv {
    major_minor: String,
    site_packages: String,
    scripts: String,
    data: String,
    include_site: String,
}

/// `pyvenv.cfg` and the one site-packages of a uv venv (§1 of the port's
/// notes: purelib and platlib the same directory).
fn venv_layout(venv: &Path, python_version: &str) -> Result<Venv, Declined> {
    let venv = realpath(venv);
    let cfg = utf8(&venv.join("pyvenv.cfg"))?;
    let mut keys = std::collections::HashMap::new();
    for line in cfg.lines() {
        if let Some((k, v)) = line.split_once('=') {
            keys.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let version = keys
        .get("version_info")
        .or_else(|| keys.get("version"))
        .ok_or_else(|| Declined("pyvenv.cfg names no version".into()))?;
    let major_minor: Vec<&str> = version.split('.').take(2).collect();
    let major_minor = major_minor.join(".");
    if major_minor != python_version {
        return declined(format!(
            "the venv is Python {major_minor}, the interpreter {python_version}"
        ));
    }
    if keys
        .get("include-system-site-packages")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return declined("the venv includes the system site-packages");
    }
    let lib = venv.join("lib");
    let site = lib
        .join(format!("python{major_minor}"))
        .join("site-packages");
    if !site.is_dir() {
        return declined("no lib/pythonX.Y/site-packages in the venv");
    }
    let lib64 = venv
        .join("lib64")
        .join(format!("python{major_minor}"))
        .join("site-packages");
    if lib64.exists() && realpath(&lib64) != realpath(&site) {
        return declined("a separate lib64 site-packages");
    }
    let entries = fs::read_dir(&lib).map_err(|e| Declined(format!("cannot list lib: {e}")))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("python") && name != format!("python{major_minor}") {
            return declined(format!("a second lib/{name} in the venv"));
        }
    }
    let venv_str = path_str(&venv)?.to_string();
    Ok(Venv {
        site_packages: path_str(&realpath(&site))?.to_string(),
        scripts: path_str(&realpath(&venv.join("bin")))?.to_string(),
        include_site: format!("{venv_str}/include/site/python{major_minor}"),
        data: venv_str,
        major_minor,
    })
}

/// One installed distribution of the venv.
struct Dist {
    dist_info: String,
    name: String,
    root_is_purelib: bool,
    tags: Vec<(String, String, String)>,
    record: Vec<u8>,
    wheel_file_name: String,
    requirement: String,
    /// `entry_points.txt` exists.
    has_entry_points: bool,
    /// console_scripts then gui_scripts: name, module, attributes.
    scripts: Scripts,
}

/// `packaging.tags.parse_tag` over each `Tag` of WHEEL, each header's
/// expansion sorted on its own (`wheel.py:WHEEL.from_metadata_files`).
fn parse_tags(wheel: &[(String, String)]) -> Result<Vec<(String, String, String)>, Declined> {
    let mut tags = Vec::new();
    for (_, value) in wheel.iter().filter(|(k, v)| k == "tag" && !v.is_empty()) {
        let parts: Vec<Vec<&str>> = value.split('-').map(|p| p.split('.').collect()).collect();
        if parts.len() != 3 || parts.iter().any(|p| p.contains(&"")) {
            return declined(format!("an invalid WHEEL Tag {value:?}"));
        }
        let identifier = |s: &str| {
            let mut c = s.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        };
        if !parts[0].iter().all(|i| identifier(i)) {
            return declined(format!("an invalid WHEEL Tag {value:?}"));
        }
        let mut expanded = BTreeSet::new();
        for i in &parts[0] {
            for a in &parts[1] {
                for p in &parts[2] {
                    let t = (i.to_lowercase(), a.to_lowercase(), p.to_lowercase());
                    expanded.insert((format!("{}-{}-{}", t.0, t.1, t.2), t));
                }
            }
        }
        tags.extend(expanded.into_iter().map(|(_, t)| t));
    }
    if tags.is_empty() {
        return declined("WHEEL has no Tag");
    }
    Ok(tags)
}

/// PEP 440 (`packaging.version.VERSION_PATTERN`): pex writes `==` for such
/// a version, `===` otherwise.
static PEP440: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*
        (?:[-_\.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_\.]?[0-9]*)?
        (?:(?:-[0-9]+)|(?:[-_\.]?(?:post|rev|r)[-_\.]?[0-9]*))?
        (?:[-_\.]?dev[-_\.]?[0-9]*)?)
        (?:\+[a-z0-9]+(?:[-_\.][a-z0-9]+)*)?\s*$",
    )
    .unwrap()
});

fn load_dists(venv: &Venv) -> Result<Vec<Dist>, Declined> {
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]*$").unwrap());
    static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._+!-]+$").unwrap());
    static SEPARATORS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[-_.]+").unwrap());
    let site = Path::new(&venv.site_packages);
    let mut entries = Vec::new();
    for entry in fs::read_dir(site)
        .map_err(|e| Declined(format!("cannot list site-packages: {e}")))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return declined("a file name in site-packages is not UTF-8");
        };
        if name.ends_with(".egg-info") {
            return declined(format!("{name}: pex resolves egg-info distributions again"));
        }
        if name.ends_with(".dist-info") && !name.starts_with('.') {
            entries.push(name.to_string());
        }
    }
    entries.sort();
    let mut dists = Vec::new();
    for dist_info in entries {
        let dir = site.join(&dist_info);
        if !dir.join("METADATA").is_file() {
            continue;
        }
        let metadata = headers(&utf8(&dir.join("METADATA"))?)?;
        let (Some(name), Some(version)) = (header(&metadata, "name"), header(&metadata, "version"))
        else {
            return declined(format!("{dist_info}/METADATA lacks Name or Version"));
        };
        if !NAME.is_match(name) || !VERSION.is_match(version) {
            return declined(format!("an unusual name or version in {dist_info}"));
        }
        let files: HashSet<String> = fs::read_dir(&dir)
            .map_err(|e| Declined(format!("cannot list {dist_info}: {e}")))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .collect();
        if files.contains("direct_url.json") {
            let url: serde_json::Value =
                serde_json::from_slice(&read(&dir.join("direct_url.json"))?)
                    .map_err(|_| Declined(format!("an invalid {dist_info}/direct_url.json")))?;
            // pex takes any true value as editable, and fails on a file
            // that is not an object: only a plain boolean is followed.
            let editable = match (&url, &url["dir_info"]["editable"]) {
                (serde_json::Value::Object(_), serde_json::Value::Null) => false,
                (serde_json::Value::Object(_), serde_json::Value::Bool(b)) => *b,
                _ => return declined(format!("an unusual {dist_info}/direct_url.json")),
            };
            if editable && url["url"].as_str().is_some_and(|u| !u.is_empty()) {
                return declined(format!("{dist_info} is an editable install"));
            }
        }
        let pex_info = format!("{}.pex-info", dist_info.trim_end_matches(".dist-info"));
        if site.join(&pex_info).join("original-whl-info.json").exists() {
            return declined(format!("{pex_info} holds pex's own wheel metadata"));
        }
        if !files.contains("WHEEL") || !files.contains("RECORD") {
            return declined(format!("{dist_info} lacks WHEEL or RECORD"));
        }
        let wheel = utf8(&dir.join("WHEEL"))?;
        let wheel: String = lines(&wheel, true)
            .into_iter()
            .filter(|l| !l.trim_matches(is_py_space).is_empty())
            .collect();
        let wheel = headers(&wheel)?;
        let tags = parse_tags(&wheel)?;
        let record = read(&dir.join("RECORD"))?;
        if record.is_empty() {
            return declined(format!("{dist_info}/RECORD is empty"));
        }
        let unique = |i: usize| {
            let mut seen: Vec<&str> = Vec::new();
            for t in &tags {
                let f = [&t.0, &t.1, &t.2][i].as_str();
                if !seen.contains(&f) {
                    seen.push(f);
                }
            }
            seen.join(".")
        };
        let wheel_file_name = format!(
            "{}-{}-{}-{}-{}.whl",
            SEPARATORS.replace_all(name, "_"),
            version.replace('-', "_"),
            unique(0),
            unique(1),
            unique(2)
        );
        let op = if PEP440.is_match(version) {
            "=="
        } else {
            "==="
        };
        let has_entry_points = files.contains("entry_points.txt");
        let scripts = if has_entry_points {
            entry_points(&read(&dir.join("entry_points.txt"))?, &dist_info)?
        } else {
            Vec::new()
        };
        dists.push(Dist {
            name: name.to_string(),
            root_is_purelib: header(&wheel, "root-is-purelib") == Some("true"),
            tags,
            record,
            wheel_file_name,
            requirement: format!("{name}{op}{version}"),
            has_entry_points,
            scripts,
            dist_info,
        });
    }
    let mut projects = HashSet::new();
    let mut wheels = HashSet::new();
    for d in &dists {
        let project = SEPARATORS.replace_all(&d.name, "-").to_lowercase();
        if !projects.insert(project) || !wheels.insert(d.wheel_file_name.clone()) {
            return declined(format!("two distributions of {}", d.name));
        }
    }
    Ok(dists)
}

/// console_scripts then gui_scripts of `entry_points.txt`
/// (`Distribution.parse_entry_map`): within a group in first-seen order,
/// the last value of a name winning.
type Scripts = Vec<(String, String, Option<Vec<String>>)>;

/// A script's module and attributes, by name.
type Group = IndexMap<String, (String, Option<Vec<String>>)>;

fn entry_points(data: &[u8], dist_info: &str) -> Result<Scripts, Declined> {
    static MODULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.]+$").unwrap());
    static ATTR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_]+$").unwrap());
    let bad = || {
        Declined(format!(
            "an entry point of {dist_info} alto does not reproduce"
        ))
    };
    let mut groups: IndexMap<String, Group> = IndexMap::new();
    let mut group: Option<String> = None;
    let text = std::str::from_utf8(data).map_err(|_| bad())?;
    // Python's `str.strip` also strips \x1c-\x1f, which `trim` keeps.
    if text.contains(|c: char| ('\x1c'..='\x1f').contains(&c)) {
        return Err(bad());
    }
    for raw in lines(text, false) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            if line.len() == 2 {
                return Err(bad());
            }
            group = Some(line[1..line.len() - 1].to_string());
            continue;
        }
        let Some(g) = &group else { return Err(bad()) };
        let parts: Vec<&str> = line.split('=').collect();
        if parts.len() != 2 {
            return Err(bad());
        }
        let name = parts[0].trim().to_string();
        let spec = parts[1].trim().split('[').next().unwrap_or("").trim();
        let (module, obj) = match spec.split_once(':') {
            Some((m, o)) => (m.trim(), Some(o.trim())),
            None => (spec, None),
        };
        if module.is_empty() || obj == Some("") {
            return Err(bad());
        }
        let attrs = obj.map(|o| o.split('.').map(str::to_string).collect::<Vec<_>>());
        groups
            .entry(g.clone())
            .or_default()
            .insert(name, (module.to_string(), attrs));
    }
    let mut out = Vec::new();
    for g in ["console_scripts", "gui_scripts"] {
        for (name, (module, attrs)) in groups.get(g).into_iter().flatten() {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(bad());
            }
            if !MODULE.is_match(module)
                || attrs
                    .as_ref()
                    .is_some_and(|a| !a.iter().all(|x| ATTR.is_match(x)))
            {
                return Err(bad());
            }
            out.push((name.clone(), module.clone(), attrs.clone()));
        }
    }
    Ok(out)
}

/// `entry_points_txt.py`'s script for `module:attrs` (callable) or `module`.
fn entry_point_script(module: &str, attrs: Option<&[String]>) -> String {
    const EXIT: &str = "    import os\n    pex_root_fallback = os.environ.get(\"_PEX_ROOT_FALLBACK\")\n    if pex_root_fallback:\n        import atexit\n        import shutil\n\n        atexit.register(shutil.rmtree, pex_root_fallback, True)\n\n";
    match attrs {
        Some(attrs) => {
            let tuple = match attrs {
                [one] => format!("('{one}',)"),
                many => format!(
                    "({})",
                    many.iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!(
                "#!python\n# -*- coding: utf-8 -*-\nimport importlib\nimport sys\n\nentry_point = importlib.import_module('{module}')\nfor attr in {tuple}:\n    entry_point = getattr(entry_point, attr)\n\nif __name__ == \"__main__\":\n{EXIT}    sys.exit(entry_point())\n"
            )
        }
        None => format!(
            "#!python\n# -*- coding: utf-8 -*-\nimport runpy\nimport sys\n\nif __name__ == \"__main__\":\n{EXIT}    runpy.run_module('{module}', run_name=\"__main__\", alter_sys=True)\n    sys.exit(0)\n"
        ),
    }
}

/// Whether a script is one pex rewrites to `#!python`
/// (`executables.py:is_python_script`); a `/bin/sh` launcher is declined.
fn python_script(data: &[u8]) -> Result<bool, Declined> {
    static SHEBANG: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        regex::bytes::Regex::new(
            r"(?i-u)^(?:|.*\W)(?:python|pypy)(?:\d+(?:\.\d+)*)?(?:\.exe)?(?:\s[^\s]|$)",
        )
        .unwrap()
    });
    let Some(rest) = data.strip_prefix(b"#!") else {
        return Ok(false);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(b"");
    let end = line
        .iter()
        .rposition(|&b| !is_py_space(b as char))
        .map_or(0, |i| i + 1);
    let shebang = &line[..end];
    if shebang == b"/bin/sh" {
        return declined("a /bin/sh launcher script");
    }
    Ok(SHEBANG.is_match(shebang))
}

/// `_headers_install_path_for_wheel`: where a distribution's headers go.
fn headers_dir(d: &Dist) -> Result<String, Declined> {
    static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:_\d+)*").unwrap());
    let mut versions = BTreeSet::new();
    for (interp, _, _) in &d.tags {
        let Some(m) = DIGITS.find(interp) else {
            return declined(format!("a tag interpreter without a version: {interp}"));
        };
        let comps: Vec<&str> = m.as_str().split('_').collect();
        let v: Vec<String> = if comps.len() == 1 {
            let (a, b) = comps[0].split_at(1);
            [a, b]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_start_matches('0').to_string())
                .map(|s| if s.is_empty() { "0".into() } else { s })
                .collect()
        } else {
            comps
                .iter()
                .map(|c| c.parse::<u64>().map(|n| n.to_string()).unwrap_or_default())
                .collect()
        };
        versions.insert(v);
    }
    let (mut major, mut minor) = ("X".to_string(), "Y".to_string());
    if versions.len() == 1
        && let Some(v) = versions.first()
        && v.len() >= 2
    {
        major = v[0].clone();
        minor = v[1].clone();
    }
    Ok(format!(
        ".prefix/include/site/python{major}.{minor}/{}",
        d.name
    ))
}

/// Whitespace as Python's `bytes.strip` sees it (ASCII only).
fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Whether Python writes text files as UTF-8 under this environment's
/// locale: UTF-8 mode, a UTF-8 locale, or the C locale (coerced to UTF-8).
fn utf8_locale() -> bool {
    if std::env::var_os("PYTHONUTF8").is_some_and(|v| v == "1") {
        return true;
    }
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty());
    match locale.as_deref() {
        None | Some("C" | "POSIX") => true,
        Some(l) => {
            let l = l.to_ascii_lowercase();
            l.contains("utf-8") || l.contains("utf8")
        }
    }
}

/// One RECORD field as csv writes it, declining what would need quoting.
fn record_field(value: &str) -> Result<&str, Declined> {
    if value.contains([',', '"', '\r', '\n']) {
        return declined(format!("a RECORD field that needs quoting: {value:?}"));
    }
    Ok(value)
}

/// The installed-wheel chroot pex makes of `d` (`pep_427.py:install_wheel`
/// with `interpreter=None`): its files and its fingerprint.
fn chroot(d: &Dist, venv: &Venv) -> Result<(Files, String), Declined> {
    let loc = venv.site_packages.as_str();
    let headers_src = normpath(&format!("{}/{}", venv.include_site, d.name));
    let headers_dst = headers_dir(d)?;
    let (first, second) = if d.root_is_purelib {
        (("purelib", ""), ("platlib", ".prefix/platlib"))
    } else {
        (("platlib", ""), ("purelib", ".prefix/purelib"))
    };
    // Both site-packages here: the first of them always wins.
    let order: [(&str, &str, &str); 5] = [
        (first.0, loc, first.1),
        (second.0, loc, second.1),
        ("headers", &headers_src, &headers_dst),
        ("scripts", &venv.scripts, ".prefix/bin"),
        ("data", &venv.data, ".prefix/data"),
    ];
    let md = &d.dist_info;
    let record_path = format!("{md}/RECORD");
    let base = md.trim_end_matches(".dist-info");
    let dropped: [String; 5] = [
        format!("{md}/INSTALLER"),
        format!("{md}/REQUESTED"),
        format!("{base}.pex-info/original-whl-info.json"),
        format!("{md}/uv_build.json"),
        format!("{md}/uv_cache.json"),
    ];
    let script_names: HashSet<&str> = d.scripts.iter().map(|(n, _, _)| n.as_str()).collect();

    let text = std::str::from_utf8(&d.record)
        .map_err(|_| Declined(format!("{record_path} is not UTF-8")))?;
    if exotic_separator(text) || text.contains('"') {
        return declined(format!("{record_path} has quoted rows or odd line breaks"));
    }
    let mut files = Files::new();
    let mut record: Vec<[String; 3]> = Vec::new();
    let mut eol = "\n";
    for line in lines(text, false).into_iter().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let [path, hash, size] = fields[..] else {
            return declined(format!(
                "a RECORD row without three fields in {record_path}"
            ));
        };
        let size = if size.is_empty() {
            String::new()
        } else {
            match size.parse::<u64>() {
                Ok(n) if size.bytes().all(|b| b.is_ascii_digit()) => n.to_string(),
                _ => return declined(format!("a RECORD size {size:?} in {record_path}")),
            }
        };
        if path.ends_with('/') {
            record.push([path.into(), hash.into(), size]);
            continue;
        }
        // `os.path.join` would let it replace site-packages.
        if path.starts_with('/') {
            return declined(format!("an absolute RECORD path: {path}"));
        }
        if path == record_path {
            let own = read(&Path::new(loc).join(path))?;
            let first = own.split_inclusive(|&b| b == b'\n').next().unwrap_or(b"");
            eol = if first.ends_with(b"\r\n") {
                "\r\n"
            } else {
                "\n"
            };
            record.push([record_path.clone(), String::new(), String::new()]);
            continue;
        }
        if dropped.iter().any(|p| p == path) || path.ends_with(".pyc") {
            continue;
        }
        if path.contains('\\') {
            return declined(format!("a backslash in a RECORD path: {path}"));
        }
        let src = normpath(&format!("{loc}/{path}"));
        let meta = match fs::symlink_metadata(&src) {
            Ok(m) => m,
            // pex warns of a bad RECORD and leaves the row out.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return declined(format!("cannot read {src}: {e}")),
        };
        if !meta.is_file() {
            return declined(format!("a RECORD entry that is not a regular file: {path}"));
        }
        let Some((kind, rel, dst_dir)) = order
            .iter()
            .find_map(|(kind, base, dst)| under(&src, base).map(|rel| (*kind, rel, *dst)))
        else {
            return declined(format!("a RECORD file outside the venv: {path}"));
        };
        let data = read(Path::new(&src))?;
        if kind == "scripts" {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            if script_names.contains(name) {
                continue;
            }
            if python_script(&data)? {
                let line_end = data
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(data.len(), |i| i + 1);
                let mut new = b"#!python\n".to_vec();
                new.extend_from_slice(&data[line_end..]);
                let dst = format!(".prefix/bin/{rel}");
                record.push([dst.clone(), record_hash(&new), new.len().to_string()]);
                files.insert(dst, (new, false));
                continue;
            }
        }
        let dst = if dst_dir.is_empty() {
            rel.to_string()
        } else {
            format!("{dst_dir}/{rel}")
        };
        let stash =
            matches!(kind, "purelib" | "platlib") && rel.split('/').next() == Some(".prefix");
        if dst == ".layout.json" || stash {
            return declined(format!("{path} collides with pex's own files"));
        }
        if !files.contains_key(&dst) {
            files.insert(dst.clone(), (data, is_exe(Path::new(&src))));
        }
        record.push([dst, hash.into(), size]);
    }
    if d.has_entry_points {
        for (name, module, attrs) in &d.scripts {
            let dst = format!(".prefix/bin/{name}");
            if !files.contains_key(&dst) {
                let script = entry_point_script(module, attrs.as_deref());
                files.insert(dst.clone(), (script.into_bytes(), true));
            }
            let content = &files[&dst].0;
            record.push([dst, record_hash(content), content.len().to_string()]);
        }
    }
    let mut out = String::new();
    if !record.iter().flatten().all(|f| f.is_ascii()) && !utf8_locale() {
        return declined(
            "non-ASCII RECORD paths, which pex writes in a locale's encoding that is not UTF-8",
        );
    }
    for row in &record {
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(record_field(field)?);
        }
        out.push_str(eol);
    }
    files.insert(record_path.clone(), (out.into_bytes(), false));

    // `CacheHelper.dir_hash`, before `.layout.json` exists.
    let hashed: Vec<&String> = files
        .keys()
        .filter(|p| !is_pyc(p) && !p.split('/').rev().skip(1).any(|c| c == "__pycache__"))
        .collect();
    let mut h = Sha256::new();
    for p in &hashed {
        h.update(p.as_bytes());
    }
    for p in &hashed {
        h.update(&files[*p].0);
    }
    let fingerprint = hex(&h.finalize());
    let mut entries = Vec::new();
    for (_, dst) in [first, second] {
        if dst.is_empty() {
            entries.push(".".to_string());
        } else if files.keys().any(|f| f.starts_with(&format!("{dst}/"))) {
            entries.push(dst.to_string());
        }
    }
    let layout = serde_json::json!({
        "fingerprint": fingerprint,
        "record_relpath": record_path,
        "root_is_purelib": d.root_is_purelib,
        "stash_dir": ".prefix",
        "sys_path_entries": entries,
    });
    files.insert(
        ".layout.json".into(),
        (python_json(&layout).into_bytes(), false),
    );
    Ok((files, fingerprint))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `json.dumps(value, sort_keys=True, separators=(",", ":"))`: keys sorted,
/// non-ASCII as `\uXXXX`.
fn python_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn string(s: &str, out: &mut String) {
        out.push('"');
        out.push_str(&crate::config::redact::json_ascii(s, false));
        out.push('"');
    }
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(k, out);
                    out.push(':');
                    walk(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(item, out);
                }
                out.push(']');
            }
            Value::String(s) => string(s, out),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    walk(value, &mut out);
    out
}

/// Vendored runtime pex puts in `.bootstrap/` (`vendor.iter_vendor_specs`).
const VENDOR_SPECS: [&str; 12] = [
    "ansicolors",
    "appdirs",
    "attrs",
    "packaging_20_9",
    "packaging_21_3",
    "packaging_24_0",
    "packaging_26_2",
    "packaging_26_3",
    "toml",
    "tomli",
    "pip",
    "setuptools",
];

/// pex's own packages in `.bootstrap/` (`_prepare_bootstrap`, with tools).
const BOOTSTRAP_PACKAGES: [&str; 9] = [
    "cache",
    "commands",
    "fetcher",
    "fs",
    "repl",
    "third_party",
    "tools",
    "venv",
    "windows",
];

fn sorted_entries(dir: &Path) -> Result<(Vec<String>, Vec<String>), Declined> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir)
        .map_err(|e| Declined(format!("cannot list {}: {e}", dir.display())))?
        .flatten()
    {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return declined(format!("a file name in {} is not UTF-8", dir.display()));
        };
        if entry.path().is_dir() {
            if !entry.path().is_symlink() {
                dirs.push(name);
            }
        } else {
            files.push(name);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// `.bootstrap/` from pex's package directory, and its `bootstrap_hash`.
fn bootstrap(pex_dir: &Path) -> Result<(Files, String), Declined> {
    let root = pex_dir
        .parent()
        .ok_or_else(|| Declined("pex's package has no parent".into()))?;
    let mut files = Files::new();
    let mut taken: HashSet<PathBuf> = HashSet::new();
    let names = ["appdirs", "attr", "colors", "packaging", "pyparsing"];
    let vendored = pex_dir.join("vendor").join("_vendored");
    let with_setuptools = vendored.join("setuptools").is_dir();
    let wanted = |n: &str| names.contains(&n) || (with_setuptools && n == "pkg_resources");
    let mut found = HashSet::new();
    for spec in VENDOR_SPECS {
        let target = vendored.join(spec);
        if !target.is_dir() {
            continue;
        }
        let (top_files, top_dirs) = sorted_entries(&target)?;
        let packages: Vec<&String> = top_dirs.iter().filter(|p| wanted(p)).collect();
        let modules: Vec<&String> = top_files
            .iter()
            .filter(|m| m.len() >= 3 && wanted(&m[..m.len() - 3]))
            .collect();
        if packages.is_empty() && modules.is_empty() {
            continue;
        }
        let relpath = format!("pex/vendor/_vendored/{spec}");
        let mut pkg = String::new();
        for part in relpath.split('/') {
            pkg = format!("{pkg}{part}/");
            let src = root.join(format!("{pkg}__init__.py"));
            if !taken.insert(src.clone()) {
                continue;
            }
            let arc = format!(".bootstrap/{pkg}__init__.py");
            if src.exists() {
                files.insert(arc, (read(&src)?, is_exe(&src)));
            } else {
                files.insert(arc, (Vec::new(), false));
            }
        }
        for m in modules {
            found.insert(m[..m.len() - 3].to_string());
            let src = target.join(m);
            if !is_pyc(m) && taken.insert(src.clone()) {
                let arc = format!(".bootstrap/{relpath}/{m}");
                files.insert(arc, (read(&src)?, is_exe(&src)));
            }
        }
        for p in packages {
            found.insert(p.clone());
            let mut stack = vec![(target.join(p), p.clone())];
            while let Some((dir, rel)) = stack.pop() {
                let (fs_, ds) = sorted_entries(&dir)?;
                for f in fs_ {
                    let src = dir.join(&f);
                    if !is_pyc(&f) && taken.insert(src.clone()) {
                        let arc = format!(".bootstrap/{relpath}/{rel}/{f}");
                        files.insert(arc, (read(&src)?, is_exe(&src)));
                    }
                }
                for d in ds.into_iter().filter(|d| d != "__pycache__") {
                    stack.push((dir.join(&d), format!("{rel}/{d}")));
                }
            }
        }
    }
    if let Some(missing) = names.iter().find(|n| !found.contains(**n)) {
        return declined(format!("pex's vendored {missing} is missing"));
    }
    let mut digest = Sha1::new();
    fn walk(
        dir: &Path,
        rel: &str,
        top: bool,
        taken: &HashSet<PathBuf>,
        files: &mut Files,
        digest: &mut Sha1,
    ) -> Result<(), Declined> {
        let (fs_, mut ds) = sorted_entries(dir)?;
        if top {
            ds = BOOTSTRAP_PACKAGES.iter().map(|s| s.to_string()).collect();
            if let Some(d) = ds.iter().find(|d| !dir.join(d).is_dir()) {
                return declined(format!("pex's package lacks {d}/"));
            }
        }
        for f in fs_ {
            let src = dir.join(&f);
            if is_pyc(&f) || taken.contains(&src) {
                continue;
            }
            let data = read(&src)?;
            digest.update(&data);
            files.insert(format!(".bootstrap/pex/{rel}{f}"), (data, false));
        }
        for d in ds {
            walk(
                &dir.join(&d),
                &format!("{rel}{d}/"),
                false,
                taken,
                files,
                digest,
            )?;
        }
        Ok(())
    }
    walk(pex_dir, "", true, &taken, &mut files, &mut digest)?;
    Ok((files, hex(&digest.finalize())))
}

/// `pex.cache.root.path(expand_user=False)`: pex's default root as its
/// `__main__.py` names it, from `$HOME` and `$XDG_CACHE_HOME`.
fn raw_pex_root() -> Result<String, Declined> {
    // pex's appdirs names another root on macOS (`~/Library/Caches`), and
    // takes an empty or relative XDG_CACHE_HOME against its working directory.
    if !cfg!(target_os = "linux") {
        return declined("pex's default root is not worked out on this OS");
    }
    let home = std::env::var_os("HOME").ok_or_else(|| Declined("HOME is not set".into()))?;
    let home = realpath(Path::new(&home));
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if Path::new(&x).is_absolute() => PathBuf::from(x),
        Some(_) => return declined("XDG_CACHE_HOME is empty or relative"),
        None => home.join(".cache"),
    };
    let dir = realpath(&cache.join("pex"));
    let root = match dir.strip_prefix(&home) {
        Ok(rel) if rel.as_os_str().is_empty() => "~/.".to_string(),
        Ok(rel) => format!("~/{}", path_str(rel)?),
        Err(_) => path_str(&dir)?.to_string(),
    };
    if !root.bytes().all(|b| (0x20..0x7f).contains(&b)) || root.contains(['\'', '\\']) {
        return declined("pex's default root needs quoting");
    }
    Ok(root)
}

/// Packs `venv` into `out` as the provisioned pex (its package directory
/// `pex_dir`) would for an interpreter of `python_version` (`major.minor`,
/// CPython): see the module doc.
pub fn pack(venv: &Path, pex_dir: &Path, python_version: &str, out: &Path) -> Result<(), Declined> {
    let layout = venv_layout(venv, python_version)?;
    let shebang = format!("#!/usr/bin/env python{}", layout.major_minor);
    let dists = load_dists(&layout)?;
    let mut deps: BTreeMap<String, Files> = BTreeMap::new();
    let mut distributions = serde_json::Map::new();
    let mut requirements = BTreeSet::new();
    for d in &dists {
        let (files, fingerprint) = chroot(d, &layout)?;
        distributions.insert(d.wheel_file_name.clone(), fingerprint.into());
        requirements.insert(d.requirement.clone());
        deps.insert(format!(".deps/{}", d.wheel_file_name), files);
    }
    let (boot_files, bootstrap_hash) = bootstrap(pex_dir)?;
    let mut info = serde_json::json!({
        "bind_resource_paths": {},
        "bootstrap_hash": bootstrap_hash,
        "build_properties": {"pex_version": PEX_VERSION},
        "code_hash": hex(&Sha1::digest(b"")),
        "deps_are_wheel_files": false,
        "distributions": distributions,
        "emit_warnings": false,
        "excluded": [],
        "ignore_errors": false,
        "includes_tools": true,
        "inherit_path": "false",
        "inject_args": [],
        "inject_env": {},
        "inject_python_args": [],
        "interpreter_constraints": [],
        "interpreter_selection_strategy": "oldest",
        "max_install_jobs": 1,
        "overridden": [],
        "pex_path": "",
        "pex_paths": [],
        "requirements": requirements.into_iter().collect::<Vec<_>>(),
        "strip_pex_env": true,
        "venv": true,
        "venv_bin_path": "false",
        "venv_copies": false,
        "venv_hermetic_scripts": true,
        "venv_site_packages_copies": false,
        "venv_system_site_packages": false,
    });
    let pex_hash = hex(&Sha1::digest(python_json(&info).as_bytes()));
    info["pex_hash"] = pex_hash.clone().into();
    let pex_info = python_json(&info);

    let boot = utf8(&pex_dir.join("pex_boot.py"))?
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let main = format!(
        "\nresult, should_exit, is_globals = boot(\n    bootstrap_dir='.bootstrap',\n    pex_root='{}',\n    pex_hash='{pex_hash}',\n    hermetic_boot=True,\n    has_interpreter_constraints=False,\n    pex_path=(),\n    is_venv=True,\n    inject_python_args=(),\n)\nif should_exit:\n    sys.exit(0 if is_globals else result)\nelif is_globals:\n    globals().update(result)\n",
        raw_pex_root()?
    );
    let hook = format!("{boot}\n{main}");

    // The chroot's top-level entries in pex's order: sorted paths, a
    // `.deps/<wheel>` walked as a directory.
    enum Top<'a> {
        File(&'a [u8], bool),
        Dir(&'a Files),
    }
    let main_py = format!("{shebang}\n\n{hook}");
    let mut top: BTreeMap<&str, Top> = BTreeMap::new();
    for (arc, (data, exe)) in &boot_files {
        top.insert(arc, Top::File(data, *exe));
    }
    for (arc, files) in &deps {
        top.insert(arc, Top::Dir(files));
    }
    top.insert("PEX-INFO", Top::File(pex_info.as_bytes(), false));
    top.insert("__main__.py", Top::File(main_py.as_bytes(), true));
    top.insert("__pex__/__init__.py", Top::File(hook.as_bytes(), false));

    // `out` is the build's own temporary path (the caller commits it).
    let file = fs::File::create(out)
        .map_err(|e| Declined(format!("cannot create {}: {e}", out.display())))?;
    let written = (|| -> Result<(), zip::ZipError> {
        let mut zip = zip::ZipWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            format!("{shebang}\n").as_bytes(),
        )?;
        let mut dirs: HashSet<String> = HashSet::new();
        let mut put = |zip: &mut zip::ZipWriter<_>, arc: &str, data: &[u8], exe: bool| {
            let mut parents = Vec::new();
            let mut p = arc;
            while let Some(i) = p.rfind('/') {
                p = &p[..i];
                if dirs.contains(p) {
                    break;
                }
                parents.push(p.to_string());
            }
            for dir in parents.into_iter().rev() {
                zip.dir(&format!("{dir}/"))?;
                dirs.insert(dir);
            }
            zip.file(arc, if exe { 0o100755 } else { 0o100644 }, data)
        };
        for (arc, entry) in &top {
            match entry {
                Top::File(data, exe) => {
                    if !is_pyc(arc) {
                        put(&mut zip, arc, data, *exe)?;
                    }
                }
                Top::Dir(files) => {
                    // deterministic_walk: a directory's files, then its
                    // subdirectories, each sorted.
                    let mut order: Vec<(&String, &(Vec<u8>, bool))> = files.iter().collect();
                    order.sort_by(|a, b| walk_order(a.0, b.0));
                    for (rel, (data, exe)) in order {
                        let name = rel.rsplit('/').next().unwrap_or(rel);
                        if !is_pyc(name) {
                            put(&mut zip, &format!("{arc}/{rel}"), data, *exe)?;
                        }
                    }
                }
            }
        }
        let mut w = zip.finish()?;
        w.flush()?;
        Ok(())
    })();
    use std::os::unix::fs::PermissionsExt;
    let written = written.map_err(|e| e.to_string()).and_then(|()| {
        fs::set_permissions(out, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
    });
    if let Err(e) = written {
        let _ = fs::remove_file(out);
        return declined(format!("cannot write the PEX: {e}"));
    }
    Ok(())
}

/// The order `deterministic_walk` visits two files of one tree in: in a
/// directory, its files (sorted) come before its subdirectories (sorted).
fn walk_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut ai, mut bi) = (a.split('/').peekable(), b.split('/').peekable());
    loop {
        match (ai.next(), bi.next()) {
            (Some(x), Some(y)) => {
                let x_dir = ai.peek().is_some();
                let y_dir = bi.peek().is_some();
                if x == y && x_dir && y_dir {
                    continue;
                }
                return x_dir.cmp(&y_dir).then(x.cmp(y));
            }
            (a, b) => return a.is_some().cmp(&b.is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_s_files_come_before_its_subdirectories() {
        let mut v = vec![
            "b/x",
            "a.py",
            "z.py",
            "a/y",
            ".layout.json",
            ".prefix/bin/t",
        ];
        v.sort_by(|a, b| walk_order(a, b));
        assert_eq!(
            v,
            [
                ".layout.json",
                "a.py",
                "z.py",
                ".prefix/bin/t",
                "a/y",
                "b/x"
            ]
        );
    }

    #[test]
    fn json_is_python_s_sorted_compact_ascii() {
        let v = serde_json::json!({"b": [1, true, null], "a": "é\"x"});
        assert_eq!(python_json(&v), r#"{"a":"\u00e9\"x","b":[1,true,null]}"#);
    }

    #[test]
    fn headers_read_as_email_does() {
        let h =
            headers("Name: Foo.Bar\nVersion:  1.0 \r\nSummary: a\n  b\n\nName: late\n").unwrap();
        assert_eq!(header(&h, "name"), Some("Foo.Bar"));
        assert_eq!(header(&h, "version"), Some("1.0 "));
        assert_eq!(header(&h, "summary"), Some("a\n  b"));
    }

    #[test]
    fn tags_expand_and_sort_per_header() {
        let wheel = headers("Tag: cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64\nTag: cp311-cp311-manylinux_2_28_x86_64\n").unwrap();
        let tags = parse_tags(&wheel).unwrap();
        let plats: Vec<&str> = tags.iter().map(|t| t.2.as_str()).collect();
        assert_eq!(
            plats,
            [
                "manylinux2014_x86_64",
                "manylinux_2_17_x86_64",
                "manylinux_2_28_x86_64"
            ]
        );
    }

    #[test]
    fn scripts_pex_rewrites() {
        assert!(python_script(b"#!/venv/bin/python\nprint(1)\n").unwrap());
        assert!(python_script(b"#!/usr/bin/env python3.11 -E\n").unwrap());
        assert!(!python_script(b"#!/bin/bash\n").unwrap());
        assert!(!python_script(b"plain").unwrap());
        // `bytes.rstrip` strips a vertical tab, `trim_ascii_end` does not.
        assert!(python_script(b"#!/usr/bin/python3\x0b\n").unwrap());
        assert!(python_script(b"#!/bin/sh\n'''exec' x\n").is_err());
    }

    /// A venv layout over a temporary site-packages holding `foo 1.0`,
    /// its dist-info files as given (METADATA, WHEEL and RECORD unless
    /// overridden).
    fn one_dist(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Venv) {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.11/site-packages");
        let info = site.join("foo-1.0.dist-info");
        fs::create_dir_all(&info).unwrap();
        fs::write(info.join("METADATA"), "Name: foo\nVersion: 1.0\n").unwrap();
        fs::write(
            info.join("WHEEL"),
            "Wheel-Version: 1.0\nTag: py3-none-any\n",
        )
        .unwrap();
        fs::write(info.join("RECORD"), "foo-1.0.dist-info/RECORD,,\n").unwrap();
        for (name, data) in files {
            fs::write(info.join(name), data).unwrap();
        }
        let root = dir.path().to_string_lossy().into_owned();
        let venv = Venv {
            major_minor: "3.11".into(),
            site_packages: site.to_string_lossy().into_owned(),
            scripts: format!("{root}/bin"),
            data: root.clone(),
            include_site: format!("{root}/include/site/python3.11"),
        };
        (dir, venv)
    }

    fn declines(r: Result<impl std::fmt::Debug, Declined>, why: &str) {
        match r {
            Err(Declined(d)) => assert!(d.contains(why), "declined for {d:?}, not {why:?}"),
            Ok(v) => panic!("not declined ({why}): {v:?}"),
        }
    }

    #[test]
    fn what_pex_would_write_otherwise_is_declined() {
        // A line of a non-ASCII space before the Tag: pex's header parser
        // stops there (bytes.strip keeps it) and names another wheel.
        let (_d, venv) = one_dist(&[(
            "WHEEL",
            "Wheel-Version: 1.0\n\u{a0}\nTag: py3-none-any\n".as_bytes(),
        )]);
        declines(load_dists(&venv).map(|d| d.len()), "WHEEL has no Tag");
        // Any true `editable` is editable to pex; a non-object fails pex.
        for url in [
            r#"{"url": "file:///src/foo", "dir_info": {"editable": "yes"}}"#,
            r#"["not", "an", "object"]"#,
        ] {
            let (_d, venv) = one_dist(&[("direct_url.json", url.as_bytes())]);
            declines(load_dists(&venv).map(|d| d.len()), "direct_url.json");
        }
        let (_d, venv) = one_dist(&[(
            "direct_url.json",
            br#"{"url": "https://x/foo.whl", "archive_info": {}}"#.as_slice(),
        )]);
        assert_eq!(load_dists(&venv).unwrap().len(), 1);
        // An absolute RECORD path replaces site-packages in os.path.join.
        let (d, venv) = one_dist(&[]);
        let abs = d.path().join("bin/footool");
        fs::create_dir_all(abs.parent().unwrap()).unwrap();
        fs::write(&abs, "#!/usr/bin/python3\n").unwrap();
        let record = format!("{},,\nfoo-1.0.dist-info/RECORD,,\n", abs.display());
        fs::write(
            Path::new(&venv.site_packages).join("foo-1.0.dist-info/RECORD"),
            record,
        )
        .unwrap();
        let dists = load_dists(&venv).unwrap();
        declines(
            chroot(&dists[0], &venv).map(|f| f.1),
            "absolute RECORD path",
        );
        // Entry points `str.strip` reads otherwise than `trim`, or an
        // empty group, which pex fails on.
        declines(
            entry_points(b"[console_scripts]\n\x1ffoo = m:f\n", "d"),
            "entry point",
        );
        declines(entry_points(b"[]\nfoo = m:f\n", "d"), "entry point");
        assert_eq!(
            entry_points(b"[console_scripts]\n foo = m:f \n", "d")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn versions_pex_pins_with_two_or_three_equals() {
        assert!(PEP440.is_match("1.0.post1"));
        assert!(PEP440.is_match("2026.10.19.post1"));
        assert!(PEP440.is_match("1.0rc1+local.2"));
        assert!(!PEP440.is_match("1.0-custom-build"));
    }
}
