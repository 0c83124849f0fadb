//! Settings resolved into typed values at the edge: where the remote store
//! is, how builds are made and trusted, and each tap's reservoir limits.
//! `store`, `realize` and `reservoir` take these; they never look settings up
//! by name.

use serde_json::{Map, Value};

use super::ConfigError;
use super::project::{Plugin, Project};

/// Where the remote store is, as the config says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteSettings {
    /// `file`, `s3`, `gcs`, `azure` (lower case), or `None`: the directory `~/.alto`.
    pub filesystem: Option<String>,
    pub bucket: Option<String>,
    pub bucket_path: Option<String>,
    /// The backend's options, in the order they apply: `<filesystem>_settings`,
    /// `filesystem_kwargs`, `storage_options` (the original's names).
    pub options: Vec<(String, Map<String, Value>)>,
}

/// How plugins are built, signed and trusted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildSettings {
    /// `pex`: a pex to build with instead of alto's own.
    pub pex: Option<String>,
    /// `signing_key`: the key itself (`name:hex`) or a file holding it.
    pub signing_key: Option<String>,
    /// `trusted_public_keys`: `name:hex` keys.
    pub trusted_public_keys: Vec<String>,
    /// `untrusted_substitutes: build`: build what the remote cannot prove.
    pub build_untrusted: bool,
}

/// A tap's reservoir limits (`reservoir_buffer_size`, `reservoir_buffer_bytes`,
/// `reservoir_compression_level`: the tap's, else the project's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservoirSettings {
    /// Messages per partition.
    pub records: u64,
    /// Uncompressed bytes per partition.
    pub bytes: u64,
    /// zstd level.
    pub level: i32,
}

impl Project {
    /// The remote store's settings.
    pub fn remote_settings(&self) -> Result<RemoteSettings, ConfigError> {
        let filesystem = self
            .setting_str(None, "filesystem")?
            .map(|f| f.to_ascii_lowercase());
        let fs_name = filesystem.clone().unwrap_or_else(|| "file".into());
        let mut options = Vec::new();
        for key in [
            format!("{fs_name}_settings"),
            "filesystem_kwargs".to_string(),
            "storage_options".to_string(),
        ] {
            if let Some(m) = self.setting_map(&key)? {
                options.push((key, m));
            }
        }
        Ok(RemoteSettings {
            filesystem,
            bucket: self.setting_str(None, "bucket")?,
            bucket_path: self.setting_str(None, "bucket_path")?,
            options,
        })
    }

    /// How plugins are built, signed and trusted.
    pub fn build_settings(&self) -> Result<BuildSettings, ConfigError> {
        let trusted_public_keys = match self.tree.value.get("trusted_public_keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(k)) => vec![k.clone()],
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return Err(self.invalid_setting(
                    None,
                    "trusted_public_keys",
                    "`trusted_public_keys` must be a list of `<name>:<hex>` keys",
                    "expected a list of strings",
                ));
            }
        };
        Ok(BuildSettings {
            pex: self.setting_str(None, "pex")?,
            signing_key: self.setting_str(None, "signing_key")?,
            trusted_public_keys,
            build_untrusted: self
                .setting_str(None, "untrusted_substitutes")?
                .is_some_and(|v| v == "build"),
        })
    }

    /// The interpreter a plugin (or, without one, the project) asks for.
    pub fn python_setting(&self, plugin: Option<&Plugin>) -> Result<Option<String>, ConfigError> {
        if let Some(p) = plugin
            && let Some(v) = self.setting_str(Some(p), "python")?
        {
            return Ok(Some(v));
        }
        self.setting_str(None, "python")
    }

    /// A tap's reservoir limits, checked: whole numbers above zero.
    pub fn reservoir_settings(&self, tap: &Plugin) -> Result<ReservoirSettings, ConfigError> {
        let records = self.positive(tap, "reservoir_buffer_size", 10_000)?;
        // Line offsets within a buffer are u32.
        let bytes = self
            .positive(tap, "reservoir_buffer_bytes", 16 << 20)?
            .min(1 << 30);
        let level = self
            .positive(tap, "reservoir_compression_level", 1)?
            .min(19) as i32;
        Ok(ReservoirSettings {
            records,
            bytes,
            level,
        })
    }

    /// A whole-number setting of the tap, else of the project, else `default`.
    fn positive(&self, tap: &Plugin, key: &str, default: u64) -> Result<u64, ConfigError> {
        let (v, owner) = match self.setting_str(Some(tap), key)? {
            Some(v) => (Some(v), Some(tap)),
            None => (self.setting_str(None, key)?, None),
        };
        match v {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(self.invalid_setting(
                    owner,
                    key,
                    &format!("`{key}` must be a positive whole number, not `{v}`"),
                    "expected a whole number above 0",
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{LoadOptions, load};

    fn project(yaml: &str) -> (tempfile::TempDir, crate::config::Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alto.yaml"), yaml).unwrap();
        let opts = LoadOptions {
            root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            env: None,
            vars: vec![],
            ..Default::default()
        };
        let p = load(&opts).unwrap();
        (dir, p)
    }

    #[test]
    fn settings_are_typed_once() {
        let (_d, p) = project(
            "default:\n  filesystem: S3\n  bucket: b\n  s3_settings: {region: x}\n  trusted_public_keys: 'k:00'\n  untrusted_substitutes: build\n  reservoir_buffer_size: 50\n  taps:\n    tap-a:\n      reservoir_compression_level: 30\n      python: /usr/bin/python3.12\n",
        );
        let r = p.remote_settings().unwrap();
        assert_eq!(r.filesystem.as_deref(), Some("s3"));
        assert_eq!(r.bucket.as_deref(), Some("b"));
        assert_eq!(r.options.len(), 1);
        let b = p.build_settings().unwrap();
        assert_eq!(b.trusted_public_keys, vec!["k:00".to_string()]);
        assert!(b.build_untrusted);
        let tap = p.tap("tap-a").unwrap();
        let l = p.reservoir_settings(tap).unwrap();
        assert_eq!((l.records, l.bytes, l.level), (50, 16 << 20, 19));
        assert_eq!(
            p.python_setting(Some(tap)).unwrap().as_deref(),
            Some("/usr/bin/python3.12")
        );
        assert_eq!(p.python_setting(None).unwrap(), None);
    }

    #[test]
    fn a_bad_limit_points_at_its_key() {
        let (_d, p) = project("default:\n  taps:\n    tap-a:\n      reservoir_buffer_size: lots\n");
        let e = p.reservoir_settings(p.tap("tap-a").unwrap()).unwrap_err();
        assert!(e.to_string().contains("reservoir_buffer_size"), "{e}");
        assert!(e.to_string().contains("lots"), "{e}");
    }
}
