//! `/api/v2/notifications/channels...`: creating and checking channels and managing their topic
//! subscriptions. The socket itself is `socket.rs`; channels and events live in `bus.rs`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use genesys_models::notifications::{Channel, ChannelTopic, ChannelTopicEntityListing};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::{Caller, SimState};

/// `?ignoreErrors=true`, in any case: the official Python SDK sends a Python bool as `True`.
#[derive(Deserialize)]
pub(crate) struct SubscribeQuery {
    #[serde(rename = "ignoreErrors", default)]
    ignore_errors: Option<String>,
}

impl SubscribeQuery {
    fn ignore_errors(&self) -> bool {
        self.ignore_errors
            .as_deref()
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }
}

/// `POST /api/v2/notifications/channels`: a channel of the caller's OAuth client (the 21st
/// silently removes the client's least recently used one).
pub(crate) async fn create_channel(
    State(state): State<SimState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Channel>, ApiError> {
    state.create_channel(&caller.client_id).map(Json)
}

/// `HEAD /api/v2/notifications/channels/{channelId}`: 200 while the channel exists, else 404.
pub(crate) async fn head_channel(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.channel_exists(&channel_id) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::not_found())
    }
}

/// `GET .../subscriptions`.
pub(crate) async fn list_subscriptions(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
) -> Result<Json<ChannelTopicEntityListing>, ApiError> {
    state.channel_topics(&channel_id).map(Json)
}

/// `POST .../subscriptions`: adds the topics.
pub(crate) async fn add_subscriptions(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
    Query(query): Query<SubscribeQuery>,
    body: Bytes,
) -> Result<Json<ChannelTopicEntityListing>, ApiError> {
    let topics = parse_topics(&body)?;
    state
        .subscribe(&channel_id, topics, false, query.ignore_errors())
        .map(Json)
}

/// `PUT .../subscriptions`: replaces the topics.
pub(crate) async fn replace_subscriptions(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
    Query(query): Query<SubscribeQuery>,
    body: Bytes,
) -> Result<Json<ChannelTopicEntityListing>, ApiError> {
    let topics = parse_topics(&body)?;
    state
        .subscribe(&channel_id, topics, true, query.ignore_errors())
        .map(Json)
}

/// `DELETE .../subscriptions`: removes every topic.
pub(crate) async fn delete_subscriptions(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.unsubscribe_all(&channel_id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body: `[{"id": "<topic>"}, ...]`.
fn parse_topics(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let topics: Vec<ChannelTopic> =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request())?;
    Ok(topics.into_iter().map(|topic| topic.id).collect())
}
