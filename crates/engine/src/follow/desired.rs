//! What a follow wants of each call: the one desired state of `tag --follow` (one row for every
//! call of the followed queues) and of `reconcile SOURCE --follow` (rows keyed by conversation
//! id, from the source). Pure: no I/O.
//!
//! A call's entries are found by lookups, one per kind of row: rows of every call, rows of its
//! conversation id, then rows that select calls by number, matched from the call's numbers and
//! queues ([`CallView`]: from its event, or from the listing that found it).

use std::collections::{BTreeMap, HashMap};

use genesys_core::models::{AnalyticsConversation, Attributes, CallConversation};
use reconcile::call_numbers::{self, CallNumbers};
use reconcile::number::Region;
use reconcile::{DesiredEntry, DesiredState, NumberRules, Selector, Target};
use uuid::Uuid;

/// A follow's desired state, per call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowDesired {
    /// Rows of one conversation each, by lowercase conversation id.
    by_conversation: HashMap<String, Vec<DesiredEntry>>,
    /// Rows that apply to every call of the followed queues (`tag --follow k=v`).
    every_call: Vec<(Selector, Attributes)>,
    /// Rows that select calls by number, matched from each call's [`CallView`].
    rules: NumberRules,
}

/// What rows by number are matched with: a call's numbers and queues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallView {
    pub numbers: CallNumbers,
    pub queues: Vec<Uuid>,
}

impl CallView {
    /// From a queue event (or a read): its customer's and dialled numbers, its participants'
    /// queues.
    pub fn of_call(call: &CallConversation, region: Option<Region>) -> Self {
        let mut queues: Vec<Uuid> = Vec::new();
        let queue_ids = call
            .participants
            .iter()
            .filter_map(|p| p.queue.as_ref().and_then(|q| q.id.as_deref()));
        for queue in queue_ids {
            if let Ok(id) = Uuid::try_parse(queue)
                && !queues.contains(&id)
            {
                queues.push(id);
            }
        }
        Self {
            numbers: call_numbers::of_call(call, region),
            queues,
        }
    }

    /// From the analytics listing of live calls (a backfill): its sessions' numbers, its
    /// segments' queues.
    pub fn of_listing(call: &AnalyticsConversation, region: Option<Region>) -> Self {
        Self {
            numbers: call_numbers::of_analytics(call, region),
            queues: crate::live::queue_ids_of(call)
                .iter()
                .filter_map(|q| Uuid::try_parse(q).ok())
                .collect(),
        }
    }
}

/// The calls a new desired state concerns.
#[derive(Debug, PartialEq, Eq)]
pub enum Concerned {
    /// A row of every call changed: every call.
    Every,
    /// These conversations (sorted), and the calls the rules by number `rules` (indexes into
    /// the new state's) match.
    Conversations { ids: Vec<String>, rules: Vec<usize> },
}

/// The one place a [`DesiredState`]'s entries are read (its storage is the reconcile crate's).
fn entries_of(desired: &DesiredState) -> Vec<DesiredEntry> {
    desired.to_entries()
}

impl FollowDesired {
    /// One row for every call: the participants `selector` reaches get `attributes`.
    pub fn every_call(selector: Selector, attributes: Attributes) -> Self {
        Self {
            by_conversation: HashMap::new(),
            every_call: vec![(selector, attributes)],
            rules: NumberRules::default(),
        }
    }

    /// The rows of a source's desired state (its rules by number are moved, not copied).
    pub fn from_state(mut desired: DesiredState) -> Self {
        let mut follow = Self::from_entries(entries_of(&desired));
        follow.rules = desired.take_number_rules();
        follow
    }

    /// Whether some rows select calls by number (only then are calls' numbers read).
    pub fn has_number_rows(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whose national numbers the rows by number were read as: calls' numbers are read so too.
    pub fn region(&self) -> Option<Region> {
        self.rules.region()
    }

    /// Rows of conversation ids.
    pub fn from_entries(entries: impl IntoIterator<Item = DesiredEntry>) -> Self {
        let mut by_conversation: HashMap<String, Vec<DesiredEntry>> = HashMap::new();
        for entry in entries {
            by_conversation
                .entry(entry.target.conversation_id.to_lowercase())
                .or_default()
                .push(entry);
        }
        Self {
            by_conversation,
            every_call: Vec::new(),
            rules: NumberRules::default(),
        }
    }

    /// Rows (targets) of the desired state, for the run's summary: by conversation id, of
    /// every call, and by number.
    pub fn rows(&self) -> usize {
        self.by_conversation.values().map(Vec::len).sum::<usize>()
            + self.every_call.len()
            + self.rules.len()
    }

    /// Whether a row may concern this call, seen as `view` (its numbers and queues, when
    /// known): a call no row concerns is not read (a backfill lists it and keeps it in mind, in
    /// case a later version names it).
    pub fn may_concern(&self, conversation_id: &str, view: Option<&CallView>) -> bool {
        !self.every_call.is_empty()
            || self.by_conversation.contains_key(conversation_id)
            || view.is_some_and(|view| !self.rules.matching(&view.numbers, &view.queues).is_empty())
    }

    /// The rules by number a new state changed that match a call seen as `view`.
    pub fn matches_any(&self, rules: &[usize], view: &CallView) -> bool {
        self.rules
            .matching(&view.numbers, &view.queues)
            .iter()
            .any(|i| rules.binary_search(i).is_ok())
    }

    /// Every entry for one call (lowercase id): the rows of every call, the rows of its
    /// conversation, then the rows by number that its `view` matches.
    pub fn for_call(&self, conversation_id: &str, view: Option<&CallView>) -> Vec<DesiredEntry> {
        let every = self
            .every_call
            .iter()
            .map(|(selector, attributes)| DesiredEntry {
                target: Target {
                    conversation_id: conversation_id.to_owned(),
                    selector: selector.clone(),
                },
                attributes: attributes.clone(),
                lines: Vec::new(),
            });
        let own = self
            .by_conversation
            .get(conversation_id)
            .into_iter()
            .flatten()
            .cloned();
        let numbered = view
            .map(|view| {
                self.rules
                    .entries_for(conversation_id, &view.numbers, &view.queues)
            })
            .unwrap_or_default();
        every.chain(own).chain(numbered).collect()
    }

    /// The calls whose desired values `new` changes: an entry (a conversation and a selector)
    /// added, or a key with a new value. Entries or keys only removed concern no call: those
    /// keys are no longer managed, and nothing is written for them.
    pub fn concerned_by(&self, new: &Self) -> Concerned {
        if new.every_call != self.every_call && !new.every_call.is_empty() {
            return Concerned::Every;
        }
        let mut changed: Vec<String> = new
            .by_conversation
            .iter()
            .filter(|(cid, entries)| {
                let old: BTreeMap<&Selector, &Attributes> = self
                    .by_conversation
                    .get(*cid)
                    .into_iter()
                    .flatten()
                    .map(|e| (&e.target.selector, &e.attributes))
                    .collect();
                entries.iter().any(|entry| {
                    let before = old.get(&entry.target.selector);
                    entry
                        .attributes
                        .iter()
                        .any(|(key, value)| before.and_then(|b| b.get(key)) != Some(value))
                })
            })
            .map(|(cid, _)| cid.clone())
            .collect();
        changed.sort();
        Concerned::Conversations {
            ids: changed,
            rules: new.rules.changed_since(&self.rules),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a0000000-0000-4000-8000-000000000001";
    const B: &str = "b0000000-0000-4000-8000-000000000002";

    /// A conversation, a purpose and its keys and values.
    type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn state(rows: &[Row<'_>]) -> FollowDesired {
        FollowDesired::from_entries(rows.iter().zip(2..).map(
            |((cid, purpose, attributes), line)| {
                DesiredEntry {
                    target: Target {
                        conversation_id: (*cid).to_owned(),
                        selector: Selector::Purpose((*purpose).to_owned()),
                    },
                    attributes: attributes
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    lines: vec![line],
                }
            },
        ))
    }

    #[test]
    fn a_call_gets_the_rows_of_every_call_and_its_own() {
        let tag = FollowDesired::every_call(
            Selector::Purpose("customer".into()),
            Attributes::from([("campaign".into(), "spring".into())]),
        );
        let entries = tag.for_call(A, None);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].target.conversation_id, A);
        assert!(tag.may_concern(B, None));

        let source = state(&[(A, "customer", &[("tier", "gold")])]);
        assert_eq!(source.for_call(A, None)[0].attributes["tier"], "gold");
        assert!(source.for_call(B, None).is_empty());
        assert!(!source.may_concern(B, None), "no row names B");
    }

    #[test]
    fn only_added_or_changed_values_concern_a_call() {
        let old = state(&[
            (A, "customer", &[("tier", "gold"), ("campaign", "spring")]),
            (B, "customer", &[("tier", "silver")]),
        ]);
        assert_eq!(
            old.concerned_by(&old),
            Concerned::Conversations {
                ids: vec![],
                rules: vec![]
            }
        );
        // A key removed from A, B's row removed: nothing to write.
        let fewer = state(&[(A, "customer", &[("tier", "gold")])]);
        assert_eq!(
            old.concerned_by(&fewer),
            Concerned::Conversations {
                ids: vec![],
                rules: vec![]
            }
        );
        // A new value for A, a new selector for B.
        let new = state(&[
            (
                A,
                "customer",
                &[("tier", "platinum"), ("campaign", "spring")],
            ),
            (B, "customer", &[("tier", "silver")]),
            (B, "agent", &[("team", "north")]),
        ]);
        assert_eq!(
            old.concerned_by(&new),
            Concerned::Conversations {
                ids: vec![A.to_owned(), B.to_owned()],
                rules: vec![]
            }
        );
    }
}
