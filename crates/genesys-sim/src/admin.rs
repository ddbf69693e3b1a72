//! `/__sim/`: the test-only admin surface (not part of Genesys; no auth, faults or rate limit).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use serde::Deserialize;

use crate::config::FaultConfig;
use crate::error::ApiError;
use crate::org::SimQueue;
use crate::state::{LoggedRequest, SimCall, SimState};

pub(crate) fn routes() -> Router<SimState> {
    Router::new()
        .route("/calls", get(calls))
        .route("/calls/{conversation_id}/end", post(end_call))
        .route("/requests", get(requests))
        .route("/queues", get(queues))
        .route("/faults", put(set_faults).get(faults))
        .route("/tokens/expire", post(expire_tokens))
        .route("/clock/advance", post(advance_clock))
        .route("/reset", post(reset))
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
