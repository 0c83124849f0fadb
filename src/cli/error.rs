//! The errors a command can end with, and the exit code each gives.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

use crate::config::ConfigError;
use crate::config::meltano::MeltanoError;
use crate::realize::RealizeError;
use crate::reservoir::ReservoirError;
use crate::run::RunError;
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
    Run(#[from] RunError),

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
        src: crate::config::source::Snippet,
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

    #[error("`{value}` is not a timeout")]
    #[diagnostic(
        code(alto::run::timeout),
        help("write a number and a unit greater than zero: 90s, 15m, 2h")
    )]
    BadTimeout { value: String },

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
        help(
            "`alto list` shows every task name of the project; a job's name or UTILITY:COMMAND runs too"
        )
    )]
    UnknownTask { name: String, environment: String },

    #[error("step `{step}` failed ({number} of {total}){not_run}")]
    #[diagnostic(
        code(alto::run::step_failed),
        help("the steps before it ran and kept their state; run the job again once it is fixed")
    )]
    StepFailed {
        step: String,
        number: usize,
        total: usize,
        not_run: String,
        #[source]
        source: Box<Error>,
    },

    #[error("`{step}` exited with code {code}")]
    #[diagnostic(code(alto::run::command_failed))]
    CommandFailed { step: String, code: u8 },

    #[error("`{task}` is not implemented in this version of alto yet")]
    #[diagnostic(code(alto::cli::not_implemented))]
    NotImplemented { task: String },

    #[error("{} already has a config: {}", dir.display(), file)]
    #[diagnostic(
        code(alto::init::exists),
        help("alto init never overwrites a project; edit {file} instead")
    )]
    AlreadyInitialized { dir: PathBuf, file: String },

    #[error("cannot add {name}: {why}")]
    #[diagnostic(code(alto::add::refused))]
    CannotAdd { name: String, why: String },

    #[error("alto add leaves {file} as it was: {why}")]
    #[diagnostic(
        code(alto::add::cannot_place),
        help("add the plugin to {file} by hand; `alto show` then checks it")
    )]
    CannotPlace { file: String, why: String },

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

    #[error("interrupted ({})", crate::interrupt::signal_name(*signal))]
    #[diagnostic(code(alto::interrupted))]
    Interrupted { signal: i32 },

    #[error("the remote store {remote} cannot be {action}, so nothing was published: {cause}")]
    #[diagnostic(code(alto::build::remote), help("{hint}"))]
    RemoteUnreachable {
        remote: String,
        action: String,
        cause: String,
        hint: String,
    },

    #[error(
        "{name} is an ingest's state, which its reservoir's index holds; alto does not write it here"
    )]
    #[diagnostic(
        code(alto::state::not_writable),
        help(
            "`alto state show {name}` prints it; a new ingest commits it with the partitions it describes"
        )
    )]
    StateNotWritable { name: String },

    #[error("{name} has no state to copy")]
    #[diagnostic(
        code(alto::state::none),
        help("`alto state list` shows the states there are")
    )]
    NoState { name: String },

    #[error("{file} cannot be imported: {message}")]
    #[diagnostic(
        code(alto::state::bad_export),
        help("`alto state export > FILE` writes a document `alto state import` reads")
    )]
    BadExport { file: String, message: String },

    #[error("not importing {file}: the state of {names} changed since it was exported")]
    #[diagnostic(
        code(alto::state::changed_since_export),
        help(
            "nothing was written; `alto state show` what is there now, or pass --force to overwrite it (its current state is kept in the history)"
        )
    )]
    StateChangedSinceExport { file: String, names: String },

    #[error("no run `{run}` in the logs of the {environment} environment")]
    #[diagnostic(code(alto::logs::no_such_run), help("`alto logs` lists the runs"))]
    NoSuchRun { run: String, environment: String },

    #[error("{tap} has no stream {names}")]
    #[diagnostic(
        code(alto::extract::unknown_stream),
        help("its streams: {available}; `alto select {tap} --list` shows them with their fields")
    )]
    UnknownStreams {
        tap: String,
        names: String,
        available: String,
    },

    #[error("--name `{name}` cannot name a run: {why}")]
    #[diagnostic(code(alto::extract::name), help("{}", crate::config::name::NAME_RULE))]
    BadRunName { name: String, why: String },

    #[error("{flag} does not apply to {task}: {why}")]
    #[diagnostic(code(alto::run::flag))]
    FlagNotApplicable {
        flag: String,
        task: String,
        why: String,
    },

    #[error("cannot write {}", path.display())]
    #[diagnostic(code(alto::io))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code: each module's error says whether the user's input is
    /// at fault (2), the work failed (1), or the run was interrupted (128 +
    /// the signal); the command line's own errors are classified here.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(e) => e.exit_code(),
            Error::Meltano(_) => 2,
            Error::Realize(e) => e.exit_code(),
            Error::Store(e) => e.exit_code(),
            Error::Run(e) => e.exit_code(),
            Error::Reservoir(e) => e.exit_code(),
            Error::UnknownCommand { .. }
            | Error::UnknownTask { .. }
            | Error::AlreadyInitialized { .. }
            | Error::CannotAdd { .. }
            | Error::CannotPlace { .. }
            | Error::MeltanoNotFound { .. }
            | Error::ImportTargetExists { .. }
            | Error::NothingToRun { .. }
            | Error::BadDuration { .. }
            | Error::BadTimeout { .. }
            | Error::NotConfirmed { .. }
            | Error::BadRemotePath { .. }
            | Error::NoSuchRemoteFile { .. }
            | Error::BadJson { .. }
            | Error::StateNotWritable { .. }
            | Error::FlagNotApplicable { .. }
            | Error::UnknownStreams { .. }
            | Error::BadRunName { .. }
            | Error::NoSuchRun { .. }
            | Error::NoState { .. }
            | Error::BadExport { .. }
            | Error::StateChangedSinceExport { .. }
            | Error::Catalog { .. } => 2,
            Error::Interrupted { signal } => crate::interrupt::exit_code(*signal),
            // A failed step's own code (a user's error in it stays 2, a stop 130).
            Error::StepFailed { source, .. } => source.exit_code(),
            Error::CommandFailed { .. } => 1,
            Error::NotImplemented { .. }
            | Error::Write { .. }
            | Error::BuildFailed { .. }
            | Error::CheckFailed { .. }
            | Error::VerifyFailed { .. }
            | Error::Read { .. }
            | Error::RemoteUnreachable { .. } => 1,
        }
    }
}
