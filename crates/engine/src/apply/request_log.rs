//! Every HTTP attempt the client makes goes into the run's `requests` table (for the report's
//! timeline and for after-the-fact analysis), through the audit store's batching writer.

use std::sync::Arc;

use genesys_core::{RequestEvent, RequestObserver};

use audit::{AuditStore, RequestRow, RunId, UnixMillis};

pub struct RequestLog {
    audit: AuditStore,
    run: RunId,
}

impl RequestLog {
    pub fn shared(audit: AuditStore, run: RunId) -> Arc<dyn RequestObserver> {
        Arc::new(RequestLog { audit, run })
    }
}

impl RequestObserver for RequestLog {
    fn on_request(&self, event: &RequestEvent) {
        let (conversation_id, participant_id) = ids_from_path(&event.path);
        self.audit.record_request(RequestRow {
            run_id: self.run.clone(),
            at: UnixMillis::from_system_time(event.started_at),
            method: event.method.to_string(),
            route: event.route.to_owned(),
            conversation_id,
            participant_id,
            status: event.status,
            latency_ms: u32::try_from(event.latency.as_millis()).unwrap_or(u32::MAX),
            attempt: event.attempt,
            retry_after_ms: event
                .retry_after
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            error_class: event.error_class.map(|c| c.as_str().to_owned()),
            correlation_id: event.correlation_id.clone(),
            token_slot: Some(event.token_slot as u32),
        });
    }
}

/// `/api/v2/conversations/calls/{cid}/participants/{pid}/attributes` -> (cid, pid).
fn ids_from_path(path: &str) -> (Option<String>, Option<String>) {
    let segments: Vec<&str> = path.split('/').collect();
    let after = |name: &str| {
        segments
            .iter()
            .position(|s| *s == name)
            .and_then(|i| segments.get(i + 1))
            .filter(|s| !s.is_empty() && **s != "calls" && **s != "details")
            .map(|s| (*s).to_owned())
    };
    let conversation = segments
        .iter()
        .position(|s| *s == "calls")
        .and_then(|i| segments.get(i + 1))
        .map(|s| (*s).to_owned())
        .or_else(|| after("conversations"));
    (conversation, after("participants"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_and_participant_ids_come_from_the_path() {
        assert_eq!(
            ids_from_path("/api/v2/conversations/calls/c1/participants/p1/attributes"),
            (Some("c1".into()), Some("p1".into()))
        );
        assert_eq!(
            ids_from_path("/api/v2/conversations/c2"),
            (Some("c2".into()), None)
        );
        assert_eq!(
            ids_from_path("/api/v2/analytics/conversations/details/query"),
            (None, None)
        );
    }
}
