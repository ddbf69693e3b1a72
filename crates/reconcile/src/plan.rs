//! The diff of a desired state against live conversations: a [`Plan`]. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use genesys_models::{Attributes, CallConversation, CallMediaParticipant};
use serde::{Deserialize, Serialize};

use crate::desired::{DesiredEntry, DesiredState, Selector};

/// What the caller fetched for one conversation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveConversation {
    Found(CallConversation),
    /// Genesys answered 404 `conversation.error.conversation.not.found`.
    NotFound,
    /// Known to have ended without a read of the call: analytics shows its `conversationEnd`,
    /// or an earlier run saw it end (a conversation that ended never becomes live again).
    Ended,
}

impl LiveConversation {
    /// Whether the conversation is over: ended (known, or every participant gone in the read).
    pub fn has_ended(&self) -> bool {
        match self {
            LiveConversation::Found(c) => has_ended(c),
            LiveConversation::NotFound => false,
            LiveConversation::Ended => true,
        }
    }
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
    /// Two input rows that reach this participant (e.g. through `purpose=customer` and the
    /// customer's `participant_id`) give one key different values. Neither can be preferred, so
    /// the participant is left alone; the skip's detail names the key and both lines.
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
        /// What exactly, where the reason alone does not say (a conflict's key and lines).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

impl Action {
    pub fn skip(reason: SkipReason) -> Self {
        Self::Skip {
            reason,
            detail: None,
        }
    }
}

/// One participant and what to do to it; or, when no participant could be matched, one input
/// entry and why it is left alone.
///
/// This is the identity every later step carries: apply executes exactly this, the audit row
/// records it, and result files map its `lines` back to the input rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub conversation_id: String,
    /// The matched participant; `None` when no participant could be matched.
    pub participant_id: Option<String>,
    /// Every selector of the input that reached this participant, in input order.
    pub selectors: Vec<Selector>,
    /// Input lines (or SQLite row ordinals) of every entry merged into this target, ascending.
    pub lines: Vec<u64>,
    /// Purpose of the matched participant.
    pub purpose: Option<String>,
    /// The managed keys and their desired values (`""` clears), merged from every entry.
    pub desired: Attributes,
    pub action: Action,
}

/// What executing a planned target against the call as read now comes to: the one re-check that
/// every path (a fresh plan, a saved plan, a resumed row, a re-read after a 409) goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// Nothing to send: the plan has no update for this target.
    NothingToSend,
    /// Every key of the update already reads as planned (e.g. applied by an earlier process).
    AlreadyDone,
    /// The call or participant is gone since the plan was made.
    Gone(SkipReason),
    /// Live values moved since the plan saw them: sending would overwrite a change nobody
    /// reviewed. Holds a description of the first moved key.
    Stale(String),
    /// Send exactly this body (the plan's set and clear keys).
    Send(Attributes),
}

impl PlannedTarget {
    /// A target pinned to a known participant, planned from recorded before-values (`None`:
    /// absent), e.g. an audit row written by an earlier process of a run. The same diff as
    /// [`diff`], with the recorded values standing in for a read.
    pub fn from_recorded(
        conversation_id: String,
        participant_id: String,
        purpose: Option<String>,
        selectors: Vec<Selector>,
        lines: Vec<u64>,
        desired: Attributes,
        before: &BTreeMap<String, Option<String>>,
    ) -> Self {
        let live: Attributes = before
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let action = diff_attributes(&desired, &live);
        Self {
            conversation_id,
            participant_id: Some(participant_id),
            selectors,
            lines,
            purpose,
            desired,
            action,
        }
    }

    /// Keys of an update whose live value is neither the plan's before-value nor its new value
    /// (absent and `""` count as the same): applying a saved plan must not overwrite a change
    /// made since. A key that already reads as planned is done, not stale.
    pub fn stale_keys<'a>(&'a self, live: &Attributes) -> Vec<&'a str> {
        let Action::Update { set, clear } = &self.action else {
            return Vec::new();
        };
        let stale_sets = set.iter().filter(|(k, c)| {
            let now = value_of(live, k);
            now != c.before.as_deref().unwrap_or("") && now != c.after
        });
        let stale_clears = clear.iter().filter(|(k, before)| {
            let now = value_of(live, k);
            now != before.as_str() && !now.is_empty()
        });
        stale_sets
            .map(|(k, _)| k.as_str())
            .chain(stale_clears.map(|(k, _)| k.as_str()))
            .collect()
    }

    /// The PATCH body of an update: its set keys with their new values, its cleared keys as `""`.
    pub fn patch_body(&self) -> Attributes {
        let Action::Update { set, clear } = &self.action else {
            return Attributes::new();
        };
        set.iter()
            .map(|(k, c)| (k.clone(), c.after.clone()))
            .chain(clear.keys().map(|k| (k.clone(), String::new())))
            .collect()
    }

    /// The live value of each managed key the plan saw (`None`: absent). For keys the plan does
    /// not change, that is their desired value.
    pub fn before_values(&self) -> BTreeMap<String, Option<String>> {
        let (set, clear) = match &self.action {
            Action::Update { set, clear } => (Some(set), Some(clear)),
            _ => (None, None),
        };
        self.desired
            .iter()
            .map(|(k, want)| {
                let before = if let Some(c) = set.and_then(|s| s.get(k)) {
                    c.before.clone()
                } else if let Some(was) = clear.and_then(|c| c.get(k)) {
                    Some(was.clone())
                } else {
                    Some(want.clone()).filter(|w| !w.is_empty())
                };
                (k.clone(), before)
            })
            .collect()
    }

    /// Re-checks this target against the conversation as read now. See [`Recheck`].
    pub fn recheck(&self, live: &LiveConversation) -> Recheck {
        if !matches!(self.action, Action::Update { .. }) {
            return Recheck::NothingToSend;
        }
        let participant = match live {
            LiveConversation::NotFound => return Recheck::Gone(SkipReason::ConversationNotFound),
            LiveConversation::Ended => return Recheck::Gone(SkipReason::ConversationEnded),
            LiveConversation::Found(c) if has_ended(c) => {
                return Recheck::Gone(SkipReason::ConversationEnded);
            }
            LiveConversation::Found(c) => self
                .participant_id
                .as_deref()
                .and_then(|pid| participant(c, pid)),
        };
        let Some(participant) = participant.filter(|p| !is_gone(p)) else {
            return Recheck::Gone(SkipReason::ParticipantNotLive);
        };
        let stale = self.stale_keys(&participant.attributes);
        if let Some(key) = stale.first() {
            let was = self.before_values().get(*key).cloned().flatten();
            let now = participant.attributes.get(*key);
            return Recheck::Stale(format!(
                "`{key}` is {} now but the plan saw {}",
                now.filter(|v| !v.is_empty())
                    .map_or("absent".to_owned(), |v| format!("{v:?}")),
                was.map_or("absent".to_owned(), |v| format!("{v:?}"))
            ));
        }
        let body = self.patch_body();
        if body
            .iter()
            .all(|(k, after)| value_of(&participant.attributes, k) == after)
        {
            return Recheck::AlreadyDone;
        }
        Recheck::Send(body)
    }

    /// How the managed keys read back compare with what was wanted. `observed` is the
    /// participant's attributes as read after the PATCH.
    pub fn verification(&self, observed: &Attributes) -> Verification {
        let before = self.before_values();
        let mut pending = false;
        for (key, want) in &self.desired {
            let now = value_of(observed, key);
            if now == want {
                continue;
            }
            let was = before.get(key).cloned().flatten().unwrap_or_default();
            if now != was {
                return Verification::Overwritten(key.clone());
            }
            pending = true;
        }
        if pending {
            Verification::NotYetVisible
        } else {
            Verification::Done
        }
    }

    /// [`Self::verification`] of a view known to be newer than a view that showed the write
    /// (events on one socket arrive in order): a key back at its value from before was
    /// overwritten too, not "not visible yet".
    pub fn verification_after_write(&self, observed: &Attributes) -> Verification {
        match self.verification(observed) {
            Verification::NotYetVisible => self
                .desired
                .iter()
                .find(|(key, want)| value_of(observed, key) != want.as_str())
                .map_or(Verification::Done, |(key, _)| {
                    Verification::Overwritten(key.clone())
                }),
            other => other,
        }
    }

    /// The live values of the managed keys (absent keys as `None`), as a view shows them.
    pub fn observed(&self, live: &Attributes) -> BTreeMap<String, Option<String>> {
        self.desired
            .keys()
            .map(|k| (k.clone(), live.get(k).cloned()))
            .collect()
    }
}

/// See [`PlannedTarget::verification`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every managed key reads as desired.
    Done,
    /// Some key still reads as before: 202 means accepted, so it may yet become visible.
    NotYetVisible,
    /// This key is neither what it was nor what was written: a flow or a person changed it.
    Overwritten(String),
}

/// A key's live value; absent reads as `""`, as Genesys has no delete.
fn value_of<'a>(attributes: &'a Attributes, key: &str) -> &'a str {
    attributes.get(key).map_or("", String::as_str)
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
    /// Targets two input rows give different values for one key: the input's fault, failed by
    /// `apply`.
    pub conflicts: usize,
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
                Action::Skip {
                    reason: SkipReason::ConflictingDesiredValues,
                    ..
                } => summary.conflicts += 1,
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

/// Diffs a desired state against the live state: the one diff of the codebase.
///
/// Every entry that reaches the same live participant is merged into one target (one PATCH per
/// participant); the same key with two values is a conflict and the participant is skipped.
/// Only managed keys are compared; clearing a key that is absent or already `""` is no change.
/// Targets follow the order in which the input first reaches them.
pub fn diff(desired: &DesiredState, live: &LiveState) -> Plan {
    diff_entries(&desired.to_entries(), live)
}

/// [`diff`] over entries, e.g. the entries of one conversation.
pub fn diff_entries(entries: &[DesiredEntry], live: &LiveState) -> Plan {
    enum Slot<'a> {
        Done(PlannedTarget),
        Participant {
            conversation: &'a CallConversation,
            index: usize,
            entries: Vec<&'a DesiredEntry>,
        },
    }
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(entries.len());
    // (conversation id, participant index) -> slot
    let mut by_participant: HashMap<(&str, usize), usize> = HashMap::new();
    for entry in entries {
        let unmatched = |reason| {
            Slot::Done(PlannedTarget {
                conversation_id: entry.target.conversation_id.clone(),
                participant_id: None,
                selectors: vec![entry.target.selector.clone()],
                lines: entry.lines.clone(),
                purpose: None,
                desired: entry.attributes.clone(),
                action: Action::skip(reason),
            })
        };
        let conversation = match live.get(&entry.target.conversation_id) {
            None => {
                slots.push(unmatched(SkipReason::LiveStateMissing));
                continue;
            }
            Some(LiveConversation::NotFound) => {
                slots.push(unmatched(SkipReason::ConversationNotFound));
                continue;
            }
            Some(LiveConversation::Ended) => {
                slots.push(unmatched(SkipReason::ConversationEnded));
                continue;
            }
            Some(LiveConversation::Found(c)) if has_ended(c) => {
                slots.push(unmatched(SkipReason::ConversationEnded));
                continue;
            }
            Some(LiveConversation::Found(c)) => c,
        };
        let mut matched_any = false;
        for (index, _) in matching(conversation, &entry.target.selector) {
            matched_any = true;
            let key = (entry.target.conversation_id.as_str(), index);
            match by_participant.get(&key) {
                Some(&slot) => {
                    if let Slot::Participant { entries, .. } = &mut slots[slot] {
                        entries.push(entry);
                    }
                }
                None => {
                    by_participant.insert(key, slots.len());
                    slots.push(Slot::Participant {
                        conversation,
                        index,
                        entries: vec![entry],
                    });
                }
            }
        }
        if !matched_any {
            slots.push(unmatched(SkipReason::SelectorMatchedNothing));
        }
    }
    let targets = slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Done(target) => target,
            Slot::Participant {
                conversation,
                index,
                entries,
            } => plan_participant(&conversation.participants[index], &entries),
        })
        .collect();
    Plan { targets }
}

/// The target of one live participant reached by `entries` (at least one).
fn plan_participant(
    participant: &CallMediaParticipant,
    entries: &[&DesiredEntry],
) -> PlannedTarget {
    let mut selectors: Vec<Selector> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    // key -> (value, the first line that wants it)
    let mut wanted: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    let mut conflict = None;
    for entry in entries {
        if !selectors.contains(&entry.target.selector) {
            selectors.push(entry.target.selector.clone());
        }
        lines.extend(&entry.lines);
        let line = entry.lines.first().copied().unwrap_or(0);
        for (key, value) in &entry.attributes {
            match wanted.get(key.as_str()) {
                Some((other, other_line)) if *other != value.as_str() => {
                    conflict.get_or_insert_with(|| {
                        format!(
                            "`{key}`: line {other_line} wants {other:?}, line {line} wants {value:?}"
                        )
                    });
                }
                Some(_) => {}
                None => {
                    wanted.insert(key, (value, line));
                }
            }
        }
    }
    lines.sort_unstable();
    lines.dedup();
    let desired: Attributes = wanted
        .into_iter()
        .map(|(k, (v, _))| (k.to_owned(), v.to_owned()))
        .collect();
    let action = if is_gone(participant) {
        Action::skip(SkipReason::ParticipantNotLive)
    } else if let Some(detail) = conflict {
        Action::Skip {
            reason: SkipReason::ConflictingDesiredValues,
            detail: Some(detail),
        }
    } else {
        diff_attributes(&desired, &participant.attributes)
    };
    PlannedTarget {
        conversation_id: entries[0].target.conversation_id.clone(),
        participant_id: Some(participant.id.clone()),
        selectors,
        lines,
        purpose: participant.purpose.clone(),
        desired,
        action,
    }
}

fn diff_attributes(desired: &Attributes, live: &Attributes) -> Action {
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

/// The participant has left the call (disconnected or terminated).
pub fn is_gone(participant: &CallMediaParticipant) -> bool {
    participant.state.as_ref().is_some_and(|s| s.is_gone())
}

/// A call has ended when every participant has left. A call with no participants yet (an event
/// of a call being set up) has not: nobody has left it.
pub fn has_ended(conversation: &CallConversation) -> bool {
    !conversation.participants.is_empty() && conversation.participants.iter().all(is_gone)
}

/// A participant of a call by id (ids compare case-insensitively), whatever its state: the one
/// way a read or an event's view of a call is searched for a participant.
pub fn participant<'a>(call: &'a CallConversation, id: &str) -> Option<&'a CallMediaParticipant> {
    call.participants
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id))
}

impl LiveConversation {
    /// [`participant`] of a call that was found.
    pub fn participant(&self, id: &str) -> Option<&CallMediaParticipant> {
        match self {
            LiveConversation::Found(call) => participant(call, id),
            LiveConversation::NotFound | LiveConversation::Ended => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{SourceFormat, SourceInfo, Target};
    use genesys_models::{DomainEntityRef, ParticipantState};

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
        DesiredState::from_entries(
            entries
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
            SourceInfo {
                path: "t.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
        )
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
                skipped: 0,
                conflicts: 0,
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
                &Action::skip(SkipReason::ParticipantNotLive),
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
                Action::Skip { reason, .. } => reason,
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
        // A call nobody has left has not ended, even with no participants yet (an event of a
        // call being set up): there is simply nobody to select.
        assert_eq!(
            reason(&live(vec![]), customer()),
            SkipReason::SelectorMatchedNothing
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
    fn conflicting_entries_on_one_participant_skip_it_naming_both_lines_and_spare_others() {
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
        assert_eq!(plan.targets.len(), 2, "{plan:#?}");
        assert_eq!(plan.targets[0].participant_id.as_deref(), Some("c"));
        assert_eq!(plan.targets[0].lines, [2, 3]);
        assert_eq!(
            plan.targets[0].action,
            Action::Skip {
                reason: SkipReason::ConflictingDesiredValues,
                detail: Some(r#"`tier`: line 2 wants "gold", line 3 wants "silver""#.into()),
            }
        );
        assert!(matches!(plan.targets[1].action, Action::Update { .. }));
        assert_eq!(plan.targets[1].participant_id.as_deref(), Some("c2"));
        assert_eq!(plan.targets[1].lines, [2]);
    }

    #[test]
    fn entries_reaching_one_participant_are_one_target_with_every_key_and_line() {
        let live = live(vec![participant(
            "c",
            "customer",
            ParticipantState::Connected,
            &[("kb", "old")],
        )]);
        let plan = diff(
            &desired(vec![
                (customer(), &[("ka", "1"), ("shared", "s")]),
                (
                    Selector::ParticipantId("c".into()),
                    &[("kb", "2"), ("shared", "s")],
                ),
            ]),
            &live,
        );
        assert_eq!(plan.targets.len(), 1, "{plan:#?}");
        let target = &plan.targets[0];
        assert_eq!(target.lines, [2, 3]);
        assert_eq!(
            target.selectors,
            [customer(), Selector::ParticipantId("c".into())]
        );
        assert_eq!(
            target.patch_body(),
            Attributes::from([
                ("ka".to_owned(), "1".to_owned()),
                ("kb".to_owned(), "2".to_owned()),
                ("shared".to_owned(), "s".to_owned()),
            ])
        );
        assert_eq!(target.desired.len(), 3);
    }

    #[test]
    fn action_json_is_tagged_by_type() {
        let action = Action::skip(SkipReason::ParticipantNotLive);
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

    fn planned(
        set: &[(&str, Option<&str>, &str)],
        clear: &[(&str, &str)],
        unchanged: &[(&str, &str)],
    ) -> PlannedTarget {
        let mut desired: Attributes = unchanged
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        desired.extend(set.iter().map(|(k, _, v)| ((*k).into(), (*v).into())));
        desired.extend(clear.iter().map(|(k, _)| ((*k).into(), String::new())));
        PlannedTarget {
            conversation_id: CID.into(),
            participant_id: Some("c".into()),
            selectors: vec![customer()],
            lines: vec![2],
            purpose: Some("customer".into()),
            desired,
            action: Action::Update {
                set: set
                    .iter()
                    .map(|(k, before, after)| {
                        (
                            (*k).to_owned(),
                            Change {
                                before: before.map(str::to_owned),
                                after: (*after).into(),
                            },
                        )
                    })
                    .collect(),
                clear: clear
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn stale_keys_are_those_whose_live_value_moved_since_the_plan() {
        let target = planned(
            &[("a", None, "1"), ("b", Some("x"), "2")],
            &[("c", "old")],
            &[],
        );
        assert!(
            target
                .stale_keys(&attrs(&[("a", ""), ("b", "x"), ("c", "old")]))
                .is_empty()
        );
        // `c` was to be cleared and is absent: done, not stale.
        assert_eq!(
            target.stale_keys(&attrs(&[("a", "flow"), ("b", "x")])),
            ["a"]
        );
        assert_eq!(
            target.stale_keys(&attrs(&[("a", ""), ("b", "x"), ("c", "flow")])),
            ["c"]
        );
        assert!(
            target
                .stale_keys(&attrs(&[("a", "1"), ("b", "2")]))
                .is_empty(),
            "keys that already read as planned are done, not stale"
        );
    }

    #[test]
    fn recheck_sends_exactly_the_plans_keys_or_says_why_not() {
        let target = planned(&[("a", None, "1")], &[("c", "old")], &[("same", "v")]);
        let now = |attributes: &[(&str, &str)], state| {
            live(vec![participant("c", "customer", state, attributes)])
                .remove(CID)
                .unwrap()
        };
        assert_eq!(
            target.recheck(&now(
                &[("c", "old"), ("same", "v")],
                ParticipantState::Connected
            )),
            Recheck::Send(attrs(&[("a", "1"), ("c", "")]))
        );
        assert_eq!(
            target.recheck(&now(&[("c", "new")], ParticipantState::Connected)),
            Recheck::Stale(r#"`c` is "new" now but the plan saw "old""#.into())
        );
        assert_eq!(
            target.recheck(&now(
                &[("a", "1"), ("same", "v")],
                ParticipantState::Connected
            )),
            Recheck::AlreadyDone
        );
        assert_eq!(
            target.recheck(&now(
                &[("a", "1"), ("c", "old")],
                ParticipantState::Connected
            )),
            Recheck::Send(attrs(&[("a", "1"), ("c", "")])),
            "half done: the plan's keys are sent again (idempotent)"
        );
        assert_eq!(
            target.recheck(&now(&[("c", "old")], ParticipantState::Terminated)),
            Recheck::Gone(SkipReason::ConversationEnded)
        );
        assert_eq!(
            target.recheck(&LiveConversation::NotFound),
            Recheck::Gone(SkipReason::ConversationNotFound)
        );
        let mut other = participant("c", "customer", ParticipantState::Disconnected, &[]);
        other.id = "c".into();
        let left = live(vec![
            other,
            participant("a", "agent", ParticipantState::Connected, &[]),
        ])
        .remove(CID)
        .unwrap();
        assert_eq!(
            target.recheck(&left),
            Recheck::Gone(SkipReason::ParticipantNotLive)
        );
        let mut unchanged = target.clone();
        unchanged.action = Action::Unchanged;
        assert_eq!(
            unchanged.recheck(&now(&[], ParticipantState::Connected)),
            Recheck::NothingToSend
        );
    }

    #[test]
    fn verification_tells_done_from_lagging_from_overwritten() {
        let target = planned(
            &[("a", Some("old"), "new")],
            &[("c", "x")],
            &[("same", "v")],
        );
        assert_eq!(
            target.verification(&attrs(&[("a", "new"), ("same", "v")])),
            Verification::Done
        );
        assert_eq!(
            target.verification(&attrs(&[("a", "old"), ("c", "x"), ("same", "v")])),
            Verification::NotYetVisible
        );
        assert_eq!(
            target.verification(&attrs(&[("a", "flow"), ("same", "v")])),
            Verification::Overwritten("a".into())
        );
        assert_eq!(
            target.verification(&attrs(&[("a", "new"), ("same", "changed")])),
            Verification::Overwritten("same".into())
        );
    }
}
