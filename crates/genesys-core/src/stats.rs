//! Request counters of a client (cheap atomics, read with [`crate::GenesysClient::stats`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a client's counters since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
        }
    }
}
