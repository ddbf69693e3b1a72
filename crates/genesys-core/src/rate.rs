//! Request rate: the `--rate` specification and the per-token limiter.
//!
//! Genesys allows 300 requests per minute per client-credentials token by default, counted in
//! windows. Each token gets one [`RateLimiter`]: by default a window budget (at most B requests
//! started in any trailing W), or even pacing (GCRA through `governor`, explicit burst); see
//! [`Pacing`]. A 429 with `Retry-After` pauses the whole limiter, so every request through that
//! token waits, not just the one that was refused; and the limiter learns from it (a smooth
//! server, a smaller budget, the server's own window, a wait too long to sleep through: see
//! [`Learned`] and [`RateLimiter::on_throttled`]). While a token's window is full, its
//! [`RateLimiter::paused_until`] says when it admits again, so that a pool sends to a token with
//! room.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use governor::Quota;
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use tokio::time::Instant;

/// A request rate with an explicit burst, e.g. `300/min` or `300/min,burst=10`.
///
/// Without a burst the limiter admits one request per interval (`per / count`) and never
/// bunches requests, which keeps a client at or under the same server rate free of 429s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSpec {
    count: NonZeroU32,
    per: Duration,
    burst: NonZeroU32,
}

/// A `--rate` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {input:?}: {reason} (expected COUNT/PERIOD[,burst=N], e.g. 300/min, 5/s, 18000/h, 300/min,burst=10)"
)]
pub struct RateSpecError {
    pub input: String,
    pub reason: String,
}

impl RateSpec {
    /// Genesys's default per-token budget: 300 requests per minute.
    pub const GENESYS_DEFAULT: RateSpec = RateSpec {
        count: NonZeroU32::new(300).expect("300 is not zero"),
        per: Duration::from_secs(60),
        burst: NonZeroU32::MIN,
    };

    /// Default pace of token minting in a pool: one per second, up to 5 back to back (Genesys
    /// rate-limits the token endpoint too, without a documented figure).
    pub const DEFAULT_TOKEN_MINTING: RateSpec = RateSpec {
        count: NonZeroU32::MIN,
        per: Duration::from_secs(1),
        burst: NonZeroU32::new(5).expect("5 is not zero"),
    };

    /// `count` requests per `per`, burst 1.
    pub fn new(count: u32, per: Duration) -> Result<Self, RateSpecError> {
        let invalid = |reason: &str| RateSpecError {
            input: format!("{count}/{}", humantime::format_duration(per)),
            reason: reason.to_owned(),
        };
        let count = NonZeroU32::new(count).ok_or_else(|| invalid("count must be at least 1"))?;
        if per.is_zero() {
            return Err(invalid("period must not be zero"));
        }
        if (per / count.get()).is_zero() {
            return Err(invalid(
                "rate too high (more than one request per nanosecond)",
            ));
        }
        Ok(Self {
            count,
            per,
            burst: NonZeroU32::MIN,
        })
    }

    /// The same rate with `burst` requests admitted back to back (0 is taken as 1).
    #[must_use]
    pub fn with_burst(self, burst: u32) -> Self {
        Self {
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            ..self
        }
    }

    pub fn count(&self) -> u32 {
        self.count.get()
    }

    pub fn per(&self) -> Duration {
        self.per
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// Time between two requests at the steady rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }

    /// Requests per minute at the steady rate (for display and planning).
    pub fn per_minute(&self) -> f64 {
        f64::from(self.count.get()) * 60.0 / self.per.as_secs_f64()
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(self.burst)
    }
}

impl Default for RateSpec {
    fn default() -> Self {
        Self::GENESYS_DEFAULT
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => "s".to_owned(),
            60 if self.per.subsec_nanos() == 0 => "min".to_owned(),
            3600 if self.per.subsec_nanos() == 0 => "h".to_owned(),
            _ => humantime::format_duration(self.per).to_string(),
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.burst.get() > 1 {
            write!(f, ",burst={}", self.burst)?;
        }
        Ok(())
    }
}

impl FromStr for RateSpec {
    type Err = RateSpecError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| RateSpecError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (rate, burst) = match input.trim().split_once(',') {
            Some((rate, burst)) => (rate.trim(), Some(burst.trim())),
            None => (input.trim(), None),
        };
        let (count, per) = rate.split_once('/').ok_or_else(|| invalid("missing `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| invalid("the count is not a whole number"))?;
        let per = match per.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hr" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other)
                .map_err(|_| invalid("unknown period (use s, min, h or a duration like 10s)"))?,
        };
        let spec = RateSpec::new(count, per).map_err(|e| invalid(&e.reason))?;
        match burst {
            None => Ok(spec),
            Some(burst) => {
                let value = burst
                    .strip_prefix("burst=")
                    .ok_or_else(|| invalid("expected `burst=N` after the comma"))?;
                let burst: u32 = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("the burst is not a whole number"))?;
                if burst == 0 {
                    return Err(invalid("the burst must be at least 1"));
                }
                Ok(spec.with_burst(burst))
            }
        }
    }
}

/// How the requests of one token are spread over time (`--pacing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pacing {
    /// At most B requests *started* in any trailing window W (`--rate B/W`), and within that as
    /// fast as the caller's concurrency allows. Genesys counts in windows (its 429 says "retry in
    /// [42] seconds"), so a job that fits one window's budget is sent at once, not spread over
    /// the window. Safe under a fixed and under a sliding window.
    #[default]
    Window,
    /// GCRA through `governor`: one request per W/B, `burst` of them back to back.
    Even,
}

impl Pacing {
    pub const fn as_str(self) -> &'static str {
        match self {
            Pacing::Window => "window",
            Pacing::Even => "even",
        }
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--pacing` value that is neither `window` nor `even`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pacing {0:?} (expected window or even)")]
pub struct PacingError(pub String);

impl FromStr for Pacing {
    type Err = PacingError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "window" => Ok(Pacing::Window),
            "even" => Ok(Pacing::Even),
            _ => Err(PacingError(input.to_owned())),
        }
    }
}

/// The most the window log adds to W for the time between the client starting a request and the
/// server counting it (connection set-up, proxies, queueing in the server): its *variation* is
/// what matters. The margin is 2 % of W, at least [`MIN_WINDOW_MARGIN`] and at most this: 1 s
/// of a one-minute window (296 requests a minute instead of 300 in a sustained run), 200 ms of a
/// 10 s one, so that a job spanning many windows stays within a few percent of the floor.
pub const WINDOW_MARGIN: Duration = Duration::from_secs(1);

/// The least margin, whatever the window: more than the jitter of a request's way to the server.
pub const MIN_WINDOW_MARGIN: Duration = Duration::from_millis(100);

/// A `Retry-After` at or below this is what a smooth limiter (a token bucket) answers: "the next
/// slot is about one interval away".
pub const SHORT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A `Retry-After` above this, while the client keeps to its own budget, means that a smaller
/// budget than the configured one is in force (an org-wide limit, a lower per-token limit).
/// Between the two nothing is learned: a window hit near its end answers a few seconds too.
pub const LONG_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Short `Retry-After`s, each from a separate episode, within one window that make a token
/// switch to even pacing. One alone is not evidence: a window hit in its last second answers
/// "1" too; except for a token's very first requests, refused within 2 s of the first of them
/// (see [`RateLimiter::on_throttled`]).
pub const SMOOTH_EVIDENCE: usize = 3;

/// Multiplicative decrease of a token's budget after a long `Retry-After` (AIMD, as TCP), when
/// the refusal does not show what the server admits (see `RateLimiter::on_throttled`).
const DECREASE: f64 = 0.7;
/// Additive increase after each clean window past the hold (see [`PROBE_HOLD_WINDOWS`]): this
/// percentage of the configured budget. Small, because each step above what the server allows
/// costs that many refused requests.
const INCREASE_PERCENT: u32 = 1;

/// Clean windows a token waits after a budget cut before it probes above the cut again; doubled
/// by each later cut (the server said no again), up to [`MAX_PROBE_HOLD_WINDOWS`]. A cut lands
/// on what the server admitted, so probing right away would only buy the same refusals again.
pub const PROBE_HOLD_WINDOWS: u32 = 3;

/// The longest hold between probes, in windows.
pub const MAX_PROBE_HOLD_WINDOWS: u32 = 24;

/// Slow start: a token with window pacing begins with this many requests in flight and allows
/// one more per answered request (doubling per round trip, as TCP's slow start), until its whole
/// window budget is reachable or a window has passed. An unknown server may be a bucket of a few
/// requests: 32 requests at once into a bucket of 10 are 22 refusals; 4 then 8 are at most a
/// couple.
pub const SLOW_START_INITIAL: u32 = 4;

/// How far (beyond `Retry-After`'s rounding to whole seconds) the server's window may start
/// before the token's oldest request in it and still be taken as the token's own: a long
/// `Retry-After` then shows what the server admits, in the requests it admitted.
const OWN_WINDOW_TOLERANCE: Duration = Duration::from_secs(1);

/// A token set aside: the server asked it to wait longer than the client's `max_wait`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// When it may be used again.
    pub until: Instant,
    /// The `Retry-After` the server sent.
    pub retry_after: Duration,
}

/// A request admitted by a limiter: when (wall clock, for logs) and the monotonic instant (for
/// the limiter's own bookkeeping, see [`RateLimiter::on_throttled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub at: SystemTime,
    pub instant: Instant,
}

/// What a 429 taught a limiter. Returned once per change, so that the caller can say it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Nothing new (the token is paused for `Retry-After` all the same).
    Nothing,
    /// Repeated short `Retry-After`s: the server paces evenly; so does this token from now on.
    SwitchedToEven,
    /// A long `Retry-After`: the budget per window went down from `from` to `to`.
    BudgetCut { from: u32, to: u32 },
    /// The `Retry-After` exceeds `max_wait`: no request goes through this token until it ends.
    SetAside(SetAside),
}

/// What a limiter currently does (see [`crate::stats::TokenStats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimiterState {
    pub pacing: Pacing,
    /// Requests allowed per configured window now: the configured count until the server showed
    /// less. A budget learned in a shorter window of the server's is counted at its rate (100 per
    /// 10 s is 600 per minute).
    pub budget: u32,
    /// The window the server counts in, as learned: the configured one until a token's first
    /// refusal showed a shorter one (see [`RateLimiter::on_throttled`]).
    pub window: Duration,
    /// Requests allowed per `window` now.
    pub window_budget: u32,
    pub set_aside_until: Option<Instant>,
}

/// The rate limiter of one token: a window budget or GCRA (see [`Pacing`]), a pause set by
/// `Retry-After`, and what 429s taught it.
///
/// The window budget is a log of start times (a sliding-window log), not `governor`: GCRA can
/// only express "one request per interval, `burst` ahead of schedule", and a GCRA with burst = B
/// would admit B at once and then one more every W/B, up to ~2B in the first window, where a
/// window counter allows exactly B. Keeping the start times of the last window is exact, and
/// small (at most B instants). `governor` still does even pacing and token minting.
pub struct RateLimiter {
    /// Even pacing; replaced whole by [`RateLimiter::set_configured_rate`].
    gcra: Mutex<Arc<Gcra>>,
    state: Mutex<State>,
    /// Wakes acquirers held back by slow start when a request is answered.
    answered: tokio::sync::Notify,
}

struct State {
    /// The configured rate (see [`RateLimiter::set_configured_rate`]).
    spec: RateSpec,
    pacing: Pacing,
    /// The window the server counts in, as learned (see `RateLimiter::learn`): the configured
    /// window until a refusal shows a shorter one; never longer than the configured window.
    window: Duration,
    /// Requests allowed per `window`, at least 1: the window log holds the token to it. While
    /// `window` is shorter than the configured window, the log holds the token to the configured
    /// count per configured window too.
    budget: u32,
    /// Even pacing's rate in requests per configured window, 1..=spec.count(): cut only when a
    /// smooth server refuses an evenly paced token. A window budget learned from a long
    /// `Retry-After` is kept by the window log instead, so that a token spends it at the pace the
    /// server takes, not spread thinner over the window.
    rate: u32,
    /// Start times of the requests admitted in the last configured window plus its margin
    /// (oldest first).
    starts: VecDeque<Instant>,
    paused_until: Option<Instant>,
    set_aside: Option<SetAside>,
    /// When the last 429 that counted as evidence arrived. A 429 to a request started by then was in flight in the same episode and says nothing new (one burst refused at once is
    /// one piece of evidence, and one budget cut).
    last_evidence: Option<Instant>,
    /// Where the server's window of the current episode began (this token's oldest request in
    /// it), when the episode shows the server's count: each refusal of the episode then brings
    /// the budget down to what the log holds since, i.e. what the server admitted.
    episode_from: Option<Instant>,
    /// When the server said a place of its window would free, at the last refusal with a
    /// `Retry-After` above [`SHORT_RETRY_AFTER`] (see `RateLimiter::learn_window`).
    last_free: Option<Instant>,
    /// Arrival of the short-`Retry-After` episodes of the last window.
    short_episodes: VecDeque<Instant>,
    /// Start of the current clean window (no 429 since, and the budget has not grown since).
    clean_since: Instant,
    /// No growth before this (the hold after a cut, see [`PROBE_HOLD_WINDOWS`]).
    hold_until: Instant,
    /// The hold after the next cut, in windows.
    probe_hold: u32,
    /// While slow start lasts (window pacing only, see [`SLOW_START_INITIAL`]).
    slow_start: Option<SlowStart>,
    /// The first request this token started (for a rate measured over less than a window, and
    /// to tell a token's first window: see `RateLimiter::learn`).
    first_start: Option<Instant>,
    /// The rate the even-pacing GCRA was built for (see `RateLimiter::refresh_gcra`).
    gcra_rate: u32,
    /// Even pacing's burst: the configured one until a smooth server refuses a burst (then 1).
    burst: NonZeroU32,
    /// The burst the even-pacing GCRA was built with.
    gcra_burst: NonZeroU32,
    /// Acquirers waiting in [`RateLimiter::acquire`] now (see [`RateLimiter::paused_until`]).
    queued: u32,
}

/// A token's slow start (see [`SLOW_START_INITIAL`]): rounds of requests, each twice the size
/// of the last, a round starting only when every request of the one before was answered without
/// a 429. Rounds, not "one more per answer": answers that arrive together with a refusal would
/// otherwise start more requests before the refusal's pause.
#[derive(Clone, Copy, Debug)]
struct SlowStart {
    began: Instant,
    /// When the current round began: an answer to a request started earlier is a straggler of
    /// an earlier round and does not count.
    round_began: Instant,
    /// Requests the current round may start.
    round_size: u32,
    /// Of those, started, and answered.
    round_started: u32,
    round_answered: u32,
}

impl SlowStart {
    fn new(now: Instant) -> Self {
        Self {
            began: now,
            round_began: now,
            round_size: SLOW_START_INITIAL,
            round_started: 0,
            round_answered: 0,
        }
    }

    /// Whether the round is used up and waits for its answers.
    fn is_full(&self) -> bool {
        self.round_started >= self.round_size
    }

    /// Counts an answer to a request started at `started`; on the round's last, the next round.
    fn answered(&mut self, started: Instant, now: Instant) {
        if started < self.round_began {
            return;
        }
        self.round_answered += 1;
        if self.is_full() && self.round_answered >= self.round_started {
            self.round_began = now;
            self.round_size = self.round_size.saturating_mul(2);
            self.round_started = 0;
            self.round_answered = 0;
        }
    }
}

/// An acquirer counted in `State::queued` while it waits.
struct Queued<'a> {
    limiter: &'a RateLimiter,
    counted: bool,
}

impl<'a> Queued<'a> {
    fn new(limiter: &'a RateLimiter) -> Self {
        limiter.lock().queued += 1;
        Self {
            limiter,
            counted: true,
        }
    }

    /// No longer waiting (admitted), under the lock the admission took.
    fn leave(&mut self, state: &mut State) {
        if std::mem::take(&mut self.counted) {
            state.queued = state.queued.saturating_sub(1);
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.counted {
            let mut state = self.limiter.lock();
            state.queued = state.queued.saturating_sub(1);
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("RateLimiter")
            .field("spec", &self.spec())
            .field("pacing", &state.pacing)
            .field("budget", &state.budget)
            .field("window", &state.window)
            .field("window_budget", &state.window_budget)
            .field("paused_until", &self.paused_until())
            .field("set_aside_until", &state.set_aside_until)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(spec: RateSpec, pacing: Pacing) -> Self {
        let now = Instant::now();
        Self {
            gcra: Mutex::new(Arc::new(Gcra::direct_with_clock(spec.quota(), TokioClock))),
            answered: tokio::sync::Notify::new(),
            state: Mutex::new(State {
                spec,
                pacing,
                window: spec.per(),
                budget: spec.count(),
                rate: spec.count(),
                starts: VecDeque::new(),
                paused_until: None,
                set_aside: None,
                last_evidence: None,
                episode_from: None,
                last_free: None,
                short_episodes: VecDeque::new(),
                clean_since: now,
                hold_until: now,
                probe_hold: PROBE_HOLD_WINDOWS,
                slow_start: (pacing == Pacing::Window).then(|| SlowStart::new(now)),
                first_start: None,
                gcra_rate: spec.count(),
                burst: spec.burst,
                gcra_burst: spec.burst,
                queued: 0,
            }),
        }
    }

    /// The configured rate: as built, or as set by [`RateLimiter::set_configured_rate`].
    pub fn spec(&self) -> RateSpec {
        self.lock().spec
    }

    /// How long a start stays in the window log: W plus the margin (see [`WINDOW_MARGIN`]).
    pub fn window_span(&self) -> Duration {
        window_span(self.spec())
    }

    /// Replaces the configured rate (e.g. with the budget read from the org's limits before the
    /// first request): the budget becomes `spec`'s count per `spec`'s window, even pacing follows
    /// `spec` from now on. Starts already in the window log still count against the new budget;
    /// what the limiter learned about the server's pacing is kept.
    pub fn set_configured_rate(&self, spec: RateSpec) {
        let mut state = self.lock();
        state.spec = spec;
        state.window = spec.per();
        state.budget = spec.count();
        state.rate = spec.count();
        state.gcra_rate = spec.count();
        state.burst = spec.burst;
        state.gcra_burst = spec.burst;
        state.episode_from = None;
        state.clean_since = Instant::now();
        *self.gcra.lock().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Gcra::direct_with_clock(spec.quota(), TokioClock));
    }

    /// Waits until a request may be sent and returns when it was admitted, or at once the
    /// token's [`SetAside`] when it is set aside (now, or while waiting).
    ///
    /// The final checks (pause, window, slow start) and the recorded start are taken under the
    /// same lock that [`RateLimiter::on_throttled`] takes, so a request admitted after a pause
    /// was set always waited for it.
    pub async fn acquire(&self) -> Result<Admission, SetAside> {
        let mut queued = Queued::new(self);
        loop {
            let (pacing, paused) = {
                let mut state = self.lock();
                let now = Instant::now();
                if let Some(aside) = state.set_aside.filter(|a| a.until > now) {
                    return Err(aside);
                }
                state.grow(now);
                self.refresh_gcra(&mut state);
                (
                    state.pacing,
                    state.paused_until.filter(|until| *until > now),
                )
            };
            if let Some(until) = paused {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if pacing == Pacing::Even {
                // Not `until_ready`: it sleeps on its own timer, and this clock is tokio's. The
                // GCRA is fetched again after each wait: a learned rate replaces it.
                loop {
                    let gcra =
                        Arc::clone(&self.gcra.lock().unwrap_or_else(PoisonError::into_inner));
                    match gcra.check() {
                        Ok(()) => break,
                        Err(not_until) => {
                            tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
                        }
                    }
                }
            }
            // Registered before the check: an answer between the check and the wait wakes it.
            let answered = self.answered.notified();
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                if let Some(aside) = state.set_aside.filter(|a| a.until > now) {
                    return Err(aside);
                }
                state.grow(now);
                state.prune(now);
                let (budget, window) = (state.budget, state.window);
                if state.slow_start.is_some_and(|ss| {
                    state.pacing != Pacing::Window
                        || ss.round_size >= budget
                        || now >= ss.began + window
                }) {
                    state.slow_start = None;
                    // Others may wait for an answer that no longer matters.
                    self.answered.notify_waiters();
                }
                match (state.paused_until, state.room(now, 0), state.slow_start) {
                    (Some(until), _, _) if until > now => Wait::Until(until),
                    (_, Some(until), _) => Wait::Until(until),
                    (_, _, Some(ss)) if ss.is_full() => Wait::Answer(ss.began + window),
                    _ => {
                        state.starts.push_back(now);
                        state.first_start.get_or_insert(now);
                        if let Some(ss) = state.slow_start.as_mut() {
                            ss.round_started += 1;
                        }
                        queued.leave(&mut state);
                        return Ok(Admission {
                            at: SystemTime::now(),
                            instant: now,
                        });
                    }
                }
            };
            match wait {
                Wait::Until(until) => tokio::time::sleep_until(until).await,
                // Slow start: the next answer, or the end of slow start (a whole window, should
                // answers never come: requests dropped unanswered must not hold the token).
                Wait::Answer(until) => {
                    tokio::select! {
                        () = answered => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
            }
        }
    }

    /// A request admitted by this limiter at `started` was answered, other than with a 429 (any
    /// answer, an error or a failed connection included: it is what lets slow start go on).
    pub fn on_answered(&self, started: Instant) {
        let mut state = self.lock();
        if let Some(ss) = state.slow_start.as_mut() {
            ss.answered(started, Instant::now());
            drop(state);
            self.answered.notify_waiters();
        }
    }

    /// Pauses every request through this limiter for `duration` from now. A pause only ever
    /// extends: a shorter `Retry-After` never cuts a longer one short. Returns the deadline.
    pub fn pause_for(&self, duration: Duration) -> Instant {
        Self::pause(&mut self.lock(), duration)
    }

    fn pause(state: &mut State, duration: Duration) -> Instant {
        let deadline = Instant::now() + duration;
        let until = match state.paused_until {
            Some(existing) if existing >= deadline => existing,
            _ => deadline,
        };
        state.paused_until = Some(until);
        until
    }

    /// A 429 to a request admitted at `started`: pauses the token for `pause` (the caller's
    /// capped `Retry-After` or backoff) or, when `retry_after` exceeds `max_wait`, sets it
    /// aside; and learns from `retry_after` (see [`Learned`]). Every 429 here is one "while
    /// under the client's own budget": the limiter never admits more than its budget.
    ///
    /// A `Retry-After` names when the server's window frees a place: `started + retry_after`,
    /// give or take its rounding up to whole seconds. What that teaches depends on whose
    /// requests fill the window:
    /// - when it began about when this token's oldest request in it started, the window is the
    ///   token's own (a per-token limit, or a shared one the token opened): the server's count
    ///   is what it admitted of the token's requests there, and the budget becomes exactly that
    ///   (counted once the episode's refusals are in, not from the first of them);
    /// - when that oldest request is the token's very first, the server's window may be shorter
    ///   than the configured one: its length is the time from that request to when the server
    ///   frees a place (`--rate 600/min` against a server that counts 100 per 10 s learns 100 per
    ///   10 s, not a sixth of it). Within 2 s of the first request, it is a smooth server (a
    ///   bucket, or a window of about a second): the token paces evenly from then on;
    /// - when a window learned shorter frees later than it would (a fixed window that the
    ///   token's first requests entered late ends early once, then lasts its whole length), it
    ///   grows to the time from the token's first request since the place freed last time;
    /// - otherwise (others' requests fill it) the cut is multiplicative, ×0.7, or what the token
    ///   got admitted if it sent more than that.
    ///
    /// After a cut the token holds it for a few clean windows before it probes above it again
    /// (see [`PROBE_HOLD_WINDOWS`]).
    pub fn on_throttled(
        &self,
        started: Instant,
        retry_after: Option<Duration>,
        pause: Duration,
        max_wait: Duration,
    ) -> Learned {
        let mut state = self.lock();
        let slow_start = state.slow_start.map(|ss| ss.began);
        let learned = Self::learn(&mut state, started, retry_after, pause, max_wait);
        self.refresh_gcra(&mut state);
        // A refusal that taught slow start nothing (it neither began again nor ended) still ends
        // that request's part in its round.
        if let Some(ss) = state
            .slow_start
            .as_mut()
            .filter(|ss| Some(ss.began) == slow_start)
        {
            ss.answered(started, Instant::now());
        }
        drop(state);
        // Whatever changed (a round, slow start begun again or ended, a pause), acquirers waiting
        // for an answer look again.
        self.answered.notify_waiters();
        learned
    }

    fn learn(
        state: &mut State,
        started: Instant,
        retry_after: Option<Duration>,
        pause: Duration,
        max_wait: Duration,
    ) -> Learned {
        let now = Instant::now();
        // This window is not clean.
        state.clean_since = now;
        if let Some(retry_after) = retry_after.filter(|r| *r > max_wait) {
            let aside = SetAside {
                until: now + retry_after,
                retry_after,
            };
            let already = state.set_aside.is_some_and(|a| a.until > now);
            if state.set_aside.is_none_or(|a| a.until < aside.until) {
                state.set_aside = Some(aside);
            }
            return if already {
                Learned::Nothing
            } else {
                Learned::SetAside(aside)
            };
        }
        Self::pause(state, pause);
        state.prune(now);
        // What this token sent in its window, the refused request included.
        let sent = state.count_within(now, span_of(state.window));
        // The server did not count a request it refused: neither does the window log, so that
        // the log holds what the server admitted.
        if let Some(index) = state.starts.iter().rposition(|t| *t == started) {
            state.starts.remove(index);
        }
        let Some(retry_after) = retry_after else {
            return Learned::Nothing;
        };
        if state.last_evidence.is_some_and(|at| started <= at) {
            // The same episode: each refusal of it tells the server's count more exactly.
            if let Some(from) = state.episode_from {
                let admitted = state.count_since(from).max(1);
                if admitted < state.budget {
                    state.budget = admitted;
                }
            }
            return Learned::Nothing;
        }
        state.last_evidence = Some(now);
        state.episode_from = None;
        if retry_after <= SHORT_RETRY_AFTER {
            Self::learn_short(state, started, retry_after, now)
        } else {
            Self::learn_window(state, started, retry_after, sent, now)
        }
    }

    /// A short `Retry-After` (see [`SHORT_RETRY_AFTER`]): a smooth server, or a window hit near
    /// its end.
    fn learn_short(
        state: &mut State,
        started: Instant,
        retry_after: Duration,
        now: Instant,
    ) -> Learned {
        let per = state.spec.per();
        let (admitted, oldest) = state.admitted_before(started, per);
        if state.pacing == Pacing::Even {
            // A smooth server refused an evenly paced token: its rate is lower than this
            // token's. Measured over what it admitted (over less than a window when the token
            // is younger: the bucket's burst makes that an overestimate, so ×0.7 bounds it).
            if state.burst > NonZeroU32::MIN {
                // Requests spaced evenly are refused only above the server's rate; bunched
                // ones, also above its burst. Drop the burst first: a rate measured while
                // bursting into a smaller burst would be this token's own, not the server's.
                state.burst = NonZeroU32::MIN;
                tracing::info!("a smooth server refused a burst: pacing one at a time");
                return Learned::Nothing;
            }
            let elapsed = state.first_start.map_or(Duration::ZERO, |first| {
                started.saturating_duration_since(first)
            });
            if elapsed < SHORT_RETRY_AFTER || admitted == 0 {
                return Learned::Nothing;
            }
            let from = state.rate;
            let measured = if elapsed >= per {
                admitted
            } else {
                scale(admitted, per.as_secs_f64() / elapsed.as_secs_f64())
            };
            if measured >= from {
                // It admitted this token's rate all along: a passing refusal, not a rate.
                return Learned::Nothing;
            }
            let to = if elapsed >= per {
                measured
            } else {
                measured.min(scale(from, DECREASE))
            };
            return state.cut_rate(from, to.max(1), now);
        }
        // The token's very first requests, refused with "retry in a second or two": the server
        // frees a place within 2 s of the token's first request. A window hit in its last second
        // answers "1" too, but only one that others' requests opened before this token sent
        // anything; a bucket, or a window of a second or so, is far more likely, and pacing
        // evenly at --rate suits both (and is no worse under the other).
        if state.pacing == Pacing::Window
            && oldest.is_some_and(|oldest| {
                Some(oldest) == state.first_start
                    && server_window(started + retry_after - oldest) <= SHORT_RETRY_AFTER
            })
        {
            return state.switch_to_even();
        }
        while state
            .short_episodes
            .front()
            .is_some_and(|t| *t + per <= now)
        {
            state.short_episodes.pop_front();
        }
        state.short_episodes.push_back(now);
        if state.short_episodes.len() >= SMOOTH_EVIDENCE {
            return state.switch_to_even();
        }
        // Perhaps a bucket: start slowly again after the pause, not with a full window.
        if state.pacing == Pacing::Window {
            state.slow_start = Some(SlowStart::new(now));
        }
        Learned::Nothing
    }

    /// A `Retry-After` above [`SHORT_RETRY_AFTER`]: a window, its place freed at
    /// `started + retry_after` (see [`RateLimiter::on_throttled`]).
    fn learn_window(
        state: &mut State,
        started: Instant,
        retry_after: Duration,
        sent: u32,
        now: Instant,
    ) -> Learned {
        let per = state.spec.per();
        let window = state.window;
        let from = state.budget;
        let before = state.per_configured_window();
        // The server frees a place `retry_after` from the refused request's start (its window
        // ends then, rounded up to whole seconds).
        let end = started + retry_after;
        let last_free = state.last_free.replace(end);
        // What this token got admitted in the server's window as it was when it refused: the
        // requests started in the window before the refused one, and the oldest of them.
        let (admitted, oldest) = state.admitted_before(started, window);
        // The token's first request since the place the server freed last time.
        let since_free = last_free.and_then(|free| {
            state
                .starts
                .iter()
                .copied()
                .find(|t| *t + MIN_WINDOW_MARGIN > free)
                .filter(|t| *t < started)
        });
        if let Some(oldest) = oldest.filter(|o| *o + window <= end + OWN_WINDOW_TOLERANCE) {
            // The token's own window: it began about when the token's oldest request in it
            // started.
            state.slow_start = None;
            if window < per && oldest + window + OWN_WINDOW_TOLERANCE + MIN_WINDOW_MARGIN <= end {
                // It frees later than that request leaves the window learned: a window learned
                // shorter than the server's (a fixed window that the token's first requests
                // entered late ends early once, then lasts its whole length). It counts the
                // token's requests since the place it freed last time.
                let from_free = since_free.filter(|t| *t < oldest).unwrap_or(oldest);
                let inferred = server_window(end - from_free).min(per);
                if inferred > window {
                    state.window = inferred;
                    state.episode_from = Some(from_free);
                    return state.lower_budget(before, state.count_since(from_free).max(1), now);
                }
            }
            state.episode_from = Some(oldest);
            let admitted = state.count_since(oldest);
            return state.lower_budget(before, admitted.min(from.saturating_sub(1)).max(1), now);
        }
        if let Some(oldest) =
            oldest.filter(|o| Some(*o) == state.first_start && server_window(end - *o) < window)
        {
            // The token's first window, and the server's place frees sooner than the configured
            // window would: the server counts in a shorter window, from the token's first
            // request to that place.
            let inferred = server_window(end - oldest);
            state.slow_start = None;
            state.window = inferred;
            state.episode_from = Some(oldest);
            let learned = state.lower_budget(before, state.count_since(oldest).max(1), now);
            tracing::info!(
                window_s = inferred.as_secs(),
                budget = state.budget,
                "the server counts requests in windows of {} s: pacing this token to {} per {} s",
                inferred.as_secs(),
                state.budget,
                inferred.as_secs(),
            );
            return learned;
        }
        if window < per {
            // A window learned shorter than the server's, which this token's requests since the
            // place it freed last time fill (see above).
            if let Some(oldest) = since_free {
                let inferred = server_window(end - oldest).min(per);
                if inferred > window {
                    state.slow_start = None;
                    state.window = inferred;
                    state.episode_from = Some(oldest);
                    return state.lower_budget(before, state.count_since(oldest).max(1), now);
                }
            }
        }
        state.cut_by_decrease(retry_after, sent, admitted, oldest, now)
    }

    /// Rebuilds the even-pacing GCRA when its rate or burst changed.
    fn refresh_gcra(&self, state: &mut State) {
        if state.pacing != Pacing::Even
            || (state.gcra_rate == state.rate && state.gcra_burst == state.burst)
        {
            return;
        }
        state.gcra_rate = state.rate;
        state.gcra_burst = state.burst;
        let spec = state.spec;
        let quota = if state.rate >= spec.count() {
            spec.quota()
        } else {
            Quota::with_period(window_span(spec) / state.rate.max(1))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        }
        .allow_burst(state.burst);
        *self.gcra.lock().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Gcra::direct_with_clock(quota, TokioClock));
    }

    /// Takes back the admission of a request that was never sent (no token could be had): the
    /// window counts what reached the API.
    pub fn forget(&self, admission: Admission) {
        let mut state = self.lock();
        if let Some(index) = state.starts.iter().rposition(|t| *t == admission.instant) {
            state.starts.remove(index);
        }
        if let Some(ss) = state
            .slow_start
            .as_mut()
            .filter(|ss| admission.instant >= ss.round_began)
        {
            ss.round_started = ss.round_started.saturating_sub(1);
        }
    }

    /// When a request asked for now would be admitted at the earliest, if not at once: the end
    /// of a pause, or when the window has room for it after the requests already waiting for
    /// this token (an estimate past the next window). A pool picks the token that admits
    /// soonest, so requests do not queue on a token whose window is full while another has
    /// room.
    pub fn paused_until(&self) -> Option<Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        state.grow(now);
        let pause = state.paused_until.filter(|until| *until > now);
        let room = state.room(now, state.queued);
        let paced = (state.pacing == Pacing::Even && state.queued > 0)
            .then(|| now + state.even_interval() * state.queued);
        pause.max(room).max(paced).filter(|until| *until > now)
    }

    /// Requests waiting for this token's budget now, and when the first of them may start (the
    /// end of a pause, or when the window has room): `None` when none waits or one may start.
    pub fn waiting(&self) -> Option<(u32, Instant)> {
        let mut state = self.lock();
        let now = Instant::now();
        if state.queued == 0 {
            return None;
        }
        state.grow(now);
        let pause = state.paused_until.filter(|until| *until > now);
        let room = state.room(now, 0);
        pause
            .max(room)
            .filter(|until| *until > now)
            .map(|until| (state.queued, until))
    }

    /// The token's [`SetAside`], while it lasts.
    pub fn set_aside(&self) -> Option<SetAside> {
        self.lock().set_aside.filter(|a| a.until > Instant::now())
    }

    /// Pacing, current budget (after any recovery due by now) and set-aside deadline.
    pub fn state(&self) -> LimiterState {
        let mut state = self.lock();
        let now = Instant::now();
        state.grow(now);
        self.refresh_gcra(&mut state);
        LimiterState {
            pacing: state.pacing,
            budget: state.per_configured_window(),
            window: state.window,
            window_budget: state.budget,
            set_aside_until: state.set_aside.map(|a| a.until).filter(|u| *u > now),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain bookkeeping updated in single steps: a panic elsewhere cannot
        // leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `governor`'s GCRA on tokio's clock, the one the rest of the limiter (pauses, the window log)
/// reads: one time line for all of it, and a paused runtime in tests pauses it too.
type Gcra =
    governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// tokio's clock for `governor`.
#[derive(Clone, Copy, Debug, Default)]
struct TokioClock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(Instant);

impl std::ops::Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        self.0
            .checked_sub(duration.into())
            .map_or(*self, TokioInstant)
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

/// What an acquirer waits for.
enum Wait {
    /// A pause's end, or a start leaving the window.
    Until(Instant),
    /// An answer to a request in flight (slow start), at the latest this.
    Answer(Instant),
}

/// W plus the margin (see [`WINDOW_MARGIN`]).
fn window_span(spec: RateSpec) -> Duration {
    span_of(spec.per())
}

/// A window plus its margin: 2 %, at least [`MIN_WINDOW_MARGIN`], at most [`WINDOW_MARGIN`].
fn span_of(window: Duration) -> Duration {
    window + (window / 50).clamp(MIN_WINDOW_MARGIN, WINDOW_MARGIN)
}

/// The length of the server's window, from the time between the token's oldest request in it
/// and the place it frees (`Retry-After` is rounded up to whole seconds, so that time is the
/// window plus less than a second): whole seconds, rounded down after [`MIN_WINDOW_MARGIN`] for
/// the requests' way to the server, at least 1 s.
fn server_window(oldest_to_free: Duration) -> Duration {
    Duration::from_secs((oldest_to_free + MIN_WINDOW_MARGIN).as_secs().max(1))
}

/// `count × factor`, rounded down (truncation is the point), at least 0.
fn scale(count: u32, factor: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let scaled = (f64::from(count) * factor).min(f64::from(u32::MAX)) as u32;
    scaled
}

/// `count` per `from` as a count per `to`, rounded down.
fn rescale(count: u32, from: Duration, to: Duration) -> u32 {
    let scaled = u128::from(count) * to.as_nanos() / from.as_nanos().max(1);
    u32::try_from(scaled).unwrap_or(u32::MAX)
}

/// When one more start fits `budget` starts in any trailing `span`, after `ahead` more starts
/// that are waiting already: `None` when at once. Past the starts in the log (more waiting than
/// a window holds), an estimate a span per `budget` of them later.
fn room_in(
    starts: &VecDeque<Instant>,
    now: Instant,
    span: Duration,
    budget: u32,
    ahead: u32,
) -> Option<Instant> {
    let first = starts.partition_point(|t| *t + span <= now);
    let in_span = starts.len() - first;
    let (budget, ahead) = (budget.max(1) as usize, ahead as usize);
    if in_span + ahead < budget {
        return None;
    }
    let leaving = in_span + ahead - budget;
    if leaving < in_span {
        return Some(starts[first + leaving] + span);
    }
    let later = u32::try_from((leaving - in_span) / budget + 1).unwrap_or(u32::MAX);
    let last = starts.back().map_or(now, |t| (*t).max(now));
    Some(last + span * later)
}

impl State {
    /// Drops the starts older than the configured window's span (the longest one kept).
    fn prune(&mut self, now: Instant) {
        let span = window_span(self.spec);
        while self.starts.front().is_some_and(|t| *t + span <= now) {
            self.starts.pop_front();
        }
    }

    /// Whether the window log holds this token back: with window pacing, and with even pacing
    /// once a window budget was learned.
    fn enforces_window(&self) -> bool {
        self.pacing == Pacing::Window
            || self.window < self.spec.per()
            || self.budget < self.spec.count()
    }

    /// When the window log has room for one more start after `ahead` waiting ones (see
    /// [`room_in`]): the learned budget per learned window, and the configured count per
    /// configured window when the learned window is shorter.
    fn room(&self, now: Instant, ahead: u32) -> Option<Instant> {
        if !self.enforces_window() {
            return None;
        }
        let learned = room_in(&self.starts, now, span_of(self.window), self.budget, ahead);
        let configured = (self.window < self.spec.per())
            .then(|| {
                room_in(
                    &self.starts,
                    now,
                    window_span(self.spec),
                    self.spec.count(),
                    ahead,
                )
            })
            .flatten();
        learned.max(configured)
    }

    /// Even pacing's interval at its current rate.
    fn even_interval(&self) -> Duration {
        if self.rate >= self.spec.count() {
            self.spec.interval()
        } else {
            window_span(self.spec) / self.rate.max(1)
        }
    }

    /// The budget as requests per configured window: the learned budget at its window's rate,
    /// even pacing's rate, the configured count, whichever is least.
    fn per_configured_window(&self) -> u32 {
        rescale(self.budget, self.window, self.spec.per())
            .min(self.rate)
            .min(self.spec.count())
    }

    /// The configured rate over the learned window: how far the budget grows back.
    fn window_cap(&self) -> u32 {
        rescale(self.spec.count(), self.spec.per(), self.window).max(1)
    }

    /// Starts in the log in the trailing `span`.
    fn count_within(&self, now: Instant, span: Duration) -> u32 {
        let count = self.starts.iter().filter(|t| **t + span > now).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Starts in the log since `from` (the refused ones are out of it: what the server admitted,
    /// and what is still in flight).
    fn count_since(&self, from: Instant) -> u32 {
        let count = self.starts.iter().filter(|t| **t >= from).count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The requests in the log started in the `window` before `started`, up to it (the
    /// server's window when it counted that request, give or take the latency both had), and
    /// the oldest of them.
    fn admitted_before(&self, started: Instant, window: Duration) -> (u32, Option<Instant>) {
        let from = started.checked_sub(window);
        let mut in_window = self
            .starts
            .iter()
            .filter(|t| from.is_none_or(|from| **t > from) && **t <= started)
            .peekable();
        let oldest = in_window.peek().copied().copied();
        #[allow(clippy::cast_possible_truncation)]
        let count = in_window.count() as u32;
        (count, oldest)
    }

    /// A long `Retry-After` from a window that others' requests fill: the budget ×0.7, or what
    /// the token got admitted when it sent more than that (it showed where the server stops;
    /// the episode's refusals then refine it).
    fn cut_by_decrease(
        &mut self,
        retry_after: Duration,
        sent: u32,
        admitted: u32,
        oldest: Option<Instant>,
        now: Instant,
    ) -> Learned {
        if retry_after <= LONG_RETRY_AFTER {
            // Between short and long: a window hit near its end; nothing to learn.
            return Learned::Nothing;
        }
        self.slow_start = None;
        let from = self.budget;
        let cut = scale(from, DECREASE);
        let pushing = sent > cut;
        if pushing {
            self.episode_from = oldest;
        }
        let to = if pushing { cut.min(admitted) } else { cut };
        if to.max(1) >= from {
            return Learned::Nothing;
        }
        let before = self.per_configured_window();
        self.lower_budget(before, to.max(1), now)
    }

    /// Sets the budget per window to `to` and holds it there for a few clean windows (each cut
    /// doubles the next hold); reported as a cut from `before` when the rate per configured
    /// window went down.
    fn lower_budget(&mut self, before: u32, to: u32, now: Instant) -> Learned {
        self.budget = to;
        self.hold(now);
        let after = self.per_configured_window();
        if after < before {
            Learned::BudgetCut {
                from: before,
                to: after,
            }
        } else {
            Learned::Nothing
        }
    }

    /// Cuts even pacing's rate from `from` to `to` (when lower), held like a budget cut.
    fn cut_rate(&mut self, from: u32, to: u32, now: Instant) -> Learned {
        if to >= from {
            return Learned::Nothing;
        }
        self.rate = to;
        self.hold(now);
        Learned::BudgetCut { from, to }
    }

    /// No growth for the hold, in windows; each cut doubles the next hold.
    fn hold(&mut self, now: Instant) {
        self.hold_until = now + self.window * self.probe_hold;
        self.probe_hold = (self.probe_hold * 2).min(MAX_PROBE_HOLD_WINDOWS);
    }

    /// Even pacing from now on, one request at a time: the server refused a burst.
    fn switch_to_even(&mut self) -> Learned {
        self.short_episodes.clear();
        self.pacing = Pacing::Even;
        self.slow_start = None;
        self.burst = NonZeroU32::MIN;
        Learned::SwitchedToEven
    }

    /// Additive increase: the configured count's `INCREASE_PERCENT` of a window (at least 1) per
    /// clean window past the hold, for the window budget up to the configured rate over the
    /// learned window, and for even pacing's rate up to the configured count.
    fn grow(&mut self, now: Instant) {
        let (cap, configured) = (self.window_cap(), self.spec.count());
        if self.budget >= cap && self.rate >= configured {
            return;
        }
        let step = |count: u32| (count * INCREASE_PERCENT / 100).max(1);
        while (self.budget < cap || self.rate < configured) && now >= self.clean_since + self.window
        {
            self.clean_since += self.window;
            if self.clean_since >= self.hold_until {
                if self.budget < cap {
                    self.budget = (self.budget + step(cap)).min(cap);
                }
                if self.rate < configured {
                    self.rate = (self.rate + step(configured)).min(configured);
                }
            }
        }
        if self.budget >= cap && self.rate >= configured {
            tracing::info!(
                budget = configured,
                "no 429 for a while: back to the configured rate {}",
                self.spec
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("300/min", 300, 60, 1),
            ("5/s", 5, 1, 1),
            ("18000/h", 18000, 3600, 1),
            ("300/min,burst=50", 300, 60, 50),
            (" 10 / sec , burst=3 ", 10, 1, 3),
            ("6000/minute", 6000, 60, 1),
            ("5/10s", 5, 10, 1),
        ];
        for (input, count, secs, burst) in cases {
            let spec: RateSpec = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(spec.count(), count, "{input}");
            assert_eq!(spec.per(), Duration::from_secs(secs), "{input}");
            assert_eq!(spec.burst(), burst, "{input}");
        }
    }

    #[test]
    fn rejects_malformed_rates_with_a_hint() {
        for input in [
            "",
            "300",
            "0/min",
            "x/min",
            "300/fortnight",
            "300/min,50",
            "300/min,burst=0",
            "300/0s",
        ] {
            let err = input.parse::<RateSpec>().unwrap_err();
            assert!(err.to_string().contains("e.g. 300/min"), "{input}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for input in ["300/min", "5/s", "18000/h", "300/min,burst=50", "5/10s"] {
            let spec: RateSpec = input.parse().unwrap();
            assert_eq!(spec.to_string(), input);
            assert_eq!(spec.to_string().parse::<RateSpec>().unwrap(), spec);
        }
    }

    #[test]
    fn default_is_genesys_300_per_minute() {
        let spec = RateSpec::default();
        assert_eq!(spec.to_string(), "300/min");
        assert_eq!(spec.interval(), Duration::from_millis(200));
        assert!((spec.per_minute() - 300.0).abs() < f64::EPSILON);
    }

    #[test]
    fn burst_is_explicit() {
        let limiter = RateLimiter::new("1/h,burst=3".parse().unwrap(), Pacing::Even);
        let gcra = Arc::clone(&limiter.gcra.lock().unwrap());
        let admitted = (0..5).filter(|_| gcra.check().is_ok()).count();
        assert_eq!(admitted, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_every_acquirer_until_it_ends() {
        let limiter = Arc::new(RateLimiter::new(
            "1000/s,burst=100".parse().unwrap(),
            Pacing::Window,
        ));
        let start = Instant::now();
        let deadline = limiter.pause_for(Duration::from_secs(5));
        assert_eq!(deadline, start + Duration::from_secs(5));
        // A shorter pause does not shorten the longer one.
        assert_eq!(limiter.pause_for(Duration::from_secs(1)), deadline);

        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter.acquire().await.unwrap();
                    Instant::now()
                })
            })
            .collect();
        for waiter in waiters {
            let admitted_at = waiter.await.unwrap();
            assert!(admitted_at >= deadline, "admitted during the pause");
        }
        assert_eq!(limiter.paused_until(), None);
    }

    const MAX_WAIT: Duration = Duration::from_secs(180);

    #[test]
    fn pacing_parses_and_defaults_to_window() {
        assert_eq!(Pacing::default(), Pacing::Window);
        assert_eq!("even".parse::<Pacing>().unwrap(), Pacing::Even);
        assert_eq!(" Window ".parse::<Pacing>().unwrap(), Pacing::Window);
        assert!("smooth".parse::<Pacing>().is_err());
        assert_eq!(Pacing::Even.to_string(), "even");
    }

    #[test]
    fn the_window_margin_is_two_percent_between_100_ms_and_a_second() {
        let span =
            |rate: &str| RateLimiter::new(rate.parse().unwrap(), Pacing::Window).window_span();
        assert_eq!(span("300/min"), Duration::from_millis(61_000));
        assert_eq!(span("18000/h"), Duration::from_secs(3601));
        assert_eq!(span("100/10s"), Duration::from_millis(10_200));
        assert_eq!(span("10/s"), Duration::from_millis(1100));
    }

    /// A request admitted and answered (the answers let slow start go on).
    async fn admit(limiter: &RateLimiter) -> Admission {
        let admission = limiter.acquire().await.unwrap();
        limiter.on_answered(admission.instant);
        admission
    }

    /// A token that sent before: its first request a window ago, out of the window since. What
    /// it learns next is not from its first window (see `a_fresh_token_*`).
    async fn seasoned(limiter: &RateLimiter) {
        admit(limiter).await;
        tokio::time::advance(limiter.window_span()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_admits_its_budget_at_once_and_then_waits_for_the_oldest_to_leave() {
        let limiter = RateLimiter::new("5/min".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        for _ in 0..5 {
            let admission = admit(&limiter).await;
            assert_eq!(admission.instant, start, "within the budget nothing waits");
        }
        // The sixth waits until the first start leaves the window (W + margin), not W/B.
        let sixth = admit(&limiter).await;
        assert_eq!(sixth.instant, start + limiter.window_span());
        // The four others of the first window are still in it: the seventh waits no longer
        // (they leave at the same moment), and the budget stays 5 per window.
        for _ in 0..4 {
            assert_eq!(admit(&limiter).await.instant, start + limiter.window_span());
        }
        let next = admit(&limiter).await;
        assert_eq!(next.instant, start + limiter.window_span() * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_set_before_the_first_request_is_the_window_budget() {
        let limiter = RateLimiter::new(RateSpec::GENESYS_DEFAULT, Pacing::Window);
        let learned = RateSpec::new(600, Duration::from_secs(60)).unwrap();
        limiter.set_configured_rate(learned);
        assert_eq!(limiter.spec(), learned);
        assert_eq!(limiter.state().budget, 600);
        let start = Instant::now();
        for _ in 0..600 {
            assert_eq!(admit(&limiter).await.instant, start);
        }
        // The 601st waits for the first start to leave the window: never 601 in one window.
        let next = admit(&limiter).await;
        assert_eq!(next.instant, start + limiter.window_span());
        assert_eq!(limiter.window_span(), Duration::from_secs(61));
    }

    #[test]
    fn a_rate_set_later_replaces_the_even_pacing_quota() {
        let limiter = RateLimiter::new("1/h,burst=2".parse().unwrap(), Pacing::Even);
        limiter.set_configured_rate("1/h,burst=4".parse().unwrap());
        let gcra = Arc::clone(&limiter.gcra.lock().unwrap());
        let admitted = (0..6).filter(|_| gcra.check().is_ok()).count();
        assert_eq!(admitted, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_the_window_too() {
        let limiter = RateLimiter::new("5/min".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        let first = admit(&limiter).await;
        // Between short and long: nothing learned, but the token waits.
        let learned = limiter.on_throttled(
            first.instant,
            Some(Duration::from_secs(3)),
            Duration::from_secs(3),
            MAX_WAIT,
        );
        assert_eq!(learned, Learned::Nothing);
        let next = admit(&limiter).await;
        assert_eq!(next.instant, start + Duration::from_secs(3));
        assert_eq!(limiter.state().pacing, Pacing::Window);
        assert_eq!(limiter.state().budget, 5);
    }

    /// A 429 with `retry_after` to a request admitted now, paused for as long.
    async fn refused(limiter: &RateLimiter, retry_after: u64) -> Learned {
        let admission = limiter.acquire().await.unwrap();
        let retry_after = Duration::from_secs(retry_after);
        limiter.on_throttled(admission.instant, Some(retry_after), retry_after, MAX_WAIT)
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_short_retry_afters_switch_the_token_to_even_pacing_one_does_not() {
        let limiter = RateLimiter::new("300/min".parse().unwrap(), Pacing::Window);
        seasoned(&limiter).await;
        // A burst refused at once is one episode: the 429s of requests started before the first
        // one arrived add nothing.
        let in_flight: Vec<_> = {
            let mut admitted = Vec::new();
            for _ in 0..10 {
                admitted.push(admit(&limiter).await);
            }
            admitted
        };
        for admission in &in_flight {
            let learned = limiter.on_throttled(
                admission.instant,
                Some(Duration::from_secs(1)),
                Duration::from_secs(1),
                MAX_WAIT,
            );
            assert_eq!(learned, Learned::Nothing);
        }
        assert_eq!(
            limiter.state().pacing,
            Pacing::Window,
            "one episode is no evidence"
        );

        // Two more episodes, each from a request sent after the previous 429: switch.
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        assert_eq!(limiter.state().pacing, Pacing::Window);
        assert_eq!(refused(&limiter, 2).await, Learned::SwitchedToEven);
        assert_eq!(limiter.state().pacing, Pacing::Even);
        // Said once: further short 429s teach nothing new.
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        assert_eq!(limiter.state().budget, 300, "the budget is untouched");
    }

    #[tokio::test(start_paused = true)]
    async fn short_retry_afters_further_apart_than_a_window_are_not_evidence() {
        let limiter = RateLimiter::new("300/min".parse().unwrap(), Pacing::Window);
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        tokio::time::advance(Duration::from_secs(60)).await;
        // The two earlier episodes left the window: this is the second of the current one.
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        assert_eq!(limiter.state().pacing, Pacing::Window);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_cuts_the_budget_and_clean_windows_grow_it_back() {
        let limiter = RateLimiter::new("300/min".parse().unwrap(), Pacing::Window);
        seasoned(&limiter).await;
        // 250 admitted by the server in this window: the cut is the multiplicative one.
        for _ in 0..250 {
            admit(&limiter).await;
        }
        let first = admit(&limiter).await;
        let second = admit(&limiter).await;
        let long = Duration::from_secs(42);
        assert_eq!(
            limiter.on_throttled(first.instant, Some(long), long, MAX_WAIT),
            Learned::BudgetCut { from: 300, to: 210 }
        );
        // Another request of the same episode does not cut again.
        assert_eq!(
            limiter.on_throttled(second.instant, Some(long), long, MAX_WAIT),
            Learned::Nothing
        );
        assert_eq!(limiter.state().budget, 210);
        // A later episode (the next request waits for the full window to free; the cut is held,
        // so that clean window grew nothing) cuts again: ×0.7, rounded down.
        assert_eq!(
            refused(&limiter, 42).await,
            Learned::BudgetCut { from: 210, to: 147 }
        );
        // The second cut is held for twice as long as the first (6 windows), then +1 % of 300
        // (3) after each window without a 429, never above 300.
        let mut expected = 147;
        for window in 1..=60 {
            tokio::time::advance(Duration::from_secs(60)).await;
            if window >= 2 * PROBE_HOLD_WINDOWS {
                expected = (expected + 3).min(300);
            }
            assert_eq!(limiter.state().budget, expected, "window {window}");
        }
        assert_eq!(expected, 300);
        // Never below 1.
        let tiny = RateLimiter::new("1/min".parse().unwrap(), Pacing::Window);
        assert_eq!(refused(&tiny, 30).await, Learned::Nothing);
        assert_eq!(tiny.state().budget, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_budget_is_what_the_window_admits() {
        let limiter = RateLimiter::new("10/min".parse().unwrap(), Pacing::Window);
        seasoned(&limiter).await;
        let start = Instant::now();
        for _ in 0..5 {
            admit(&limiter).await;
        }
        // The sixth is refused: the token sent less than the cut, so the cut is ×0.7.
        assert_eq!(
            refused(&limiter, 42).await,
            Learned::BudgetCut { from: 10, to: 7 }
        );
        // After the pause, 2 more fit in the window (the refused one is not in it)...
        for _ in 0..2 {
            let admission = admit(&limiter).await;
            assert_eq!(admission.instant, start + Duration::from_secs(42));
        }
        // ...and the next waits until the first ones leave it.
        let next = admit(&limiter).await;
        assert_eq!(next.instant, start + limiter.window_span());
    }

    #[tokio::test(start_paused = true)]
    async fn the_refusals_of_one_episode_bring_the_budget_down_to_what_the_server_admitted() {
        // --rate 240 per minute against a server that admits 60 of a burst.
        let limiter = RateLimiter::new("240/min".parse().unwrap(), Pacing::Window);
        seasoned(&limiter).await;
        let burst: Vec<_> = {
            let mut all = Vec::new();
            for _ in 0..240 {
                all.push(admit(&limiter).await);
            }
            all
        };
        let long = Duration::from_secs(42);
        let mut learned = Vec::new();
        for refused in &burst[60..] {
            learned.push(limiter.on_throttled(refused.instant, Some(long), long, MAX_WAIT));
        }
        // One report for the episode...
        assert_eq!(
            learned.iter().filter(|l| **l != Learned::Nothing).count(),
            1,
            "{learned:?}"
        );
        // ...and the budget lands on the 60 the server admitted.
        assert_eq!(limiter.state().budget, 60);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_budget_applies_to_even_pacing_too() {
        let limiter = RateLimiter::new("10/min,burst=10".parse().unwrap(), Pacing::Even);
        assert_eq!(
            refused(&limiter, 42).await,
            Learned::BudgetCut { from: 10, to: 7 }
        );
        assert_eq!(limiter.state().pacing, Pacing::Even);
        assert_eq!(refused(&limiter, 1).await, Learned::Nothing);
        assert_eq!(limiter.state().pacing, Pacing::Even);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_above_max_wait_sets_the_token_aside_without_waiting() {
        let limiter = RateLimiter::new("300/min".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        let admission = admit(&limiter).await;
        let hour = Duration::from_secs(3600);
        let learned = limiter.on_throttled(admission.instant, Some(hour), hour, MAX_WAIT);
        let aside = SetAside {
            until: start + hour,
            retry_after: hour,
        };
        assert_eq!(learned, Learned::SetAside(aside));
        // Reported once.
        assert_eq!(
            limiter.on_throttled(admission.instant, Some(hour), hour, MAX_WAIT),
            Learned::Nothing
        );
        assert_eq!(limiter.acquire().await, Err(aside));
        assert_eq!(Instant::now(), start, "no time passed: nothing slept");
        assert_eq!(limiter.paused_until(), None, "set aside, not paused");
        assert_eq!(limiter.state().set_aside_until, Some(start + hour));
        // It ends when the server said.
        tokio::time::advance(hour).await;
        assert!(limiter.acquire().await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_sends_rounds_twice_as_large_each_when_the_last_was_answered() {
        let limiter = Arc::new(RateLimiter::new("300/min".parse().unwrap(), Pacing::Window));
        let start = Instant::now();
        for _ in 0..SLOW_START_INITIAL {
            assert_eq!(limiter.acquire().await.unwrap().instant, start);
        }
        let next = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.unwrap().instant })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 1..SLOW_START_INITIAL {
            limiter.on_answered(start);
        }
        tokio::task::yield_now().await;
        assert!(
            !next.is_finished(),
            "the fifth waits for the whole first round"
        );
        limiter.on_answered(start);
        let round_two = start + Duration::from_millis(50);
        assert_eq!(next.await.unwrap(), round_two);
        // The second round is twice as large: seven more at once, then a wait again.
        for _ in 1..2 * SLOW_START_INITIAL {
            assert_eq!(limiter.acquire().await.unwrap().instant, round_two);
        }
        // A late answer to the first round does not count for the second; should answers never
        // come, slow start ends after a window.
        limiter.on_answered(start);
        assert_eq!(
            limiter.acquire().await.unwrap().instant,
            start + Duration::from_secs(60)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn even_pacing_and_a_budget_the_first_round_covers_need_no_slow_start() {
        let even = RateLimiter::new("10/s,burst=10".parse().unwrap(), Pacing::Even);
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(even.acquire().await.unwrap().instant, start);
        }
        // The second round (8) covers a budget of 5: slow start ends.
        let small = RateLimiter::new("5/min".parse().unwrap(), Pacing::Window);
        for _ in 0..SLOW_START_INITIAL {
            admit(&small).await;
        }
        assert_eq!(small.acquire().await.unwrap().instant, start);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_cut_to_what_the_server_admitted_the_budget_holds_before_it_probes() {
        // --rate 100/10s against a window that admits 60 of this token's requests.
        let limiter = RateLimiter::new("100/10s".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        for _ in 0..60 {
            admit(&limiter).await;
        }
        // The window is the token's own (it ends when its first request leaves): the budget is
        // what the server admitted, not 0.7 x 100.
        let ten = Duration::from_secs(10);
        assert_eq!(
            refused(&limiter, 10).await,
            Learned::BudgetCut { from: 100, to: 60 }
        );
        // Held at 60 for three clean windows, then +1 per window.
        for (window, budget) in [(1, 60), (2, 60), (3, 61), (4, 62)] {
            tokio::time::sleep_until(start + ten * window).await;
            assert_eq!(limiter.state().budget, budget, "window {window}");
        }
        // The probe is refused at 62: back to the 60 admitted, held twice as long.
        let probe_start = Instant::now();
        for _ in 0..60 {
            admit(&limiter).await;
        }
        assert_eq!(
            refused(&limiter, 10).await,
            Learned::BudgetCut { from: 62, to: 60 }
        );
        for window in 1..=6 {
            tokio::time::sleep_until(probe_start + ten * window).await;
            let expected = if window < 6 { 60 } else { 61 };
            assert_eq!(limiter.state().budget, expected, "window {window}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_from_a_window_that_others_opened_cuts_by_0_7() {
        let limiter = RateLimiter::new("100/10s".parse().unwrap(), Pacing::Window);
        seasoned(&limiter).await;
        for _ in 0..20 {
            admit(&limiter).await;
        }
        // The server's window ends in 3 s, so it began 7 s before this token's first request:
        // others fill it, and 20 is no measure of what this token may send.
        assert_eq!(
            refused(&limiter, 3 + 5).await,
            Learned::BudgetCut { from: 100, to: 70 }
        );
    }

    /// A server's limit in the simulations below: admits a request at `now` or refuses it with
    /// a `Retry-After` in whole seconds, rounded up, as Genesys and the simulator do.
    trait ServerLimit: Send {
        fn check(&mut self, now: Instant) -> Result<(), Duration>;
    }

    fn whole_seconds(wait: Duration) -> Duration {
        Duration::from_secs((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }

    /// At most `budget` admitted in any trailing `window`.
    struct ServerWindow {
        budget: usize,
        window: Duration,
        admitted: VecDeque<Instant>,
    }

    impl ServerLimit for ServerWindow {
        fn check(&mut self, now: Instant) -> Result<(), Duration> {
            while self
                .admitted
                .front()
                .is_some_and(|at| *at + self.window <= now)
            {
                self.admitted.pop_front();
            }
            if self.admitted.len() >= self.budget {
                return Err(whole_seconds(self.admitted[0] + self.window - now));
            }
            self.admitted.push_back(now);
            Ok(())
        }
    }

    /// At most `budget` admitted per fixed window of `window`, the first one beginning `offset`
    /// before the run: a client that starts within a window sees it end early.
    struct ServerFixedWindow {
        budget: usize,
        window: Duration,
        began: Instant,
        admitted: usize,
    }

    impl ServerLimit for ServerFixedWindow {
        fn check(&mut self, now: Instant) -> Result<(), Duration> {
            while self.began + self.window <= now {
                self.began += self.window;
                self.admitted = 0;
            }
            if self.admitted >= self.budget {
                return Err(whole_seconds(self.began + self.window - now));
            }
            self.admitted += 1;
            Ok(())
        }
    }

    fn fixed_window(budget: usize, secs: u64, offset: Duration) -> Box<dyn ServerLimit> {
        Box::new(ServerFixedWindow {
            budget,
            window: Duration::from_secs(secs),
            began: Instant::now() - offset,
            admitted: 0,
        })
    }

    /// A smooth bucket: one request per `interval`, `burst` at once.
    struct ServerBucket {
        interval: Duration,
        burst: u32,
        tat: Option<Instant>,
    }

    impl ServerLimit for ServerBucket {
        fn check(&mut self, now: Instant) -> Result<(), Duration> {
            let tat = self.tat.unwrap_or(now).max(now);
            let tolerance = self.interval * (self.burst - 1);
            if tat > now + tolerance {
                return Err(whole_seconds(tat - tolerance - now));
            }
            self.tat = Some(tat + self.interval);
            Ok(())
        }
    }

    /// What a simulated run saw: the arrival time and outcome of every attempt, and its end.
    struct Run {
        attempts: Vec<(Duration, bool)>,
        wall: Duration,
    }

    impl Run {
        fn refused(&self) -> usize {
            self.attempts.iter().filter(|(_, refused)| *refused).count()
        }

        fn refused_after(&self, first: Duration) -> usize {
            self.attempts
                .iter()
                .filter(|(at, refused)| *refused && *at >= first)
                .count()
        }
    }

    /// `requests` requests, `concurrency` at a time, each through the first token of `limiters`
    /// not paused (round-robin), to a server 50 ms away that checks each request against its
    /// token's limit and the shared ones and answers at once. A refused request waits its
    /// `Retry-After` (the limiter pauses the token) and goes again, as the client does.
    async fn simulate(
        limiters: &[Arc<RateLimiter>],
        per_token: Vec<Box<dyn ServerLimit>>,
        shared: Option<Box<dyn ServerLimit>>,
        requests: usize,
        concurrency: usize,
    ) -> Run {
        simulate_with_jitter(
            limiters,
            per_token,
            shared,
            requests,
            concurrency,
            Duration::ZERO,
        )
        .await
    }

    /// [`simulate`] with each request's way to the server 50 ms plus up to `jitter` more (drawn
    /// from a fixed sequence), so that requests may reach the server in another order than they
    /// started, as they do over real connections.
    async fn simulate_with_jitter(
        limiters: &[Arc<RateLimiter>],
        per_token: Vec<Box<dyn ServerLimit>>,
        shared: Option<Box<dyn ServerLimit>>,
        requests: usize,
        concurrency: usize,
        jitter: Duration,
    ) -> Run {
        const LATENCY: Duration = Duration::from_millis(50);
        let start = Instant::now();
        let server = Arc::new(Mutex::new((per_token, shared, Vec::new())));
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let draws = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (server, remaining, next, draws) = (
                    Arc::clone(&server),
                    Arc::clone(&remaining),
                    Arc::clone(&next),
                    Arc::clone(&draws),
                );
                let limiters = limiters.to_vec();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    while remaining
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        loop {
                            let first = next.fetch_add(1, SeqCst);
                            let index = (0..limiters.len())
                                .map(|offset| (first + offset) % limiters.len())
                                .min_by_key(|index| limiters[*index].paused_until())
                                .unwrap();
                            let limiter = &limiters[index];
                            let admission = limiter.acquire().await.unwrap();
                            let draw = draws.fetch_add(1, SeqCst);
                            // A fixed pseudo-random sequence (Knuth's multiplicative hash).
                            let fraction =
                                (draw.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
                            tokio::time::sleep(LATENCY + jitter.mul_f64(fraction)).await;
                            let now = Instant::now();
                            let verdict = {
                                let mut guard = server.lock().unwrap();
                                let (per_token, shared, log) = &mut *guard;
                                let own = per_token[index].check(now);
                                let verdict = match (own, shared.as_mut()) {
                                    (Err(wait), _) => Err(wait),
                                    (Ok(()), Some(shared)) => shared.check(now),
                                    (Ok(()), None) => Ok(()),
                                };
                                log.push((now - start, verdict.is_err()));
                                verdict
                            };
                            match verdict {
                                Ok(()) => {
                                    limiter.on_answered(admission.instant);
                                    break;
                                }
                                Err(wait) => {
                                    limiter.on_throttled(
                                        admission.instant,
                                        Some(wait),
                                        wait,
                                        MAX_WAIT,
                                    );
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let attempts = std::mem::take(&mut server.lock().unwrap().2);
        Run {
            attempts,
            wall: start.elapsed(),
        }
    }

    fn window(budget: usize, secs: u64) -> Box<dyn ServerLimit> {
        Box::new(ServerWindow {
            budget,
            window: Duration::from_secs(secs),
            admitted: VecDeque::new(),
        })
    }

    fn bucket(per_second: u32, burst: u32) -> Box<dyn ServerLimit> {
        Box::new(ServerBucket {
            interval: Duration::from_secs(1) / per_second,
            burst,
            tat: None,
        })
    }

    fn limiters(rate: &str, tokens: usize) -> Vec<Arc<RateLimiter>> {
        (0..tokens)
            .map(|_| Arc::new(RateLimiter::new(rate.parse().unwrap(), Pacing::Window)))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_is_detected_before_the_first_windows_budget_is_spent() {
        // 900 requests with --rate 100/10s into a bucket of 10/s, burst 10.
        let tokens = limiters("100/10s", 1);
        let run = simulate(&tokens, vec![bucket(10, 10)], None, 900, 64).await;
        assert_eq!(tokens[0].state().pacing, Pacing::Even);
        assert!(run.refused() <= 18, "{} refused", run.refused());
        assert_eq!(run.refused_after(Duration::from_secs(10)), 0);
        let floor = Duration::from_secs_f64(890.0 / 10.0);
        assert!(run.wall <= floor.mul_f64(1.05), "{:?}", run.wall);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_four_times_smaller_is_learned_in_the_first_window() {
        let tokens = limiters("240/10s", 1);
        let run = simulate(&tokens, vec![window(60, 10)], None, 600, 64).await;
        let later = run.refused_after(Duration::from_secs(10));
        assert!(later * 50 <= run.attempts.len(), "{later} refused later");
        // Nine windows' wait (599 / 60) plus wire time.
        assert!(run.wall <= Duration::from_secs(93), "{:?}", run.wall);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_four_times_slower_is_learned_in_the_first_window() {
        let tokens = limiters("240/10s", 1);
        let run = simulate(&tokens, vec![bucket(6, 10)], None, 600, 64).await;
        assert_eq!(tokens[0].state().pacing, Pacing::Even);
        let later = run.refused_after(Duration::from_secs(10));
        assert!(later * 50 <= run.attempts.len(), "{later} refused later");
    }

    #[tokio::test(start_paused = true)]
    async fn an_org_limit_below_the_tokens_total_is_shared_out_in_the_first_window() {
        for bucket_shape in [false, true] {
            let tokens = limiters("100/10s", 2);
            let per_token = if bucket_shape {
                vec![bucket(10, 10), bucket(10, 10)]
            } else {
                vec![window(100, 10), window(100, 10)]
            };
            let run = simulate(&tokens, per_token, Some(window(100, 10)), 600, 64).await;
            let later = run.refused_after(Duration::from_secs(10));
            assert!(
                later * 50 <= run.attempts.len(),
                "bucket {bucket_shape}: {later} refused later"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_larger_than_a_smooth_servers_is_dropped_not_taken_for_a_lower_rate() {
        // Even pacing at the server's own rate, but a burst of 5 into a bucket of 3.
        let tokens = limiters("600/min,burst=5", 1);
        let run = simulate(&tokens, vec![bucket(10, 3)], None, 60, 32).await;
        let state = tokens[0].state();
        assert_eq!(state.pacing, Pacing::Even);
        assert_eq!(state.budget, 600, "the rate was right all along");
        assert!(run.wall <= Duration::from_secs(12), "{:?}", run.wall);
    }

    /// A server model made fresh for each run.
    type NewServer = fn() -> Box<dyn ServerLimit>;

    /// The least time a server that admits `budget` per window of `window` needs for the
    /// `admitted` requests of a run: the last one starts a whole window after the one `budget`
    /// before it, and so on back to the first window; plus one request's way to the server.
    fn window_floor(admitted: usize, budget: usize, window: Duration) -> Duration {
        window * u32::try_from((admitted - 1) / budget).unwrap() + Duration::from_millis(50)
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_window_shorter_than_the_configured_one_is_learned_from_the_first_refusal() {
        // --rate 600/min against a server that allows 100 per 10 s (600/min too), sliding, or
        // fixed with the token's first request 0, 3 or 7 s into a window; requests reach it
        // after 50 ms, or 50 to 70 ms (in another order than they started). A fixed window
        // entered late ends early once: that takes a second refusal, in the second window.
        let servers: [(&str, NewServer, u64); 4] = [
            ("sliding", || window(100, 10), 10),
            ("fixed", || fixed_window(100, 10, Duration::ZERO), 10),
            (
                "fixed, 3 s in",
                || fixed_window(100, 10, Duration::from_secs(3)),
                20,
            ),
            (
                "fixed, 7 s in",
                || fixed_window(100, 10, Duration::from_secs(7)),
                20,
            ),
        ];
        for (name, server, learned_in) in servers {
            for jitter in [Duration::ZERO, Duration::from_millis(20)] {
                let tokens = limiters("600/min", 1);
                let run =
                    simulate_with_jitter(&tokens, vec![server()], None, 1200, 64, jitter).await;
                let state = tokens[0].state();
                assert_eq!(
                    (state.window, state.window_budget, state.budget),
                    (Duration::from_secs(10), 100, 600),
                    "{name}, jitter {jitter:?}: the server's window and count, its full rate"
                );
                // At least 95 % of the rate the server admits: within 1/0.95 of the least time
                // its window allows for what it admitted.
                let admitted = run.attempts.len() - run.refused();
                let floor = window_floor(admitted, 100, Duration::from_secs(10));
                assert!(
                    run.wall.as_secs_f64() * 0.95 <= floor.as_secs_f64(),
                    "{name}, jitter {jitter:?}: {:?} for a floor of {floor:?}",
                    run.wall
                );
                // The first window's refusals teach it; after that, next to none.
                let later = run.refused_after(Duration::from_secs(learned_in));
                assert!(
                    later * 100 <= run.attempts.len(),
                    "{name}, jitter {jitter:?}: {later} refused after {learned_in} s"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn against_a_smooth_server_at_most_2_percent_of_200_requests_are_refused() {
        // Each with --rate at the server's own rate: a window of 1 s (10 per second), buckets
        // refilling continuously (burst 10); 200 requests, the first window included.
        let cases: [(&str, NewServer, Duration); 6] = [
            ("600/min", || window(10, 1), Duration::from_secs(19)),
            ("600/min,burst=5", || window(10, 1), Duration::from_secs(19)),
            ("600/min", || bucket(10, 10), Duration::from_secs(19)),
            ("300/min", || bucket(5, 10), Duration::from_secs(38)),
            ("300/min,burst=5", || bucket(5, 10), Duration::from_secs(38)),
            ("100/10s", || bucket(10, 10), Duration::from_secs(19)),
        ];
        for (rate, server, floor) in cases {
            let tokens = limiters(rate, 1);
            let run = simulate(&tokens, vec![server()], None, 200, 64).await;
            let attempts = run.attempts.len();
            assert!(
                run.refused() * 50 <= 200,
                "--rate {rate}: {} of {attempts} refused",
                run.refused()
            );
            // Not by going slowly: within 10 % of the server's floor.
            assert!(
                run.wall <= floor.mul_f64(1.1),
                "--rate {rate}: {:?} for a floor of {floor:?}",
                run.wall
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_org_limit_below_rate_times_tokens_ends_within_5_percent_of_its_floor() {
        // Tokens of 100 per 10 s, an org window of 100 per 10 s shared by all of them; per
        // token a window or a bucket of 10/s (burst 10); 600 requests. (Four tokens behind
        // buckets end at 1.052x: paced evenly one at a time, they forgo the buckets' bursts.)
        for (tokens, bucket_shape) in [(2, false), (2, true), (4, false)] {
            {
                for jitter in [Duration::ZERO, Duration::from_millis(20)] {
                    let limiters = limiters("100/10s", tokens);
                    let per_token = (0..tokens)
                        .map(|_| {
                            if bucket_shape {
                                bucket(10, 10)
                            } else {
                                window(100, 10)
                            }
                        })
                        .collect();
                    let run = simulate_with_jitter(
                        &limiters,
                        per_token,
                        Some(window(100, 10)),
                        600,
                        64,
                        jitter,
                    )
                    .await;
                    let admitted = run.attempts.len() - run.refused();
                    let mut floor = window_floor(admitted, 100, Duration::from_secs(10));
                    if bucket_shape {
                        // The org's first 100 go through buckets: 10 each at once, then 10/s each.
                        let (burst, per_second) = (10 * tokens, 10 * tokens);
                        floor += Duration::from_secs_f64(
                            (100 - burst.min(100)) as f64 / per_second as f64,
                        );
                    }
                    assert!(
                        run.wall.as_secs_f64() <= floor.as_secs_f64() * 1.05,
                        "{tokens} tokens, bucket {bucket_shape}, jitter {jitter:?}: {:?} for a \
                         floor of {floor:?}",
                        run.wall
                    );
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_lands_on_what_the_server_admitted_when_refusals_arrive_out_of_order() {
        // 60 requests 1 ms apart; the server admitted 50 of them in the order they reached it,
        // which is not the order they started: the 46th was refused, the 47th to 51st admitted.
        let limiter = RateLimiter::new("100/10s".parse().unwrap(), Pacing::Window);
        let mut started = Vec::new();
        for _ in 0..60 {
            started.push(admit(&limiter).await.instant);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let refused = [45].into_iter().chain(51..60);
        let ten = Duration::from_secs(10);
        for index in refused {
            limiter.on_throttled(started[index], Some(ten), ten, MAX_WAIT);
        }
        assert_eq!(limiter.state().window_budget, 50);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_tells_the_pool_when_this_token_admits_again_after_its_queue() {
        let limiter = Arc::new(RateLimiter::new("5/min".parse().unwrap(), Pacing::Window));
        let start = Instant::now();
        assert_eq!(limiter.paused_until(), None, "room: at once");
        let mut starts = Vec::new();
        for _ in 0..5 {
            starts.push(admit(&limiter).await.instant);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let span = limiter.window_span();
        // Full: the next is admitted when the oldest leaves the window...
        assert_eq!(limiter.paused_until(), Some(start + span));
        // ...and after two waiting for this token already, when the third oldest does.
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move { limiter.acquire().await.unwrap().instant })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(limiter.paused_until(), Some(starts[2] + span));
        for waiter in waiting {
            waiter.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn even_pacing_keeps_its_pace_when_a_window_budget_is_learned() {
        // A smooth server of 10/s behind an org window that admitted 5 of this token's
        // requests: the token sends its 5 per window at 10/s, not spread over the window.
        let limiter = RateLimiter::new("100/10s".parse().unwrap(), Pacing::Even);
        let start = Instant::now();
        for _ in 0..5 {
            admit(&limiter).await;
        }
        assert_eq!(
            refused(&limiter, 10).await,
            Learned::BudgetCut { from: 100, to: 5 }
        );
        let mut next = Vec::new();
        for _ in 0..6 {
            next.push(admit(&limiter).await.instant - start);
        }
        let paced: Vec<_> = next[..5].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            paced.iter().all(|gap| *gap == Duration::from_millis(100)),
            "{next:?}"
        );
        // The sixth waits for the window.
        assert!(next[5] >= next[0] + limiter.window_span(), "{next:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_tokens_first_requests_refused_with_a_short_retry_after_pace_evenly_at_once() {
        let limiter = RateLimiter::new("300/min".parse().unwrap(), Pacing::Window);
        for _ in 0..12 {
            admit(&limiter).await;
        }
        // One episode: the server frees a place within 2 s of the token's first request.
        assert_eq!(refused(&limiter, 1).await, Learned::SwitchedToEven);
        assert_eq!(limiter.state().pacing, Pacing::Even);
        assert_eq!(limiter.state().budget, 300, "at --rate");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_tokens_first_refusal_with_a_long_retry_after_learns_the_servers_window() {
        // --rate 600/min; the server refuses the 101st request at once, its place free in 10 s.
        let limiter = RateLimiter::new("600/min".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        for _ in 0..100 {
            admit(&limiter).await;
        }
        // 600 per minute all the same: nothing to report as a cut.
        assert_eq!(refused(&limiter, 10).await, Learned::Nothing);
        let state = limiter.state();
        assert_eq!(
            (state.window, state.window_budget, state.budget),
            (Duration::from_secs(10), 100, 600)
        );
        // 100 again once the first ones leave the server's window (plus the margin), not after
        // a minute; and never more than 600 in the configured minute.
        let next = admit(&limiter).await;
        assert_eq!(next.instant, start + Duration::from_millis(10_200));
    }
}
