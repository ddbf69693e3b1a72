//! A desired state's rows that select calls by phone number (`customer_number`,
//! `dialed_number`, optionally with a `queue_id`) instead of naming a conversation: rules that
//! become entries of the calls they match, once those calls are known (from the analytics
//! listing of live calls, or from a call's event).

use std::collections::BTreeSet;
use std::fmt;

use uuid::Uuid;

use crate::call_numbers::CallNumbers;
use crate::desired::DesiredEntry;
use crate::number::Region;
use crate::store::{EntryStore, RuleKey};

/// The numbered rows, merged per rule, with an index by number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberRules {
    store: Box<EntryStore<RuleKey>>,
    /// (customer number's digits, rule), sorted: the rules that name a customer number.
    by_customer: Vec<(u64, u32)>,
    /// (dialled number's digits, rule), sorted: the rules that name only a dialled number.
    by_dialed: Vec<(u64, u32)>,
    /// Whose national numbers the rows' numbers were read as: a call's are read the same way.
    region: Option<Region>,
}

impl NumberRules {
    /// The rules of `store` (its index kept: a new version is compared with it, rule by rule).
    pub(crate) fn new(store: EntryStore<RuleKey>, region: Option<Region>) -> Self {
        let (mut by_customer, mut by_dialed) = (Vec::new(), Vec::new());
        for i in 0..store.len() {
            let key = store.key(i);
            match (key.customer, key.dialed) {
                (Some(customer), _) => by_customer.push((customer.digits(), i as u32)),
                (None, Some(dialed)) => by_dialed.push((dialed.digits(), i as u32)),
                (None, None) => {}
            }
        }
        by_customer.sort_unstable();
        by_dialed.sort_unstable();
        Self {
            store: Box::new(store),
            by_customer,
            by_dialed,
            region,
        }
    }

    /// Whose national numbers the rows were read as (`--default-region`): read a call's
    /// numbers with it too.
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// How many rules (numbered targets) there are.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// The rules a call matches, in input order: its customer's number (and dialled number,
    /// when the rule names both) and, when the rule names a queue, one of the call's queues.
    pub fn matching(&self, numbers: &CallNumbers, queues: &[Uuid]) -> Vec<usize> {
        let of = |index: &[(u64, u32)], digits: u64| {
            let start = index.partition_point(|(d, _)| *d < digits);
            index[start..]
                .iter()
                .take_while(move |(d, _)| *d == digits)
                .map(|(_, i)| *i as usize)
                .collect::<Vec<_>>()
        };
        let mut found: Vec<usize> = numbers
            .customer
            .iter()
            .flat_map(|number| of(&self.by_customer, number.digits()))
            .chain(
                numbers
                    .dialed
                    .into_iter()
                    .flat_map(|number| of(&self.by_dialed, number.digits())),
            )
            .filter(|&i| {
                let key = self.store.key(i);
                key.dialed
                    .is_none_or(|dialed| numbers.dialed == Some(dialed))
                    && key
                        .queue
                        .is_none_or(|queue| queues.contains(&self.store.queue(queue)))
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Rule `i` as an entry of the call `conversation_id`.
    pub fn entry_for(&self, i: usize, conversation_id: &str) -> DesiredEntry {
        self.store.entry_of(i, conversation_id.to_owned())
    }

    /// Every entry a call gets from the rules it matches.
    pub fn entries_for(
        &self,
        conversation_id: &str,
        numbers: &CallNumbers,
        queues: &[Uuid],
    ) -> Vec<DesiredEntry> {
        self.matching(numbers, queues)
            .into_iter()
            .map(|i| self.entry_for(i, conversation_id))
            .collect()
    }

    /// The rules of `self` whose values differ from `old`'s: new rules, and rules with a key
    /// whose value is new. A rule or key only removed is no longer managed: not a change.
    pub fn changed_since(&self, old: &NumberRules) -> Vec<usize> {
        let names = old.store.names_of(&self.store);
        (0..self.store.len())
            .filter(|&i| {
                let Some(key) = names.key(self.store.key(i)) else {
                    return true;
                };
                // A new version mostly keeps the rows' order: the rule at the same index is
                // looked at first, in step through both (a hash lookup is a cache miss).
                let same_place = i < old.store.len() && old.store.key(i) == key;
                let j = if same_place {
                    Some(i)
                } else {
                    old.store.find(&key)
                };
                match j {
                    None => true,
                    Some(j) => self.store.pairs_of(i).any(|(name, value)| {
                        old.store.value_of(j, name).map(|(v, _)| v) != Some(value)
                    }),
                }
            })
            .collect()
    }

    /// The queues the rules name, when every rule names one: only those queues' calls can
    /// match, so only they need listing. Taken from the rules themselves (a row refused after
    /// its queue was interned names none).
    pub fn queues(&self) -> Option<Vec<Uuid>> {
        let mut named = BTreeSet::new();
        for i in 0..self.store.len() {
            named.insert(self.store.key(i).queue?);
        }
        Some(named.into_iter().map(|q| self.store.queue(q)).collect())
    }

    /// Number of (rule, key) pairs.
    pub fn key_count(&self) -> usize {
        (0..self.store.len())
            .map(|i| self.store.pairs_of(i).count())
            .sum()
    }

    /// The input lines of rule `i`, ascending.
    pub fn lines(&self, i: usize) -> Vec<u64> {
        self.store.lines(i).collect()
    }

    /// What rule `i` selects, as its problems and reports name it.
    pub fn describe(&self, i: usize) -> String {
        RuleText(&self.store, self.store.key(i)).to_string()
    }
}

/// A rule as text: `customer_number=+15551234567 purpose=customer`.
pub(crate) struct RuleText<'a>(pub &'a EntryStore<RuleKey>, pub RuleKey);

impl fmt::Display for RuleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RuleText(store, key) = self;
        let mut parts = Vec::new();
        if let Some(number) = key.customer {
            parts.push(format!("customer_number={number}"));
        }
        if let Some(number) = key.dialed {
            parts.push(format!("dialed_number={number}"));
        }
        if let Some(queue) = key.queue {
            parts.push(format!("queue_id={}", store.queue(queue)));
        }
        parts.push(store.selector(key.selector).to_string());
        write!(f, "calls with {}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::parse;
    use crate::store::SelectorKey;

    /// A rule's customer number, dialled number, queue and tier.
    type Row<'a> = (Option<&'a str>, Option<&'a str>, Option<Uuid>, &'a str);

    fn rules(rows: &[Row<'_>]) -> NumberRules {
        let rows: Vec<_> = rows.iter().map(|row| ("customer", *row)).collect();
        rules_of_purposes(&rows)
    }

    /// Rules of the purposes given, interned in the order of their rows.
    fn rules_of_purposes(rows: &[(&str, Row<'_>)]) -> NumberRules {
        let mut store = EntryStore::<RuleKey>::default();
        for (line, (purpose, (customer, dialed, queue, tier))) in rows.iter().enumerate() {
            let purpose = SelectorKey::Purpose(store.intern_purpose(purpose));
            let key = RuleKey {
                customer: customer.map(|n| parse(n, None).unwrap()),
                dialed: dialed.map(|n| parse(n, None).unwrap()),
                queue: queue.map(|queue| store.intern_queue(queue)),
                selector: store.intern_selector(purpose),
            };
            store
                .insert(key, line as u64 + 2, [("tier", *tier)].into_iter())
                .unwrap();
        }
        NumberRules::new(store, None)
    }

    fn call(customer: &[&str], dialed: Option<&str>) -> CallNumbers {
        CallNumbers {
            customer: customer.iter().map(|n| parse(n, None).unwrap()).collect(),
            dialed: dialed.map(|n| parse(n, None).unwrap()),
        }
    }

    #[test]
    fn a_call_matches_the_rules_of_its_numbers_and_queue() {
        let queue = Uuid::from_u128(7);
        let rules = rules(&[
            (Some("+15551230001"), None, None, "gold"),
            (None, Some("+18005550100"), None, "spring"),
            (Some("+15551230002"), Some("+18005550100"), None, "both"),
            (None, Some("+18005550100"), Some(queue), "queue"),
            (Some("+15551230003"), None, None, "other"),
        ]);
        let inbound = call(&["+15551230001"], Some("+18005550100"));
        assert_eq!(rules.matching(&inbound, &[]), [0, 1]);
        assert_eq!(rules.matching(&inbound, &[queue]), [0, 1, 3]);
        let both = call(&["+15551230002"], Some("+18005550100"));
        assert_eq!(rules.matching(&both, &[]), [1, 2]);
        let other_dialed = call(&["+15551230002"], Some("+18005550199"));
        assert!(rules.matching(&other_dialed, &[]).is_empty());
        let entry = rules.entry_for(3, "c-1");
        assert_eq!(entry.target.conversation_id, "c-1");
        assert_eq!(entry.attributes["tier"], "queue");
        assert_eq!(entry.lines, [5]);
        assert_eq!(
            rules.describe(2),
            "calls with customer_number=+15551230002 dialed_number=+18005550100 purpose=customer"
        );
    }

    #[test]
    fn a_version_changes_the_rules_it_adds_or_gives_a_new_value() {
        let old = rules(&[
            (Some("+15551230001"), None, None, "gold"),
            (Some("+15551230002"), None, None, "gold"),
            (Some("+15551230003"), None, None, "gold"),
        ]);
        let new = rules(&[
            (Some("+15551230001"), None, None, "gold"),
            (Some("+15551230002"), None, None, "silver"),
            (Some("+15551230004"), None, None, "gold"),
        ]);
        assert_eq!(new.changed_since(&old), [1, 2]);
        assert!(old.changed_since(&old).is_empty());
    }

    /// A version that only moves a rule to another queue is another desired state: a follow
    /// must put it in force even when no live call is concerned.
    #[test]
    fn versions_that_differ_only_in_a_rules_queue_are_not_equal() {
        let (a, b) = (Some(Uuid::from_u128(1)), Some(Uuid::from_u128(2)));
        let number = Some("+15551230001");
        let in_a = rules(&[(number, None, a, "gold")]);
        assert_eq!(in_a, rules(&[(number, None, a, "gold")]));
        assert_ne!(in_a, rules(&[(number, None, b, "gold")]));
        assert_ne!(in_a, rules(&[(number, None, None, "gold")]));
    }

    /// Only the queues rules name are listed: one interned for a row that was then refused is
    /// not; a rule without a queue means every queue.
    #[test]
    fn the_queues_to_list_are_those_every_rule_names() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let number = Some("+15551230001");
        let mut rules = rules(&[(number, None, Some(a), "gold")]);
        rules.store.intern_queue(b);
        assert_eq!(rules.queues(), Some(vec![a]));
        let every = self::rules(&[(number, None, Some(a), "gold"), (number, None, None, "x")]);
        assert_eq!(every.queues(), None);
    }

    /// Purposes and queues are interned per version, in the order rows name them: a version
    /// that names them in another order is compared by purpose and queue, not by index.
    #[test]
    fn rules_of_versions_that_name_purposes_or_queues_in_another_order_are_compared_by_what_they_are()
     {
        let number = Some("+15551230001");
        let old = rules_of_purposes(&[
            ("customer", (number, None, None, "gold")),
            ("agent", (number, None, None, "silver")),
        ]);
        let swapped = rules_of_purposes(&[
            ("agent", (number, None, None, "gold")),
            ("customer", (number, None, None, "silver")),
        ]);
        assert_eq!(swapped.changed_since(&old), [0, 1]);
        let reordered = rules_of_purposes(&[
            ("agent", (number, None, None, "silver")),
            ("customer", (number, None, None, "gold")),
        ]);
        assert!(reordered.changed_since(&old).is_empty());

        // Queues likewise.
        let (a, b) = (Some(Uuid::from_u128(1)), Some(Uuid::from_u128(2)));
        let old = rules(&[(number, None, a, "gold"), (number, None, b, "silver")]);
        let swapped = rules(&[(number, None, b, "gold"), (number, None, a, "silver")]);
        assert_eq!(swapped.changed_since(&old), [0, 1]);
        let reordered = rules(&[(number, None, b, "silver"), (number, None, a, "gold")]);
        assert!(reordered.changed_since(&old).is_empty());
    }
}
