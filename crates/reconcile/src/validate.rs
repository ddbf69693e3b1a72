//! Row validation and grouping, shared by every source format; the same rules for the
//! `KEY=VALUE` arguments of a command line ([`command_line_attributes`]).
//!
//! Sources turn their records into [`RawRow`]s and feed them to a [`DesiredBuilder`], which checks
//! each row completely (every problem of the row, not just the first), merges valid rows per
//! target, and finally returns either the whole desired state or every problem of the input.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;

use genesys_models::Attributes;

use crate::desired::{DesiredState, InputTable, SourceInfo};
use crate::number::{self, Number};
use crate::rules::{NumberRules, RuleText};
use crate::store::{EntryStore, RuleKey, SelectorKey, StoreKey, TargetKey};

/// Which calls a row is about.
enum CallSelector {
    Conversation(Uuid),
    /// Every call with these numbers (and in this queue); at least one number is given.
    Numbers {
        customer: Option<Number>,
        dialed: Option<Number>,
        queue: Option<Uuid>,
    },
}
use crate::options::{Limits, ReadOptions};
use crate::problem::{LineUnit, Problem, SourceError};

/// One input record, borrowed from the source's buffer. Empty strings mean "not given".
#[derive(Debug, Default)]
pub(crate) struct RawRow<'a> {
    pub line: u64,
    pub conversation_id: &'a str,
    /// A number row's call selectors (instead of `conversation_id`).
    pub customer_number: &'a str,
    pub dialed_number: &'a str,
    pub queue_id: &'a str,
    pub participant_id: &'a str,
    pub purpose: &'a str,
    pub user_id: &'a str,
    /// (key, value) pairs; `""` as value means clear in the long form. Keys are unique in a row.
    pub pairs: Vec<(&'a str, &'a str)>,
}

/// What a source too large for the compact storage is told.
const TOO_LARGE: &str = "the source holds more than 4 GiB of values: split it into several sources";

/// `{"attributes":{}}`
const EMPTY_BODY_BYTES: usize = 17;

pub(crate) struct DesiredBuilder<'o> {
    file: String,
    unit: LineUnit,
    options: &'o ReadOptions,
    default_purpose: String,
    store: EntryStore<TargetKey>,
    /// The rows that select calls by number.
    rules: EntryStore<RuleKey>,
    /// Whether the source has a number column, so that a row naming no call is told of them.
    number_columns: bool,
    /// Whether the source has a `conversation_id` column.
    conversation_column: bool,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    /// The source's data rows as read, in order.
    input: InputTable,
}

impl<'o> DesiredBuilder<'o> {
    pub fn new(
        file: String,
        unit: LineUnit,
        options: &'o ReadOptions,
    ) -> Result<Self, SourceError> {
        let default_purpose = options.default_purpose.trim().to_ascii_lowercase();
        if default_purpose.is_empty() || has_control(&default_purpose) {
            return Err(SourceError::Options(format!(
                "default purpose {:?} must be non-empty and free of control characters",
                options.default_purpose
            )));
        }
        Ok(Self {
            file,
            unit,
            options,
            default_purpose,
            store: EntryStore::default(),
            rules: EntryStore::default(),
            number_columns: false,
            conversation_column: false,
            errors: Vec::new(),
            warnings: Vec::new(),
            input: InputTable::default(),
        })
    }

    fn problem(&self, line: u64, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line,
            unit: self.unit,
            message,
        }
    }

    /// A problem with the input as a whole (header, empty file, unterminated quote): always an
    /// error, even with `skip_invalid`.
    pub fn fatal(&mut self, line: u64, message: String) {
        let problem = self.problem(line, message);
        self.errors.push(problem);
    }

    /// The header of the input table (the source's column names, as read).
    pub fn set_input_header(&mut self, header: Vec<String>) {
        self.input.header = header;
    }

    /// Room for about `rows` rows of `cells` cells, `text` bytes in all (the source's size).
    pub fn reserve(&mut self, rows: usize, cells: usize, text: usize) {
        // In the store of the rows' one kind, when the columns allow only one (call
        // [`Self::set_call_columns`] first); unused room is given back when the rows are in.
        match (self.conversation_column, self.number_columns) {
            (true, false) => self.store.reserve(rows),
            (false, true) => self.rules.reserve(rows),
            _ => {}
        }
        if self.options.keep_input {
            self.input.reserve(rows, cells, text);
        }
    }

    /// Records a data row of the source as read, before it is checked with [`Self::add_row`].
    pub fn add_input_row<'c>(&mut self, line: u64, cells: impl IntoIterator<Item = &'c str>) {
        if !self.options.keep_input {
            return;
        }
        if self.input.push(line, cells).is_err() {
            self.too_large(line);
        }
    }

    fn too_large(&mut self, line: u64) {
        if !self.errors.iter().any(|p| p.message == TOO_LARGE) {
            self.fatal(line, TOO_LARGE.to_owned());
        }
    }

    /// A problem that invalidates one row: an error, or a warning if invalid rows are skipped.
    /// A skipped row's input row carries the warning's message (all of them, `; `-separated).
    pub fn row_problem(&mut self, line: u64, message: String) {
        if self.options.skip_invalid {
            let problem = self.problem(line, format!("{message} (row skipped)"));
            self.input.add_problem_to_last(line, &problem.message);
            self.warnings.push(problem);
        } else {
            let problem = self.problem(line, message);
            self.errors.push(problem);
        }
    }

    fn warning(&mut self, line: u64, message: String) {
        let problem = self.problem(line, message);
        self.warnings.push(problem);
    }

    /// What is wrong with a key name, if anything (header names in the wide form, `key` cells
    /// in the long form).
    pub fn key_problem(&self, key: &str) -> Option<String> {
        key_problem(key, &self.options.limits)
    }

    /// Checks one row completely and, if it is valid, merges it into its target.
    /// `check_keys` is false when the keys were already checked (wide-form header names).
    pub fn add_row(&mut self, row: &RawRow<'_>, check_keys: bool) {
        let mut problems = Vec::new();
        let call = self.call(row, &mut problems);
        let selector = self.selector(row, &mut problems);
        for &(key, value) in &row.pairs {
            if check_keys && let Some(problem) = self.key_problem(key) {
                problems.push(problem);
            }
            problems.extend(value_problem(key, value, &self.options.limits));
        }
        let (Some(call), Some(selector), true) = (call, selector, problems.is_empty()) else {
            for problem in problems {
                self.row_problem(row.line, problem);
            }
            return;
        };
        if row.pairs.is_empty() {
            self.warning(
                row.line,
                "no attribute values in this row; nothing to do".to_owned(),
            );
            return;
        }
        let unit = self.unit_word();
        let limits = &self.options.limits;
        // The stores are borrowed field by field: moving one out and back per row cost a
        // tenth of reading a million rows.
        let merged = match call {
            CallSelector::Conversation(conversation) => {
                let key = TargetKey {
                    conversation,
                    selector: self.store.intern_selector(selector),
                };
                merge_row(&mut self.store, row, key, limits, unit, &|store, key| {
                    store.target(key).to_string()
                })
            }
            CallSelector::Numbers {
                customer,
                dialed,
                queue,
            } => {
                let selector = match selector {
                    SelectorKey::Purpose(p) => {
                        SelectorKey::Purpose(self.rules.intern_purpose(self.store.purpose_name(p)))
                    }
                    other => other,
                };
                let key = RuleKey {
                    customer,
                    dialed,
                    queue: queue.map(|queue| self.rules.intern_queue(queue)),
                    selector: self.rules.intern_selector(selector),
                };
                merge_row(&mut self.rules, row, key, limits, unit, &|rules, key| {
                    RuleText(rules, key).to_string()
                })
            }
        };
        match merged {
            Merged::Refused(problems) => {
                for problem in problems {
                    self.row_problem(row.line, problem);
                }
            }
            Merged::Stored { duplicates } => {
                for (k, line) in duplicates {
                    self.warning(
                        row.line,
                        format!("key {k:?} repeats the same value as {unit} {line}; merged"),
                    );
                }
            }
            Merged::TooLarge => self.too_large(row.line),
        }
    }

    /// The columns naming calls the source has: `conversation_id`, a number column
    /// (`customer_number`, `dialed_number`).
    pub fn set_call_columns(&mut self, conversation: bool, numbers: bool) {
        self.conversation_column = conversation;
        self.number_columns = numbers;
    }

    /// Which calls the row is about, or `None` if that is invalid (problems recorded).
    fn call(&self, row: &RawRow<'_>, problems: &mut Vec<String>) -> Option<CallSelector> {
        let conversation = row.conversation_id.trim();
        let (customer, dialed) = (row.customer_number.trim(), row.dialed_number.trim());
        let queue = row.queue_id.trim();
        let region = self.options.default_region;
        let number = |column: &str, text: &str, problems: &mut Vec<String>| {
            if text.is_empty() {
                return Some(None);
            }
            match number::parse(text, region) {
                Ok(number) => Some(Some(number)),
                Err(err) => {
                    problems.push(format!("invalid {column}: {err}"));
                    None
                }
            }
        };
        match (
            conversation.is_empty(),
            customer.is_empty() && dialed.is_empty(),
        ) {
            (true, true) => {
                problems.push(if self.number_columns {
                    "missing conversation_id, customer_number or dialed_number".to_owned()
                } else {
                    "missing conversation_id".to_owned()
                });
                None
            }
            (false, false) => {
                problems.push(
                    "both conversation_id and a number: give one (conversation_id names one \
                     call, customer_number or dialed_number every call with that number)"
                        .to_owned(),
                );
                None
            }
            (false, true) => {
                if !queue.is_empty() {
                    problems.push(
                        "queue_id with conversation_id: queue_id narrows the calls of a number; \
                         a conversation_id names its call already"
                            .to_owned(),
                    );
                }
                parse_uuid("conversation_id", conversation, problems)
                    .map(CallSelector::Conversation)
            }
            (true, false) => {
                let customer = number("customer_number", customer, problems);
                let dialed = number("dialed_number", dialed, problems);
                let queue = match queue {
                    "" => Some(None),
                    queue => parse_uuid("queue_id", queue, problems).map(Some),
                };
                Some(CallSelector::Numbers {
                    customer: customer?,
                    dialed: dialed?,
                    queue: queue?,
                })
            }
        }
    }

    /// The row's selector, or `None` if it is invalid (problems recorded).
    fn selector(&mut self, row: &RawRow<'_>, problems: &mut Vec<String>) -> Option<SelectorKey> {
        let given: Vec<(&str, &str)> = [
            ("participant_id", row.participant_id.trim()),
            ("purpose", row.purpose.trim()),
            ("user_id", row.user_id.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        let mut parsed = Vec::with_capacity(given.len());
        for &(column, value) in &given {
            let key = match column {
                "participant_id" => {
                    parse_uuid(column, value, problems).map(SelectorKey::Participant)
                }
                "user_id" => parse_uuid(column, value, problems).map(SelectorKey::User),
                _ if has_control(value) => {
                    problems.push(format!("purpose {value:?} contains a control character"));
                    None
                }
                _ if value.bytes().any(|b| b.is_ascii_uppercase()) => Some(SelectorKey::Purpose(
                    self.store.intern_purpose(&value.to_ascii_lowercase()),
                )),
                _ => Some(SelectorKey::Purpose(self.store.intern_purpose(value))),
            };
            parsed.extend(key);
        }
        match given.len() {
            0 => Some(SelectorKey::Purpose(
                self.store.intern_purpose(&self.default_purpose),
            )),
            1 => parsed.pop(),
            _ => {
                let columns: Vec<&str> = given.iter().map(|(c, _)| *c).collect();
                problems.push(format!(
                    "more than one selector ({}): give at most one of participant_id, purpose, user_id",
                    columns.join(", ")
                ));
                None
            }
        }
    }

    fn unit_word(&self) -> &'static str {
        match self.unit {
            LineUnit::Line => "line",
            LineUnit::Row => "row",
            LineUnit::Target => "target",
            LineUnit::Argument => "argument",
        }
    }

    #[cfg(test)]
    pub fn finish(self, source: SourceInfo) -> Result<DesiredState, SourceError> {
        self.finish_with_input(source).map(|(state, _)| state)
    }

    /// Every error of the input, if any (for inputs whose rows are only checked, e.g. a plan).
    pub fn check(self) -> Result<(), SourceError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut problems = self.errors;
        problems.sort_by_key(|p| p.line);
        Err(SourceError::Invalid {
            file: self.file,
            problems,
        })
    }

    /// The desired state and the input table, or every error of the input.
    pub fn finish_with_input(
        self,
        source: SourceInfo,
    ) -> Result<(DesiredState, InputTable), SourceError> {
        if !self.errors.is_empty() {
            let mut problems = self.errors;
            problems.sort_by_key(|p| p.line);
            return Err(SourceError::Invalid {
                file: self.file,
                problems,
            });
        }
        let mut warnings = self.warnings;
        warnings.sort_by_key(|p| p.line);
        let mut store = self.store;
        store.seal();
        let mut state = DesiredState::stored(store, source, warnings, InputTable::default());
        let mut rules = self.rules;
        rules.shrink_to_fit();
        state.rules = NumberRules::new(rules, self.options.default_region);
        Ok((state, self.input))
    }
}

/// What became of a valid row merged into its target (or rule).
enum Merged<'r> {
    /// Stored; keys that repeated an earlier row's value (with that row's line) were merged.
    Stored { duplicates: Vec<(&'r str, u64)> },
    /// It conflicts with earlier rows or breaks a per-target guard: not stored at all.
    Refused(Vec<String>),
    /// The store is full.
    TooLarge,
}

/// Merges a valid row into its target (or rule) in `store`, unless it conflicts with earlier
/// rows or breaks a per-target guard; either way the row is all or nothing.
fn merge_row<'r, K: StoreKey>(
    store: &mut EntryStore<K>,
    row: &RawRow<'r>,
    key: K,
    limits: &Limits,
    unit: &str,
    describe: &dyn Fn(&EntryStore<K>, K) -> String,
) -> Merged<'r> {
    let existing = store.find(&key);
    let mut problems = Vec::new();
    let mut duplicates = Vec::new();
    let (mut key_count, mut body_bytes) = (0, EMPTY_BODY_BYTES);
    if let Some(i) = existing {
        for (k, v) in store.pairs_of(i) {
            key_count += 1;
            body_bytes += entry_body_bytes(key_count, k, v);
        }
        for &(k, v) in &row.pairs {
            match store.value_of(i, k) {
                Some((earlier, line)) if earlier == v => duplicates.push((k, line)),
                Some((earlier, line)) => problems.push(conflict_problem(
                    k,
                    Some(&describe(store, key)),
                    v,
                    earlier,
                    unit,
                    line,
                )),
                None => {}
            }
        }
    }
    for &(k, v) in &row.pairs {
        if existing.is_some_and(|i| store.value_of(i, k).is_some()) {
            continue;
        }
        key_count += 1;
        body_bytes += entry_body_bytes(key_count, k, v);
    }
    if key_count > limits.max_keys_per_target || body_bytes > limits.max_request_bytes {
        let target = describe(store, key);
        problems.extend(keys_problem(&target, key_count, limits));
        problems.extend(body_problem(&target, body_bytes, limits));
    }
    if !problems.is_empty() {
        return Merged::Refused(problems);
    }
    let pairs = row.pairs.iter().copied();
    let stored = match existing {
        Some(i) => store.merge(i, row.line, pairs),
        None => store.insert(key, row.line, pairs),
    };
    match stored {
        Ok(()) => Merged::Stored { duplicates },
        Err(_) => Merged::TooLarge,
    }
}

/// Where the `KEY=VALUE` arguments of a command line (`set`, `tag`) are said to be in their
/// problems: `command line: argument N: ...`.
pub const COMMAND_LINE: &str = "command line";

/// The attributes of a command line's `KEY=VALUE` arguments (`set`, `tag`, `tag --follow`),
/// checked by the rules of an input's rows and with their messages (keys, value sizes, keys per
/// target, the request size), so that the command line cannot send what a CSV could not. A key
/// given twice with different values is a conflict; given twice with one value, it is kept once.
/// Every problem names its argument, counted from 1 among the `KEY=VALUE` arguments.
pub fn command_line_attributes(
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<Attributes, SourceError> {
    let mut attributes: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    let mut problems: Vec<(u64, String)> = Vec::new();
    let mut body_bytes = EMPTY_BODY_BYTES;
    // The arguments that first go over a per-target guard: each is said once, there, with the
    // total of every argument.
    let (mut keys_over_at, mut bytes_over_at) = (None, None);
    for ((key, value), argument) in pairs.iter().zip(1..) {
        let invalid: Vec<String> = key_problem(key, limits)
            .into_iter()
            .chain(value_problem(key, value, limits))
            .collect();
        if !invalid.is_empty() {
            problems.extend(invalid.into_iter().map(|p| (argument, p)));
            continue;
        }
        match attributes.get(key.as_str()) {
            Some((earlier, _)) if earlier == value => continue,
            Some((earlier, line)) => {
                let conflict = conflict_problem(key, None, value, earlier, "argument", *line);
                problems.push((argument, conflict));
                continue;
            }
            None => {}
        }
        attributes.insert(key, (value, argument));
        body_bytes += entry_body_bytes(attributes.len(), key, value);
        if attributes.len() > limits.max_keys_per_target {
            keys_over_at.get_or_insert(argument);
        }
        if body_bytes > limits.max_request_bytes {
            bytes_over_at.get_or_insert(argument);
        }
    }
    let target = "each target";
    if let Some(argument) = keys_over_at {
        problems.extend(keys_problem(&target, attributes.len(), limits).map(|p| (argument, p)));
    }
    if let Some(argument) = bytes_over_at {
        problems.extend(body_problem(&target, body_bytes, limits).map(|p| (argument, p)));
    }
    if problems.is_empty() {
        return Ok(attributes
            .into_iter()
            .map(|(k, (v, _))| (k.to_owned(), v.to_owned()))
            .collect());
    }
    problems.sort_by_key(|(argument, _)| *argument);
    Err(SourceError::Invalid {
        file: COMMAND_LINE.to_owned(),
        problems: problems
            .into_iter()
            .map(|(line, message)| Problem {
                file: COMMAND_LINE.to_owned(),
                line,
                unit: LineUnit::Argument,
                message,
            })
            .collect(),
    })
}

/// What is wrong with a key name, if anything.
fn key_problem(key: &str, limits: &Limits) -> Option<String> {
    if key.is_empty() {
        Some("empty key".to_owned())
    } else if has_control(key) {
        Some(format!("key {key:?} contains a control character"))
    } else if key.len() > limits.max_key_len {
        Some(format!(
            "key {key:?} is {} bytes, over the limit of {} bytes",
            key.len(),
            limits.max_key_len
        ))
    } else {
        None
    }
}

/// What is wrong with a value, if anything.
fn value_problem(key: &str, value: &str, limits: &Limits) -> Option<String> {
    (value.len() > limits.max_value_len).then(|| {
        format!(
            "value of key {key:?} is {} bytes, over the limit of {} bytes",
            value.len(),
            limits.max_value_len
        )
    })
}

/// Two values for one key: `target` is where (none for a command line, whose every target gets
/// every key), `unit` and `line` where the earlier value was given.
fn conflict_problem(
    key: &str,
    target: Option<&dyn fmt::Display>,
    value: &str,
    earlier: &str,
    unit: &str,
    line: u64,
) -> String {
    let on = target.map(|t| format!(" on {t}")).unwrap_or_default();
    format!("conflicting values for key {key:?}{on}: {value:?} here, {earlier:?} on {unit} {line}")
}

/// The bytes the `key_count`th key adds to a target's PATCH body.
fn entry_body_bytes(key_count: usize, key: &str, value: &str) -> usize {
    usize::from(key_count > 1) + json_string_len(key) + 1 + json_string_len(value)
}

/// The guard of keys per target, if `key_count` breaks it.
fn keys_problem(target: &dyn fmt::Display, key_count: usize, limits: &Limits) -> Option<String> {
    (key_count > limits.max_keys_per_target).then(|| {
        format!(
            "{target} would have {key_count} keys, over the limit of {} keys per target",
            limits.max_keys_per_target
        )
    })
}

/// The guard of the request size, if a PATCH body of `body_bytes` breaks it.
fn body_problem(target: &dyn fmt::Display, body_bytes: usize, limits: &Limits) -> Option<String> {
    (body_bytes > limits.max_request_bytes).then(|| {
        format!(
            "the PATCH body for {target} would be {body_bytes} bytes, over the limit of {} bytes per request",
            limits.max_request_bytes
        )
    })
}

/// Parses a canonical hyphenated UUID (any case); records a problem naming the column otherwise.
fn parse_uuid(column: &str, value: &str, problems: &mut Vec<String>) -> Option<Uuid> {
    let parsed = (value.len() == 36)
        .then(|| Uuid::try_parse(value).ok())
        .flatten();
    if parsed.is_none() {
        problems.push(format!("invalid {column} {value:?}: not a UUID"));
    }
    parsed
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Length of `s` as a JSON string literal, escaped the way serde_json does it.
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Selector, SourceFormat};
    use crate::options::Limits;

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";
    const PID: &str = "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";

    fn source() -> SourceInfo {
        SourceInfo {
            path: "t.csv".into(),
            format: SourceFormat::CsvLong,
            sha256: String::new(),
        }
    }

    fn row<'a>(line: u64, pairs: Vec<(&'a str, &'a str)>) -> RawRow<'a> {
        RawRow {
            line,
            conversation_id: CID,
            pairs,
            ..RawRow::default()
        }
    }

    fn messages(err: SourceError) -> Vec<String> {
        err.problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rows_of_one_target_are_grouped_with_their_lines() {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, vec![("tier", "gold")]), true);
        b.add_row(&row(3, vec![("campaign", "")]), true);
        let state = b.finish(source()).unwrap();
        assert_eq!(state.len(), 1);
        let entry = &state.to_entries()[0];
        assert_eq!(entry.target.selector, Selector::Purpose("customer".into()));
        assert_eq!(entry.lines, [2, 3]);
        assert_eq!(entry.attributes["campaign"], "");
    }

    #[test]
    fn uppercase_uuids_are_normalised_to_lowercase() {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        let upper = PID.to_uppercase();
        let cid = CID.to_uppercase();
        b.add_row(
            &RawRow {
                line: 2,
                conversation_id: &cid,
                participant_id: &upper,
                pairs: vec![("k", "v")],
                ..RawRow::default()
            },
            true,
        );
        let state = b.finish(source()).unwrap();
        assert_eq!(state.to_entries()[0].target.conversation_id, CID);
        assert_eq!(
            state.to_entries()[0].target.selector,
            Selector::ParticipantId(PID.into())
        );
    }

    #[test]
    fn conflicting_values_name_both_lines() {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, vec![("tier", "gold")]), true);
        b.add_row(&row(5, vec![("tier", "silver")]), true);
        let err = b.finish(source()).unwrap_err();
        assert_eq!(
            messages(err),
            [format!(
                "t.csv:5: conflicting values for key \"tier\" on conversation {CID} purpose=customer: \"silver\" here, \"gold\" on line 2"
            )]
        );
    }

    #[test]
    fn identical_duplicates_merge_with_a_warning() {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, vec![("tier", "gold")]), true);
        b.add_row(&row(3, vec![("tier", "gold")]), true);
        let state = b.finish(source()).unwrap();
        assert_eq!(state.to_entries()[0].attributes.len(), 1);
        assert_eq!(state.to_entries()[0].lines, [2, 3]);
        assert_eq!(
            state.warnings[0].to_string(),
            "t.csv:3: key \"tier\" repeats the same value as line 2; merged"
        );
    }

    #[test]
    fn skip_invalid_keeps_valid_rows_and_warns_about_the_rest() {
        let options = ReadOptions {
            skip_invalid: true,
            ..ReadOptions::default()
        };
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, vec![("tier", "gold")]), true);
        b.add_row(
            &RawRow {
                line: 3,
                conversation_id: "nope",
                pairs: vec![("tier", "x")],
                ..RawRow::default()
            },
            true,
        );
        let state = b.finish(source()).unwrap();
        assert_eq!(state.len(), 1);
        assert_eq!(
            state.warnings[0].to_string(),
            "t.csv:3: invalid conversation_id \"nope\": not a UUID (row skipped)"
        );
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(
            &RawRow {
                line: 4,
                conversation_id: "x",
                participant_id: "y",
                purpose: "agent",
                pairs: vec![("", "v")],
                ..RawRow::default()
            },
            true,
        );
        let err = b.finish(source()).unwrap_err();
        assert_eq!(err.problems().len(), 4, "{:?}", messages(err));
    }

    #[test]
    fn request_size_guard_counts_the_json_body() {
        // {"attributes":{"k":"vvvv"}} is 27 bytes.
        let options = ReadOptions {
            limits: Limits {
                max_request_bytes: 26,
                ..Limits::default()
            },
            ..ReadOptions::default()
        };
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, vec![("k", "vvvv")]), true);
        let err = b.finish(source()).unwrap_err();
        assert!(messages(err)[0].contains("would be 27 bytes"));
        assert_eq!(
            serde_json::to_string(&serde_json::json!({"attributes": {"k": "vvvv"}}))
                .unwrap()
                .len(),
            27
        );
    }

    #[test]
    fn json_string_len_matches_serde_json() {
        for s in ["", "plain", "q\"b\\", "nl\n\t\u{1}", "é✓"] {
            assert_eq!(
                json_string_len(s),
                serde_json::to_string(s).unwrap().len(),
                "{s:?}"
            );
        }
    }

    fn arguments(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The messages a CSV row with these pairs gets, without their `file:line: `.
    fn row_messages(pairs: Vec<(&str, &str)>) -> Vec<String> {
        let options = ReadOptions::default();
        let mut b = DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options).unwrap();
        b.add_row(&row(2, pairs), true);
        let err = b.finish(source()).unwrap_err();
        err.problems().iter().map(|p| p.message.clone()).collect()
    }

    #[test]
    fn command_line_arguments_are_refused_as_a_row_with_them_is() {
        let long_key = "k".repeat(300);
        let big = "x".repeat(3_000);
        let cases: [&[(&str, &str)]; 3] = [
            &[("k\u{1}", "v")],
            &[(long_key.as_str(), "v")],
            &[("big", big.as_str())],
        ];
        for pairs in cases {
            let err = command_line_attributes(&arguments(pairs), &Limits::default()).unwrap_err();
            let SourceError::Invalid { file, problems } = &err else {
                panic!("expected problems, got {err}");
            };
            assert_eq!(file, COMMAND_LINE);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].unit, LineUnit::Argument);
            assert_eq!(problems[0].line, 1);
            assert_eq!(
                vec![problems[0].message.clone()],
                row_messages(pairs.to_vec()),
                "the same rule and message as a CSV row"
            );
        }
        let err = command_line_attributes(
            &arguments(&[("ok", "1"), ("k\u{1}", "v")]),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["command line: argument 2: key \"k\\u{1}\" contains a control character"]
        );
    }

    #[test]
    fn command_line_arguments_are_held_to_the_per_target_guards_once() {
        let pairs: Vec<(String, String)> = (1..=120)
            .map(|i| (format!("key{i}"), "v".to_owned()))
            .collect();
        let err = command_line_attributes(&pairs, &Limits::default()).unwrap_err();
        assert_eq!(
            messages(err),
            [
                "command line: argument 101: each target would have 120 keys, over the limit of 100 keys per target"
            ]
        );
        // {"attributes":{"k":"vvvv"}} is 27 bytes.
        let limits = Limits {
            max_request_bytes: 26,
            ..Limits::default()
        };
        let err = command_line_attributes(&arguments(&[("k", "vvvv")]), &limits).unwrap_err();
        assert_eq!(
            messages(err),
            [
                "command line: argument 1: the PATCH body for each target would be 27 bytes, over the limit of 26 bytes per request"
            ]
        );
    }

    #[test]
    fn a_key_given_twice_on_the_command_line_must_agree_with_itself() {
        let same = command_line_attributes(
            &arguments(&[("a", "1"), ("b", ""), ("a", "1")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            same,
            Attributes::from([("a".into(), "1".into()), ("b".into(), String::new())])
        );
        let err = command_line_attributes(
            &arguments(&[("a", "1"), ("b", "2"), ("a", "3")]),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            messages(err),
            [
                "command line: argument 3: conflicting values for key \"a\": \"3\" here, \"1\" on argument 1"
            ]
        );
    }

    #[test]
    fn bad_default_purpose_is_an_options_error() {
        let options = ReadOptions {
            default_purpose: " ".into(),
            ..ReadOptions::default()
        };
        assert!(matches!(
            DesiredBuilder::new("t.csv".into(), LineUnit::Line, &options),
            Err(SourceError::Options(_))
        ));
    }
}
