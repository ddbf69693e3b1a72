//! `/__sim/`: the test-only admin surface (not part of Genesys; no auth, faults or rate limit).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::arrivals::{ArrivalNumbers, ArrivalRate};
use crate::bus::NotificationStatus;
use crate::config::FaultConfig;
use crate::error::ApiError;
use crate::org::SimQueue;
use crate::state::{ArrivalStatus, LoggedRequest, SimCall, SimState};

pub(crate) fn routes() -> Router<SimState> {
    Router::new()
        .route("/calls", get(calls))
        .route("/calls/{conversation_id}/end", post(end_call))
        .route("/calls/{conversation_id}/answer", post(answer_call))
        .route(
            "/calls/{conversation_id}/participants/{participant_id}/attributes",
            post(flow_sets_attributes),
        )
        .route("/requests", get(requests))
        .route("/queues", get(queues))
        .route("/faults", put(set_faults).get(faults))
        .route("/tokens/expire", post(expire_tokens))
        .route("/clock/advance", post(advance_clock))
        .route("/reset", post(reset))
        .route("/notifications", get(notifications))
        .route("/sockets/closing", post(announce_socket_closing))
        .route("/sockets/drop", post(drop_sockets))
        .route("/sockets/stall", post(stall_sockets))
        .route("/channels/expire", post(expire_channels))
        .route("/arrivals", get(arrivals).put(set_arrivals))
        .route("/arrivals/call", post(arrive_call))
        .route("/arrivals/numbers", post(queue_arrival_numbers))
}

async fn notifications(State(state): State<SimState>) -> Json<NotificationStatus> {
    Json(state.notification_status())
}

/// `{"sockets": N}`: how many were told `v2.system.socket_closing` and closed.
async fn announce_socket_closing(State(state): State<SimState>) -> Json<Value> {
    Json(json!({"sockets": state.announce_socket_closing()}))
}

/// `{"sockets": N}`: how many connections were dropped without a close frame.
async fn drop_sockets(State(state): State<SimState>) -> Json<Value> {
    Json(json!({"sockets": state.drop_sockets()}))
}

/// `{"sockets": N}`: how many sockets went silent with their connections open.
async fn stall_sockets(State(state): State<SimState>) -> Json<Value> {
    Json(json!({"sockets": state.stall_sockets()}))
}

/// `{"channels": N}`: how many channels expired.
async fn expire_channels(State(state): State<SimState>) -> Json<Value> {
    Json(json!({"channels": state.expire_channels()}))
}

async fn arrivals(State(state): State<SimState>) -> Json<ArrivalStatus> {
    Json(state.arrival_status())
}

#[derive(Deserialize)]
struct SetArrivals {
    rate: ArrivalRate,
}

/// `{"rate": "2/s"}` (or `"0"` to stop).
async fn set_arrivals(State(state): State<SimState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let SetArrivals { rate } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::constraint_validation(format!("Expected {{\"rate\": \"2/s\"}}: {e}"))
    })?;
    state.set_arrival_rate(rate);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct ArriveCall {
    #[serde(default)]
    queue_id: Option<String>,
    #[serde(flatten)]
    numbers: ArrivalNumbers,
}

/// One call arrives now: `{"queue_id": "..."}` or `{}` for the next queue in turn, optionally
/// with `"customer_number"` and `"dialed_number"` (`"+15551230001"`; see [`ArrivalNumbers`]);
/// answers `{"id": "<conversation id>"}`, or 404 for an unknown queue.
async fn arrive_call(State(state): State<SimState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let ArriveCall { queue_id, numbers } = if body.is_empty() {
        ArriveCall::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::constraint_validation(format!(
                "Expected {{\"queue_id\": ID, \"customer_number\": N, \"dialed_number\": N}}, each optional: {e}"
            ))
        })?
    };
    state
        .arrive_call_with(queue_id.as_deref(), &numbers)
        .map(|id| Json(json!({ "id": id })))
        .ok_or_else(ApiError::not_found)
}

#[derive(Deserialize)]
struct ArrivalCustomerNumbers {
    customer_numbers: Vec<String>,
}

/// `{"customer_numbers": ["+15551230001", ...]}`: the next arrivals take these customer
/// numbers, in order, after those already queued (`GET /__sim/arrivals` lists what is left).
async fn queue_arrival_numbers(
    State(state): State<SimState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let ArrivalCustomerNumbers { customer_numbers } =
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::constraint_validation(format!(
                "Expected {{\"customer_numbers\": [\"+15551230001\", ...]}}: {e}"
            ))
        })?;
    state.queue_arrival_numbers(customer_numbers);
    Ok(StatusCode::NO_CONTENT)
}

async fn calls(State(state): State<SimState>) -> Json<Vec<SimCall>> {
    Json(state.calls())
}

async fn end_call(
    State(state): State<SimState>,
    Path(conversation_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.end_call(&conversation_id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conversation_not_found())
    }
}

/// 204, or 404 when there is no such live, unanswered call.
async fn answer_call(
    State(state): State<SimState>,
    Path(conversation_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.answer_call(&conversation_id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conversation_not_found())
    }
}

/// A flow sets attributes, outside the API: a JSON object of keys and values; 204, or 404 when
/// there is no such call or participant.
async fn flow_sets_attributes(
    State(state): State<SimState>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let attributes: genesys_models::Attributes = serde_json::from_slice(&body).map_err(|e| {
        ApiError::constraint_validation(format!("Expected {{\"key\": \"value\"}}: {e}"))
    })?;
    if state.flow_sets_attributes(&conversation_id, &participant_id, attributes) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

async fn requests(State(state): State<SimState>) -> Json<Vec<LoggedRequest>> {
    Json(state.request_log())
}

async fn queues(State(state): State<SimState>) -> Json<Vec<SimQueue>> {
    Json(state.queues())
}

async fn faults(State(state): State<SimState>) -> Json<FaultConfig> {
    Json(state.faults())
}

async fn set_faults(State(state): State<SimState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let faults: FaultConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::constraint_validation(format!("Invalid fault configuration: {e}"))
    })?;
    state.set_faults(faults);
    Ok(StatusCode::NO_CONTENT)
}

async fn expire_tokens(State(state): State<SimState>) -> StatusCode {
    state.expire_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct AdvanceClock {
    ms: u64,
}

async fn advance_clock(State(state): State<SimState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let AdvanceClock { ms } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::constraint_validation(format!("Expected {{\"ms\": N}}: {e}")))?;
    state.advance_clock(Duration::from_millis(ms));
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(state): State<SimState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
