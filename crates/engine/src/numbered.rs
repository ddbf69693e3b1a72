//! Rows that select calls by phone number, matched to live calls through the analytics listing
//! of live calls (its sessions carry each call's numbers): one request per 100 live calls (of
//! the queues the rows name, when every row names one), and only the calls that match are read
//! afterwards. A number that matches no live call costs nothing and is reported.

use std::collections::HashSet;

use genesys_core::{ApiError, GenesysClient, LiveCallsQuery};
use reconcile::{DesiredEntry, DesiredState, LiveState, Plan};
use uuid::Uuid;

use crate::follow::CallView;
use crate::live::{ReadFailed, fetch_live, fetch_live_batched};

/// The entries numbered rows give the live calls they match.
#[derive(Debug, Default)]
pub struct NumberedCalls {
    /// One per (matching rule, call), in listing order.
    pub entries: Vec<DesiredEntry>,
    /// Rows of rules that matched no live call.
    pub unmatched_rows: u64,
    /// Their lines, ascending.
    pub unmatched_lines: Vec<u64>,
}

impl NumberedCalls {
    /// What to tell the person running the command about rows that matched nothing.
    pub fn unmatched_note(&self) -> Option<String> {
        (self.unmatched_rows > 0).then(|| {
            let rows = self.unmatched_rows as usize;
            format!(
                "{} {} calls by a number no live call has (no request)",
                crate::plural(rows, "row"),
                if rows == 1 { "selects" } else { "select" }
            )
        })
    }
}

/// At most this many queues are listed one by one when every numbered row names a queue; more,
/// and the org's live calls are listed once.
const MAX_QUEUES_LISTED: usize = 10;

/// The live calls `desired`'s numbered rows select, from one listing of the org's live calls,
/// or of the queues they name when every row names one (nothing is asked when it has none).
pub async fn numbered_calls(
    client: &GenesysClient,
    desired: &DesiredState,
) -> Result<NumberedCalls, ApiError> {
    let rules = desired.number_rules();
    if rules.is_empty() {
        return Ok(NumberedCalls::default());
    }
    let queries: Vec<LiveCallsQuery> = match rules.queues() {
        Some(queues) if queues.len() <= MAX_QUEUES_LISTED => queues
            .iter()
            .map(|queue| LiveCallsQuery {
                queue_id: Some(queue.hyphenated().to_string()),
                ..LiveCallsQuery::default()
            })
            .collect(),
        _ => vec![LiveCallsQuery::default()],
    };
    let mut matched = vec![false; rules.len()];
    let mut entries = Vec::new();
    // A call in two listed queues is listed twice: matched once.
    let mut seen = HashSet::new();
    for query in &queries {
        client
            .visit_live_calls(query, |call| {
                let Ok(id) = Uuid::try_parse(&call.conversation_id) else {
                    return;
                };
                if !seen.insert(id) {
                    return;
                }
                // What rows by number are matched with, as a follow's backfill sees it too.
                let view = CallView::of_listing(&call, rules.region());
                let conversation_id = id.hyphenated().to_string();
                for i in rules.matching(&view.numbers, &view.queues) {
                    matched[i] = true;
                    entries.push(rules.entry_for(i, &conversation_id));
                }
            })
            .await?;
    }
    let mut unmatched_lines: Vec<u64> = (0..rules.len())
        .filter(|&i| !matched[i])
        .flat_map(|i| rules.lines(i))
        .collect();
    unmatched_lines.sort_unstable();
    Ok(NumberedCalls {
        entries,
        unmatched_rows: unmatched_lines.len() as u64,
        unmatched_lines,
    })
}

/// Why a desired state could not be planned against the live calls.
#[derive(Debug, thiserror::Error)]
pub enum PlanLiveError {
    #[error("cannot list the live calls that rows select by number")]
    List(#[source] ApiError),
    #[error(transparent)]
    Read(#[from] ReadFailed),
}

/// A desired state planned against the live calls, as `plan` and `--max-changes` show it.
#[derive(Debug)]
pub struct PlannedLive {
    pub plan: Plan,
    /// What the person running the command is told (a failed liveness lookup, numbers that
    /// matched nothing).
    pub notes: Vec<String>,
    /// Lines of rows selecting calls by a number no live call had, ascending.
    pub no_live_call: Vec<u64>,
}

/// Plans `desired` against the live calls: which of its conversations ended (in batches of
/// `batch` ids, when given), the live calls its numbered rows select, and one read of every other
/// call.
pub async fn plan_live(
    client: &GenesysClient,
    desired: &DesiredState,
    batch: Option<usize>,
    concurrency: usize,
) -> Result<PlannedLive, PlanLiveError> {
    let mut notes = Vec::new();
    let numbered = numbered_calls(client, desired)
        .await
        .map_err(PlanLiveError::List)?;
    notes.extend(numbered.unmatched_note());
    let ids = reconcile::conversation_ids(desired);
    let mut read: HashSet<String> = ids.iter().cloned().collect();
    let mut live: LiveState = match batch {
        Some(batch) => {
            let (live, liveness) = fetch_live_batched(client, ids, batch, concurrency).await?;
            notes.extend(liveness.problem_note());
            live
        }
        None => fetch_live(client, ids, concurrency).await?,
    };
    // The numbered rows' calls are live (listed): each is read once, unless it already was.
    let numbered_ids: Vec<String> = numbered
        .entries
        .iter()
        .map(|entry| entry.target.conversation_id.clone())
        .filter(|id| read.insert(id.clone()))
        .collect();
    live.extend(fetch_live(client, numbered_ids, concurrency).await?);
    let mut entries = desired.to_entries();
    entries.extend(numbered.entries);
    Ok(PlannedLive {
        plan: reconcile::diff_entries(&entries, &live),
        notes,
        no_live_call: numbered.unmatched_lines,
    })
}
