//! The two middleware layers.
//!
//! `edge` wraps every route: correlation id, `ErrorBody` rendering, the request log and dropped
//! connections. `api_gate` wraps `/api/v2` only: latency, bearer auth, the per-token rate limit,
//! the request size cap and injected faults.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::error::{ApiError, MAX_REQUEST_BYTES};
use crate::state::{Admission, Fault, LoggedRequest, SimState};

pub(crate) const CORRELATION_HEADER: &str = "inin-correlation-id";

/// Bodies are read whole up to this, so that an oversize PATCH still gets its 413 (instead of
/// the connection closing under a client that is still sending).
const READ_CAP_BYTES: usize = 8 * MAX_REQUEST_BYTES;

/// Closes the request's connection without a response; put into each request by the server.
#[derive(Clone)]
pub(crate) struct ConnectionDropper(pub(crate) Arc<Notify>);

/// The TCP peer of a request's connection, set by the server on every request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub(crate) std::net::SocketAddr);

/// Marks a response that must not be sent: the connection is dropped instead.
#[derive(Clone, Copy)]
struct DropConnection;

/// What the API gate learned about a request, for the log.
#[derive(Clone, Default)]
struct ExchangeNote {
    token_id: Option<String>,
    body: Option<serde_json::Value>,
}

pub(crate) async fn edge(
    State(state): State<SimState>,
    mut request: Request,
    next: Next,
) -> Response {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let dropper = request.extensions_mut().remove::<ConnectionDropper>();
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);

    if !path.starts_with("/__sim")
        && let Admission::Held(generation) = state.admit()
    {
        // A test holds requests (`SimState::hold_after`): no answer, no effect, no log entry.
        state.held_until_released(generation).await;
        if let Some(ConnectionDropper(notify)) = dropper {
            notify.notify_one();
            std::future::pending::<()>().await;
        }
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }

    let mut response = next.run(request).await;

    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = serde_json::to_vec(&error.body(&correlation_id)).unwrap_or_default();
        *response.body_mut() = Body::from(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let dropped = response.extensions().get::<DropConnection>().is_some();
    if !path.starts_with("/__sim") {
        let note = response
            .extensions_mut()
            .remove::<ExchangeNote>()
            .unwrap_or_default();
        state.record(LoggedRequest {
            peer,
            seq: 0,
            at_ms: 0,
            method,
            path,
            query,
            status: if dropped {
                0
            } else {
                response.status().as_u16()
            },
            dropped,
            retry_after_secs: response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            token_id: note.token_id,
            body: note.body,
            correlation_id: correlation_id.clone(),
        });
    }
    if dropped && let Some(ConnectionDropper(notify)) = dropper {
        notify.notify_one();
        // The connection task drops this future together with the connection.
        std::future::pending::<()>().await;
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

pub(crate) async fn api_gate(
    State(state): State<SimState>,
    request: Request,
    next: Next,
) -> Response {
    let delay = state.draw_latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut note = ExchangeNote::default();
    let response = match admit(&state, request, &mut note).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    };
    with_note(response, note)
}

/// Everything a request must pass before its handler runs.
async fn admit(
    state: &SimState,
    request: Request,
    note: &mut ExchangeNote,
) -> Result<Request, Response> {
    let token = bearer_token(&request)
        .ok_or_else(|| ApiError::authentication_required().into_response())?;
    let caller = state
        .authenticate(&token)
        .map_err(IntoResponse::into_response)?;
    note.token_id = Some(caller.token_id.clone());
    state
        .check_rate(&token)
        .map_err(IntoResponse::into_response)?;

    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(caller);
    let bytes = to_bytes(body, READ_CAP_BYTES)
        .await
        .map_err(|_| ApiError::too_large().into_response())?;
    if parts.method == Method::PATCH {
        note.body = serde_json::from_slice(&bytes).ok();
    }
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::too_large().into_response());
    }
    match state.draw_fault() {
        Fault::None => Ok(Request::from_parts(parts, Body::from(bytes))),
        Fault::DropConnection => {
            let mut response = Response::default();
            response.extensions_mut().insert(DropConnection);
            Err(response)
        }
        Fault::Status(status) => Err(ApiError::injected(status).into_response()),
    }
}

fn bearer_token(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn with_note(mut response: Response, note: ExchangeNote) -> Response {
    response.extensions_mut().insert(note);
    response
}
