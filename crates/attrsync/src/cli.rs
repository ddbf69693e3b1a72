//! The command line: every flag, its default and its environment variable.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use engine::queues::QueueRef;
use genesys_core::{Pacing, RateSpec, RateSpecError, Region};
use url::Url;

use crate::env;
use crate::output::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "attrsync",
    version,
    about = "Keep Genesys Cloud participant attributes on live calls equal to a desired state, and prove what changed",
    after_help = env::help_text()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG wins when set.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output (-q: errors only, -qq: nothing on stderr but the exit code).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
    /// When to use color.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: ColorChoice,
    /// Where credentials come from: accepted here, before the command, as well as after a
    /// command that connects (where its --help lists them).
    #[command(
        flatten,
        next_help_heading = "Connection options (for commands that connect)"
    )]
    pub files: CredentialFileArgs,
}

/// Files that credentials, region and API come from; only commands that connect offer them.
#[derive(Debug, Args, Clone, Default)]
pub struct CredentialFileArgs {
    /// A .env file to read credentials from (default: ./.env if present). Never overrides the environment.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// A profile of Genesys's gc CLI to take credentials and region from [env: ATTRSYNC_PROFILE].
    /// Below flags, environment and .env; none is read unless one is named.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The gc CLI configuration that --profile reads [default: ~/.gc/config.toml].
    #[arg(long, value_name = "PATH")]
    pub gc_config: Option<PathBuf>,
}

impl CredentialFileArgs {
    /// These flags, each where given, else `outer`'s (given before the command).
    pub fn or(&self, outer: &Self) -> Self {
        Self {
            env_file: self.env_file.clone().or_else(|| outer.env_file.clone()),
            profile: self.profile.clone().or_else(|| outer.profile.clone()),
            gc_config: self.gc_config.clone().or_else(|| outer.gc_config.clone()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a call's participants (id, name, purpose, state) and their attributes.
    Get(GetArgs),
    /// Set attributes on one participant of one call, then verify by reading back.
    Set(SetArgs),
    /// Show what `apply` would change, without changing anything.
    Plan(PlanArgs),
    /// Make live calls match the desired state; record every change in the audit store.
    Apply(ApplyArgs),
    /// Apply the desired state again and again (`--every 5m`), once for cron (`--once`), or
    /// continuously to the live calls of queues (`--follow --queue Q`).
    Reconcile(ReconcileArgs),
    /// List the live voice calls, optionally of one queue.
    Live(LiveArgs),
    /// Set attributes on every live call of a queue, through plan, apply, verify and audit.
    Tag(TagArgs),
    /// Put back what a run changed, only where nobody changed it since (a run of its own).
    Revert(RevertArgs),
    /// List the routing queues (optionally those whose name matches NAME) with their ids and
    /// live calls.
    Queues(QueuesArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Write the man pages into DIR (used by `cargo xtask man`).
    #[command(hide = true)]
    GenerateMan(GenerateManArgs),
    /// Run the Genesys simulator on loopback (for trying attrsync without an org).
    Sim(SimArgs),
    /// Start the simulator, then plan, apply, verify and audit a sample campaign against it.
    Demo(DemoArgs),
    /// Review the audit store: runs, targets, exports and an HTML report (read-only); prune old runs.
    Audit(AuditArgs),
    /// Check settings, network, credentials, permissions and budget, one line per check.
    Doctor(DoctorArgs),
}

impl Cli {
    /// `--env-file`, `--profile`, `--gc-config`: after the command where given, else before it.
    pub fn credential_files(&self) -> CredentialFileArgs {
        match self.command.connection() {
            Some(connection) => connection.files.or(&self.global.files),
            None => self.global.files.clone(),
        }
    }
}

impl Command {
    /// The connection flags of a command that connects to Genesys.
    pub fn connection(&self) -> Option<&ConnectionArgs> {
        match self {
            Command::Get(args) => Some(&args.connection),
            Command::Set(args) => Some(&args.connection),
            Command::Plan(args) => Some(&args.connection),
            Command::Apply(args) => Some(&args.connection),
            Command::Reconcile(args) => Some(&args.connection),
            Command::Live(args) => Some(&args.connection),
            Command::Tag(args) => Some(&args.connection),
            Command::Queues(args) => Some(&args.connection),
            Command::Revert(args) => Some(&args.connection),
            Command::Doctor(args) => Some(&args.connection),
            Command::Completions(_)
            | Command::GenerateMan(_)
            | Command::Sim(_)
            | Command::Demo(_)
            | Command::Audit(_) => None,
        }
    }
}

/// Where and how to reach Genesys Cloud.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectionArgs {
    #[command(flatten)]
    pub files: CredentialFileArgs,
    /// Genesys Cloud region: a name (us-east-1, eu-west-1, me_central_1) or a domain
    /// (mypurecloud.ie) [env: GENESYSCLOUD_REGION, GENESYS_ENVIRONMENT]
    #[arg(long, value_name = "REGION")]
    pub region: Option<Region>,
    /// API base URL, overriding the region (a gateway, or the simulator): scheme and host only
    /// (a trailing /api/v2 is dropped). http:// only to loopback.
    #[arg(long, value_name = "URL", value_parser = parse_api_url)]
    pub api_url: Option<Url>,
    /// OAuth login base URL (default: derived from the API URL). http:// only to loopback.
    #[arg(long, value_name = "URL", value_parser = parse_login_url)]
    pub login_url: Option<Url>,
    /// OAuth client id [env: GENESYSCLOUD_OAUTHCLIENT_ID, GENESYS_CLIENT_ID]. Its secret is read from the
    /// environment or .env (or the --profile of that same client), never from a flag, so that it
    /// stays out of shell history and process lists.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Request budget per token, as COUNT/UNIT[,burst=N] (units s, min, h), or `auto`. Genesys's
    /// default is 300/min per token. `,burst=N` is the same as --burst N. `auto` reads the org's
    /// client.credentials.token.rate.per.minute from its limits (see --limits-namespace) before
    /// the first request and uses it per minute; when that cannot be read, 300/min.
    #[arg(long, default_value = "300/min", value_name = "RATE")]
    pub rate: RateArg,
    /// With --rate auto: the namespace of the org's limits that holds
    /// client.credentials.token.rate.per.minute. An assumption: Genesys does not document which
    /// namespace it is (nor the permission the lookup needs).
    #[arg(long, default_value = DEFAULT_LIMITS_NAMESPACE, value_name = "NAMESPACE")]
    pub limits_namespace: String,
    /// How each token spends its --rate budget: `window` starts at most COUNT requests in any
    /// trailing UNIT, as fast as --concurrency allows (Genesys counts in windows); `even` spaces
    /// them one per UNIT/COUNT (GCRA, with --burst). A token also switches to even by itself
    /// when the server's 429s show that it paces evenly.
    #[arg(long, value_enum, default_value_t = PacingArg::Window, value_name = "PACING")]
    pub pacing: PacingArg,
    /// The longest Retry-After to wait out. A longer one (Genesys answers daily limits that way)
    /// sets its token aside; with every token aside, the command stops early, resumable (exit 4).
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub max_wait: Duration,
    /// Under even pacing (GCRA), requests that may be sent back to back before the rate applies
    /// [default: 5]. The same as `,burst=N` in --rate; giving both with different values is an
    /// error. Kept small so that network jitter never bunches requests beyond what Genesys tolerates.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
    /// Client-credentials tokens to spread requests over, each with its own budget (1-50). Only
    /// 1 with a given access token (GENESYSCLOUD_ACCESS_TOKEN, a profile's access_token).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50), value_name = "N")]
    pub tokens: u16,
    /// Time limit for one HTTP request.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust besides the system's, for login, API and
    /// notification traffic alike (a TLS-inspecting proxy's CA) [env: SSL_CERT_FILE]. Proxies
    /// come from HTTPS_PROXY, HTTP_PROXY and NO_PROXY (environment or .env).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The call to check read access on (default: the first live call of the analytics query).
    #[arg(long, value_name = "ID", value_parser = parse_uuid)]
    pub conversation: Option<String>,
    /// One JSON object with every check, for scripts.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The conversation (call) id.
    #[arg(value_parser = parse_uuid)]
    pub conversation_id: String,
    /// Print the call as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selector").args(["participant_id", "purpose", "user_id"])))]
pub struct SetArgs {
    /// The conversation (call) id.
    #[arg(value_parser = parse_uuid)]
    pub conversation_id: String,
    /// Attributes to set, as key=value (an empty value clears the key). Checked as the rows of
    /// a desired state are (keys, value sizes, keys per target, request size); a key given
    /// twice must have one value.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub attributes: Vec<(String, String)>,
    /// Select the participant by id.
    #[arg(long, value_name = "ID", value_parser = parse_uuid)]
    pub participant_id: Option<String>,
    /// Select every live participant with this purpose (default: customer).
    #[arg(long, value_name = "PURPOSE")]
    pub purpose: Option<String>,
    /// Select every live participant of this user.
    #[arg(long, value_name = "ID", value_parser = parse_uuid)]
    pub user_id: Option<String>,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub audit: AuditPathArgs,
    /// Print NDJSON events on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    /// How long to wait for a change to show (an event, then re-reads; 202 means accepted).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub verify_timeout: Duration,
    /// What verifies a change: the notification event that shows the written values (the
    /// calls' attribute topics; with --follow, the queue event), with a read only when none
    /// comes within --verify-timeout or the client may not subscribe; or a read after every
    /// change.
    #[arg(long, value_enum, default_value = "event", value_name = "HOW")]
    pub verify_via: VerifyVia,
}

/// How to read the desired state.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Purpose selected when a row names no participant_id, purpose or user_id.
    #[arg(long, default_value = "customer", value_name = "PURPOSE", value_parser = parse_purpose)]
    pub default_purpose: String,
    /// Apply the valid rows and report the invalid ones, instead of refusing the whole input.
    #[arg(long)]
    pub skip_invalid: bool,
    /// SQLite source: the table with the desired state (long form).
    #[arg(long, default_value = "desired_attributes", value_name = "TABLE")]
    pub table: String,
    /// SQLite source: a query returning conversation_id (or customer_number, dialed_number,
    /// queue_id), [participant_id|purpose|user_id], key, value.
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,
    /// Whose national numbers `customer_number` and `dialed_number` cells (and calls' numbers)
    /// written without a country code are: an ISO 3166 code such as US or GB. Without it such a
    /// number is an input error.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub default_region: Option<reconcile::number::Region>,
}

fn parse_region(value: &str) -> Result<reconcile::number::Region, String> {
    value
        .parse()
        .map_err(|err: reconcile::number::UnknownRegion| err.to_string())
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Desired state: a CSV file (wide or long form) or an SQLite database.
    pub source: PathBuf,
    #[command(flatten)]
    pub source_args: SourceArgs,
    /// Save the plan (versioned JSON) to apply later with `attrsync apply PLAN`.
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// Exit 2 when changes are pending, 0 when in sync, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Conversations read at once.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = parse_count)]
    pub concurrency: usize,
    /// Conversation ids per multi-id analytics read that finds which desired calls ended
    /// before any is read (default 100, or ATTRSYNC_LIVENESS_BATCH; Genesys documents no limit).
    /// 0 asks nothing and reads every call.
    #[arg(long, value_name = "N")]
    pub liveness_batch: Option<usize>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Desired state (CSV or SQLite), or a plan saved with `plan --out`. Not needed with --resume.
    #[arg(required_unless_present = "resume")]
    pub source: Option<PathBuf>,
    #[command(flatten)]
    pub source_args: SourceArgs,
    /// Finish an interrupted run (a run id, or `latest`).
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Conversations worked on at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
    pub concurrency: usize,
    /// Conversation ids per multi-id analytics read that finds which desired calls ended
    /// before any is read (default 100, or ATTRSYNC_LIVENESS_BATCH; Genesys documents no limit).
    /// 0 asks nothing and reads every call.
    #[arg(long, value_name = "N")]
    pub liveness_batch: Option<usize>,
    /// Write succeeded.csv, failed.csv and unprocessed.csv into this directory (created if missing).
    #[arg(long, value_name = "DIR", value_parser = parse_results_dir)]
    pub results: Option<PathBuf>,
    /// Refuse to start (exit 1, nothing sent) when the plan would change more than N
    /// participants. A desired state is then planned first and executed as that plan.
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
    #[command(flatten)]
    pub audit: AuditPathArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Print NDJSON events on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The run to revert: a run id (or a unique prefix of one), or `latest`.
    #[arg(value_name = "RUN|latest")]
    pub run: String,
    /// Print the plan (as `attrsync plan` does, `--json` as `plan --json`) and send nothing.
    /// Each key is re-checked against the live call only when the revert is applied.
    #[arg(long)]
    pub dry_run: bool,
    /// Revert only this conversation's changes; repeat for more.
    #[arg(long = "conversation", value_name = "ID")]
    pub conversations: Vec<String>,
    /// Revert only this attribute key; repeat for more.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Conversations worked on at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
    pub concurrency: usize,
    /// Write succeeded.csv, failed.csv and unprocessed.csv into this directory (created if missing).
    #[arg(long, value_name = "DIR", value_parser = parse_results_dir)]
    pub results: Option<PathBuf>,
    /// Refuse to start (exit 1, nothing sent) when the revert would change more than N
    /// participants.
    #[arg(long, value_name = "N")]
    pub max_changes: Option<usize>,
    #[command(flatten)]
    pub audit: AuditPathArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Print NDJSON events on stdout (with --dry-run: the plan as JSON).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args, Clone)]
pub struct AuditPathArgs {
    /// The audit store (SQLite) [env: ATTRSYNC_AUDIT]. Default: $XDG_STATE_HOME/attrsync/audit.sqlite.
    #[arg(long = "audit", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8642)]
    pub port: u16,
    /// Seed of the generated org and of the fault sequence.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Live calls in the generated org.
    #[arg(long, default_value_t = 50)]
    pub calls: usize,
    /// Calls that ended an hour to three weeks before the simulator started (a CRM table's
    /// history): a read returns them with every participant disconnected, the analytics
    /// listing of live calls leaves them out. `GET /__sim/calls` lists them with `ended`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub history: usize,
    /// Most conversation ids one `GET /api/v2/analytics/conversations/details?id=` may carry;
    /// more are refused with a 400. Genesys's own limit is not documented (unverified).
    #[arg(long, default_value_t = genesys_sim::DEFAULT_DETAILS_MAX_IDS, value_name = "N")]
    pub details_max_ids: usize,
    /// Queues in the generated org (named Sales, Support, Billing, Retention, ...).
    #[arg(long, default_value_t = 3)]
    pub queues: usize,
    /// The queues' names instead, one queue per name (repeat the flag, or separate with
    /// commas); --queues is then ignored.
    #[arg(long = "queue-name", value_name = "NAME", value_delimiter = ',')]
    pub queue_names: Vec<String>,
    /// Answer the routing queue reads with 403 missing.permissions (a client without
    /// routing:queue:view).
    #[arg(long)]
    pub forbid_queues: bool,
    /// Per-token request budget the simulator enforces with Genesys's 429.
    #[arg(long, default_value = "300/min", value_name = "RATE")]
    pub rate: RateSpec,
    /// How the per-token limit behaves. window: at most the budget in any trailing
    /// --limit-window (sliding), all of it usable at once; a 429 says to retry when the oldest
    /// request leaves the window (tens of seconds, as Genesys answers). bucket: a smooth token
    /// bucket with --burst; a 429 says about one request interval (1 s).
    #[arg(long, default_value = "window", value_name = "window|bucket")]
    pub limit_shape: genesys_sim::LimitShape,
    /// Window length of --limit-shape window and of --org-rate; the budget is --rate scaled to
    /// it (600/min over 10s is 100 per 10 s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub limit_window: Duration,
    /// Burst the simulator tolerates above the rate (--limit-shape bucket only).
    #[arg(long, default_value_t = 50)]
    pub burst: u32,
    /// The namespace of the org's limits that lists --rate per minute as
    /// client.credentials.token.rate.per.minute (for attrsync's --rate auto); other namespaces
    /// answer 404.
    #[arg(long, default_value = DEFAULT_LIMITS_NAMESPACE, value_name = "NAMESPACE")]
    pub limits_namespace: String,
    /// Refuse the org's limits with 403 missing.permissions (--rate auto then falls back).
    #[arg(long)]
    pub forbid_limits: bool,
    /// Org-wide budget shared by all tokens, as COUNT/UNIT like --rate, always a window of
    /// --limit-window [default: no org limit].
    #[arg(long, value_name = "RATE")]
    pub org_rate: Option<RateSpec>,
    /// Added latency per API response.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// +- uniform jitter on the latency.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub jitter: Duration,
    /// Token lifetime.
    #[arg(long, default_value = "86399s", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// Answer this fraction of API requests with STATUS, e.g. --fail 503=0.05 (repeatable).
    #[arg(long, value_name = "STATUS=RATE", value_parser = parse_status_rate)]
    pub fail: Vec<(u16, f64)>,
    /// Fraction of API requests whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Fraction of PATCHes answered 409 request.conflict.
    #[arg(long, default_value_t = 0.0)]
    pub conflict_rate: f64,
    /// Fraction of call reads after which the call ends.
    #[arg(long, default_value_t = 0.0)]
    pub end_call_rate: f64,
    /// Delay before a PATCHed value is visible to reads.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub visibility_lag: Duration,
    /// A flow that overwrites KEY with VALUE after a fraction RATE of the PATCHes that write KEY.
    #[arg(long, value_name = "KEY=VALUE@RATE", value_parser = parse_drift)]
    pub drift: Option<(String, String, f64)>,
    /// New live calls entering the queues (round robin, seeded exponential gaps), as COUNT/UNIT
    /// with unit s, min or h, e.g. 2/s or 120/min [default: none].
    #[arg(long, value_name = "RATE")]
    pub arrival_rate: Option<genesys_sim::ArrivalRate>,
    /// How long an arrived call lasts, plus or minus 10 % [default: until ended through /__sim/].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub call_duration: Option<Duration>,
    /// Delay from a change of a call to its queue event on the notification sockets.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub event_delay: Duration,
    /// Interval of the channel.metadata heartbeats on a notification socket (0s: none).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,
    /// A notification channel not subscribed or connected to for this long expires.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub channel_ttl: Duration,
    /// A call younger than this is not yet listed by the analytics query (Genesys indexes
    /// conversations with a delay).
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub analytics_lag: Duration,
    /// Publish no event when only a call's attributes changed, on the queue's calls topic or the
    /// conversation's attribute topic (whether Genesys publishes them is unverified).
    #[arg(long)]
    pub no_attribute_events: bool,
    /// Serve https:// and wss:// on loopback with a certificate for localhost and 127.0.0.1,
    /// signed by a test CA generated now; its certificate is written to --tls-ca (give that file
    /// to attrsync's --ca-cert).
    #[arg(long)]
    pub tls: bool,
    /// Where --tls writes the test CA's certificate (PEM) [default: attrsync-sim-PORT-ca.pem in
    /// the temporary directory].
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Live calls in the demo org.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Seed of the demo org.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Request budget of the demo (both the simulator's and attrsync's).
    #[arg(long, default_value = "1200/min", value_name = "RATE")]
    pub rate: RateSpec,
    /// Where to keep the demo's files (desired CSV, audit store). Default: a new temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("schedule").args(["every", "once", "follow"]).required(true)))]
pub struct ReconcileArgs {
    /// Desired state: a CSV file (wide or long form) or an SQLite database, re-read every time.
    pub source: PathBuf,
    #[command(flatten)]
    pub source_args: SourceArgs,
    /// Reconcile every DURATION (e.g. 5m, 1h) until SIGTERM or Ctrl-C.
    #[arg(long, value_parser = parse_interval, value_name = "DURATION")]
    pub every: Option<Duration>,
    /// Reconcile once and exit with that run's exit code (for cron).
    #[arg(long)]
    pub once: bool,
    /// Keep every live call of the --queue queues equal to the source, continuously, until
    /// stopped (Ctrl-C or SIGTERM: the normal end, exit 0, or 3 if a target failed or drifted):
    /// calls are planned from their notification events as they arrive, and a new version of
    /// the source (a committed SQLite write, a CSV renamed into place) is applied within a poll
    /// to the live calls whose desired values it changed. A version that does not validate is
    /// refused with its problems; the previous one stays in force.
    #[arg(long, requires = "queues")]
    pub follow: bool,
    /// With --follow: a queue whose calls are followed, by id or name (`attrsync queues` lists
    /// them); repeat for more queues. Checked before anything is sent or recorded.
    #[arg(long = "queue", value_name = "QUEUE", value_parser = parse_queue, conflicts_with_all = ["every", "once"])]
    pub queues: Vec<QueueRef>,
    /// With --follow: how often the source is looked at for a new version (an SQLite
    /// data_version, a CSV file's identity) [default: 200ms, or ATTRSYNC_POLL_INTERVAL].
    #[arg(long, value_parser = parse_poll_interval, requires = "follow", value_name = "DURATION")]
    pub poll_interval: Option<Duration>,
    /// With --follow: after every (re)connection the queues are listed at once and again after
    /// this long, for calls the analytics query had not indexed yet.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, requires = "follow", value_name = "DURATION")]
    pub backfill_lag: Duration,
    /// With --follow: a notification socket that sends nothing, not even a heartbeat, for this
    /// long is replaced (and the queues backfilled).
    #[arg(long, default_value = "95s", value_parser = parse_interval, requires = "follow", value_name = "DURATION")]
    pub socket_idle_timeout: Duration,
    /// With --follow: how long ago a live call may have started.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, requires = "follow", value_name = "DURATION")]
    pub lookback: Duration,
    /// Write Prometheus text-format metrics here (atomically), e.g. for node_exporter's
    /// textfile collector: after every run, or with --follow at least every 10 s.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// With --every or --follow: serve `/metrics` (as --metrics-file writes them) and
    /// `/healthz` (200 while the loop is alive, 503 with the reason otherwise) on this address,
    /// e.g. 127.0.0.1:9464.
    #[arg(long, conflicts_with = "once", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Refuse to start (exit 1, nothing sent) when the plan would change more than N
    /// participants. A desired state is then planned first and executed as that plan.
    #[arg(long, value_name = "N", conflicts_with = "follow")]
    pub max_changes: Option<usize>,

    /// Conversations worked on at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
    pub concurrency: usize,
    /// Conversation ids per multi-id analytics read that finds which desired calls ended
    /// before any is read (default 100, or ATTRSYNC_LIVENESS_BATCH; Genesys documents no limit).
    /// 0 asks nothing and reads every call.
    #[arg(long, value_name = "N", conflicts_with = "follow")]
    pub liveness_batch: Option<usize>,
    #[command(flatten)]
    pub audit: AuditPathArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Only calls that have been in this queue: its id or its name (`attrsync queues` lists
    /// them).
    #[arg(long, value_name = "QUEUE", value_parser = parse_queue)]
    pub queue: Option<QueueRef>,
    /// How long ago a live call may have started.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lookback: Duration,
    /// Print the calls as a JSON array.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print a desired-state skeleton (conversation_id,purpose with customer rows) to fill in.
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Only queues with this whole name, ignoring case; `*` at either end is a wildcard
    /// (`Sales*`, `*support*`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// How long ago a live call may have started.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lookback: Duration,
    /// Print the queues as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// A queue whose live calls get the attributes, by id or name (`attrsync queues` lists
    /// them); repeat for more queues. Checked before anything is sent or recorded.
    #[arg(long = "queue", required = true, value_name = "QUEUE", value_parser = parse_queue)]
    pub queues: Vec<QueueRef>,
    /// Attributes to set, as key=value (an empty value clears the key). Checked as the rows of
    /// a desired state are (keys, value sizes, keys per target, request size); a key given
    /// twice must have one value.
    #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub attributes: Vec<(String, String)>,
    /// The participants of each call that get the attributes.
    #[arg(long, default_value = "customer", value_name = "PURPOSE")]
    pub purpose: String,
    /// Print the plan and send nothing.
    #[arg(long, conflicts_with = "follow")]
    pub dry_run: bool,
    /// Keep tagging every call that enters the queues, through the Notification API, until
    /// stopped (Ctrl-C or SIGTERM: the normal end, exit 0, or 3 if a target failed or drifted).
    #[arg(long)]
    pub follow: bool,
    /// With --follow: after every (re)connection the queues are listed at once and again after
    /// this long, for calls the analytics query had not indexed yet.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, requires = "follow", value_name = "DURATION")]
    pub backfill_lag: Duration,
    /// With --follow: a notification socket that sends nothing, not even a heartbeat, for this
    /// long is replaced (and the queues backfilled). Genesys's heartbeat interval is unverified
    /// (about 30 s is commonly observed).
    #[arg(long, default_value = "95s", value_parser = parse_interval, requires = "follow", value_name = "DURATION")]
    pub socket_idle_timeout: Duration,
    /// With --follow: a Prometheus text file rewritten at least every 10 s (calls seen, tagged,
    /// verified by event or read, skipped, failed, 429s, event lag); its age is a liveness signal.
    #[arg(long, requires = "follow", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// With --follow: serve `/metrics` (Prometheus) and `/healthz` (200 while the follow's loop
    /// is alive, 503 otherwise) on this address, e.g. 127.0.0.1:9464.
    #[arg(long, requires = "follow", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// NDJSON events on stdout (one per target, and the run's start and end).
    #[arg(long)]
    pub json: bool,
    /// How long ago a live call may have started.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lookback: Duration,
    /// Conversations worked on at once.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = parse_count)]
    pub concurrency: usize,
    #[command(flatten)]
    pub audit: AuditPathArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct GenerateManArgs {
    /// Directory to write attrsync.1 and attrsync-COMMAND.1 into (created if missing).
    pub dir: PathBuf,
}

/// `--pacing`: the values of [`Pacing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PacingArg {
    Window,
    Even,
}

impl From<PacingArg> for Pacing {
    fn from(arg: PacingArg) -> Self {
        match arg {
            PacingArg::Window => Pacing::Window,
            PacingArg::Even => Pacing::Even,
        }
    }
}

/// The default of `--limits-namespace`: an assumption, since Genesys does not document which
/// namespace of the org's limits holds `client.credentials.token.rate.per.minute` [?].
pub const DEFAULT_LIMITS_NAMESPACE: &str = "platform-api";

/// A `--rate` value: a fixed rate (with the burst when it was written into it, `,burst=N`, so
/// that the settings can tell it from `--burst`), or `auto`: the org's own per-token limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateArg {
    Fixed { spec: RateSpec, burst: Option<u32> },
    Auto,
}

/// A `--rate` value that is neither a rate nor `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}, or auto (the org's own limit)")]
pub struct RateArgError(RateSpecError);

impl FromStr for RateArg {
    type Err = RateArgError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("auto") {
            return Ok(RateArg::Auto);
        }
        let spec: RateSpec = text.parse().map_err(RateArgError)?;
        Ok(RateArg::Fixed {
            spec,
            burst: text.contains(',').then(|| spec.burst()),
        })
    }
}

impl std::fmt::Display for RateArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateArg::Fixed { spec, .. } => write!(f, "{spec}"),
            RateArg::Auto => f.write_str("auto"),
        }
    }
}

/// `--api-url`: checked by the same rules as the settings (https or loopback http, no path but
/// /api/v2); kept as given, the settings normalise it (and log that they did).
fn parse_api_url(text: &str) -> Result<Url, genesys_core::SettingsError> {
    genesys_core::settings::parse_api_url(text)?;
    Ok(Url::parse(text.trim()).expect("parse_api_url accepted it"))
}

fn parse_login_url(text: &str) -> Result<Url, genesys_core::SettingsError> {
    genesys_core::settings::parse_login_url(text)
}

/// `--results DIR`: a directory, or a path where one can be created; never an existing file,
/// and never empty (which would scatter the files into the current directory).
fn parse_results_dir(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("the results directory is empty: name a directory".to_owned());
    }
    let path = PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(meta) if !meta.is_dir() => Err(format!("`{text}` exists and is not a directory")),
        _ => Ok(path),
    }
}

/// A queue id (a UUID) or name; whether the org has it is checked once connected.
fn parse_queue(s: &str) -> Result<QueueRef, String> {
    s.parse()
        .map_err(|e: engine::queues::QueueRefError| e.to_string())
}

/// A count of at least 1 (`--concurrency`).
fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

/// A participant purpose: not empty.
fn parse_purpose(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the purpose is empty: name one, e.g. customer".to_owned());
    }
    Ok(s.to_owned())
}

/// A reconcile interval or a socket's idle timeout: a humantime duration of at least one second.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if interval < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than the minimum interval of 1s"));
    }
    Ok(interval)
}

/// `--poll-interval`: a humantime duration of at least 10 ms (a source is not looked at in a
/// busy loop).
pub fn parse_poll_interval(s: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}`: {e}"))?;
    if interval < Duration::from_millis(10) {
        return Err(format!("`{s}` is shorter than the minimum of 10ms"));
    }
    Ok(interval)
}

/// An age of runs (`--older-than`): a bare number is refused with the unit a retention means
/// (days), not humantime's "90sec or 90ms".
fn parse_age(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "a number needs a unit: {text}days (or {text}h, {text}weeks)"
        ));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{s}`: {e}"))
}

/// A conversation, participant or user id (`get`, `set`, `doctor --conversation`): a UUID in
/// any of its forms, kept hyphenated and lowercase, so that nothing else is ever sent.
fn parse_uuid(text: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(text.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| format!("`{text}` is not a UUID"))
}

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("`{s}` is not a fraction between 0 and 1"))
    }
}

fn parse_status_rate(s: &str) -> Result<(u16, f64), String> {
    let (status, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not STATUS=RATE, e.g. 503=0.05"))?;
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (400..600).contains(s))
        .ok_or_else(|| format!("`{status}` is not an HTTP error status (400-599)"))?;
    Ok((status, parse_fraction(rate)?))
}

fn parse_drift(s: &str) -> Result<(String, String, f64), String> {
    let (kv, rate) = s.rsplit_once('@').unwrap_or((s, "1"));
    let (k, v) = parse_key_value(kv)?;
    Ok((k, v, parse_fraction(rate)?))
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Read-only views of the audit store (none creates or changes a store), `upgrade` and `prune`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// One line per run, newest first: id, start, duration, command, source, outcomes, exit code.
    Runs(AuditRunsArgs),
    /// One run's summary (options, tool, host, operator, requests) and its targets.
    Show(AuditShowArgs),
    /// Targets across runs, most recently updated first.
    List(AuditListArgs),
    /// Targets as CSV (one row per target and key), JSON or NDJSON on stdout.
    Export(AuditExportArgs),
    /// One self-contained HTML file with a run's request rate, outcomes, latency and failures.
    Report(AuditReportArgs),
    /// Migrate a store written by an older attrsync so the views above can read it (the one
    /// `audit` command that writes).
    Upgrade(AuditUpgradeArgs),
    /// Delete whole runs that ended more than DURATION ago, with their targets, input rows and
    /// requests; never a run in progress. Shows what it would delete unless --yes.
    Prune(AuditPruneArgs),
}

#[derive(Debug, Args)]
pub struct AuditPruneArgs {
    /// Prune runs that ended more than this long ago: 90days, 12weeks, 36h.
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Duration,
    /// Delete them. Without it nothing is deleted: the runs and rows that would be are shown.
    #[arg(long)]
    pub yes: bool,
    /// Print what would be (or was) deleted as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

#[derive(Debug, Args)]
pub struct AuditUpgradeArgs {
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

#[derive(Debug, Args)]
pub struct AuditRunsArgs {
    /// Show at most this many runs.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u32,
    /// Print the runs as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

#[derive(Debug, Args)]
pub struct AuditShowArgs {
    /// A run id, a unique prefix of one, or `latest`.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Only targets with this status (repeatable, or comma-separated).
    #[arg(long = "status", value_name = "STATUS", value_delimiter = ',', value_parser = target_status_parser())]
    pub statuses: Vec<audit::TargetStatus>,
    /// Show at most this many targets, in plan order (0: all of them). A long `tag --follow`
    /// run may have hundreds of thousands; `audit list` and `audit export` filter and page.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub limit: u32,
    /// Print the run and its targets as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

/// Which targets `audit list` and `audit export` return; every filter narrows the result.
#[derive(Debug, Args, Clone)]
pub struct AuditFilterArgs {
    /// Only targets of this run (an id, a unique prefix of one, or `latest`).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Only targets of this conversation.
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// Only targets resolved to this participant.
    #[arg(long, value_name = "ID")]
    pub participant: Option<String>,
    /// Only targets with this status (repeatable, or comma-separated).
    #[arg(long = "status", value_name = "STATUS", value_delimiter = ',', value_parser = target_status_parser())]
    pub statuses: Vec<audit::TargetStatus>,
    /// Only targets that manage this attribute key.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Only targets last updated at or after TIME: RFC 3339 (2026-11-24T10:00:00Z) or a duration ago (2h, 30m).
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub since: Option<audit::UnixMillis>,
    /// Only targets last updated before TIME: RFC 3339 or a duration ago.
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub until: Option<audit::UnixMillis>,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[command(flatten)]
    pub filters: AuditFilterArgs,
    /// Show at most this many targets (the most recently updated).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// Print the targets as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: ExportFormat,
    #[command(flatten)]
    pub filters: AuditFilterArgs,
    /// Export at most this many targets (default: all).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One row per target and managed key, formula-safe for spreadsheets.
    Csv,
    /// One JSON array of targets.
    Json,
    /// One JSON target per line.
    Ndjson,
}

#[derive(Debug, Args)]
pub struct AuditReportArgs {
    /// A run id, a unique prefix of one, or `latest`.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    #[command(flatten)]
    pub audit: AuditPathArgs,
}

fn target_status_parser() -> impl clap::builder::TypedValueParser<Value = audit::TargetStatus> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(
        audit::TargetStatus::ALL.map(audit::TargetStatus::as_str),
    )
    .try_map(|status| status.parse::<audit::TargetStatus>())
}

/// `--since`/`--until`: an RFC 3339 instant, or a duration before now.
fn parse_instant(text: &str) -> Result<audit::UnixMillis, String> {
    instant_relative_to(text, audit::UnixMillis::now())
}

fn instant_relative_to(text: &str, now: audit::UnixMillis) -> Result<audit::UnixMillis, String> {
    if let Ok(instant) = text.parse::<audit::UnixMillis>() {
        return Ok(instant);
    }
    humantime::parse_duration(text)
        .map(|ago| now.saturating_sub(ago))
        .map_err(|_| {
            format!("`{text}` is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor a duration ago (2h)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_retention_age_without_a_unit_is_refused_with_days_as_the_example() {
        assert_eq!(
            parse_age("90").unwrap_err(),
            "a number needs a unit: 90days (or 90h, 90weeks)"
        );
        assert_eq!(
            parse_age("90days").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert!(parse_age("ninety").is_err());
    }

    #[test]
    fn key_value_pairs_allow_empty_values_and_equals_signs() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(parse_key_value("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn ids_are_uuids_kept_hyphenated_and_lowercase() {
        let id = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";
        assert_eq!(parse_uuid(&id.to_uppercase()).unwrap(), id);
        assert_eq!(parse_uuid(&format!(" {id} ")).unwrap(), id);
        assert_eq!(parse_uuid(&id.replace('-', "")).unwrap(), id);
        assert_eq!(
            parse_uuid("NOT-A-UUID").unwrap_err(),
            "`NOT-A-UUID` is not a UUID"
        );
        for args in [
            &["attrsync", "get", "NOT-A-UUID"][..],
            &["attrsync", "doctor", "--conversation", "x"],
            &["attrsync", "set", "x", "k=v"],
            &["attrsync", "set", id, "--participant-id", "x", "k=v"],
            &["attrsync", "set", id, "--user-id", "x", "k=v"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
    }

    #[test]
    fn fault_flags_parse_and_reject_nonsense() {
        assert_eq!(parse_status_rate("503=0.05").unwrap(), (503, 0.05));
        assert!(parse_status_rate("200=0.1").is_err());
        assert!(parse_status_rate("503=2").is_err());
        assert_eq!(
            parse_drift("campaign=flow@0.5").unwrap(),
            ("campaign".into(), "flow".into(), 0.5)
        );
        assert_eq!(parse_drift("k=v").unwrap().2, 1.0);
    }

    #[test]
    fn audit_time_filters_take_rfc3339_or_a_duration_ago() {
        let now = audit::UnixMillis::from_millis(10_000_000);
        assert_eq!(
            instant_relative_to("2h", now),
            Ok(audit::UnixMillis::from_millis(10_000_000 - 7_200_000))
        );
        assert_eq!(
            instant_relative_to("1970-01-01T00:00:01Z", now),
            Ok(audit::UnixMillis::from_millis(1_000))
        );
        assert!(instant_relative_to("yesterday-ish", now).is_err());
    }
}

/// How a run verifies a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyVia {
    /// The notification event that shows the written values; a read when none comes in time.
    Event,
    /// A read after every change.
    Get,
}

impl From<VerifyVia> for engine::VerifyVia {
    fn from(via: VerifyVia) -> Self {
        match via {
            VerifyVia::Event => engine::VerifyVia::Event,
            VerifyVia::Get => engine::VerifyVia::Get,
        }
    }
}
