//! The token pool (`--tokens N`): independently minted tokens of one OAuth client, each with its
//! own rate limiter, since Genesys budgets requests per token.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::auth::TokenCache;
use crate::rate::{RateLimiter, RateSpec};

/// One token of the pool and its limiter.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) limiter: RateLimiter,
    pub(crate) token: TokenCache,
}

#[derive(Debug)]
pub(crate) struct TokenPool {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl TokenPool {
    /// `size` slots (at least one), each limited to `rate`. Tokens are minted on first use.
    pub(crate) fn new(size: usize, rate: RateSpec) -> Self {
        let slots = (0..size.max(1))
            .map(|index| Slot {
                index,
                limiter: RateLimiter::new(rate),
                token: TokenCache::default(),
            })
            .collect();
        Self {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot(&self, index: usize) -> &Slot {
        &self.slots[index % self.slots.len()]
    }

    /// Round-robin, skipping slots paused by a `Retry-After`; when every slot is paused, the one
    /// whose pause ends first.
    pub(crate) fn pick(&self) -> &Slot {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        (0..count)
            .map(|offset| &self.slots[(start + offset) % count])
            // `None` (not paused) sorts before any deadline; ties keep round-robin order.
            .min_by_key(|slot| slot.limiter.paused_until())
            .unwrap_or(&self.slots[0])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn picks_round_robin_and_avoids_paused_slots() {
        let pool = TokenPool::new(3, RateSpec::default());
        let picked: Vec<_> = (0..6).map(|_| pool.pick().index).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);

        pool.slot(1).limiter.pause_for(Duration::from_secs(60));
        let picked: Vec<_> = (0..4).map(|_| pool.pick().index).collect();
        assert!(!picked.contains(&1), "{picked:?}");

        pool.slot(0).limiter.pause_for(Duration::from_secs(30));
        pool.slot(2).limiter.pause_for(Duration::from_secs(90));
        assert_eq!(pool.pick().index, 0, "earliest pause end");
    }
}
