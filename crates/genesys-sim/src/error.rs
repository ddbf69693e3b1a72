//! Genesys `ErrorBody` errors with the contract's codes and messages.
//!
//! Handlers return an [`ApiError`]; its response carries the error as an extension and the edge
//! middleware renders the JSON body, because only the edge knows the correlation id that goes
//! into `contextId`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use genesys_models::ErrorBody;

use crate::rate_limit::retry_after_secs;

/// The general request size cap of the Genesys API.
pub(crate) const MAX_REQUEST_BYTES: usize = 512_000;

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// `Retry-After` in seconds (429 only).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn authentication_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        )
    }

    pub(crate) fn bad_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    }

    pub(crate) fn rate_limited(wait: Duration) -> Self {
        let secs = retry_after_secs(wait);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
            )
        }
    }

    pub(crate) fn bad_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request could not be understood by the server due to malformed syntax.",
        )
    }

    pub(crate) fn invalid_value(value: &str, field: &str, allowed: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid.value",
            format!(
                "Value [{value}] is not valid for field type [{field}]. Allowable values are: {allowed}"
            ),
        )
    }

    pub(crate) fn invalid_date() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid.date",
            "Dates must be specified as ISO-8601 strings. For example: yyyy-MM-ddTHH:mm:ss.SSSZ",
        )
    }

    pub(crate) fn constraint_validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "constraint.validation", message)
    }

    pub(crate) fn conversation_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "conversation.error.conversation.not.found",
            "The conversation does not exist.",
        )
    }

    pub(crate) fn participant_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "conversation.error.participant.not.found",
            "The participant does not exist.",
        )
    }

    /// 403 with the contract's code for a missing permission.
    pub(crate) fn missing_permissions(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            format!(
                "Unable to perform the requested action. You are missing the following permission(s): {permission}"
            ),
        )
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not.found",
            "The requested resource was not found.",
        )
    }

    pub(crate) fn conflict() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "request.conflict",
            "The request conflicts with the current state of the target resource.",
        )
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.entity.too.large",
            format!("The request is over the size limit. Maximum bytes: {MAX_REQUEST_BYTES}"),
        )
    }

    /// An injected fault: the contract's code for `status` where it documents one.
    pub(crate) fn injected(status: u16) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match status.as_u16() {
            400 => Self::bad_request(),
            401 => Self::bad_credentials(),
            404 => Self::not_found(),
            408 => Self::new(
                status,
                "client.timeout",
                "The client did not produce a request within the server timeout limit. This can be caused by a slow network connection and/or large payloads.",
            ),
            409 => Self::conflict(),
            413 => Self::too_large(),
            429 => Self::rate_limited(Duration::from_secs(1)),
            503 => Self::new(
                status,
                "service.unavailable",
                "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
            ),
            504 => Self::new(status, "request.timeout", "The request timed out."),
            // The contract documents no code for 502 (a gateway answers it, not the API) [?].
            502 => Self::new(status, "bad.gateway", "Bad Gateway"),
            _ => Self::new(
                status,
                "internal.server.error",
                "The server encountered an unexpected condition which prevented it from fulfilling the request.",
            ),
        }
    }

    /// The wire body, with `contextId` set to the response's correlation id.
    pub(crate) fn body(&self, correlation_id: &str) -> ErrorBody {
        ErrorBody {
            message: Some(self.message.clone()),
            code: Some(self.code.to_owned()),
            status: Some(self.status.as_u16()),
            message_params: None,
            context_id: Some(correlation_id.to_owned()),
            details: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}
