//! Errors of API calls, and how the caller should react to each (its [`ErrorClass`]).

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::auth::AuthError;
use crate::models::ErrorBody;

/// Response header carrying the id Genesys support needs to trace a request.
pub const CORRELATION_ID_HEADER: &str = "ININ-Correlation-Id";

/// How to react to an error. Genesys documents only 429, 502, 503 and 504 as retryable; 500 is
/// not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429, 502, 503, 504, timeouts, connection failures: wait (honouring `Retry-After`) and retry.
    Retryable,
    /// 401: the token was revoked or expired; refresh it once and retry.
    RefreshAndRetry,
    /// 409: the participant changed under us; re-read, re-diff, retry (the caller's job).
    RefetchAndRetry,
    /// Anything else, 500 included: give up on this request.
    Terminal,
    /// Terminal for now: the server asked every token to wait longer than the client's
    /// `max_wait` ([`ApiError::BudgetExhausted`]). Stop, record the work as resumable, and resume
    /// after the wait; retrying sooner only gets more 429s.
    ResumeLater,
}

impl ErrorClass {
    /// The class of an HTTP error status (any status that is not a success).
    pub fn of_status(status: u16) -> ErrorClass {
        match status {
            429 | 502 | 503 | 504 => ErrorClass::Retryable,
            401 => ErrorClass::RefreshAndRetry,
            409 => ErrorClass::RefetchAndRetry,
            _ => ErrorClass::Terminal,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::RefreshAndRetry => "refresh_and_retry",
            ErrorClass::RefetchAndRetry => "refetch_and_retry",
            ErrorClass::Terminal => "terminal",
            ErrorClass::ResumeLater => "resume_later",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-success HTTP response from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFailure {
    /// Route template, e.g. `GET /api/v2/conversations/calls/{conversationId}`.
    pub route: &'static str,
    pub status: u16,
    /// Genesys error `code`, e.g. `conversation.error.conversation.not.found`.
    pub code: Option<String>,
    /// Genesys error `message`, or a one-line excerpt of a non-JSON body.
    pub message: Option<String>,
    pub correlation_id: Option<String>,
    /// `Retry-After` as sent (uncapped).
    pub retry_after: Option<Duration>,
    pub attempts: u32,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, " {code}: {message}")?,
            (Some(code), None) => write!(f, " {code}")?,
            (None, Some(message)) => write!(f, ": {message}")?,
            (None, None) => {
                if let Some(reason) = reqwest::StatusCode::from_u16(self.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    write!(f, " {reason}")?;
                }
            }
        }
        write_context(f, self.correlation_id.as_deref(), self.attempts)
    }
}

/// `" (correlation id X; N attempts)"`, omitting what is unknown or unremarkable.
fn write_context(
    f: &mut fmt::Formatter<'_>,
    correlation_id: Option<&str>,
    attempts: u32,
) -> fmt::Result {
    let mut parts = Vec::new();
    if let Some(id) = correlation_id {
        parts.push(format!("correlation id {id}"));
    }
    if attempts > 1 {
        parts.push(format!("{attempts} attempts"));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        write!(f, " ({})", parts.join("; "))
    }
}

struct Context<'a>(Option<&'a str>, u32);

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_context(f, self.0, self.1)
    }
}

/// Why an API call failed. Never carries a secret or token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{0}")]
    Http(Box<HttpFailure>),
    #[error("request timed out: {route}{}", Context(None, *.attempts))]
    Timeout { route: &'static str, attempts: u32 },
    /// Could not connect, or the connection dropped before a complete response.
    #[error("connection failed: {route}: {message}{}", Context(None, *.attempts))]
    Connection {
        route: &'static str,
        message: String,
        attempts: u32,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("unreadable response to {route} (HTTP {status}): {message}{}", Context(.correlation_id.as_deref(), *.attempts))]
    Decode {
        route: &'static str,
        status: u16,
        message: String,
        correlation_id: Option<String>,
        attempts: u32,
    },
    /// No token could be obtained.
    #[error("{error}")]
    Auth { error: AuthError, attempts: u32 },
    /// The request was not sent: every token is set aside, because the API asked to wait longer
    /// than `max_wait` (a daily limit, or a budget used up elsewhere). Detect it with
    /// [`ApiError::is_budget_exhausted`]; its class is [`ErrorClass::ResumeLater`].
    #[error(
        "stopped early: the API asked to wait {} s, more than the maximum wait (--max-wait) of {} s; resume in {} or later",
        .retry_after.as_secs(),
        .max_wait.as_secs(),
        humantime::format_duration(Duration::from_secs(.resume_in.as_secs().max(1)))
    )]
    BudgetExhausted {
        /// The `Retry-After` the server sent (of the token that is usable again first).
        retry_after: Duration,
        /// Time left until that token is usable again.
        resume_in: Duration,
        /// The client's `max_wait`.
        max_wait: Duration,
        attempts: u32,
    },
    /// The request was not sent: the client was told to stop sending
    /// ([`GenesysClient::stop_sending`](crate::GenesysClient::stop_sending)). Detect it with
    /// [`ApiError::is_stopped`].
    #[error("not sent: the run was asked to stop")]
    Stopped { attempts: u32 },
    /// The request was not sent: an argument cannot be put in a URL path.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Http(failure) => ErrorClass::of_status(failure.status),
            ApiError::Timeout { .. } | ApiError::Connection { .. } => ErrorClass::Retryable,
            ApiError::Auth { error, .. } => error.class(),
            ApiError::Decode { .. }
            | ApiError::InvalidArgument { .. }
            | ApiError::Stopped { .. } => ErrorClass::Terminal,
            ApiError::BudgetExhausted { .. } => ErrorClass::ResumeLater,
        }
    }

    /// Every token is set aside for longer than `max_wait`: stop early, resumable (exit 4 in
    /// attrsync).
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self, ApiError::BudgetExhausted { .. })
    }

    /// Not sent because the client was told to stop sending: nothing reached Genesys.
    pub fn is_stopped(&self) -> bool {
        matches!(self, ApiError::Stopped { .. })
    }

    /// Stop early, resumable (exit 4 in attrsync): every token is set aside
    /// ([`ApiError::BudgetExhausted`]), or a fixed access token was refused
    /// ([`AuthError::TokenRefused`]); nothing was changed by the refused request.
    pub fn is_resume_later(&self) -> bool {
        self.class() == ErrorClass::ResumeLater
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http(failure) => Some(failure.status),
            ApiError::Decode { status, .. } => Some(*status),
            ApiError::Auth { error, .. } => error.status(),
            _ => None,
        }
    }

    /// The Genesys error code (or OAuth `error`).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Http(failure) => failure.code.as_deref(),
            ApiError::Auth { error, .. } => error.code(),
            _ => None,
        }
    }

    /// The server's message or, for transport errors, what went wrong.
    pub fn message(&self) -> Option<String> {
        match self {
            ApiError::Http(failure) => failure.message.clone(),
            other => Some(other.to_string()),
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            ApiError::Http(failure) => failure.correlation_id.as_deref(),
            ApiError::Decode { correlation_id, .. } => correlation_id.as_deref(),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http(failure) => failure.retry_after,
            ApiError::Auth { error, .. } => error.retry_after(),
            ApiError::BudgetExhausted { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// HTTP attempts made before giving up (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            ApiError::Http(failure) => failure.attempts,
            ApiError::Timeout { attempts, .. }
            | ApiError::Connection { attempts, .. }
            | ApiError::Decode { attempts, .. }
            | ApiError::Auth { attempts, .. }
            | ApiError::BudgetExhausted { attempts, .. }
            | ApiError::Stopped { attempts } => *attempts,
            ApiError::InvalidArgument { .. } => 0,
        }
    }

    pub(crate) fn set_attempts(&mut self, count: u32) {
        match self {
            ApiError::Http(failure) => failure.attempts = count,
            ApiError::Timeout { attempts, .. }
            | ApiError::Connection { attempts, .. }
            | ApiError::Decode { attempts, .. }
            | ApiError::Auth { attempts, .. }
            | ApiError::BudgetExhausted { attempts, .. }
            | ApiError::Stopped { attempts } => *attempts = count,
            ApiError::InvalidArgument { .. } => {}
        }
    }

    /// The error for a non-success response.
    pub(crate) fn from_response(
        route: &'static str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ApiError {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (code, message) = match parsed {
            Some(body) if body.code.is_some() || body.message.is_some() => {
                (body.code, body.message)
            }
            _ => (None, body_excerpt(body)),
        };
        ApiError::Http(Box::new(HttpFailure {
            route,
            status,
            code,
            message,
            correlation_id: correlation_id(headers),
            retry_after: retry_after(headers),
            attempts: 1,
        }))
    }

    /// The error for a request that got no response; `message` is its wording
    /// ([`transport_failure`]).
    pub(crate) fn from_transport(
        route: &'static str,
        error: &reqwest::Error,
        message: String,
    ) -> ApiError {
        if error.is_timeout() {
            ApiError::Timeout { route, attempts: 1 }
        } else {
            ApiError::Connection {
                route,
                message,
                attempts: 1,
            }
        }
    }
}

/// An error and its causes on one line, each once: `error: cause: root cause`.
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// How a proxy answered a CONNECT that reqwest's tunnel gave up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TunnelAnswer {
    /// 407.
    AuthRequired,
    /// Anything but 200 and 407; reqwest does not keep which.
    Refused,
}

/// reqwest's tunnel (hyper-util's) reports a refused CONNECT as a cause worded "tunnel error:
/// proxy authorization required" (a 407) or "tunnel error: unsuccessful" (any other answer).
/// Its error type is private, so its words are matched; a test against a refusing proxy pins
/// them.
fn tunnel_answer(error: &reqwest::Error) -> Option<TunnelAnswer> {
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        match current.to_string().as_str() {
            "tunnel error: proxy authorization required" => {
                return Some(TunnelAnswer::AuthRequired);
            }
            "tunnel error: unsuccessful" => return Some(TunnelAnswer::Refused),
            _ => {}
        }
        cause = current.source();
    }
    None
}

/// How long the second CONNECT that learns a refusal's status may take.
const REFUSAL_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A one-line description of a transport error ([`transport_message`]), except that a proxy's
/// refusal of the tunnel is worded by [`TunnelRefused`](crate::proxy::TunnelRefused), as
/// `attrsync doctor` and the notification socket word it. reqwest keeps no status but 407's,
/// so one more CONNECT to the proxy asks for it (only once a request has failed so).
pub(crate) async fn transport_failure(
    error: &reqwest::Error,
    proxy: Option<&crate::proxy::ProxySettings>,
) -> String {
    let refused = tunnel_answer(error).and_then(|answer| {
        let url = error.url()?;
        let target = proxy?.for_url(url)?;
        Some((answer, url, target, crate::tls::authority(url)?))
    });
    let Some((answer, url, target, authority)) = refused else {
        return transport_message(error);
    };
    let refusal = match answer {
        TunnelAnswer::AuthRequired => target.refused(&authority, Some("HTTP/1.1 407")),
        TunnelAnswer::Refused => {
            match tokio::time::timeout(REFUSAL_PROBE_TIMEOUT, crate::tls::tunnel(target, url)).await
            {
                Ok(Err(crate::tls::TunnelError::Refused(refusal))) => refusal,
                // It let this one through, or failed otherwise: the status stays unknown.
                _ => target.refused(&authority, None),
            }
        }
    };
    refusal.to_string()
}

/// A one-line description of a transport error with its causes (no URL query, no headers).
pub(crate) fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if message.contains("invalid peer certificate") {
        // Most often a TLS-inspecting proxy whose CA the platform does not trust.
        message.push_str(&format!(
            " (behind a TLS-inspecting proxy? trust its CA with --ca-cert or {})",
            crate::env::SSL_CERT_FILE.name
        ));
    }
    message
}

/// `ININ-Correlation-Id`, when present and printable.
pub(crate) fn correlation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `Retry-After` in seconds (Genesys sends whole seconds; a fraction is accepted). The HTTP-date
/// form is not used by Genesys and is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
}

/// A short single-line excerpt of a body that is not an `ErrorBody`.
fn body_excerpt(body: &[u8]) -> Option<String> {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    let mut excerpt: String = line.chars().take(MAX_CHARS).collect();
    if line.chars().count() > MAX_CHARS {
        excerpt.push('…');
    }
    Some(excerpt)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn http(status: u16) -> ApiError {
        ApiError::from_response("GET /x", status, &HeaderMap::new(), b"")
    }

    #[test]
    fn classification_table() {
        let table = [
            (400, ErrorClass::Terminal),
            (401, ErrorClass::RefreshAndRetry),
            (403, ErrorClass::Terminal),
            (404, ErrorClass::Terminal),
            (409, ErrorClass::RefetchAndRetry),
            (413, ErrorClass::Terminal),
            (429, ErrorClass::Retryable),
            (500, ErrorClass::Terminal),
            (501, ErrorClass::Terminal),
            (502, ErrorClass::Retryable),
            (503, ErrorClass::Retryable),
            (504, ErrorClass::Retryable),
        ];
        for (status, class) in table {
            assert_eq!(http(status).class(), class, "HTTP {status}");
        }
        let transport = [
            ApiError::Timeout {
                route: "GET /x",
                attempts: 1,
            },
            ApiError::Connection {
                route: "GET /x",
                message: "connection reset".into(),
                attempts: 1,
            },
        ];
        for error in transport {
            assert_eq!(error.class(), ErrorClass::Retryable, "{error}");
        }
        let decode = ApiError::Decode {
            route: "GET /x",
            status: 200,
            message: "expected value".into(),
            correlation_id: None,
            attempts: 1,
        };
        assert_eq!(decode.class(), ErrorClass::Terminal);
    }

    #[test]
    fn display_is_one_helpful_line() {
        let mut headers = HeaderMap::new();
        headers.insert(CORRELATION_ID_HEADER, HeaderValue::from_static("abc"));
        let body = br#"{"message":"The conversation does not exist.","code":"conversation.error.conversation.not.found","status":404}"#;
        let error = ApiError::from_response("GET /x", 404, &headers, body);
        assert_eq!(
            error.to_string(),
            "HTTP 404 conversation.error.conversation.not.found: The conversation does not exist. (correlation id abc)"
        );
        assert_eq!(
            error.code(),
            Some("conversation.error.conversation.not.found")
        );
        assert_eq!(error.correlation_id(), Some("abc"));
        assert_eq!(error.status(), Some(404));
    }

    #[test]
    fn non_json_body_becomes_a_short_excerpt() {
        let body = "<html>\n<body>Bad   gateway</body>\n</html>".repeat(20);
        let mut error = ApiError::from_response("GET /x", 502, &HeaderMap::new(), body.as_bytes());
        error.set_attempts(6);
        let text = error.to_string();
        assert!(
            text.starts_with("HTTP 502: <html> <body>Bad gateway"),
            "{text}"
        );
        assert!(text.ends_with("… (6 attempts)"), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(http(503).to_string(), "HTTP 503 Service Unavailable");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("42"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(42)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&headers), None);
    }
}
