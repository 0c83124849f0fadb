//! The builder: a pinned pex, provisioned by alto itself into the local
//! store's tools (through the interpreter's pip, from the package registry),
//! or the executable the `pex` setting names.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::RealizeError;
use crate::eval::{Builder, Builders, PluginDerivation};

/// The pex alto provisions. Builds with it are byte-for-byte reproducible.
pub const PEX_VERSION: &str = "2.105.2";

/// Flags that decide the PEX's content, hence part of every plugin key.
/// `--venv`: the PEX installs itself into a venv (alto has it do so as part
/// of realizing it) and starts fast from then on. `--no-compress`: packing
/// without deflate is what most of pex's time went to (tap-postgres: 4.2 s
/// against 6.8 s); the remote store carries the PEX zstd-compressed, about
/// as small as deflate made it (23.5 MB against 23 MB), and the local store
/// keeps it as it runs.
pub const PEX_FLAGS: [&str; 3] = ["--venv", "--no-emit-warnings", "--no-compress"];

/// Not a content flag (the PEX is the same byte for byte): pex also
/// installs the PEX into its venv under pex's root as it builds it, which
/// preparing it would otherwise do by running it, booting pex's runtime
/// from the zip (tap-postgres: 1.4 s more packing, 2.4 s less preparing).
/// Only where pex resolves: a plugin uv installed runs from uv's venv.
pub const SEED: &str = "--seed=args";

/// The flags of a build from a venv uv installed.
pub const VENV_FLAGS: [&str; 1] = ["--venv-repository"];

/// The flags of a build pex resolves itself (what uv cannot take): a
/// modern pip, pinned (pex's `latest` names pips the registry may not
/// have), the last to run on Python 3.8; not pex's vendored pip 20.3.4 and
/// its legacy resolver. On an older interpreter pex falls back to that one.
pub const PIP_FLAGS: [&str; 2] = ["--pip-version", "25.0.1"];

/// `python` with the provisioned pex in `lib` importable. pex's own byte
/// code is cached in its tools directory (compiled there when provisioned,
/// for other interpreters on first use), whatever the environment says:
/// compiling pex at every start was about 0.5 s of each build.
fn python_with(lib: &Path, python: &Path) -> Command {
    let mut c = Command::new(python);
    c.env("PYTHONPATH", lib)
        .env_remove("PYTHONDONTWRITEBYTECODE");
    c
}

/// A usable pex.
#[derive(Clone, Debug)]
pub enum PexTool {
    /// Provisioned by alto: `python -m pex` with this directory on PYTHONPATH.
    Provisioned { lib: PathBuf },
    /// The `pex` setting.
    Executable { path: PathBuf, version: String },
}

impl PexTool {
    pub fn version(&self) -> &str {
        match self {
            PexTool::Provisioned { .. } => PEX_VERSION,
            PexTool::Executable { version, .. } => version,
        }
    }

    /// Who builds, for each way of building: part of every plugin key.
    pub fn builders(&self) -> Builders {
        let flags = |extra: &[&str]| -> Vec<String> {
            extra
                .iter()
                .chain(PEX_FLAGS.iter())
                .map(|s| s.to_string())
                .collect()
        };
        Builders {
            uv: Builder {
                tool: "uv+pex".into(),
                version: format!("uv {}, pex {}", super::uv::UV_VERSION, self.version()),
                flags: flags(&VENV_FLAGS),
            },
            pip: Builder {
                tool: "pex".into(),
                version: self.version().to_string(),
                flags: flags(&PIP_FLAGS),
            },
        }
    }

    /// A `pex` invocation run by `python`.
    pub fn command(&self, python: &Path) -> Command {
        match self {
            PexTool::Provisioned { lib } => {
                let mut c = python_with(lib, python);
                c.args(["-m", "pex"]);
                c
            }
            PexTool::Executable { path, .. } => Command::new(path),
        }
    }
}

/// The pex command building `d` into `out`, and, when `pip_url` holds a
/// secret, the arguments to write to its stdin. A secret never goes on a
/// command line (which every user of the machine can read in `/proc`):
/// then every argument goes through pex's argument file (`@FILE`, one
/// argument a line) read from `/dev/stdin`. All of them, not only the
/// secret ones: pex parses an argument file on its own and lets its
/// defaults override the options of the command line.
pub fn invocation(tool: &PexTool, d: &PluginDerivation, out: &Path) -> (Command, Option<Vec<u8>>) {
    let mut args: Vec<OsString> = d.build.tokens.iter().map(OsString::from).collect();
    args.extend(PIP_FLAGS.iter().map(OsString::from));
    args.push("-o".into());
    args.push(out.into());
    args.extend(PEX_FLAGS.iter().map(OsString::from));
    args.push(SEED.into());
    args.push("--python".into());
    args.push(d.python.clone().into());
    let mut cmd = tool.command(&d.python);
    if d.build.secrets.is_empty() {
        cmd.args(args);
        return (cmd, None);
    }
    let mut file = Vec::new();
    for a in &args {
        file.extend_from_slice(a.as_encoded_bytes());
        file.push(b'\n');
    }
    cmd.arg("@/dev/stdin");
    (cmd, Some(file))
}

/// The pex command that makes pex install its pinned pip (`PIP_FLAGS`) for
/// `python` from the package registry, as alto provisions pex itself: pex
/// would otherwise fetch that pip from the `pip_url`'s own index, which a
/// private index (`--no-pypi --index-url ...`) need not serve. It resolves
/// only that pip, into `out`, which is thrown away.
pub fn provision_pip(tool: &PexTool, python: &Path, out: &Path) -> Command {
    let mut cmd = tool.command(python);
    cmd.args(PIP_FLAGS)
        .arg(format!("pip=={}", PIP_FLAGS[1]))
        .arg("-o")
        .arg(out)
        .arg("--python")
        .arg(python);
    cmd
}

/// The pex command packing the venv uv installed into `out`: everything in
/// it (a `uv venv` holds only what `pip_url` installs), for the venv's
/// interpreter (`--python` would be another target to pex, even when it is
/// the interpreter the venv was made from).
pub fn pack(tool: &PexTool, python: &Path, venv: &Path, out: &Path) -> Command {
    let mut cmd = tool.command(python);
    cmd.args(pack_args(venv, out));
    cmd
}

/// pex's arguments for [`pack`], and for a pex [`prestarted`] to pack.
fn pack_args<'a>(venv: &'a Path, out: &'a Path) -> impl Iterator<Item = &'a OsStr> {
    [
        OsStr::new("--venv-repository"),
        venv.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]
    .into_iter()
    .chain(PEX_FLAGS.iter().map(OsStr::new))
}

/// pex started ahead of packing, then given its arguments: pex's own start
/// (importing itself, 0.4 s, and identifying the interpreter, 0.5 s the
/// first time in a pex root) happens while uv installs, off the build's
/// path. It runs pex's own command line, `pex.bin.pex.main`, as `python -m
/// pex` does: the PEX is the same byte for byte. Given nothing (stdin
/// closed empty) it ends.
const PRESTART: &str = r#"
import json, sys
from pex.bin import pex
try:
    from pex.interpreter import PythonInterpreter
    PythonInterpreter.get()
except Exception:
    pass  # only a head start: packing identifies it again and says why
args = sys.stdin.read()
if args:
    pex.main(json.loads(args))
"#;

/// The provisioned pex started ahead of packing the venv uv installs at
/// `venv` into `out` (see [`PRESTART`]), and the arguments to hand it on
/// stdin once the venv is installed: those of [`pack`]. `None` for a pex
/// the `pex` setting names (alto cannot start it half way) or a path that
/// is not UTF-8 (the arguments go as JSON): then [`pack`] runs.
pub fn prestarted(
    tool: &PexTool,
    python: &Path,
    venv: &Path,
    out: &Path,
) -> Option<(Command, Vec<u8>)> {
    let PexTool::Provisioned { lib } = tool else {
        return None;
    };
    let args: Option<Vec<&str>> = pack_args(venv, out).map(OsStr::to_str).collect();
    let input = serde_json::to_vec(&args?).ok()?;
    let mut cmd = python_with(lib, python);
    cmd.args(["-c", PRESTART]);
    Some((cmd, input))
}

/// Whether a built PEX holds any of `secrets`: the first place found (an
/// entry's name), or `None`. pex records direct references of requirements
/// in `PEX-INFO`, credentials and all, and the PEX is shared through the
/// remote store. Python's zipfile reads it; the secrets go on stdin.
pub fn find_secrets(
    python: &Path,
    pex: &Path,
    secrets: &[String],
) -> Result<Option<String>, String> {
    const SCAN: &str = r#"
import sys, zipfile
secrets = [s for s in sys.stdin.buffer.read().split(b"\0") if s]
def holds(data):
    return any(s in data for s in secrets)
with open(sys.argv[1], "rb") as f:
    if holds(f.read()):
        found = "the file"
    else:
        found = None
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if holds(info.filename.encode()) or holds(z.read(info)):
            found = info.filename
            break
if found:
    sys.stdout.write(found)
    sys.exit(3)
"#;
    let mut cmd = Command::new(python);
    cmd.args(["-c", SCAN])
        .arg(pex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut input = Vec::new();
        for s in secrets {
            input.extend_from_slice(s.as_bytes());
            input.push(0);
        }
        // A scanner that died early shows in its status below.
        let _ = std::io::Write::write_all(&mut stdin, &input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    match out.status.code() {
        Some(0) => Ok(None),
        Some(3) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        _ => Err(super::tail(&String::from_utf8_lossy(&out.stderr), 5)),
    }
}

/// Byte-compiles the provisioned pex for `python`, before alto runs it: a
/// Docker image often sets PYTHONDONTWRITEBYTECODE, and pex compiled at
/// every start was about 0.5 s of each build. Best effort: pex vendors code
/// for newer interpreters than some it runs on (an old one fails to compile
/// those files, and never imports them). Once compiled, 0.3 s.
pub fn byte_compile(tool: &PexTool, python: &Path) {
    let PexTool::Provisioned { lib } = tool else {
        return;
    };
    let compiled = Command::new(python)
        .args(["-m", "compileall", "-q"])
        .arg(lib.join("pex"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(compiled, Ok(s) if s.success()) {
        tracing::debug!(
            "pex {PEX_VERSION} is not all byte-compiled for {}",
            python.display()
        );
    }
}

/// Where the provisioned pex lives.
pub fn tool_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("tools").join(format!("pex-{PEX_VERSION}"))
}

/// The builder's identity without provisioning anything (for keys and dry runs).
pub fn planned_tool(cache_dir: &Path, setting: Option<&str>) -> Result<PexTool, RealizeError> {
    match setting {
        Some(path) => executable(Path::new(path)),
        None => Ok(PexTool::Provisioned {
            lib: tool_dir(cache_dir),
        }),
    }
}

fn executable(path: &Path) -> Result<PexTool, RealizeError> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RealizeError::ToolProvision {
            tool: "pex".into(),
            message: format!("cannot run {}: {e}", path.display()),
            log: None,
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        return Err(RealizeError::ToolProvision {
            tool: "pex".into(),
            message: format!("{} --version failed", path.display()),
            log: None,
        });
    }
    Ok(PexTool::Executable {
        path: path.to_path_buf(),
        version,
    })
}

/// Makes sure the provisioned pex exists and is the pinned version;
/// installed by `uv` (its binary and alto's cache directory) when given.
pub fn ensure(
    tool: &PexTool,
    python: &Path,
    uv: Option<(&Path, &Path)>,
) -> Result<(), RealizeError> {
    let PexTool::Provisioned { lib } = tool else {
        return Ok(());
    };
    // Its version module, imported by the interpreter that runs it: `pex
    // --version` takes 1.5 s, booting most of pex. Its byte code is
    // written when pex is first run (`byte_compile`), not here: alto packs
    // most plugins without running pex.
    let verify = |dir: &Path| -> Result<(), String> {
        let out = Command::new(python)
            .env("PYTHONPATH", dir)
            .args([
                "-c",
                "from pex.version import __version__; print(__version__)",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run it: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !(out.status.success() && said.trim() == PEX_VERSION) {
            return Err(format!("its version module said `{}`", said.trim()));
        }
        Ok(())
    };
    super::tools::ensure(
        &super::tools::Pinned {
            name: "pex",
            version: PEX_VERSION,
            marker: "pex",
            verify: &verify,
            fetch: None,
        },
        python,
        lib,
        uv,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{BuildArgs, Key, Platform};

    fn derivation(tokens: &[&str], secrets: &[&str]) -> PluginDerivation {
        PluginDerivation {
            key: Key::parse("0123456789abcdef0123456789abcdef").unwrap(),
            pip_url: String::new(),
            secrets: Vec::new(),
            build: BuildArgs {
                tokens: tokens.iter().map(|t| t.to_string()).collect(),
                secrets: secrets.iter().map(|t| t.to_string()).collect(),
                resolve: Default::default(),
            },
            local_sources: Default::default(),
            platform: Platform {
                implementation: "cpython".into(),
                python_version: "3.11".into(),
                abi: "cp311".into(),
                platform: "linux_x86_64".into(),
                libc: "glibc 2.36".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
            },
            version: None,
            builder: Builder {
                tool: "pex".into(),
                version: PEX_VERSION.into(),
                flags: vec![],
            },
            python: PathBuf::from("/usr/bin/python3"),
            plugins: vec!["tap-x".into()],
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn secrets_reach_pex_only_through_its_stdin() {
        let tool = PexTool::Provisioned {
            lib: PathBuf::from("/lib/pex"),
        };
        let out = Path::new("/store/tmp/x.pex");
        let plain = derivation(&["./plugins/tap-x"], &[]);
        let (cmd, stdin) = invocation(&tool, &plain, out);
        assert_eq!(stdin, None);
        assert_eq!(
            args(&cmd),
            vec![
                "-m",
                "pex",
                "./plugins/tap-x",
                "--pip-version",
                "25.0.1",
                "-o",
                "/store/tmp/x.pex",
                "--venv",
                "--no-emit-warnings",
                "--no-compress",
                "--seed=args",
                "--python",
                "/usr/bin/python3"
            ]
        );
        let secret = derivation(
            &["--index-url", "https://u:tok3n@h/simple", "tap-x==1"],
            &["tok3n"],
        );
        let (cmd, stdin) = invocation(&tool, &secret, out);
        assert_eq!(args(&cmd), vec!["-m", "pex", "@/dev/stdin"]);
        assert!(
            cmd.get_envs()
                .all(|(_, v)| !v.is_some_and(|v| v.to_string_lossy().contains("tok3n")))
        );
        assert_eq!(
            String::from_utf8(stdin.unwrap()).unwrap(),
            "--index-url\nhttps://u:tok3n@h/simple\ntap-x==1\n--pip-version\n25.0.1\n-o\n/store/tmp/x.pex\n--venv\n--no-emit-warnings\n--no-compress\n--seed=args\n--python\n/usr/bin/python3\n"
        );
    }

    #[test]
    fn pex_started_ahead_is_given_what_pack_would_run() {
        let tool = PexTool::Provisioned {
            lib: PathBuf::from("/lib/pex"),
        };
        let (python, venv, out) = (
            Path::new("/usr/bin/python3"),
            Path::new("/store/tmp/k.venv"),
            Path::new("/store/tmp/k.pex"),
        );
        let (cmd, input) = prestarted(&tool, python, venv, out).unwrap();
        let given: Vec<String> = serde_json::from_slice(&input).unwrap();
        let packed = pack(&tool, python, venv, out);
        let packed: Vec<String> = packed
            .get_args()
            .skip(2) // -m pex
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(given, packed);
        assert_eq!(cmd.get_program(), python);
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.contains(&(
            std::ffi::OsStr::new("PYTHONPATH"),
            Some(std::ffi::OsStr::new("/lib/pex"))
        )));
        // A pex alto did not provision runs whole; so does a path JSON cannot carry.
        let named = PexTool::Executable {
            path: PathBuf::from("/usr/bin/pex"),
            version: "2.1.0".into(),
        };
        assert!(prestarted(&named, python, venv, out).is_none());
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/store/\xff/k.venv"));
        assert!(prestarted(&tool, python, odd, out).is_none());
    }

    #[test]
    fn secrets_are_found_inside_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("x.pex");
        let made = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    z.writestr('__main__.py', 'x' * 1000)\n    z.writestr('PEX-INFO', '{\"requirements\": [\"a @ https://u:tok3n@h/a.whl\"]}' * 20)\n",
            ])
            .arg(&zip)
            .status()
            .unwrap();
        assert!(made.success());
        let python = Path::new("python3");
        assert_eq!(
            find_secrets(python, &zip, &["tok3n".into()]).unwrap(),
            Some("PEX-INFO".into())
        );
        assert_eq!(find_secrets(python, &zip, &["other".into()]).unwrap(), None);
        std::fs::write(&zip, b"not a zip").unwrap();
        assert!(find_secrets(python, &zip, &["other".into()]).is_err());
    }
}
