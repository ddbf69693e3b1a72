//! CSV desired states, wide and long form, parsed from the whole input held in memory.
//!
//! Wide form: `conversation_id`, optional selector columns, every other column a key; an empty
//! cell means "no opinion". Long form (header has `key` and `value`): one row per key, an empty
//! `value` means clear; columns other than the known ones are ignored. Header names are trimmed;
//! an empty or duplicate name is an error.
//!
//! The source is read exactly once (so a pipe or `/dev/stdin` works) and its SHA-256 is of those
//! same bytes.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};

use super::raw_input::{LineIndex, sha256_hex, unterminated_quote};
use super::with_input;
use crate::desired::{DesiredState, InputTable, SourceFormat, SourceInfo};
use crate::options::ReadOptions;
use crate::problem::{LineUnit, SourceError};
use crate::validate::{DesiredBuilder, RawRow};

const CONVERSATION_ID: &str = "conversation_id";
/// The columns that select calls by number instead of by conversation id.
const NUMBER_COLUMNS: [&str; 3] = ["customer_number", "dialed_number", "queue_id"];
const SELECTOR_COLUMNS: [&str; 3] = ["participant_id", "purpose", "user_id"];
/// Columns of a result file (`attrsync_status`, ...): never part of the input table.
const RESULT_COLUMN_PREFIX: &str = "attrsync_";

/// Reads and validates a CSV desired state from a file (read once, whole).
pub fn read_csv(path: &Path, options: &ReadOptions) -> Result<DesiredState, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_csv(&bytes, &path.display().to_string(), options).map(with_input)
}

/// Reads and validates a CSV desired state from any reader (read to its end, once); `name` is
/// the file name used in problems and in [`SourceInfo::path`].
pub fn read_csv_from<R: Read>(
    mut reader: R,
    name: &str,
    options: &ReadOptions,
) -> Result<DesiredState, SourceError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| SourceError::Io {
            path: name.into(),
            source,
        })?;
    parse_csv(&bytes, name, options).map(with_input)
}

/// Parses and validates a whole CSV input; also returns the input table (its data rows as read).
pub(crate) fn parse_csv(
    bytes: &[u8],
    name: &str,
    options: &ReadOptions,
) -> Result<(DesiredState, InputTable), SourceError> {
    let mut builder = DesiredBuilder::new(name.to_owned(), LineUnit::Line, options)?;
    let lines = LineIndex::new(bytes);
    let unterminated = unterminated_quote(bytes).map(|offset| lines.line_of(offset));
    let mut rdr = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    // Reading from memory, the only possible error is an I/O one, which a slice never gives.
    let mut next = |record: &mut ByteRecord| -> Option<u64> {
        match rdr.read_byte_record(record) {
            Ok(true) => Some(lines.record_line(record.position().map_or(0, csv::Position::byte))),
            Ok(false) | Err(_) => None,
        }
    };

    let mut header = ByteRecord::new();
    let mut pending = ByteRecord::new();
    let mut format = SourceFormat::CsvWide;
    if let Some(header_line) = next(&mut header) {
        let pending_line = next(&mut pending);
        match (pending_line, unterminated) {
            // The header itself runs away: nothing else can be trusted.
            (None, Some(line)) => report_unterminated(&mut builder, line),
            _ => {
                if let Some(columns) =
                    Columns::from_header(&header, header_line, options, &mut builder)
                {
                    format = columns.format;
                    builder.set_input_header(columns.input_header(&header));
                    builder.reserve(lines.count(), columns.count, bytes.len());
                    match pending_line {
                        None => builder.fatal(header_line, "no data rows after the header".into()),
                        Some(mut pending_line) => {
                            // Records are processed one behind the parser: the last one is the
                            // runaway field of an unterminated quote, if there is one.
                            let mut current = ByteRecord::new();
                            while let Some(current_line) = next(&mut current) {
                                columns.add_record(&pending, pending_line, &mut builder);
                                std::mem::swap(&mut current, &mut pending);
                                pending_line = current_line;
                            }
                            match unterminated {
                                Some(line) => report_unterminated(&mut builder, line),
                                None => columns.add_record(&pending, pending_line, &mut builder),
                            }
                        }
                    }
                }
            }
        }
    } else {
        builder.fatal(
            1,
            "empty file: expected a header line with a conversation_id column".to_owned(),
        );
    }
    builder.finish_with_input(SourceInfo {
        path: name.to_owned(),
        format,
        sha256: sha256_hex(bytes),
    })
}

fn report_unterminated(builder: &mut DesiredBuilder<'_>, line: u64) {
    builder.fatal(
        line,
        "unterminated quoted field: the quote opened on this line is never closed".to_owned(),
    );
}

/// What each column of the header means.
struct Columns {
    format: SourceFormat,
    count: usize,
    names: Vec<String>,
    conversation_id: Option<usize>,
    /// Indexes of customer_number, dialed_number, queue_id, when present.
    numbers: [Option<usize>; 3],
    /// Indexes of participant_id, purpose, user_id, when present.
    selectors: [Option<usize>; 3],
    /// Wide form: (column index, key). Long form: the `key` and `value` columns.
    keys: Vec<(usize, String)>,
    long: Option<(usize, usize)>,
    /// Per header column: whether it is a result column (`attrsync_*`), left out of the input table.
    result_column: Vec<bool>,
}

impl Columns {
    /// Interprets the header, reporting every problem in it; `None` if rows cannot be read at all.
    fn from_header(
        header: &ByteRecord,
        line: u64,
        options: &ReadOptions,
        builder: &mut DesiredBuilder<'_>,
    ) -> Option<Self> {
        let mut names = Vec::with_capacity(header.len());
        let mut valid = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(name) => {
                    names.push(name.trim_start_matches('\u{feff}').trim().to_owned());
                    valid.push(true);
                }
                Err(_) => {
                    builder.fatal(line, format!("header column {} is not valid UTF-8", i + 1));
                    names.push(String::new());
                    valid.push(false);
                }
            }
        }
        let mut first_position: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if valid[i] {
                first_position.entry(name.as_str()).or_insert(i);
            }
        }
        let position = |wanted: &str| first_position.get(wanted).copied();
        let conversation_id = position(CONVERSATION_ID);
        let numbers = NUMBER_COLUMNS.map(position);
        if conversation_id.is_none() && numbers[0].is_none() && numbers[1].is_none() {
            builder.fatal(
                line,
                format!(
                    "missing required column `{CONVERSATION_ID}` (or `customer_number` or \
                     `dialed_number`, to select calls by number)"
                ),
            );
            return None;
        }
        builder.set_call_columns(
            conversation_id.is_some(),
            numbers[0].is_some() || numbers[1].is_some(),
        );
        let selectors = SELECTOR_COLUMNS.map(position);
        let long = position("key").zip(position("value"));
        let mut keys = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if !valid[i] {
                continue;
            }
            if name.is_empty() {
                builder.fatal(line, format!("column {}: empty column name", i + 1));
                continue;
            }
            let known = name == CONVERSATION_ID
                || NUMBER_COLUMNS.contains(&name.as_str())
                || SELECTOR_COLUMNS.contains(&name.as_str())
                || (long.is_some() && (name == "key" || name == "value"));
            let first = first_position[name.as_str()];
            if first != i {
                // In the long form unknown columns are ignored, duplicates included.
                if long.is_none() || known {
                    builder.fatal(
                        line,
                        format!(
                            "duplicate column {name:?} (columns {} and {})",
                            first + 1,
                            i + 1
                        ),
                    );
                }
                continue;
            }
            let not_a_key = known || long.is_some() || options.ignored_columns.contains(name);
            if not_a_key {
                continue;
            }
            match builder.key_problem(name) {
                Some(problem) => builder.fatal(line, format!("column {}: {problem}", i + 1)),
                None => keys.push((i, name.clone())),
            }
        }
        let result_column = names
            .iter()
            .map(|n| n.starts_with(RESULT_COLUMN_PREFIX))
            .collect();
        Some(Self {
            format: if long.is_some() {
                SourceFormat::CsvLong
            } else {
                SourceFormat::CsvWide
            },
            count: names.len(),
            names,
            conversation_id,
            numbers,
            selectors,
            keys,
            long,
            result_column,
        })
    }

    /// The cells of a record as the input table keeps them: as read, without result columns.
    fn input_cells<'r>(
        &'r self,
        record: &'r ByteRecord,
    ) -> impl Iterator<Item = std::borrow::Cow<'r, str>> + 'r {
        record
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.result_column.get(*i).copied().unwrap_or(false))
            .map(|(_, cell)| String::from_utf8_lossy(cell))
    }

    /// The header as the input table keeps it: as read (untrimmed), without a BOM.
    fn input_header(&self, header: &ByteRecord) -> Vec<String> {
        let mut cells: Vec<String> = self.input_cells(header).map(|c| c.into_owned()).collect();
        if let Some(first) = cells.first_mut()
            && let Some(rest) = first.strip_prefix('\u{feff}')
        {
            *first = rest.to_owned();
        }
        cells
    }

    fn add_record(&self, record: &ByteRecord, line: u64, builder: &mut DesiredBuilder<'_>) {
        let cells: Vec<std::borrow::Cow<'_, str>> = self.input_cells(record).collect();
        builder.add_input_row(line, cells.iter().map(|c| c.as_ref()));
        if record.len() != self.count {
            builder.row_problem(
                line,
                format!("expected {} fields, found {}", self.count, record.len()),
            );
            return;
        }
        let mut fields = Vec::with_capacity(record.len());
        let mut valid = true;
        for (i, raw) in record.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(field) => fields.push(field),
                Err(e) => {
                    builder.row_problem(
                        line,
                        format!(
                            "column {:?} is not valid UTF-8 (bad byte at offset {})",
                            self.names[i],
                            e.valid_up_to()
                        ),
                    );
                    fields.push("");
                    valid = false;
                }
            }
        }
        if !valid {
            return;
        }
        let cell = |index: Option<usize>| index.map_or("", |i| fields[i]);
        let pairs = match self.long {
            Some((key, value)) => vec![(fields[key], fields[value])],
            None => self
                .keys
                .iter()
                .filter(|(i, _)| !fields[*i].is_empty())
                .map(|(i, key)| (key.as_str(), fields[*i]))
                .collect(),
        };
        let row = RawRow {
            line,
            conversation_id: cell(self.conversation_id),
            customer_number: cell(self.numbers[0]),
            dialed_number: cell(self.numbers[1]),
            queue_id: cell(self.numbers[2]),
            participant_id: cell(self.selectors[0]),
            purpose: cell(self.selectors[1]),
            user_id: cell(self.selectors[2]),
            pairs,
        };
        builder.add_row(&row, self.long.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{InputRow, Selector};

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    fn read(input: &str) -> Result<DesiredState, SourceError> {
        read_csv_from(input.as_bytes(), "in.csv", &ReadOptions::default())
    }

    fn problems(input: &str) -> Vec<String> {
        read(input)
            .unwrap_err()
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn wide_form_empty_cells_are_no_opinion() {
        let state = read(&format!(
            "conversation_id,purpose,campaign,tier\n{CID},,spring,\n{CID},agent,,gold\n"
        ))
        .unwrap();
        assert_eq!(state.source.format, SourceFormat::CsvWide);
        assert_eq!(state.len(), 2);
        assert_eq!(
            state.to_entries()[0].target.selector,
            Selector::Purpose("customer".into())
        );
        assert_eq!(
            state.to_entries()[0].attributes.keys().collect::<Vec<_>>(),
            ["campaign"]
        );
        assert_eq!(
            state.to_entries()[1].target.selector,
            Selector::Purpose("agent".into())
        );
        assert_eq!(state.to_entries()[1].attributes["tier"], "gold");
    }

    #[test]
    fn long_form_is_detected_and_empty_value_clears() {
        let state = read(&format!(
            "conversation_id,key,value,note\n{CID},tier,gold,x\n{CID},campaign,,y\n"
        ))
        .unwrap();
        assert_eq!(state.source.format, SourceFormat::CsvLong);
        let attrs = &state.to_entries()[0].attributes;
        assert_eq!(attrs["tier"], "gold");
        assert_eq!(attrs["campaign"], "");
        assert!(!attrs.contains_key("note"));
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let state = read(&format!("\u{feff}conversation_id,tier\r\n{CID},gold\r\n")).unwrap();
        assert_eq!(state.to_entries()[0].attributes["tier"], "gold");
        assert_eq!(state.to_entries()[0].lines, [2]);
    }

    #[test]
    fn long_form_accepts_bom_with_any_line_ending() {
        let input = format!("\u{feff}conversation_id,key,value\n{CID},tier,gold\n{CID},old,\n");
        for (style, input) in line_endings(&input) {
            let state = read(&input).unwrap();
            assert_eq!(state.source.format, SourceFormat::CsvLong, "{style}");
            assert_eq!(state.to_entries()[0].attributes["old"], "", "{style}");
            assert_eq!(state.to_entries()[0].lines, [2, 3], "{style}");
        }
    }

    #[test]
    fn sha256_is_of_the_raw_bytes() {
        let input = format!("conversation_id,tier\n{CID},gold\n");
        let state = read(&input).unwrap();
        assert_eq!(state.source.sha256, sha256_hex(input.as_bytes()));
    }

    #[test]
    fn unterminated_quote_is_the_only_problem_reported_for_its_record() {
        assert_eq!(
            problems(&format!("conversation_id,tier\n{CID},gold\n{CID},\"open\n")),
            ["in.csv:3: unterminated quoted field: the quote opened on this line is never closed"]
        );
    }

    #[test]
    fn multiline_quoted_value_is_fine() {
        let state = read(&format!("conversation_id,note\n{CID},\"two\nlines\"\n")).unwrap();
        assert_eq!(state.to_entries()[0].attributes["note"], "two\nlines");
    }

    #[test]
    fn ignored_columns_are_not_keys() {
        let options = ReadOptions {
            ignored_columns: vec!["status".into()],
            ..ReadOptions::default()
        };
        let input = format!("conversation_id,tier,status\n{CID},gold,failed\n");
        let state = read_csv_from(input.as_bytes(), "in.csv", &options).unwrap();
        assert!(!state.to_entries()[0].attributes.contains_key("status"));
    }

    fn parse(
        input: &str,
        options: &ReadOptions,
    ) -> Result<(DesiredState, InputTable), SourceError> {
        parse_csv(input.as_bytes(), "in.csv", options)
    }

    /// The three line-ending styles of one input written with `\n`.
    fn line_endings(input: &str) -> [(&'static str, String); 3] {
        [
            ("LF", input.to_owned()),
            ("CRLF", input.replace('\n', "\r\n")),
            ("CR", input.replace('\n', "\r")),
        ]
    }

    #[test]
    fn header_names_are_trimmed() {
        let state = read(&format!(" conversation_id , tier \n{CID},gold\n")).unwrap();
        assert_eq!(state.to_entries()[0].attributes["tier"], "gold");
    }

    #[test]
    fn blank_header_cells_are_errors_naming_the_column() {
        assert_eq!(
            problems(&format!("conversation_id,   ,tier,\n{CID},x,gold,\n")),
            [
                "in.csv:1: column 2: empty column name",
                "in.csv:1: column 4: empty column name"
            ]
        );
        // The long form ignores unknown columns, but not nameless ones.
        assert_eq!(
            problems(&format!("conversation_id,key,value,\n{CID},k,v,\n")),
            ["in.csv:1: column 4: empty column name"]
        );
    }

    #[test]
    fn duplicate_columns_after_trimming_name_both_positions() {
        assert_eq!(
            problems(&format!("conversation_id,tier, tier \n{CID},a,b\n")),
            ["in.csv:1: duplicate column \"tier\" (columns 2 and 3)"]
        );
    }

    #[test]
    fn line_numbers_agree_for_lf_crlf_and_cr_only() {
        let input = format!(
            "conversation_id,purpose,note\n{CID},customer,x\n\nnope,,y\n{CID},agent,\"two\nlines\"\nbad,,z\n"
        );
        for (style, input) in line_endings(&input) {
            assert_eq!(
                problems(&input),
                [
                    "in.csv:4: invalid conversation_id \"nope\": not a UUID",
                    "in.csv:7: invalid conversation_id \"bad\": not a UUID"
                ],
                "{style}"
            );
        }
        for (style, input) in line_endings(&format!("conversation_id,tier\n\n{CID},\"open\n")) {
            assert_eq!(
                problems(&input),
                [
                    "in.csv:3: unterminated quoted field: the quote opened on this line is never closed"
                ],
                "{style}"
            );
        }
    }

    #[test]
    fn input_table_is_the_same_for_every_line_ending() {
        let input =
            format!("\u{feff}conversation_id,tier,note\n{CID},gold,\"a\nb\"\n\n{CID},gold,\n");
        let mut tables = Vec::new();
        for (style, input) in line_endings(&input) {
            let (state, table) = parse(&input, &ReadOptions::default()).unwrap();
            assert_eq!(state.to_entries()[0].lines, [2, 5], "{style}");
            let lines: Vec<u64> = table.rows().map(|r| r.line).collect();
            assert_eq!(lines, [2, 5], "{style}");
            tables.push(table.to_rows());
        }
        // The embedded line break is kept as read, so only the note of line 2 differs.
        for table in &mut tables {
            table[0].cells[2] = table[0].cells[2].replace(['\r', '\n'], "|");
        }
        let expected = vec![
            InputRow {
                line: 2,
                cells: vec![CID.into(), "gold".into(), "a|b".into()],
                problem: None,
            },
            InputRow {
                line: 5,
                cells: vec![CID.into(), "gold".into(), String::new()],
                problem: None,
            },
        ];
        assert_eq!(tables[0], expected);
        assert!(tables[1][0].cells[2] == "a||b" && tables[2][0].cells[2] == "a|b");
        assert_eq!(tables[0][1..], tables[1][1..]);
        assert_eq!(tables[0][1..], tables[2][1..]);
    }

    #[test]
    fn input_table_has_every_row_and_skipped_rows_carry_their_problem() {
        let options = ReadOptions {
            skip_invalid: true,
            ..ReadOptions::default()
        };
        let input = format!(
            "conversation_id, tier ,attrsync_status,purpose\n{CID},gold,failed,\nnope,x,,\n{CID},y,,a,extra\nnah,,,p\n"
        );
        let (state, table) = parse(&input, &options).unwrap();
        assert_eq!(table.header, ["conversation_id", " tier ", "purpose"]);
        let rows: Vec<(u64, Vec<&str>, Option<&str>)> = table
            .rows()
            .map(|r| (r.line, r.cells().collect(), r.problem))
            .collect();
        assert_eq!(
            rows,
            [
                (2, vec![CID, "gold", ""], None),
                (
                    3,
                    vec!["nope", "x", ""],
                    Some("invalid conversation_id \"nope\": not a UUID (row skipped)")
                ),
                (
                    4,
                    vec![CID, "y", "a", "extra"],
                    Some("expected 4 fields, found 5 (row skipped)")
                ),
                (
                    5,
                    vec!["nah", "", "p"],
                    Some("invalid conversation_id \"nah\": not a UUID (row skipped)")
                ),
            ]
        );
        for row in table.rows() {
            if let Some(problem) = row.problem {
                assert!(
                    state
                        .warnings
                        .iter()
                        .any(|w| w.line == row.line && w.message == problem)
                );
            }
        }
        assert_eq!(state.to_entries()[0].lines, [2]);
    }

    #[test]
    fn rows_may_select_calls_by_number_in_any_writing() {
        let input = "customer_number,dialed_number,queue_id,tier\n\
                     +1 (555) 123-0001,,,gold\n\
                     tel:+15551230002,,,silver\n\
                     (555) 123-0003,,,bronze\n\
                     ,1-800-555-0100,7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a,spring\n\
                     +15551230001,,,gold\n";
        let options = ReadOptions {
            default_region: Some("US".parse().unwrap()),
            ..ReadOptions::default()
        };
        let (state, input) = parse(input, &options).unwrap();
        assert!(state.is_empty(), "no row names a conversation");
        let rules = state.number_rules();
        assert_eq!(rules.len(), 4, "line 6 repeats line 2 and merges into it");
        assert_eq!(
            rules.describe(0),
            "calls with customer_number=+15551230001 purpose=customer"
        );
        assert_eq!(rules.lines(0), [2, 6]);
        assert_eq!(
            rules.describe(3),
            "calls with dialed_number=+18005550100 \
             queue_id=7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a purpose=customer"
        );
        assert_eq!(
            rules.describe(2),
            "calls with customer_number=+15551230003 purpose=customer"
        );
        assert_eq!(input.len(), 5);
    }

    #[test]
    fn a_bad_number_or_a_row_naming_its_call_twice_is_an_error_with_its_line() {
        let input = "conversation_id,customer_number,queue_id,tier\n\
                     ,555-0100,,gold\n\
                     ,+15551230001,not-a-queue,gold\n\
                     3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f,+15551230001,,gold\n\
                     ,,,gold\n\
                     ,+15551230009,,gold\n\
                     ,+1 555 123 0009,,silver\n";
        let err = parse(input, &ReadOptions::default()).unwrap_err();
        let SourceError::Invalid { problems, .. } = err else {
            panic!("not an input error: {err}");
        };
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.message))
            .collect();
        assert_eq!(
            lines,
            [
                "2: invalid customer_number: \"555-0100\" is not a phone number: it has no \
                 country code (+...); numbers written nationally need --default-region (e.g. \
                 US, GB)",
                "3: invalid queue_id \"not-a-queue\": not a UUID",
                "4: both conversation_id and a number: give one (conversation_id names one \
                 call, customer_number or dialed_number every call with that number)",
                "5: missing conversation_id, customer_number or dialed_number",
                "7: conflicting values for key \"tier\" on calls with \
                 customer_number=+15551230009 purpose=customer: \"silver\" here, \"gold\" on \
                 line 6",
            ]
        );
    }

    #[test]
    fn the_long_form_selects_calls_by_number_too_with_a_participant_selector() {
        let input = "dialed_number,queue_id,purpose,key,value\n\
                     +18005550100,,customer,campaign,spring\n\
                     +18005550100,,agent,campaign,spring\n\
                     +18005550100,,customer,promo,\n";
        let (state, _) = parse(input, &ReadOptions::default()).unwrap();
        let rules = state.number_rules();
        assert_eq!(rules.len(), 2, "one rule per selector");
        assert_eq!(
            rules.describe(0),
            "calls with dialed_number=+18005550100 purpose=customer"
        );
        assert_eq!(rules.lines(0), [2, 4]);
        let entry = rules.entry_for(0, "c-1");
        assert_eq!(entry.attributes["campaign"], "spring");
        assert_eq!(entry.attributes["promo"], "", "an empty value clears");
        assert_eq!(
            rules.describe(1),
            "calls with dialed_number=+18005550100 purpose=agent"
        );
    }
}
