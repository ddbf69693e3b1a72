//! Finding live voice calls through the analytics conversation details query (the only way
//! with client credentials; `GET /api/v2/conversations/calls` lists the caller's own calls).

use std::time::{Duration, SystemTime};

use crate::models::{ConversationQuery, PagingSpec, QueryFilter, QueryPredicate};

/// Which live calls to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveCallsQuery {
    /// Only calls with a segment in this queue.
    pub queue_id: Option<String>,
    /// How far back a live call may have started (the query's interval start).
    pub lookback: Duration,
    /// Conversations per page (Genesys allows at most 100).
    pub page_size: u32,
}

impl Default for LiveCallsQuery {
    fn default() -> Self {
        Self {
            queue_id: None,
            lookback: Duration::from_secs(24 * 3600),
            page_size: 100,
        }
    }
}

impl LiveCallsQuery {
    /// The `ConversationQuery` for page `page_number` (from 1), with the interval ending `now`.
    pub fn to_conversation_query(&self, now: SystemTime, page_number: u32) -> ConversationQuery {
        let start = now
            .checked_sub(self.lookback)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut segment_predicates = vec![dimension("mediaType", None, Some("voice"))];
        if let Some(queue_id) = &self.queue_id {
            segment_predicates.push(dimension("queueId", None, Some(queue_id)));
        }
        ConversationQuery {
            interval: format!(
                "{}/{}",
                humantime::format_rfc3339_millis(start),
                humantime::format_rfc3339_millis(now)
            ),
            conversation_filters: vec![QueryFilter {
                kind: "and".to_owned(),
                predicates: vec![dimension("conversationEnd", Some("notExists"), None)],
            }],
            segment_filters: vec![QueryFilter {
                kind: "and".to_owned(),
                predicates: segment_predicates,
            }],
            order: Some("asc".to_owned()),
            order_by: Some("conversationStart".to_owned()),
            paging: Some(PagingSpec {
                page_size: self.page_size.clamp(1, 100),
                page_number,
            }),
        }
    }
}

fn dimension(name: &str, operator: Option<&str>, value: Option<&str>) -> QueryPredicate {
    QueryPredicate {
        kind: Some("dimension".to_owned()),
        dimension: Some(name.to_owned()),
        operator: operator.map(str::to_owned),
        value: value.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builds_the_contract_query() {
        let now = humantime::parse_rfc3339("2026-11-24T10:15:30.123Z").unwrap();
        let query = LiveCallsQuery {
            queue_id: Some("q-1".into()),
            lookback: Duration::from_secs(3600),
            page_size: 50,
        };
        let json = serde_json::to_value(query.to_conversation_query(now, 2)).unwrap();
        assert_eq!(
            json,
            json!({
                "interval": "2026-11-24T09:15:30.123Z/2026-11-24T10:15:30.123Z",
                "conversationFilters": [{"type": "and", "predicates": [
                    {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}
                ]}],
                "segmentFilters": [{"type": "and", "predicates": [
                    {"type": "dimension", "dimension": "mediaType", "value": "voice"},
                    {"type": "dimension", "dimension": "queueId", "value": "q-1"}
                ]}],
                "order": "asc",
                "orderBy": "conversationStart",
                "paging": {"pageSize": 50, "pageNumber": 2}
            })
        );
    }

    #[test]
    fn no_queue_predicate_without_a_queue_and_page_size_is_clamped() {
        let query = LiveCallsQuery {
            page_size: 1000,
            ..LiveCallsQuery::default()
        };
        let built = query.to_conversation_query(SystemTime::now(), 1);
        assert_eq!(built.segment_filters[0].predicates.len(), 1);
        assert_eq!(built.paging.unwrap().page_size, 100);
    }
}
