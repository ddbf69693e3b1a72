//! The compact storage of a desired state's entries.
//!
//! A CRM table keeps a row for every call it ever saw, and only a few of those calls are live:
//! a million rows must fit in well under 300 MiB. So an entry costs tens of bytes here (UUIDs as
//! 16 bytes, key names and purposes interned, values in one arena, a row's line and its pairs as
//! ranges) and becomes a [`DesiredEntry`] with owned strings only when it is asked for, which a
//! run does only for the entries of live calls.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;

// foldhash, not SipHash: hashing the keys was a quarter of reading a million rows.
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use uuid::Uuid;

use crate::desired::{DesiredEntry, Selector, Target};
use crate::number::Number;

/// Values seen many times (key names, purposes, selectors, queues), each stored once and named
/// by its index.
#[derive(Clone, Debug)]
pub(crate) struct Interner<T> {
    values: Vec<T>,
    ids: HashMap<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    /// The index of `value`, stored on its first sight (a borrowed form is owned only then).
    pub fn intern<Q>(&mut self, value: &Q) -> u32
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ToOwned + ?Sized,
        Q::Owned: Into<T>,
    {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let owned: T = value.to_owned().into();
        self.values.push(owned.clone());
        self.ids.insert(owned, id);
        id
    }

    pub fn get<Q>(&self, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.ids.get(value).copied()
    }

    pub fn value(&self, id: u32) -> &T {
        &self.values[id as usize]
    }

    /// Every value, in the order first seen.
    pub fn values(&self) -> &[T] {
        &self.values
    }
}

impl Interner<Box<str>> {
    pub fn name(&self, id: u32) -> &str {
        self.value(id)
    }
}

/// A selector of participants, its strings as UUIDs or an interned purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SelectorKey {
    Participant(Uuid),
    User(Uuid),
    /// Index into the interned purposes.
    Purpose(u32),
}

/// A selector interned in its store ([`EntryStore::intern_selector`]): a key costs 4 bytes for
/// it, not 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SelectorId(u32);

/// A queue interned in its store ([`EntryStore::intern_queue`]): 4 bytes, not 17 (its index
/// plus one, so that `Option<QueueId>` is 4 bytes too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct QueueId(NonZeroU32);

impl QueueId {
    fn of_index(index: u32) -> Self {
        Self(NonZeroU32::new(index.wrapping_add(1)).expect("fewer than 2^32 - 1 queues"))
    }

    fn index(self) -> u32 {
        self.0.get() - 1
    }
}

/// Another store's selectors and queues as one store names them ([`EntryStore::names_of`]);
/// `None` where it has no such selector or queue.
pub(crate) struct KeyNames {
    selectors: Vec<Option<SelectorId>>,
    queues: Vec<Option<QueueId>>,
}

impl KeyNames {
    /// The other store's `key`, as this one names it; `None` if it cannot have it.
    pub fn key<K: StoreKey>(&self, key: K) -> Option<K> {
        let selector = self.selectors[key.selector().0 as usize]?;
        let queue = match key.queue() {
            Some(queue) => Some(self.queues[queue.index() as usize]?),
            None => None,
        };
        Some(key.with_selector(selector).with_queue(queue))
    }
}

/// What rows are merged into one entry by: rows of one key are one entry.
pub(crate) trait StoreKey: Copy + Eq + std::hash::Hash + std::fmt::Debug {
    fn selector(&self) -> SelectorId;
    fn with_selector(self, selector: SelectorId) -> Self;
    fn queue(&self) -> Option<QueueId> {
        None
    }
    fn with_queue(self, _queue: Option<QueueId>) -> Self {
        self
    }
}

/// The identity of a target: one conversation, a selector of participants in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TargetKey {
    pub conversation: Uuid,
    pub selector: SelectorId,
}

impl StoreKey for TargetKey {
    fn selector(&self) -> SelectorId {
        self.selector
    }

    fn with_selector(self, selector: SelectorId) -> Self {
        Self { selector, ..self }
    }
}

/// The identity of a numbered row's rule: every call with these numbers (and in this queue), a
/// selector of participants in each. At least one number is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RuleKey {
    pub customer: Option<Number>,
    pub dialed: Option<Number>,
    pub queue: Option<QueueId>,
    pub selector: SelectorId,
}

impl StoreKey for RuleKey {
    fn selector(&self) -> SelectorId {
        self.selector
    }

    fn with_selector(self, selector: SelectorId) -> Self {
        Self { selector, ..self }
    }

    fn queue(&self) -> Option<QueueId> {
        self.queue
    }

    fn with_queue(self, queue: Option<QueueId>) -> Self {
        Self { queue, ..self }
    }
}

/// No next row.
const NONE: u32 = u32::MAX;

/// One (key, value) of a row: the key interned, the value a range of [`EntryStore::values`].
#[derive(Clone, Copy, Debug)]
struct StoredPair {
    key: u32,
    value_start: u32,
    value_len: u32,
}

/// A row merged into an entry after its first (rare: most entries have one row).
#[derive(Clone, Copy, Debug)]
struct ExtraRow {
    line: u64,
    pairs_start: u32,
    pairs_len: u32,
    next: u32,
}

/// An entry with its first row inline; further rows are chained through [`ExtraRow::next`].
#[derive(Clone, Copy, Debug)]
struct StoredEntry<K> {
    key: K,
    pairs_start: u32,
    pairs_len: u32,
    /// The first extra row, or [`NONE`].
    next: u32,
    /// The last extra row, or [`NONE`]: where a merged row is chained.
    tail: u32,
    line: u64,
}

/// The storage is full: its arena holds at most 4 GiB of values.
#[derive(Debug)]
pub(crate) struct StoreFull;

/// Every entry of a desired state, in order of first appearance.
#[derive(Clone, Debug)]
pub(crate) struct EntryStore<K> {
    entries: Vec<StoredEntry<K>>,
    extra_rows: Vec<ExtraRow>,
    pairs: Vec<StoredPair>,
    values: String,
    keys: Interner<Box<str>>,
    purposes: Interner<Box<str>>,
    selectors: Interner<SelectorKey>,
    queues: Interner<Uuid>,
    /// Entry indexes by target, while rows are added; dropped by [`Self::seal`].
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<K> Default for EntryStore<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            extra_rows: Vec::new(),
            pairs: Vec::new(),
            values: String::new(),
            keys: Interner::default(),
            purposes: Interner::default(),
            selectors: Interner::default(),
            queues: Interner::default(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K: StoreKey> PartialEq for EntryStore<K> {
    /// The same entries in the same order: keys (a conversation, numbers, a queue, a selector)
    /// compared by what they name, for each store interns in its own order.
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let names = self.names_of(other);
        (0..self.len()).all(|i| {
            names.key(other.key(i)) == Some(self.key(i))
                && self.attributes(i) == other.attributes(i)
                && self.lines(i).eq(other.lines(i))
        })
    }
}

impl<K: StoreKey> Eq for EntryStore<K> {}

impl<K: StoreKey> EntryStore<K> {
    /// The key of entry `i`.
    pub fn key(&self, i: usize) -> K {
        self.entries[i].key
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn intern_purpose(&mut self, purpose: &str) -> u32 {
        self.purposes.intern(purpose)
    }

    pub fn purpose_name(&self, id: u32) -> &str {
        self.purposes.name(id)
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry of `key`, if rows were added for it.
    pub fn find(&self, key: &K) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hash(key), |&i| entries[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    pub fn intern_selector(&mut self, selector: SelectorKey) -> SelectorId {
        SelectorId(self.selectors.intern(&selector))
    }

    pub fn intern_queue(&mut self, queue: Uuid) -> QueueId {
        QueueId::of_index(self.queues.intern(&queue))
    }

    /// The queue `id` names.
    pub fn queue(&self, id: QueueId) -> Uuid {
        *self.queues.value(id.index())
    }

    /// How the keys of `other` (another version, which interned its purposes, selectors and
    /// queues in its own order) are named here: each selector and queue mapped once, by what it
    /// is.
    pub fn names_of(&self, other: &Self) -> KeyNames {
        let selectors = other
            .selectors
            .values()
            .iter()
            .map(|selector| {
                let selector = match *selector {
                    SelectorKey::Purpose(p) => {
                        SelectorKey::Purpose(self.purposes.get(other.purposes.name(p))?)
                    }
                    selector => selector,
                };
                self.selectors.get(&selector).map(SelectorId)
            })
            .collect();
        let queues = other
            .queues
            .values()
            .iter()
            .map(|queue| self.queues.get(queue).map(QueueId::of_index))
            .collect();
        KeyNames { selectors, queues }
    }

    /// The value `key_name` already has in entry `i`, with the line that gave it.
    pub fn value_of(&self, i: usize, key_name: &str) -> Option<(&str, u64)> {
        let key = self.keys.get(key_name)?;
        self.rows_of(i).find_map(|(line, pairs)| {
            pairs
                .iter()
                .find(|p| p.key == key)
                .map(|p| (self.value(p), line))
        })
    }

    /// The keys entry `i` has, with their values.
    pub fn pairs_of(&self, i: usize) -> impl Iterator<Item = (&str, &str)> {
        self.rows_of(i).flat_map(move |(_, pairs)| {
            pairs
                .iter()
                .map(move |p| (self.keys.name(p.key), self.value(p)))
        })
    }

    fn rows_of(&self, i: usize) -> impl Iterator<Item = (u64, &[StoredPair])> {
        let entry = &self.entries[i];
        let first = (
            entry.line,
            self.pair_slice(entry.pairs_start, entry.pairs_len),
        );
        let mut next = entry.next;
        std::iter::once(first).chain(std::iter::from_fn(move || {
            let row = self.extra_rows.get(next as usize)?;
            next = row.next;
            Some((row.line, self.pair_slice(row.pairs_start, row.pairs_len)))
        }))
    }

    fn pair_slice(&self, start: u32, len: u32) -> &[StoredPair] {
        &self.pairs[start as usize..(start + len) as usize]
    }

    fn value(&self, pair: &StoredPair) -> &str {
        let start = pair.value_start as usize;
        &self.values[start..start + pair.value_len as usize]
    }

    /// Stores a row's pairs (those whose key the entry does not have yet); returns their range.
    fn push_pairs<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(u32, u32), StoreFull> {
        let start = u32::try_from(self.pairs.len()).map_err(|_| StoreFull)?;
        for (key, value) in pairs {
            let value_start = u32::try_from(self.values.len()).map_err(|_| StoreFull)?;
            self.values.push_str(value);
            u32::try_from(self.values.len()).map_err(|_| StoreFull)?;
            let key = self.keys.intern(key);
            self.pairs.push(StoredPair {
                key,
                value_start,
                value_len: value.len() as u32,
            });
        }
        Ok((start, self.pairs.len() as u32 - start))
    }

    /// A new entry for `key`, from its first row.
    pub fn insert<'a>(
        &mut self,
        key: K,
        line: u64,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), StoreFull> {
        let (pairs_start, pairs_len) = self.push_pairs(pairs)?;
        let i = u32::try_from(self.entries.len()).map_err(|_| StoreFull)?;
        self.entries.push(StoredEntry {
            key,
            pairs_start,
            pairs_len,
            next: NONE,
            tail: NONE,
            line,
        });
        let hash = self.hash(&key);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(entries[j as usize].key));
        Ok(())
    }

    /// Merges a further row into entry `i`: its keys the entry does not have yet, and its line.
    pub fn merge<'a>(
        &mut self,
        i: usize,
        line: u64,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), StoreFull> {
        let new: Vec<(&str, &str)> = pairs
            .filter(|(key, _)| self.value_of(i, key).is_none())
            .collect();
        let (pairs_start, pairs_len) = self.push_pairs(new.into_iter())?;
        let row = u32::try_from(self.extra_rows.len()).map_err(|_| StoreFull)?;
        self.extra_rows.push(ExtraRow {
            line,
            pairs_start,
            pairs_len,
            next: NONE,
        });
        let entry = &mut self.entries[i];
        match entry.tail {
            NONE => entry.next = row,
            tail => self.extra_rows[tail as usize].next = row,
        }
        entry.tail = row;
        Ok(())
    }

    /// Room for `rows` more rows of one pair each, reserved at once: grown by doubling, a
    /// million entries would be copied from a half-size array, both held for a moment.
    pub fn reserve(&mut self, rows: usize) {
        self.entries.reserve(rows);
        self.pairs.reserve(rows);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .reserve(rows, |&j| hasher.hash_one(entries[j as usize].key));
    }

    /// Whatever [`Self::reserve`] kept that rows merged into fewer entries did not use.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.pairs.shrink_to_fit();
        self.extra_rows.shrink_to_fit();
        self.values.shrink_to_fit();
    }

    /// Done adding rows: the index is only needed while merging them.
    pub fn seal(&mut self) {
        self.index = HashTable::new();
        self.shrink_to_fit();
    }

    pub fn selector(&self, id: SelectorId) -> Selector {
        match *self.selectors.value(id.0) {
            SelectorKey::Participant(id) => Selector::ParticipantId(id.hyphenated().to_string()),
            SelectorKey::User(id) => Selector::UserId(id.hyphenated().to_string()),
            SelectorKey::Purpose(p) => Selector::Purpose(self.purposes.name(p).to_owned()),
        }
    }

    /// The attributes of entry `i`, owned.
    pub fn attributes(&self, i: usize) -> BTreeMap<String, String> {
        let mut attributes = BTreeMap::new();
        for (name, value) in self.pairs_of(i) {
            attributes
                .entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        attributes
    }

    /// Entry `i` with owned strings, as the entry of `conversation_id`.
    pub fn entry_of(&self, i: usize, conversation_id: String) -> DesiredEntry {
        DesiredEntry {
            target: Target {
                conversation_id,
                selector: self.selector(self.entries[i].key.selector()),
            },
            attributes: self.attributes(i),
            lines: self.lines(i).collect(),
        }
    }

    /// The lines of entry `i`, ascending.
    pub fn lines(&self, i: usize) -> impl Iterator<Item = u64> {
        let mut previous = None;
        self.rows_of(i)
            .map(|(line, _)| line)
            .filter(move |&line| previous.replace(line) != Some(line))
    }
}

impl EntryStore<TargetKey> {
    /// The conversation of entry `i`.
    pub fn conversation(&self, i: usize) -> Uuid {
        self.entries[i].key.conversation
    }

    pub fn target(&self, key: TargetKey) -> Target {
        Target {
            conversation_id: key.conversation.hyphenated().to_string(),
            selector: self.selector(key.selector),
        }
    }

    /// Entry `i` with owned strings.
    pub fn entry(&self, i: usize) -> DesiredEntry {
        self.entry_of(i, self.conversation(i).hyphenated().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    #[test]
    fn an_entry_is_its_rows_merged_in_order() {
        let mut store = EntryStore::<TargetKey>::default();
        let purpose = SelectorKey::Purpose(store.intern_purpose("customer"));
        let key = TargetKey {
            conversation: Uuid::parse_str(CID).unwrap(),
            selector: store.intern_selector(purpose),
        };
        store
            .insert(key, 2, [("tier", "gold")].into_iter())
            .unwrap();
        let i = store.find(&key).unwrap();
        store
            .merge(i, 5, [("tier", "gold"), ("campaign", "spring")].into_iter())
            .unwrap();
        store.seal();
        let entry = store.entry(0);
        assert_eq!(entry.target.conversation_id, CID);
        assert_eq!(entry.target.selector, Selector::Purpose("customer".into()));
        assert_eq!(
            entry.attributes,
            BTreeMap::from([
                ("campaign".to_owned(), "spring".to_owned()),
                ("tier".to_owned(), "gold".to_owned())
            ])
        );
        assert_eq!(entry.lines, [2, 5]);
        assert_eq!(store.lines(0).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(store.value_of(0, "campaign"), Some(("spring", 5)));
    }

    #[test]
    fn an_entry_costs_tens_of_bytes() {
        assert_eq!(std::mem::size_of::<StoredEntry<TargetKey>>(), 48);
        assert_eq!(std::mem::size_of::<StoredEntry<RuleKey>>(), 48);
        assert!(std::mem::size_of::<StoredPair>() <= 12);
    }
}
