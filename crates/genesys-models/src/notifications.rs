//! The Notification API: channels, topic subscriptions and the messages a channel's WebSocket
//! sends (see `genesys-api/notifications-and-limits.md`).

use serde::{Deserialize, Serialize};

use crate::CallConversation;

/// `Channel`: the answer of `POST /api/v2/notifications/channels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    #[serde(default)]
    pub id: String,
    /// `wss://streaming.<domain>/channels/<id>`; one socket per channel.
    #[serde(default)]
    pub connect_uri: String,
    /// ISO-8601; a channel not used for 24 h expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// `ChannelTopic`: one subscribed topic. A subscription request sends only `id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelTopic {
    #[serde(default)]
    pub id: String,
    /// `Permitted` or `Rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

impl ChannelTopic {
    /// A subscription request entry.
    pub fn named(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

/// `ChannelTopicEntityListing`: the answer of the subscription endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTopicEntityListing {
    #[serde(default)]
    pub entities: Vec<ChannelTopic>,
}

/// At most this many topics on one channel; more is a 400.
pub const MAX_TOPICS_PER_CHANNEL: usize = 1_000;
/// At most this many channels per OAuth client; creating one more silently removes the least
/// recently used.
pub const MAX_CHANNELS: usize = 20;

/// The topic of the socket's own messages: heartbeats and the answers to a `ping`.
pub const METADATA_TOPIC: &str = "channel.metadata";
/// The server is about to close the socket: reconnect to the same `connectUri`.
pub const SOCKET_CLOSING_TOPIC: &str = "v2.system.socket_closing";

/// The voice-only topic of the calls in one queue (no wildcards: one topic per queue).
pub fn queue_calls_topic(queue_id: &str) -> String {
    format!("v2.routing.queues.{queue_id}.conversations.calls")
}

/// The queue id of a [`queue_calls_topic`] name.
pub fn queue_of_calls_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("v2.routing.queues.")?
        .strip_suffix(".conversations.calls")
        .filter(|id| !id.is_empty() && !id.contains('.'))
}

/// The per-conversation attribute topic: an [`AttributeUpdateEvent`] whenever a participant's
/// attributes change (no wildcards: one topic per conversation).
pub fn conversation_attributes_topic(conversation_id: &str) -> String {
    format!("v2.detail.events.conversation.{conversation_id}.attributes")
}

/// The conversation id of a [`conversation_attributes_topic`] name.
pub fn conversation_of_attributes_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("v2.detail.events.conversation.")?
        .strip_suffix(".attributes")
        .filter(|id| !id.is_empty() && !id.contains('.'))
}

/// `AttributeUpdateEvent`, the body of a [`conversation_attributes_topic`] event: one
/// participant's attributes after a change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeUpdateEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(default)]
    pub conversation_id: String,
    #[serde(default)]
    pub participant_id: String,
    #[serde(default)]
    pub attributes: crate::Attributes,
}

/// Every message a channel's WebSocket sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationEnvelope {
    #[serde(default)]
    pub topic_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Decoded by topic: a [`QueueCallEvent`] for [`queue_calls_topic`], a message for
    /// [`METADATA_TOPIC`].
    #[serde(default)]
    pub event_body: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<NotificationMetadata>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationMetadata {
    #[serde(
        rename = "CorrelationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_id: Option<String>,
}

/// The body of a [`METADATA_TOPIC`] message (`"WebSocket Heartbeat"`, `"pong"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataMessage {
    #[serde(default)]
    pub message: String,
}

/// The heartbeat's message text.
pub const HEARTBEAT_MESSAGE: &str = "WebSocket Heartbeat";

/// `QueueConversationCallEventTopicCallConversation`, the body of a [`queue_calls_topic`] event:
/// the whole conversation as it is now, every participant with its `attributes`. The fields
/// attrsync uses (`id`, and per participant `id`, `purpose`, `state`, `user.id`, `queue.id`,
/// `attributes`, ...) have the names and shapes of the call read's, so the event decodes into
/// the same model and is planned exactly like a GET; the event-only fields (`held`,
/// `disconnectType`, `wrapupRequired`, ...) are ignored.
pub type QueueCallEvent = CallConversation;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParticipantState;

    #[test]
    fn a_queue_call_event_decodes_with_unknown_fields_and_states() {
        let env: NotificationEnvelope = serde_json::from_str(
            r#"{"topicName":"v2.routing.queues.q1.conversations.calls","version":"2",
                "eventBody":{"id":"c1","maxParticipants":3,"participants":[
                  {"id":"p1","purpose":"customer","state":"scheduled","held":false,
                   "queue":{"id":"q1"},"attributes":{"k":"v"},"wrapupRequired":false}]},
                "metadata":{"CorrelationId":"x"}}"#,
        )
        .unwrap();
        assert_eq!(queue_of_calls_topic(&env.topic_name), Some("q1"));
        let call: QueueCallEvent = serde_json::from_value(env.event_body).unwrap();
        assert_eq!(
            call.participants[0].state,
            Some(ParticipantState::Scheduled)
        );
        assert_eq!(call.participants[0].attributes["k"], "v");
        assert_eq!(env.metadata.unwrap().correlation_id.as_deref(), Some("x"));
    }

    #[test]
    fn only_a_queue_calls_topic_names_a_queue() {
        assert_eq!(queue_of_calls_topic(&queue_calls_topic("abc")), Some("abc"));
        assert_eq!(
            queue_of_calls_topic("v2.routing.queues.abc.conversations"),
            None
        );
        assert_eq!(
            queue_of_calls_topic("v2.routing.queues..conversations.calls"),
            None
        );
        assert_eq!(queue_of_calls_topic(METADATA_TOPIC), None);
    }

    #[test]
    fn an_attribute_event_decodes_and_its_topic_names_the_conversation() {
        let topic = conversation_attributes_topic("c1");
        assert_eq!(conversation_of_attributes_topic(&topic), Some("c1"));
        assert_eq!(
            conversation_of_attributes_topic(&queue_calls_topic("c1")),
            None
        );
        let event: AttributeUpdateEvent = serde_json::from_str(
            r#"{"eventTime":"2026-01-01T00:00:00Z","conversationId":"c1","participantId":"p1",
                "attributes":{"k":"v"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(event.participant_id, "p1");
        assert_eq!(event.attributes["k"], "v");
    }
}
