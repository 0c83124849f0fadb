//! Configuration: the file formats (YAML, TOML, JSON, KDL), environments,
//! layering of `alto.*`, `alto.local.*`, `alto.secrets.*`, HashiCorp Vault,
//! `.env` and `ALTO_*` variables, `@format` interpolation, `inherit_from`, per-tap target
//! overrides, secrets, and diagnostics that point into the files.

pub mod error;
pub mod format;
pub mod interpolate;
pub mod jobs;
pub(crate) mod keys;
pub mod load;
pub mod meltano;
pub mod name;
pub mod project;
pub mod redact;
pub mod settings;
pub mod source;
pub mod task;
pub mod template;
pub mod tree;
pub mod vault;

pub use error::ConfigError;
pub use format::Format;
pub use jobs::{Schedule, Step};
pub use load::LoadOptions;
pub use project::{Plugin, PluginKind, Project, REDACTED, Rendered, SecretAware};
pub use redact::Redactor;
pub use settings::{BuildSettings, RemoteSettings, ReservoirSettings};

/// Finds, reads and layers the project's config for the active environment.
pub fn load(opts: &LoadOptions) -> Result<Project, ConfigError> {
    Project::from_loaded(load::load(opts)?)
}
