//! Batched reads of live calls: the analytics listing of a queue's live calls, which of many
//! conversations have ended (multi-id analytics reads), and reads of many calls at once through
//! the client's limiter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use audit::{AuditError, AuditStore, EndedConversation, UnixMillis};
use futures::StreamExt;
use genesys_core::{ApiError, GenesysClient, LiveCallsQuery};
use reconcile::{LiveConversation, LiveState};
use uuid::Uuid;

/// Conversation ids per multi-id analytics read unless configured otherwise (`--liveness-batch`):
/// the README's starting point, since Genesys documents no limit.
pub const DEFAULT_LIVENESS_BATCH: usize = 100;

/// Which desired conversations have ended, found before any of them is read.
#[derive(Debug, Default)]
pub struct Liveness {
    /// Per conversation asked about, in the order asked: whether it is known to have ended
    /// (its rows need no request).
    pub ended: Vec<bool>,
    /// The ones this lookup learned (analytics showed their `conversationEnd`), with when they
    /// ended: to be remembered in the audit store.
    pub newly_ended: Vec<(Uuid, Option<UnixMillis>)>,
    /// Why some conversations could not be looked up (they are read as if live), once.
    pub problem: Option<ApiError>,
}

impl Liveness {
    /// What to tell the person running the command when the lookup failed (a stop or the
    /// API's budget is said elsewhere): every call not known ended is read instead.
    pub fn problem_note(&self) -> Option<String> {
        self.problem
            .as_ref()
            .filter(|problem| !(problem.is_stopped() || problem.is_resume_later()))
            .map(|problem| {
                format!("cannot ask analytics which calls ended ({problem}); reading every call")
            })
    }

    /// What the audit store remembers of [`Self::newly_ended`], `chunk` at a time (a first
    /// iteration over a large table learns of a million).
    pub fn newly_ended_records(
        &self,
        chunk: usize,
    ) -> impl Iterator<Item = Vec<EndedConversation>> + '_ {
        self.newly_ended.chunks(chunk.max(1)).map(|chunk| {
            chunk
                .iter()
                .map(|(id, ended_at)| EndedConversation {
                    conversation_id: id.hyphenated().to_string(),
                    ended_at: *ended_at,
                })
                .collect()
        })
    }
}

/// Which of `ids` the audit store saw ended, per id: asked `chunk` ids at a time, so that a
/// table of a million rows never holds a million strings.
pub async fn known_ended(audit: &AuditStore, ids: &[Uuid]) -> Result<Vec<bool>, AuditError> {
    const CHUNK: usize = 10_000;
    let mut ended = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let asked: Vec<String> = chunk.iter().map(|id| id.hyphenated().to_string()).collect();
        let found = audit.known_ended(&asked).await?;
        ended.extend(asked.iter().map(|id| found.contains(id)));
    }
    Ok(ended)
}

/// Multi-id analytics reads at once, at most: each answer holds up to a batch of conversations,
/// and the budget, not the round trips, sets how fast they go.
const LOOKUPS_AT_ONCE: usize = 4;

/// Finds which of `ids` have ended: those `known_ended` says (the audit store's memory) without
/// a request, the rest through one multi-id analytics read per `batch` ids, `concurrency` (at
/// most [`LOOKUPS_AT_ONCE`]) at once. A conversation analytics leaves out (too new to be indexed, or unknown) is not ended:
/// the caller reads it as before. A failed lookup proves nothing either: the failure is kept in
/// [`Liveness::problem`] and every conversation not yet known ended is read.
pub async fn liveness(
    client: &GenesysClient,
    ids: &[Uuid],
    known_ended: Vec<bool>,
    batch: usize,
    concurrency: usize,
) -> Liveness {
    let mut found = Liveness {
        ended: known_ended,
        ..Liveness::default()
    };
    found.ended.resize(ids.len(), false);
    let unknown: Vec<usize> = (0..ids.len()).filter(|&i| !found.ended[i]).collect();
    let mut lookups = futures::stream::iter(unknown.chunks(batch.max(1)))
        .map(|chunk| async move {
            let asked: HashMap<Uuid, usize> = chunk.iter().map(|&i| (ids[i], i)).collect();
            let strings: Vec<String> = chunk
                .iter()
                .map(|&i| ids[i].hyphenated().to_string())
                .collect();
            (asked, client.conversation_details(&strings).await)
        })
        .buffer_unordered(concurrency.clamp(1, LOOKUPS_AT_ONCE));
    while let Some((asked, answer)) = lookups.next().await {
        match answer {
            Ok(fetched) => {
                for conversation in fetched.value {
                    let Some(end) = conversation.conversation_end else {
                        continue;
                    };
                    let Some(&i) = Uuid::try_parse(&conversation.conversation_id)
                        .ok()
                        .and_then(|id| asked.get(&id))
                    else {
                        continue;
                    };
                    if !std::mem::replace(&mut found.ended[i], true) {
                        let ended_at = humantime::parse_rfc3339_weak(&end)
                            .ok()
                            .map(UnixMillis::from_system_time);
                        found.newly_ended.push((ids[i], ended_at));
                    }
                }
            }
            Err(err) => {
                found.problem.get_or_insert(err);
            }
        }
    }
    found
}

/// The live calls of every queue, in listing order, each once (a call may have been in two of
/// the queues); a listed id that is not a UUID is skipped with a warning.
pub async fn live_call_ids(
    client: &GenesysClient,
    queues: &[String],
    lookback: Duration,
) -> Result<Vec<String>, ApiError> {
    let listed = live_calls_of_queues(client, queues, lookback, |_| ()).await?;
    Ok(listed.into_iter().map(|(id, ())| id).collect())
}

/// [`live_call_ids`], each with what `keep` takes of its analytics record (its numbers, say),
/// so that no call's whole record is held.
pub async fn live_calls_of_queues<T>(
    client: &GenesysClient,
    queues: &[String],
    lookback: Duration,
    mut keep: impl FnMut(&genesys_core::models::AnalyticsConversation) -> T,
) -> Result<Vec<(String, T)>, ApiError> {
    let mut listed = Vec::new();
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
                            let kept = keep(&call);
                            listed.push((id, kept));
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
    Ok(listed)
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

/// [`fetch_live`] after [`liveness`]: a conversation analytics shows ended is not read (it is
/// [`LiveConversation::Ended`] in the live state); the others are read once each. Returns the
/// live state and the lookup, whose problem (if any) the caller reports.
pub async fn fetch_live_batched(
    client: &GenesysClient,
    ids: Vec<String>,
    batch: usize,
    concurrency: usize,
) -> Result<(LiveState, Liveness), ReadFailed> {
    // The ids are a desired state's, validated UUIDs; one that is not is read (and not found).
    let uuids: Vec<Uuid> = ids
        .iter()
        .filter_map(|id| Uuid::try_parse(id).ok())
        .collect();
    let found = liveness(client, &uuids, Vec::new(), batch, concurrency).await;
    let ended: HashSet<String> = uuids
        .iter()
        .zip(&found.ended)
        .filter(|(_, ended)| **ended)
        .map(|(id, _)| id.hyphenated().to_string())
        .collect();
    let to_read: Vec<String> = ids.into_iter().filter(|id| !ended.contains(id)).collect();
    let mut live = fetch_live(client, to_read, concurrency).await?;
    live.extend(ended.into_iter().map(|id| (id, LiveConversation::Ended)));
    Ok((live, found))
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
