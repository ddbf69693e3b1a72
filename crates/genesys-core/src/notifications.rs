//! Following topics through the Notification API: channels, topic subscriptions, one WebSocket
//! per channel, and the events it delivers, kept connected for as long as the watch lives. The
//! topics are queues' call topics (`tag --follow`) or conversations' attribute topics (the
//! verification of a snapshot run's changes).
//!
//! Events are not durable: whatever the server sends while no socket is connected is lost. So
//! every (re)connection is reported as [`Notice::Connected`] with `gap: true`, and the consumer
//! backfills through the API (the analytics listing) after it. The one reconnection without a
//! gap is the planned replacement of an ageing channel: the new socket is connected before the
//! old one is dropped.
//!
//! Channel and subscription requests go through the [`GenesysClient`], so they are rate-limited,
//! retried and observed like every other request. Event bodies (names, phone numbers) are
//! never logged.

use std::fmt;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use url::Url;

use crate::client::GenesysClient;
use crate::error::ApiError;
use crate::models::notifications::{
    AttributeUpdateEvent, Channel, MAX_CHANNELS, MAX_TOPICS_PER_CHANNEL, METADATA_TOPIC,
    NotificationEnvelope, QueueCallEvent, SOCKET_CLOSING_TOPIC, conversation_of_attributes_topic,
    queue_calls_topic, queue_of_calls_topic,
};
use crate::settings::is_loopback;

/// How a watch keeps its sockets alive.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// No message at all (Genesys sends a heartbeat about every 30 s [?]) for this long means
    /// the socket is dead: reconnect, and backfill.
    pub idle_timeout: Duration,
    /// How often a connected channel is checked with `HEAD` (a 21st channel created with the
    /// same OAuth client silently removes the least recently used one).
    pub channel_check: Duration,
    /// Age at which a channel is replaced by a new one, connected before the old is dropped,
    /// ahead of Genesys's 24 h expiry.
    pub channel_max_age: Duration,
    /// Longest pause between failed (re)connection attempts (they back off from 250 ms).
    pub max_reconnect_delay: Duration,
    /// Time allowed for the WebSocket handshake.
    pub connect_timeout: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(95),
            channel_check: Duration::from_secs(60),
            channel_max_age: Duration::from_secs(23 * 3600),
            max_reconnect_delay: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// What a watch reports, in the order it happened on each channel.
#[derive(Clone, Debug)]
pub enum Notice {
    /// A channel's socket is connected and its topics subscribed: events flow from now on.
    /// `gap` says events may have been lost before this (always so for the first connection:
    /// calls already in the queues were never announced).
    Connected {
        channel: usize,
        gap: bool,
        why: Reconnect,
    },
    /// The whole conversation of a call in a followed queue, as it is now.
    Call {
        queue_id: String,
        call: QueueCallEvent,
        received_at: Instant,
    },
    /// A participant's attributes after a change, from its conversation's attribute topic.
    Attributes {
        event: AttributeUpdateEvent,
        received_at: Instant,
    },
    /// A (re)connection attempt failed; it is retried after a backoff. Said once per failure.
    Trouble { channel: usize, message: String },
    /// Genesys refused what retrying cannot fix (a topic it will not subscribe, e.g. an unknown
    /// queue or a missing permission; a given token refused, or the budget exhausted:
    /// `resume_later`). The channel's watch has ended.
    Refused {
        channel: usize,
        message: String,
        resume_later: bool,
    },
}

/// Why a (re)connection attempt failed, and whether trying again can help.
struct Failed {
    message: String,
    /// `None`: retry after a backoff; `Some(resume_later)`: give up (see [`Notice::Refused`]).
    fatal: Option<bool>,
}

impl Failed {
    /// An API error: a client error (4xx, but for an expired token, a conflict, a timeout or
    /// a 429) or a refused given token will not go away by retrying.
    fn api(message: String, err: &ApiError) -> Self {
        let client_error = err
            .status()
            .is_some_and(|s| (400..500).contains(&s) && !matches!(s, 401 | 408 | 409 | 429));
        let fatal = if err.is_resume_later() {
            Some(true)
        } else if client_error {
            Some(false)
        } else {
            None
        };
        Failed { message, fatal }
    }
}

/// Why a channel's socket was (re)connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    First,
    /// `v2.system.socket_closing`: the server closes the socket, the channel lives on.
    SocketClosing,
    /// The socket closed, failed, or went quiet for longer than the idle timeout.
    Dropped,
    /// `HEAD` found the channel gone (expired, or evicted by a 21st channel): a new one.
    ChannelGone,
    /// The channel reached its maximum age and was replaced; the new socket was connected
    /// before the old was dropped, so nothing was missed.
    Renewed,
}

impl fmt::Display for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::First => "first connection",
            Self::SocketClosing => "the server announced it would close the socket",
            Self::Dropped => "the socket dropped or went quiet",
            Self::ChannelGone => "the channel was removed (expired, or evicted by a newer one)",
            Self::Renewed => "the channel was renewed before its expiry",
        })
    }
}

/// Too many queues for one OAuth client's channels.
#[derive(Debug, thiserror::Error)]
#[error(
    "{queues} queues need {channels} notification channels, more than the {MAX_CHANNELS} one OAuth client may have ({MAX_TOPICS_PER_CHANNEL} topics each)"
)]
pub struct TooManyQueues {
    pub queues: usize,
    pub channels: usize,
}

/// A running watch of topics. Dropping it closes its sockets.
pub struct TopicWatch {
    /// Notices from every channel.
    pub notices: mpsc::Receiver<Notice>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for TopicWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicWatch")
            .field("channels", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Drop for TopicWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts following the voice-call topic of every queue: 1,000 topics per channel, as many
/// channels as that takes (at most 20).
pub fn watch_queues(
    client: &GenesysClient,
    queue_ids: &[String],
    options: WatchOptions,
) -> Result<TopicWatch, TooManyQueues> {
    let topics: Vec<String> = queue_ids.iter().map(|q| queue_calls_topic(q)).collect();
    let channels = topics.len().div_ceil(MAX_TOPICS_PER_CHANNEL);
    if channels > MAX_CHANNELS {
        return Err(TooManyQueues {
            queues: queue_ids.len(),
            channels,
        });
    }
    Ok(watch_topics(client, &topics, options))
}

/// Starts following `topics`: 1,000 per channel (one subscription request each), as many
/// channels as that takes. The caller keeps that within what the OAuth client may have (the
/// 20 channels per client are shared with its other consumers).
pub fn watch_topics(
    client: &GenesysClient,
    topics: &[String],
    options: WatchOptions,
) -> TopicWatch {
    let chunks: Vec<Vec<String>> = topics
        .chunks(MAX_TOPICS_PER_CHANNEL)
        .map(<[String]>::to_vec)
        .collect();
    // Bounded: a slow consumer slows the reading of the sockets rather than growing memory.
    let (tx, notices) = mpsc::channel(4_096);
    let tasks = chunks
        .into_iter()
        .enumerate()
        .map(|(index, topics)| {
            let follower = ChannelFollower {
                client: client.clone(),
                index,
                topics,
                options: options.clone(),
                tx: tx.clone(),
            };
            tokio::spawn(follower.run())
        })
        .collect();
    TopicWatch { notices, tasks }
}

use crate::tls::Socket;

/// One channel, kept subscribed and connected.
struct ChannelFollower {
    client: GenesysClient,
    index: usize,
    topics: Vec<String>,
    options: WatchOptions,
    tx: mpsc::Sender<Notice>,
}

/// How a connected socket's life ended.
enum SocketEnd {
    Closing,
    Dropped,
    ChannelGone,
    /// Replaced by a newer channel, already connected.
    Renewed(Box<(Channel, Socket, Instant)>),
    /// Nobody listens any more.
    Unwatched,
}

impl ChannelFollower {
    async fn run(self) {
        let mut channel: Option<(Channel, Instant)> = None;
        let mut connected: Option<Socket> = None;
        let mut why = Reconnect::First;
        let mut failures = 0u32;
        loop {
            let (current, born) = match channel.take() {
                Some(c) => c,
                None => match self.open_channel().await {
                    Ok(c) => (c, Instant::now()),
                    Err(Failed {
                        message,
                        fatal: Some(resume_later),
                    }) => {
                        let _ = self
                            .tx
                            .send(Notice::Refused {
                                channel: self.index,
                                message,
                                resume_later,
                            })
                            .await;
                        return;
                    }
                    Err(Failed { message, .. }) => {
                        if !self.trouble(message, &mut failures).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let socket = match connected.take() {
                Some(socket) => socket,
                None => match self.connect(&current).await {
                    Ok(socket) => {
                        let notice = Notice::Connected {
                            channel: self.index,
                            gap: why != Reconnect::Renewed,
                            why,
                        };
                        if self.tx.send(notice).await.is_err() {
                            return;
                        }
                        socket
                    }
                    Err(message) => {
                        // The channel may be what is wrong: keep it only if it still exists.
                        let exists = self.client.channel_exists(&current.id).await;
                        if matches!(exists, Ok(true)) {
                            channel = Some((current, born));
                        } else {
                            why = Reconnect::ChannelGone;
                        }
                        if !self.trouble(message, &mut failures).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            failures = 0;
            match self.follow(socket, &current, born).await {
                SocketEnd::Unwatched => return,
                SocketEnd::Closing => {
                    why = Reconnect::SocketClosing;
                    channel = Some((current, born));
                }
                SocketEnd::Dropped => {
                    why = Reconnect::Dropped;
                    if matches!(self.client.channel_exists(&current.id).await, Ok(true)) {
                        channel = Some((current, born));
                    } else {
                        why = Reconnect::ChannelGone;
                    }
                }
                SocketEnd::ChannelGone => why = Reconnect::ChannelGone,
                SocketEnd::Renewed(renewed) => {
                    let (next, socket, next_born) = *renewed;
                    channel = Some((next, next_born));
                    connected = Some(socket);
                    let notice = Notice::Connected {
                        channel: self.index,
                        gap: false,
                        why: Reconnect::Renewed,
                    };
                    if self.tx.send(notice).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Reports a failed attempt and waits before the next; false when nobody listens.
    async fn trouble(&self, message: String, failures: &mut u32) -> bool {
        *failures += 1;
        let notice = Notice::Trouble {
            channel: self.index,
            message,
        };
        if self.tx.send(notice).await.is_err() {
            return false;
        }
        tokio::time::sleep(reconnect_delay(*failures, self.options.max_reconnect_delay)).await;
        true
    }

    /// A new channel with this follower's topics (PUT: exactly these, whatever it had).
    async fn open_channel(&self) -> Result<Channel, Failed> {
        let channel =
            self.client.create_channel().await.map_err(|e| {
                Failed::api(format!("cannot create a notification channel: {e}"), &e)
            })?;
        let topics = self
            .client
            .set_subscriptions(&channel.id, &self.topics)
            .await
            .map_err(|e| Failed::api(subscription_failure(&e), &e))?;
        if let Some(rejected) = topics
            .iter()
            .find(|t| t.state.as_deref() == Some("Rejected"))
        {
            return Err(Failed {
                fatal: Some(false),
                message: format!(
                    "Genesys rejected the subscription to {}: {}{}",
                    rejected.id,
                    rejected
                        .rejection_reason
                        .as_deref()
                        .unwrap_or("no reason given"),
                    if rejected.missing_permissions.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (missing permissions: {})",
                            rejected.missing_permissions.join(", ")
                        )
                    }
                ),
            });
        }
        Ok(channel)
    }

    async fn connect(&self, channel: &Channel) -> Result<Socket, String> {
        let url = socket_url(&channel.connect_uri)?;
        let handshake = self.client.connect_socket(&url);
        match tokio::time::timeout(self.options.connect_timeout, handshake).await {
            Ok(Ok(socket)) => Ok(socket),
            Ok(Err(err)) => Err(format!(
                "cannot connect the notification socket {}: {err}",
                redacted(&url)
            )),
            Err(_) => Err(format!(
                "the notification socket {} did not connect within {}",
                redacted(&url),
                humantime::format_duration(self.options.connect_timeout)
            )),
        }
    }

    /// Reads the socket until it ends; forwards queue call and attribute events.
    async fn follow(&self, mut socket: Socket, channel: &Channel, born: Instant) -> SocketEnd {
        let mut check = tokio::time::interval_at(
            Instant::now() + self.options.channel_check,
            self.options.channel_check,
        );
        let renew_at = born + self.options.channel_max_age;
        let mut last_heard = Instant::now();
        loop {
            let idle_deadline = last_heard + self.options.idle_timeout;
            tokio::select! {
                message = socket.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => match self.dispatch(text.as_str()).await {
                            Dispatch::Go => {}
                            Dispatch::Closing => return SocketEnd::Closing,
                            Dispatch::Unwatched => return SocketEnd::Unwatched,
                        },
                        // Pings are answered by the library on the next read or write.
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return SocketEnd::Dropped,
                        Some(Ok(_)) => {}
                    }
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    tracing::debug!(channel = self.index, "notification socket went quiet");
                    return SocketEnd::Dropped;
                }
                _ = check.tick() => {
                    match self.client.channel_exists(&channel.id).await {
                        Ok(false) => return SocketEnd::ChannelGone,
                        Ok(true) => {}
                        Err(err) => tracing::debug!(channel = self.index, %err, "cannot check the notification channel"),
                    }
                    // A cheap keep-alive that the server answers on channel.metadata.
                    let ping = Message::text(r#"{"message":"ping"}"#);
                    if socket.send(ping).await.is_err() {
                        return SocketEnd::Dropped;
                    }
                }
                () = tokio::time::sleep_until(renew_at) => {
                    match self.open_channel().await {
                        Ok(next) => match self.connect(&next).await {
                            Ok(next_socket) => {
                                let _ = socket.close(None).await;
                                return SocketEnd::Renewed(Box::new((next, next_socket, Instant::now())));
                            }
                            Err(message) => tracing::warn!(channel = self.index, "{message}; keeping the current channel"),
                        },
                        Err(failed) => tracing::warn!(channel = self.index, "{}; keeping the current channel", failed.message),
                    }
                }
            }
        }
    }

    async fn dispatch(&self, text: &str) -> Dispatch {
        let Ok(envelope) = serde_json::from_str::<NotificationEnvelope>(text) else {
            tracing::debug!(
                channel = self.index,
                "ignoring a notification that is not JSON"
            );
            return Dispatch::Go;
        };
        if envelope.topic_name == SOCKET_CLOSING_TOPIC {
            return Dispatch::Closing;
        }
        if envelope.topic_name == METADATA_TOPIC {
            return Dispatch::Go;
        }
        if conversation_of_attributes_topic(&envelope.topic_name).is_some() {
            return match serde_json::from_value::<AttributeUpdateEvent>(envelope.event_body) {
                Ok(event)
                    if !event.conversation_id.is_empty() && !event.participant_id.is_empty() =>
                {
                    let notice = Notice::Attributes {
                        event,
                        received_at: Instant::now(),
                    };
                    if self.tx.send(notice).await.is_err() {
                        Dispatch::Unwatched
                    } else {
                        Dispatch::Go
                    }
                }
                _ => {
                    tracing::debug!(
                        channel = self.index,
                        "ignoring an attribute event without a conversation or participant id"
                    );
                    Dispatch::Go
                }
            };
        }
        let Some(queue_id) = queue_of_calls_topic(&envelope.topic_name) else {
            tracing::debug!(
                channel = self.index,
                topic = envelope.topic_name,
                "ignoring a notification of another topic"
            );
            return Dispatch::Go;
        };
        match serde_json::from_value::<QueueCallEvent>(envelope.event_body) {
            Ok(call) if !call.id.is_empty() => {
                let notice = Notice::Call {
                    queue_id: queue_id.to_owned(),
                    call,
                    received_at: Instant::now(),
                };
                if self.tx.send(notice).await.is_err() {
                    return Dispatch::Unwatched;
                }
            }
            // The body may hold personal data: its shape is logged, never its content.
            _ => tracing::debug!(
                channel = self.index,
                "ignoring a queue call event without a conversation id"
            ),
        }
        Dispatch::Go
    }
}

enum Dispatch {
    Go,
    Closing,
    Unwatched,
}

/// Doubling from 250 ms up to `max`.
fn reconnect_delay(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    (Duration::from_millis(250) * 2u32.pow(exponent)).min(max)
}

fn subscription_failure(err: &ApiError) -> String {
    match err.status() {
        Some(403) => format!(
            "cannot subscribe to the notification topics: {err} (the OAuth client needs the \
             permissions of the topics, e.g. routing queue and conversation view permissions [?])"
        ),
        _ => format!("cannot subscribe to the notification topics: {err}"),
    }
}

/// A channel's `connectUri`, checked: `wss://`, or plain `ws://` to loopback only (as for
/// `http://`).
pub fn socket_url(connect_uri: &str) -> Result<Url, String> {
    let url = Url::parse(connect_uri)
        .map_err(|e| format!("the channel's connectUri is not a URL ({e})"))?;
    match url.scheme() {
        "wss" => Ok(url),
        "ws" if is_loopback(&url) => Ok(url),
        "ws" => Err(format!(
            "refusing plain ws:// for the notification socket {}: only loopback hosts may use it",
            redacted(&url)
        )),
        other => Err(format!(
            "the channel's connectUri has scheme {other:?}, not wss"
        )),
    }
}

/// The socket URL without its channel id: whoever has the id can read the channel's events.
fn redacted(url: &Url) -> String {
    format!(
        "{}://{}/channels/…",
        url.scheme(),
        url.host_str().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ws_is_only_for_loopback() {
        assert!(socket_url("wss://streaming.mypurecloud.ie/channels/abc").is_ok());
        assert!(socket_url("ws://127.0.0.1:9000/channels/abc").is_ok());
        let err = socket_url("ws://streaming.mypurecloud.ie/channels/abc").unwrap_err();
        assert!(err.contains("refusing plain ws://"), "{err}");
        assert!(!err.contains("abc"), "the channel id is not shown: {err}");
        assert!(socket_url("https://x/channels/abc").is_err());
    }

    #[test]
    fn reconnection_backs_off_to_the_maximum() {
        let max = Duration::from_secs(30);
        assert_eq!(reconnect_delay(1, max), Duration::from_millis(250));
        assert_eq!(reconnect_delay(3, max), Duration::from_secs(1));
        assert_eq!(reconnect_delay(40, max), max);
    }

    #[test]
    fn more_queues_than_twenty_channels_hold_are_refused() {
        let settings = crate::Settings::resolve(
            &crate::ExplicitSettings {
                client_id: Some("id".into()),
                client_secret: Some("secret".into()),
                api_url: Some("http://127.0.0.1:1".parse().unwrap()),
                ..Default::default()
            },
            &|_| None,
        )
        .unwrap();
        let client = GenesysClient::new(&settings, crate::ClientOptions::default()).unwrap();
        let queues: Vec<String> = (0..20_001).map(|i| format!("q{i}")).collect();
        let err = watch_queues(&client, &queues, WatchOptions::default()).unwrap_err();
        assert_eq!(err.channels, 21);
        assert!(err.to_string().contains("more than the 20"), "{err}");
    }
}
