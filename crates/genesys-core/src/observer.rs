//! Per-attempt notifications for audit logs and progress displays.

use std::time::{Duration, SystemTime};

use crate::error::ErrorClass;

/// One HTTP attempt against the API, reported after its response (or failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEvent {
    /// When the rate limiter admitted the attempt.
    pub started_at: SystemTime,
    /// `GET`, `PATCH` or `POST`.
    pub method: &'static str,
    /// Route template, e.g. `GET /api/v2/conversations/calls/{conversationId}`.
    pub route: &'static str,
    /// The request's path (ids included, no query string): which call and participant it was for.
    pub path: String,
    /// `None` when no response arrived (timeout, connection failure).
    pub status: Option<u16>,
    /// From admission until the outcome was known (and any `Retry-After` pause was in force).
    pub latency: Duration,
    /// 1 for the first attempt of a call.
    pub attempt: u32,
    /// `None` on success.
    pub error_class: Option<ErrorClass>,
    pub retry_after: Option<Duration>,
    /// Index of the pool token that sent the attempt.
    pub token_slot: usize,
    pub correlation_id: Option<String>,
}

/// Receives a [`RequestEvent`] for every HTTP attempt. Called on the request's task: keep it
/// cheap (hand work off to a channel).
pub trait RequestObserver: Send + Sync {
    fn on_request(&self, event: &RequestEvent);
}
