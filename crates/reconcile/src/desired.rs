//! The desired state: what a user wrote down, validated and grouped per target.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::problem::Problem;

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

/// The source's own data rows, as read, in input order: what a result file is written from
/// without reading the source again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTable {
    /// Column names as read. CSV: the header without a BOM and without `attrsync_*` result
    /// columns. SQLite: the selected columns' names.
    pub header: Vec<String>,
    /// Every data row of the input, once, in order.
    pub rows: Vec<InputRow>,
}

/// One data row of the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRow {
    /// The line this row is known by everywhere else ([`DesiredEntry::lines`], problems): the
    /// CSV record's first physical line, or the SQLite row ordinal.
    pub line: u64,
    /// The cells as read (CSV: without `attrsync_*` columns; SQLite: every value as text,
    /// NULL as empty).
    pub cells: Vec<String>,
    /// For a row dropped under `skip_invalid`: the message it was reported with (several are
    /// joined with `; `). `None` otherwise.
    pub problem: Option<String>,
}

/// A validated desired state, grouped per target in order of first appearance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredState {
    pub entries: Vec<DesiredEntry>,
    pub source: SourceInfo,
    /// Non-fatal findings: merged identical duplicates, and rows dropped under `skip_invalid`.
    pub warnings: Vec<Problem>,
    /// The source's data rows as read (empty for states not read from a source).
    pub input: InputTable,
}

impl DesiredState {
    /// Number of (target, key) pairs in the desired state.
    pub fn key_count(&self) -> usize {
        self.entries.iter().map(|e| e.attributes.len()).sum()
    }
}

/// The distinct conversation ids of a desired state, in order of first appearance: what the
/// caller has to fetch before calling [`crate::plan::diff`].
pub fn conversation_ids(desired: &DesiredState) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(desired.entries.len());
    desired
        .entries
        .iter()
        .filter(|e| seen.insert(e.target.conversation_id.as_str()))
        .map(|e| e.target.conversation_id.clone())
        .collect()
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
        let desired = DesiredState {
            entries: vec![
                entry("b", Selector::Purpose("customer".into())),
                entry("a", Selector::Purpose("customer".into())),
                entry("b", Selector::Purpose("agent".into())),
            ],
            source: SourceInfo {
                path: "x.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
            warnings: vec![],
            input: InputTable::default(),
        };
        assert_eq!(conversation_ids(&desired), ["b", "a"]);
    }
}
