//! The token pool (`--tokens N`): independently minted tokens of one OAuth client, each with its
//! own rate limiter, since Genesys budgets requests per token.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::auth::TokenCache;
use crate::rate::{Pacing, RateLimiter, RateSpec, SetAside};
use crate::stats::TokenStats;

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
    /// `size` slots (at least one), each limited to `rate` with `pacing`. Tokens are minted on
    /// first use.
    pub(crate) fn new(size: usize, rate: RateSpec, pacing: Pacing) -> Self {
        let slots = (0..size.max(1))
            .map(|index| Slot {
                index,
                limiter: RateLimiter::new(rate, pacing),
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

    /// Round-robin over the slots not set aside, skipping slots paused by a `Retry-After`; when
    /// every slot is paused, the one whose pause ends first. When every slot is set aside, the
    /// [`SetAside`] that ends first.
    pub(crate) fn pick(&self) -> Result<&Slot, SetAside> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        let mut earliest_aside: Option<SetAside> = None;
        (0..count)
            .map(|offset| &self.slots[(start + offset) % count])
            .filter(|slot| match slot.limiter.set_aside() {
                Some(aside) => {
                    if earliest_aside.is_none_or(|e| aside.until < e.until) {
                        earliest_aside = Some(aside);
                    }
                    false
                }
                None => true,
            })
            // `None` (not paused) sorts before any deadline; ties keep round-robin order.
            .min_by_key(|slot| slot.limiter.paused_until())
            .ok_or_else(|| earliest_aside.expect("a slot was set aside if none is left"))
    }

    /// Sets every slot's configured rate (see [`RateLimiter::set_configured_rate`]).
    pub(crate) fn set_rate(&self, rate: RateSpec) {
        for slot in &self.slots {
            slot.limiter.set_configured_rate(rate);
        }
    }

    /// Requests waiting for budget on every token, and the earliest time one of them may
    /// start; `None` when nothing waits, or when some token lets a request start now.
    pub(crate) fn budget_wait(&self) -> Option<(u32, tokio::time::Instant)> {
        let mut waiting = 0;
        let mut earliest: Option<tokio::time::Instant> = None;
        for slot in &self.slots {
            if let Some((queued, until)) = slot.limiter.waiting() {
                waiting += queued;
                earliest = Some(earliest.map_or(until, |e| e.min(until)));
            }
        }
        earliest.map(|until| (waiting, until))
    }

    /// What each slot's limiter does now.
    pub(crate) fn stats(&self) -> Vec<TokenStats> {
        let now = tokio::time::Instant::now();
        self.slots
            .iter()
            .map(|slot| {
                let state = slot.limiter.state();
                let spec = slot.limiter.spec();
                TokenStats {
                    slot: slot.index,
                    pacing: state.pacing,
                    budget: state.budget,
                    configured_budget: spec.count(),
                    window: spec.per(),
                    set_aside_for: state.set_aside_until.map(|until| until - now),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn picks_round_robin_and_avoids_paused_slots() {
        let pool = TokenPool::new(3, RateSpec::default(), Pacing::Window);
        let picked: Vec<_> = (0..6).map(|_| pool.pick().unwrap().index).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);

        pool.slot(1).limiter.pause_for(Duration::from_secs(60));
        let picked: Vec<_> = (0..4).map(|_| pool.pick().unwrap().index).collect();
        assert!(!picked.contains(&1), "{picked:?}");

        pool.slot(0).limiter.pause_for(Duration::from_secs(30));
        pool.slot(2).limiter.pause_for(Duration::from_secs(90));
        assert_eq!(pool.pick().unwrap().index, 0, "earliest pause end");
    }

    #[tokio::test(start_paused = true)]
    async fn set_aside_slots_are_skipped_and_all_aside_is_an_error() {
        let pool = TokenPool::new(2, RateSpec::default(), Pacing::Window);
        let max_wait = Duration::from_secs(180);
        let aside = |index: usize, secs: u64| {
            let slot = pool.slot(index);
            let wait = Duration::from_secs(secs);
            slot.limiter
                .on_throttled(tokio::time::Instant::now(), Some(wait), wait, max_wait)
        };
        aside(0, 7200);
        let picked: Vec<_> = (0..4).map(|_| pool.pick().unwrap().index).collect();
        assert_eq!(picked, [1, 1, 1, 1]);
        aside(1, 3600);
        let earliest = pool.pick().unwrap_err();
        assert_eq!(earliest.retry_after, Duration::from_secs(3600));
        let stats = pool.stats();
        assert_eq!(stats[0].set_aside_for, Some(Duration::from_secs(7200)));
        assert_eq!(stats[1].set_aside_for, Some(Duration::from_secs(3600)));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            pool.pick().unwrap().index,
            1,
            "usable again when its wait ends"
        );
    }
}
