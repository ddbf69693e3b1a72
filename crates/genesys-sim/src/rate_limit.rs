//! Per-token and org-wide rate limits, in simulated time.
//!
//! Two shapes (see [`LimitShape`]): a sliding window log, which answers a 429 with the tens of
//! seconds until the window frees (what Genesys's Retry-After says), and GCRA (the generic cell
//! rate algorithm), a smooth token bucket that answers about one request interval.
//!
//! Every limit is asked first ([`Limit::refusal`]) and counts a request only when told
//! ([`Limit::admit`]), so that the caller can admit a request only when every limit that applies
//! to it (its token's and its org's) has room: a refused request consumes no budget anywhere.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The shape of a per-token limit: what a client sees when it sends faster than the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LimitShape {
    /// At most the budget in any trailing window (`SimConfig::limit_window`); a refused request
    /// gets a `Retry-After` of the whole seconds until the oldest request in the window leaves
    /// it, i.e. tens of seconds for a per-minute budget, as Genesys answers. Whether Genesys's
    /// window is fixed or sliding is unverified; a sliding window is the stricter of the two, so
    /// a client that passes it passes both.
    #[default]
    Window,
    /// A smooth token bucket (GCRA) with `SimConfig::burst`; a refused request gets a
    /// `Retry-After` of about one request interval (at least 1 s), as a smooth limiter answers.
    Bucket,
}

impl LimitShape {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Window => "window",
            Self::Bucket => "bucket",
        }
    }
}

impl fmt::Display for LimitShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit shape that is neither `window` nor `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLimitShapeError(String);

impl fmt::Display for ParseLimitShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown limit shape {:?} (expected window or bucket)",
            self.0
        )
    }
}

impl std::error::Error for ParseLimitShapeError {}

impl FromStr for LimitShape {
    type Err = ParseLimitShapeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "window" => Ok(Self::Window),
            "bucket" => Ok(Self::Bucket),
            _ => Err(ParseLimitShapeError(input.to_owned())),
        }
    }
}

/// One budget: a token's or the org's.
#[derive(Debug, Clone)]
pub(crate) enum Limit {
    Unlimited,
    Window(SlidingWindow),
    Bucket(Gcra),
}

impl Limit {
    /// `rate_per_minute` 0 is no limit. `burst` applies to the bucket only; `window` to the
    /// window only.
    pub(crate) fn new(
        shape: LimitShape,
        rate_per_minute: u32,
        burst: u32,
        window: Duration,
    ) -> Self {
        if rate_per_minute == 0 {
            return Self::Unlimited;
        }
        match shape {
            LimitShape::Window => Self::Window(SlidingWindow::new(rate_per_minute, window)),
            LimitShape::Bucket => Self::Bucket(Gcra::new(rate_per_minute, burst)),
        }
    }

    /// How long until a request at `now` would be admitted, or `None` when it would be now.
    /// Counts nothing.
    pub(crate) fn refusal(&mut self, now: Duration) -> Option<Duration> {
        match self {
            Self::Unlimited => None,
            Self::Window(window) => window.refusal(now),
            Self::Bucket(bucket) => bucket.refusal(now),
        }
    }

    /// Counts a request at `now` (the caller checked [`Limit::refusal`]).
    pub(crate) fn admit(&mut self, now: Duration) {
        match self {
            Self::Unlimited => {}
            Self::Window(window) => window.admit(now),
            Self::Bucket(bucket) => bucket.admit(now),
        }
    }

    /// Counts a request at `now` if it has room; on refusal returns how long until it would.
    #[cfg(test)]
    fn check(&mut self, now: Duration) -> Result<(), Duration> {
        match self.refusal(now) {
            Some(wait) => Err(wait),
            None => {
                self.admit(now);
                Ok(())
            }
        }
    }
}

/// A sliding window log: the times of the requests admitted in the trailing window.
///
/// Written here rather than taken from `governor`, which only offers GCRA: a token bucket cannot
/// answer "the oldest request leaves the window in 42 s", which is the Retry-After Genesys sends.
/// Memory is one timestamp per admitted request in the window (300 for Genesys's default).
#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    budget: usize,
    window: Duration,
    /// Oldest first.
    admitted: VecDeque<Duration>,
}

impl SlidingWindow {
    /// `rate_per_minute` scaled to `window` (600/min over 10 s is 100), rounded, at least 1.
    fn new(rate_per_minute: u32, window: Duration) -> Self {
        let scaled =
            (u128::from(rate_per_minute) * window.as_nanos() + 30_000_000_000) / 60_000_000_000;
        Self {
            budget: usize::try_from(scaled).unwrap_or(usize::MAX).max(1),
            window,
            admitted: VecDeque::new(),
        }
    }

    fn refusal(&mut self, now: Duration) -> Option<Duration> {
        // A request admitted at `t` counts in the windows ending before `t + window`.
        while self
            .admitted
            .front()
            .is_some_and(|&at| at + self.window <= now)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.budget {
            return None;
        }
        self.admitted
            .front()
            .map(|&oldest| oldest + self.window - now)
    }

    fn admit(&mut self, now: Duration) {
        self.admitted.push_back(now);
    }
}

/// One token's budget as a smooth bucket: `rate_per_minute` sustained, `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct Gcra {
    /// Time one request "costs".
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run (burst - 1 intervals).
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    tat: Duration,
}

impl Gcra {
    /// `rate_per_minute` must not be 0 (see [`Limit::new`]).
    fn new(rate_per_minute: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(60) / rate_per_minute.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            tat: Duration::ZERO,
        }
    }

    fn refusal(&self, now: Duration) -> Option<Duration> {
        let allowed_from = self.tat.max(now).saturating_sub(self.tolerance);
        (now < allowed_from).then(|| allowed_from - now)
    }

    fn admit(&mut self, now: Duration) {
        self.tat = self.tat.max(now) + self.interval;
    }
}

/// Genesys's `Retry-After`: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn bucket_allows_the_burst_then_one_per_interval() {
        let mut limit = Limit::new(LimitShape::Bucket, 60, 3, MINUTE);
        let t0 = Duration::from_secs(10);
        for _ in 0..3 {
            assert!(limit.check(t0).is_ok());
        }
        assert_eq!(limit.check(t0), Err(Duration::from_secs(1)));
        assert!(limit.check(t0 + Duration::from_secs(1)).is_ok());
        assert!(limit.check(t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn window_allows_the_budget_then_waits_for_the_oldest_to_leave() {
        let mut limit = Limit::new(LimitShape::Window, 3, 50, MINUTE);
        let t0 = Duration::from_secs(10);
        assert!(limit.check(t0).is_ok());
        assert!(limit.check(t0 + Duration::from_secs(5)).is_ok());
        assert!(limit.check(t0 + Duration::from_secs(5)).is_ok());
        let at = t0 + Duration::from_secs(20);
        assert_eq!(limit.check(at), Err(Duration::from_secs(40)));
        // The oldest leaves at t0 + 60: one slot, then the two at t0 + 5 hold it until t0 + 65.
        assert!(limit.check(t0 + MINUTE).is_ok());
        assert_eq!(limit.check(t0 + MINUTE), Err(Duration::from_secs(5)));
        assert!(limit.check(t0 + Duration::from_secs(65)).is_ok());
    }

    #[test]
    fn window_budget_scales_the_rate_to_the_window() {
        let mut limit = Limit::new(LimitShape::Window, 600, 1, Duration::from_secs(10));
        for _ in 0..100 {
            assert!(limit.check(Duration::ZERO).is_ok());
        }
        assert_eq!(limit.check(Duration::ZERO), Err(Duration::from_secs(10)));
    }

    #[test]
    fn a_refusal_counts_nothing() {
        for shape in [LimitShape::Window, LimitShape::Bucket] {
            let mut limit = Limit::new(shape, 1, 1, MINUTE);
            assert!(limit.check(Duration::ZERO).is_ok());
            for s in 1..30 {
                assert!(limit.refusal(Duration::from_secs(s)).is_some(), "{shape}");
            }
            assert!(limit.check(MINUTE).is_ok(), "{shape}");
        }
    }

    #[test]
    fn zero_rate_means_unlimited() {
        for shape in [LimitShape::Window, LimitShape::Bucket] {
            let mut limit = Limit::new(shape, 0, 1, MINUTE);
            for _ in 0..1000 {
                assert!(limit.check(Duration::ZERO).is_ok());
            }
        }
    }

    #[test]
    fn shapes_parse_and_print() {
        for shape in [LimitShape::Window, LimitShape::Bucket] {
            assert_eq!(shape.to_string().parse::<LimitShape>(), Ok(shape));
        }
        assert!("leaky".parse::<LimitShape>().is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(42)), 42);
    }
}
