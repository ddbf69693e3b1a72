//! When and how long to wait before trying a request again.

use std::time::Duration;

use rand::Rng;

/// Retry budget and backoff. Which errors are retried is decided by
/// [`crate::error::ErrorClass`]; this only says how often and how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (at least 1).
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry; doubles with each further retry.
    pub base_delay: Duration,
    /// Upper bound of any computed backoff.
    pub max_delay: Duration,
    /// Upper bound of an honoured `Retry-After` (the official Go SDK uses 180 s).
    pub max_retry_after: Duration,
    /// 429s tolerated for one call, counted apart from `max_attempts`: a 429 is Genesys saying
    /// "wait", not a failure, and the wait is already enforced by pausing the token's limiter.
    pub max_throttled: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(180),
            max_throttled: 30,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (the first attempt only).
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            max_throttled: 0,
            ..Self::default()
        }
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts.max(1)
    }

    /// Whether one more attempt may follow `throttled` 429s.
    pub fn allows_another_after_429(&self, throttled: u32) -> bool {
        throttled <= self.max_throttled
    }

    /// `Retry-After` capped at [`RetryPolicy::max_retry_after`].
    pub fn capped_retry_after(&self, retry_after: Duration) -> Duration {
        retry_after.min(self.max_retry_after)
    }

    /// The wait before the next attempt after `failed_attempts` failures (1 for the first).
    ///
    /// With a `Retry-After` the server's word is honoured (capped). Otherwise full-jitter
    /// exponential backoff: uniform in `[0, min(max_delay, base_delay * 2^(failed_attempts-1))]`,
    /// which spreads concurrent retries instead of synchronising them.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        if let Some(retry_after) = retry_after {
            return self.capped_retry_after(retry_after);
        }
        let ceiling = self.backoff_ceiling(failed_attempts);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The upper bound of the jittered backoff after `failed_attempts` failures.
    pub fn backoff_ceiling(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<_> = (1..=10).map(|n| policy.backoff_ceiling(n)).collect();
        assert_eq!(ceilings[0], Duration::from_millis(250));
        assert_eq!(ceilings[1], Duration::from_millis(500));
        assert_eq!(ceilings[2], Duration::from_secs(1));
        assert_eq!(ceilings[6], Duration::from_secs(16));
        assert_eq!(ceilings[7], Duration::from_secs(30));
        assert_eq!(ceilings[9], Duration::from_secs(30));
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jittered_delays_stay_within_the_ceiling_and_are_spread() {
        let policy = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(7);
        for failed in 1..=8 {
            let delays: Vec<_> = (0..200)
                .map(|_| policy.delay(failed, None, &mut rng))
                .collect();
            let ceiling = policy.backoff_ceiling(failed);
            assert!(delays.iter().all(|d| *d <= ceiling));
            // Full jitter: both halves of the range are used.
            assert!(delays.iter().any(|d| *d < ceiling / 2));
            assert!(delays.iter().any(|d| *d > ceiling / 2));
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let policy = RetryPolicy::default();
        let run = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (1..=6)
                .map(|n| policy.delay(n, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(42)), &mut rng),
            Duration::from_secs(42)
        );
        assert_eq!(
            policy.delay(3, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(180)
        );
    }

    #[test]
    fn attempt_budget_counts_the_first_attempt() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_another(5));
        assert!(!policy.allows_another(6));
        assert!(!RetryPolicy::none().allows_another(1));
    }

    #[test]
    fn throttling_has_a_budget_of_its_own() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_another_after_429(policy.max_throttled));
        assert!(!policy.allows_another_after_429(policy.max_throttled + 1));
        assert!(!RetryPolicy::none().allows_another_after_429(1));
    }
}
