//! What a follow (`tag --follow`, `reconcile --follow`) knows of each live call it follows, and
//! what a new event, a finished job or a new desired state asks of it. Pure: no I/O, so every
//! rule is unit-tested here.
//!
//! Rules:
//! - A participant the selector matches and whose values differ is work, once: while a job for
//!   its call runs, events only update the call's latest view.
//! - A participant this follow verified is left alone unless an event shows a managed key
//!   holding a third value (neither the value before nor the one written: a flow or a person
//!   overwrote it). Then it is re-applied once; if it is overwritten again, that is recorded as
//!   drift and the participant is left alone for good, so attrsync never fights a flow.
//! - After a change verified by a read, an event showing the old value may be older than the
//!   write (events and reads race): it is ignored. After a change verified by an event, every
//!   later event is newer (one socket delivers in order): any other value is an overwrite.
//! - A new desired value for a participant (a new source version) is a new instruction: what
//!   was written before, re-applied or left alone no longer counts, and the new values are work.

use std::collections::{HashMap, HashSet};

use genesys_core::models::{Attributes, CallConversation};
use reconcile::{
    Action, DesiredEntry, LiveConversation, PlannedTarget, Selector, Target, Verification,
};

use super::desired::{CallView, Concerned, FollowDesired};

use audit::{TargetId, TargetStatus};

use crate::apply::TargetResult;

/// A followed call's state.
#[derive(Debug, Default)]
struct Tracked {
    /// A job for this call is queued or running.
    busy: bool,
    /// Participants this follow changed, by lowercase id.
    changed: HashMap<String, Changed>,
    /// A job or an event showed the call as desired (nothing failed): a backfill need not read it.
    settled: bool,
    /// Its numbers and queues, from its latest event or the listing that found it: what rows
    /// by number are matched with.
    view: Option<CallView>,
}

#[derive(Debug)]
struct Changed {
    row: TargetId,
    target: PlannedTarget,
    /// Its last change was verified (not drift, failed or skipped).
    verified: bool,
    /// ... by an event: the socket delivers events in order, so any later event that shows
    /// another value is newer than the write. After a read, an event showing the value from
    /// before may be older than the write (it was on its way), so only a third value counts.
    by_event: bool,
    reapplied: bool,
    /// Overwritten after its re-application: recorded as drift and left alone.
    left_alone: bool,
}

/// What to do for one call.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// Entries of the participants to (re-)apply now, one per participant (by its id); empty
    /// when there is nothing to send.
    pub work: Vec<DesiredEntry>,
    /// A re-applied value overwritten again: record drift on that row and leave it alone.
    pub drift: Vec<Overwritten>,
}

#[derive(Debug, PartialEq)]
pub struct Overwritten {
    pub row: TargetId,
    pub key: String,
    pub observed: Attributes,
}

/// Every followed call, and the desired state they get.
#[derive(Debug)]
pub struct Tracker {
    desired: FollowDesired,
    calls: HashMap<String, Tracked>,
}

/// The entry of one participant, by its id, with the values a plan gave it.
fn participant_entry(target: &PlannedTarget, participant_id: &str) -> DesiredEntry {
    DesiredEntry {
        target: Target {
            conversation_id: target.conversation_id.clone(),
            selector: Selector::ParticipantId(participant_id.to_owned()),
        },
        attributes: target.desired.clone(),
        lines: target.lines.clone(),
    }
}

impl Tracker {
    pub fn new(desired: FollowDesired) -> Self {
        Self {
            desired,
            calls: HashMap::new(),
        }
    }

    /// A new desired state is in force. Returns the followed calls whose desired values it
    /// changed (see [`FollowDesired::concerned_by`]), sorted; `None` when it is the same state.
    pub fn replace_desired(&mut self, desired: FollowDesired) -> Option<Vec<String>> {
        let concerned = match self.desired.concerned_by(&desired) {
            Concerned::Every => {
                let mut all: Vec<String> = self.calls.keys().cloned().collect();
                all.sort();
                all
            }
            Concerned::Conversations { ids, rules } => {
                let mut concerned: Vec<String> = ids
                    .into_iter()
                    .filter(|cid| self.calls.contains_key(cid))
                    .collect();
                if !rules.is_empty() {
                    concerned.extend(
                        self.calls
                            .iter()
                            .filter(|(_, t)| {
                                t.view
                                    .as_ref()
                                    .is_some_and(|view| desired.matches_any(&rules, view))
                            })
                            .map(|(cid, _)| cid.clone()),
                    );
                    concerned.sort();
                    concerned.dedup();
                }
                concerned
            }
        };
        // Compared whole only when no call is concerned (a million rules take a while).
        if concerned.is_empty() && desired == self.desired {
            return None;
        }
        self.desired = desired;
        Some(concerned)
    }

    /// Whether a row of the desired state may concern this call (see
    /// [`FollowDesired::may_concern`]), seen as its remembered view.
    pub fn may_concern(&self, conversation_id: &str) -> bool {
        self.desired
            .may_concern(conversation_id, self.view(conversation_id))
    }

    /// Remembers a call's numbers and queues (from the listing that found it).
    pub fn remember_view(&mut self, conversation_id: &str, view: CallView) {
        self.calls
            .entry(conversation_id.to_owned())
            .or_default()
            .view = Some(view);
    }

    fn view(&self, conversation_id: &str) -> Option<&CallView> {
        self.calls
            .get(conversation_id)
            .and_then(|t| t.view.as_ref())
    }

    /// Whether some rows select calls by number.
    pub fn has_number_rows(&self) -> bool {
        self.desired.has_number_rows()
    }

    /// Whose national numbers calls' numbers are read as.
    pub fn region(&self) -> Option<reconcile::number::Region> {
        self.desired.region()
    }

    /// What rows by number are matched with of `call`; `None` when there are no such rows
    /// (a call's numbers are then neither read nor kept).
    fn view_of(&self, call: &CallConversation) -> Option<CallView> {
        self.desired
            .has_number_rows()
            .then(|| CallView::of_call(call, self.desired.region()))
    }

    /// A listed call no row concerns now: followed, so that a later version naming it finds it,
    /// but not read.
    pub fn keep_in_mind(&mut self, conversation_id: &str) {
        self.calls.entry(conversation_id.to_owned()).or_default();
    }

    /// Calls known now (ended ones are forgotten).
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_busy(&self, conversation_id: &str) -> bool {
        self.calls.get(conversation_id).is_some_and(|t| t.busy)
    }

    /// Whether a backfill listing needs to read this call: it is not known to be done.
    pub fn needs_read(&self, conversation_id: &str) -> bool {
        match self.calls.get(conversation_id) {
            None => true,
            Some(t) => !t.busy && !t.settled && t.changed.is_empty(),
        }
    }

    /// Every entry of a call, for a job planned from a read (`call`: its latest event, if any;
    /// else what the call was last seen as).
    pub fn entries(
        &self,
        conversation_id: &str,
        call: Option<&CallConversation>,
    ) -> Vec<DesiredEntry> {
        match call {
            Some(call) => self
                .desired
                .for_call(conversation_id, self.view_of(call).as_ref()),
            None => self
                .desired
                .for_call(conversation_id, self.view(conversation_id)),
        }
    }

    pub fn mark_busy(&mut self, conversation_id: &str) {
        self.calls
            .entry(conversation_id.to_owned())
            .or_default()
            .busy = true;
    }

    /// What an event (the whole call as it is now) asks for. Not for a busy call: its job
    /// plans from the newest event when it starts, and the follow assesses again when it ends.
    pub fn assess(&mut self, call: &CallConversation) -> Assessment {
        let cid = call.id.to_lowercase();
        let mut assessment = Assessment::default();
        if reconcile::has_ended(call) {
            self.calls.remove(&cid);
            return assessment;
        }
        let view = self.view_of(call);
        let entries = self.desired.for_call(&cid, view.as_ref());
        let live = HashMap::from([(cid.clone(), LiveConversation::Found(call.clone()))]);
        let plan = reconcile::diff_entries(&entries, &live);
        let tracked = self.calls.entry(cid).or_default();
        if view.is_some() {
            tracked.view = view;
        }
        tracked.settled |= !plan.targets.is_empty()
            && plan
                .targets
                .iter()
                .all(|t| matches!(t.action, Action::Unchanged));
        for target in plan.targets {
            let (Action::Update { .. }, Some(pid)) = (&target.action, &target.participant_id)
            else {
                continue;
            };
            let pid = pid.to_lowercase();
            // Written with other desired values: those no longer count.
            if tracked
                .changed
                .get(&pid)
                .is_some_and(|c| c.target.desired != target.desired)
            {
                tracked.changed.remove(&pid);
            }
            let Some(changed) = tracked.changed.get_mut(&pid) else {
                assessment.work.push(participant_entry(&target, &pid));
                continue;
            };
            if changed.left_alone || !changed.verified {
                continue;
            }
            let observed = reconcile::participant(call, &pid)
                .map(|p| p.attributes.clone())
                .unwrap_or_default();
            let verification = if changed.by_event {
                changed.target.verification_after_write(&observed)
            } else {
                changed.target.verification(&observed)
            };
            let overwritten = match verification {
                Verification::Overwritten(key) => Some(key),
                Verification::Done | Verification::NotYetVisible => None,
            };
            if let Some(key) = overwritten {
                if changed.reapplied {
                    changed.left_alone = true;
                    assessment.drift.push(Overwritten {
                        row: changed.row,
                        key,
                        observed: changed
                            .target
                            .desired
                            .keys()
                            .filter_map(|k| observed.get(k).map(|v| (k.clone(), v.clone())))
                            .collect(),
                    });
                } else {
                    changed.reapplied = true;
                    assessment.work.push(participant_entry(&target, &pid));
                }
            }
        }
        assessment
    }

    /// A job ended: remembers what it changed. Returns the entries of participants to re-apply
    /// at once: a verification that already saw a third value (drift) gets its one
    /// re-application.
    pub fn job_done(
        &mut self,
        conversation_id: &str,
        results: &[TargetResult],
    ) -> Vec<DesiredEntry> {
        let tracked = self.calls.entry(conversation_id.to_owned()).or_default();
        tracked.busy = false;
        tracked.settled = !results.is_empty()
            && results.iter().all(|r| {
                !matches!(
                    r.status,
                    TargetStatus::Failed | TargetStatus::Planned | TargetStatus::Unknown
                )
            });
        let mut again = Vec::new();
        let mut seen = HashSet::new();
        for result in results {
            let (Some(pid), Some(row), Some(target)) =
                (&result.participant_id, result.row, &result.planned)
            else {
                continue;
            };
            let pid = pid.to_lowercase();
            if !seen.insert(pid.clone()) {
                continue;
            }
            let verified = result.status == TargetStatus::Verified;
            let drift = result.status == TargetStatus::Drift;
            if !(verified || drift) {
                continue;
            }
            // A re-application counts for the values it re-applied, not for new ones.
            let reapplied = tracked
                .changed
                .get(&pid)
                .is_some_and(|c| c.reapplied && c.target.desired == target.desired);
            let left_alone = drift && reapplied;
            tracked.changed.insert(
                pid.clone(),
                Changed {
                    row,
                    target: target.clone(),
                    verified,
                    by_event: matches!(
                        result.verified_by,
                        Some(crate::apply::VerifiedBy::Event(_))
                    ),
                    reapplied: reapplied || drift,
                    left_alone,
                },
            );
            if drift && !reapplied {
                again.push(participant_entry(target, &pid));
            }
        }
        again
    }

    /// A job that ran for a call that had ended, or that stopped: the call is forgotten.
    pub fn forget(&mut self, conversation_id: &str) {
        self.calls.remove(conversation_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use genesys_core::models::{CallMediaParticipant, ParticipantState};

    const CID: &str = "c0000000-0000-4000-8000-000000000001";
    const CUSTOMER: &str = "p0000000-0000-4000-8000-000000000001";

    fn call(campaign: Option<&str>, state: ParticipantState) -> CallConversation {
        let mut attributes = Attributes::new();
        if let Some(v) = campaign {
            attributes.insert("campaign".into(), v.into());
        }
        CallConversation {
            id: CID.into(),
            participants: vec![
                CallMediaParticipant {
                    id: CUSTOMER.into(),
                    purpose: Some("customer".into()),
                    state: Some(state.clone()),
                    attributes,
                    ..Default::default()
                },
                CallMediaParticipant {
                    id: "a0000000-0000-4000-8000-000000000001".into(),
                    purpose: Some("acd".into()),
                    state: Some(state),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn spring() -> FollowDesired {
        FollowDesired::every_call(
            Selector::Purpose("customer".into()),
            Attributes::from([("campaign".into(), "spring".into())]),
        )
    }

    fn tracker() -> Tracker {
        Tracker::new(spring())
    }

    /// The participants of work entries.
    fn participants(work: &[DesiredEntry]) -> Vec<&str> {
        work.iter()
            .map(|e| match &e.target.selector {
                Selector::ParticipantId(p) => p.as_str(),
                other => panic!("work is per participant: {other}"),
            })
            .collect()
    }

    /// The result of a job that changed the customer from `before` to spring.
    fn result(status: TargetStatus, before: Option<&str>) -> TargetResult {
        let seen = call(before, ParticipantState::Connected);
        let live = HashMap::from([(CID.to_owned(), LiveConversation::Found(seen))]);
        let plan = reconcile::diff_entries(&spring().for_call(CID, None), &live);
        let target = plan.targets.into_iter().next().unwrap();
        TargetResult {
            conversation_id: CID.into(),
            participant_id: Some(CUSTOMER.into()),
            lines: vec![],
            status,
            http_status: None,
            error_code: None,
            message: None,
            correlation_id: None,
            verified_by: None,
            planned: Some(target),
            row: Some(TargetId::from_row(7)),
        }
    }

    #[test]
    fn a_new_call_without_the_value_is_work_and_one_with_it_is_not() {
        let mut t = tracker();
        let a = t.assess(&call(None, ParticipantState::Connected));
        assert_eq!(participants(&a.work), [CUSTOMER]);
        assert_eq!(a.work[0].attributes["campaign"], "spring");
        let mut t = tracker();
        let a = t.assess(&call(Some("spring"), ParticipantState::Connected));
        assert!(a.work.is_empty());
    }

    #[test]
    fn a_call_already_as_desired_or_done_is_not_read_by_a_backfill_but_a_failed_one_is() {
        let mut t = tracker();
        assert!(t.needs_read(CID), "an unknown call is read");
        t.assess(&call(Some("spring"), ParticipantState::Connected));
        assert!(!t.needs_read(CID), "an event showed it as desired");

        let mut t = tracker();
        t.mark_busy(CID);
        let mut failed = result(TargetStatus::Failed, None);
        failed.planned = None;
        t.job_done(CID, &[failed]);
        assert!(t.needs_read(CID), "a failure is tried again after a gap");
    }

    #[test]
    fn an_ended_call_is_forgotten() {
        let mut t = tracker();
        t.assess(&call(None, ParticipantState::Connected));
        assert_eq!(t.len(), 1);
        let a = t.assess(&call(None, ParticipantState::Disconnected));
        assert!(a.work.is_empty());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn an_event_older_than_the_verified_write_is_ignored() {
        let mut t = tracker();
        t.mark_busy(CID);
        assert!(
            t.job_done(CID, &[result(TargetStatus::Verified, None)])
                .is_empty()
        );
        // Still shows no value: an event from before the write.
        assert_eq!(
            t.assess(&call(None, ParticipantState::Connected)),
            Assessment::default()
        );
        assert!(
            !t.needs_read(CID),
            "a verified call is not read again by a backfill"
        );
    }

    #[test]
    fn an_overwrite_is_reapplied_once_then_recorded_as_drift_and_left_alone() {
        let mut t = tracker();
        t.mark_busy(CID);
        t.job_done(CID, &[result(TargetStatus::Verified, None)]);
        let flow = call(Some("summer"), ParticipantState::Connected);
        assert_eq!(
            participants(&t.assess(&flow).work),
            [CUSTOMER],
            "re-applied once"
        );
        t.mark_busy(CID);
        t.job_done(CID, &[result(TargetStatus::Verified, Some("summer"))]);
        let again = t.assess(&call(Some("autumn"), ParticipantState::Connected));
        assert!(again.work.is_empty(), "not a third time");
        assert_eq!(again.drift.len(), 1);
        assert_eq!(again.drift[0].key, "campaign");
        assert_eq!(again.drift[0].observed["campaign"], "autumn");
        let later = t.assess(&call(Some("winter"), ParticipantState::Connected));
        assert_eq!(later, Assessment::default(), "left alone for good");
    }

    #[test]
    fn after_a_change_verified_by_an_event_the_old_value_coming_back_is_an_overwrite() {
        let mut t = tracker();
        t.mark_busy(CID);
        let mut verified = result(TargetStatus::Verified, None);
        verified.verified_by = Some(crate::apply::VerifiedBy::Event(Duration::from_millis(60)));
        t.job_done(CID, &[verified]);
        assert_eq!(
            participants(&t.assess(&call(None, ParticipantState::Connected)).work),
            [CUSTOMER],
            "a later event is newer than the write"
        );
    }

    #[test]
    fn drift_seen_by_verification_gets_its_one_reapplication_at_once() {
        let mut t = tracker();
        t.mark_busy(CID);
        let again = t.job_done(CID, &[result(TargetStatus::Drift, None)]);
        assert_eq!(participants(&again), [CUSTOMER]);
        t.mark_busy(CID);
        assert!(
            t.job_done(CID, &[result(TargetStatus::Drift, Some("summer"))])
                .is_empty()
        );
        assert_eq!(
            t.assess(&call(Some("autumn"), ParticipantState::Connected)),
            Assessment::default()
        );
    }

    fn summer() -> FollowDesired {
        FollowDesired::every_call(
            Selector::Purpose("customer".into()),
            Attributes::from([("campaign".into(), "summer".into())]),
        )
    }

    #[test]
    fn a_new_desired_value_is_work_even_for_a_participant_left_alone() {
        let mut t = tracker();
        t.mark_busy(CID);
        t.job_done(CID, &[result(TargetStatus::Drift, None)]);
        t.mark_busy(CID);
        t.job_done(CID, &[result(TargetStatus::Drift, Some("summer"))]);
        let flow = call(Some("autumn"), ParticipantState::Connected);
        assert_eq!(t.assess(&flow), Assessment::default(), "left alone");

        assert_eq!(t.replace_desired(summer()), Some(vec![CID.to_owned()]));
        assert_eq!(t.replace_desired(summer()), None, "the same state again");
        let a = t.assess(&flow);
        assert_eq!(participants(&a.work), [CUSTOMER]);
        assert_eq!(a.work[0].attributes["campaign"], "summer");
    }

    #[test]
    fn a_listed_call_no_row_concerns_is_kept_in_mind_and_found_by_a_later_version() {
        let rows = |tier: &str| {
            let entry = DesiredEntry {
                target: Target {
                    conversation_id: CID.into(),
                    selector: Selector::Purpose("customer".into()),
                },
                attributes: Attributes::from([("tier".into(), tier.into())]),
                lines: vec![2],
            };
            FollowDesired::from_entries([entry])
        };
        let mut t = Tracker::new(FollowDesired::default());
        assert!(!t.may_concern(CID));
        t.keep_in_mind(CID);
        assert_eq!(t.replace_desired(rows("gold")), Some(vec![CID.to_owned()]));
        assert!(t.may_concern(CID));
        assert_eq!(t.entries(CID, None)[0].attributes["tier"], "gold");
        // Only a removal: no call is concerned.
        assert_eq!(t.replace_desired(FollowDesired::default()), Some(vec![]));
    }
}
