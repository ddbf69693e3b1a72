//! Simulator settings: the generated org, the rate limit, accepted clients and injected faults.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the simulator builds its org and behaves. `Default` is the demo org.
#[derive(Clone)]
pub struct SimConfig {
    /// Same seed, same org and (for the same request order) the same fault sequence.
    pub seed: u64,
    /// Live calls generated at start.
    pub calls: usize,
    /// Queues generated at start; every call belongs to one.
    pub queues: usize,
    /// Per-token request budget (Genesys's default is 300 per minute). 0 disables the limit.
    pub rate_per_minute: u32,
    /// GCRA burst allowance: requests a fresh token may send at once (at least 1).
    pub burst: u32,
    /// Base latency added to every `/api/v2` response.
    pub latency: Duration,
    /// Uniform jitter of `latency`, plus or minus.
    pub jitter: Duration,
    /// Accepted OAuth clients as `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// Lifetime of issued tokens (`expires_in`).
    pub token_ttl: Duration,
    pub faults: FaultConfig,
}

/// The client id of the demo org's OAuth client.
pub const DEMO_CLIENT_ID: &str = "attrsync-demo";
/// The client secret of the demo org's OAuth client (a simulator-only value).
pub const DEMO_CLIENT_SECRET: &str = "attrsync-demo-secret";

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            calls: 50,
            queues: 3,
            rate_per_minute: 300,
            burst: 50,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            clients: vec![(DEMO_CLIENT_ID.to_owned(), DEMO_CLIENT_SECRET.to_owned())],
            token_ttl: Duration::from_secs(86_399),
            faults: FaultConfig::default(),
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
            .field("queues", &self.queues)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("burst", &self.burst)
            .field("latency", &self.latency)
            .field("jitter", &self.jitter)
            .field("client_ids", &client_ids)
            .field("token_ttl", &self.token_ttl)
            .field("faults", &self.faults)
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
