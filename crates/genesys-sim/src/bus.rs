//! The notification bus: channels, their topics and sockets, and the delivery of events in
//! simulated time. Plain data kept under the state's lock; the HTTP side is `notifications.rs`,
//! the WebSocket side `socket.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use genesys_models::notifications::{
    MAX_CHANNELS, NotificationEnvelope, NotificationMetadata, SOCKET_CLOSING_TOPIC,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// What the bus tells a socket's task.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A message to send as is.
    Text(Arc<str>),
    /// Send this `v2.system.socket_closing` message, then close the socket.
    Closing(Arc<str>),
    /// Close the socket with a close frame (the channel is gone, or another socket took it).
    Close,
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Go silent with the connection open (a half-open connection): send nothing, read
    /// nothing, until the simulator stops.
    Stall,
}

struct Socket {
    id: u64,
    outbox: mpsc::UnboundedSender<Outgoing>,
}

struct ChannelRecord {
    client_id: String,
    topics: BTreeSet<String>,
    /// Simulated time of the last use (creation, a subscription change, a connection).
    last_used: Duration,
    /// Order of last use, so that least-recently-used ties break the same way every run.
    used_seq: u64,
    socket: Option<Socket>,
    events_sent: u64,
}

/// One event on its way to one channel.
struct Delivery {
    channel_id: String,
    text: Arc<str>,
}

/// A channel as `/__sim/notifications` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub id: String,
    /// The OAuth client that created it (channels are limited per client).
    pub client_id: String,
    pub topics: Vec<String>,
    /// A socket is connected now.
    pub connected: bool,
    /// Events sent to its sockets (heartbeats and pongs not counted).
    pub events_sent: u64,
    /// Simulated milliseconds since the start at which it expires unless used again.
    pub expires_at_ms: u64,
}

/// The whole bus as `/__sim/notifications` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationStatus {
    /// Sorted by id.
    pub channels: Vec<ChannelStatus>,
    /// Changes of a call that at least one channel was subscribed to.
    pub events_published: u64,
    /// Events written to a socket.
    pub events_sent: u64,
    /// Events dropped because their channel had no connected socket when they were due
    /// (Genesys keeps nothing for a disconnected channel).
    pub events_lost: u64,
    /// Events waiting for their `event_delay`.
    pub events_pending: usize,
    /// Sockets connected now.
    pub sockets: usize,
}

pub(crate) struct Bus {
    ttl: Duration,
    delay: Duration,
    /// Channel ids, from their own seeded stream.
    rng: StdRng,
    channels: BTreeMap<String, ChannelRecord>,
    /// Keyed by (due time, publication order): delivered in time order, ties in publication order.
    pending: BTreeMap<(Duration, u64), Delivery>,
    seq: u64,
    next_socket: u64,
    /// Outboxes of stalled sockets, so that stopping the simulator still ends them.
    stalled: Vec<mpsc::UnboundedSender<Outgoing>>,
    published: u64,
    sent: u64,
    lost: u64,
}

/// Why a channel was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoSuchChannel;

impl Bus {
    pub(crate) fn new(seed: u64, ttl: Duration, delay: Duration) -> Self {
        Self {
            ttl,
            delay,
            rng: StdRng::seed_from_u64(seed),
            channels: BTreeMap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            next_socket: 1,
            stalled: Vec::new(),
            published: 0,
            sent: 0,
            lost: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new channel of `client_id`, used now. The client's least recently used channel goes
    /// (its socket closed) when it already has [`MAX_CHANNELS`], as Genesys does, silently.
    /// Returns the id and the simulated time it expires.
    pub(crate) fn create(&mut self, client_id: &str, now: Duration) -> (String, Duration) {
        let owned: Vec<(u64, &String)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.client_id == client_id)
            .map(|(id, c)| (c.used_seq, id))
            .collect();
        if owned.len() >= MAX_CHANNELS
            && let Some((_, oldest)) = owned.iter().min()
        {
            let oldest = (*oldest).clone();
            self.remove(&oldest);
        }
        let id = uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string();
        let used_seq = self.next_seq();
        self.channels.insert(
            id.clone(),
            ChannelRecord {
                client_id: client_id.to_owned(),
                topics: BTreeSet::new(),
                last_used: now,
                used_seq,
                socket: None,
                events_sent: 0,
            },
        );
        (id, now + self.ttl)
    }

    pub(crate) fn exists(&self, channel_id: &str) -> bool {
        self.channels.contains_key(channel_id)
    }

    /// Marks a channel used: its expiry starts over.
    pub(crate) fn touch(&mut self, channel_id: &str, now: Duration) -> Result<(), NoSuchChannel> {
        let used_seq = self.next_seq();
        let channel = self.channels.get_mut(channel_id).ok_or(NoSuchChannel)?;
        channel.last_used = now;
        channel.used_seq = used_seq;
        Ok(())
    }

    pub(crate) fn topics(&self, channel_id: &str) -> Result<&BTreeSet<String>, NoSuchChannel> {
        Ok(&self.channels.get(channel_id).ok_or(NoSuchChannel)?.topics)
    }

    /// Replaces a channel's topics (the caller checked them and their count).
    pub(crate) fn set_topics(
        &mut self,
        channel_id: &str,
        topics: BTreeSet<String>,
    ) -> Result<(), NoSuchChannel> {
        self.channels
            .get_mut(channel_id)
            .ok_or(NoSuchChannel)?
            .topics = topics;
        Ok(())
    }

    /// Attaches a new socket to a channel (used now); a socket already there is closed, since a
    /// channel has one socket. Returns the socket's id and its outbox.
    pub(crate) fn attach(
        &mut self,
        channel_id: &str,
        now: Duration,
    ) -> Result<(u64, mpsc::UnboundedReceiver<Outgoing>), NoSuchChannel> {
        self.touch(channel_id, now)?;
        let id = self.next_socket;
        self.next_socket += 1;
        let (outbox, receiver) = mpsc::unbounded_channel();
        let channel = self.channels.get_mut(channel_id).ok_or(NoSuchChannel)?;
        if let Some(previous) = channel.socket.replace(Socket { id, outbox }) {
            let _ = previous.outbox.send(Outgoing::Close);
        }
        Ok((id, receiver))
    }

    /// Forgets a socket that ended, unless another one has taken its channel since.
    pub(crate) fn detach(&mut self, channel_id: &str, socket_id: u64) {
        if let Some(channel) = self.channels.get_mut(channel_id)
            && channel.socket.as_ref().is_some_and(|s| s.id == socket_id)
        {
            channel.socket = None;
        }
    }

    fn remove(&mut self, channel_id: &str) {
        if let Some(channel) = self.channels.remove(channel_id)
            && let Some(socket) = channel.socket
        {
            let _ = socket.outbox.send(Outgoing::Close);
        }
    }

    /// Whether any channel listens to `topic` (so that a change nobody listens to costs nothing).
    pub(crate) fn has_subscribers(&self, topic: &str) -> bool {
        self.channels.values().any(|c| c.topics.contains(topic))
    }

    /// Publishes `body` on `topic` at `at`: every channel subscribed now gets it `event_delay`
    /// later, if a socket is connected then.
    pub(crate) fn publish(&mut self, topic: &str, body: serde_json::Value, at: Duration) {
        let targets: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.topics.contains(topic))
            .map(|(id, _)| id.clone())
            .collect();
        if targets.is_empty() {
            return;
        }
        self.published += 1;
        let text = envelope(topic, body);
        for channel_id in targets {
            let seq = self.next_seq();
            self.pending.insert(
                (at + self.delay, seq),
                Delivery {
                    channel_id,
                    text: text.clone(),
                },
            );
        }
    }

    /// When the next event is due on a socket.
    pub(crate) fn next_delivery(&self) -> Option<Duration> {
        self.pending.keys().next().map(|(at, _)| *at)
    }

    /// Sends the next due event to its channel's socket, or loses it if none is connected.
    pub(crate) fn deliver_next(&mut self) {
        let Some((_, delivery)) = self.pending.pop_first() else {
            return;
        };
        let Some(channel) = self.channels.get_mut(&delivery.channel_id) else {
            self.lost += 1;
            return;
        };
        let sent = channel
            .socket
            .as_ref()
            .is_some_and(|s| s.outbox.send(Outgoing::Text(delivery.text)).is_ok());
        if sent {
            channel.events_sent += 1;
            self.sent += 1;
        } else {
            self.lost += 1;
        }
    }

    /// When the next channel expires.
    pub(crate) fn next_expiry(&self) -> Option<Duration> {
        self.channels.values().map(|c| c.last_used + self.ttl).min()
    }

    /// Removes every channel expired at `now`.
    pub(crate) fn expire_due(&mut self, now: Duration) {
        let expired: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.last_used + self.ttl <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }

    /// Removes every channel now (as if all had expired). Returns how many.
    pub(crate) fn expire_all(&mut self) -> usize {
        let ids: Vec<String> = self.channels.keys().cloned().collect();
        for id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    /// Tells every socket `v2.system.socket_closing`, then closes it; channels stay. Returns
    /// how many sockets.
    pub(crate) fn announce_closing(&mut self) -> usize {
        self.take_sockets(|| {
            Outgoing::Closing(envelope(
                SOCKET_CLOSING_TOPIC,
                serde_json::json!({"message": "Socket closing"}),
            ))
        })
    }

    /// Drops every socket's TCP connection without a close frame; channels stay.
    pub(crate) fn drop_sockets(&mut self) -> usize {
        self.take_sockets(|| Outgoing::Drop)
    }

    /// Makes every socket go silent with its connection open: no heartbeat, no event, no pong,
    /// no close; the channel forgets it (its events are lost), so only a client that notices the
    /// missing heartbeats reconnects. Channels stay. Returns how many sockets.
    pub(crate) fn stall_sockets(&mut self) -> usize {
        let mut count = 0;
        for channel in self.channels.values_mut() {
            if let Some(socket) = channel.socket.take() {
                let _ = socket.outbox.send(Outgoing::Stall);
                self.stalled.push(socket.outbox);
                count += 1;
            }
        }
        count
    }

    /// Closes every socket with a close frame, and ends stalled ones; channels stay (the
    /// simulator is stopping).
    pub(crate) fn close_sockets(&mut self) -> usize {
        for outbox in self.stalled.drain(..) {
            let _ = outbox.send(Outgoing::Drop);
        }
        self.take_sockets(|| Outgoing::Close)
    }

    /// Detaches every socket now, so that nothing more is sent to it, and tells it `command`.
    fn take_sockets(&mut self, command: impl Fn() -> Outgoing) -> usize {
        let mut count = 0;
        for channel in self.channels.values_mut() {
            if let Some(socket) = channel.socket.take() {
                let _ = socket.outbox.send(command());
                count += 1;
            }
        }
        count
    }

    pub(crate) fn status(&self) -> NotificationStatus {
        let channels = self
            .channels
            .iter()
            .map(|(id, c)| ChannelStatus {
                id: id.clone(),
                client_id: c.client_id.clone(),
                topics: c.topics.iter().cloned().collect(),
                connected: c.socket.is_some(),
                events_sent: c.events_sent,
                expires_at_ms: millis(c.last_used + self.ttl),
            })
            .collect::<Vec<_>>();
        NotificationStatus {
            sockets: channels.iter().filter(|c| c.connected).count(),
            channels,
            events_published: self.published,
            events_sent: self.sent,
            events_lost: self.lost,
            events_pending: self.pending.len(),
        }
    }
}

/// Simulated milliseconds, as the request log counts them.
pub(crate) fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

/// One message as every socket message is: version 2, with a fresh correlation id.
pub(crate) fn envelope(topic: &str, body: serde_json::Value) -> Arc<str> {
    let envelope = NotificationEnvelope {
        topic_name: topic.to_owned(),
        version: Some("2".to_owned()),
        event_body: body,
        metadata: Some(NotificationMetadata {
            correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        }),
    };
    serde_json::to_string(&envelope).unwrap_or_default().into()
}
