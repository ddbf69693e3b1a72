//! The diff of a desired state against live conversations: a [`Plan`]. Pure: no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use genesys_core::models::{Attributes, CallConversation, CallMediaParticipant};
use serde::{Deserialize, Serialize};

use crate::desired::{DesiredEntry, DesiredState, Selector};

/// What the caller fetched for one conversation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveConversation {
    Found(CallConversation),
    /// Genesys answered 404 `conversation.error.conversation.not.found`.
    NotFound,
}

/// Live state keyed by conversation id (lowercase, as in [`crate::desired::Target`]).
pub type LiveState = HashMap<String, LiveConversation>;

/// Why a target is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    ConversationNotFound,
    /// Every participant is disconnected or terminated, or there are none.
    ConversationEnded,
    /// The matched participant is disconnected or terminated.
    ParticipantNotLive,
    SelectorMatchedNothing,
    /// Two desired entries (e.g. `purpose=customer` and the customer's `participant_id`) give
    /// this participant different values for the same key. Every entry involved is skipped for
    /// that participant, since neither can be preferred; other participants are unaffected.
    ConflictingDesiredValues,
    /// The live state given to [`diff`] has no answer for this conversation (it was not fetched).
    LiveStateMissing,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationNotFound => "conversation-not-found",
            Self::ConversationEnded => "conversation-ended",
            Self::ParticipantNotLive => "participant-not-live",
            Self::SelectorMatchedNothing => "selector-matched-nothing",
            Self::ConflictingDesiredValues => "conflicting-desired-values",
            Self::LiveStateMissing => "live-state-missing",
        }
    }
}

impl SkipReason {
    /// The reason as a reader of a plan would say it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ConversationNotFound => "the conversation does not exist",
            Self::ConversationEnded => "the call has ended",
            Self::ParticipantNotLive => "the participant has left the call",
            Self::SelectorMatchedNothing => "no participant matches the selector",
            Self::ConflictingDesiredValues => {
                "two input rows give this participant different values"
            }
            Self::LiveStateMissing => "the call was not read",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key to write: its live value (`None` if absent) and the desired one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub before: Option<String>,
    pub after: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Every managed key already has its desired value.
    Unchanged,
    /// Keys to write; never both empty.
    Update {
        set: BTreeMap<String, Change>,
        /// Keys to clear (write `""`), with their live value.
        clear: BTreeMap<String, String>,
    },
    Skip {
        reason: SkipReason,
    },
}

/// One participant (or, when skipped before matching, one desired entry) and what to do to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub conversation_id: String,
    /// The matched participant; `None` when no participant could be matched.
    pub participant_id: Option<String>,
    pub selector: Selector,
    /// Input lines (or rows) of the desired entry.
    pub lines: Vec<u64>,
    /// Purpose of the matched participant.
    pub purpose: Option<String>,
    pub action: Action,
}

impl PlannedTarget {
    /// Keys of an update whose live value no longer is the plan's before-value (absent and `""`
    /// count as the same): applying a saved plan must not overwrite a change made since.
    pub fn stale_keys<'a>(&'a self, live: &Attributes) -> Vec<&'a str> {
        let Action::Update { set, clear } = &self.action else {
            return Vec::new();
        };
        let live_value = |k: &str| live.get(k).map_or("", String::as_str);
        let stale_sets = set
            .iter()
            .filter(|(k, c)| live_value(k) != c.before.as_deref().unwrap_or(""));
        let stale_clears = clear
            .iter()
            .filter(|(k, before)| live_value(k) != before.as_str());
        stale_sets
            .map(|(k, _)| k.as_str())
            .chain(stale_clears.map(|(k, _)| k.as_str()))
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub targets: Vec<PlannedTarget>,
}

/// Counts of a plan, for its summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub to_update: usize,
    pub keys_set: usize,
    pub keys_cleared: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl Plan {
    pub fn summary(&self) -> PlanSummary {
        let mut summary = PlanSummary::default();
        for target in &self.targets {
            match &target.action {
                Action::Unchanged => summary.unchanged += 1,
                Action::Update { set, clear } => {
                    summary.to_update += 1;
                    summary.keys_set += set.len();
                    summary.keys_cleared += clear.len();
                }
                Action::Skip { .. } => summary.skipped += 1,
            }
        }
        summary
    }

    /// Whether applying the plan would write anything.
    pub fn has_changes(&self) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t.action, Action::Update { .. }))
    }
}

/// Diffs every desired entry against the live state. Only managed keys are compared; clearing a
/// key that is absent or already `""` is no change. A `purpose`/`user_id` selector yields one
/// planned target per matched participant; targets follow the desired entries' order.
pub fn diff(desired: &DesiredState, live: &LiveState) -> Plan {
    let conflicts = find_conflicts(&desired.entries, live);
    let mut targets = Vec::with_capacity(desired.entries.len());
    for (index, entry) in desired.entries.iter().enumerate() {
        plan_entry(index, entry, live, &conflicts, &mut targets);
    }
    Plan { targets }
}

fn plan_entry(
    index: usize,
    entry: &DesiredEntry,
    live: &LiveState,
    conflicts: &HashSet<(usize, usize)>,
    out: &mut Vec<PlannedTarget>,
) {
    let planned = |participant: Option<&CallMediaParticipant>, action| PlannedTarget {
        conversation_id: entry.target.conversation_id.clone(),
        participant_id: participant.map(|p| p.id.clone()),
        selector: entry.target.selector.clone(),
        lines: entry.lines.clone(),
        purpose: participant.and_then(|p| p.purpose.clone()),
        action,
    };
    let skip = |reason| Action::Skip { reason };
    let conversation = match live.get(&entry.target.conversation_id) {
        None => return out.push(planned(None, skip(SkipReason::LiveStateMissing))),
        Some(LiveConversation::NotFound) => {
            return out.push(planned(None, skip(SkipReason::ConversationNotFound)));
        }
        Some(LiveConversation::Found(c)) if has_ended(c) => {
            return out.push(planned(None, skip(SkipReason::ConversationEnded)));
        }
        Some(LiveConversation::Found(c)) => c,
    };
    let before = out.len();
    for (pi, participant) in matching(conversation, &entry.target.selector) {
        let action = if is_gone(participant) {
            skip(SkipReason::ParticipantNotLive)
        } else if conflicts.contains(&(index, pi)) {
            skip(SkipReason::ConflictingDesiredValues)
        } else {
            diff_attributes(&entry.attributes, &participant.attributes)
        };
        out.push(planned(Some(participant), action));
    }
    if out.len() == before {
        out.push(planned(None, skip(SkipReason::SelectorMatchedNothing)));
    }
}

fn diff_attributes(desired: &BTreeMap<String, String>, live: &Attributes) -> Action {
    let mut set = BTreeMap::new();
    let mut clear = BTreeMap::new();
    for (key, want) in desired {
        let have = live.get(key);
        if want.is_empty() {
            if let Some(have) = have.filter(|h| !h.is_empty()) {
                clear.insert(key.clone(), have.clone());
            }
        } else if have != Some(want) {
            set.insert(
                key.clone(),
                Change {
                    before: have.cloned(),
                    after: want.clone(),
                },
            );
        }
    }
    if set.is_empty() && clear.is_empty() {
        Action::Unchanged
    } else {
        Action::Update { set, clear }
    }
}

fn is_gone(participant: &CallMediaParticipant) -> bool {
    participant.state.as_ref().is_some_and(|s| s.is_gone())
}

/// A conversation has ended when it has no participants or all of them are gone.
fn has_ended(conversation: &CallConversation) -> bool {
    conversation.participants.iter().all(is_gone)
}

/// Participants the selector fits, with their index. Ids and purposes compare case-insensitively.
fn matching<'a>(
    conversation: &'a CallConversation,
    selector: &'a Selector,
) -> impl Iterator<Item = (usize, &'a CallMediaParticipant)> {
    conversation
        .participants
        .iter()
        .enumerate()
        .filter(move |(_, p)| match selector {
            Selector::ParticipantId(id) => p.id.eq_ignore_ascii_case(id),
            Selector::Purpose(purpose) => p
                .purpose
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(purpose)),
            Selector::UserId(user) => p.user_id().is_some_and(|x| x.eq_ignore_ascii_case(user)),
        })
}

/// (entry index, participant index) pairs where two entries reaching the same live participant
/// want different values for one key. Only conversations with several entries can have any.
fn find_conflicts(entries: &[DesiredEntry], live: &LiveState) -> HashSet<(usize, usize)> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        entries[a]
            .target
            .conversation_id
            .cmp(&entries[b].target.conversation_id)
    });
    let mut conflicts = HashSet::new();
    for group in order
        .chunk_by(|&a, &b| entries[a].target.conversation_id == entries[b].target.conversation_id)
    {
        if group.len() < 2 {
            continue;
        }
        let Some(LiveConversation::Found(conversation)) =
            live.get(&entries[group[0]].target.conversation_id)
        else {
            continue;
        };
        // (participant, key) -> the entries that set it, with their values.
        let mut wanted: HashMap<(usize, &str), Vec<(usize, &str)>> = HashMap::new();
        for &e in group {
            for (pi, participant) in matching(conversation, &entries[e].target.selector) {
                if is_gone(participant) {
                    continue;
                }
                for (key, value) in &entries[e].attributes {
                    wanted.entry((pi, key)).or_default().push((e, value));
                }
            }
        }
        for ((pi, _), setters) in wanted {
            if setters.iter().any(|(_, v)| *v != setters[0].1) {
                conflicts.extend(setters.iter().map(|&(e, _)| (e, pi)));
            }
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{SourceFormat, SourceInfo, Target};
    use genesys_core::models::{DomainEntityRef, ParticipantState};

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";
    const USER: &str = "0b7c9d2e-3f4a-4b5c-8d6e-7f8a9b0c1d2e";

    fn participant(
        id: &str,
        purpose: &str,
        state: ParticipantState,
        attrs: &[(&str, &str)],
    ) -> CallMediaParticipant {
        CallMediaParticipant {
            id: id.into(),
            purpose: Some(purpose.into()),
            state: Some(state),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..Default::default()
        }
    }

    fn live(participants: Vec<CallMediaParticipant>) -> LiveState {
        LiveState::from([(
            CID.to_owned(),
            LiveConversation::Found(CallConversation {
                id: CID.into(),
                participants,
                ..Default::default()
            }),
        )])
    }

    fn desired(entries: Vec<(Selector, &[(&str, &str)])>) -> DesiredState {
        DesiredState {
            input: crate::InputTable::default(),
            entries: entries
                .into_iter()
                .enumerate()
                .map(|(i, (selector, attrs))| DesiredEntry {
                    target: Target {
                        conversation_id: CID.into(),
                        selector,
                    },
                    attributes: attrs
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    lines: vec![i as u64 + 2],
                })
                .collect(),
            source: SourceInfo {
                path: "t.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
            warnings: vec![],
        }
    }

    fn customer() -> Selector {
        Selector::Purpose("customer".into())
    }

    fn actions(plan: &Plan) -> Vec<&Action> {
        plan.targets.iter().map(|t| &t.action).collect()
    }

    #[test]
    fn update_sets_changed_keys_clears_present_ones_and_ignores_unmanaged() {
        let live = live(vec![participant(
            "c",
            "customer",
            ParticipantState::Connected,
            &[
                ("tier", "silver"),
                ("old", "x"),
                ("keep", "me"),
                ("same", "v"),
            ],
        )]);
        let desired = desired(vec![(
            customer(),
            &[
                ("tier", "gold"),
                ("new", "n"),
                ("old", ""),
                ("gone", ""),
                ("same", "v"),
            ],
        )]);
        let plan = diff(&desired, &live);
        let Action::Update { set, clear } = &plan.targets[0].action else {
            panic!("expected an update: {plan:?}");
        };
        assert_eq!(set.keys().collect::<Vec<_>>(), ["new", "tier"]);
        assert_eq!(set["tier"].before.as_deref(), Some("silver"));
        assert_eq!(set["new"].before, None);
        assert_eq!(clear, &BTreeMap::from([("old".to_owned(), "x".to_owned())]));
        assert_eq!(plan.targets[0].participant_id.as_deref(), Some("c"));
        assert_eq!(
            plan.summary(),
            PlanSummary {
                to_update: 1,
                keys_set: 2,
                keys_cleared: 1,
                unchanged: 0,
                skipped: 0
            }
        );
    }

    #[test]
    fn purpose_selector_matches_every_participant_and_skips_gone_ones() {
        let live = live(vec![
            participant("a1", "agent", ParticipantState::Disconnected, &[]),
            participant("c", "customer", ParticipantState::Connected, &[]),
            participant("a2", "Agent", ParticipantState::Connected, &[("k", "v")]),
        ]);
        let plan = diff(
            &desired(vec![(Selector::Purpose("agent".into()), &[("k", "v")])]),
            &live,
        );
        assert_eq!(
            actions(&plan),
            [
                &Action::Skip {
                    reason: SkipReason::ParticipantNotLive
                },
                &Action::Unchanged
            ]
        );
        assert_eq!(plan.targets[1].participant_id.as_deref(), Some("a2"));
    }

    #[test]
    fn user_id_selector_uses_the_user_reference() {
        let mut agent = participant("a", "agent", ParticipantState::Connected, &[]);
        agent.user = Some(DomainEntityRef {
            id: Some(USER.into()),
            ..Default::default()
        });
        let live = live(vec![agent]);
        let plan = diff(
            &desired(vec![(Selector::UserId(USER.into()), &[("k", "v")])]),
            &live,
        );
        assert!(matches!(plan.targets[0].action, Action::Update { .. }));
    }

    #[test]
    fn missing_ended_and_unmatched_conversations_are_skipped_with_reasons() {
        let reason = |live: &LiveState, selector: Selector| {
            let plan = diff(&desired(vec![(selector, &[("k", "v")])]), live);
            match plan.targets[0].action {
                Action::Skip { reason } => reason,
                ref other => panic!("expected a skip, got {other:?}"),
            }
        };
        let not_found = LiveState::from([(CID.to_owned(), LiveConversation::NotFound)]);
        assert_eq!(
            reason(&not_found, customer()),
            SkipReason::ConversationNotFound
        );
        assert_eq!(
            reason(&LiveState::new(), customer()),
            SkipReason::LiveStateMissing
        );
        let ended = live(vec![participant(
            "c",
            "customer",
            ParticipantState::Terminated,
            &[],
        )]);
        assert_eq!(reason(&ended, customer()), SkipReason::ConversationEnded);
        assert_eq!(
            reason(&live(vec![]), customer()),
            SkipReason::ConversationEnded
        );
        let agent_only = live(vec![participant(
            "a",
            "agent",
            ParticipantState::Connected,
            &[],
        )]);
        assert_eq!(
            reason(&agent_only, customer()),
            SkipReason::SelectorMatchedNothing
        );
        assert_eq!(
            reason(&agent_only, Selector::ParticipantId("zz".into())),
            SkipReason::SelectorMatchedNothing
        );
    }

    #[test]
    fn conflicting_entries_on_one_participant_are_both_skipped_for_it_only() {
        let live = live(vec![
            participant("c", "customer", ParticipantState::Connected, &[]),
            participant("c2", "customer", ParticipantState::Connected, &[]),
        ]);
        let plan = diff(
            &desired(vec![
                (customer(), &[("tier", "gold")]),
                (Selector::ParticipantId("c".into()), &[("tier", "silver")]),
            ]),
            &live,
        );
        let conflict = Action::Skip {
            reason: SkipReason::ConflictingDesiredValues,
        };
        assert_eq!(plan.targets.len(), 3);
        assert_eq!(plan.targets[0].action, conflict);
        assert!(matches!(plan.targets[1].action, Action::Update { .. }));
        assert_eq!(plan.targets[1].participant_id.as_deref(), Some("c2"));
        assert_eq!(plan.targets[2].action, conflict);
    }

    #[test]
    fn agreeing_overlapping_entries_are_not_a_conflict() {
        let live = live(vec![participant(
            "c",
            "customer",
            ParticipantState::Connected,
            &[],
        )]);
        let plan = diff(
            &desired(vec![
                (customer(), &[("tier", "gold")]),
                (Selector::ParticipantId("c".into()), &[("tier", "gold")]),
            ]),
            &live,
        );
        assert!(
            plan.targets
                .iter()
                .all(|t| matches!(t.action, Action::Update { .. }))
        );
    }

    #[test]
    fn action_json_is_tagged_by_type() {
        let action = Action::Skip {
            reason: SkipReason::ParticipantNotLive,
        };
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"type":"skip","reason":"participant-not-live"}"#
        );
        let update = Action::Update {
            set: BTreeMap::from([(
                "k".to_owned(),
                Change {
                    before: None,
                    after: "v".into(),
                },
            )]),
            clear: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"type":"update","set":{"k":{"before":null,"after":"v"}},"clear":{}}"#
        );
    }

    #[test]
    fn stale_keys_are_those_whose_live_value_moved_since_the_plan() {
        let target = PlannedTarget {
            conversation_id: CID.into(),
            participant_id: Some("c".into()),
            selector: customer(),
            lines: vec![2],
            purpose: Some("customer".into()),
            action: Action::Update {
                set: BTreeMap::from([
                    (
                        "a".to_owned(),
                        Change {
                            before: None,
                            after: "1".into(),
                        },
                    ),
                    (
                        "b".to_owned(),
                        Change {
                            before: Some("x".into()),
                            after: "2".into(),
                        },
                    ),
                ]),
                clear: BTreeMap::from([("c".to_owned(), "old".to_owned())]),
            },
        };
        let unchanged_live: Attributes = [("a", ""), ("b", "x"), ("c", "old")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert!(target.stale_keys(&unchanged_live).is_empty());
        let moved: Attributes = [("a", "flow"), ("b", "x")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(target.stale_keys(&moved), ["a", "c"]);
    }
}
