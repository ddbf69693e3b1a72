//! One conversation through the pipeline: read -> (plan) -> re-check -> PATCH -> verify,
//! recording every step in the audit store.
//!
//! The worker executes planned targets; it never diffs on its own. Entries from a source are
//! planned here with the one diff (`reconcile::diff_entries`) against the read it just made;
//! targets from a saved plan or an earlier process of the run arrive planned. Every target then
//! goes through the one re-check (`PlannedTarget::recheck`), which is also what a 409 leads to.
//! A PATCH is sent only after its `sending` mark is durable, so the audit log never misses a
//! change that reached Genesys.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use genesys_core::models::Attributes;
use genesys_core::{ApiError, GenesysClient};
use reconcile::{
    Action, DesiredEntry, LiveConversation, PlannedTarget, Recheck, SkipReason, SourceInfo,
    Verification,
};
use tokio::time::Instant;

use audit::{
    AuditStore, NewTarget, ObservedValues, Outcome, RunId, TargetId, TargetStatus, VerifiedVia,
};

use super::call_events::{CallEvents, Latest};
use super::target_text;
use crate::error::EngineError;
use crate::stop::StopSignal;

/// The audit store failing is the only error that ends a job: anything the API says is recorded.
type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How many times a 409 (the participant changed under us) leads to re-read, re-check, retry.
const MAX_CONFLICT_RETRIES: u32 = 3;

/// The work of one conversation.
#[derive(Debug, Default)]
pub struct Job {
    pub conversation_id: String,
    /// Input entries still to be planned, with the audit row made for each when the run began.
    pub entries: Vec<(TargetId, DesiredEntry)>,
    /// Targets planned already (a saved plan, or rows of this run a dead process planned).
    pub planned: Vec<(TargetId, PlannedTarget)>,
    /// Targets a dead process of this run may have sent: the live state says what happened.
    pub in_doubt: Vec<(TargetId, PlannedTarget)>,
    /// Its place among the calls read ahead of their PATCHes, given back once they are sent.
    pub(crate) read_ahead: Option<super::read_ahead::Ticket>,
}

impl Job {
    pub fn rows(&self) -> impl Iterator<Item = TargetId> + '_ {
        self.entries
            .iter()
            .map(|(row, _)| *row)
            .chain(self.planned.iter().map(|(row, _)| *row))
            .chain(self.in_doubt.iter().map(|(row, _)| *row))
    }
}

/// The final word on one target, as the NDJSON events and the summary report it.
#[derive(Clone, Debug)]
pub struct TargetResult {
    pub conversation_id: String,
    pub participant_id: Option<String>,
    pub lines: Vec<u64>,
    pub status: TargetStatus,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub correlation_id: Option<String>,
    /// What showed a verified or drifted target's values: an event, or a read.
    pub verified_by: Option<VerifiedBy>,
    /// The plan the result is about, when there was one.
    pub planned: Option<PlannedTarget>,
    /// Its audit row.
    pub row: Option<TargetId>,
}

/// How a run verifies its changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyVia {
    /// The notification event that shows the written values (a follow's queue event, a
    /// snapshot's attribute event); a read when none comes within the verify timeout.
    Event,
    /// A read after every change.
    Get,
}

/// What showed the values after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    /// A notification event, this long after the change was accepted.
    Event(Duration),
    /// A `GET` of the call.
    Read,
}

impl From<VerifiedBy> for VerifiedVia {
    fn from(by: VerifiedBy) -> Self {
        match by {
            VerifiedBy::Event(_) => VerifiedVia::Event,
            VerifiedBy::Read => VerifiedVia::Read,
        }
    }
}

/// What every conversation's work shares.
pub struct Pipeline {
    pub client: GenesysClient,
    pub audit: AuditStore,
    pub run: RunId,
    pub source: SourceInfo,
    pub verify_timeout: Duration,
    /// Next `seq` for rows added when a selector reaches more participants than it has rows.
    pub next_seq: AtomicU32,
    pub stop: StopSignal,
    /// `--verify-via event`: calls as their latest notification events show them (a follow's
    /// queue events, or a snapshot's attribute events); a change is verified by the event that
    /// shows it, and read only when none comes within the verify timeout.
    pub call_events: Option<Arc<CallEvents>>,
    /// A snapshot's attribute events: subscribed before the run's first PATCH, not before a
    /// run that changes nothing (a channel is a request and one of the client's 20).
    pub event_watch: Option<Arc<super::event_watch::LazyEventWatch>>,
    /// The verifications under way, by event or read-back (for a display to name a long one).
    pub verifications: Arc<super::verifications::Verifications>,
}

/// A target on its way to Genesys: its row, its plan, and the body to send.
struct Sending {
    row: TargetId,
    target: PlannedTarget,
    body: Attributes,
}

impl Pipeline {
    pub async fn process(&self, job: Job) -> Result<Vec<TargetResult>> {
        self.process_seen(job, None).await
    }

    /// [`Self::process`], planned against `seen` (a notification event's view of the call)
    /// instead of a read, when given.
    pub async fn process_seen(
        &self,
        mut job: Job,
        seen: Option<LiveConversation>,
    ) -> Result<Vec<TargetResult>> {
        let cid = job.conversation_id.clone();
        let mut ticket = job.read_ahead.take();
        let read = match seen {
            Some(live) => Ok(live),
            None => self.read(&cid).await,
        };
        let live = match read {
            Ok(live) => live,
            Err(err) if err.is_resume_later() || err.is_stopped() => {
                // Nothing was sent: the rows stay as they are, for `--resume`.
                self.stop_for(&err);
                return Ok(Vec::new());
            }
            Err(err) => {
                let mut results = Vec::new();
                for row in job.rows().collect::<Vec<_>>() {
                    results.push(self.fail(row, &cid, None, &[], &err).await?);
                }
                return Ok(results);
            }
        };

        if live.has_ended() {
            // It never comes back: later runs skip its rows without a request.
            self.audit
                .record_ended(&[audit::EndedConversation {
                    conversation_id: cid.clone(),
                    ended_at: None,
                }])
                .await?;
        }
        let mut results = Vec::new();
        let mut to_check = self.plan_entries(&cid, job.entries, &live).await?;
        to_check.extend(job.planned);
        for (row, target) in job.in_doubt {
            match self.resolve_in_doubt(row, target, &live).await? {
                Ok(result) => results.push(result),
                // Not there yet: the re-check below sends the plan's keys again (idempotent).
                Err(target) => to_check.push((row, target)),
            }
        }

        let mut sending = Vec::new();
        for (row, target) in to_check {
            match target.recheck(&live) {
                Recheck::NothingToSend => {
                    let status = planned_status(&target.action);
                    results.push(self.finish(row, &target, status, None).await?);
                }
                Recheck::AlreadyDone => {
                    let reason = Some("already as planned when this run looked".to_owned());
                    results.push(
                        self.finish(row, &target, TargetStatus::Unchanged, reason)
                            .await?,
                    );
                }
                Recheck::Gone(reason) => {
                    let reason = Some(reason.describe().to_owned());
                    results.push(
                        self.finish(row, &target, TargetStatus::Skipped, reason)
                            .await?,
                    );
                }
                Recheck::Stale(reason) => {
                    results.push(
                        self.finish(row, &target, TargetStatus::Stale, Some(reason))
                            .await?,
                    );
                }
                Recheck::Send(body) => sending.push(Sending { row, target, body }),
            }
        }
        if sending.is_empty() || self.stop.is_stopping() {
            // Not sent: the rows stay `planned`, and `--resume` or a rerun picks them up.
            return Ok(results);
        }

        let rows: Vec<TargetId> = sending.iter().map(|s| s.row).collect();
        if let Some(watch) = &self.event_watch {
            watch.start_once().await;
        }
        // Attribute events that may show these changes are those that come from now on.
        let events = self.attribute_events(&cid);
        self.audit.mark_sending(&rows).await?;
        let mut applied = Vec::new();
        for s in sending {
            match self.patch(&cid, s).await? {
                Patched::Applied(s) => {
                    if let Some(ticket) = &mut ticket {
                        ticket.accepted();
                    }
                    applied.push(s);
                }
                Patched::Done(result) => results.push(result),
                Patched::NotSent => {}
            }
        }
        // Its PATCHes are sent: another call may be read while this one is verified.
        drop(ticket);
        if !applied.is_empty() {
            results.extend(self.verify(&cid, applied, events).await?);
        }
        Ok(results)
    }

    /// A request that was not sent stops the run: the API's budget stops it resumable; a
    /// stop request already did.
    fn stop_for(&self, err: &ApiError) {
        if err.is_resume_later() {
            self.stop.stop_resumable(err);
        }
    }

    /// Reads the call; Genesys's "no such conversation" is an answer, not an error.
    async fn read(&self, cid: &str) -> Result<LiveConversation, ApiError> {
        Ok(match self.client.find_call(cid).await? {
            Some(fetched) => LiveConversation::Found(fetched.value),
            None => LiveConversation::NotFound,
        })
    }

    /// Plans the conversation's input entries against the read just made (the one diff) and
    /// records each target on a row: the entries' rows are reused in order, more are added when
    /// a selector reaches more participants than there are rows, and rows left over (entries
    /// merged into another's target) are removed, their lines being carried by that target.
    async fn plan_entries(
        &self,
        cid: &str,
        entries: Vec<(TargetId, DesiredEntry)>,
        live: &LiveConversation,
    ) -> Result<Vec<(TargetId, PlannedTarget)>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (mut rows, entries): (std::collections::VecDeque<TargetId>, Vec<DesiredEntry>) =
            entries.into_iter().unzip();
        let live_state = HashMap::from([(cid.to_owned(), live.clone())]);
        let plan = reconcile::diff_entries(&entries, &live_state);
        let mut resolved = Vec::new();
        let mut added = Vec::new();
        let mut added_targets = Vec::new();
        let mut planned = Vec::with_capacity(plan.targets.len());
        for target in plan.targets {
            match rows.pop_front() {
                Some(row) => {
                    resolved.push((row, resolution(&self.source, &target)));
                    planned.push((row, target));
                }
                None => {
                    let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                    added.push(new_target(seq, &self.source, &target));
                    added_targets.push(target);
                }
            }
        }
        let removed: Vec<TargetId> = rows.into();
        let added_rows = self
            .audit
            .plan_conversation(&self.run, &resolved, &added, &removed)
            .await?;
        planned.extend(added_rows.into_iter().zip(added_targets));
        Ok(planned)
    }

    /// A target a dead process may have sent. The live value says what happened: the desired
    /// values are there (it was applied: verified), a key holds a third value (drift), or the
    /// before-values are still there (not applied: the re-check sends it). The row keeps its recorded
    /// before-values either way, so the audit never forgets a change that reached Genesys.
    async fn resolve_in_doubt(
        &self,
        row: TargetId,
        target: PlannedTarget,
        live: &LiveConversation,
    ) -> Result<Result<TargetResult, PlannedTarget>> {
        let participant = target
            .participant_id
            .as_deref()
            .and_then(|pid| live.participant(pid));
        let Some(participant) = participant else {
            let reason = "the call ended before whether the change reached Genesys could be read";
            return Ok(Ok(self
                .finish(row, &target, TargetStatus::Unknown, Some(reason.into()))
                .await?));
        };
        let observed = target.observed(&participant.attributes);
        match target.verification(&participant.attributes) {
            Verification::Done => Ok(Ok(self
                .verified(
                    row,
                    &target,
                    TargetStatus::Verified,
                    observed,
                    None,
                    Some(VerifiedVia::Read),
                )
                .await?)),
            Verification::Overwritten(key) => {
                let reason = format!("`{key}` holds neither the value before nor the one sent");
                Ok(Ok(self
                    .verified(
                        row,
                        &target,
                        TargetStatus::Drift,
                        observed,
                        Some(reason),
                        Some(VerifiedVia::Read),
                    )
                    .await?))
            }
            Verification::NotYetVisible => Ok(Err(target)),
        }
    }

    /// PATCHes one target. A 409 re-reads and re-checks (resend, stale, or gone); any other
    /// error re-reads once to tell a call that ended (skipped) from a failure.
    async fn patch(&self, cid: &str, mut s: Sending) -> Result<Patched> {
        let pid = s.target.participant_id.clone().unwrap_or_default();
        let mut conflicts = 0;
        loop {
            let err = match self
                .client
                .patch_call_participant_attributes(cid, &pid, &s.body)
                .await
            {
                Ok(done) => {
                    self.audit
                        .record_outcome(
                            s.row,
                            Outcome {
                                status: Some(TargetStatus::Applied),
                                http_status: Some(done.meta.status),
                                correlation_id: done.meta.correlation_id,
                                attempts: Some(done.meta.attempts),
                                ..Outcome::default()
                            },
                        )
                        .await?;
                    return Ok(Patched::Applied(s));
                }
                Err(err) => err,
            };
            if err.is_resume_later() || err.is_stopped() {
                // Refused before anything reached Genesys (a 429 changes nothing), or never
                // sent: back to `planned`, for `--resume`.
                self.stop_for(&err);
                self.audit
                    .record_outcome(
                        s.row,
                        Outcome {
                            status: Some(TargetStatus::Planned),
                            reason: Some(err.to_string()),
                            ..Outcome::default()
                        },
                    )
                    .await?;
                return Ok(Patched::NotSent);
            }
            let conflict = err.status() == Some(409) && conflicts < MAX_CONFLICT_RETRIES;
            let live = match self.read(cid).await {
                Ok(live) => live,
                Err(_) => return Ok(Patched::Done(self.patch_failed(cid, &s, &err).await?)),
            };
            match s.target.recheck(&live) {
                Recheck::Gone(reason) => {
                    let reason = format!("{} during the run ({err})", reason.describe());
                    let mut outcome = error_outcome(TargetStatus::Skipped, &err);
                    outcome.reason = Some(reason.clone());
                    self.audit.record_outcome(s.row, outcome).await?;
                    let mut result = result_of(&s.target, TargetStatus::Skipped);
                    result.row = Some(s.row);
                    result.message = Some(reason);
                    result.http_status = err.status();
                    result.error_code = err.code().map(str::to_owned);
                    result.correlation_id = err.correlation_id().map(str::to_owned);
                    return Ok(Patched::Done(result));
                }
                Recheck::Stale(reason) if conflict => {
                    let result = self
                        .finish(s.row, &s.target, TargetStatus::Stale, Some(reason))
                        .await?;
                    return Ok(Patched::Done(result));
                }
                // Someone (or an earlier attempt) made it so: verification will show it.
                Recheck::AlreadyDone if conflict => return Ok(Patched::Applied(s)),
                Recheck::Send(body) if conflict => {
                    conflicts += 1;
                    tracing::debug!(conversation = cid, participant = %pid, "409 conflict: resending the plan's keys");
                    s.body = body;
                }
                _ => return Ok(Patched::Done(self.patch_failed(cid, &s, &err).await?)),
            }
        }
    }

    async fn patch_failed(&self, cid: &str, s: &Sending, err: &ApiError) -> Result<TargetResult> {
        self.fail(
            s.row,
            cid,
            s.target.participant_id.clone(),
            &s.target.lines,
            err,
        )
        .await
    }

    /// The calls' notification events: a follow's queue events, or a snapshot's attribute
    /// events once its watch has started.
    fn events(&self) -> Option<&Arc<CallEvents>> {
        self.call_events
            .as_ref()
            .or_else(|| self.event_watch.as_ref()?.events())
    }

    /// A snapshot run's attribute events of the call from now on, when an event may show
    /// a change made now (its topic is subscribed and the socket connected).
    fn attribute_events(&self, cid: &str) -> Option<tokio::sync::watch::Receiver<Latest>> {
        let events = self.events()?;
        if events.show_whole_calls() || !events.may_show(&cid.to_ascii_lowercase()) {
            return None;
        }
        let mut later = events.subscribe(&cid.to_ascii_lowercase());
        later.borrow_and_update();
        Some(later)
    }

    /// Waits for an event showing the changes (a follow's queue events, or the attribute
    /// events `attribute_events` watched since before the PATCH), then re-reads until every
    /// applied target shows its desired values, or the time is up. 202 means "accepted", so a
    /// read right after a PATCH may still show the old values.
    async fn verify(
        &self,
        cid: &str,
        applied: Vec<Sending>,
        attribute_events: Option<tokio::sync::watch::Receiver<Latest>>,
    ) -> Result<Vec<TargetResult>> {
        let mut results = Vec::new();
        let mut waiting = applied;
        let events = match (self.events(), attribute_events) {
            (_, Some(later)) => Some((later, false)),
            (Some(events), None) if events.show_whole_calls() => {
                Some((events.subscribe(cid), true))
            }
            _ => None,
        };
        let mut deadline = Instant::now() + self.verify_timeout;
        if let Some((calls, whole_calls)) = events {
            // Waiting for an event is a verification under way too (never a silent wait).
            let _verifying = self
                .verifications
                .begin(std::time::SystemTime::now() + self.verify_timeout);
            waiting = self
                .verify_by_event(calls, whole_calls, waiting, &mut results)
                .await?;
            if waiting.is_empty() {
                return Ok(results);
            }
            // A follow reads for a verify timeout more; a snapshot reads what no event showed
            // within the one it waited.
            if whole_calls {
                deadline = Instant::now() + self.verify_timeout;
            }
        }
        // The read-back goes on until the deadline at the latest.
        let _verifying = self.verifications.begin(
            std::time::SystemTime::now() + deadline.saturating_duration_since(Instant::now()),
        );
        let mut delay = Duration::from_millis(100);
        let mut last_observed: HashMap<TargetId, ObservedValues> = HashMap::new();
        loop {
            let live = match self.read(cid).await {
                Ok(live) => Some(live),
                Err(err) if err.is_resume_later() || err.is_stopped() => {
                    // Accepted, not yet verified: the rows stay `applied`, for `--resume`.
                    self.stop_for(&err);
                    return Ok(results);
                }
                Err(_) => None,
            };
            let mut still = Vec::new();
            for s in waiting {
                let participant = live.as_ref().and_then(|l| {
                    s.target
                        .participant_id
                        .as_deref()
                        .and_then(|pid| l.participant(pid))
                });
                let Some(participant) = participant else {
                    still.push(s);
                    continue;
                };
                match self
                    .judge(&s, &participant.attributes, VerifiedBy::Read)
                    .await?
                {
                    Ok(result) => results.push(result),
                    Err(observed) => {
                        last_observed.insert(s.row, observed);
                        still.push(s);
                    }
                }
            }
            waiting = still;
            if waiting.is_empty() {
                return Ok(results);
            }
            if Instant::now() + delay > deadline {
                for s in waiting {
                    let observed = last_observed.remove(&s.row).unwrap_or_default();
                    // Accepted (202) and not seen yet is not drift in a snapshot (nobody is
                    // known to have overwritten it): it stays `applied`, unfinished, and
                    // `--resume` or a rerun looks again. A follow's tracker treats the old value
                    // still showing after its events as the flow putting it back: drift.
                    let follow = self
                        .events()
                        .is_some_and(|events| events.show_whole_calls());
                    let (status, reason) = if follow {
                        (
                            TargetStatus::Drift,
                            "the change was accepted but not visible within --verify-timeout",
                        )
                    } else {
                        (
                            TargetStatus::Applied,
                            "accepted, but not visible within --verify-timeout: not verified yet",
                        )
                    };
                    let reason = format!(
                        "{reason} {}",
                        humantime::format_duration(self.verify_timeout)
                    );
                    let via = (status == TargetStatus::Drift).then_some(VerifiedVia::Read);
                    results.push(
                        self.verified(s.row, &s.target, status, observed, Some(reason), via)
                            .await?,
                    );
                }
                return Ok(results);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// What a view of the participant (a read or an event) says of an applied change: verified,
    /// or drift (recorded), or not visible yet (`Err`, with the values seen).
    async fn judge(
        &self,
        s: &Sending,
        live: &Attributes,
        by: VerifiedBy,
    ) -> Result<Result<TargetResult, ObservedValues>> {
        let observed = s.target.observed(live);
        let (status, reason) = match s.target.verification(live) {
            Verification::Done => (TargetStatus::Verified, None),
            Verification::Overwritten(key) => (
                TargetStatus::Drift,
                Some(format!(
                    "`{key}` was overwritten by someone else after the change"
                )),
            ),
            Verification::NotYetVisible => return Ok(Err(observed)),
        };
        let result = self
            .verified(s.row, &s.target, status, observed, reason, Some(by.into()))
            .await?;
        Ok(Ok(result.by(by)))
    }

    /// Waits up to the verify timeout for notification events that show the applied targets'
    /// values; returns the targets no event showed. A whole call's event judges like a read
    /// (drift included); an attribute event only ever verifies the values it shows.
    async fn verify_by_event(
        &self,
        mut calls: tokio::sync::watch::Receiver<Latest>,
        whole_calls: bool,
        mut waiting: Vec<Sending>,
        results: &mut Vec<TargetResult>,
    ) -> Result<Vec<Sending>> {
        let accepted = Instant::now();
        let deadline = accepted + self.verify_timeout;
        // Attribute events count from the PATCH on: an event came since (`changed()` marks
        // what it waited for as seen, so that is remembered here).
        let mut came = calls.has_changed().unwrap_or(false);
        loop {
            let seen = if whole_calls || came {
                calls.borrow_and_update().clone()
            } else {
                None
            };
            if let Some(call) = seen {
                let mut still = Vec::new();
                for s in waiting {
                    let participant = s
                        .target
                        .participant_id
                        .as_deref()
                        .and_then(|pid| reconcile::participant(&call, pid));
                    let Some(participant) = participant else {
                        still.push(s);
                        continue;
                    };
                    if !whole_calls
                        && s.target.verification(&participant.attributes) != Verification::Done
                    {
                        still.push(s);
                        continue;
                    }
                    let by = VerifiedBy::Event(accepted.elapsed());
                    match self.judge(&s, &participant.attributes, by).await? {
                        Ok(result) => results.push(result),
                        Err(_) => still.push(s),
                    }
                }
                waiting = still;
            }
            if waiting.is_empty() {
                return Ok(waiting);
            }
            tokio::select! {
                changed = calls.changed() => {
                    if changed.is_err() {
                        // The follow forgot the call (it ended), or the socket was lost: a
                        // read says the rest.
                        return Ok(waiting);
                    }
                    came = true;
                },
                () = tokio::time::sleep_until(deadline) => {
                    if !whole_calls && let Some(events) = self.events() {
                        events.unseen();
                    }
                    return Ok(waiting);
                }
            }
        }
    }

    /// Records a target's final status without an observation (a plan's own outcome, a skip,
    /// a stale plan).
    async fn finish(
        &self,
        row: TargetId,
        target: &PlannedTarget,
        status: TargetStatus,
        reason: Option<String>,
    ) -> Result<TargetResult> {
        let reason = reason.or_else(|| skip_text(&target.action));
        self.record(row, target, status, reason, None).await
    }

    /// Records what a view after the change showed (verified, or drift), and what showed it.
    async fn verified(
        &self,
        row: TargetId,
        target: &PlannedTarget,
        status: TargetStatus,
        observed: ObservedValues,
        reason: Option<String>,
        via: Option<VerifiedVia>,
    ) -> Result<TargetResult> {
        self.audit
            .record_outcome(
                row,
                Outcome {
                    status: Some(status),
                    reason: reason.clone(),
                    observed: Some(observed),
                    verified_via: via,
                    ..Outcome::default()
                },
            )
            .await?;
        let mut result = result_of(target, status);
        result.message = reason;
        result.row = Some(row);
        Ok(result)
    }

    async fn record(
        &self,
        row: TargetId,
        target: &PlannedTarget,
        status: TargetStatus,
        reason: Option<String>,
        observed: Option<ObservedValues>,
    ) -> Result<TargetResult> {
        self.audit
            .record_outcome(
                row,
                Outcome {
                    status: Some(status),
                    reason: reason.clone(),
                    observed,
                    ..Outcome::default()
                },
            )
            .await?;
        let mut result = result_of(target, status);
        result.message = reason;
        result.row = Some(row);
        Ok(result)
    }

    async fn fail(
        &self,
        row: TargetId,
        cid: &str,
        participant_id: Option<String>,
        lines: &[u64],
        err: &ApiError,
    ) -> Result<TargetResult> {
        self.audit
            .record_outcome(row, error_outcome(TargetStatus::Failed, err))
            .await?;
        Ok(TargetResult {
            conversation_id: cid.to_owned(),
            participant_id,
            lines: lines.to_vec(),
            status: TargetStatus::Failed,
            http_status: err.status(),
            error_code: err.code().map(str::to_owned),
            message: Some(err.to_string()),
            correlation_id: err.correlation_id().map(str::to_owned),
            verified_by: None,
            planned: None,
            row: Some(row),
        })
    }
}

enum Patched {
    /// Accepted by Genesys; verification follows.
    Applied(Sending),
    /// Final without verification (failed, skipped, stale).
    Done(TargetResult),
    /// Not sent: the API's budget stopped the run; the row is `planned` again.
    NotSent,
}

fn result_of(target: &PlannedTarget, status: TargetStatus) -> TargetResult {
    TargetResult {
        conversation_id: target.conversation_id.clone(),
        participant_id: target.participant_id.clone(),
        lines: target.lines.clone(),
        status,
        http_status: None,
        error_code: None,
        message: None,
        correlation_id: None,
        verified_by: None,
        planned: Some(target.clone()),
        row: None,
    }
}

impl TargetResult {
    fn by(mut self, verified_by: VerifiedBy) -> Self {
        self.verified_by = Some(verified_by);
        self
    }
}

/// The status a plan gives a target before anything is sent. A conflict between input rows is
/// the input's fault, not the call's: it is recorded as failed (in `failed.csv`, exit 3), never
/// as a quiet skip.
pub fn planned_status(action: &Action) -> TargetStatus {
    match action {
        Action::Update { .. } => TargetStatus::Planned,
        Action::Unchanged => TargetStatus::Unchanged,
        Action::Skip {
            reason: SkipReason::ConflictingDesiredValues,
            ..
        } => TargetStatus::Failed,
        Action::Skip { .. } => TargetStatus::Skipped,
    }
}

/// The reason a planned skip is recorded with: the reason's code, and its detail if any.
fn skip_text(action: &Action) -> Option<String> {
    match action {
        Action::Skip {
            reason,
            detail: Some(detail),
        } => Some(format!("{reason}: {detail}")),
        Action::Skip { reason, .. } => Some(reason.to_string()),
        _ => None,
    }
}

/// What the audit row of a planned target says: who it is, where it came from, what it wants,
/// what the plan saw, and (for a plan without an update) its final status.
pub fn resolution(source: &SourceInfo, target: &PlannedTarget) -> audit::Resolution {
    let status = planned_status(&target.action);
    let reason = skip_text(&target.action);
    audit::Resolution {
        participant_id: target.participant_id.clone(),
        purpose: target.purpose.clone(),
        selector: target_text::selectors_text(&target.selectors),
        input_lines: target_text::lines_text(source, &target.lines),
        before: target.before_values(),
        desired: target.desired.clone(),
        status,
        reason,
    }
}

/// A new audit row for a planned target.
pub fn new_target(seq: u32, source: &SourceInfo, target: &PlannedTarget) -> NewTarget {
    let r = resolution(source, target);
    NewTarget {
        seq,
        conversation_id: target.conversation_id.clone(),
        participant_id: r.participant_id,
        selector: r.selector,
        purpose: r.purpose,
        input_lines: r.input_lines,
        status: r.status,
        reason: r.reason,
        before: r.before,
        desired: r.desired,
    }
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
        verified_via: None,
    }
}
