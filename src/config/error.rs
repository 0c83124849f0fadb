//! Everything that can be wrong with a configuration, as diagnostics that point
//! into the file (or the `ALTO_*` variable) at fault.

use std::path::PathBuf;

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

use super::source::Snippet;

#[derive(Debug, Error, Diagnostic)]
pub enum ConfigError {
    #[error("no alto config (alto.yaml, alto.toml, alto.json or alto.kdl) in {} or any directory above it", start.display())]
    #[diagnostic(
        code(alto::config::not_found),
        help("run `alto init` to start a project here, or pass `--root DIR`")
    )]
    NotFound { start: PathBuf },

    #[error("more than one {role} file in {}: {}", dir.display(), files.join(" and "))]
    #[diagnostic(
        code(alto::config::ambiguous),
        help("keep one of them; alto will not guess which one you meant")
    )]
    Ambiguous {
        role: &'static str,
        dir: PathBuf,
        files: Vec<String>,
    },

    #[error("cannot read {}", path.display())]
    #[diagnostic(code(alto::config::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file} is not valid {format}: {message}")]
    #[diagnostic(code(alto::config::syntax))]
    Syntax {
        file: String,
        format: &'static str,
        message: String,
        #[source_code]
        src: Snippet,
        #[label("here")]
        span: SourceSpan,
    },

    #[error("{file}: {message}")]
    #[diagnostic(
        code(alto::config::duplicate_key),
        help("alto does not pick one of them: remove one, or merge the two")
    )]
    DuplicateKey {
        file: String,
        message: String,
        #[source_code]
        src: Snippet,
        #[label(primary, "given again here")]
        span: SourceSpan,
        #[label("first given here")]
        first: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(code(alto::config::invalid))]
    Invalid {
        message: String,
        #[source_code]
        src: Snippet,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("`{var}` is not set, but `{key}` needs it")]
    #[diagnostic(
        code(alto::config::unset_variable),
        help("export {var}, or add it to .env or to the `environment` section of the config")
    )]
    UnsetVariable {
        var: String,
        key: String,
        #[source_code]
        src: Snippet,
        #[label("uses {{env[{var}]}}")]
        span: SourceSpan,
    },

    #[error("`{key}` refers to `this.{path}`, which is not in the config")]
    #[diagnostic(code(alto::config::missing_path))]
    MissingPath {
        path: String,
        key: String,
        #[source_code]
        src: Snippet,
        #[label("refers to this.{path}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(alto::config::unknown_key))]
    UnknownKey {
        message: String,
        #[source_code]
        src: Snippet,
        #[label("alto does not read this key")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{noun} `{name}` has no `pip_url`, so alto cannot build it")]
    #[diagnostic(code(alto::config::no_pip_url))]
    NoPipUrl {
        noun: &'static str,
        name: String,
        #[source_code]
        src: Snippet,
        #[label("this {noun} has no pip_url")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A name alto would turn into a file name, given outside any file
    /// (`--env`, `ALTO_ENV`).
    #[error("{message}")]
    #[diagnostic(code(alto::config::bad_name))]
    BadName {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(alto::config::unknown_name))]
    Unknown {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("{} line {line}: {message}", file.display())]
    #[diagnostic(code(alto::config::dotenv))]
    DotEnv {
        file: PathBuf,
        line: usize,
        message: String,
        #[source_code]
        src: Snippet,
        #[label("here")]
        span: SourceSpan,
    },

    /// A Vault setting (a `vault:` key or a `VAULT_*` variable) alto cannot use.
    #[error("{message}")]
    #[diagnostic(
        code(alto::config::vault_setting),
        help("the README's \"Secrets from HashiCorp Vault\" lists the variables and keys")
    )]
    VaultSetting { message: String },

    /// A secret or key the config needs is not in Vault.
    #[error("{message}")]
    #[diagnostic(code(alto::config::vault_missing), help("{help}"))]
    VaultMissing { message: String, help: String },

    /// Vault could not be reached, or answered nonsense.
    #[error("{message}")]
    #[diagnostic(
        code(alto::config::vault_unreachable),
        help(
            "check VAULT_ADDR (or VAULT_URL_FOR_DYNACONF) and that Vault is up; VAULT_CACERT names a private CA"
        )
    )]
    VaultUnreachable { message: String },

    /// Vault refused the token or the AppRole login.
    #[error("{message}")]
    #[diagnostic(
        code(alto::config::vault_denied),
        help("the token may have expired, or its policy does not allow reading this path")
    )]
    VaultDenied { message: String },
}

impl ConfigError {
    /// 1 when Vault could not be reached or refused alto (the work failed);
    /// 2 for everything else, which the configuration is at fault for.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::VaultUnreachable { .. } | ConfigError::VaultDenied { .. } => 1,
            _ => 2,
        }
    }
}
