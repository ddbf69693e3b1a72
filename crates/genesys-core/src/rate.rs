//! Request rate: the `--rate` specification and the per-token limiter.
//!
//! Genesys allows 300 requests per minute per client-credentials token by default. Each token
//! gets one [`RateLimiter`] (GCRA through `governor`, explicit burst); a 429 with `Retry-After`
//! pauses the whole limiter, so every request through that token waits, not just the one that
//! was refused.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
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

/// The rate limiter of one token: GCRA plus a pause set by `Retry-After`.
pub struct RateLimiter {
    spec: RateSpec,
    gcra: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("spec", &self.spec)
            .field("paused_until", &self.paused_until())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(spec: RateSpec) -> Self {
        Self {
            spec,
            gcra: DefaultDirectRateLimiter::direct(spec.quota()),
            paused_until: Mutex::new(None),
        }
    }

    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Waits until a request may be sent and returns the moment it was admitted.
    ///
    /// The final pause check and the returned timestamp are taken under the same lock that
    /// [`RateLimiter::pause_for`] takes, so a request admitted after a pause was set always
    /// waited for it.
    pub async fn acquire(&self) -> SystemTime {
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
            }
            self.gcra.until_ready().await;
            let paused = self.lock_pause();
            match *paused {
                Some(until) if until > Instant::now() => continue,
                _ => return SystemTime::now(),
            }
        }
    }

    /// Pauses every request through this limiter for `duration` from now. A pause only ever
    /// extends: a shorter `Retry-After` never cuts a longer one short. Returns the deadline.
    pub fn pause_for(&self, duration: Duration) -> Instant {
        let deadline = Instant::now() + duration;
        let mut paused = self.lock_pause();
        let until = match *paused {
            Some(existing) if existing >= deadline => existing,
            _ => deadline,
        };
        *paused = Some(until);
        until
    }

    /// The end of the current pause, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock_pause().filter(|until| *until > Instant::now())
    }

    fn lock_pause(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain deadline: a panic elsewhere cannot leave it inconsistent.
        self.paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        let limiter = RateLimiter::new("1/h,burst=3".parse().unwrap());
        let admitted = (0..5).filter(|_| limiter.gcra.check().is_ok()).count();
        assert_eq!(admitted, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_every_acquirer_until_it_ends() {
        let limiter = Arc::new(RateLimiter::new("1000/s,burst=100".parse().unwrap()));
        let start = Instant::now();
        let deadline = limiter.pause_for(Duration::from_secs(5));
        assert_eq!(deadline, start + Duration::from_secs(5));
        // A shorter pause does not shorten the longer one.
        assert_eq!(limiter.pause_for(Duration::from_secs(1)), deadline);

        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter.acquire().await;
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
}
