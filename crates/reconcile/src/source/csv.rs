//! CSV desired states, wide and long form, read as a stream of byte records.
//!
//! Wide form: `conversation_id`, optional selector columns, every other column a key; an empty
//! cell means "no opinion". Long form (header has `key` and `value`): one row per key, an empty
//! `value` means clear; columns other than the known ones are ignored.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};

use super::raw_input::RawInput;
use crate::desired::{DesiredState, SourceFormat, SourceInfo};
use crate::options::ReadOptions;
use crate::problem::{LineUnit, SourceError};
use crate::validate::{DesiredBuilder, RawRow};

const CONVERSATION_ID: &str = "conversation_id";
const SELECTOR_COLUMNS: [&str; 3] = ["participant_id", "purpose", "user_id"];

/// Reads and validates a CSV desired state from a file.
pub fn read_csv(path: &Path, options: &ReadOptions) -> Result<DesiredState, SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_csv_from(file, &path.display().to_string(), options)
}

/// Reads and validates a CSV desired state from any reader; `name` is the file name used in
/// problems and in [`SourceInfo::path`].
pub fn read_csv_from<R: Read>(
    reader: R,
    name: &str,
    options: &ReadOptions,
) -> Result<DesiredState, SourceError> {
    let io_error = |e: csv::Error| SourceError::Io {
        path: name.into(),
        source: match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => std::io::Error::other(format!("{other:?}")),
        },
    };
    let mut builder = DesiredBuilder::new(name.to_owned(), LineUnit::Line, options)?;
    let mut raw = RawInput::new(reader);
    let mut rdr = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&mut raw);

    let mut header = ByteRecord::new();
    let mut pending = ByteRecord::new();
    let mut format = SourceFormat::CsvWide;
    if !rdr.read_byte_record(&mut header).map_err(io_error)? {
        builder.fatal(
            1,
            "empty file: expected a header line with a conversation_id column".to_owned(),
        );
    } else {
        let header_line = rdr.get_mut().next_record_line();
        let has_pending = rdr.read_byte_record(&mut pending).map_err(io_error)?;
        let mut pending_line = rdr.get_mut().next_record_line();
        let unterminated = if has_pending {
            None
        } else {
            rdr_unterminated(&rdr)
        };
        if let Some(line) = unterminated {
            report_unterminated(&mut builder, line);
        } else if let Some(columns) =
            Columns::from_header(&header, header_line, options, &mut builder)
        {
            format = columns.format;
            // Records are processed one behind the parser: the last one is only trusted once the
            // whole input has been scanned for an unterminated quote.
            if !has_pending {
                builder.fatal(header_line, "no data rows after the header".to_owned());
            } else {
                let mut current = ByteRecord::new();
                while rdr.read_byte_record(&mut current).map_err(io_error)? {
                    columns.add_record(&pending, pending_line, &mut builder);
                    std::mem::swap(&mut current, &mut pending);
                    pending_line = rdr.get_mut().next_record_line();
                }
                match rdr_unterminated(&rdr) {
                    Some(line) => report_unterminated(&mut builder, line),
                    None => columns.add_record(&pending, pending_line, &mut builder),
                }
            }
        }
    }
    drop(rdr);
    let sha256 = raw.finish().map_err(|source| SourceError::Io {
        path: name.into(),
        source,
    })?;
    builder.finish(SourceInfo {
        path: name.to_owned(),
        format,
        sha256,
    })
}

fn rdr_unterminated<R: Read>(rdr: &csv::Reader<&mut RawInput<R>>) -> Option<u64> {
    rdr.get_ref().unterminated_quote_line()
}

fn report_unterminated(builder: &mut DesiredBuilder<'_>, line: u64) {
    builder.forget_problems_from(line);
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
    conversation_id: usize,
    /// Indexes of participant_id, purpose, user_id, when present.
    selectors: [Option<usize>; 3],
    /// Wide form: (column index, key). Long form: the `key` and `value` columns.
    keys: Vec<(usize, String)>,
    long: Option<(usize, usize)>,
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
        for (i, raw) in header.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(name) => names.push(name.trim_start_matches('\u{feff}').to_owned()),
                Err(_) => {
                    builder.fatal(line, format!("header column {} is not valid UTF-8", i + 1));
                    names.push(String::new());
                }
            }
        }
        let position = |wanted: &str| names.iter().position(|n| n == wanted);
        let Some(conversation_id) = position(CONVERSATION_ID) else {
            builder.fatal(line, format!("missing required column `{CONVERSATION_ID}`"));
            return None;
        };
        let selectors = SELECTOR_COLUMNS.map(position);
        let long = position("key").zip(position("value"));
        let mut keys = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let known = name == CONVERSATION_ID
                || SELECTOR_COLUMNS.contains(&name.as_str())
                || (long.is_some() && (name == "key" || name == "value"));
            if let Some(first) = names[..i].iter().position(|n| n == name) {
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
            if not_a_key || std::str::from_utf8(&header[i]).is_err() {
                continue;
            }
            match builder.key_problem(name) {
                Some(problem) => builder.fatal(line, format!("column {}: {problem}", i + 1)),
                None => keys.push((i, name.clone())),
            }
        }
        Some(Self {
            format: if long.is_some() {
                SourceFormat::CsvLong
            } else {
                SourceFormat::CsvWide
            },
            count: names.len(),
            names,
            conversation_id,
            selectors,
            keys,
            long,
        })
    }

    fn add_record(&self, record: &ByteRecord, line: u64, builder: &mut DesiredBuilder<'_>) {
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
            conversation_id: fields[self.conversation_id],
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
    use crate::desired::Selector;

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
        assert_eq!(state.entries.len(), 2);
        assert_eq!(
            state.entries[0].target.selector,
            Selector::Purpose("customer".into())
        );
        assert_eq!(
            state.entries[0].attributes.keys().collect::<Vec<_>>(),
            ["campaign"]
        );
        assert_eq!(
            state.entries[1].target.selector,
            Selector::Purpose("agent".into())
        );
        assert_eq!(state.entries[1].attributes["tier"], "gold");
    }

    #[test]
    fn long_form_is_detected_and_empty_value_clears() {
        let state = read(&format!(
            "conversation_id,key,value,note\n{CID},tier,gold,x\n{CID},campaign,,y\n"
        ))
        .unwrap();
        assert_eq!(state.source.format, SourceFormat::CsvLong);
        let attrs = &state.entries[0].attributes;
        assert_eq!(attrs["tier"], "gold");
        assert_eq!(attrs["campaign"], "");
        assert!(!attrs.contains_key("note"));
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let state = read(&format!("\u{feff}conversation_id,tier\r\n{CID},gold\r\n")).unwrap();
        assert_eq!(state.entries[0].attributes["tier"], "gold");
        assert_eq!(state.entries[0].lines, [2]);
    }

    #[test]
    fn sha256_is_of_the_raw_bytes() {
        let input = format!("conversation_id,tier\n{CID},gold\n");
        let state = read(&input).unwrap();
        assert_eq!(
            state.source.sha256,
            super::super::raw_input::sha256_hex(input.as_bytes()).unwrap()
        );
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
        assert_eq!(state.entries[0].attributes["note"], "two\nlines");
    }

    #[test]
    fn ignored_columns_are_not_keys() {
        let options = ReadOptions {
            ignored_columns: vec!["status".into()],
            ..ReadOptions::default()
        };
        let input = format!("conversation_id,tier,status\n{CID},gold,failed\n");
        let state = read_csv_from(input.as_bytes(), "in.csv", &options).unwrap();
        assert!(!state.entries[0].attributes.contains_key("status"));
    }
}
