//! The source's own data rows, as read: what the audit store records of a run's input and what
//! result files are written from, without reading the source again.
//!
//! Every cell of every row lives in one text arena (a million rows are a few allocations, not
//! millions); a row becomes an [`InputRow`] with owned strings only when it is asked for, which a
//! run does for the rows of live calls.

use serde::{Deserialize, Serialize};

/// The source's data rows, in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OwnedInputTable", into = "OwnedInputTable")]
pub struct InputTable {
    /// Column names as read. CSV: the header without a BOM and without `attrsync_*` result
    /// columns. SQLite: the selected columns' names.
    pub header: Vec<String>,
    /// Every cell, row after row.
    text: String,
    /// Where each cell ends in `text`.
    cell_ends: Vec<u32>,
    rows: Vec<StoredRow>,
    /// The messages of rows dropped under `skip_invalid`.
    problems: Vec<String>,
}

/// No problem.
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StoredRow {
    line: u64,
    /// Where the row's cells end in `cell_ends`.
    cells_end: u32,
    /// Index into `problems`, or [`NONE`].
    problem: u32,
}

/// One data row of the source, with owned strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRow {
    /// The line this row is known by everywhere else ([`crate::DesiredEntry::lines`],
    /// problems): the CSV record's first physical line, or the SQLite row ordinal.
    pub line: u64,
    /// The cells as read (CSV: without `attrsync_*` columns; SQLite: every value as text,
    /// NULL as empty).
    pub cells: Vec<String>,
    /// For a row dropped under `skip_invalid`: the message it was reported with (several are
    /// joined with `; `). `None` otherwise.
    pub problem: Option<String>,
}

/// One data row of the source, borrowed from its table.
#[derive(Clone, Copy, Debug)]
pub struct InputRowRef<'a> {
    pub line: u64,
    pub problem: Option<&'a str>,
    text: &'a str,
    /// The row's cells' ends, and where the cell before its first ended.
    ends: &'a [u32],
    start: u32,
}

impl<'a> InputRowRef<'a> {
    pub fn cells(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (text, mut start) = (self.text, self.start as usize);
        self.ends.iter().map(move |&end| {
            let cell = &text[start..end as usize];
            start = end as usize;
            cell
        })
    }

    pub fn to_owned(&self) -> InputRow {
        InputRow {
            line: self.line,
            cells: self.cells().map(str::to_owned).collect(),
            problem: self.problem.map(str::to_owned),
        }
    }
}

/// The table holds at most 4 GiB of cell text.
#[derive(Debug)]
pub struct TableFull;

impl InputTable {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Room for `rows` rows of `cells` cells each, `text` bytes in all.
    pub fn reserve(&mut self, rows: usize, cells: usize, text: usize) {
        self.rows.reserve(rows);
        self.cell_ends.reserve(rows.saturating_mul(cells));
        self.text.reserve(text);
    }

    /// Appends a row.
    pub fn push<'c>(
        &mut self,
        line: u64,
        cells: impl IntoIterator<Item = &'c str>,
    ) -> Result<(), TableFull> {
        for cell in cells {
            self.text.push_str(cell);
            self.cell_ends
                .push(u32::try_from(self.text.len()).map_err(|_| TableFull)?);
        }
        self.rows.push(StoredRow {
            line,
            cells_end: u32::try_from(self.cell_ends.len()).map_err(|_| TableFull)?,
            problem: NONE,
        });
        Ok(())
    }

    /// Adds `message` to the problem of the last row, if it is row `line`.
    pub fn add_problem_to_last(&mut self, line: u64, message: &str) {
        let Some(row) = self.rows.last_mut().filter(|r| r.line == line) else {
            return;
        };
        match row.problem {
            NONE => {
                row.problem = self.problems.len() as u32;
                self.problems.push(message.to_owned());
            }
            i => {
                let earlier = &mut self.problems[i as usize];
                earlier.push_str("; ");
                earlier.push_str(message);
            }
        }
    }

    fn row(&self, i: usize) -> InputRowRef<'_> {
        let first = if i == 0 {
            0
        } else {
            self.rows[i - 1].cells_end as usize
        };
        let row = self.rows[i];
        InputRowRef {
            line: row.line,
            problem: (row.problem != NONE).then(|| self.problems[row.problem as usize].as_str()),
            text: &self.text,
            ends: &self.cell_ends[first..row.cells_end as usize],
            start: first.checked_sub(1).map_or(0, |j| self.cell_ends[j]),
        }
    }

    /// Every row, in order.
    pub fn rows(&self) -> impl Iterator<Item = InputRowRef<'_>> {
        (0..self.rows.len()).map(|i| self.row(i))
    }

    /// Every row with owned strings (a copy of the whole table: for small tables and tests).
    pub fn to_rows(&self) -> Vec<InputRow> {
        self.rows().map(|row| row.to_owned()).collect()
    }

    /// A table of rows given whole.
    pub fn from_rows(header: Vec<String>, rows: Vec<InputRow>) -> Self {
        OwnedInputTable { header, rows }.into()
    }
}

/// The table with owned rows: its JSON form in a saved plan.
#[derive(Serialize, Deserialize)]
struct OwnedInputTable {
    header: Vec<String>,
    rows: Vec<InputRow>,
}

impl From<InputTable> for OwnedInputTable {
    fn from(table: InputTable) -> Self {
        Self {
            rows: table.rows().map(|row| row.to_owned()).collect(),
            header: table.header,
        }
    }
}

impl From<OwnedInputTable> for InputTable {
    fn from(owned: OwnedInputTable) -> Self {
        let mut table = InputTable {
            header: owned.header,
            ..InputTable::default()
        };
        for row in owned.rows {
            // A saved plan was read whole into memory: its rows fit.
            if table
                .push(row.line, row.cells.iter().map(String::as_str))
                .is_err()
            {
                break;
            }
            if let Some(problem) = &row.problem {
                table.add_problem_to_last(row.line, problem);
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_as_pushed_with_their_problems() {
        let mut table = InputTable {
            header: vec!["a".into(), "b".into()],
            ..InputTable::default()
        };
        table.push(2, ["x", ""]).unwrap();
        table.push(3, ["", "y z"]).unwrap();
        table.add_problem_to_last(3, "bad");
        table.add_problem_to_last(3, "worse");
        table.add_problem_to_last(2, "not the last row");
        table.push(5, []).unwrap();
        let rows: Vec<InputRow> = table.rows().map(|r| r.to_owned()).collect();
        assert_eq!(
            rows,
            [
                InputRow {
                    line: 2,
                    cells: vec!["x".into(), "".into()],
                    problem: None
                },
                InputRow {
                    line: 3,
                    cells: vec!["".into(), "y z".into()],
                    problem: Some("bad; worse".into())
                },
                InputRow {
                    line: 5,
                    cells: vec![],
                    problem: None
                },
            ]
        );
    }

    #[test]
    fn json_is_the_rows_as_objects_and_back() {
        let mut table = InputTable {
            header: vec!["conversation_id".into()],
            ..InputTable::default()
        };
        table.push(2, ["c"]).unwrap();
        table.add_problem_to_last(2, "p");
        let json = serde_json::to_string(&table).unwrap();
        assert_eq!(
            json,
            r#"{"header":["conversation_id"],"rows":[{"line":2,"cells":["c"],"problem":"p"}]}"#
        );
        assert_eq!(serde_json::from_str::<InputTable>(&json).unwrap(), table);
    }
}
