//! `/api/v2/conversations/...`: the two GETs and the two attribute PATCHes; and the org's
//! limits.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genesys_models::{
    Attributes, CallConversation, Conversation, LimitsEntityListing, ParticipantAttributes,
};

use crate::error::ApiError;
use crate::state::SimState;

/// `GET /api/v2/conversations/calls/{conversationId}`.
pub(crate) async fn get_call(
    State(state): State<SimState>,
    Path(conversation_id): Path<String>,
) -> Result<Json<CallConversation>, ApiError> {
    require_uuid(&conversation_id)?;
    state
        .read_call(&conversation_id)
        .map(Json)
        .ok_or_else(ApiError::conversation_not_found)
}

/// `GET /api/v2/conversations/{conversationId}`. The contract documents only `not.found` as this
/// operation's 404 code (unlike the call variant).
pub(crate) async fn get_conversation(
    State(state): State<SimState>,
    Path(conversation_id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    require_uuid(&conversation_id)?;
    state
        .read_conversation(&conversation_id)
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/v2/organizations/limits/namespaces/{namespaceName}`: the per-token budget under
/// `client.credentials.token.rate.per.minute` in the configured namespace (see
/// `SimConfig::limits_namespace` and `SimConfig::limits_forbidden`).
pub(crate) async fn get_org_limits(
    State(state): State<SimState>,
    Path(namespace): Path<String>,
) -> Result<Json<LimitsEntityListing>, ApiError> {
    state.org_limits(&namespace).map(Json)
}

/// `PATCH /api/v2/conversations/calls/{cid}/participants/{pid}/attributes`: 202 with the
/// participant's full attributes after the merge.
pub(crate) async fn patch_call_participant_attributes(
    State(state): State<SimState>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let attributes = patch(&state, &conversation_id, &participant_id, &body)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ParticipantAttributes { attributes }),
    )
        .into_response())
}

/// `PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes`: 202 with no body.
pub(crate) async fn patch_participant_attributes(
    State(state): State<SimState>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    patch(&state, &conversation_id, &participant_id, &body)?;
    Ok(StatusCode::ACCEPTED)
}

fn patch(
    state: &SimState,
    conversation_id: &str,
    participant_id: &str,
    body: &[u8],
) -> Result<Attributes, ApiError> {
    require_uuid(conversation_id)?;
    require_uuid(participant_id)?;
    let attributes = parse_attributes(body)?;
    state.patch_attributes(conversation_id, participant_id, attributes)
}

/// Parses a `ParticipantAttributes` body. Values must be JSON strings (the schema's
/// `additionalProperties: {type: string}`); a missing `attributes` is an empty merge.
///
/// `""` is stored as `""`: Genesys has no delete, and writing `""` is how a key is cleared, but
/// the key stays on the participant with an empty value, so reads show `"key": ""`.
fn parse_attributes(body: &[u8]) -> Result<Attributes, ApiError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request())?;
    let serde_json::Value::Object(mut document) = document else {
        return Err(ApiError::bad_request());
    };
    let entries = match document.remove("attributes") {
        None => return Ok(Attributes::new()),
        Some(serde_json::Value::Object(entries)) => entries,
        Some(other) => {
            return Err(ApiError::invalid_value(
                &other.to_string(),
                "attributes",
                "an object of strings",
            ));
        }
    };
    entries
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key, text)),
            other => Err(ApiError::invalid_value(
                &other.to_string(),
                "String",
                "string",
            )),
        })
        .collect()
}

/// A malformed id cannot name a conversation or participant. Genesys's answer to one is not
/// documented [?]; the simulator answers 400 `bad.request`, the contract's code for malformed
/// requests.
fn require_uuid(id: &str) -> Result<(), ApiError> {
    let well_formed = id.len() == 36 && uuid::Uuid::try_parse(id).is_ok();
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::bad_request())
    }
}

/// Any other path under `/api/v2`.
pub(crate) async fn unknown_route() -> ApiError {
    ApiError::not_found()
}
