//! Per-token rate limiting with GCRA (the generic cell rate algorithm), in simulated time.

use std::time::Duration;

/// One token's budget: `rate_per_minute` sustained, `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct Gcra {
    /// Time one request "costs"; `None` when the limit is disabled.
    interval: Option<Duration>,
    /// How far ahead of now the theoretical arrival time may run (burst - 1 intervals).
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    tat: Duration,
}

impl Gcra {
    pub(crate) fn new(rate_per_minute: u32, burst: u32) -> Self {
        let interval = (rate_per_minute > 0).then(|| Duration::from_secs(60) / rate_per_minute);
        let tolerance = interval.unwrap_or_default() * burst.max(1).saturating_sub(1);
        Self {
            interval,
            tolerance,
            tat: Duration::ZERO,
        }
    }

    /// Counts a request at `now`; on refusal returns how long until one would be allowed.
    /// A refused request costs nothing.
    pub(crate) fn check(&mut self, now: Duration) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let tat = self.tat.max(now);
        let allowed_from = tat.saturating_sub(self.tolerance);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        self.tat = tat + interval;
        Ok(())
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

    #[test]
    fn allows_the_burst_then_one_per_interval() {
        let mut limit = Gcra::new(60, 3);
        let t0 = Duration::from_secs(10);
        for _ in 0..3 {
            assert!(limit.check(t0).is_ok());
        }
        assert_eq!(limit.check(t0), Err(Duration::from_secs(1)));
        assert!(limit.check(t0 + Duration::from_secs(1)).is_ok());
        assert!(limit.check(t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let mut limit = Gcra::new(0, 1);
        for _ in 0..1000 {
            assert!(limit.check(Duration::ZERO).is_ok());
        }
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(42)), 42);
    }
}
