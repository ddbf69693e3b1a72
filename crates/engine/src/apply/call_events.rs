//! The latest notification event of each followed call, shared between who receives them
//! (`tag --follow`'s queue events; a snapshot run's attribute events, see `event_watch`) and
//! the workers, which plan from them (a follow) and verify by them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use genesys_core::models::notifications::AttributeUpdateEvent;
use genesys_core::models::{CallConversation, CallMediaParticipant};
use tokio::sync::watch;

pub(crate) type Latest = Option<Arc<CallConversation>>;

/// Changes no attribute event showed within the verify timeout, none having come at all, after
/// which the run stops waiting for events (Genesys may not send them [?]).
pub const UNSEEN_BEFORE_READING_AT_ONCE: u64 = 3;

/// What the events show.
#[derive(Debug, Default)]
enum Shows {
    /// Whole conversations (a queue's call topic): they plan a call, and the one that shows a
    /// third value after a change is drift.
    #[default]
    WholeCalls,
    /// One participant's attributes per event (a conversation's attribute topic), for the
    /// conversations subscribed only. An event is only ever proof of the values it shows: one
    /// showing other values may be an older write's, so only a read judges drift.
    Attributes {
        subscribed: HashSet<String>,
        /// The socket is connected: a change made now can be shown by an event.
        connected: AtomicBool,
        /// Events received, and changes no event showed in time.
        received: AtomicU64,
        unseen: AtomicU64,
    },
}

/// One watch channel per call: a worker waiting for its change to show sees every newer event.
#[derive(Debug, Default)]
pub struct CallEvents {
    calls: Mutex<HashMap<String, watch::Sender<Latest>>>,
    shows: Shows,
}

impl CallEvents {
    /// Events of the attribute topics of `subscribed` conversations, not connected yet.
    pub fn of_attributes(subscribed: HashSet<String>) -> Self {
        Self {
            calls: Mutex::default(),
            shows: Shows::Attributes {
                subscribed,
                connected: AtomicBool::new(false),
                received: AtomicU64::new(0),
                unseen: AtomicU64::new(0),
            },
        }
    }

    /// The events are whole conversations (a follow's), not one participant's attributes.
    pub fn show_whole_calls(&self) -> bool {
        matches!(self.shows, Shows::WholeCalls)
    }

    /// Whether an event may show a change of this call made now: always for whole calls (the
    /// follow decides); for attribute events, when its topic is subscribed and the socket is
    /// connected.
    pub fn may_show(&self, conversation_id: &str) -> bool {
        match &self.shows {
            Shows::WholeCalls => true,
            Shows::Attributes {
                subscribed,
                connected,
                ..
            } => {
                connected.load(Ordering::Acquire)
                    && subscribed.contains(conversation_id)
                    && !self.none_come()
            }
        }
    }

    /// A change no attribute event showed within the verify timeout.
    pub fn unseen(&self) {
        if let Shows::Attributes { unseen, .. } = &self.shows {
            unseen.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// No attribute event came at all while [`UNSEEN_BEFORE_READING_AT_ONCE`] changes waited
    /// for one: the changes from now on are read back at once.
    pub fn none_come(&self) -> bool {
        match &self.shows {
            Shows::WholeCalls => false,
            Shows::Attributes {
                received, unseen, ..
            } => {
                received.load(Ordering::Relaxed) == 0
                    && unseen.load(Ordering::Relaxed) >= UNSEEN_BEFORE_READING_AT_ONCE
            }
        }
    }

    /// The socket connected, or was lost: after a loss, every waiting worker is told (it reads
    /// instead), since events sent meanwhile are gone.
    pub fn set_connected(&self, now: bool) {
        if let Shows::Attributes { connected, .. } = &self.shows {
            connected.store(now, Ordering::Release);
        }
        if !now {
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// A participant's attributes as an attribute event shows them, in place of what the
    /// call's view held for that participant (the other participants stay as their own
    /// latest events showed them).
    pub fn publish_attributes(&self, event: AttributeUpdateEvent) {
        if let Shows::Attributes { received, .. } = &self.shows {
            received.fetch_add(1, Ordering::Relaxed);
        }
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = calls
            .entry(event.conversation_id.clone())
            .or_insert_with(|| watch::channel(None).0);
        sender.send_modify(|latest| {
            let mut call = latest
                .as_deref()
                .cloned()
                .unwrap_or_else(|| CallConversation {
                    id: event.conversation_id.clone(),
                    ..CallConversation::default()
                });
            match call
                .participants
                .iter_mut()
                .find(|p| p.id == event.participant_id)
            {
                Some(participant) => participant.attributes = event.attributes,
                None => call.participants.push(CallMediaParticipant {
                    id: event.participant_id,
                    attributes: event.attributes,
                    ..CallMediaParticipant::default()
                }),
            }
            *latest = Some(Arc::new(call));
        });
    }

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

    fn attributes(pid: &str, value: &str) -> AttributeUpdateEvent {
        AttributeUpdateEvent {
            event_time: None,
            conversation_id: "c1".into(),
            participant_id: pid.into(),
            attributes: [("k".to_owned(), value.to_owned())].into(),
        }
    }

    #[tokio::test]
    async fn attribute_events_keep_each_participant_s_latest_and_a_lost_socket_tells_the_waiting() {
        let events = CallEvents::of_attributes(HashSet::from(["c1".to_owned()]));
        assert!(!events.show_whole_calls());
        assert!(!events.may_show("c1"), "not connected yet");
        events.set_connected(true);
        assert!(events.may_show("c1"));
        assert!(!events.may_show("c2"), "not subscribed");
        let mut rx = events.subscribe("c1");
        events.publish_attributes(attributes("p1", "a"));
        events.publish_attributes(attributes("p2", "b"));
        rx.changed().await.unwrap();
        let call = rx.borrow_and_update().clone().unwrap();
        let seen: Vec<(&str, &str)> = call
            .participants
            .iter()
            .map(|p| (p.id.as_str(), p.attributes["k"].as_str()))
            .collect();
        assert_eq!(seen, [("p1", "a"), ("p2", "b")]);
        events.set_connected(false);
        assert!(rx.changed().await.is_err());
        assert!(!events.may_show("c1"));
    }

    #[test]
    fn when_no_attribute_event_comes_at_all_the_changes_are_read_at_once() {
        let events = CallEvents::of_attributes(HashSet::from(["c1".to_owned()]));
        events.set_connected(true);
        for _ in 0..UNSEEN_BEFORE_READING_AT_ONCE {
            assert!(events.may_show("c1"));
            events.unseen();
        }
        assert!(events.none_come());
        assert!(!events.may_show("c1"));
        // One event is enough to show that they flow.
        events.publish_attributes(attributes("p1", "a"));
        assert!(!events.none_come());
        assert!(events.may_show("c1"));
    }
}
