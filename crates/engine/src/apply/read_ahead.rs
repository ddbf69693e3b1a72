//! How many calls may be read ahead of their PATCHes. A run that the API's budget stopped is
//! resumed cautiously: one call read at a time, one more for every change accepted, so that the
//! budget left in a window buys changes rather than reads of calls whose PATCH the next refusal
//! would cut off, and each resume makes progress.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct ReadAhead {
    /// (calls that may be read ahead, calls read and not yet past their PATCHes)
    state: Mutex<(usize, usize)>,
    max: usize,
    freed: Notify,
}

impl ReadAhead {
    pub fn new(start: usize, max: usize) -> Arc<Self> {
        Arc::new(ReadAhead {
            state: Mutex::new((start.clamp(1, max.max(1)), 0)),
            max: max.max(1),
            freed: Notify::new(),
        })
    }

    /// Waits for room to read one more call.
    pub async fn ticket(self: &Arc<Self>) -> Ticket {
        loop {
            let freed = self.freed.notified();
            {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.1 < state.0 {
                    state.1 += 1;
                    return Ticket {
                        of: Arc::clone(self),
                        accepted: 0,
                    };
                }
            }
            freed.await;
        }
    }
}

/// One call's place, given back once its PATCHes are sent (or it needs none).
#[derive(Debug)]
pub(crate) struct Ticket {
    of: Arc<ReadAhead>,
    accepted: usize,
}

impl Ticket {
    /// A change of this call was accepted: one more call may be read ahead.
    pub fn accepted(&mut self) {
        self.accepted += 1;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.of.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1 -= 1;
        state.0 = (state.0 + self.accepted).min(self.of.max);
        drop(state);
        self.of.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_call_at_a_time_then_one_more_per_accepted_change() {
        let ahead = ReadAhead::new(1, 4);
        let mut first = ahead.ticket().await;
        let second = tokio::spawn({
            let ahead = Arc::clone(&ahead);
            async move { ahead.ticket().await }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "one call at a time at first");
        first.accepted();
        drop(first);
        let _second = second.await.unwrap();
        // Its change accepted, the first made room for two.
        let _third = ahead.ticket().await;
        assert_eq!(ahead.state.lock().unwrap().0, 2);
    }
}
