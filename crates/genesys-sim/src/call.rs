//! The simulator's own record of a call and the three wire views of it: the call view
//! (`CallConversation`), the media-agnostic view (`Conversation`) and the analytics view.

use std::time::{Duration, SystemTime};

use genesys_models::{
    AnalyticsConversation, AnalyticsParticipant, AnalyticsSegment, AnalyticsSession, Attributes,
    Call, CallConversation, CallMediaParticipant, Conversation, DomainEntityRef, Participant,
    ParticipantState,
};

use crate::clock::timestamp;

/// A PATCH accepted but not yet visible to reads (see `FaultConfig::visibility_lag`).
#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    /// Simulated time from which reads see it.
    pub(crate) visible_at: Duration,
    pub(crate) attributes: Attributes,
}

#[derive(Debug, Clone)]
pub(crate) struct ParticipantRecord {
    pub(crate) id: String,
    /// Id of this participant's call leg (`Participant.calls[].id`).
    pub(crate) leg_id: String,
    pub(crate) name: Option<String>,
    pub(crate) address: Option<String>,
    /// The calling number of this leg (`tel:+...`): a customer's, on its ivr and acd legs too.
    pub(crate) ani: Option<String>,
    /// The number dialled on this leg (`tel:+...`): the queue's number on an inbound call.
    pub(crate) dnis: Option<String>,
    pub(crate) purpose: String,
    pub(crate) direction: &'static str,
    pub(crate) state: ParticipantState,
    pub(crate) start: SystemTime,
    pub(crate) connected: Option<SystemTime>,
    pub(crate) end: Option<SystemTime>,
    pub(crate) user: Option<DomainEntityRef>,
    pub(crate) queue: Option<DomainEntityRef>,
    pub(crate) external_contact: Option<DomainEntityRef>,
    /// What reads see now.
    pub(crate) visible: Attributes,
    /// Accepted writes, oldest first, not yet visible.
    pub(crate) pending: Vec<PendingWrite>,
}

impl ParticipantRecord {
    /// Makes the oldest pending write visible if it is due at `now`; `Some(changed)` when there
    /// was one, `changed` telling whether reads now see something different.
    fn promote_one(&mut self, now: Duration) -> Option<bool> {
        if self.pending.first()?.visible_at > now {
            return None;
        }
        let write = self.pending.remove(0);
        let mut changed = false;
        for (key, value) in write.attributes {
            if self.visible.get(&key) != Some(&value) {
                changed = true;
                self.visible.insert(key, value);
            }
        }
        Some(changed)
    }

    /// The attributes once every accepted write is visible.
    pub(crate) fn true_attributes(&self) -> Attributes {
        let mut attributes = self.visible.clone();
        for write in &self.pending {
            attributes.extend(write.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        attributes
    }

    /// Accepts a write that reads see from `visible_at` on; the owner promotes it when due.
    pub(crate) fn accept(&mut self, attributes: Attributes, visible_at: Duration) {
        self.pending.push(PendingWrite {
            visible_at,
            attributes,
        });
    }

    fn call_view(&self, attributes: Attributes) -> CallMediaParticipant {
        CallMediaParticipant {
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            ani: self.ani.clone(),
            dnis: self.dnis.clone(),
            start_time: Some(timestamp(self.start)),
            connected_time: self.connected.map(timestamp),
            end_time: self.end.map(timestamp),
            purpose: Some(self.purpose.clone()),
            state: Some(self.state.clone()),
            direction: Some(self.direction.to_owned()),
            user: self.user.clone(),
            queue: self.queue.clone(),
            external_contact: self.external_contact.clone(),
            attributes,
        }
    }

    fn conversation_view(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            start_time: Some(timestamp(self.start)),
            end_time: self.end.map(timestamp),
            connected_time: self.connected.map(timestamp),
            name: self.name.clone(),
            user_id: self.user.as_ref().and_then(|u| u.id.clone()),
            queue_id: self.queue.as_ref().and_then(|q| q.id.clone()),
            external_contact_id: self.external_contact.as_ref().and_then(|c| c.id.clone()),
            purpose: Some(self.purpose.clone()),
            address: self.address.clone(),
            attributes: self.visible.clone(),
            calls: vec![Call {
                id: Some(self.leg_id.clone()),
                state: Some(self.state.clone()),
                direction: Some(self.direction.to_owned()),
                connected_time: self.connected.map(timestamp),
                disconnected_time: self.end.map(timestamp),
            }],
        }
    }

    fn analytics_view(&self, queue_id: Option<&str>) -> AnalyticsParticipant {
        let segment =
            |start: SystemTime, end: Option<SystemTime>, kind: &str, queue: Option<&str>| {
                AnalyticsSegment {
                    segment_start: Some(timestamp(start)),
                    segment_end: end.map(timestamp),
                    segment_type: Some(kind.to_owned()),
                    queue_id: queue.map(str::to_owned),
                }
            };
        let segments = match self.purpose.as_str() {
            "ivr" => vec![segment(self.start, self.end, "ivr", None)],
            "agent" => {
                let answered = self.connected.unwrap_or(self.start);
                vec![
                    segment(self.start, Some(answered), "alert", queue_id),
                    segment(answered, self.end, "interact", queue_id),
                ]
            }
            _ => vec![segment(self.start, self.end, "interact", queue_id)],
        };
        AnalyticsParticipant {
            participant_id: Some(self.id.clone()),
            participant_name: self.name.clone(),
            purpose: Some(self.purpose.clone()),
            user_id: self.user.as_ref().and_then(|u| u.id.clone()),
            sessions: vec![AnalyticsSession {
                media_type: Some("voice".to_owned()),
                session_id: Some(self.leg_id.clone()),
                direction: Some(self.direction.to_owned()),
                ani: self.ani.clone(),
                dnis: self.dnis.clone(),
                segments,
            }],
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    pub(crate) id: String,
    pub(crate) queue_id: Option<String>,
    pub(crate) start: SystemTime,
    pub(crate) end: Option<SystemTime>,
    pub(crate) participants: Vec<ParticipantRecord>,
    /// Simulated time of an arrival (`SimConfig::arrival_rate`); `None` for generated calls.
    pub(crate) arrived_at: Option<Duration>,
    /// Simulated time at which an attribute write last became visible.
    pub(crate) attributes_visible_at: Option<Duration>,
}

impl CallRecord {
    pub(crate) fn is_ended(&self) -> bool {
        self.end.is_some()
    }

    pub(crate) fn participant_mut(
        &mut self,
        participant_id: &str,
    ) -> Option<&mut ParticipantRecord> {
        self.participants
            .iter_mut()
            .find(|p| p.id == participant_id)
    }

    /// Makes pending writes due at `now` visible one at a time (oldest first per participant),
    /// calling `visible` with the call after each; its flag tells whether reads see a change. One
    /// write at a time, so that a flow's overwrite after a client's write is its own change.
    pub(crate) fn promote_each(
        &mut self,
        now: Duration,
        mut visible: impl FnMut(&Self, &ParticipantRecord, bool),
    ) {
        loop {
            let due = self
                .participants
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((p.pending.first()?.visible_at, i)))
                .filter(|(at, _)| *at <= now)
                .min();
            let Some((at, index)) = due else { return };
            let changed = self.participants[index]
                .promote_one(now)
                .unwrap_or_default();
            self.attributes_visible_at = Some(at);
            visible(self, &self.participants[index], changed);
        }
    }

    /// The earliest time a pending write becomes visible.
    pub(crate) fn next_visible_at(&self) -> Option<Duration> {
        self.participants
            .iter()
            .filter_map(|p| p.pending.first().map(|w| w.visible_at))
            .min()
    }

    /// Ends the call at `at`: every participant still on it disconnects. `false` when it had
    /// already ended.
    pub(crate) fn end(&mut self, at: SystemTime) -> bool {
        if self.is_ended() {
            return false;
        }
        for participant in &mut self.participants {
            if participant.end.is_none() {
                participant.state = ParticipantState::Disconnected;
                participant.end = Some(at);
            }
        }
        self.end = Some(at);
        true
    }

    /// `GET /api/v2/conversations/calls/{id}`: what reads see now.
    pub(crate) fn call_view(&self) -> CallConversation {
        self.call_conversation(|p| p.visible.clone())
    }

    /// The true state, including writes not yet visible (the admin surface).
    pub(crate) fn true_call_view(&self) -> CallConversation {
        self.call_conversation(ParticipantRecord::true_attributes)
    }

    fn call_conversation(
        &self,
        attributes: impl Fn(&ParticipantRecord) -> Attributes,
    ) -> CallConversation {
        CallConversation {
            id: self.id.clone(),
            name: None,
            participants: self
                .participants
                .iter()
                .map(|p| p.call_view(attributes(p)))
                .collect(),
            recording_state: Some("none".to_owned()),
            self_uri: Some(format!("/api/v2/conversations/calls/{}", self.id)),
        }
    }

    /// `GET /api/v2/conversations/{id}`.
    pub(crate) fn conversation_view(&self) -> Conversation {
        Conversation {
            id: self.id.clone(),
            start_time: Some(timestamp(self.start)),
            end_time: self.end.map(timestamp),
            participants: self
                .participants
                .iter()
                .map(ParticipantRecord::conversation_view)
                .collect(),
            self_uri: Some(format!("/api/v2/conversations/{}", self.id)),
        }
    }

    /// One conversation of the analytics details query (no attributes, as in Genesys).
    pub(crate) fn analytics_view(&self) -> AnalyticsConversation {
        AnalyticsConversation {
            conversation_id: self.id.clone(),
            conversation_start: Some(timestamp(self.start)),
            conversation_end: self.end.map(timestamp),
            originating_direction: Some("inbound".to_owned()),
            participants: self
                .participants
                .iter()
                .map(|p| p.analytics_view(self.queue_id.as_deref()))
                .collect(),
        }
    }
}
