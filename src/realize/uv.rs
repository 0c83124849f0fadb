//! The resolver and installer: a pinned uv, provisioned by alto into the
//! local store's tools like pex. A plugin's `pip_url` is installed with it
//! into a fresh venv for the plugin's interpreter, which pex then packs.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::RealizeError;
use super::index::{self, PinnedWheel};
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

/// uv's wheels for Linux on PyPI, pinned with [`UV_VERSION`]: where pip
/// uses PyPI, the one that fits is fetched straight away and checked
/// against this sha256.
pub(super) const PYPI_WHEELS: &[PinnedWheel] = &[
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/74/80/cf6656f96f6ee9c26227e8aa8a81997b9e8a040d4ab9763657dac6dd5442/uv-0.13.8-py3-none-linux_armv6l.whl",
        sha256: "0ec33661a14e38dea8dfb18167d2a4a5c7fe3d476c62dd8eb6acf5f378727201",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/9e/f0/d989ac5fcebf83f1c8c5d78974f27788e8364945969eb646f5d0db35d924/uv-0.13.8-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        sha256: "0b3e8b1a4f5e405e31e2ff33de8af4744831e9f7338539671efbd8c3c94e791d",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/ae/d6/2e3a344ead9c5a52f60a0605a3e0a6688f962d51b42e5062638785932a38/uv-0.13.8-py3-none-manylinux_2_17_armv7l.manylinux2014_armv7l.whl",
        sha256: "86f1319f851e645bc295bb921e6be19beae7e69216c75ae809010ca7817393aa",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/e6/3c/12db1b688f523893130d825c0de3986b1db302b6ef1aa61fd41c21aeaf84/uv-0.13.8-py3-none-manylinux_2_17_i686.manylinux2014_i686.whl",
        sha256: "5ace7ec339798aca31be51a75fa7c1544fe84e02fadd17a9fa3324813bbaf237",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/bd/1d/c03fbe2a700484e369556b1a198745f92f44734a47279f3fbce95fbdbbaa/uv-0.13.8-py3-none-manylinux_2_17_ppc64le.manylinux2014_ppc64le.whl",
        sha256: "6999618363d03a0a085a9491db319e00b461dbda205db06ef1fd55dfcbf6472b",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/73/09/52cdbdc3100cb67a6aa7e0c6b2b1a6a5834b1ac06de684944a9a0f408528/uv-0.13.8-py3-none-manylinux_2_17_s390x.manylinux2014_s390x.whl",
        sha256: "13050c64530a1ccfc223af0306a8152d41c0d36ea63bc19161221ca65dfe480a",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/c5/32/52ee34636aea1ab3f8baeeae1c3599461b8cddfb379862cc72ac61b8d91c/uv-0.13.8-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256: "e18a57b8b352eb7c8feb317b9f6f533c8f0ad9673fd6cf34bbe3cf1a9f6a8984",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/80/ce/f5eba24d8ec7fa566f9d50d1a69dbf9510137c30366b9f16dbeaf9b9dae4/uv-0.13.8-py3-none-manylinux_2_28_aarch64.whl",
        sha256: "5337c30bb893b4f9ce0ceb921ba2da0d13f649da644f40ad3bef84083bef0203",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/ab/02/caccaed9a86060eea158f2a16101258e122473c5cb8c4bd9b22b009493c3/uv-0.13.8-py3-none-manylinux_2_31_riscv64.whl",
        sha256: "b26fe533dc6153787e40443b7d9428ed41349127bff36a954ec82c48be01ded9",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/78/cb/42aa2094f03371df6a0585bbd1b6c9c1d10861d71099d75142603d0d37e8/uv-0.13.8-py3-none-musllinux_1_1_i686.whl",
        sha256: "63d807451e63c8d21b1b33c945af16438ac9d8ffddc59b31ce69c692135891f5",
    },
    PinnedWheel {
        url: "https://files.pythonhosted.org/packages/4d/a3/1ac9cd75985371da0d29c9c12132e6d5b5627b9d0de87c5ad97ab9ad69b0/uv-0.13.8-py3-none-musllinux_1_1_x86_64.whl",
        sha256: "29451c60f5e8b07403e0a175d5229efc36b0289b34143ff4aaa499a5dd52553a",
    },
];

/// Fetches uv's wheel for this machine from the index pip is set to use
/// (see [`index::fetch_wheel`]: 0.1-0.2 s where running Python to fetch it
/// took 0.46 s and `pip install uv` 3.9 s, weighing every one of the 6 025
/// files of uv's index page) and puts the executables of its wheel
/// (`uv-VERSION.data/scripts/`) in `dest/bin`. Inflating them as the wheel
/// arrived, on a thread of its own, ended no sooner: the 38 MB binary
/// takes longer to inflate and write than its 17 MB take to arrive.
fn fetch(python: &Path, dest: &Path) -> Result<(), String> {
    let wheel = index::fetch_wheel("uv", UV_VERSION, PYPI_WHEELS, python)?;
    tracing::debug!("uv {UV_VERSION}: its wheel fetched from the index, sha256 checked");
    unpack_scripts(&wheel, &format!("uv-{UV_VERSION}.data/scripts/"), dest)
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
}
