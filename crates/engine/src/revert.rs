//! `attrsync revert RUN`: a plan that puts back what a run changed, made from what the audit
//! store recorded, and executed like a saved plan (`Work::Planned`) through the apply pipeline.
//!
//! Each participant the run changed becomes one planned update whose before-value is what the
//! run wrote (last) and whose new value is what was there before the run's first write (`""`,
//! which clears, where the key was absent). The pipeline's one re-check
//! (`PlannedTarget::recheck`) then gives every rule of a revert: a key whose live value is no
//! longer what the run wrote is `stale` and left alone, a call that ended or a participant who
//! left is `skipped`, and a key already back (a second revert) is `unchanged`.
//!
//! The plan covers the changes the run had recorded when it was made: a follow still running
//! goes on tagging calls, and those are not in it (stop the follow first).

use std::collections::{BTreeMap, HashMap};

use audit::{AuditStore, RunId, RunRecord, RunStatus, TargetFilter, TargetRecord, TargetStatus};
use reconcile::{
    Action, Change, InputTable, Plan, PlannedTarget, Selector, SourceFormat, SourceInfo,
};

use crate::apply::Work;
use crate::error::EngineError;

/// The statuses of a target whose change reached (or may have reached) Genesys: accepted and
/// verified, overwritten after it (drift), accepted and not yet verified, or sent and never
/// answered (`sending` of a run still working or never settled, `unknown` of a call that ended
/// before anyone could look). Reverting one that did not land is harmless: its key does not
/// read as the run wrote it, so it is stale, or already back, and nothing is sent.
pub const REACHED: [TargetStatus; 5] = [
    TargetStatus::Sending,
    TargetStatus::Applied,
    TargetStatus::Verified,
    TargetStatus::Drift,
    TargetStatus::Unknown,
];

/// Which of the run's changes to put back; empty lists mean all.
#[derive(Clone, Debug, Default)]
pub struct RevertFilter {
    /// Conversation ids (any case).
    pub conversations: Vec<String>,
    /// Attribute keys (exact).
    pub keys: Vec<String>,
}

impl RevertFilter {
    fn conversation(&self, id: &str) -> bool {
        self.conversations.is_empty()
            || self
                .conversations
                .iter()
                .any(|c| c.trim().eq_ignore_ascii_case(id.trim()))
    }

    fn key(&self, key: &str) -> bool {
        self.keys.is_empty() || self.keys.iter().any(|k| k == key)
    }
}

/// A revert, planned from the audit store and not yet applied.
#[derive(Clone, Debug)]
pub struct RevertPlan {
    /// The run it reverts.
    pub original: RunRecord,
    /// `run:ID`, the revert's source.
    pub source: SourceInfo,
    /// One update per participant the run changed (and the filter kept).
    pub plan: Plan,
}

impl RevertPlan {
    /// The original is still running (a follow): later changes of it are not in this plan.
    pub fn original_is_running(&self) -> bool {
        self.original.status == RunStatus::Running
    }

    /// The work that applies it: a saved plan, recorded as reverting the original.
    pub fn into_work(self) -> Work {
        Work::Planned {
            source: self.source,
            targets: self.plan.targets,
            input: InputTable::default(),
            reverts: Some(self.original.id),
            no_live_call: Vec::new(),
        }
    }
}

/// The source a revert of `run` records: `run:ID`.
pub fn source_of(run: &RunId) -> SourceInfo {
    SourceInfo {
        path: format!("run:{run}"),
        // Result files of a run without input rows are written in the long form.
        format: SourceFormat::CsvLong,
        sha256: String::new(),
    }
}

/// Plans the revert of `run` from what the store recorded. A revert is not reverted in turn
/// (applying its original again is what that would mean): refused with [`EngineError::RevertOfRevert`].
pub async fn plan(
    audit: &AuditStore,
    run: &RunId,
    filter: &RevertFilter,
) -> Result<RevertPlan, EngineError> {
    let original = audit.run(run).await?;
    if let Some(reverted) = &original.reverts {
        return Err(EngineError::RevertOfRevert {
            run: original.id.clone(),
            original: reverted.clone(),
        });
    }
    let records = audit
        .list_targets(&TargetFilter {
            run: Some(run.clone()),
            statuses: REACHED.to_vec(),
            ..TargetFilter::default()
        })
        .await?;
    Ok(RevertPlan {
        source: source_of(run),
        plan: Plan {
            targets: revert_targets(&records, filter),
        },
        original,
    })
}

/// What one participant's keys were before the run's first write and after its last.
#[derive(Default)]
struct Written {
    conversation_id: String,
    participant_id: String,
    purpose: Option<String>,
    /// key -> (value before the first write, `None` for absent; the value written last).
    keys: BTreeMap<String, (Option<String>, String)>,
}

/// The revert of `records` (a run's targets that reached Genesys, in plan order): one update per
/// participant, restoring each changed key to its value before the run's first write of it,
/// expecting the value of the run's last write. Keys whose last write put back the first
/// before-value need nothing. Pure.
pub fn revert_targets(records: &[TargetRecord], filter: &RevertFilter) -> Vec<PlannedTarget> {
    let mut order: Vec<Written> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut sorted: Vec<&TargetRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    for record in sorted {
        let Some(participant) = &record.participant_id else {
            continue;
        };
        if !filter.conversation(&record.conversation_id) {
            continue;
        }
        let identity = (
            record.conversation_id.trim().to_ascii_lowercase(),
            participant.trim().to_ascii_lowercase(),
        );
        let slot = *index.entry(identity).or_insert_with(|| {
            order.push(Written {
                conversation_id: record.conversation_id.clone(),
                participant_id: participant.clone(),
                purpose: record.purpose.clone(),
                keys: BTreeMap::new(),
            });
            order.len() - 1
        });
        let written = &mut order[slot];
        for (key, wanted) in &record.desired {
            let before = record.before.get(key).cloned().flatten();
            if before.as_deref().unwrap_or("") == wanted.as_str() || !filter.key(key) {
                continue; // Not a change of this row's (or not asked for).
            }
            written
                .keys
                .entry(key.clone())
                .and_modify(|(_, last)| last.clone_from(wanted))
                .or_insert_with(|| (before.filter(|b| !b.is_empty()), wanted.clone()));
        }
    }
    order.into_iter().filter_map(revert_target).collect()
}

/// The planned update that puts one participant's keys back, if any key needs it.
fn revert_target(written: Written) -> Option<PlannedTarget> {
    let mut set = BTreeMap::new();
    let mut clear = BTreeMap::new();
    let mut desired = BTreeMap::new();
    for (key, (first_before, last_written)) in written.keys {
        let restore = first_before.unwrap_or_default();
        if restore == last_written {
            continue;
        }
        desired.insert(key.clone(), restore.clone());
        if restore.is_empty() {
            clear.insert(key, last_written);
        } else {
            let before = Some(last_written).filter(|w| !w.is_empty());
            set.insert(
                key,
                Change {
                    before,
                    after: restore,
                },
            );
        }
    }
    if desired.is_empty() {
        return None;
    }
    Some(PlannedTarget {
        conversation_id: written.conversation_id,
        selectors: vec![Selector::ParticipantId(written.participant_id.clone())],
        participant_id: Some(written.participant_id),
        lines: Vec::new(),
        purpose: written.purpose,
        desired,
        action: Action::Update { set, clear },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{TargetId, UnixMillis};
    use reconcile::{LiveConversation, Recheck};

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    fn record(
        seq: u32,
        participant: &str,
        before: &[(&str, Option<&str>)],
        desired: &[(&str, &str)],
    ) -> TargetRecord {
        TargetRecord {
            id: TargetId::from_row(i64::from(seq) + 1),
            run_id: RunId::from_stored("r".into()),
            seq,
            conversation_id: CID.into(),
            participant_id: Some(participant.into()),
            selector: "purpose=customer".into(),
            purpose: Some("customer".into()),
            input_lines: "desired.csv:2".into(),
            status: TargetStatus::Verified,
            reason: None,
            before: before
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
            desired: desired
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            observed: None,
            http_status: Some(202),
            error_code: None,
            error_message: None,
            correlation_id: None,
            attempts: 1,
            verified_via: None,
            created_at: UnixMillis::from_millis(0),
            updated_at: UnixMillis::from_millis(0),
            sent_at: None,
        }
    }

    fn change(before: Option<&str>, after: &str) -> Change {
        Change {
            before: before.map(str::to_owned),
            after: after.to_owned(),
        }
    }

    #[test]
    fn each_changed_key_goes_back_and_a_key_absent_before_is_cleared() {
        let records = [record(
            0,
            "p",
            &[
                ("tier", Some("silver")),
                ("campaign", None),
                ("same", Some("v")),
            ],
            &[("tier", "gold"), ("campaign", "spring"), ("same", "v")],
        )];
        let targets = revert_targets(&records, &RevertFilter::default());
        assert_eq!(targets.len(), 1);
        let target = &targets[0];
        assert_eq!(target.participant_id.as_deref(), Some("p"));
        assert_eq!(target.selectors, [Selector::ParticipantId("p".into())]);
        assert_eq!(
            target.action,
            Action::Update {
                set: BTreeMap::from([("tier".to_owned(), change(Some("gold"), "silver"))]),
                clear: BTreeMap::from([("campaign".to_owned(), "spring".to_owned())]),
            }
        );
        assert_eq!(
            target.desired,
            BTreeMap::from([
                ("campaign".to_owned(), String::new()),
                ("tier".to_owned(), "silver".to_owned()),
            ])
        );
    }

    #[test]
    fn a_key_written_twice_goes_back_to_its_value_before_the_first_write() {
        let records = [
            // Written again after a flow moved it: expect the last write, restore the first before.
            record(3, "p", &[("tier", Some("bronze"))], &[("tier", "platinum")]),
            record(1, "p", &[("tier", Some("silver"))], &[("tier", "gold")]),
            record(2, "q", &[("tier", Some("x"))], &[("tier", "y")]),
        ];
        let targets = revert_targets(&records, &RevertFilter::default());
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].participant_id.as_deref(), Some("p"));
        assert_eq!(
            targets[0].action,
            Action::Update {
                set: BTreeMap::from([("tier".to_owned(), change(Some("platinum"), "silver"))]),
                clear: BTreeMap::new(),
            }
        );
        // Written back to where it started: nothing to revert.
        let there_and_back = [
            record(0, "p", &[("tier", Some("silver"))], &[("tier", "gold")]),
            record(1, "p", &[("tier", Some("gold"))], &[("tier", "silver")]),
        ];
        assert!(revert_targets(&there_and_back, &RevertFilter::default()).is_empty());
    }

    #[test]
    fn filters_keep_only_the_given_conversations_and_keys() {
        let mut other = record(1, "q", &[("tier", Some("x"))], &[("tier", "y")]);
        other.conversation_id = "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a".into();
        let records = [
            record(
                0,
                "p",
                &[("tier", None), ("campaign", None)],
                &[("tier", "gold"), ("campaign", "spring")],
            ),
            other,
        ];
        let filter = RevertFilter {
            conversations: vec![CID.to_uppercase()],
            keys: vec!["campaign".into()],
        };
        let targets = revert_targets(&records, &filter);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].conversation_id, CID);
        assert_eq!(targets[0].desired.keys().collect::<Vec<_>>(), ["campaign"]);
    }

    #[test]
    fn the_one_recheck_leaves_later_changes_alone_and_finds_a_second_revert_done() {
        use genesys_core::models::{CallConversation, CallMediaParticipant, ParticipantState};
        let records = [record(
            0,
            "p",
            &[("tier", Some("silver")), ("campaign", None)],
            &[("tier", "gold"), ("campaign", "spring")],
        )];
        let target = revert_targets(&records, &RevertFilter::default()).remove(0);
        let live = |attributes: &[(&str, &str)]| {
            LiveConversation::Found(CallConversation {
                id: CID.into(),
                participants: vec![CallMediaParticipant {
                    id: "p".into(),
                    purpose: Some("customer".into()),
                    state: Some(ParticipantState::Connected),
                    attributes: attributes
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
        };
        assert_eq!(
            target.recheck(&live(&[("tier", "gold"), ("campaign", "spring")])),
            Recheck::Send(BTreeMap::from([
                ("campaign".to_owned(), String::new()),
                ("tier".to_owned(), "silver".to_owned()),
            ]))
        );
        assert!(matches!(
            target.recheck(&live(&[("tier", "flow"), ("campaign", "spring")])),
            Recheck::Stale(reason) if reason.contains("\"flow\"")
        ));
        assert_eq!(
            target.recheck(&live(&[("tier", "silver")])),
            Recheck::AlreadyDone
        );
    }
}
