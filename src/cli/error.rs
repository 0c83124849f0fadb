//! The errors a command can end with, and the exit code each gives.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

use crate::config::ConfigError;
use crate::config::meltano::MeltanoError;
use crate::eval::EvalError;
use crate::pipeline::PipelineError;
use crate::realize::RealizeError;
use crate::reservoir::ReservoirError;
use crate::store::StoreError;

#[derive(Debug, Error, Diagnostic)]
pub enum Error {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Meltano(#[from] MeltanoError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Realize(#[from] RealizeError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Pipeline(#[from] PipelineError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Reservoir(#[from] ReservoirError),

    #[error("cannot read {}", path.display())]
    #[diagnostic(code(alto::io))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file} is not valid JSON: {message}")]
    #[diagnostic(code(alto::json))]
    BadJson {
        file: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<String>,
        #[label("here")]
        span: miette::SourceSpan,
    },

    #[error("{file}: {message}")]
    #[diagnostic(code(alto::catalog))]
    Catalog { file: String, message: String },

    #[error("not done: {what}")]
    #[diagnostic(
        code(alto::cli::not_confirmed),
        help("answer y on a terminal, or pass --yes")
    )]
    NotConfirmed { what: String },

    #[error("`{path}` is not a path inside the project's remote root")]
    #[diagnostic(code(alto::fs::path))]
    BadRemotePath { path: String },

    #[error("{path} does not exist")]
    #[diagnostic(code(alto::fs::missing), help("`alto fs ls` lists what is there"))]
    NoSuchRemoteFile { path: String },

    #[error("`{value}` is not a duration")]
    #[diagnostic(
        code(alto::cli::duration),
        help("write a number and a unit: 30d, 12h, 15m, 10s, or 0")
    )]
    BadDuration { value: String },

    #[error("{failed} of {total} plugins failed to realize")]
    #[diagnostic(code(alto::build::failed))]
    BuildFailed { failed: usize, total: usize },

    #[error("{count} of the rebuilt plugins differ from the stored objects")]
    #[diagnostic(
        code(alto::build::check),
        help("a build is not reproducible, or the cache was poisoned; see the lines above")
    )]
    CheckFailed { count: usize },

    #[error("{count} local store objects are damaged")]
    #[diagnostic(
        code(alto::store::damaged),
        help("`alto build` replaces the damaged plugins")
    )]
    VerifyFailed { count: usize },

    #[error("`{plugin}` has no pip_url, so there is nothing to run")]
    #[diagnostic(code(alto::invoke::no_pip_url))]
    NothingToRun { plugin: String },

    #[error("`{name}` is not an alto command or task name")]
    #[diagnostic(
        code(alto::cli::unknown_command),
        help("`alto --help` lists the commands; `alto list` the task names")
    )]
    UnknownCommand { name: String },

    #[error("`{name}` names no task of the {environment} environment")]
    #[diagnostic(
        code(alto::cli::unknown_task),
        help("`alto list` shows every task name of the project")
    )]
    UnknownTask { name: String, environment: String },

    #[error("`{task}` is not implemented in this version of alto yet")]
    #[diagnostic(code(alto::cli::not_implemented))]
    NotImplemented { task: String },

    #[error("{} already has a config: {}", dir.display(), file)]
    #[diagnostic(
        code(alto::init::exists),
        help("alto init never overwrites a project; edit {file} instead")
    )]
    AlreadyInitialized { dir: PathBuf, file: String },

    #[error("no Meltano project file at {}", path.display())]
    #[diagnostic(
        code(alto::import::not_found),
        help("pass its path: `alto import meltano path/to/meltano.yml`")
    )]
    MeltanoNotFound { path: PathBuf },

    #[error("{} already has a config: {}", dir.display(), file)]
    #[diagnostic(
        code(alto::import::exists),
        help("alto import never overwrites a project; move {file} away to import again")
    )]
    ImportTargetExists { dir: PathBuf, file: String },

    #[error("cannot write {}", path.display())]
    #[diagnostic(code(alto::io))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for anything wrong with the input (config, names, usage); 1 for
    /// failures while doing the work.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Reservoir(ReservoirError::Pipeline(
                PipelineError::Config(_)
                | PipelineError::BadState { .. }
                | PipelineError::StreamMaps { .. }
                | PipelineError::Realize(RealizeError::Eval(EvalError::Config(_))),
            )) => 2,
            Error::Reservoir(r) if r.is_bad_input() => 2,
            Error::Reservoir(_) => 1,
            Error::Config(_)
            | Error::UnknownCommand { .. }
            | Error::UnknownTask { .. }
            | Error::AlreadyInitialized { .. }
            | Error::Meltano(_)
            | Error::MeltanoNotFound { .. }
            | Error::ImportTargetExists { .. } => 2,
            Error::Realize(RealizeError::Config(_))
            | Error::Realize(RealizeError::Eval(EvalError::Config(_)))
            | Error::Realize(RealizeError::Eval(EvalError::MissingLocalSource { .. }))
            | Error::Realize(RealizeError::PythonNotFound { .. })
            | Error::NothingToRun { .. }
            | Error::BadDuration { .. }
            | Error::NotConfirmed { .. }
            | Error::BadRemotePath { .. }
            | Error::NoSuchRemoteFile { .. }
            | Error::Pipeline(PipelineError::Config(_))
            | Error::Pipeline(PipelineError::BadState { .. })
            | Error::Pipeline(PipelineError::StreamMaps { .. })
            | Error::BadJson { .. }
            | Error::Catalog { .. } => 2,
            Error::Pipeline(PipelineError::Realize(r)) => match r {
                RealizeError::Config(_)
                | RealizeError::Eval(EvalError::Config(_))
                | RealizeError::PythonNotFound { .. } => 2,
                _ => 1,
            },
            Error::NotImplemented { .. }
            | Error::Write { .. }
            | Error::Realize(_)
            | Error::Store(_)
            | Error::BuildFailed { .. }
            | Error::CheckFailed { .. }
            | Error::VerifyFailed { .. }
            | Error::Pipeline(_)
            | Error::Read { .. } => 1,
        }
    }
}
