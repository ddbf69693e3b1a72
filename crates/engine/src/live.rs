//! Batched reads of live calls: the analytics listing of a queue's live calls, and reads of many
//! calls at once through the client's limiter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use genesys_core::{ApiError, GenesysClient, LiveCallsQuery};
use reconcile::{LiveConversation, LiveState};

/// The live calls of every queue, in listing order, each once (a call may have been in two of
/// the queues); a listed id that is not a UUID is skipped with a warning.
pub async fn live_call_ids(
    client: &GenesysClient,
    queues: &[String],
    lookback: Duration,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for queue in queues {
        let query = LiveCallsQuery {
            queue_id: Some(queue.clone()),
            lookback,
            ..LiveCallsQuery::default()
        };
        client
            .visit_live_calls(&query, |call| {
                match uuid::Uuid::parse_str(&call.conversation_id) {
                    Ok(id) => {
                        let id = id.hyphenated().to_string();
                        if seen.insert(id.clone()) {
                            ids.push(id);
                        }
                    }
                    Err(_) => tracing::warn!(
                        conversation = call.conversation_id,
                        "skipping a live call whose id is not a UUID"
                    ),
                }
            })
            .await?;
    }
    Ok(ids)
}

/// The queues a listed call has been in (its segments' queues), in order of first
/// appearance, each once.
pub fn queue_ids_of(conversation: &genesys_core::models::AnalyticsConversation) -> Vec<String> {
    let mut queue_ids: Vec<String> = Vec::new();
    let segment_queues = conversation
        .participants
        .iter()
        .flat_map(|p| &p.sessions)
        .flat_map(|s| &s.segments)
        .filter_map(|s| s.queue_id.as_ref());
    for queue in segment_queues {
        if !queue_ids.contains(queue) {
            queue_ids.push(queue.clone());
        }
    }
    queue_ids
}

/// A conversation that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read conversation {conversation_id}")]
pub struct ReadFailed {
    pub conversation_id: String,
    #[source]
    pub source: ApiError,
}

/// Reads every conversation once, concurrently (each request through the client's limiter).
/// A conversation that does not exist is part of the plan (a skip); any other error stops it.
pub async fn fetch_live(
    client: &GenesysClient,
    ids: Vec<String>,
    concurrency: usize,
) -> Result<LiveState, ReadFailed> {
    let mut live: LiveState = HashMap::with_capacity(ids.len());
    let mut reads = futures::stream::iter(ids)
        .map(|cid| async move {
            let read = client.find_call(&cid).await;
            (cid, read)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((cid, read)) = reads.next().await {
        let conversation = match read {
            Ok(Some(fetched)) => LiveConversation::Found(fetched.value),
            Ok(None) => LiveConversation::NotFound,
            Err(source) => {
                return Err(ReadFailed {
                    conversation_id: cid,
                    source,
                });
            }
        };
        live.insert(cid, conversation);
    }
    Ok(live)
}
