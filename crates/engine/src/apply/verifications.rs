//! The verifications under way (waiting for an event, or reading back), so that a display can
//! name a long one: how many,
//! since when, and until when at the latest (their `--verify-timeout`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// Every verification of a run that is reading back its changes now.
#[derive(Debug, Default)]
pub struct Verifications {
    next: AtomicU64,
    /// (started, id) -> deadline.
    active: Mutex<BTreeMap<(SystemTime, u64), SystemTime>>,
}

/// The verifications under way: how many, when the oldest began, and the latest deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyingNow {
    pub calls: usize,
    pub oldest_since: SystemTime,
    pub until: SystemTime,
}

impl Verifications {
    /// One call's verification, from now until `deadline` at the latest; it ends when the
    /// returned guard is dropped.
    pub fn begin(self: &Arc<Self>, deadline: SystemTime) -> Verifying {
        let key = (SystemTime::now(), self.next.fetch_add(1, Ordering::Relaxed));
        self.lock().insert(key, deadline);
        Verifying {
            verifications: Arc::clone(self),
            key,
        }
    }

    /// The verifications under way, if any.
    pub fn now(&self) -> Option<VerifyingNow> {
        let active = self.lock();
        let ((oldest_since, _), _) = active.first_key_value()?;
        Some(VerifyingNow {
            calls: active.len(),
            oldest_since: *oldest_since,
            until: active.values().max().copied().unwrap_or(*oldest_since),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(SystemTime, u64), SystemTime>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A verification under way; dropping it ends it.
#[derive(Debug)]
pub struct Verifying {
    verifications: Arc<Verifications>,
    key: (SystemTime, u64),
}

impl Drop for Verifying {
    fn drop(&mut self) {
        self.verifications.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_verification_counts_until_its_guard_is_dropped() {
        let verifications = Arc::new(Verifications::default());
        assert_eq!(verifications.now(), None);
        let deadline = SystemTime::now() + Duration::from_secs(10);
        let first = verifications.begin(deadline);
        let second = verifications.begin(deadline + Duration::from_secs(1));
        let now = verifications.now().unwrap();
        assert_eq!(now.calls, 2);
        assert_eq!(now.until, deadline + Duration::from_secs(1));
        drop(second);
        assert_eq!(verifications.now().unwrap().until, deadline);
        drop(first);
        assert_eq!(verifications.now(), None);
    }
}
