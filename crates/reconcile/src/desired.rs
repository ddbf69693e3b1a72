//! The desired state: what a user wrote down, validated and grouped per target.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::input::{InputRow, InputRowRef, InputTable};
use crate::problem::Problem;
use crate::rules::NumberRules;
use crate::store::{EntryStore, TargetKey};

/// Which participant(s) of a conversation a desired entry is about.
///
/// `Purpose` and `UserId` may match several participants (e.g. two agents after a transfer);
/// the plan then has one target per matched participant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Exactly one participant, by its id (lowercase UUID).
    ParticipantId(String),
    /// Every participant with this purpose (lowercase, e.g. `customer`, `agent`, `acd`).
    Purpose(String),
    /// Every participant that is this user (lowercase UUID), i.e. an agent's legs.
    UserId(String),
}

impl Selector {
    /// The input column this selector comes from.
    pub fn column(&self) -> &'static str {
        match self {
            Self::ParticipantId(_) => "participant_id",
            Self::Purpose(_) => "purpose",
            Self::UserId(_) => "user_id",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Self::ParticipantId(v) | Self::Purpose(v) | Self::UserId(v) => v,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.column(), self.value())
    }
}

/// One conversation plus a selector of participants in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    /// Validated, lowercase, hyphenated UUID.
    pub conversation_id: String,
    pub selector: Selector,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conversation {} {}", self.conversation_id, self.selector)
    }
}

/// The attribute keys one target should have. Keys not present are not managed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredEntry {
    pub target: Target,
    /// Key to desired value; `""` means clear the key (the only way Genesys clears one).
    pub attributes: BTreeMap<String, String>,
    /// Input lines (or SQLite row ordinals) this entry was merged from, ascending.
    pub lines: Vec<u64>,
}

/// Where a desired state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    CsvWide,
    CsvLong,
    Sqlite,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CsvWide => "csv-wide",
            Self::CsvLong => "csv-long",
            Self::Sqlite => "sqlite",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The path as the user gave it.
    pub path: String,
    pub format: SourceFormat,
    /// Lowercase hex SHA-256 of the raw input bytes (for SQLite: of the database file).
    pub sha256: String,
}

/// A validated desired state, grouped per target in order of first appearance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredState {
    entries: Entries,
    /// The rows that select calls by phone number: entries of the calls they match.
    pub(crate) rules: NumberRules,
    pub source: SourceInfo,
    /// Non-fatal findings: merged identical duplicates, and rows dropped under `skip_invalid`.
    pub warnings: Vec<Problem>,
    /// The source's data rows as read (empty for states not read from a source).
    pub input: InputTable,
}

/// A state's entries: read from a source, compact; or given whole (a command line's).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entries {
    Stored(Box<EntryStore<TargetKey>>),
    Given(Vec<DesiredEntry>),
}

impl DesiredState {
    /// A state of entries given whole (`set`, `tag`, tests), each already one target.
    pub fn from_entries(entries: Vec<DesiredEntry>, source: SourceInfo) -> Self {
        Self {
            entries: Entries::Given(entries),
            rules: NumberRules::default(),
            source,
            warnings: Vec::new(),
            input: InputTable::default(),
        }
    }

    pub(crate) fn stored(
        entries: EntryStore<TargetKey>,
        source: SourceInfo,
        warnings: Vec<Problem>,
        input: InputTable,
    ) -> Self {
        Self {
            entries: Entries::Stored(Box::new(entries)),
            rules: NumberRules::default(),
            source,
            warnings,
            input,
        }
    }

    /// The rows that select calls by phone number, merged per rule.
    pub fn number_rules(&self) -> &NumberRules {
        &self.rules
    }

    /// Takes the numbered rows' rules out (a follow keeps them, without a copy).
    pub fn take_number_rules(&mut self) -> NumberRules {
        std::mem::take(&mut self.rules)
    }

    /// Number of entries (targets of the input that name a conversation).
    pub fn len(&self) -> usize {
        match &self.entries {
            Entries::Stored(store) => store.len(),
            Entries::Given(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry `i` with owned strings.
    pub fn entry(&self, i: usize) -> DesiredEntry {
        match &self.entries {
            Entries::Stored(store) => store.entry(i),
            Entries::Given(entries) => entries[i].clone(),
        }
    }

    /// Every entry with owned strings, in order: each is made when asked for, so that a large
    /// state is walked without holding a copy of it.
    pub fn entries(&self) -> impl Iterator<Item = DesiredEntry> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// Every entry with owned strings (a copy of the whole state: for small states and tests).
    pub fn to_entries(&self) -> Vec<DesiredEntry> {
        self.entries().collect()
    }

    /// The conversation of entry `i` (lowercase UUID).
    pub fn conversation(&self, i: usize) -> Uuid {
        match &self.entries {
            Entries::Stored(store) => store.conversation(i),
            Entries::Given(entries) => {
                Uuid::parse_str(&entries[i].target.conversation_id).unwrap_or_default()
            }
        }
    }

    /// The lines of entry `i`, ascending.
    pub fn lines(&self, i: usize) -> Vec<u64> {
        match &self.entries {
            Entries::Stored(store) => store.lines(i).collect(),
            Entries::Given(entries) => entries[i].lines.clone(),
        }
    }

    /// Number of (target, key) pairs in the desired state, numbered rows' rules included.
    pub fn key_count(&self) -> usize {
        self.rules.key_count()
            + match &self.entries {
                Entries::Stored(store) => (0..store.len()).map(|i| store.pairs_of(i).count()).sum(),
                Entries::Given(entries) => {
                    entries.iter().map(|e| e.attributes.len()).sum::<usize>()
                }
            }
    }

    /// The distinct conversations, in order of first appearance: what the caller has to look
    /// up before planning.
    pub fn conversations(&self) -> Vec<Uuid> {
        let mut seen = HashSet::with_capacity(self.len());
        (0..self.len())
            .map(|i| self.conversation(i))
            .filter(|c| seen.insert(*c))
            .collect()
    }
}

/// The distinct conversation ids of a desired state, in order of first appearance: what the
/// caller has to fetch before calling [`crate::plan::diff`].
pub fn conversation_ids(desired: &DesiredState) -> Vec<String> {
    match &desired.entries {
        Entries::Stored(_) => desired
            .conversations()
            .iter()
            .map(|c| c.hyphenated().to_string())
            .collect(),
        Entries::Given(entries) => {
            let mut seen = HashSet::with_capacity(entries.len());
            entries
                .iter()
                .filter(|e| seen.insert(e.target.conversation_id.as_str()))
                .map(|e| e.target.conversation_id.clone())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cid: &str, selector: Selector) -> DesiredEntry {
        DesiredEntry {
            target: Target {
                conversation_id: cid.into(),
                selector,
            },
            attributes: BTreeMap::new(),
            lines: vec![2],
        }
    }

    #[test]
    fn selector_displays_as_column_equals_value() {
        assert_eq!(
            Selector::Purpose("customer".into()).to_string(),
            "purpose=customer"
        );
        assert_eq!(Selector::UserId("u".into()).to_string(), "user_id=u");
    }

    #[test]
    fn selector_json_is_tagged_by_column_name() {
        let json = serde_json::to_string(&Selector::ParticipantId("p".into())).unwrap();
        assert_eq!(json, r#"{"participant_id":"p"}"#);
    }

    #[test]
    fn conversation_ids_are_distinct_in_first_appearance_order() {
        let desired = DesiredState::from_entries(
            vec![
                entry("b", Selector::Purpose("customer".into())),
                entry("a", Selector::Purpose("customer".into())),
                entry("b", Selector::Purpose("agent".into())),
            ],
            SourceInfo {
                path: "x.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
        );
        assert_eq!(conversation_ids(&desired), ["b", "a"]);
    }
}
