//! Content hashes of local plugin sources: like a Nix path input, editing the
//! tree changes the key and nothing else does. VCS and build directories and
//! what `.gitignore` excludes are skipped.

use std::io::Read;
use std::path::Path;

/// Directories that never decide a plugin's content.
const SKIP_DIRS: [&str; 11] = [
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "build",
    "dist",
    ".venv",
    "venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
];

/// blake3 over the sorted relative paths, modes and contents of a file or tree.
pub fn hash_tree(root: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"alto-tree-v1\0");
    if root.is_file() {
        hash_file(&mut hasher, root, "")?;
        return Ok(hasher.finalize().to_hex().to_string());
    }
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.file_type().is_some_and(|t| t.is_dir())
                && (SKIP_DIRS.contains(&name.as_ref()) || name.ends_with(".egg-info")))
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_some_and(|t| !t.is_dir()) {
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .replace('\\', "/");
            files.push((rel, entry.into_path()));
        }
    }
    files.sort();
    for (rel, path) in files {
        hash_file(&mut hasher, &path, &rel)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

fn hash_file(hasher: &mut blake3::Hasher, path: &Path, rel: &str) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    hasher.update(rel.as_bytes());
    hasher.update(b"\0");
    if meta.file_type().is_symlink() {
        hasher.update(b"l");
        hasher.update(std::fs::read_link(path)?.to_string_lossy().as_bytes());
    } else {
        #[cfg(unix)]
        let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
        #[cfg(not(unix))]
        let exec = false;
        hasher.update(if exec { b"x" } else { b"f" });
        hasher.update(&meta.len().to_le_bytes());
        let mut f = std::fs::File::open(path)?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    hasher.update(b"\0");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_change_the_hash_and_ignored_files_do_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("setup.py"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("pkg")).unwrap();
        std::fs::write(d.path().join("pkg/a.py"), "print(1)").unwrap();
        let h1 = hash_tree(d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("build/lib")).unwrap();
        std::fs::write(d.path().join("build/lib/a.py"), "junk").unwrap();
        std::fs::create_dir_all(d.path().join("x.egg-info")).unwrap();
        std::fs::write(d.path().join("x.egg-info/PKG-INFO"), "junk").unwrap();
        std::fs::write(d.path().join(".gitignore"), "*.log\n").unwrap();
        let h2 = hash_tree(d.path()).unwrap();
        assert_ne!(h1, h2, ".gitignore itself is content");
        std::fs::write(d.path().join("debug.log"), "junk").unwrap();
        assert_eq!(hash_tree(d.path()).unwrap(), h2);
        std::fs::write(d.path().join("pkg/a.py"), "print(2)").unwrap();
        assert_ne!(hash_tree(d.path()).unwrap(), h2);
    }
}
