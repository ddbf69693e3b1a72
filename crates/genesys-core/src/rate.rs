//! Request rate: the `--rate` specification and the per-token limiter.
//!
//! Genesys allows 300 requests per minute per client-credentials token by default, counted in
//! windows. Each token gets one [`RateLimiter`]: by default a window budget (at most B requests
//! started in any trailing W), or even pacing (GCRA through `governor`, explicit burst); see
//! [`Pacing`]. A 429 with `Retry-After` pauses the whole limiter, so every request through that
//! token waits, not just the one that was refused; and the limiter learns from it (a smooth
//! server, a smaller budget, a wait too long to sleep through: see [`Learned`]).

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota};
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
/// "1" too.
pub const SMOOTH_EVIDENCE: usize = 3;

/// Multiplicative decrease of a token's budget after a long `Retry-After` (AIMD, as TCP).
const DECREASE: f64 = 0.7;
/// Additive increase after each clean window: this percentage of the configured budget. Small,
/// because each step above what the server allows costs that many refused requests.
const INCREASE_PERCENT: u32 = 1;

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
    /// Requests allowed per window now (learned; the configured count until a long 429).
    pub budget: u32,
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
    gcra: Mutex<Arc<DefaultDirectRateLimiter>>,
    state: Mutex<State>,
}

struct State {
    /// The configured rate (see [`RateLimiter::set_configured_rate`]).
    spec: RateSpec,
    pacing: Pacing,
    /// Current budget per window, 1..=spec.count().
    budget: u32,
    /// Start times of the requests admitted in the last `window + margin` (oldest first).
    starts: VecDeque<Instant>,
    paused_until: Option<Instant>,
    set_aside: Option<SetAside>,
    /// When the last 429 that counted as evidence arrived. A 429 to a request started by then was in flight in the same episode and says nothing new (one burst refused at once is
    /// one piece of evidence, and one budget cut).
    last_evidence: Option<Instant>,
    /// Arrival of the short-`Retry-After` episodes of the last window.
    short_episodes: VecDeque<Instant>,
    /// Start of the current clean window (no 429 since, and the budget has not grown since).
    clean_since: Instant,
    /// Whether the refusals of the current episode bring the budget down to what the server
    /// admitted (the token sent more than the cut, see `on_throttled`).
    refining: bool,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("RateLimiter")
            .field("spec", &self.spec())
            .field("pacing", &state.pacing)
            .field("budget", &state.budget)
            .field("paused_until", &self.paused_until())
            .field("set_aside_until", &state.set_aside_until)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(spec: RateSpec, pacing: Pacing) -> Self {
        Self {
            gcra: Mutex::new(Arc::new(DefaultDirectRateLimiter::direct(spec.quota()))),
            state: Mutex::new(State {
                spec,
                pacing,
                budget: spec.count(),
                starts: VecDeque::new(),
                paused_until: None,
                set_aside: None,
                last_evidence: None,
                short_episodes: VecDeque::new(),
                clean_since: Instant::now(),
                refining: false,
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
    /// first request): the budget becomes `spec`'s count, even pacing follows `spec` from now
    /// on. Starts already in the window log still count against the new budget; what the limiter
    /// learned about the server's pacing is kept.
    pub fn set_configured_rate(&self, spec: RateSpec) {
        let mut state = self.lock();
        state.spec = spec;
        state.budget = spec.count();
        state.clean_since = Instant::now();
        *self.gcra.lock().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(DefaultDirectRateLimiter::direct(spec.quota()));
    }

    /// Waits until a request may be sent and returns when it was admitted, or at once the
    /// token's [`SetAside`] when it is set aside (now, or while waiting).
    ///
    /// The final checks (pause, window) and the recorded start are taken under the same lock
    /// that [`RateLimiter::on_throttled`] takes, so a request admitted after a pause was set
    /// always waited for it.
    pub async fn acquire(&self) -> Result<Admission, SetAside> {
        loop {
            let (pacing, paused) = {
                let state = self.lock();
                let now = Instant::now();
                if let Some(aside) = state.set_aside.filter(|a| a.until > now) {
                    return Err(aside);
                }
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
                let gcra = Arc::clone(&self.gcra.lock().unwrap_or_else(PoisonError::into_inner));
                gcra.until_ready().await;
            }
            let wait_until = {
                let mut state = self.lock();
                let now = Instant::now();
                if let Some(aside) = state.set_aside.filter(|a| a.until > now) {
                    return Err(aside);
                }
                let spec = state.spec;
                state.grow(now, spec);
                let span = window_span(spec);
                while state.starts.front().is_some_and(|t| *t + span <= now) {
                    state.starts.pop_front();
                }
                let enforce_window = state.pacing == Pacing::Window || state.budget < spec.count();
                match (state.paused_until, state.starts.front()) {
                    (Some(until), _) if until > now => until,
                    (_, Some(oldest))
                        if enforce_window && state.starts.len() >= state.budget as usize =>
                    {
                        *oldest + span
                    }
                    _ => {
                        state.starts.push_back(now);
                        return Ok(Admission {
                            at: SystemTime::now(),
                            instant: now,
                        });
                    }
                }
            };
            tokio::time::sleep_until(wait_until).await;
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
    pub fn on_throttled(
        &self,
        started: Instant,
        retry_after: Option<Duration>,
        pause: Duration,
        max_wait: Duration,
    ) -> Learned {
        let mut state = self.lock();
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
        Self::pause(&mut state, pause);
        let span = window_span(state.spec);
        while state.starts.front().is_some_and(|t| *t + span <= now) {
            state.starts.pop_front();
        }
        // What this token sent in the window, the refused request included.
        #[allow(clippy::cast_possible_truncation)]
        let sent = state.starts.len() as u32;
        // The server did not count a request it refused: neither does the window log, so that
        // the log holds what the server admitted.
        if let Some(index) = state.starts.iter().rposition(|t| *t == started) {
            state.starts.remove(index);
        }
        let Some(retry_after) = retry_after else {
            return Learned::Nothing;
        };
        // What this token got admitted in the window: at most what the server allows it.
        #[allow(clippy::cast_possible_truncation)]
        let admitted = (state.starts.len() as u32).max(1);
        if state.last_evidence.is_some_and(|at| started <= at) {
            // The same episode: each refusal of it tells the server's count more exactly.
            if state.refining && retry_after > LONG_RETRY_AFTER && admitted < state.budget {
                state.budget = admitted;
            }
            return Learned::Nothing;
        }
        state.last_evidence = Some(now);
        if retry_after <= SHORT_RETRY_AFTER {
            if state.pacing != Pacing::Window {
                return Learned::Nothing;
            }
            let per = state.spec.per();
            while state
                .short_episodes
                .front()
                .is_some_and(|t| *t + per <= now)
            {
                state.short_episodes.pop_front();
            }
            state.short_episodes.push_back(now);
            if state.short_episodes.len() >= SMOOTH_EVIDENCE {
                state.short_episodes.clear();
                state.pacing = Pacing::Even;
                return Learned::SwitchedToEven;
            }
        } else if retry_after > LONG_RETRY_AFTER {
            let from = state.budget;
            // Truncation is the point: 0.7 × B rounded down, never below 1; and never above
            // what the server admitted in the window (the refusals of the same episode then
            // refine it, see above), so one episode lands near the server's budget.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let cut = (f64::from(from) * DECREASE) as u32;
            // Only a token that sent more than the cut in the window has shown where the server
            // stops; one that sent little (the refusal came from a limit others share) has not.
            state.refining = sent > cut;
            let to = if state.refining {
                cut.min(admitted)
            } else {
                cut
            }
            .max(1);
            if to < from {
                state.budget = to;
                return Learned::BudgetCut { from, to };
            }
        }
        Learned::Nothing
    }

    /// Takes back the admission of a request that was never sent (no token could be had): the
    /// window counts what reached the API.
    pub fn forget(&self, admission: Admission) {
        let mut state = self.lock();
        if let Some(index) = state.starts.iter().rposition(|t| *t == admission.instant) {
            state.starts.remove(index);
        }
    }

    /// The end of the current pause, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock()
            .paused_until
            .filter(|until| *until > Instant::now())
    }

    /// The token's [`SetAside`], while it lasts.
    pub fn set_aside(&self) -> Option<SetAside> {
        self.lock().set_aside.filter(|a| a.until > Instant::now())
    }

    /// Pacing, current budget (after any recovery due by now) and set-aside deadline.
    pub fn state(&self) -> LimiterState {
        let mut state = self.lock();
        let now = Instant::now();
        let spec = state.spec;
        state.grow(now, spec);
        LimiterState {
            pacing: state.pacing,
            budget: state.budget,
            set_aside_until: state.set_aside.map(|a| a.until).filter(|u| *u > now),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain bookkeeping updated in single steps: a panic elsewhere cannot
        // leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// W plus the margin (see [`WINDOW_MARGIN`]).
fn window_span(spec: RateSpec) -> Duration {
    spec.per() + (spec.per() / 50).clamp(MIN_WINDOW_MARGIN, WINDOW_MARGIN)
}

impl State {
    /// Additive increase: the configured count's `INCREASE_PERCENT` (at least 1) per clean
    /// window, up to the configured count.
    fn grow(&mut self, now: Instant, spec: RateSpec) {
        let configured = spec.count();
        if self.budget >= configured {
            return;
        }
        let step = (configured * INCREASE_PERCENT / 100).max(1);
        while self.budget < configured && now >= self.clean_since + spec.per() {
            self.budget = (self.budget + step).min(configured);
            self.clean_since += spec.per();
        }
        if self.budget >= configured {
            tracing::info!(
                budget = configured,
                "no 429 for a while: back to the configured rate {spec}"
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

    #[tokio::test(start_paused = true)]
    async fn a_window_admits_its_budget_at_once_and_then_waits_for_the_oldest_to_leave() {
        let limiter = RateLimiter::new("5/min".parse().unwrap(), Pacing::Window);
        let start = Instant::now();
        for _ in 0..5 {
            let admission = limiter.acquire().await.unwrap();
            assert_eq!(admission.instant, start, "within the budget nothing waits");
        }
        // The sixth waits until the first start leaves the window (W + margin), not W/B.
        let sixth = limiter.acquire().await.unwrap();
        assert_eq!(sixth.instant, start + limiter.window_span());
        // The four others of the first window are still in it: the seventh waits no longer
        // (they leave at the same moment), and the budget stays 5 per window.
        for _ in 0..4 {
            assert_eq!(
                limiter.acquire().await.unwrap().instant,
                start + limiter.window_span()
            );
        }
        let next = limiter.acquire().await.unwrap();
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
            assert_eq!(limiter.acquire().await.unwrap().instant, start);
        }
        // The 601st waits for the first start to leave the window: never 601 in one window.
        let next = limiter.acquire().await.unwrap();
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
        let first = limiter.acquire().await.unwrap();
        // Between short and long: nothing learned, but the token waits.
        let learned = limiter.on_throttled(
            first.instant,
            Some(Duration::from_secs(3)),
            Duration::from_secs(3),
            MAX_WAIT,
        );
        assert_eq!(learned, Learned::Nothing);
        let next = limiter.acquire().await.unwrap();
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
        // A burst refused at once is one episode: the 429s of requests started before the first
        // one arrived add nothing.
        let in_flight: Vec<_> = {
            let mut admitted = Vec::new();
            for _ in 0..10 {
                admitted.push(limiter.acquire().await.unwrap());
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
        // 250 admitted by the server in this window: the cut is the multiplicative one.
        for _ in 0..250 {
            limiter.acquire().await.unwrap();
        }
        let first = limiter.acquire().await.unwrap();
        let second = limiter.acquire().await.unwrap();
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
        // A later episode (the next request waits for the full window to free, a clean window
        // that grew the budget by 3) cuts again: ×0.7, rounded down.
        assert_eq!(
            refused(&limiter, 42).await,
            Learned::BudgetCut { from: 213, to: 149 }
        );
        // +1 % of 300 (3) after each window without a 429, never above 300.
        let mut expected = 149;
        for _ in 0..60 {
            tokio::time::advance(Duration::from_secs(60)).await;
            expected = (expected + 3).min(300);
            assert_eq!(limiter.state().budget, expected);
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
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await.unwrap();
        }
        // The sixth is refused: the token sent less than the cut, so the cut is ×0.7.
        assert_eq!(
            refused(&limiter, 42).await,
            Learned::BudgetCut { from: 10, to: 7 }
        );
        // After the pause, 2 more fit in the window (the refused one is not in it)...
        for _ in 0..2 {
            let admission = limiter.acquire().await.unwrap();
            assert_eq!(admission.instant, start + Duration::from_secs(42));
        }
        // ...and the next waits until the first ones leave it.
        let next = limiter.acquire().await.unwrap();
        assert_eq!(next.instant, start + limiter.window_span());
    }

    #[tokio::test(start_paused = true)]
    async fn the_refusals_of_one_episode_bring_the_budget_down_to_what_the_server_admitted() {
        // --rate 240 per minute against a server that admits 60 of a burst.
        let limiter = RateLimiter::new("240/min".parse().unwrap(), Pacing::Window);
        let burst: Vec<_> = {
            let mut all = Vec::new();
            for _ in 0..240 {
                all.push(limiter.acquire().await.unwrap());
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
        let admission = limiter.acquire().await.unwrap();
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
}
