//! The one place where the command line becomes settings.
//!
//! clap has already parsed every value into its type (a bad `--rate`, duration, region or URL
//! never gets here). [`resolve`] adds what clap cannot check alone (flags that contradict each
//! other) and the environment (through [`crate::env::var`]: the process environment, then
//! `.env`), and produces one typed settings value per command. It runs before the runtime
//! starts, so a usage or configuration error is reported before any file is read, any request
//! is sent or any audit store is created. Commands only consume these settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use genesys_core::Profile;
use genesys_core::models::Attributes;
use genesys_core::settings::{ExplicitSettings, Sources};
use genesys_core::{ClientOptions, GenesysClient, Pacing, RateSpec, RequestObserver, RetryPolicy};
use secrecy::SecretString;

use crate::cli::{
    ApplyArgs, AuditArgs, AuditCommand, AuditPathArgs, AuditPruneArgs, Cli, Command,
    CompletionsArgs, ConnectionArgs, CredentialFileArgs, DemoArgs, DoctorArgs, GenerateManArgs,
    GetArgs, GlobalArgs, LiveArgs, PlanArgs, QueuesArgs, RateArg, ReconcileArgs, RevertArgs,
    SetArgs, SimArgs, TagArgs, VerifyArgs,
};
use crate::env;
use crate::hints::Hints;

pub use engine::auto_rate::AutoRate;

/// The burst of even pacing when neither `--burst` nor `--rate ...,burst=N` gives one.
pub const DEFAULT_BURST: u32 = 5;

/// Why the command line could not become settings.
#[derive(Debug)]
pub enum ResolveError {
    /// Flags that contradict each other (exit 64), formatted as clap formats its own errors.
    Usage(Box<clap::Error>),
    /// The configuration is incomplete or wrong, e.g. no credentials (exit 1).
    Config(anyhow::Error),
}

/// One command with its settings. The command's own arguments (sources, selectors, output
/// flags) travel with it as clap parsed them.
pub enum CommandSettings {
    Get(GetArgs, Connection),
    /// With the attributes of its `KEY=VALUE` arguments, checked (see [`attributes`]).
    Set(SetArgs, Attributes, RunSettings),
    Plan(PlanArgs, Connection),
    Apply(ApplyArgs, RunSettings),
    Reconcile(ReconcileArgs, RunSettings),
    /// `reconcile --follow`, with how often its source is looked at (see [`poll_interval`]).
    ReconcileFollow(ReconcileArgs, Duration, RunSettings),
    Live(LiveArgs, Connection),
    Queues(QueuesArgs, Connection),
    /// With the attributes of its `KEY=VALUE` arguments, checked (see [`attributes`]).
    Tag(TagArgs, Attributes, RunSettings),
    Revert(RevertArgs, RunSettings),
    /// `revert --dry-run`: reads the audit store only, so it needs no connection (nor
    /// credentials); with the store's path.
    RevertDryRun(RevertArgs, PathBuf),
    Completions(CompletionsArgs),
    GenerateMan(GenerateManArgs),
    Sim(SimArgs),
    Demo(DemoArgs),
    Audit(AuditArgs),
    AuditPrune(PruneSettings),
    /// `doctor` reports a configuration error as its first failed check, not as an error.
    Doctor(DoctorArgs, Box<Result<Connection, anyhow::Error>>),
}

/// Settings of `attrsync audit prune`.
#[derive(Clone, Debug)]
pub struct PruneSettings {
    pub audit_path: PathBuf,
    /// `--older-than`, as given.
    pub older_than: Duration,
    /// Runs that ended before this instant are pruned: now minus `--older-than`.
    pub ended_before: audit::UnixMillis,
    /// `--yes`: delete; otherwise a dry run.
    pub delete: bool,
    pub json: bool,
}

/// Where and how to reach Genesys Cloud: resolved settings, the rate and the token pool.
/// `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct Connection {
    pub genesys: genesys_core::Settings,
    /// The per-token rate, burst included (the burst applies to even pacing only). With
    /// `--rate auto`, Genesys's default until the org's own limit is read (see `auto_rate`).
    pub rate: RateSpec,
    /// `--rate auto`: the org's per-token limit, read once per process through the first
    /// client that [`Connection::connect`] builds (or [`engine::execute`]).
    pub auto_rate: Option<AutoRate>,
    pub pacing: Pacing,
    /// The longest `Retry-After` waited out (`--max-wait`).
    pub max_wait: Duration,
    pub tokens: u16,
    pub timeout: Duration,
    /// The connection flags a printed command repeats (see `hints`).
    pub hints: Hints,
}

impl Connection {
    /// A client for these settings; `observer` sees every request (the audit log of a run).
    /// Under `--rate auto` the client starts at the rate already learned (or the default): see
    /// [`Connection::connect`] and [`AutoRate::apply`].
    pub fn client(
        &self,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> anyhow::Result<GenesysClient> {
        self.build_client(observer)
            .context("cannot set up the Genesys client")
    }

    /// [`Self::client`] with the client's own error (the engine's client factory).
    pub fn build_client(
        &self,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<GenesysClient, genesys_core::ClientBuildError> {
        let rate = self
            .auto_rate
            .as_ref()
            .and_then(AutoRate::learned)
            .map_or(self.rate, |learned| learned.rate);
        let options = ClientOptions {
            rate,
            pacing: self.pacing,
            max_wait: self.max_wait,
            // A Retry-After up to --max-wait is waited out in full.
            retry: RetryPolicy {
                max_retry_after: self.max_wait,
                ..RetryPolicy::default()
            },
            tokens: usize::from(self.tokens),
            request_timeout: self.timeout,
            observer,
            ..ClientOptions::default()
        };
        GenesysClient::new(&self.genesys, options)
    }

    /// A client (without observer) whose rate is the org's own under `--rate auto`: read before
    /// the client's first other request.
    pub async fn connect(&self, ui: crate::ui::Ui) -> anyhow::Result<GenesysClient> {
        let client = self.client(None)?;
        if let Some(auto) = &self.auto_rate {
            auto.apply(&client, &crate::observer::Notes(ui)).await;
        }
        Ok(client)
    }

    /// Requests per minute over every token.
    pub fn rate_per_minute(&self) -> f64 {
        self.rate.per_minute() * f64::from(self.tokens)
    }

    /// The rate flags as recorded in a run's options.
    fn options(&self) -> serde_json::Value {
        serde_json::json!({
            "rate": if self.auto_rate.is_some() {
                "auto".to_owned()
            } else {
                self.rate.with_burst(1).to_string()
            },
            "burst": self.rate.burst(),
            "pacing": self.pacing.as_str(),
            "max_wait": humantime::format_duration(self.max_wait).to_string(),
            "tokens": self.tokens,
        })
    }
}

/// Settings of a command that records a run in the audit store (`apply`, `set`, `tag`,
/// `reconcile`).
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub connection: Connection,
    pub audit_path: PathBuf,
    command: &'static str,
    /// Calls worked on (or read, for a plan) at once.
    pub concurrency: usize,
    /// `--liveness-batch`: ids per multi-id analytics read when a run finds which of its
    /// desired calls ended; `None` for commands that read every call (`set`, `tag`).
    pub liveness_batch: Option<usize>,
    /// `--max-changes`: refuse to start a run that would change more participants.
    pub max_changes: Option<usize>,
    /// `--json`: NDJSON events on stdout instead of the human summary.
    pub json: bool,
    verify_timeout: Duration,
    verify_via: engine::VerifyVia,
    results_dir: Option<PathBuf>,
    rate_per_minute: f64,
    /// From a token's rate to the run's `rate_per_minute` (`set` uses one token's rate, the
    /// others every token's).
    tokens_factor: f64,
    options: serde_json::Value,
    /// The flags a printed command repeats (see `hints`).
    pub hints: crate::hints::Hints,
}

impl RunSettings {
    /// How long a stop may wait at most for what is under way: a request on the wire
    /// (`--timeout`), then its verification (`--verify-timeout`).
    pub fn stop_within(&self) -> Duration {
        self.connection.timeout + self.verify_timeout
    }

    /// The queues a `tag` run works on, as the ids `--queue` resolved to (its recorded options).
    pub fn with_resolved_queues(mut self, ids: &[String]) -> Self {
        self.options["queues"] = ids.to_vec().into();
        self
    }

    /// What the engine needs for one run (`reconcile` asks once per iteration).
    pub fn run_config(&self) -> engine::RunConfig {
        engine::RunConfig {
            command: self.command.to_owned(),
            concurrency: self.concurrency,
            liveness_batch: self.liveness_batch,
            verify_timeout: self.verify_timeout,
            verify_via: self.verify_via,
            results_dir: self.results_dir.clone(),
            rate_per_minute: self.rate_per_minute,
            options: self.options.clone(),
            auto_rate: self
                .connection
                .auto_rate
                .clone()
                .map(|auto| (auto, self.tokens_factor)),
            operator: env::var(env::USER),
            exit_code: crate::exit::code_for_run,
        }
    }
}

/// The command line, the environment and `.env` (already loaded, see `env::load_dotenv`)
/// become one command's settings.
pub fn resolve(cli: Cli) -> Result<CommandSettings, ResolveError> {
    let Cli { global, command } = cli;
    let connection = |args: &ConnectionArgs| connection(args, &global);
    Ok(match command {
        Command::Get(args) => {
            let connection = connection(&args.connection)?;
            CommandSettings::Get(args, connection)
        }
        Command::Plan(args) => {
            let connection = connection(&args.connection)?;
            CommandSettings::Plan(args, connection)
        }
        Command::Live(args) => {
            let connection = connection(&args.connection)?;
            CommandSettings::Live(args, connection)
        }
        Command::Queues(args) => {
            let connection = connection(&args.connection)?;
            CommandSettings::Queues(args, connection)
        }
        Command::Set(args) => {
            let attributes = attributes(&args.attributes)?;
            let connection = connection(&args.connection)?;
            let mut options = serde_json::json!({ "attributes": attributes.len() });
            options["verify_via"] =
                serde_json::to_value(args.verify.verify_via).unwrap_or_default();
            let settings = RunSettings {
                audit_path: audit_path(&args.audit),
                command: "set",
                concurrency: 1,
                liveness_batch: None,
                max_changes: None,
                json: args.json,
                verify_timeout: args.verify.verify_timeout,
                verify_via: args.verify.verify_via.into(),
                results_dir: None,
                rate_per_minute: connection.rate.per_minute(),
                tokens_factor: 1.0,
                options,
                hints: connection
                    .hints
                    .clone()
                    .with_audit(&audit_path(&args.audit)),
                connection,
            };
            CommandSettings::Set(args, attributes, settings)
        }
        Command::Apply(args) => {
            let connection = connection(&args.connection)?;
            let mut options = run_options(&connection, args.concurrency, &args.verify);
            record_source_args(&mut options, &args.source_args);
            options["max_changes"] = args.max_changes.into();
            let settings = RunSettings {
                audit_path: audit_path(&args.audit),
                command: if args.resume.is_some() {
                    "apply --resume"
                } else {
                    "apply"
                },
                concurrency: args.concurrency,
                liveness_batch: liveness_batch(args.liveness_batch)?,
                max_changes: args.max_changes,
                json: args.json,
                verify_timeout: args.verify.verify_timeout,
                verify_via: args.verify.verify_via.into(),
                results_dir: args.results.clone(),
                rate_per_minute: connection.rate_per_minute(),
                tokens_factor: f64::from(connection.tokens),
                options,
                hints: connection
                    .hints
                    .clone()
                    .with_audit(&audit_path(&args.audit)),
                connection,
            };
            CommandSettings::Apply(args, settings)
        }
        Command::Reconcile(args) => {
            let connection = connection(&args.connection)?;
            let mut options = run_options(&connection, args.concurrency, &args.verify);
            options["every"] = args
                .every
                .map(|d| humantime::format_duration(d).to_string())
                .into();
            options["once"] = args.once.into();
            record_source_args(&mut options, &args.source_args);
            let poll_interval = if args.follow {
                let poll_interval = poll_interval(args.poll_interval)?;
                options["follow"] = true.into();
                // As given; `with_resolved_queues` records the ids once they are looked up.
                options["queues"] = args.queues.iter().map(ToString::to_string).collect();
                options["backfill_lag"] = humantime::format_duration(args.backfill_lag)
                    .to_string()
                    .into();
                options["poll_interval"] =
                    humantime::format_duration(poll_interval).to_string().into();
                Some(poll_interval)
            } else {
                None
            };
            let settings = RunSettings {
                audit_path: audit_path(&args.audit),
                command: "reconcile",
                concurrency: args.concurrency,
                // A follow plans calls from their events: nothing to look up in batches.
                liveness_batch: if args.follow {
                    None
                } else {
                    liveness_batch(args.liveness_batch)?
                },
                max_changes: args.max_changes,
                json: false,
                verify_timeout: args.verify.verify_timeout,
                verify_via: args.verify.verify_via.into(),
                results_dir: None,
                rate_per_minute: connection.rate_per_minute(),
                tokens_factor: f64::from(connection.tokens),
                options,
                hints: connection
                    .hints
                    .clone()
                    .with_audit(&audit_path(&args.audit)),
                connection,
            };
            match poll_interval {
                Some(poll_interval) => {
                    CommandSettings::ReconcileFollow(args, poll_interval, settings)
                }
                None => CommandSettings::Reconcile(args, settings),
            }
        }
        Command::Tag(args) => {
            let attributes = attributes(&args.attributes)?;
            let connection = connection(&args.connection)?;
            let mut options = run_options(&connection, args.concurrency, &args.verify);
            // As given; `with_resolved_queues` records the ids once they are looked up.
            options["queues"] = args.queues.iter().map(ToString::to_string).collect();
            if args.follow {
                options["follow"] = true.into();
                options["backfill_lag"] = humantime::format_duration(args.backfill_lag)
                    .to_string()
                    .into();
            }
            options["purpose"] = args.purpose.clone().into();
            options["attributes"] = attributes.len().into();
            let settings = RunSettings {
                audit_path: audit_path(&args.audit),
                command: "tag",
                concurrency: args.concurrency,
                liveness_batch: None,
                max_changes: None,
                json: args.json,
                verify_timeout: args.verify.verify_timeout,
                verify_via: args.verify.verify_via.into(),
                results_dir: None,
                rate_per_minute: connection.rate_per_minute(),
                tokens_factor: f64::from(connection.tokens),
                options,
                hints: connection
                    .hints
                    .clone()
                    .with_audit(&audit_path(&args.audit)),
                connection,
            };
            CommandSettings::Tag(args, attributes, settings)
        }
        Command::Revert(args) if args.dry_run => {
            let audit_path = audit_path(&args.audit);
            CommandSettings::RevertDryRun(args, audit_path)
        }
        Command::Revert(args) => {
            let connection = connection(&args.connection)?;
            let mut options = run_options(&connection, args.concurrency, &args.verify);
            options["reverts"] = args.run.clone().into();
            options["conversations"] = args.conversations.clone().into();
            options["keys"] = args.keys.clone().into();
            options["max_changes"] = args.max_changes.into();
            let settings = RunSettings {
                audit_path: audit_path(&args.audit),
                command: "revert",
                // A revert is a plan of the calls the run changed: nothing to look up in batches.
                liveness_batch: None,
                concurrency: args.concurrency,
                max_changes: args.max_changes,
                json: args.json,
                verify_timeout: args.verify.verify_timeout,
                verify_via: args.verify.verify_via.into(),
                results_dir: args.results.clone(),
                rate_per_minute: connection.rate_per_minute(),
                tokens_factor: f64::from(connection.tokens),
                options,
                hints: connection
                    .hints
                    .clone()
                    .with_audit(&audit_path(&args.audit)),
                connection,
            };
            CommandSettings::Revert(args, settings)
        }
        Command::Completions(args) => CommandSettings::Completions(args),
        Command::GenerateMan(args) => CommandSettings::GenerateMan(args),
        Command::Sim(args) => CommandSettings::Sim(args),
        Command::Demo(args) => CommandSettings::Demo(args),
        Command::Audit(AuditArgs {
            command: AuditCommand::Prune(args),
        }) => CommandSettings::AuditPrune(prune_settings(&args)),
        Command::Audit(args) => CommandSettings::Audit(args),
        Command::Doctor(args) => {
            let resolved = match connection(&args.connection) {
                Ok(connection) => Ok(connection),
                Err(ResolveError::Usage(err)) => return Err(ResolveError::Usage(err)),
                Err(ResolveError::Config(err)) => Err(err),
            };
            CommandSettings::Doctor(args, Box::new(resolved))
        }
    })
}

/// How a run read its source, recorded with its options, so that the source can be read again
/// the same way (`apply --resume` of a run stopped before it recorded its targets).
fn record_source_args(options: &mut serde_json::Value, args: &crate::cli::SourceArgs) {
    options["default_purpose"] = args.default_purpose.clone().into();
    options["skip_invalid"] = args.skip_invalid.into();
    options["table"] = args.table.clone().into();
    options["query"] = args.query.clone().into();
    options["default_region"] = args.default_region.map(|r| r.to_string()).into();
}

/// The options every run records: concurrency, rate, burst, tokens, verify timeout.
fn run_options(
    connection: &Connection,
    concurrency: usize,
    verify: &VerifyArgs,
) -> serde_json::Value {
    let mut options = connection.options();
    options["concurrency"] = concurrency.into();
    options["verify_timeout"] = humantime::format_duration(verify.verify_timeout)
        .to_string()
        .into();
    options["verify_via"] = serde_json::to_value(verify.verify_via).unwrap_or_default();
    options
}

/// `audit prune`: the cutoff is taken once, now, so that a dry run and `--yes` given the same
/// store at the same moment select the same runs.
fn prune_settings(args: &AuditPruneArgs) -> PruneSettings {
    PruneSettings {
        audit_path: audit_path(&args.audit),
        older_than: args.older_than,
        ended_before: audit::UnixMillis::now().saturating_sub(args.older_than),
        delete: args.yes,
        json: args.json,
    }
}

/// Ids per multi-id analytics read: `--liveness-batch`, else `ATTRSYNC_LIVENESS_BATCH`, else
/// 100 (Genesys documents no limit; see the README). `None` (0): ask nothing, read every call.
pub fn liveness_batch(flag: Option<usize>) -> Result<Option<usize>, ResolveError> {
    let batch = match flag {
        Some(batch) => batch,
        None => match env::var(env::LIVENESS_BATCH).filter(|v| !v.is_empty()) {
            None => engine::live::DEFAULT_LIVENESS_BATCH,
            Some(text) => text.trim().parse::<usize>().map_err(|_| {
                ResolveError::Config(anyhow::anyhow!(
                    "{}={text:?} is not a count (0 reads every call)",
                    env::LIVENESS_BATCH
                ))
            })?,
        },
    };
    Ok(Some(batch).filter(|&batch| batch > 0))
}

/// How often `reconcile --follow` looks at its source: `--poll-interval`, else
/// `ATTRSYNC_POLL_INTERVAL`, else [`DEFAULT_POLL_INTERVAL`]. Well under a second by default:
/// a change should be on the calls within about 2 s of its write.
pub fn poll_interval(flag: Option<Duration>) -> Result<Duration, ResolveError> {
    if let Some(interval) = flag {
        return Ok(interval);
    }
    match env::var(env::POLL_INTERVAL).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_POLL_INTERVAL),
        Some(text) => crate::cli::parse_poll_interval(&text).map_err(|problem| {
            ResolveError::Config(anyhow::anyhow!("{}: {problem}", env::POLL_INTERVAL))
        }),
    }
}

/// The default of `--poll-interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The audit store: `--audit`, else `ATTRSYNC_AUDIT`, else the default location.
pub fn audit_path(args: &AuditPathArgs) -> PathBuf {
    args.path
        .clone()
        .or_else(|| {
            env::var(env::AUDIT)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(env::default_audit_path)
}

/// The gc profile named by `--profile` or `ATTRSYNC_PROFILE`, read from `--gc-config` or
/// `~/.gc/config.toml`, with its warnings; `None` when no profile is named (none is ever read
/// implicitly).
fn named_profile(
    global: &CredentialFileArgs,
) -> Result<(Option<Profile>, Vec<String>), ResolveError> {
    let name = global
        .profile
        .clone()
        .or_else(|| env::var(env::PROFILE))
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    let Some(name) = name else {
        if let Some(path) = &global.gc_config {
            // A file given to be read that nothing reads would be a silent surprise.
            return Err(usage(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "--gc-config {} needs --profile NAME (or {}): no profile is read unless one is named",
                    path.display(),
                    env::PROFILE
                ),
            ));
        }
        return Ok((None, Vec::new()));
    };
    let path = match &global.gc_config {
        Some(path) => path.clone(),
        None => genesys_core::profile::default_path(env::var(env::HOME).as_deref()).ok_or_else(
            || {
                ResolveError::Config(anyhow::anyhow!(
                    "cannot find the gc configuration for profile {name:?}: {} is not set; give --gc-config PATH",
                    env::HOME
                ))
            },
        )?,
    };
    let (profile, warnings) = genesys_core::profile::read(&path, &name)
        .map_err(|err| ResolveError::Config(err.into()))?;
    Ok((Some(profile), warnings))
}

/// The connection flags with every other source, through the one resolver
/// (`genesys_core::Settings::resolve_from`): flags > environment > `.env` > gc profile >
/// defaults.
fn connection(args: &ConnectionArgs, global: &GlobalArgs) -> Result<Connection, ResolveError> {
    let files = args.files.or(&global.files);
    let rate = rate(args)?;
    let auto_rate =
        (args.rate == RateArg::Auto).then(|| AutoRate::new(args.limits_namespace.clone(), rate));
    let explicit = ExplicitSettings {
        client_id: args.client_id.clone(),
        client_secret: None,
        region: args.region,
        api_url: args.api_url.clone(),
        login_url: args.login_url.clone(),
        ca_cert: args.ca_cert.clone(),
    };
    let (profile, file_warnings) = named_profile(&files)?;
    let sources = Sources {
        environment: &env::process_var,
        dotenv: &env::dotenv_var,
        profile: profile.as_ref(),
    };
    let mut genesys = genesys_core::Settings::resolve_from(&explicit, &sources)
        .map_err(|err| ResolveError::Config(err.into()))?;
    check_tokens(args.tokens, &genesys)?;
    // The CA file is read now, so that a bad one stops the command before any store is
    // created or request sent (the client reads it again when built).
    if let Some(path) = &genesys.ca_cert {
        genesys_core::tls::read_ca_file(path).map_err(|err| ResolveError::Config(err.into()))?;
    }
    genesys.warnings.splice(0..0, file_warnings);
    for warning in &genesys.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(proxy) = &genesys.proxy {
        // The URLs only: never the credentials (see `ProxyTarget`'s Display).
        for target in [&proxy.https, &proxy.http].into_iter().flatten() {
            tracing::debug!(proxy = %target, from = target.source, "using a proxy");
        }
    }
    Ok(Connection {
        genesys,
        rate,
        auto_rate,
        pacing: args.pacing.into(),
        max_wait: args.max_wait,
        tokens: args.tokens,
        timeout: args.timeout,
        hints: Hints::new(&files, Some(args)),
    })
}

/// A given access token is one token: a pool of several needs client credentials to mint them.
fn check_tokens(tokens: u16, genesys: &genesys_core::Settings) -> Result<(), ResolveError> {
    if tokens > 1 && genesys.credentials.is_fixed_token() {
        return Err(usage(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "--tokens {tokens} needs client credentials: the access token from {} is a single token that cannot be minted again; drop --tokens, or set {} and {}",
                genesys.sources.credentials,
                genesys_core::env::CLIENT_ID.name,
                genesys_core::env::CLIENT_SECRET.name
            ),
        ));
    }
    Ok(())
}

/// `--rate` with its burst: from `,burst=N`, or `--burst`, or the default; both given and
/// different is a usage error. `--rate auto` starts at Genesys's default (see [`AutoRate`]).
fn rate(args: &ConnectionArgs) -> Result<RateSpec, ResolveError> {
    let (spec, in_rate) = match args.rate {
        RateArg::Fixed { spec, burst } => (spec, burst),
        RateArg::Auto => (RateSpec::GENESYS_DEFAULT, None),
    };
    let burst = match (in_rate, args.burst) {
        (Some(in_rate), Some(flag)) if in_rate != flag => {
            return Err(usage(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--burst {flag} contradicts --rate {}; give the burst once",
                    spec
                ),
            ));
        }
        (Some(burst), _) | (None, Some(burst)) => burst,
        (None, None) => DEFAULT_BURST,
    };
    Ok(spec.with_burst(burst))
}

/// The attributes of `set`'s and `tag`'s `KEY=VALUE` arguments, checked by the rules and with
/// the messages of a desired state's rows, each problem naming its argument: a usage error
/// (exit 64) otherwise, before anything is sent or stored.
fn attributes(pairs: &[(String, String)]) -> Result<Attributes, ResolveError> {
    reconcile::command_line_attributes(pairs, &reconcile::Limits::default()).map_err(|err| {
        let problems = err.problems();
        usage(
            clap::error::ErrorKind::ValueValidation,
            format!(
                "{} problem(s) in the KEY=VALUE arguments (counted from 1); nothing was sent:\n{}",
                problems.len(),
                reconcile::render_problems(problems, reconcile::DEFAULT_SHOWN_PROBLEMS).trim_end()
            ),
        )
    })
}

fn usage(kind: clap::error::ErrorKind, message: String) -> ResolveError {
    ResolveError::Usage(Box::new(Cli::command().error(kind, message)))
}

/// The connection of `demo`: its own simulator, with the demo's credentials and rate (no
/// environment is read).
pub fn demo_connection(
    api_url: &str,
    client_id: String,
    secret: String,
    rate: RateSpec,
) -> anyhow::Result<Connection> {
    let explicit = ExplicitSettings {
        client_id: Some(client_id),
        client_secret: Some(SecretString::from(secret)),
        region: None,
        api_url: Some(api_url.parse().context("the simulator's URL")?),
        login_url: None,
        ca_cert: None,
    };
    Ok(Connection {
        genesys: genesys_core::Settings::resolve(&explicit, &|_| None)?,
        rate,
        auto_rate: None,
        // The demo's simulator counts in windows, as Genesys does: the window budget spends it.
        pacing: Pacing::Window,
        max_wait: Duration::from_secs(180),
        tokens: 1,
        timeout: Duration::from_secs(30),
        hints: Hints::default(),
    })
}

/// The run of `demo`: its simulator's connection, its own audit store and results directory.
pub fn demo_run(connection: Connection, audit_path: &Path, results_dir: &Path) -> RunSettings {
    RunSettings {
        audit_path: audit_path.to_path_buf(),
        command: "demo",
        concurrency: 16,
        liveness_batch: None,
        max_changes: None,
        json: false,
        verify_timeout: Duration::from_secs(10),
        verify_via: engine::VerifyVia::Event,
        results_dir: Some(results_dir.to_path_buf()),
        rate_per_minute: connection.rate.per_minute(),
        tokens_factor: 1.0,
        options: serde_json::json!({ "demo": true, "rate": connection.rate.with_burst(1).to_string() }),
        hints: connection.hints.clone().with_audit(audit_path),
        connection,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(
            ["attrsync", "get", "--client-id", "id"]
                .iter()
                .chain(args)
                .chain(&["00000000-0000-4000-8000-000000000000"]),
        )
    }

    fn connection_args(cli: &Cli) -> &ConnectionArgs {
        match &cli.command {
            Command::Get(args) => &args.connection,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_burst_comes_from_the_rate_or_the_flag_or_the_default() {
        for (args, expected) in [
            (&[][..], DEFAULT_BURST),
            (&["--rate", "100/min,burst=7"][..], 7),
            (&["--burst", "9"][..], 9),
            (&["--rate", "100/min,burst=3", "--burst", "3"][..], 3),
        ] {
            let cli = parse(args).unwrap();
            let rate = rate(connection_args(&cli)).unwrap_or_else(|_| panic!("{args:?}"));
            assert_eq!(rate.burst(), expected, "{args:?}");
        }
        let cli = parse(&["--rate", "100/min,burst=3", "--burst", "4"]).unwrap();
        let Err(ResolveError::Usage(err)) = rate(connection_args(&cli)) else {
            panic!("a contradicting burst is a usage error");
        };
        assert!(err.to_string().contains("--burst 4"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_by_the_parser_naming_the_flag() {
        for (flag, value) in [
            ("--rate", "abc"),
            ("--region", "moon-1"),
            ("--api-url", "http://gateway.example"),
            ("--api-url", "https://api.mypurecloud.ie/v1"),
            ("--login-url", "http://login.example"),
            ("--timeout", "soon"),
            ("--burst", "0"),
            ("--max-wait", "soon"),
        ] {
            let err = parse(&[flag, value]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag} {value}"
            );
            assert!(err.to_string().contains(flag), "{flag} {value}: {err}");
        }
    }

    #[test]
    fn an_unknown_pacing_is_refused_with_the_choices() {
        let err = parse(&["--pacing", "smooth"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        let text = err.to_string();
        assert!(
            text.contains("--pacing") && text.contains("window") && text.contains("even"),
            "{text}"
        );
    }

    #[test]
    fn pacing_is_window_unless_even_is_asked_for_and_max_wait_defaults_to_180s() {
        for (args, pacing, max_wait) in [
            (&[][..], Pacing::Window, 180),
            (&["--pacing", "even"][..], Pacing::Even, 180),
            (
                &["--pacing", "window", "--max-wait", "1h"][..],
                Pacing::Window,
                3600,
            ),
        ] {
            let cli = parse(args).unwrap();
            let args_ = connection_args(&cli);
            assert_eq!(Pacing::from(args_.pacing), pacing, "{args:?}");
            assert_eq!(args_.max_wait, Duration::from_secs(max_wait), "{args:?}");
        }
    }

    #[test]
    fn rate_auto_starts_at_the_default_with_the_burst_and_asks_the_namespace_given() {
        let cli = parse(&["--rate", "auto"]).unwrap();
        let args_ = connection_args(&cli);
        assert_eq!(args_.rate, RateArg::Auto);
        assert_eq!(args_.limits_namespace, "platform-api");
        assert_eq!(
            rate(args_).unwrap(),
            RateSpec::GENESYS_DEFAULT.with_burst(DEFAULT_BURST)
        );
        let cli = parse(&[
            "--rate",
            "AUTO",
            "--burst",
            "3",
            "--limits-namespace",
            "custom",
        ])
        .unwrap();
        let args_ = connection_args(&cli);
        assert_eq!(rate(args_).unwrap().burst(), 3);
        assert_eq!(args_.limits_namespace, "custom");
    }

    #[test]
    fn a_fixed_rate_has_no_auto_and_a_bad_one_mentions_auto() {
        let cli = parse(&["--rate", "600/min"]).unwrap();
        assert!(matches!(
            connection_args(&cli).rate,
            RateArg::Fixed { burst: None, .. }
        ));
        let err = parse(&["--rate", "automatic"]).unwrap_err();
        assert!(err.to_string().contains("or auto"), "{err}");
    }

    #[test]
    fn debug_of_a_connection_hides_the_secret() {
        let connection = demo_connection(
            "http://127.0.0.1:9",
            "id".into(),
            "s3cr3t".into(),
            RateSpec::default(),
        )
        .unwrap();
        assert!(!format!("{connection:?}").contains("s3cr3t"));
    }

    #[test]
    fn several_tokens_with_a_given_access_token_are_a_usage_error() {
        let token = genesys_core::Settings::resolve(
            &ExplicitSettings {
                api_url: Some("http://127.0.0.1:9".parse().unwrap()),
                ..Default::default()
            },
            &|name| (name == "GENESYSCLOUD_ACCESS_TOKEN").then(|| "tok-secret".to_owned()),
        )
        .unwrap();
        assert!(check_tokens(1, &token).is_ok());
        let Err(ResolveError::Usage(err)) = check_tokens(2, &token) else {
            panic!("--tokens 2 with a token is a usage error");
        };
        let text = err.to_string();
        assert!(
            text.contains("--tokens 2") && text.contains("GENESYSCLOUD_ACCESS_TOKEN"),
            "{text}"
        );
        assert!(!text.contains("tok-secret"), "{text}");
        let client = demo_connection(
            "http://127.0.0.1:9",
            "id".into(),
            "s".into(),
            RateSpec::default(),
        )
        .unwrap();
        assert!(check_tokens(50, &client.genesys).is_ok());
    }
}
