//! Rows a dead process left unfinished are settled by the next run, from the live state, so that
//! no row stays `planned` or `sending` once a later run has finished, and a change that reached
//! Genesys before a crash is recorded as a change with its true before-value.
//!
//! - `planned`: never sent -> `not_applied`.
//! - `sending`/`applied`: maybe sent. The managed keys read as desired -> `verified`; a key holds
//!   a third value -> `drift`; the before-values are still there -> `not_applied`; the call or
//!   participant is gone, so nobody can tell -> `unknown`.

use std::collections::BTreeMap;

use audit::{AuditStore, Outcome, RunId, TargetRecord, TargetStatus};
use genesys_core::GenesysClient;
use reconcile::{LiveConversation, Verification};

use super::target_from_record;
use super::worker::observed_values;

/// Settles every unfinished row of dead runs other than `current`; returns how many.
pub async fn settle_dead_runs(
    client: &GenesysClient,
    audit: &AuditStore,
    current: &RunId,
) -> anyhow::Result<usize> {
    audit.mark_interrupted_runs().await?;
    let rows = audit.unsettled_targets(current).await?;
    let mut by_conversation: BTreeMap<&str, Vec<&TargetRecord>> = BTreeMap::new();
    for row in &rows {
        by_conversation
            .entry(row.conversation_id.as_str())
            .or_default()
            .push(row);
    }
    for (cid, rows) in by_conversation {
        let maybe_sent = rows
            .iter()
            .any(|r| r.status != TargetStatus::Planned && r.participant_id.is_some());
        let live = if maybe_sent {
            match client.find_call(cid).await {
                Ok(Some(fetched)) => Some(LiveConversation::Found(fetched.value)),
                Ok(None) => Some(LiveConversation::NotFound),
                // Unreadable now: leave the rows for a later run to settle.
                Err(err) => {
                    tracing::warn!(conversation = cid, %err, "cannot settle rows of a dead run yet");
                    None
                }
            }
        } else {
            None
        };
        for row in rows {
            let outcome = match settle(row, live.as_ref(), current) {
                Some(outcome) => outcome,
                None => continue,
            };
            audit.record_outcome(row.id, outcome).await?;
        }
    }
    Ok(rows.len())
}

/// The outcome a dead run's row settles to, given the call as read now (`None`: not read).
fn settle(row: &TargetRecord, live: Option<&LiveConversation>, by: &RunId) -> Option<Outcome> {
    let settled = |status, reason: String, observed| Outcome {
        status: Some(status),
        reason: Some(format!("{reason} (settled by run {by})")),
        observed,
        ..Outcome::default()
    };
    if row.status == TargetStatus::Planned || row.participant_id.is_none() {
        return Some(settled(
            TargetStatus::NotApplied,
            "never sent: its run ended first".into(),
            None,
        ));
    }
    let target = target_from_record(row);
    let participant = match live? {
        LiveConversation::Found(call) => call.participants.iter().find(|p| {
            Some(p.id.as_str()) == row.participant_id.as_deref()
                && !p.state.as_ref().is_some_and(|s| s.is_gone())
        }),
        LiveConversation::NotFound => None,
    };
    let Some(participant) = participant else {
        return Some(settled(
            TargetStatus::Unknown,
            "its run ended while sending, and the call has ended since".into(),
            None,
        ));
    };
    let observed = observed_values(&target, &participant.attributes);
    Some(match target.verification(&participant.attributes) {
        Verification::Done => settled(
            TargetStatus::Verified,
            "sent before its run ended; the values are there".into(),
            Some(observed),
        ),
        Verification::Overwritten(key) => settled(
            TargetStatus::Drift,
            format!("`{key}` holds neither the value before nor the one sent"),
            Some(observed),
        ),
        Verification::NotYetVisible => settled(
            TargetStatus::NotApplied,
            "its run ended while sending; the change is not there".into(),
            Some(observed),
        ),
    })
}
