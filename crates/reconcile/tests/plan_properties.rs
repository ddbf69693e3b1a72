//! Properties of the diff over generated desired and live states.

use std::collections::BTreeMap;

use genesys_models::{CallConversation, CallMediaParticipant, DomainEntityRef, ParticipantState};
use proptest::prelude::*;

use reconcile::{
    Action, DesiredEntry, DesiredState, LiveConversation, LiveState, Selector, SourceFormat,
    SourceInfo, Target, diff,
};

const MANAGED_KEYS: [&str; 3] = ["k0", "k1", "k2"];
/// Keys only ever present live: never managed by the desired state.
const UNMANAGED_KEYS: [&str; 2] = ["x0", "x1"];

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "b"]).prop_map(str::to_owned)
}

fn participant(index: usize) -> impl Strategy<Value = CallMediaParticipant> {
    let keys: Vec<&str> = MANAGED_KEYS
        .iter()
        .chain(&UNMANAGED_KEYS)
        .copied()
        .collect();
    (
        prop::sample::select(vec!["customer", "agent", "acd"]),
        prop::option::of(prop::sample::select(vec![
            ParticipantState::Connected,
            ParticipantState::Alerting,
            ParticipantState::Disconnected,
            ParticipantState::Terminated,
        ])),
        prop::option::of(prop::sample::select(vec!["u0", "u1"])),
        prop::collection::btree_map(
            prop::sample::select(keys).prop_map(str::to_owned),
            value(),
            0..4,
        ),
    )
        .prop_map(
            move |(purpose, state, user, attributes)| CallMediaParticipant {
                id: format!("p{index}"),
                purpose: Some(purpose.to_owned()),
                state,
                user: user.map(|u| DomainEntityRef {
                    id: Some(u.to_owned()),
                    ..Default::default()
                }),
                attributes,
                ..Default::default()
            },
        )
}

fn conversation(cid: &'static str) -> impl Strategy<Value = (String, LiveConversation)> {
    let found = (0usize..4)
        .prop_flat_map(|n| (0..n).map(participant).collect::<Vec<_>>())
        .prop_map(move |participants| {
            LiveConversation::Found(CallConversation {
                id: cid.to_owned(),
                participants,
                ..Default::default()
            })
        });
    prop_oneof![9 => found, 1 => Just(LiveConversation::NotFound)]
        .prop_map(move |c| (cid.to_owned(), c))
}

fn live_state() -> impl Strategy<Value = LiveState> {
    // c3 is never fetched: its entries must be skipped, not invented.
    (conversation("c0"), conversation("c1"), conversation("c2"))
        .prop_map(|(a, b, c)| LiveState::from([a, b, c]))
}

fn selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        (0..5usize).prop_map(|i| Selector::ParticipantId(format!("p{i}"))),
        prop::sample::select(vec!["customer", "agent", "ivr"])
            .prop_map(|p| Selector::Purpose(p.to_owned())),
        prop::sample::select(vec!["u0", "u1", "u9"]).prop_map(|u| Selector::UserId(u.to_owned())),
    ]
}

fn desired_state() -> impl Strategy<Value = DesiredState> {
    let entry = (
        prop::sample::select(vec!["c0", "c1", "c2", "c3"]),
        selector(),
        prop::collection::btree_map(
            prop::sample::select(MANAGED_KEYS.to_vec()).prop_map(str::to_owned),
            value(),
            1..4,
        ),
    );
    prop::collection::vec(entry, 0..8).prop_map(|entries| {
        DesiredState::from_entries(
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (cid, selector, attributes))| DesiredEntry {
                    target: Target {
                        conversation_id: cid.to_owned(),
                        selector,
                    },
                    attributes,
                    // A unique line per entry lets a planned target be traced back to its entry.
                    lines: vec![i as u64 + 2],
                })
                .collect(),
            SourceInfo {
                path: "generated.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
        )
    })
}

/// Writes every update of the plan into the live state, as a successful apply would.
fn apply(plan: &reconcile::Plan, live: &mut LiveState) {
    for target in &plan.targets {
        let Action::Update { set, clear } = &target.action else {
            continue;
        };
        let Some(LiveConversation::Found(conversation)) = live.get_mut(&target.conversation_id)
        else {
            panic!("an update for a conversation that is not live: {target:?}");
        };
        let participant = conversation
            .participants
            .iter_mut()
            .find(|p| Some(&p.id) == target.participant_id.as_ref())
            .expect("an update names a live participant");
        for (key, change) in set {
            participant
                .attributes
                .insert(key.clone(), change.after.clone());
        }
        for key in clear.keys() {
            participant.attributes.insert(key.clone(), String::new());
        }
    }
}

/// The keys of every entry merged into a target (each entry has one unique line).
fn entry_keys(desired: &DesiredState, lines: &[u64]) -> Vec<String> {
    desired
        .entries()
        .filter(|e| lines.contains(&e.lines[0]))
        .flat_map(|e| e.attributes.into_keys())
        .collect()
}

proptest! {
    #[test]
    fn applying_a_plans_updates_leaves_nothing_to_update(
        desired in desired_state(),
        mut live in live_state(),
    ) {
        let plan = diff(&desired, &live);
        apply(&plan, &mut live);
        let next = diff(&desired, &live);
        for target in &next.targets {
            prop_assert!(
                matches!(target.action, Action::Unchanged | Action::Skip { .. }),
                "still to update after apply: {target:?}"
            );
        }
        prop_assert_eq!(next.targets.len(), plan.targets.len());
    }

    #[test]
    fn unmanaged_keys_never_appear_in_a_plan(
        desired in desired_state(),
        live in live_state(),
    ) {
        for target in diff(&desired, &live).targets {
            if let Action::Update { set, clear } = &target.action {
                let managed = entry_keys(&desired, &target.lines);
                for key in set.keys().chain(clear.keys()) {
                    prop_assert!(managed.contains(key), "{key} is not managed: {target:?}");
                }
            }
        }
    }

    #[test]
    fn an_update_always_changes_something(
        desired in desired_state(),
        live in live_state(),
    ) {
        for target in diff(&desired, &live).targets {
            if let Action::Update { set, clear } = &target.action {
                prop_assert!(!set.is_empty() || !clear.is_empty(), "empty update: {target:?}");
                for change in set.values() {
                    prop_assert_ne!(change.before.as_ref(), Some(&change.after));
                }
            }
        }
    }

    #[test]
    fn every_entry_yields_at_least_one_planned_target(
        desired in desired_state(),
        live in live_state(),
    ) {
        let plan = diff(&desired, &live);
        let mut per_line: BTreeMap<u64, usize> = BTreeMap::new();
        for target in &plan.targets {
            for line in &target.lines {
                *per_line.entry(*line).or_default() += 1;
            }
        }
        prop_assert_eq!(per_line.len(), desired.len());
    }

    #[test]
    fn one_target_per_live_participant(
        desired in desired_state(),
        live in live_state(),
    ) {
        let plan = diff(&desired, &live);
        let mut seen = std::collections::HashSet::new();
        for target in &plan.targets {
            if let Some(pid) = &target.participant_id {
                prop_assert!(
                    seen.insert((target.conversation_id.clone(), pid.clone())),
                    "two targets for one participant: {:?}", plan.targets
                );
            }
        }
    }

    #[test]
    fn a_target_wants_exactly_its_entries_values_or_is_a_named_conflict(
        desired in desired_state(),
        live in live_state(),
    ) {
        for target in diff(&desired, &live).targets {
            let merged = desired.entries().filter(|e| {
                target.lines.contains(&e.lines[0])
            });
            let mut conflict = false;
            for entry in merged {
                for (key, value) in &entry.attributes {
                    match target.desired.get(key) {
                        Some(v) if v == value => {}
                        Some(_) => conflict = true,
                        None => prop_assert!(false, "{key} missing from {target:?}"),
                    }
                }
            }
            if conflict && target.participant_id.is_some() {
                let is_conflict = matches!(
                    &target.action,
                    Action::Skip { reason: reconcile::SkipReason::ConflictingDesiredValues, detail: Some(_) }
                        | Action::Skip { reason: reconcile::SkipReason::ParticipantNotLive, .. }
                );
                prop_assert!(is_conflict, "conflict not reported: {target:?}");
            }
        }
    }
}
