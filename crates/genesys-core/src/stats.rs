//! Request counters of a client (cheap atomics, read with [`crate::GenesysClient::stats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rate::Pacing;

/// A snapshot of a client's counters since it was built, and what each token's limiter learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP attempts sent to the API (token requests not included).
    pub requests: u64,
    /// 429 responses.
    pub throttled: u64,
    /// Attempts that were retries (after a retryable error or a 401).
    pub retries: u64,
    /// Tokens issued by the token endpoint (first ones included).
    pub tokens_minted: u64,
    /// Tokens that replaced an earlier one (proactive or after a 401).
    pub token_refreshes: u64,
    /// One entry per token of the pool, in slot order.
    pub tokens: Vec<TokenStats>,
}

/// What one token's limiter does now: its pacing and budget, as configured or as learned from
/// the server's 429s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenStats {
    pub slot: usize,
    /// [`Pacing::Even`] when configured, or learned from repeated short `Retry-After`s.
    pub pacing: Pacing,
    /// Requests allowed per `window` now: the configured count, or less after a long
    /// `Retry-After` (growing back after each window without a 429).
    pub budget: u32,
    /// The configured count (`--rate B/W` gives B).
    pub configured_budget: u32,
    pub window: Duration,
    /// Time left while the token is set aside (a `Retry-After` above `max_wait`).
    pub set_aside_for: Option<Duration>,
}

impl TokenStats {
    /// The current budget in requests per minute.
    pub fn budget_per_minute(&self) -> f64 {
        f64::from(self.budget) * 60.0 / self.window.as_secs_f64()
    }

    /// Whether the server taught this token anything (another pacing or a smaller budget).
    pub fn learned(&self, configured: Pacing) -> bool {
        self.pacing != configured || self.budget < self.configured_budget
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) tokens_minted: AtomicU64,
    pub(crate) token_refreshes: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            tokens_minted: self.tokens_minted.load(Ordering::Relaxed),
            token_refreshes: self.token_refreshes.load(Ordering::Relaxed),
            tokens: Vec::new(),
        }
    }
}
