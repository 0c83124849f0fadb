//! The command line: clap definitions, the original's task-name shorthands,
//! output modes (human or `--json`) and exit codes. How things are done lives
//! in the other modules.

mod about;
mod add;
mod build;
mod catalog;
mod clean;
mod config;
mod error;
mod extract;
mod fs;
mod gc;
mod import;
mod init;
mod invoke;
mod list;
mod logs;
mod orchestrate;
mod printer;
mod reservoir;
mod run;
mod run_controls;
mod schedule;
mod show;
mod state;
mod store;
pub mod task;
mod test;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use error::Error;

use crate::config::{LoadOptions, Project};

#[derive(Debug, Parser)]
#[command(
    name = "alto",
    version,
    about = "Run Singer pipelines from one declarative config, with plugins built once and shared.",
    after_help = "Task names work too: `alto tap-x:target-y`, `alto build:tap-x`, `alto catalog:tap-x`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Environment to use (else ALTO_ENV, else `dev`).
    #[arg(long, global = true, value_name = "ENV")]
    pub env: Option<String>,
    /// Project root (else the nearest directory upwards holding alto.*).
    #[arg(short = 'r', long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show values from secrets files and {env[...]} instead of redacting them.
    #[arg(long, global = true)]
    pub show_secrets: bool,
    /// Refuse what alto cannot honour instead of warning (config keys alto does not read, the original's Python stream maps).
    #[arg(long, global = true)]
    pub strict: bool,
    /// Less output (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How alto's log messages and the plugins' lines are written on stderr:
    /// text, or JSON lines (timestamp, level, plugin, message) for log shippers.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The kinds of plugin `alto add` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AddKind {
    Tap,
    Target,
    Utility,
    Mapper,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitFormat {
    Yaml,
    Toml,
    Json,
    Kdl,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project: alto.<format>, alto.local.<format>, .env and .gitignore.
    Init {
        /// Format of the config files.
        #[arg(long, value_enum, default_value = "yaml")]
        format: InitFormat,
        /// Project name (else asked for, or the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Never ask; use defaults.
        #[arg(long)]
        no_prompt: bool,
    },
    /// Add a plugin to the main config file (its comments kept), build it,
    /// and fill its capabilities and setting names from its --about.
    Add {
        kind: AddKind,
        name: String,
        /// What pip installs it from (a requirement, a path, a URL, with options).
        #[arg(long)]
        pip_url: String,
        /// The command it installs, when not named like the plugin.
        #[arg(long)]
        executable: Option<String>,
        /// Only write it: no build, no --about.
        #[arg(long)]
        no_build: bool,
    },
    /// Write alto.yaml from another tool's project, listing what has no alto equivalent.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Print the JSON config a plugin receives.
    Config {
        plugin: String,
        /// Render a target's config for loading this tap's data.
        #[arg(long)]
        tap: Option<String>,
    },
    /// Print the merged config of the active environment as JSON.
    Dump {
        /// Dotted keys to print (all when none).
        keys: Vec<String>,
    },
    /// List taps, targets, utilities and the task names they give.
    List,
    /// Realize plugins: from the local store, the remote store, or a pex build.
    Build {
        /// Plugins to realize (all when none).
        plugins: Vec<String>,
        /// Realizations to run at once (default: one a core).
        #[arg(short = 'j', long, default_value_t = crate::realize::default_jobs())]
        jobs: usize,
        /// Print each derivation and where its output is; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rebuild and compare with the stored objects.
        #[arg(long)]
        check: bool,
        /// Replace remote objects that fail verification with local builds.
        #[arg(long)]
        repair: bool,
        /// Realize the plugins of every environment (for CI pre-seeding the store).
        #[arg(long)]
        all_envs: bool,
        /// Also realize the taps' base catalogs (runs `--discover` where needed).
        #[arg(long)]
        catalogs: bool,
        /// Leave the remote store alone: build or use only what is local.
        #[arg(long)]
        offline: bool,
        /// Substitute from the remote where it can, but upload nothing; an
        /// unreachable remote is then a warning, not an error.
        #[arg(long)]
        no_push: bool,
    },
    /// Show a plugin's derivation (key, inputs, and where its output is), or
    /// a pipeline's (TAP:TARGET, TAP:reservoir, reservoir:TAP-TARGET), input by input.
    Show { plugin: String },
    /// Run a plugin with its environment (`alto invoke python PLUGIN` runs its Python).
    Invoke {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "[python] PLUGIN [ARGS]"
        )]
        args: Vec<String>,
    },
    /// Run a tap alone, its Singer messages on stdout, for a loader that is
    /// not a Singer target (alto.dlt); `--streams` lists what it would extract.
    Extract(extract::ExtractArgs),
    /// Run pipelines (`alto run tap-x:target-y`, or just `alto tap-x:target-y`),
    /// ingests, replays, utility commands (`UTILITY:COMMAND`) or jobs, in
    /// order, stopping at the first that fails.
    Run {
        #[arg(required = true, value_name = "STEP|JOB")]
        pipelines: Vec<String>,
        /// Ignore the saved state for this run (the new state is still committed).
        #[arg(long)]
        full_refresh: bool,
        /// Pipelines to run at once.
        #[arg(short = 'j', long, default_value_t = 1)]
        jobs: usize,
        /// Wait for a running instance of the pipeline instead of failing.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        controls: run_controls::RunControls,
    },
    /// The logs of past runs (here and in the remote): start, duration, exit, records.
    #[command(args_conflicts_with_subcommands = true)]
    Logs {
        #[command(subcommand)]
        command: Option<LogsCommand>,
        /// Only this pipeline's runs (`TAP:TARGET`, `TAP:reservoir`, `reservoir:TAP-TARGET`).
        pipeline: Option<String>,
        /// How many of the latest runs to list.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Schedules: their jobs, intervals and next run times.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Write an orchestrator's definitions of the project's jobs and schedules.
    Orchestrate {
        #[command(subcommand)]
        orchestrator: Orchestrator,
    },
    /// A pipeline's state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Drop a pipeline's active state (`TAP:TARGET`; history stays), a tap's
    /// base catalog (`catalog:TAP`) or a target's replay position
    /// (`reservoir:TAP-TARGET`); `TAP:reservoir` compacts the reservoir.
    Clean { name: String },
    /// Print a tap's runtime catalog, or apply rules to a catalog file offline.
    #[command(args_conflicts_with_subcommands = true)]
    Catalog {
        #[command(subcommand)]
        command: Option<CatalogCommand>,
        tap: Option<String>,
    },
    /// Show every stream and field of a tap and whether its rules select it.
    Select {
        tap: String,
        #[arg(long)]
        list: bool,
    },
    /// Check a tap works: its --test, else a first record within the timeout.
    Test {
        tap: String,
        /// Seconds to wait for a record.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print a plugin's --about.
    About { plugin: String },
    /// Remove store objects no environment of this project, no pin and (with
    /// --remote) no project sharing the remote refers to. Never state, history,
    /// reservoir data or logs.
    Gc {
        /// Say what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Collect the remote store too.
        #[arg(long)]
        remote: bool,
        /// Only objects created longer ago than this (`30d`, `12h`, `15m`, `0`): a
        /// grace period for objects being published.
        #[arg(long, default_value = "1h")]
        older_than: String,
    },
    /// The project's remote root: list, copy in and out, delete.
    Fs {
        #[command(subcommand)]
        command: FsCommand,
        /// Overwrite or delete without asking.
        #[arg(long, global = true)]
        yes: bool,
    },
    /// A tap's reservoir: list it, compact it.
    Reservoir {
        #[command(subcommand)]
        command: ReservoirCommand,
    },
    /// Maintain the local store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// A Meltano project file (default: meltano.yml in the project directory).
    Meltano {
        /// The meltano.yml to read (or the directory holding it).
        path: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Each schedule's job, interval and next run time (UTC).
    List,
}

#[derive(Debug, Subcommand)]
pub enum Orchestrator {
    /// A Dagster definitions module: an asset per step, a job per job, a schedule per schedule.
    Dagster {
        /// Write it to FILE.py (else stdout).
        #[arg(short, long, value_name = "FILE.py")]
        output: Option<PathBuf>,
    },
    /// An Airflow DAG file: a DAG per job, its steps in order.
    Airflow {
        /// Write it to FILE.py (else stdout).
        #[arg(short, long, value_name = "FILE.py")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReservoirCommand {
    /// Streams, schema groups, partitions, records and bytes of TAP's
    /// reservoir, and how far each target has confirmed it.
    Ls { tap: String },
    /// Merge small partitions of each schema group and remove partitions no
    /// index names; replay positions stay valid and replays may go on.
    Compact {
        tap: String,
        /// Wait for a running ingest of TAP instead of failing.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Print one run's log (RUN as `alto logs` lists it).
    Show { run: String },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print the active state of TAP:TARGET.
    Show {
        pipeline: String,
        /// Print what produced the state instead: the pipeline derivation
        /// and the run that wrote it.
        #[arg(long)]
        provenance: bool,
    },
    /// Replace the active state of TAP:TARGET with a file (a Meltano export works as is).
    Set { pipeline: String, file: PathBuf },
    /// Every state of the environment (pipelines, ingests, replay positions):
    /// its last commit and size.
    List {
        /// Only names matching this glob (`tap-x:*`).
        pattern: Option<String>,
    },
    /// The timestamped copies of TAP:TARGET's state, oldest first.
    History { pipeline: String },
    /// Make a timestamped copy the active state again (the current one is
    /// kept as a new copy first, so a restore can be undone).
    Restore {
        pipeline: String,
        /// The copy's stamp, as `alto state history` lists it.
        #[arg(long, value_name = "STAMP")]
        at: String,
    },
    /// Drop the active state (as `alto clean TAP:TARGET`); the history stays.
    Clear { pipeline: String },
    /// Make FROM's active state TO's.
    Copy { from: String, to: String },
    /// Deep-merge a state file into the active state (Meltano's `state merge`).
    Merge { pipeline: String, file: PathBuf },
    /// Print every matching state of the environment as one JSON document.
    Export {
        /// Only names matching this glob (`tap-x:*`).
        pattern: Option<String>,
    },
    /// Write the states of an `alto state export` document.
    Import {
        file: PathBuf,
        /// Overwrite states that changed since the export.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Apply `{"select": [...], "metadata": {...}}` rules to a base catalog file.
    Apply {
        base_catalog: PathBuf,
        #[arg(long)]
        rules: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// List a directory of the project's remote root (`state/dev`).
    Ls { path: Option<String> },
    /// Copy a local file to the remote root.
    Push { local: PathBuf, remote: String },
    /// Copy a remote file to a local one.
    Pull { remote: String, local: PathBuf },
    /// Delete a remote file.
    Rm { remote: String },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-hash every local object (or, with --remote, every remote one) against its metadata.
    Verify {
        /// Verify the project's remote store instead (downloads every object).
        #[arg(long)]
        remote: bool,
        /// Remove damaged local objects; replace damaged remote ones from a good local copy.
        #[arg(long)]
        repair: bool,
    },
    /// Write the named plugins (all by default) with their metadata to one .tar.zst file.
    Export {
        plugins: Vec<String>,
        #[arg(short, long, value_name = "FILE.tar.zst")]
        output: PathBuf,
    },
    /// Read a file written by `alto store export` into the local store, verifying every object.
    Import { file: PathBuf },
    /// Make an ed25519 key pair for signing the cache: writes the secret key
    /// file, prints the public key for `trusted_public_keys`.
    Keygen {
        /// The key's name (e.g. your team or CI's name).
        #[arg(long)]
        name: String,
        /// Where to write the secret key (never overwritten).
        #[arg(short, long, default_value = "alto-signing-key.secret")]
        output: PathBuf,
    },
    /// Keep the named plugins' objects (all by default) whatever gc finds.
    Pin { plugins: Vec<String> },
    /// Let gc collect the named plugins' objects again.
    Unpin { plugins: Vec<String> },
}

impl Cli {
    /// Parses the process's arguments, task names expanded (see [`expand_task_name`]).
    pub fn parse_args() -> Cli {
        Cli::parse_from(expand_task_name(std::env::args_os().collect()))
    }

    /// Parses `args` (the program's name first), task names expanded.
    pub fn try_parse_args(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(expand_task_name(args))
    }
}

/// Whether `flag` is a global flag whose value is the next argument, as
/// clap's own definition of [`Global`] says (a hand-kept list drifts).
fn takes_next_value(flag: &str) -> bool {
    let globals = Global::augment_args(clap::Command::new("alto"));
    globals.get_arguments().any(|a| {
        a.get_action().takes_values()
            && (a
                .get_long()
                .is_some_and(|l| flag.strip_prefix("--") == Some(l))
                || a.get_short().is_some_and(|c| flag == format!("-{c}")))
    })
}

/// The original's task names stand for commands: `alto [FLAGS] tap:target
/// [FLAGS]` is `alto [FLAGS] run tap:target [FLAGS]` (so are `tap:reservoir`
/// and `reservoir:tap-target`), `build:P` is `build P`, `catalog:T` is
/// `catalog T` and `state:T-U` is `state show T-U`. Rewriting the arguments
/// before clap sees them gives a task name every flag of its command, in
/// any position, and clap's errors for the rest.
pub fn expand_task_name(mut args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--" {
            break;
        }
        if a.starts_with('-') {
            i += if takes_next_value(&a) { 2 } else { 1 };
            continue;
        }
        if !a.contains(':') {
            break;
        }
        let (command, name): (&[&str], &str) = match a.split_once(':') {
            Some(("build", p)) => (&["build"], p),
            Some(("catalog", t)) => (&["catalog"], t),
            Some(("state", p)) => (&["state", "show"], p),
            _ => (&["run"], a.as_str()),
        };
        let mut expanded: Vec<OsString> = command.iter().map(OsString::from).collect();
        expanded.push(OsString::from(name));
        args.splice(i..=i, expanded);
        break;
    }
    args
}

impl Global {
    /// How this command's output is shown.
    pub fn printer(&self) -> printer::Printer {
        printer::Printer::new(self)
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions::from_process(self.root.clone(), self.env.clone()).strict(self.strict)
    }

    pub fn load(&self) -> Result<Project, Error> {
        Ok(crate::config::load(&self.load_options())?)
    }

    /// The project without the Vault layer, for commands that render no
    /// secret (`list`, `show`): they never contact Vault. A `{vault[...]}`
    /// field is still fetched if such a command renders one.
    pub fn load_without_vault(&self) -> Result<Project, Error> {
        Ok(crate::config::load(
            &self.load_options().vault_layer(false),
        )?)
    }
}

/// How a command that did not fail ended; errors carry their own code
/// ([`Error::exit_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It did what was asked.
    Success,
    /// It ran and found the answer is no (`alto test`: no record came).
    Failure,
    /// A plugin's own exit code, passed on (`alto invoke`, `alto about`).
    External(u8),
}

impl From<ExitStatus> for u8 {
    fn from(s: ExitStatus) -> u8 {
        match s {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::External(c) => c,
        }
    }
}

/// Sets up logging for the verbosity asked for.
pub fn init_logging(global: &Global) {
    use tracing::Level;
    let level = match (global.verbose as i8) - (global.quiet as i8) {
        i8::MIN..=-2 => Level::ERROR,
        -1 => Level::WARN,
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    if global.log_format == LogFormat::Json {
        crate::run::log::set_json_console(true);
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .event_format(JsonLines)
            .try_init();
        return;
    }
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .without_time()
        .with_target(false)
        .try_init();
}

/// alto's log messages as JSON lines (`--log-format json`), as plugin lines are.
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(
            writer,
            "{}",
            crate::run::log::json_line(event.metadata().level().as_str(), None, &message.0)
        )
    }
}

/// An event's message, with any other fields after it as `name=value`.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// Runs a parsed command line; the exit code on success.
pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    let g = &cli.global;
    match &cli.command {
        Command::Init {
            format,
            name,
            no_prompt,
        } => init::init(g, *format, name.clone(), *no_prompt).map(|_| ExitStatus::Success),
        Command::Add {
            kind,
            name,
            pip_url,
            executable,
            no_build,
        } => add::add(
            g,
            add::kind(*kind),
            name,
            pip_url,
            executable.as_deref(),
            *no_build,
        )
        .map(|_| ExitStatus::Success),
        Command::Import {
            source: ImportSource::Meltano { path },
        } => import::meltano(g, path.as_deref()).map(|_| ExitStatus::Success),
        Command::Config { plugin, tap } => {
            config::config(g, &g.load()?, plugin, tap.as_deref()).map(|_| ExitStatus::Success)
        }
        Command::Dump { keys } => config::dump(g, &g.load()?, keys).map(|_| ExitStatus::Success),
        Command::List => list::list(g, &g.load_without_vault()?).map(|_| ExitStatus::Success),
        Command::Build {
            plugins,
            jobs,
            dry_run,
            check,
            repair,
            all_envs,
            catalogs,
            offline,
            no_push,
        } => {
            let opts = build::BuildArgs {
                no_push: *no_push,
                plugins: plugins.clone(),
                jobs: *jobs,
                dry_run: *dry_run,
                check: *check,
                repair: *repair,
                all_envs: *all_envs,
                catalogs: *catalogs,
                offline: *offline,
            };
            build::build(g, &g.load()?, &opts).map(|_| ExitStatus::Success)
        }
        Command::Show { plugin } => {
            show::show(g, &g.load_without_vault()?, plugin).map(|_| ExitStatus::Success)
        }
        Command::Invoke { args } => invoke::invoke(g, &g.load()?, args),
        Command::Store {
            command:
                StoreCommand::Verify {
                    remote: false,
                    repair,
                },
        } => store::verify(g, *repair).map(|_| ExitStatus::Success),
        Command::Store {
            command:
                StoreCommand::Verify {
                    remote: true,
                    repair,
                },
        } => store::verify_remote(g, &g.load()?, *repair).map(|_| ExitStatus::Success),
        Command::Store {
            command: StoreCommand::Export { plugins, output },
        } => store::export(g, &g.load()?, plugins, output).map(|_| ExitStatus::Success),
        Command::Store {
            command: StoreCommand::Import { file },
        } => store::import(g, file).map(|_| ExitStatus::Success),
        Command::Store {
            command: StoreCommand::Keygen { name, output },
        } => store::keygen(g, name, output).map(|_| ExitStatus::Success),
        Command::Fs { command, yes } => {
            let project = g.load()?;
            match command {
                FsCommand::Ls { path } => fs::ls(g, &project, path.as_deref()),
                FsCommand::Push { local, remote } => fs::push(&project, local, remote, *yes),
                FsCommand::Pull { remote, local } => fs::pull(&project, remote, local, *yes),
                FsCommand::Rm { remote } => fs::rm(&project, remote, *yes),
            }
            .map(|_| ExitStatus::Success)
        }
        Command::Reservoir {
            command: ReservoirCommand::Ls { tap },
        } => reservoir::reservoir_ls(g, &g.load()?, tap).map(|_| ExitStatus::Success),
        Command::Reservoir {
            command: ReservoirCommand::Compact { tap, wait },
        } => reservoir::reservoir_compact(g, &g.load()?, tap, *wait).map(|_| ExitStatus::Success),
        Command::Store {
            command: StoreCommand::Pin { plugins },
        } => store::pin(g, &g.load()?, plugins, false).map(|_| ExitStatus::Success),
        Command::Store {
            command: StoreCommand::Unpin { plugins },
        } => store::pin(g, &g.load()?, plugins, true).map(|_| ExitStatus::Success),
        Command::Gc {
            dry_run,
            remote,
            older_than,
        } => gc::gc(g, &g.load()?, *dry_run, *remote, older_than).map(|_| ExitStatus::Success),
        Command::Run {
            pipelines,
            full_refresh,
            jobs,
            wait,
            controls,
        } => {
            let opts = crate::run::RunOptions {
                full_refresh: *full_refresh,
                wait: *wait,
                no_state_update: controls.no_state_update,
                strict: g.strict,
                allow_unhashed: controls.allow_unhashed,
                replay_changed: controls.replay_changed,
            };
            run::run(g, &mut g.load()?, pipelines, &opts, *jobs, controls)
        }
        Command::Extract(args) => extract::extract(g, &mut g.load()?, args),
        Command::Logs {
            command: Some(LogsCommand::Show { run }),
            ..
        } => logs::show(&g.load()?, run).map(|_| ExitStatus::Success),
        Command::Logs {
            command: None,
            pipeline,
            last,
        } => logs::logs(g, &g.load()?, pipeline.as_deref(), *last).map(|_| ExitStatus::Success),
        Command::State { command } => {
            let project = g.load()?;
            match command {
                StateCommand::Show {
                    pipeline,
                    provenance,
                } => {
                    if *provenance {
                        state::state_provenance(&project, pipeline)
                    } else {
                        state::state_show(&project, pipeline)
                    }
                }
                StateCommand::Set { pipeline, file } => state::state_set(&project, pipeline, file),
                StateCommand::List { pattern } => {
                    state::state_list(g, &project, pattern.as_deref())
                }
                StateCommand::History { pipeline } => state::state_history(g, &project, pipeline),
                StateCommand::Restore { pipeline, at } => {
                    state::state_restore(g, &project, pipeline, at)
                }
                StateCommand::Clear { pipeline } => state::state_clear(&project, pipeline),
                StateCommand::Copy { from, to } => state::state_copy(&project, from, to),
                StateCommand::Merge { pipeline, file } => {
                    state::state_merge(g, &project, pipeline, file)
                }
                StateCommand::Export { pattern } => {
                    state::state_export(&project, pattern.as_deref())
                }
                StateCommand::Import { file, force } => {
                    state::state_import(g, &project, file, *force)
                }
            }
            .map(|_| ExitStatus::Success)
        }
        Command::Clean { name } => clean::clean(g, &g.load()?, name).map(|_| ExitStatus::Success),
        Command::Catalog {
            command:
                Some(CatalogCommand::Apply {
                    base_catalog,
                    rules,
                }),
            ..
        } => catalog::catalog_apply(base_catalog, rules).map(|_| ExitStatus::Success),
        Command::Catalog { command: None, tap } => match tap {
            Some(t) => catalog::catalog_show(g, &g.load()?, t).map(|_| ExitStatus::Success),
            None => Err(Error::UnknownCommand {
                name: "catalog".into(),
            }),
        },
        Command::Select { tap, .. } => {
            catalog::select_list(g, &g.load()?, tap).map(|_| ExitStatus::Success)
        }
        Command::Test { tap, timeout } => {
            test::test(g, &g.load()?, tap, std::time::Duration::from_secs(*timeout))
        }
        Command::About { plugin } => about::about(g, &g.load()?, plugin),
        Command::Schedule {
            command: ScheduleCommand::List,
        } => schedule::list(g, &g.load()?).map(|_| ExitStatus::Success),
        Command::Orchestrate { orchestrator } => {
            orchestrate::orchestrate(g, &g.load()?, orchestrator).map(|_| ExitStatus::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        let mut args = vec![OsString::from("alto")];
        args.extend(line.split_whitespace().map(OsString::from));
        Cli::try_parse_args(args)
    }

    /// Every flag of `run` is accepted after a task name, in any position,
    /// and means what it means after `alto run`.
    #[test]
    fn task_names_take_every_flag_of_their_command() {
        type Check = fn(&Cli) -> bool;
        let cases: &[(&str, Check)] = &[
            ("tap:target --env prod", |c| {
                c.global.env.as_deref() == Some("prod")
            }),
            ("--env prod tap:target", |c| {
                c.global.env.as_deref() == Some("prod")
            }),
            ("tap:target --env=prod", |c| {
                c.global.env.as_deref() == Some("prod")
            }),
            ("tap:target --full-refresh", |c| {
                matches!(
                    c.command,
                    Command::Run {
                        full_refresh: true,
                        ..
                    }
                )
            }),
            ("tap:target -j 2", |c| {
                matches!(c.command, Command::Run { jobs: 2, .. })
            }),
            ("tap:target --jobs=3", |c| {
                matches!(c.command, Command::Run { jobs: 3, .. })
            }),
            ("tap:target --wait", |c| {
                matches!(c.command, Command::Run { wait: true, .. })
            }),
            ("tap:target --json", |c| c.global.json),
            (
                "tap:target --select users --select 'orders.id' --exclude users.email --refresh-catalog --no-state-update --timeout 15m --dry-run",
                |c| {
                    matches!(&c.command, Command::Run { controls, .. }
                    if controls.select == ["users", "'orders.id'"]
                        && controls.exclude == ["users.email"]
                        && controls.refresh_catalog
                        && controls.no_state_update
                        && controls.timeout.as_deref() == Some("15m")
                        && controls.dry_run)
                },
            ),
            (
                "tap:reservoir --dry-run --select=users",
                |c| matches!(&c.command, Command::Run { controls, .. } if controls.dry_run && controls.select == ["users"]),
            ),
            ("tap:target --strict", |c| c.global.strict),
            ("tap:target --show-secrets", |c| c.global.show_secrets),
            ("tap:target -qq", |c| c.global.quiet == 2),
            ("tap:target -v", |c| c.global.verbose == 1),
            ("tap:target -r /tmp/p", |c| {
                c.global.root.as_deref() == Some(std::path::Path::new("/tmp/p"))
            }),
            (
                "-r /tmp/p tap:target",
                |c| matches!(&c.command, Command::Run { pipelines, .. } if pipelines == &["tap:target"]),
            ),
            ("--json tap:target --env prod -j 2 --full-refresh", |c| {
                c.global.json
                    && c.global.env.as_deref() == Some("prod")
                    && matches!(
                        c.command,
                        Command::Run {
                            jobs: 2,
                            full_refresh: true,
                            ..
                        }
                    )
            }),
            (
                "tap:reservoir --full-refresh",
                |c| matches!(&c.command, Command::Run { pipelines, full_refresh: true, .. } if pipelines == &["tap:reservoir"]),
            ),
            (
                "reservoir:tap-target --wait",
                |c| matches!(&c.command, Command::Run { pipelines, wait: true, .. } if pipelines == &["reservoir:tap-target"]),
            ),
            (
                "tap:mapper:target",
                |c| matches!(&c.command, Command::Run { pipelines, .. } if pipelines == &["tap:mapper:target"]),
            ),
            (
                "build:tap --offline -j 1",
                |c| matches!(&c.command, Command::Build { plugins, offline: true, jobs: 1, .. } if plugins == &["tap"]),
            ),
            ("catalog:tap --env prod", |c| {
                matches!(&c.command, Command::Catalog { tap: Some(t), .. } if t == "tap")
                    && c.global.env.as_deref() == Some("prod")
            }),
            (
                "state:tap-target",
                |c| matches!(&c.command, Command::State { command: StateCommand::Show { pipeline, .. } } if pipeline == "tap-target"),
            ),
            // Not task names: left alone.
            ("run tap:target", |c| {
                matches!(c.command, Command::Run { .. })
            }),
            ("dump taps.tap:x", |c| {
                matches!(c.command, Command::Dump { .. })
            }),
        ];
        for (line, check) in cases {
            let cli = parse(line).unwrap_or_else(|e| panic!("`alto {line}`: {e}"));
            assert!(check(&cli), "`alto {line}` parsed as {cli:?}");
        }
    }

    /// A misspelled flag is refused (exit 2), with clap's suggestion.
    #[test]
    fn misspelled_flags_after_a_task_name_are_refused() {
        for (line, suggestion) in [
            ("tap:target --ful-refresh", "--full-refresh"),
            ("tap:target --evn prod", "--evn"),
            ("tap:target --wiat", "--wait"),
            ("tap:target --dry-rn", "--dry-run"),
            ("tap:target --selct users", "--select"),
            ("tap:reservoir --jsno", "--json"),
            ("build:tap --ofline", "--offline"),
        ] {
            let e = parse(line).expect_err(line);
            assert_eq!(e.exit_code(), 2, "{line}");
            let text = e.to_string();
            assert!(text.contains(suggestion), "{line}: {text}");
        }
        assert!(
            parse("tap:target extra").is_ok(),
            "several pipelines are allowed"
        );
        assert_eq!(parse("bogus").expect_err("bogus").exit_code(), 2);
    }

    /// Every global flag that takes a value may come before a task name,
    /// written with a space as well as with `=`.
    #[test]
    fn global_flags_with_values_may_precede_a_task_name() {
        for line in [
            "--log-format json tap:target",
            "--env prod tap:target",
            "-r /p tap:target",
            "--root /p --log-format json tap:target --wait",
        ] {
            let cli = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(matches!(cli.command, Command::Run { .. }), "{line}");
        }
        let cli = parse("--log-format json tap:target").unwrap();
        assert_eq!(cli.global.log_format, LogFormat::Json);
    }
}
