//! The latest notification event of each followed call, shared between `tag --follow`, which
//! publishes them, and the workers, which plan from them and verify by them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use genesys_core::models::CallConversation;
use tokio::sync::watch;

type Latest = Option<Arc<CallConversation>>;

/// One watch channel per call: a worker waiting for its change to show sees every newer event.
#[derive(Debug, Default)]
pub struct CallEvents {
    calls: Mutex<HashMap<String, watch::Sender<Latest>>>,
}

impl CallEvents {
    /// The call as its newest event shows it.
    pub fn publish(&self, call: Arc<CallConversation>) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = calls
            .entry(call.id.clone())
            .or_insert_with(|| watch::channel(None).0);
        sender.send_replace(Some(call));
    }

    /// The newest event of a call, if one came.
    pub fn latest(&self, conversation_id: &str) -> Latest {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .get(conversation_id)
            .and_then(|sender| sender.borrow().clone())
    }

    /// Events of one call, from its newest on.
    pub fn subscribe(&self, conversation_id: &str) -> watch::Receiver<Latest> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .entry(conversation_id.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// Forgets a call (it ended, or its events may be stale after a gap); waiting workers are
    /// told, and read instead.
    pub fn forget(&self, conversation_id: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.remove(conversation_id);
    }

    pub(crate) fn len(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, name: &str) -> Arc<CallConversation> {
        Arc::new(CallConversation {
            id: id.into(),
            name: Some(name.into()),
            ..CallConversation::default()
        })
    }

    #[tokio::test]
    async fn a_subscriber_sees_the_newest_event_and_is_told_when_the_call_is_forgotten() {
        let events = CallEvents::default();
        events.publish(call("c1", "first"));
        let mut rx = events.subscribe("c1");
        assert_eq!(
            rx.borrow_and_update().as_ref().unwrap().name.as_deref(),
            Some("first")
        );
        events.publish(call("c1", "second"));
        rx.changed().await.unwrap();
        assert_eq!(
            rx.borrow().as_ref().unwrap().name.as_deref(),
            Some("second")
        );
        assert_eq!(events.latest("c1").unwrap().name.as_deref(), Some("second"));
        events.forget("c1");
        assert!(rx.changed().await.is_err());
        assert!(events.latest("c1").is_none());
        assert_eq!(events.len(), 0);
    }
}
