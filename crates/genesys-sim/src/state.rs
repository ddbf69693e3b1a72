//! The simulator's shared state: the org, issued tokens, faults, the request log. One mutex,
//! never held across an `.await`. Notification channels, arrivals and the timed work are in
//! `state/live.rs`.

mod live;

pub use live::ArrivalStatus;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use genesys_models::{
    Attributes, CallConversation, Conversation, DomainEntityRef, LimitEntity, LimitsEntityListing,
    ParticipantState, TokenResponse,
};
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::arrivals::Arrivals;
use crate::bus::{Bus, millis};
use crate::call::{CallRecord, ParticipantRecord};
use crate::clock::SimClock;
use crate::config::{FaultConfig, SimConfig, TOKEN_RATE_LIMIT_KEY};
use crate::error::ApiError;
use crate::org::{self, SimQueue};
use crate::rate_limit::{Limit, LimitShape};

/// The permission a 403 of the org limits endpoint names. Which permission Genesys requires is
/// not documented [?]: this name is the simulator's, for the message only.
const SIM_LIMITS_PERMISSION: &str =
    "[organization:limits:view (simulated: the real permission is undocumented)]";

/// A call as the simulator knows it: the true current state, including attribute writes that
/// reads do not see yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimCall {
    pub conversation: CallConversation,
    pub ended: bool,
    pub queue_id: Option<String>,
    /// Simulated milliseconds since the start at which the call arrived (`arrival_rate` or
    /// `/__sim/arrivals/call`); `None` for the calls generated at start and added by tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_at_ms: Option<u64>,
    /// Simulated milliseconds since the start at which an attribute write last became visible
    /// to reads (after `visibility_lag`): arrival to tagged is this minus `arrived_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes_visible_at_ms: Option<u64>,
}

/// One request the simulator answered (admin requests are not logged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// 1, 2, 3, ... in the order responses were decided.
    pub seq: u64,
    /// Simulated milliseconds since the simulator started.
    pub at_ms: u64,
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string, undecoded, when there was one (e.g. the ids of a multi-id read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The HTTP status sent; 0 when the connection was dropped instead.
    pub status: u16,
    /// The connection was closed without a response (a `drop_rate` fault).
    pub dropped: bool,
    /// The `Retry-After` header sent with a 429, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// An opaque id of the bearer token used (`t1`, `t2`, ...), never the token itself.
    pub token_id: Option<String>,
    /// The parsed JSON body of a PATCH.
    pub body: Option<serde_json::Value>,
    /// The `ININ-Correlation-Id` of the response.
    pub correlation_id: String,
    /// The client's address (its TCP peer): tells which connection, e.g. which proxy tunnel,
    /// carried the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
}

/// What the fault RNG decided for one `/api/v2` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    DropConnection,
    Status(u16),
}

/// A call a test puts into the org exactly as it needs it (see [`SimState::add_call`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedCall {
    /// A UUID.
    pub id: String,
    /// Ended calls have every participant disconnected.
    pub ended: bool,
    pub participants: Vec<SeedParticipant>,
}

/// One participant of a [`SeedCall`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedParticipant {
    /// A UUID.
    pub id: String,
    /// e.g. `customer`, `agent`, `acd`, `ivr`.
    pub purpose: String,
    /// The user of an agent participant.
    pub user_id: Option<String>,
    /// Still on the call (`connected`) or already left (`disconnected`).
    pub connected: bool,
    pub attributes: Attributes,
}

/// Where the request hold set by [`SimState::hold_after`] stands.
#[derive(Debug, Default)]
struct Gate {
    /// Requests (outside `/__sim/`) let through so far.
    admitted: u64,
    /// Of those, the ones answered (logged).
    completed: u64,
    /// Requests beyond this count are held.
    limit: Option<u64>,
    /// Requests being held now.
    held: u64,
    /// Bumped by every release: a held request waits for the generation it was held in to end.
    generation: u64,
}

/// What [`SimState::admit`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Go,
    /// Held until the hold of this generation is released.
    Held(u64),
}

/// Handle on the running simulator's state: a cheap clone, for tests and the admin surface.
#[derive(Clone)]
pub struct SimState {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("seed", &self.shared.seed)
            .finish_non_exhaustive()
    }
}

struct Shared {
    seed: u64,
    clock: SimClock,
    rate_per_minute: u32,
    limit_shape: LimitShape,
    limit_window: Duration,
    burst: u32,
    latency: Duration,
    jitter: Duration,
    limits_namespace: String,
    limits_forbidden: bool,
    queues_forbidden: bool,
    channels_forbidden: bool,
    clients: Vec<(String, String)>,
    token_ttl: Duration,
    /// Where the simulator listens: the origin of the channels' `connectUri`.
    addr: SocketAddr,
    /// `wss` when the simulator serves TLS, else `ws`: the scheme of the `connectUri`.
    socket_scheme: &'static str,
    attribute_events: bool,
    analytics_lag: Duration,
    details_max_ids: usize,
    heartbeat_interval: Duration,
    inner: Mutex<Inner>,
    /// Bumped whenever the request gate changes, for tests that wait on it.
    gate_events: tokio::sync::watch::Sender<u64>,
    /// Wakes the task that runs timed work (`driver.rs`) when something new is scheduled.
    wake: tokio::sync::Notify,
}

struct Inner {
    queues: Vec<SimQueue>,
    /// Oldest first.
    calls: Vec<CallRecord>,
    call_index: HashMap<String, usize>,
    /// Keyed by the bearer token.
    tokens: HashMap<String, TokenRecord>,
    tokens_issued: u64,
    log: Vec<LoggedRequest>,
    /// The peer of every notification socket accepted, oldest first.
    socket_peers: Vec<Option<SocketAddr>>,
    next_seq: u64,
    faults: FaultConfig,
    fault_rng: StdRng,
    latency_rng: StdRng,
    /// Added to real elapsed time (see `SimState::advance_clock`).
    clock_offset: Duration,
    /// Real elapsed time when `SimState::freeze_clock` was called: it stands in for real time.
    frozen_at: Option<Duration>,
    /// The org-wide budget shared by every token (`SimConfig::org_rate_per_minute`).
    org_limit: Limit,
    gate: Gate,
    bus: Bus,
    arrivals: Arrivals,
    /// `(visible_at, call index)` of accepted writes not yet visible; an entry whose writes a
    /// read already made visible is skipped.
    promotions: BTreeSet<(Duration, usize)>,
    /// `(end time, call index)` of arrived calls with a duration.
    ends: BTreeSet<(Duration, usize)>,
}

struct TokenRecord {
    id: String,
    /// The OAuth client it was issued to (notification channels are counted per client).
    client_id: String,
    expires_at: Duration,
    /// Set by `expire_tokens`; the record stays so that `issued_tokens` still lists it.
    revoked: bool,
    limit: Limit,
}

// Distinct streams, so that e.g. latency jitter never shifts the fault sequence.
const ORG_STREAM: u64 = 0x6f72_6721;
const FAULT_STREAM: u64 = 0x6661_756c;
const LATENCY_STREAM: u64 = 0x6c61_7465;
const ARRIVAL_STREAM: u64 = 0x6172_7269;
const CHANNEL_STREAM: u64 = 0x6368_616e;
const HISTORY_STREAM: u64 = 0x6869_7374;

/// Who sent an authenticated `/api/v2` request; put into the request by the API gate.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The opaque token id of the request log (`t1`, ...).
    pub(crate) token_id: String,
    pub(crate) client_id: String,
}

fn chance(rng: &mut StdRng, rate: f64) -> bool {
    rate > 0.0 && rng.random::<f64>() < rate
}

impl SimState {
    pub(crate) fn new(config: &SimConfig, addr: SocketAddr) -> Self {
        let clock = SimClock::new();
        let mut org_rng = StdRng::seed_from_u64(config.seed ^ ORG_STREAM);
        let org = org::generate(
            &mut org_rng,
            config.queues,
            &config.queue_names,
            &config.queue_numbers,
            config.calls,
            clock.started_wall(),
        );
        let mut history_rng = StdRng::seed_from_u64(config.seed ^ HISTORY_STREAM);
        // Oldest first: the history, then the live calls.
        let mut calls = org::history(
            &mut history_rng,
            &org.queues,
            config.history,
            clock.started_wall(),
        );
        calls.extend(org.calls);
        let call_index = calls
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let inner = Inner {
            queues: org.queues,
            calls,
            call_index,
            tokens: HashMap::new(),
            tokens_issued: 0,
            log: Vec::new(),
            socket_peers: Vec::new(),
            next_seq: 1,
            faults: config.faults.clone(),
            fault_rng: StdRng::seed_from_u64(config.seed ^ FAULT_STREAM),
            latency_rng: StdRng::seed_from_u64(config.seed ^ LATENCY_STREAM),
            clock_offset: Duration::ZERO,
            frozen_at: None,
            org_limit: Limit::new(
                LimitShape::Window,
                config.org_rate_per_minute,
                1,
                config.limit_window,
            ),
            gate: Gate::default(),
            bus: Bus::new(
                config.seed ^ CHANNEL_STREAM,
                config.channel_ttl,
                config.event_delay,
            ),
            arrivals: Arrivals::new(
                config.seed ^ ARRIVAL_STREAM,
                config.arrival_rate,
                config.call_duration,
                config.arrival_customer_numbers.clone(),
                Duration::ZERO,
            ),
            promotions: BTreeSet::new(),
            ends: BTreeSet::new(),
        };
        Self {
            shared: Arc::new(Shared {
                seed: config.seed,
                clock,
                rate_per_minute: config.rate_per_minute,
                limit_shape: config.limit_shape,
                limit_window: config.limit_window,
                burst: config.burst,
                latency: config.latency,
                jitter: config.jitter,
                limits_namespace: config.limits_namespace.clone(),
                limits_forbidden: config.limits_forbidden,
                queues_forbidden: config.queues_forbidden,
                channels_forbidden: config.channels_forbidden,
                clients: config.clients.clone(),
                token_ttl: config.token_ttl,
                addr,
                socket_scheme: if config.tls { "wss" } else { "ws" },
                attribute_events: config.attribute_events,
                analytics_lag: config.analytics_lag,
                details_max_ids: config.details_max_ids,
                heartbeat_interval: config.heartbeat_interval,
                inner: Mutex::new(inner),
                gate_events: tokio::sync::watch::Sender::new(0),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the plain data half-updated in a way that
        // matters to a simulator, so keep serving.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self, inner: &Inner) -> Duration {
        match inner.frozen_at {
            Some(frozen) => frozen + inner.clock_offset,
            None => self.shared.clock.now(inner.clock_offset),
        }
    }

    // ---- public, for tests and the admin surface ----

    /// Every call, in its true current state.
    pub fn calls(&self) -> Vec<SimCall> {
        self.settled().0.calls.iter().map(sim_call).collect()
    }

    /// One call, in its true current state.
    pub fn call(&self, conversation_id: &str) -> Option<SimCall> {
        let (inner, _) = self.settled();
        let index = *inner.call_index.get(conversation_id)?;
        Some(sim_call(&inner.calls[index]))
    }

    /// The generated queues.
    pub fn queues(&self) -> Vec<SimQueue> {
        self.lock().queues.clone()
    }

    /// Every logged request, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// The client address (TCP peer) of every notification socket accepted, oldest first; `None`
    /// where it was not known.
    pub fn socket_peers(&self) -> Vec<Option<SocketAddr>> {
        self.lock().socket_peers.clone()
    }

    pub(crate) fn record_socket_peer(&self, peer: Option<SocketAddr>) {
        self.lock().socket_peers.push(peer);
    }

    /// Ends a call now (its queue's channels get the event). Returns `false` when there is no
    /// such call.
    pub fn end_call(&self, conversation_id: &str) -> bool {
        let (mut inner, now) = self.settled();
        let Some(&index) = inner.call_index.get(conversation_id) else {
            return false;
        };
        self.end_call_at(&mut inner, index, now);
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
        true
    }

    /// A flow (or an agent's script) sets a participant's attributes now, outside the API: no
    /// request is logged, the change is visible at once and events show it. Returns `false`
    /// when there is no such call or participant.
    pub fn flow_sets_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: Attributes,
    ) -> bool {
        let (mut inner, now) = self.settled();
        let Some(&index) = inner.call_index.get(conversation_id) else {
            return false;
        };
        let Some(participant) = inner.calls[index].participant_mut(participant_id) else {
            return false;
        };
        participant.accept(attributes, now);
        inner.promotions.insert((now, index));
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
        true
    }

    /// The faults in force.
    pub fn faults(&self) -> FaultConfig {
        self.lock().faults.clone()
    }

    /// Replaces the faults in force (the RNG stream goes on).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.lock().faults = faults;
    }

    /// Every issued token becomes invalid: its next use gets 401 `bad.credentials`.
    pub fn expire_tokens(&self) {
        for record in self.lock().tokens.values_mut() {
            record.revoked = true;
        }
    }

    /// Every bearer token issued so far, expired ones included: for tests that check no token
    /// leaks into output. Never log these.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Clears the request log.
    pub fn reset_log(&self) {
        self.lock().log.clear();
    }

    /// Clears the request log and the faults (what `POST /__sim/reset` does).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.log.clear();
        inner.faults = FaultConfig::default();
    }

    /// Moves the simulator's clock forward: tokens expire, rate budgets refill and lagging
    /// writes become visible as if `by` had passed. Timestamps it writes move too.
    pub fn advance_clock(&self, by: Duration) {
        let mut inner = self.lock();
        inner.clock_offset += by;
        let now = self.now(&inner);
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
    }

    /// Stops real time from moving the simulator's clock: from now on only
    /// [`SimState::advance_clock`] moves it, so that a test can state exact times (e.g. the
    /// `Retry-After` of a window that frees in exactly 60 s). There is no unfreezing.
    pub fn freeze_clock(&self) {
        let mut inner = self.lock();
        if inner.frozen_at.is_none() {
            inner.frozen_at = Some(self.shared.clock.now(Duration::ZERO));
        }
        drop(inner);
        self.wake();
    }

    /// Adds a call exactly as described (test-only: it lets a test build the world it needs).
    /// Participants join in the given order, a second apart, starting a minute ago.
    pub fn add_call(&self, seed: SeedCall) {
        let mut inner = self.lock();
        let now = self.shared.clock.wall(self.now(&inner));
        let start = now - Duration::from_secs(60);
        let end = seed.ended.then_some(now - Duration::from_secs(1));
        let participants = seed
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let joined = start + Duration::from_secs(i as u64);
                let left = if seed.ended || !p.connected {
                    Some(end.unwrap_or(now - Duration::from_secs(1)))
                } else {
                    None
                };
                ParticipantRecord {
                    leg_id: uuid::Uuid::new_v4().to_string(),
                    name: None,
                    address: None,
                    ani: None,
                    dnis: None,
                    direction: if p.purpose == "agent" {
                        "outbound"
                    } else {
                        "inbound"
                    },
                    state: if left.is_some() {
                        ParticipantState::Disconnected
                    } else {
                        ParticipantState::Connected
                    },
                    start: joined,
                    connected: Some(joined),
                    end: left,
                    user: p.user_id.map(|id| DomainEntityRef {
                        self_uri: Some(format!("/api/v2/users/{id}")),
                        name: None,
                        id: Some(id),
                    }),
                    queue: None,
                    external_contact: None,
                    visible: p.attributes,
                    pending: Vec::new(),
                    id: p.id,
                    purpose: p.purpose,
                }
            })
            .collect();
        let index = inner.calls.len();
        inner.call_index.insert(seed.id.clone(), index);
        inner.calls.push(CallRecord {
            id: seed.id,
            queue_id: None,
            start,
            end,
            participants,
            arrived_at: None,
            attributes_visible_at: None,
        });
    }

    /// Holds every request (outside `/__sim/`) after the next `requests` ones: a held request
    /// gets no answer and has no effect until [`SimState::release`], after which its connection
    /// is closed unanswered and unlogged. Lets a test stop a client at an exact request count.
    pub fn hold_after(&self, requests: u64) {
        let mut inner = self.lock();
        inner.gate.limit = Some(inner.gate.admitted + requests);
        drop(inner);
        self.bump_gate();
    }

    /// Waits until a request is being held and every request let through has been answered.
    pub async fn wait_until_holding(&self) {
        let mut events = self.shared.gate_events.subscribe();
        loop {
            {
                let inner = self.lock();
                if inner.gate.held > 0 && inner.gate.completed >= inner.gate.admitted {
                    return;
                }
            }
            if events.changed().await.is_err() {
                return;
            }
        }
    }

    /// Ends the hold: held requests are closed without an answer, later ones are served.
    pub fn release(&self) {
        let mut inner = self.lock();
        inner.gate.limit = None;
        inner.gate.held = 0;
        inner.gate.generation += 1;
        drop(inner);
        self.bump_gate();
    }

    /// How many tokens were issued so far (token ids in the log are `t1` ..= `tN`).
    pub fn tokens_issued(&self) -> u64 {
        self.lock().tokens_issued
    }

    // ---- crate-internal, for the HTTP handlers ----

    fn bump_gate(&self) {
        self.shared.gate_events.send_modify(|n| *n += 1);
    }

    /// Lets a request through, or holds it (see [`SimState::hold_after`]).
    pub(crate) fn admit(&self) -> Admission {
        let mut inner = self.lock();
        let gate = &mut inner.gate;
        let admission = match gate.limit {
            Some(limit) if gate.admitted >= limit => {
                gate.held += 1;
                Admission::Held(gate.generation)
            }
            _ => {
                gate.admitted += 1;
                Admission::Go
            }
        };
        drop(inner);
        self.bump_gate();
        admission
    }

    /// Returns once the hold a request was held in has been released.
    pub(crate) async fn held_until_released(&self, generation: u64) {
        let mut events = self.shared.gate_events.subscribe();
        while self.lock().gate.generation == generation {
            if events.changed().await.is_err() {
                return;
            }
        }
    }

    /// The org's limits in `namespace`: the per-token budget in the configured namespace
    /// (nothing when the simulator has no per-token limit), 404 in any other, 403 when
    /// [`SimConfig::limits_forbidden`].
    pub(crate) fn org_limits(&self, namespace: &str) -> Result<LimitsEntityListing, ApiError> {
        if self.shared.limits_forbidden {
            return Err(ApiError::missing_permissions(SIM_LIMITS_PERMISSION));
        }
        if namespace != self.shared.limits_namespace {
            return Err(ApiError::not_found());
        }
        let entities = (self.shared.rate_per_minute > 0)
            .then(|| LimitEntity {
                key: Some(TOKEN_RATE_LIMIT_KEY.to_owned()),
                namespace: Some(namespace.to_owned()),
                value: Some(i64::from(self.shared.rate_per_minute)),
            })
            .into_iter()
            .collect();
        Ok(LimitsEntityListing { entities })
    }

    /// The queues a routing queue read may see: all of them, or 403 when
    /// [`SimConfig::queues_forbidden`].
    pub(crate) fn visible_queues(&self) -> Result<Vec<SimQueue>, ApiError> {
        if self.shared.queues_forbidden {
            return Err(ApiError::missing_permissions("routing:queue:view"));
        }
        Ok(self.queues())
    }

    pub(crate) fn demo_credentials(&self) -> Option<(String, String)> {
        self.shared.clients.first().cloned()
    }

    /// Whether `(client_id, client_secret)` is an accepted OAuth client.
    pub(crate) fn is_client(&self, client_id: &str, client_secret: &str) -> bool {
        self.shared
            .clients
            .iter()
            .any(|(id, secret)| id == client_id && secret == client_secret)
    }

    /// Mints a token of `client_id` with its own rate budget (the caller checked the client).
    pub(crate) fn issue_token(&self, client_id: &str) -> TokenResponse {
        let access_token = Alphanumeric.sample_string(&mut rand::rng(), 48);
        let mut inner = self.lock();
        let now = self.now(&inner);
        inner.tokens_issued += 1;
        let record = TokenRecord {
            id: format!("t{}", inner.tokens_issued),
            client_id: client_id.to_owned(),
            expires_at: now + self.shared.token_ttl,
            revoked: false,
            limit: Limit::new(
                self.shared.limit_shape,
                self.shared.rate_per_minute,
                self.shared.burst,
                self.shared.limit_window,
            ),
        };
        inner.tokens.insert(access_token.clone(), record);
        TokenResponse {
            access_token,
            token_type: "bearer".to_owned(),
            expires_in: self.shared.token_ttl.as_secs(),
        }
    }

    /// Who holds a valid token.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let inner = self.lock();
        let now = self.now(&inner);
        match inner.tokens.get(token) {
            Some(record) if !record.revoked && record.expires_at > now => Ok(Caller {
                token_id: record.id.clone(),
                client_id: record.client_id.clone(),
            }),
            _ => Err(ApiError::bad_credentials()),
        }
    }

    /// Admits one `/api/v2` request against its token's budget and the org's, or refuses it
    /// with a 429 whose `Retry-After` is the longer wait of the limits that refused. A request is
    /// counted only when both admit it: a refused one consumes no budget. (Token requests never
    /// come here: Genesys does not count them against a token's API budget either.)
    pub(crate) fn check_rate(&self, token: &str) -> Result<(), ApiError> {
        let mut inner = self.lock();
        let now = self.now(&inner);
        let Inner {
            tokens, org_limit, ..
        } = &mut *inner;
        let record = tokens
            .get_mut(token)
            .ok_or_else(ApiError::bad_credentials)?;
        let wait = [record.limit.refusal(now), org_limit.refusal(now)]
            .into_iter()
            .flatten()
            .max();
        if let Some(wait) = wait {
            return Err(ApiError::rate_limited(wait));
        }
        record.limit.admit(now);
        org_limit.admit(now);
        Ok(())
    }

    /// Base latency plus jitter for one response.
    pub(crate) fn draw_latency(&self) -> Duration {
        let (base, jitter) = (self.shared.latency, self.shared.jitter);
        if jitter.is_zero() {
            return base;
        }
        let jitter_nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX / 2);
        let drawn = self.lock().latency_rng.random_range(0..=jitter_nanos * 2);
        (base + Duration::from_nanos(drawn)).saturating_sub(jitter)
    }

    /// Decides whether a request is dropped or answered with an injected status.
    pub(crate) fn draw_fault(&self) -> Fault {
        let mut inner = self.lock();
        let Inner {
            faults, fault_rng, ..
        } = &mut *inner;
        if chance(fault_rng, faults.drop_rate) {
            return Fault::DropConnection;
        }
        let total: f64 = faults.status_rates.values().sum();
        if total <= 0.0 {
            return Fault::None;
        }
        let roll: f64 = fault_rng.random();
        let mut cumulative = 0.0;
        for (&status, &rate) in &faults.status_rates {
            cumulative += rate;
            if roll < cumulative {
                return Fault::Status(status);
            }
        }
        Fault::None
    }

    /// `GET .../calls/{id}`: the visible state; afterwards the call may end (`end_call_rate`).
    pub(crate) fn read_call(&self, conversation_id: &str) -> Option<CallConversation> {
        let (mut inner, now) = self.settled();
        let index = *inner.call_index.get(conversation_id)?;
        let Inner {
            calls,
            faults,
            fault_rng,
            ..
        } = &mut *inner;
        let call = &calls[index];
        let view = call.call_view();
        if !call.is_ended() && chance(fault_rng, faults.end_call_rate) {
            self.end_call_at(&mut inner, index, now);
            self.settle(&mut inner, now);
            drop(inner);
            self.wake();
        }
        Some(view)
    }

    /// `GET /api/v2/conversations/{id}`: the visible state.
    pub(crate) fn read_conversation(&self, conversation_id: &str) -> Option<Conversation> {
        let (inner, _) = self.settled();
        let index = *inner.call_index.get(conversation_id)?;
        Some(inner.calls[index].conversation_view())
    }

    /// Merges `attributes` into a participant's; returns the participant's full attributes
    /// after the merge (including writes not yet visible to reads).
    pub(crate) fn patch_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: Attributes,
    ) -> Result<Attributes, ApiError> {
        let (mut inner, now) = self.settled();
        let Inner {
            calls,
            call_index,
            faults,
            fault_rng,
            promotions,
            ..
        } = &mut *inner;
        let index = *call_index
            .get(conversation_id)
            .ok_or_else(ApiError::conversation_not_found)?;
        let call = &mut calls[index];
        // Whether Genesys accepts a PATCH on an ended call is not documented [?]; the simulator
        // refuses it so that clients must handle the race between listing and writing.
        if call.is_ended() {
            return Err(ApiError::constraint_validation(
                "The conversation has ended; participant attributes can no longer be changed.",
            ));
        }
        let participant = call
            .participant_mut(participant_id)
            .ok_or_else(ApiError::participant_not_found)?;
        if chance(fault_rng, faults.conflict_rate) {
            return Err(ApiError::conflict());
        }
        let visible_at = now + faults.visibility_lag;
        let drift = faults
            .drift
            .as_ref()
            .filter(|drift| attributes.contains_key(&drift.key))
            .filter(|drift| chance(fault_rng, drift.rate))
            .map(|drift| Attributes::from([(drift.key.clone(), drift.value.clone())]));
        participant.accept(attributes, visible_at);
        let accepted = participant.true_attributes();
        // The flow runs after the write was accepted: the 202 shows the write, reads the flow's
        // value, and an event stream sees both changes, the flow's last.
        if let Some(drift) = drift {
            participant.accept(drift, visible_at);
        }
        promotions.insert((visible_at, index));
        // Visible now when there is no lag (and published); otherwise the driver's job.
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
        Ok(accepted)
    }

    /// Runs `f` over every call (oldest first) with the lock held, and the latest start a call
    /// may have to be listed by analytics (`SimConfig::analytics_lag` before now).
    pub(crate) fn with_calls<R>(&self, f: impl FnOnce(&[CallRecord], SystemTime) -> R) -> R {
        let (inner, now) = self.settled();
        let indexed_until = self.shared.clock.wall(now) - self.shared.analytics_lag;
        f(&inner.calls, indexed_until)
    }

    /// Most ids one multi-id analytics read may carry (`SimConfig::details_max_ids`).
    pub(crate) fn details_max_ids(&self) -> usize {
        self.shared.details_max_ids
    }

    /// Runs `f` over the calls with these ids that analytics has indexed (unknown ids, and
    /// calls younger than `SimConfig::analytics_lag`, are left out), in the order asked.
    pub(crate) fn with_indexed_calls<R>(
        &self,
        ids: &[&str],
        f: impl FnOnce(&mut dyn Iterator<Item = &CallRecord>) -> R,
    ) -> R {
        let (inner, now) = self.settled();
        let indexed_until = self.shared.clock.wall(now) - self.shared.analytics_lag;
        let mut calls = ids
            .iter()
            .filter_map(|id| inner.call_index.get(*id))
            .map(|&index| &inner.calls[index])
            .filter(|call| call.start <= indexed_until);
        f(&mut calls)
    }

    pub(crate) fn record(&self, mut entry: LoggedRequest) {
        let mut inner = self.lock();
        let now = self.now(&inner);
        entry.seq = inner.next_seq;
        entry.at_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        inner.next_seq += 1;
        inner.log.push(entry);
        inner.gate.completed += 1;
        drop(inner);
        self.bump_gate();
    }
}

fn sim_call(call: &CallRecord) -> SimCall {
    SimCall {
        conversation: call.true_call_view(),
        ended: call.is_ended(),
        queue_id: call.queue_id.clone(),
        arrived_at_ms: call.arrived_at.map(millis),
        attributes_visible_at_ms: call.attributes_visible_at.map(millis),
    }
}
