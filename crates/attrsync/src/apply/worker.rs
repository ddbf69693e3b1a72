//! One conversation through the pipeline: read -> diff -> PATCH changed participants -> verify,
//! recording every step in the audit store. A PATCH is sent only after its `sending` mark is
//! durable, so the audit log never misses a change that reached Genesys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use genesys_core::models::{Attributes, CallConversation};
use genesys_core::{ApiError, GenesysClient};
use reconcile::{Action, DesiredEntry, DesiredState, LiveConversation, PlannedTarget, SourceInfo};
use tokio::time::Instant;

use crate::audit::{AuditStore, NewTarget, ObservedValues, Outcome, RunId, TargetId, TargetStatus};

use super::progress::Progress;
use super::stop::StopSignal;

/// How many times a 409 (the participant changed under us) leads to re-read, re-diff, retry.
const MAX_CONFLICT_RETRIES: u32 = 3;

/// All desired entries of one conversation.
#[derive(Debug)]
pub struct Job {
    pub conversation_id: String,
    pub entries: Vec<JobEntry>,
}

#[derive(Debug)]
pub struct JobEntry {
    /// The audit row created for this entry when the run began.
    pub row: TargetId,
    pub entry: DesiredEntry,
    /// From a saved plan: the values the plan saw. A live value that differs makes the target stale.
    pub expected_before: Option<ObservedValues>,
}

/// The final word on one target (one participant, or one entry that matched none).
#[derive(Clone, Debug)]
pub struct TargetResult {
    pub row: TargetId,
    pub conversation_id: String,
    pub participant_id: Option<String>,
    pub lines: Vec<u64>,
    pub status: TargetStatus,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub correlation_id: Option<String>,
}

/// What every conversation's work shares.
pub struct Pipeline {
    pub client: GenesysClient,
    pub audit: AuditStore,
    pub run: RunId,
    pub source: SourceInfo,
    pub verify_timeout: Duration,
    /// Next `seq` for rows added when a selector matches more than one participant.
    pub next_seq: AtomicU32,
    pub stop: StopSignal,
    pub progress: Arc<Progress>,
}

/// An update the diff asked for, on its way to Genesys.
struct Pending {
    row: TargetId,
    participant_id: String,
    lines: Vec<u64>,
    desired: Attributes,
    before: ObservedValues,
}

impl Pipeline {
    pub async fn process(&self, job: Job) -> anyhow::Result<Vec<TargetResult>> {
        let cid = job.conversation_id.clone();
        let live = match self.read(&cid).await {
            Ok(live) => live,
            Err(err) => {
                let mut results = Vec::new();
                for e in &job.entries {
                    results.push(self.fail(e.row, &cid, None, &e.entry.lines, &err).await?);
                }
                return Ok(results);
            }
        };

        let mut results = Vec::new();
        let mut pending = Vec::new();
        let mut first_row_used = vec![false; job.entries.len()];
        for (index, target) in self.diff(&job, &live) {
            let job_entry = &job.entries[index];
            let row = if first_row_used[index] {
                self.add_row(&target, job_entry).await?
            } else {
                first_row_used[index] = true;
                job_entry.row
            };
            let before = before_values(&live, &target, &job_entry.entry.attributes);
            self.audit
                .resolve_target(
                    row,
                    target.participant_id.as_deref(),
                    target.purpose.as_deref(),
                    &before,
                )
                .await?;
            let base = TargetResult {
                row,
                conversation_id: cid.clone(),
                participant_id: target.participant_id.clone(),
                lines: target.lines.clone(),
                status: TargetStatus::Planned,
                http_status: None,
                error_code: None,
                message: None,
                correlation_id: None,
            };
            match &target.action {
                Action::Unchanged => {
                    results.push(self.finish(base, TargetStatus::Unchanged, None).await?);
                }
                Action::Skip { reason } => {
                    results.push(
                        self.finish(base, TargetStatus::Skipped, Some(reason.to_string()))
                            .await?,
                    );
                }
                Action::Update { .. } => {
                    if let Some(reason) = stale_reason(job_entry.expected_before.as_ref(), &before)
                    {
                        results.push(self.finish(base, TargetStatus::Stale, Some(reason)).await?);
                        continue;
                    }
                    let participant_id = target.participant_id.clone().unwrap_or_default();
                    pending.push(Pending {
                        row,
                        participant_id,
                        lines: target.lines.clone(),
                        desired: job_entry.entry.attributes.clone(),
                        before,
                    });
                }
            }
        }
        if pending.is_empty() {
            return Ok(results);
        }
        if self.stop.is_stopping() {
            // Not sent: the rows stay `planned`, and `--resume` picks them up.
            return Ok(results);
        }

        let rows: Vec<TargetId> = pending.iter().map(|p| p.row).collect();
        self.audit.mark_sending(&rows).await?;
        let mut applied = Vec::new();
        for p in pending {
            match self.patch_with_conflict_retry(&cid, &p).await {
                Ok(outcome) => {
                    self.audit.record_outcome(p.row, outcome).await?;
                    applied.push(p);
                }
                Err(err) => results.push(self.fail_or_skip_gone(&cid, &p, &err).await?),
            }
        }
        if !applied.is_empty() {
            results.extend(self.verify(&cid, applied).await?);
        }
        Ok(results)
    }

    async fn read(&self, cid: &str) -> Result<LiveConversation, ApiError> {
        match self.client.get_call(cid).await {
            Ok(fetched) => Ok(LiveConversation::Found(fetched.value)),
            Err(err) if err.status() == Some(404) => Ok(LiveConversation::NotFound),
            Err(err) => Err(err),
        }
    }

    /// The pure diff for this conversation, each planned target tagged with its job entry.
    fn diff(&self, job: &Job, live: &LiveConversation) -> Vec<(usize, PlannedTarget)> {
        let desired = DesiredState {
            input: reconcile::InputTable::default(),
            entries: job.entries.iter().map(|e| e.entry.clone()).collect(),
            source: self.source.clone(),
            warnings: Vec::new(),
        };
        let live_state = HashMap::from([(job.conversation_id.clone(), live.clone())]);
        let plan = reconcile::diff(&desired, &live_state);
        plan.targets
            .into_iter()
            .map(|t| {
                let index = job
                    .entries
                    .iter()
                    .position(|e| e.entry.target.selector == t.selector)
                    .unwrap_or(0);
                (index, t)
            })
            .collect()
    }

    async fn add_row(
        &self,
        target: &PlannedTarget,
        job_entry: &JobEntry,
    ) -> anyhow::Result<TargetId> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let ids = self
            .audit
            .insert_targets(
                &self.run,
                &[NewTarget {
                    seq,
                    conversation_id: target.conversation_id.clone(),
                    participant_id: target.participant_id.clone(),
                    selector: target.selector.to_string(),
                    purpose: target.purpose.clone(),
                    input_lines: lines_text(&self.source, &target.lines),
                    status: TargetStatus::Planned,
                    reason: None,
                    before: ObservedValues::new(),
                    desired: job_entry.entry.attributes.clone(),
                }],
            )
            .await?;
        Ok(ids[0])
    }

    async fn finish(
        &self,
        mut result: TargetResult,
        status: TargetStatus,
        reason: Option<String>,
    ) -> anyhow::Result<TargetResult> {
        self.audit
            .record_outcome(
                result.row,
                Outcome {
                    status: Some(status),
                    reason: reason.clone(),
                    ..Outcome::default()
                },
            )
            .await?;
        result.status = status;
        result.message = reason;
        self.progress.target_done(status);
        Ok(result)
    }

    async fn fail(
        &self,
        row: TargetId,
        cid: &str,
        participant_id: Option<String>,
        lines: &[u64],
        err: &ApiError,
    ) -> anyhow::Result<TargetResult> {
        self.audit
            .record_outcome(row, error_outcome(TargetStatus::Failed, err))
            .await?;
        self.progress.target_done(TargetStatus::Failed);
        Ok(TargetResult {
            row,
            conversation_id: cid.to_owned(),
            participant_id,
            lines: lines.to_vec(),
            status: TargetStatus::Failed,
            http_status: err.status(),
            error_code: err.code().map(str::to_owned),
            message: Some(err.to_string()),
            correlation_id: err.correlation_id().map(str::to_owned),
        })
    }

    /// A PATCH failed. If the call ended or the participant left meanwhile, that is a skip
    /// (nothing to tag any more), not a failure.
    async fn fail_or_skip_gone(
        &self,
        cid: &str,
        p: &Pending,
        err: &ApiError,
    ) -> anyhow::Result<TargetResult> {
        let gone = match self.read(cid).await {
            Ok(LiveConversation::NotFound) => true,
            Ok(LiveConversation::Found(call)) => participant(&call, &p.participant_id)
                .is_none_or(|part| part.state.as_ref().is_some_and(|s| s.is_gone())),
            Err(_) => false,
        };
        if gone {
            let reason = format!("call ended during the run ({err})");
            let mut outcome = error_outcome(TargetStatus::Skipped, err);
            outcome.reason = Some(reason.clone());
            self.audit.record_outcome(p.row, outcome).await?;
            self.progress.target_done(TargetStatus::Skipped);
            return Ok(TargetResult {
                row: p.row,
                conversation_id: cid.to_owned(),
                participant_id: Some(p.participant_id.clone()),
                lines: p.lines.clone(),
                status: TargetStatus::Skipped,
                http_status: err.status(),
                error_code: err.code().map(str::to_owned),
                message: Some(reason),
                correlation_id: err.correlation_id().map(str::to_owned),
            });
        }
        self.fail(p.row, cid, Some(p.participant_id.clone()), &p.lines, err)
            .await
    }

    /// PATCH the keys that differ; on 409 re-read, re-diff and retry.
    async fn patch_with_conflict_retry(&self, cid: &str, p: &Pending) -> Result<Outcome, ApiError> {
        let mut body = changed_keys(&p.desired, &p.before);
        let mut conflicts = 0;
        loop {
            if body.is_empty() {
                // Someone else already made it so (seen after a 409): nothing to send.
                return Ok(Outcome {
                    status: Some(TargetStatus::Applied),
                    ..Outcome::default()
                });
            }
            match self
                .client
                .patch_call_participant_attributes(cid, &p.participant_id, &body)
                .await
            {
                Ok(done) => {
                    return Ok(Outcome {
                        status: Some(TargetStatus::Applied),
                        http_status: Some(done.meta.status),
                        correlation_id: done.meta.correlation_id,
                        attempts: Some(done.meta.attempts),
                        ..Outcome::default()
                    });
                }
                Err(err) if err.status() == Some(409) && conflicts < MAX_CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::debug!(conversation = cid, participant = %p.participant_id, "409 conflict: re-reading");
                    let LiveConversation::Found(call) = self.read(cid).await? else {
                        return Err(err);
                    };
                    let Some(part) = participant(&call, &p.participant_id) else {
                        return Err(err);
                    };
                    let now: ObservedValues = p
                        .desired
                        .keys()
                        .map(|k| (k.clone(), part.attributes.get(k).cloned()))
                        .collect();
                    body = changed_keys(&p.desired, &now);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Re-read until every applied target shows its desired values, or the time is up.
    /// 202 means "accepted", so a read right after a PATCH may still show the old values.
    async fn verify(&self, cid: &str, applied: Vec<Pending>) -> anyhow::Result<Vec<TargetResult>> {
        let deadline = Instant::now() + self.verify_timeout;
        let mut delay = Duration::from_millis(100);
        let mut waiting: Vec<Pending> = applied;
        let mut results = Vec::new();
        let mut last_observed: BTreeMap<TargetId, ObservedValues> = BTreeMap::new();
        loop {
            let call = match self.read(cid).await {
                Ok(LiveConversation::Found(call)) => Some(call),
                _ => None,
            };
            let mut still = Vec::new();
            for p in waiting {
                let observed: ObservedValues = match call
                    .as_ref()
                    .and_then(|c| participant(c, &p.participant_id))
                {
                    Some(part) => p
                        .desired
                        .keys()
                        .map(|k| (k.clone(), part.attributes.get(k).cloned()))
                        .collect(),
                    None => {
                        still.push(p);
                        continue;
                    }
                };
                if matches_desired(&p.desired, &observed) {
                    results.push(
                        self.verified(cid, &p, TargetStatus::Verified, observed, None)
                            .await?,
                    );
                } else if let Some(key) = overwritten_key(&p, &observed) {
                    let reason =
                        format!("`{key}` was overwritten by someone else after the change");
                    results.push(
                        self.verified(cid, &p, TargetStatus::Drift, observed, Some(reason))
                            .await?,
                    );
                } else {
                    last_observed.insert(p.row, observed);
                    still.push(p);
                }
            }
            waiting = still;
            if waiting.is_empty() {
                return Ok(results);
            }
            if Instant::now() + delay > deadline {
                for p in waiting {
                    let observed = last_observed.remove(&p.row).unwrap_or_default();
                    let reason = format!(
                        "the change was accepted but not visible within --verify-timeout {}",
                        humantime::format_duration(self.verify_timeout)
                    );
                    results.push(
                        self.verified(cid, &p, TargetStatus::Drift, observed, Some(reason))
                            .await?,
                    );
                }
                return Ok(results);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn verified(
        &self,
        cid: &str,
        p: &Pending,
        status: TargetStatus,
        observed: ObservedValues,
        reason: Option<String>,
    ) -> anyhow::Result<TargetResult> {
        self.audit
            .record_outcome(
                p.row,
                Outcome {
                    status: Some(status),
                    reason: reason.clone(),
                    observed: Some(observed),
                    ..Outcome::default()
                },
            )
            .await?;
        self.progress.target_done(status);
        Ok(TargetResult {
            row: p.row,
            conversation_id: cid.to_owned(),
            participant_id: Some(p.participant_id.clone()),
            lines: p.lines.clone(),
            status,
            http_status: None,
            error_code: None,
            message: reason,
            correlation_id: None,
        })
    }
}

fn participant<'a>(
    call: &'a CallConversation,
    id: &str,
) -> Option<&'a genesys_core::models::CallMediaParticipant> {
    call.participants.iter().find(|p| p.id == id)
}

/// The live values of the managed keys of a planned target's participant.
fn before_values(
    live: &LiveConversation,
    target: &PlannedTarget,
    desired: &Attributes,
) -> ObservedValues {
    let attrs = match (live, &target.participant_id) {
        (LiveConversation::Found(call), Some(pid)) => participant(call, pid).map(|p| &p.attributes),
        _ => None,
    };
    desired
        .keys()
        .map(|k| (k.clone(), attrs.and_then(|a| a.get(k).cloned())))
        .collect()
}

/// Keys whose live value differs from the desired one; clearing an absent key is no change.
fn changed_keys(desired: &Attributes, live: &ObservedValues) -> Attributes {
    desired
        .iter()
        .filter(|(k, want)| {
            let have = live.get(*k).cloned().flatten();
            match have {
                Some(have) => &have != *want,
                None => !want.is_empty(),
            }
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn matches_desired(desired: &Attributes, observed: &ObservedValues) -> bool {
    changed_keys(desired, observed).is_empty()
}

/// A key whose value is now neither what it was nor what we wrote: a flow or a person changed it.
fn overwritten_key(p: &Pending, observed: &ObservedValues) -> Option<String> {
    p.desired.iter().find_map(|(k, want)| {
        let now = observed.get(k).cloned().flatten();
        let before = p.before.get(k).cloned().flatten();
        let is_desired = now.as_deref().unwrap_or("") == want;
        (!is_desired && now != before).then(|| k.clone())
    })
}

/// A saved plan saw other values than the live ones now: applying it would overwrite a change
/// the reviewer never saw.
fn stale_reason(expected: Option<&ObservedValues>, live: &ObservedValues) -> Option<String> {
    let expected = expected?;
    expected.iter().find_map(|(k, plan_saw)| {
        let now = live.get(k).cloned().flatten();
        (now != *plan_saw).then(|| {
            format!(
                "`{k}` is {} now but the plan saw {}",
                now.map_or("absent".to_owned(), |v| format!("{v:?}")),
                plan_saw
                    .as_ref()
                    .map_or("absent".to_owned(), |v| format!("{v:?}"))
            )
        })
    })
}

fn error_outcome(status: TargetStatus, err: &ApiError) -> Outcome {
    Outcome {
        status: Some(status),
        reason: None,
        http_status: err.status(),
        error_code: err.code().map(str::to_owned),
        error_message: Some(err.to_string()),
        correlation_id: err.correlation_id().map(str::to_owned),
        attempts: Some(err.attempts()),
        observed: None,
    }
}

/// `file:line` references of a target, as stored in the audit row.
pub fn lines_text(source: &SourceInfo, lines: &[u64]) -> String {
    let name = std::path::Path::new(&source.path)
        .file_name()
        .map_or_else(|| source.path.clone(), |n| n.to_string_lossy().into_owned());
    let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
    format!("{name}:{}", lines.join(","))
}

/// The line numbers of an audit row's `input_lines` (the inverse of [`lines_text`]).
pub fn input_lines(text: &str) -> Vec<u64> {
    text.rsplit_once(':')
        .map(|(_, lines)| lines.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn observed(pairs: &[(&str, Option<&str>)]) -> ObservedValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn input_lines_round_trip_through_their_audit_text() {
        let source = SourceInfo {
            path: "dir/desired.csv".into(),
            format: reconcile::SourceFormat::CsvWide,
            sha256: String::new(),
        };
        let text = lines_text(&source, &[2, 7]);
        assert_eq!(text, "desired.csv:2,7");
        assert_eq!(input_lines(&text), vec![2, 7]);
    }

    #[test]
    fn only_differing_keys_are_sent_and_clearing_an_absent_key_is_no_change() {
        let desired = attrs(&[("a", "1"), ("b", "2"), ("gone", "")]);
        let live = observed(&[("a", Some("1")), ("b", Some("x")), ("gone", None)]);
        assert_eq!(changed_keys(&desired, &live), attrs(&[("b", "2")]));
    }

    #[test]
    fn a_value_that_is_neither_before_nor_desired_is_drift_but_a_lagging_one_is_not() {
        let p = Pending {
            row: TargetId::from_row(1),
            participant_id: "p".into(),
            lines: vec![2],
            desired: attrs(&[("k", "new")]),
            before: observed(&[("k", Some("old"))]),
        };
        assert_eq!(overwritten_key(&p, &observed(&[("k", Some("old"))])), None);
        assert_eq!(
            overwritten_key(&p, &observed(&[("k", Some("flow"))])),
            Some("k".into())
        );
        assert_eq!(overwritten_key(&p, &observed(&[("k", Some("new"))])), None);
    }

    #[test]
    fn a_saved_plan_is_stale_when_a_live_value_moved_since() {
        let plan_saw = observed(&[("k", Some("old"))]);
        assert_eq!(
            stale_reason(Some(&plan_saw), &observed(&[("k", Some("old"))])),
            None
        );
        assert!(stale_reason(Some(&plan_saw), &observed(&[("k", Some("other"))])).is_some());
        assert_eq!(stale_reason(None, &observed(&[("k", Some("other"))])), None);
    }
}
