//! The live half of [`SimState`]: notification channels and their sockets, call arrivals, and
//! the timed work (writes becoming visible, arrivals, call ends, event deliveries, channel
//! expiry), run in simulated-time order by [`SimState::settle`].
//!
//! Every operation settles first, so that what a request sees never depends on how promptly the
//! driver task (`driver.rs`) woke up; the driver only makes timed work happen when no request
//! comes.

use std::collections::BTreeSet;
use std::sync::MutexGuard;
use std::time::Duration;

use genesys_models::notifications::{
    AttributeUpdateEvent, Channel, ChannelTopic, ChannelTopicEntityListing, MAX_TOPICS_PER_CHANNEL,
    conversation_attributes_topic, conversation_of_attributes_topic, queue_calls_topic,
    queue_of_calls_topic,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Inner, SimState};
use crate::arrivals::{ArrivalNumbers, ArrivalRate};
use crate::bus::{Bus, NotificationStatus, Outgoing};
use crate::call::{CallRecord, ParticipantRecord};
use crate::clock::timestamp;
use crate::error::ApiError;

/// Where arrivals stand, as `/__sim/arrivals` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArrivalStatus {
    pub rate: ArrivalRate,
    /// Calls that arrived so far.
    pub arrived: u64,
    /// Customer numbers queued for the next arrivals (`PUT /__sim/arrivals/numbers`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_numbers: Vec<String>,
}

/// The kinds of timed work, in the order they run when due at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    Promotion,
    End,
    Arrival,
    Delivery,
    Expiry,
}

/// Why a topic cannot be subscribed.
enum Rejection {
    /// A queue topic of a queue the org does not have.
    UnknownQueue,
    /// Not a topic the simulator publishes.
    Unsupported,
}

impl Rejection {
    fn reason(&self) -> &'static str {
        match self {
            Self::UnknownQueue => "No such queue, or no permission to see it",
            Self::Unsupported => {
                "The simulator publishes only v2.routing.queues.{id}.conversations.calls and v2.detail.events.conversation.{id}.attributes"
            }
        }
    }

    /// The whole request's error when `ignoreErrors` is not set.
    fn error(&self, topic: &str) -> ApiError {
        match self {
            Self::UnknownQueue => ApiError::missing_permissions(&format!(
                "[routing queue of {topic} (simulated: an unknown queue is refused like a topic without permission)]"
            )),
            Self::Unsupported => ApiError::invalid_value(
                topic,
                "topic",
                "v2.routing.queues.{queueId}.conversations.calls or v2.detail.events.conversation.{conversationId}.attributes",
            ),
        }
    }
}

impl SimState {
    // ---- public, for tests and the admin surface ----

    /// Sends `v2.system.socket_closing` on every connected socket, then closes it with a close
    /// frame; channels and their topics stay, so a client reconnects to the same `connectUri`.
    /// Returns how many sockets.
    pub fn announce_socket_closing(&self) -> usize {
        self.settled().0.bus.announce_closing()
    }

    /// Drops every socket's TCP connection without a close frame (a network failure); channels
    /// stay. Returns how many sockets.
    pub fn drop_sockets(&self) -> usize {
        self.settled().0.bus.drop_sockets()
    }

    /// Makes every connected socket go silent with its TCP connection open (a half-open
    /// connection: no heartbeats, events, pongs or close frame) until the simulator stops; the
    /// channels stay and take a new socket. Returns how many sockets.
    pub fn stall_sockets(&self) -> usize {
        self.settled().0.bus.stall_sockets()
    }

    /// Expires every channel now: gone for `HEAD`, subscriptions and connections, its socket
    /// closed. Returns how many channels.
    pub fn expire_channels(&self) -> usize {
        self.settled().0.bus.expire_all()
    }

    /// Channels, their topics and sockets, and event counts.
    pub fn notification_status(&self) -> NotificationStatus {
        self.settled().0.bus.status()
    }

    /// Arrivals from now on follow `rate` ([`ArrivalRate::NONE`] stops them).
    pub fn set_arrival_rate(&self, rate: ArrivalRate) {
        let (mut inner, now) = self.settled();
        inner.arrivals.set_rate(rate, now);
        drop(inner);
        self.wake();
    }

    pub fn arrival_status(&self) -> ArrivalStatus {
        let (inner, _) = self.settled();
        ArrivalStatus {
            rate: inner.arrivals.rate(),
            arrived: inner.arrivals.arrived(),
            customer_numbers: inner.arrivals.customer_numbers().iter().cloned().collect(),
        }
    }

    /// The next arrivals (scheduled or by hand) take these customer numbers, one each, after
    /// those already queued; then seeded numbers resume (see
    /// [`SimConfig::arrival_customer_numbers`](crate::SimConfig::arrival_customer_numbers)).
    pub fn queue_arrival_numbers(&self, customer_numbers: Vec<String>) {
        let (mut inner, _) = self.settled();
        inner.arrivals.queue_customer_numbers(customer_numbers);
    }

    /// One call arrives now, in `queue_id` or the next queue in turn, as a scheduled arrival
    /// would (it ends after `call_duration` if one is set). Returns its id; `None` when there
    /// is no such queue.
    pub fn arrive_call(&self, queue_id: Option<&str>) -> Option<String> {
        self.arrive_call_with(queue_id, &ArrivalNumbers::default())
    }

    /// [`SimState::arrive_call`] with given numbers: the customer's and the dialled one, each
    /// when given (see [`ArrivalNumbers`]).
    pub fn arrive_call_with(
        &self,
        queue_id: Option<&str>,
        numbers: &ArrivalNumbers,
    ) -> Option<String> {
        let (mut inner, now) = self.settled();
        let id = self.arrive(&mut inner, queue_id, numbers, now);
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
        id
    }

    /// An agent answers a live call now: its acd participant leaves and an agent joins (the
    /// queue's channels get the change). `false` when there is no such call, it has ended, or
    /// it was already answered.
    pub fn answer_call(&self, conversation_id: &str) -> bool {
        let (mut inner, now) = self.settled();
        let Some(&index) = inner.call_index.get(conversation_id) else {
            return false;
        };
        let wall = self.shared.clock.wall(now);
        let Inner {
            calls,
            arrivals,
            bus,
            ..
        } = &mut *inner;
        if !arrivals.answer(&mut calls[index], wall) {
            return false;
        }
        publish(bus, &calls[index], now);
        self.settle(&mut inner, now);
        drop(inner);
        self.wake();
        true
    }

    // ---- crate-internal ----

    pub(crate) fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Returns when something new was scheduled (or the clock moved).
    pub(crate) async fn woken(&self) {
        self.shared.wake.notified().await;
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.shared.heartbeat_interval
    }

    /// The lock, with every piece of timed work due by now done.
    pub(super) fn settled(&self) -> (MutexGuard<'_, Inner>, Duration) {
        let mut inner = self.lock();
        let now = self.now(&inner);
        self.settle(&mut inner, now);
        (inner, now)
    }

    /// Runs the timed work due by now; returns how long (real time) until the next is due, or
    /// `None` when nothing is scheduled or the clock is frozen (then only a wake-up helps).
    pub(crate) fn run_due(&self) -> Option<Duration> {
        let (inner, now) = self.settled();
        if inner.frozen_at.is_some() {
            return None;
        }
        next_work(&inner).map(|(at, _)| at.saturating_sub(now))
    }

    /// Does every piece of timed work due by `now`, one at a time in simulated-time order, each
    /// at its own time (so a call that arrives and ends within one clock advance publishes its
    /// start before its end).
    pub(super) fn settle(&self, inner: &mut Inner, now: Duration) {
        while let Some((at, work)) = next_work(inner).filter(|(at, _)| *at <= now) {
            match work {
                Work::Promotion => self.promote(inner),
                Work::End => {
                    if let Some((at, index)) = inner.ends.pop_first() {
                        self.end_call_at(inner, index, at);
                    }
                }
                Work::Arrival => {
                    inner.arrivals.advance(at);
                    self.arrive(inner, None, &ArrivalNumbers::default(), at);
                }
                Work::Delivery => inner.bus.deliver_next(),
                Work::Expiry => inner.bus.expire_due(at),
            }
        }
    }

    /// Makes the writes of the first scheduled promotion visible, publishing each visible change
    /// (unless attribute events are off).
    fn promote(&self, inner: &mut Inner) {
        let Some((at, index)) = inner.promotions.pop_first() else {
            return;
        };
        let attribute_events = self.shared.attribute_events;
        let Inner {
            calls,
            bus,
            promotions,
            ..
        } = inner;
        let call = &mut calls[index];
        let wall = self.shared.clock.wall(at);
        call.promote_each(at, |call, participant, changed| {
            if changed && attribute_events {
                publish(bus, call, at);
                publish_attributes(bus, call, participant, wall, at);
            }
        });
        // A later write with a shorter lag (faults changed meanwhile) waits behind an older one.
        if let Some(next) = call.next_visible_at() {
            promotions.insert((next, index));
        }
    }

    /// Ends a call at `at` and publishes the end (nothing if it had already ended).
    pub(super) fn end_call_at(&self, inner: &mut Inner, index: usize, at: Duration) {
        let wall = self.shared.clock.wall(at);
        if inner.calls[index].end(wall) {
            publish(&mut inner.bus, &inner.calls[index], at);
        }
    }

    /// A call arrives at `at` (see `Arrivals::new_call`) and is published.
    fn arrive(
        &self,
        inner: &mut Inner,
        queue_id: Option<&str>,
        numbers: &ArrivalNumbers,
        at: Duration,
    ) -> Option<String> {
        let wall = self.shared.clock.wall(at);
        let Inner {
            queues,
            arrivals,
            calls,
            call_index,
            ends,
            bus,
            ..
        } = inner;
        let queue = arrivals.pick_queue(queues, queue_id)?;
        let (call, duration) = arrivals.new_call(queue, numbers, wall, at);
        let index = calls.len();
        let id = call.id.clone();
        call_index.insert(id.clone(), index);
        if let Some(duration) = duration {
            ends.insert((at + duration, index));
        }
        publish(bus, &call, at);
        calls.push(call);
        Some(id)
    }

    /// `POST /api/v2/notifications/channels` for `client_id`; 403 when
    /// [`SimConfig::channels_forbidden`](crate::SimConfig::channels_forbidden).
    pub(crate) fn create_channel(&self, client_id: &str) -> Result<Channel, ApiError> {
        if self.shared.channels_forbidden {
            return Err(ApiError::missing_permissions("notifications:channel:add"));
        }
        let (mut inner, now) = self.settled();
        let (id, expires_at) = inner.bus.create(client_id, now);
        drop(inner);
        self.wake();
        Ok(Channel {
            connect_uri: format!(
                "{}://{}/channels/{id}",
                self.shared.socket_scheme, self.shared.addr
            ),
            expires: Some(timestamp(self.shared.clock.wall(expires_at))),
            id,
        })
    }

    /// `HEAD /api/v2/notifications/channels/{id}`.
    pub(crate) fn channel_exists(&self, channel_id: &str) -> bool {
        self.settled().0.bus.exists(channel_id)
    }

    /// `GET .../subscriptions`: the channel's topics.
    pub(crate) fn channel_topics(
        &self,
        channel_id: &str,
    ) -> Result<ChannelTopicEntityListing, ApiError> {
        let (inner, _) = self.settled();
        let topics = inner
            .bus
            .topics(channel_id)
            .map_err(|_| ApiError::not_found())?;
        Ok(listing(channel_id, topics, Vec::new()))
    }

    /// `POST` (add) or `PUT` (`replace`) `.../subscriptions`. A topic the simulator cannot
    /// serve fails the whole request (403 for an unknown queue, as a topic without permission
    /// does; 400 for any other topic), unless `ignore_errors`, when it is listed as `Rejected`
    /// and the others are subscribed. More than [`MAX_TOPICS_PER_CHANNEL`] afterwards is a 400
    /// that `ignore_errors` does not skip. Either way, a failed request changes nothing.
    pub(crate) fn subscribe(
        &self,
        channel_id: &str,
        requested: Vec<String>,
        replace: bool,
        ignore_errors: bool,
    ) -> Result<ChannelTopicEntityListing, ApiError> {
        let (mut inner, now) = self.settled();
        let current = inner
            .bus
            .topics(channel_id)
            .map_err(|_| ApiError::not_found())?;
        let mut topics = if replace {
            BTreeSet::new()
        } else {
            current.clone()
        };
        let mut rejected = Vec::new();
        for topic in requested {
            // A conversation's attribute topic is accepted whatever the id (an unknown or
            // ended conversation simply never publishes): whether Genesys checks the id is [?].
            let rejection = match queue_of_calls_topic(&topic) {
                Some(queue) if inner.queues.iter().any(|q| q.id == queue) => None,
                Some(_) => Some(Rejection::UnknownQueue),
                None if conversation_of_attributes_topic(&topic).is_some() => None,
                None => Some(Rejection::Unsupported),
            };
            match rejection {
                None => {
                    topics.insert(topic);
                }
                Some(rejection) if ignore_errors => rejected.push((topic, rejection)),
                Some(rejection) => return Err(rejection.error(&topic)),
            }
        }
        if topics.len() > MAX_TOPICS_PER_CHANNEL {
            return Err(ApiError::constraint_validation(format!(
                "A channel may subscribe to at most {MAX_TOPICS_PER_CHANNEL} topics; this request would leave it {}",
                topics.len()
            )));
        }
        let answer = listing(channel_id, &topics, rejected);
        // The channel exists: it was looked up above under the same lock.
        let _ = inner.bus.set_topics(channel_id, topics);
        let _ = inner.bus.touch(channel_id, now);
        Ok(answer)
    }

    /// `DELETE .../subscriptions`.
    pub(crate) fn unsubscribe_all(&self, channel_id: &str) -> Result<(), ApiError> {
        let (mut inner, now) = self.settled();
        inner
            .bus
            .set_topics(channel_id, BTreeSet::new())
            .map_err(|_| ApiError::not_found())?;
        let _ = inner.bus.touch(channel_id, now);
        Ok(())
    }

    /// A socket connects to a channel (which counts as a use); the one there before is closed.
    /// `None` when there is no such channel.
    pub(crate) fn attach_socket(
        &self,
        channel_id: &str,
    ) -> Option<(u64, mpsc::UnboundedReceiver<Outgoing>)> {
        let (mut inner, now) = self.settled();
        inner.bus.attach(channel_id, now).ok()
    }

    pub(crate) fn detach_socket(&self, channel_id: &str, socket_id: u64) {
        self.lock().bus.detach(channel_id, socket_id);
    }

    /// Closes every socket (the simulator stops).
    pub(crate) fn close_sockets(&self) {
        self.lock().bus.close_sockets();
    }
}

/// The earliest piece of timed work.
fn next_work(inner: &Inner) -> Option<(Duration, Work)> {
    [
        inner
            .promotions
            .first()
            .map(|(at, _)| (*at, Work::Promotion)),
        inner.ends.first().map(|(at, _)| (*at, Work::End)),
        inner.arrivals.next_due().map(|at| (at, Work::Arrival)),
        inner.bus.next_delivery().map(|at| (at, Work::Delivery)),
        inner.bus.next_expiry().map(|at| (at, Work::Expiry)),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Publishes a participant's attributes as reads see them now on its conversation's attribute
/// topic, if anyone listens: one event per write that became visible (a flow's overwrite right
/// after a client's write is an event of its own).
fn publish_attributes(
    bus: &mut Bus,
    call: &CallRecord,
    participant: &ParticipantRecord,
    wall: std::time::SystemTime,
    at: Duration,
) {
    let topic = conversation_attributes_topic(&call.id);
    if !bus.has_subscribers(&topic) {
        return;
    }
    let event = AttributeUpdateEvent {
        event_time: Some(timestamp(wall)),
        conversation_id: call.id.clone(),
        participant_id: participant.id.clone(),
        attributes: participant.visible.clone(),
    };
    match serde_json::to_value(event) {
        Ok(body) => bus.publish(&topic, body, at),
        Err(error) => tracing::warn!(%error, "cannot serialize an attribute event"),
    }
}

/// Publishes a call as reads see it now on its queue's calls topic, if anyone listens.
fn publish(bus: &mut Bus, call: &CallRecord, at: Duration) {
    let Some(queue_id) = &call.queue_id else {
        return;
    };
    let topic = queue_calls_topic(queue_id);
    if !bus.has_subscribers(&topic) {
        return;
    }
    match serde_json::to_value(call.call_view()) {
        Ok(body) => bus.publish(&topic, body, at),
        Err(error) => tracing::warn!(%error, "cannot serialize a queue call event"),
    }
}

fn listing(
    channel_id: &str,
    topics: &BTreeSet<String>,
    rejected: Vec<(String, Rejection)>,
) -> ChannelTopicEntityListing {
    let self_uri = Some(format!(
        "/api/v2/notifications/channels/{channel_id}/subscriptions"
    ));
    let permitted = topics.iter().map(|topic| ChannelTopic {
        id: topic.clone(),
        state: Some("Permitted".to_owned()),
        self_uri: self_uri.clone(),
        ..ChannelTopic::default()
    });
    let rejected = rejected.into_iter().map(|(topic, rejection)| ChannelTopic {
        id: topic,
        state: Some("Rejected".to_owned()),
        rejection_reason: Some(rejection.reason().to_owned()),
        self_uri: self_uri.clone(),
        ..ChannelTopic::default()
    });
    ChannelTopicEntityListing {
        entities: permitted.chain(rejected).collect(),
    }
}
