//! Simulator settings: the generated org, the rate limit, accepted clients and injected faults.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::arrivals::{ArrivalNumbers, ArrivalRate, ParseArrivalRateError};
pub use crate::rate_limit::{LimitShape, ParseLimitShapeError};

/// How the simulator builds its org and behaves. `Default` is the demo org.
#[derive(Clone)]
pub struct SimConfig {
    /// Same seed, same org and (for the same request order) the same fault sequence.
    pub seed: u64,
    /// Live calls generated at start.
    pub calls: usize,
    /// Calls generated at start that ended hours to weeks before it (a CRM table's history):
    /// a read returns them with every participant disconnected, the analytics listing of live
    /// calls does not list them, the multi-id analytics read does, with `conversationEnd`.
    pub history: usize,
    /// Most conversation ids one `GET /api/v2/analytics/conversations/details?id=` may carry;
    /// more are refused with 400 `constraint.validation`. Genesys's limit is not documented [?].
    pub details_max_ids: usize,
    /// Queues generated at start; every call belongs to one.
    pub queues: usize,
    /// The queues' names, in order; empty (the default): `Sales`, `Support`, `Billing`, ...
    /// When given, there are exactly these queues (`queues` is ignored). A name may repeat (two
    /// divisions' queues of one name), which a lookup by that name finds twice.
    pub queue_names: Vec<String>,
    /// The queues' dialled numbers (each queue's campaign number, what inbound customers dial
    /// to reach it), in queue order, in E.164 (`+18005550100`); a queue beyond the list gets
    /// `+1800555` and `0100` plus its index (the fictional 555-01xx range). Calls carry it as
    /// their customer's `dnis` (`tel:+18005550100`).
    pub queue_numbers: Vec<String>,
    /// Arriving calls' customer numbers, taken in order, one per arrival (scheduled or by
    /// hand), before seeded ones (`tel:+1555` and 7 seeded digits) resume; more can be queued
    /// with `PUT /__sim/arrivals/numbers`. E.164 (`+15551230001`) is written `tel:+15551230001`;
    /// a text with a scheme (`tel:`, `sip:`) is written as given, so tests can send odd forms.
    pub arrival_customer_numbers: Vec<String>,
    /// Refuse the routing queue reads with 403 `missing.permissions` (a client without
    /// `routing:queue:view`).
    pub queues_forbidden: bool,
    /// Per-token request budget (Genesys's default is 300 per minute). 0 disables the limit.
    /// With [`LimitShape::Window`] it is scaled to `limit_window` (600 per minute over a 10 s
    /// window is 100 per 10 s).
    pub rate_per_minute: u32,
    /// How the per-token limit behaves when it is exceeded: a sliding window whose 429 says
    /// "retry in tens of seconds" (the default, as Genesys answers) or a smooth token bucket
    /// whose 429 says about one request interval.
    pub limit_shape: LimitShape,
    /// Length of the window of [`LimitShape::Window`] and of the org limit (default 60 s). A
    /// zero window limits nothing.
    pub limit_window: Duration,
    /// [`LimitShape::Bucket`] only: requests a fresh token may send at once (at least 1). The
    /// window shape has no burst: its whole budget may be sent at once.
    pub burst: u32,
    /// Org-wide budget shared by every token of the org, per minute (scaled to `limit_window`),
    /// always window-shaped; 0 (the default) is no org limit. A request is counted against the
    /// org and its token only when both have room: a refused request consumes no budget. When
    /// both refuse, `Retry-After` is the longer of the two waits.
    pub org_rate_per_minute: u32,
    /// Base latency added to every `/api/v2` response.
    pub latency: Duration,
    /// Uniform jitter of `latency`, plus or minus.
    pub jitter: Duration,
    /// The namespace whose `GET /api/v2/organizations/limits/namespaces/{namespaceName}` lists
    /// `client.credentials.token.rate.per.minute` (with `rate_per_minute`); other namespaces
    /// answer 404 `not.found`. Which namespace Genesys uses is not documented [?]: the default is
    /// attrsync's assumption, [`DEFAULT_LIMITS_NAMESPACE`].
    pub limits_namespace: String,
    /// Refuse the org limits endpoint with 403 `missing.permissions` (a client without the
    /// permission to read the org's limits).
    pub limits_forbidden: bool,
    /// Answer channel creation with 403 `missing.permissions`, as Genesys does for an OAuth
    /// client without the notification permission.
    pub channels_forbidden: bool,
    /// Accepted OAuth clients as `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// Lifetime of issued tokens (`expires_in`).
    pub token_ttl: Duration,
    pub faults: FaultConfig,
    /// New live calls per unit of time, spread over the queues round robin with seeded
    /// exponential gaps (a Poisson process); [`ArrivalRate::NONE`] (the default) adds none.
    pub arrival_rate: ArrivalRate,
    /// How long an arrived call lasts (plus or minus a seeded 10 %); `None`: until ended by hand.
    pub call_duration: Option<Duration>,
    /// From a change of a call to its queue event on the sockets (Genesys's delay is [?]).
    pub event_delay: Duration,
    /// Between two `channel.metadata` heartbeats on a socket (Genesys's is [?], about 30 s is
    /// observed); zero sends none. Real time, even with a frozen clock: a test that wants
    /// heartbeats sets a tiny interval.
    pub heartbeat_interval: Duration,
    /// A notification channel not used (subscribed or connected to) for this long is gone.
    pub channel_ttl: Duration,
    /// A call younger than this is not yet listed by the analytics details query (Genesys
    /// indexes conversations with a delay [?]).
    pub analytics_lag: Duration,
    /// Publish a queue event when only a call's attributes changed. Whether Genesys does is [?].
    pub attribute_events: bool,
    /// Serve https:// and wss:// with a test CA generated at start (see
    /// [`SimHandle::ca_cert_pem`](crate::SimHandle::ca_cert_pem)); needs the `tls` feature.
    pub tls: bool,
}

/// The namespace assumed to hold `client.credentials.token.rate.per.minute` [?].
pub const DEFAULT_LIMITS_NAMESPACE: &str = "platform-api";

/// Ids one multi-id analytics read may carry unless configured otherwise [?].
pub const DEFAULT_DETAILS_MAX_IDS: usize = 100;

/// The key of the per-token request budget in the org's limits.
pub const TOKEN_RATE_LIMIT_KEY: &str = "client.credentials.token.rate.per.minute";

/// The client id of the demo org's OAuth client.
pub const DEMO_CLIENT_ID: &str = "attrsync-demo";
/// The client secret of the demo org's OAuth client (a simulator-only value).
pub const DEMO_CLIENT_SECRET: &str = "attrsync-demo-secret";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            calls: 50,
            history: 0,
            details_max_ids: DEFAULT_DETAILS_MAX_IDS,
            queues: 3,
            queue_names: Vec::new(),
            queue_numbers: Vec::new(),
            arrival_customer_numbers: Vec::new(),
            queues_forbidden: false,
            rate_per_minute: 300,
            limit_shape: LimitShape::Window,
            limit_window: Duration::from_secs(60),
            burst: 50,
            org_rate_per_minute: 0,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            limits_namespace: DEFAULT_LIMITS_NAMESPACE.to_owned(),
            limits_forbidden: false,
            channels_forbidden: false,
            clients: vec![(DEMO_CLIENT_ID.to_owned(), DEMO_CLIENT_SECRET.to_owned())],
            token_ttl: Duration::from_secs(86_399),
            faults: FaultConfig::default(),
            arrival_rate: ArrivalRate::NONE,
            call_duration: None,
            event_delay: Duration::ZERO,
            heartbeat_interval: Duration::from_secs(30),
            channel_ttl: Duration::from_secs(24 * 3600),
            analytics_lag: Duration::ZERO,
            attribute_events: true,
            tls: false,
        }
    }
}

// Written by hand so that client secrets never reach a log.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client_ids: Vec<&str> = self.clients.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("calls", &self.calls)
            .field("history", &self.history)
            .field("details_max_ids", &self.details_max_ids)
            .field("queues", &self.queues)
            .field("queue_names", &self.queue_names)
            .field("queue_numbers", &self.queue_numbers)
            .field("arrival_customer_numbers", &self.arrival_customer_numbers)
            .field("queues_forbidden", &self.queues_forbidden)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("limit_shape", &self.limit_shape)
            .field("limit_window", &self.limit_window)
            .field("burst", &self.burst)
            .field("org_rate_per_minute", &self.org_rate_per_minute)
            .field("latency", &self.latency)
            .field("jitter", &self.jitter)
            .field("limits_namespace", &self.limits_namespace)
            .field("limits_forbidden", &self.limits_forbidden)
            .field("channels_forbidden", &self.channels_forbidden)
            .field("client_ids", &client_ids)
            .field("token_ttl", &self.token_ttl)
            .field("faults", &self.faults)
            .field("arrival_rate", &self.arrival_rate)
            .field("call_duration", &self.call_duration)
            .field("event_delay", &self.event_delay)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("channel_ttl", &self.channel_ttl)
            .field("analytics_lag", &self.analytics_lag)
            .field("attribute_events", &self.attribute_events)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Faults injected into `/api/v2` requests (never into `/oauth/token` or `/__sim/`).
///
/// Every draw comes from the simulator's seeded RNG, so a given seed and request order give the
/// same faults. In JSON (`PUT /__sim/faults`) missing fields take their defaults and
/// `visibility_lag` is a human duration such as `"250ms"` or `"2s"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Fraction of requests answered with each status, e.g. `{502: 0.05, 503: 0.05}`; the body is
    /// an `ErrorBody` with the contract's code for that status. Drawn before the request has any
    /// effect.
    pub status_rates: BTreeMap<u16, f64>,
    /// Fraction of requests whose connection is closed without any response.
    pub drop_rate: f64,
    /// Fraction of PATCHes answered 409 `request.conflict` (nothing is written).
    pub conflict_rate: f64,
    /// Fraction of successful GETs of a live call after which that call ends.
    pub end_call_rate: f64,
    /// A PATCHed value becomes visible to GETs only this long after the 202.
    #[serde(with = "human_duration")]
    pub visibility_lag: Duration,
    /// A "flow" that overwrites a key right after a PATCH wrote it.
    pub drift: Option<DriftConfig>,
}

/// After a PATCH that writes `key`, with probability `rate` a flow overwrites it with `value`,
/// so that verification sees drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftConfig {
    pub key: String,
    pub value: String,
    pub rate: f64,
}

mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
