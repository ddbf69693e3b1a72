//! Verification by event in a snapshot run: before the first PATCH, the run's calls'
//! attribute topics (`v2.detail.events.conversation.{id}.attributes`) are subscribed on a few
//! notification channels (1,000 topics each, one subscription request per channel, through
//! the run's client: rate-limited and in the run's request log) and their sockets connected.
//! A change is then verified by the event that shows its values; a read only when none comes.
//!
//! At most [`CHANNELS_PER_RUN`] channels are used: the 20 an OAuth client may have are shared with
//! its other consumers (a `tag --follow`, other runs), and creating a 21st silently removes the
//! least recently used. Calls beyond what they hold are verified by reading. Where the client
//! may not create a channel or subscribe (a 403, or any failure before every socket is
//! connected), the run says so once and verifies every change by reading. A socket lost during
//! the run means the changes waiting for events are read (events sent meanwhile are lost).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use genesys_core::GenesysClient;
use genesys_core::models::notifications::{MAX_TOPICS_PER_CHANNEL, conversation_attributes_topic};
use genesys_core::notifications::{Notice, TopicWatch, WatchOptions, watch_topics};
use tokio::task::JoinHandle;

use super::call_events::CallEvents;
use crate::observer::{Note, RunObserver};

/// Channels a snapshot run uses at most (of the 20 per OAuth client).
pub const CHANNELS_PER_RUN: usize = 3;
/// How long connecting every channel may take before the run verifies by reading instead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A run's event watch, started by the first call that sends a PATCH (so that a run with
/// nothing to change creates no channel) for every call of the run at once.
pub struct LazyEventWatch {
    client: GenesysClient,
    conversation_ids: Vec<String>,
    observer: Arc<dyn RunObserver>,
    watch: tokio::sync::OnceCell<Option<EventWatch>>,
}

impl LazyEventWatch {
    pub(crate) fn new(
        client: GenesysClient,
        conversation_ids: Vec<String>,
        observer: Arc<dyn RunObserver>,
    ) -> Self {
        Self {
            client,
            conversation_ids,
            observer,
            watch: tokio::sync::OnceCell::new(),
        }
    }

    /// Subscribes and connects, once; every other caller waits for that first start.
    pub(crate) async fn start_once(&self) {
        self.watch
            .get_or_init(|| {
                EventWatch::start(
                    &self.client,
                    self.conversation_ids.iter().map(String::as_str),
                    self.observer.as_ref(),
                )
            })
            .await;
    }

    /// The events, once the watch has started and connected.
    pub(crate) fn events(&self) -> Option<&Arc<CallEvents>> {
        self.watch.get()?.as_ref().map(|watch| &watch.events)
    }

    /// Closes the sockets (the run's work is over).
    pub(crate) fn close(&self) {
        if let Some(Some(watch)) = self.watch.get() {
            watch.receiving.abort();
        }
    }
}

/// The attribute events of a run's calls, received for as long as it lives.
pub(crate) struct EventWatch {
    pub(crate) events: Arc<CallEvents>,
    receiving: JoinHandle<()>,
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        // Dropping the task drops the watch, which closes the sockets.
        self.receiving.abort();
    }
}

impl EventWatch {
    /// Subscribes the calls' attribute topics and connects the sockets. `None` (said once
    /// through the observer) when that fails: every change is then verified by reading.
    pub(crate) async fn start<'a>(
        client: &GenesysClient,
        conversation_ids: impl Iterator<Item = &'a str>,
        observer: &dyn RunObserver,
    ) -> Option<Self> {
        let mut subscribed = HashSet::new();
        let mut topics = Vec::new();
        for cid in conversation_ids {
            if topics.len() == CHANNELS_PER_RUN * MAX_TOPICS_PER_CHANNEL {
                break;
            }
            if subscribed.insert(cid.to_ascii_lowercase()) {
                topics.push(conversation_attributes_topic(cid));
            }
        }
        if topics.is_empty() {
            return None;
        }
        let channels = topics.len().div_ceil(MAX_TOPICS_PER_CHANNEL);
        let mut watch = watch_topics(client, &topics, WatchOptions::default());
        if let Err(why) = connected(&mut watch, channels).await {
            observer.note(Note::Warning(format!(
                "changes are verified by reading each call back: {why}"
            )));
            return None;
        }
        let events = Arc::new(CallEvents::of_attributes(subscribed));
        events.set_connected(true);
        let receiving = tokio::spawn(receive(watch, Arc::clone(&events)));
        Some(Self { events, receiving })
    }
}

/// Waits for every channel's first connection; the first failure is the reason not to wait.
async fn connected(watch: &mut TopicWatch, channels: usize) -> Result<(), String> {
    let mut waiting: HashSet<usize> = (0..channels).collect();
    let wait = async {
        while !waiting.is_empty() {
            match watch.notices.recv().await {
                Some(Notice::Connected { channel, .. }) => {
                    waiting.remove(&channel);
                }
                Some(Notice::Trouble { message, .. } | Notice::Refused { message, .. }) => {
                    return Err(message);
                }
                Some(Notice::Call { .. } | Notice::Attributes { .. }) => {}
                None => return Err("the notification watch ended".to_owned()),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, wait).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the notification sockets did not connect within {}",
            humantime::format_duration(CONNECT_TIMEOUT)
        )),
    }
}

/// Hands the events to the waiting workers. Any (re)connection after the first may have lost
/// events, and a channel in trouble loses them: the workers waiting then read instead.
async fn receive(mut watch: TopicWatch, events: Arc<CallEvents>) {
    let mut down = HashSet::new();
    while let Some(notice) = watch.notices.recv().await {
        match notice {
            Notice::Attributes { mut event, .. } => {
                event.conversation_id.make_ascii_lowercase();
                events.publish_attributes(event);
            }
            Notice::Connected { channel, gap, .. } => {
                if gap {
                    events.set_connected(false);
                }
                down.remove(&channel);
                if down.is_empty() {
                    events.set_connected(true);
                }
            }
            Notice::Trouble { channel, message } => {
                tracing::debug!(channel, "{message}; changes are read back meanwhile");
                down.insert(channel);
                events.set_connected(false);
            }
            Notice::Refused {
                channel, message, ..
            } => {
                tracing::debug!(channel, "{message}; changes are read back from now on");
                events.set_connected(false);
                return;
            }
            Notice::Call { .. } => {}
        }
    }
    events.set_connected(false);
}
