//! Plain wire types of the Genesys Cloud Platform API v2 subset attrsync speaks.
//!
//! These are the only types the simulator shares with the client (see ARCHITECTURE.md). They are
//! tolerant on input: unknown fields are ignored and unknown enum values are kept as
//! `Other(String)`, so a new participant state in Genesys never breaks a run. On output, absent
//! fields are omitted rather than sent as `null`, which the official SDKs require.

// A library prints nothing: it returns typed errors and values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod notifications;
mod routing;

pub use routing::{Queue, QueueEntityListing};

/// Participant attributes: string keys to string values. Genesys accepts strings only and has no
/// delete; writing `""` clears a key.
pub type Attributes = BTreeMap<String, String>;

/// `state` of a `CallMediaParticipant` (and of `Call`, `Conversation`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ParticipantState {
    Alerting,
    Dialing,
    Contacting,
    Offering,
    Connected,
    Disconnected,
    Terminated,
    Converting,
    Uploading,
    Transmitting,
    Parked,
    /// Only in notification events (a callback scheduled for later).
    Scheduled,
    None,
    /// A value this build does not know; kept verbatim.
    Other(String),
}

impl ParticipantState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Alerting => "alerting",
            Self::Dialing => "dialing",
            Self::Contacting => "contacting",
            Self::Offering => "offering",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Terminated => "terminated",
            Self::Converting => "converting",
            Self::Uploading => "uploading",
            Self::Transmitting => "transmitting",
            Self::Parked => "parked",
            Self::Scheduled => "scheduled",
            Self::None => "none",
            Self::Other(s) => s,
        }
    }

    /// Whether the participant has left the call for good: attributes written now would not
    /// matter to anyone on the call (and may be rejected or lost).
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Disconnected | Self::Terminated)
    }
}

impl From<String> for ParticipantState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "alerting" => Self::Alerting,
            "dialing" => Self::Dialing,
            "contacting" => Self::Contacting,
            "offering" => Self::Offering,
            "connected" => Self::Connected,
            "disconnected" => Self::Disconnected,
            "terminated" => Self::Terminated,
            "converting" => Self::Converting,
            "uploading" => Self::Uploading,
            "transmitting" => Self::Transmitting,
            "parked" => Self::Parked,
            "scheduled" => Self::Scheduled,
            "none" => Self::None,
            _ => Self::Other(s),
        }
    }
}

impl From<ParticipantState> for String {
    fn from(s: ParticipantState) -> Self {
        match s {
            ParticipantState::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for ParticipantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `DomainEntityRef`: a reference to a user, queue, external contact, ...
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEntityRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

/// `CallMediaParticipant`, as returned by `GET /api/v2/conversations/calls/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallMediaParticipant {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The participant's address: a customer's phone number (written `tel:+15551234567` as far
    /// as is known [?]; the contract says only "the participant address"), an agent's or a
    /// flow's SIP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// "The call ANI": the calling number of this participant's leg [V field, ? its form].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    /// "The call DNIS": the number dialled on this participant's leg [V field, ? its form].
    /// Whether queue call events carry `ani`/`dnis` is [?] (the event's documented fields
    /// include `address` and `direction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Free string in the contract (agent, user, customer, external, acd, ivr, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ParticipantState>,
    /// `inbound` or `outbound`: the participant's direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<DomainEntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<DomainEntityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact: Option<DomainEntityRef>,
    #[serde(default)]
    pub attributes: Attributes,
}

impl CallMediaParticipant {
    /// The user id of an agent/user participant (the call model has no flat `userId`).
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().and_then(|u| u.id.as_deref())
    }
}

/// `CallConversation`, as returned by `GET /api/v2/conversations/calls/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallConversation {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub participants: Vec<CallMediaParticipant>,
    /// `none`, `active` or `paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

/// `Call`: one call leg of a media-agnostic `Participant`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ParticipantState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_time: Option<String>,
}

/// Media-agnostic `Participant`, as returned by `GET /api/v2/conversations/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
}

/// Media-agnostic `Conversation`, as returned by `GET /api/v2/conversations/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Absent while the conversation is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

/// `ParticipantAttributes`: the PATCH body and the call variant's 202 response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantAttributes {
    #[serde(default)]
    pub attributes: Attributes,
}

/// `ErrorBody`: every Genesys API error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_params: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
}

/// Successful response of `POST https://login.<domain>/oauth/token`.
///
/// `Debug` is written by hand so that the token never reaches a log.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default = "default_token_type")]
    pub token_type: String,
    pub expires_in: u64,
}

fn default_token_type() -> String {
    "bearer".to_owned()
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Error body of the token endpoint (`{"error":"invalid_client",...}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    #[serde(default)]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

// ---- analytics: POST /api/v2/analytics/conversations/details/query ----

/// `ConversationQuery` (the subset attrsync sends).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQuery {
    /// ISO-8601 interval `start/end`; required by Genesys.
    pub interval: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<QueryFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<QueryFilter>,
    /// `asc`, `desc` or `unordered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// e.g. `conversationStart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<PagingSpec>,
}

/// `ConversationDetailQueryFilter` / `SegmentDetailQueryFilter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFilter {
    /// `and` or `or`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<QueryPredicate>,
}

/// `ConversationDetailQueryPredicate` / `SegmentDetailQueryPredicate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPredicate {
    /// `dimension`, `property` or `metric`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// `matches` (the default), `exists` or `notExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `PagingSpec`; page numbers start at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PagingSpec {
    pub page_size: u32,
    pub page_number: u32,
}

/// `AnalyticsConversationQueryResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversationQueryResponse {
    /// Absent (not empty) when there are no results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversations: Vec<AnalyticsConversation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<u64>,
}

/// `AnalyticsConversationMultiGetResponse`: the answer of
/// `GET /api/v2/analytics/conversations/details?id=ID1,ID2,...`, the asked conversations that
/// analytics knows (whether an unknown id is left out or refused is not documented [?]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversationMultiGetResponse {
    #[serde(default)]
    pub conversations: Vec<AnalyticsConversation>,
}

/// `AnalyticsConversationWithoutAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsConversation {
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_end: Option<String>,
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_direction: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<AnalyticsParticipant>,
}

/// `AnalyticsParticipantWithoutAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsParticipant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<AnalyticsSession>,
}

/// `AnalyticsSession` (the subset attrsync reads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSession {
    /// e.g. `voice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `inbound` or `outbound`: the direction of the communication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// "Automatic Number Identification (caller's number)" [V field; its form, `tel:+E164`, ?].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    /// "Dialed number identification service (number dialed by the calling party)" [V field;
    /// its form, `tel:+E164`, ?].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnis: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<AnalyticsSegment>,
}

/// `AnalyticsConversationSegment` (the subset attrsync reads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSegment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_end: Option<String>,
    /// e.g. `interact`, `alert`, `hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
}

/// One limit of the org (`LimitEntity` here; the official SDK's model is `Limit`), as listed by
/// `GET /api/v2/organizations/limits/namespaces/{namespaceName}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitEntity {
    /// e.g. `client.credentials.token.rate.per.minute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

/// `LimitsEntityListing`: the limits of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsEntityListing {
    #[serde(default)]
    pub entities: Vec<LimitEntity>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_participant_state_is_kept_not_rejected() {
        let p: CallMediaParticipant =
            serde_json::from_str(r#"{"id":"p","state":"hovering","futureField":1}"#).unwrap();
        assert_eq!(p.state, Some(ParticipantState::Other("hovering".into())));
        assert_eq!(serde_json::to_value(&p).unwrap()["state"], "hovering");
    }

    #[test]
    fn absent_fields_are_omitted_not_null() {
        let json = serde_json::to_string(&CallMediaParticipant {
            id: "p".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn a_limits_listing_ignores_unknown_fields() {
        let listing: LimitsEntityListing = serde_json::from_str(
            r#"{"entities":[{"key":"k","namespace":"n","value":600,"extra":true}],"total":1}"#,
        )
        .unwrap();
        assert_eq!(listing.entities[0].value, Some(600));
        assert_eq!(listing.entities[0].key.as_deref(), Some("k"));
    }

    #[test]
    fn token_response_debug_hides_the_token() {
        let t = TokenResponse {
            access_token: "s3cr3t-token".into(),
            token_type: "bearer".into(),
            expires_in: 60,
        };
        assert!(!format!("{t:?}").contains("s3cr3t-token"));
    }
}
