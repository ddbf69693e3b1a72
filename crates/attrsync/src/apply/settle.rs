//! Rows a dead process left unfinished are settled by the next run, from the live state, so that
//! no row stays `planned` or `sending` once a later run has finished, and a change that reached
//! Genesys before a crash is recorded as a change with its true before-value.
//!
//! - `planned`: never sent -> `not_applied`.
//! - `sending`/`applied`: maybe sent. The managed keys read as desired -> `verified`; a key holds
//!   a third value -> `drift`; the before-values are still there -> `not_applied`; the call or
//!   participant is gone, so nobody can tell -> `unknown`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use audit::{AuditStore, Outcome, RunId, TargetRecord, TargetStatus};
use genesys_core::GenesysClient;
use reconcile::{LiveConversation, Verification};

use super::target_from_record;
use super::worker::observed_values;

/// Settles every unfinished row of dead runs other than `current`; returns how many. A value
/// not visible yet is read again with backoff for up to `verify_timeout`, as verification
/// does: 202 means accepted, and what was accepted may show a little later.
pub async fn settle_dead_runs(
    client: &GenesysClient,
    audit: &AuditStore,
    current: &RunId,
    verify_timeout: Duration,
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
    for (cid, mut waiting) in by_conversation {
        let deadline = Instant::now() + verify_timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            let maybe_sent = waiting
                .iter()
                .any(|r| r.status != TargetStatus::Planned && r.participant_id.is_some());
            let live = if maybe_sent {
                match client.find_call(cid).await {
                    Ok(Some(fetched)) => Some(LiveConversation::Found(fetched.value)),
                    Ok(None) => Some(LiveConversation::NotFound),
                    // Unreadable now: leave the rows for a later run to settle.
                    Err(err) => {
                        tracing::warn!(conversation = cid, %err, "cannot settle rows of a dead run yet");
                        break;
                    }
                }
            } else {
                None
            };
            let time_is_up = Instant::now() + delay > deadline;
            let mut still = Vec::new();
            for row in waiting {
                match settle(row, live.as_ref(), current) {
                    Settled::Final(outcome) => audit.record_outcome(row.id, outcome).await?,
                    Settled::NotVisibleYet(outcome) if time_is_up => {
                        audit.record_outcome(row.id, outcome).await?;
                    }
                    Settled::NotVisibleYet(_) => still.push(row),
                    Settled::Unread => {}
                }
            }
            if still.is_empty() {
                break;
            }
            waiting = still;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    Ok(rows.len())
}

/// What a dead run's row settles to, given the call as read now.
enum Settled {
    Final(Outcome),
    /// The before-values still show: final only once the visibility wait is over.
    NotVisibleYet(Outcome),
    /// The call was not read: nothing can be said yet.
    Unread,
}

/// The outcome a dead run's row settles to, given the call as read now (`None`: not read).
fn settle(row: &TargetRecord, live: Option<&LiveConversation>, by: &RunId) -> Settled {
    let settled = |status, reason: String, observed| Outcome {
        status: Some(status),
        reason: Some(format!("{reason} (settled by run {by})")),
        observed,
        ..Outcome::default()
    };
    if row.status == TargetStatus::Planned || row.participant_id.is_none() {
        return Settled::Final(settled(
            TargetStatus::NotApplied,
            "never sent: its run ended first".into(),
            None,
        ));
    }
    let Some(live) = live else {
        return Settled::Unread;
    };
    let target = target_from_record(row);
    let participant = match live {
        LiveConversation::Found(call) => call.participants.iter().find(|p| {
            Some(p.id.as_str()) == row.participant_id.as_deref()
                && !p.state.as_ref().is_some_and(|s| s.is_gone())
        }),
        LiveConversation::NotFound => None,
    };
    let Some(participant) = participant else {
        let reason = if row.status == TargetStatus::Applied {
            "accepted (HTTP 202) before its run ended; the call ended before it could be verified"
        } else {
            "its run ended while sending, and the call has ended since"
        };
        return Settled::Final(settled(TargetStatus::Unknown, reason.into(), None));
    };
    let observed = observed_values(&target, &participant.attributes);
    match target.verification(&participant.attributes) {
        Verification::Done => Settled::Final(settled(
            TargetStatus::Verified,
            "sent before its run ended; the values are there".into(),
            Some(observed),
        )),
        Verification::Overwritten(key) => Settled::Final(settled(
            TargetStatus::Drift,
            format!("`{key}` holds neither the value before nor the one sent"),
            Some(observed),
        )),
        // Genesys accepted it (202 recorded) but it never showed: as verification says.
        Verification::NotYetVisible if row.status == TargetStatus::Applied => {
            Settled::NotVisibleYet(settled(
                TargetStatus::Drift,
                "accepted before its run ended, but not visible within --verify-timeout".into(),
                Some(observed),
            ))
        }
        Verification::NotYetVisible => Settled::NotVisibleYet(settled(
            TargetStatus::NotApplied,
            "its run ended while sending; the change is not there".into(),
            Some(observed),
        )),
    }
}
