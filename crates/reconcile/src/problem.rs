//! Problems found in a desired-state source, and the error that carries them.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a [`Problem`]'s `line` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineUnit {
    /// A 1-based line of a text file (a CSV record's first line).
    Line,
    /// A 1-based row ordinal of an SQLite result set.
    Row,
    /// A 1-based position in a saved plan's list of targets.
    Target,
    /// A 1-based position among a command line's `KEY=VALUE` arguments (`set`, `tag`).
    Argument,
}

/// One thing wrong (or worth a warning) in the input, rendered `file:line: message`
/// (SQLite: `file:row N: message`; a saved plan: `file:target N: message`; a command line:
/// `command line: argument N: message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub unit: LineUnit,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            LineUnit::Line => write!(f, "{}:{}: {}", self.file, self.line, self.message),
            LineUnit::Row => write!(f, "{}:row {}: {}", self.file, self.line, self.message),
            LineUnit::Target => write!(f, "{}:target {}: {}", self.file, self.line, self.message),
            LineUnit::Argument => {
                write!(f, "{}: argument {}: {}", self.file, self.line, self.message)
            }
        }
    }
}

/// How many problems a caller shows by default before summarising the rest.
pub const DEFAULT_SHOWN_PROBLEMS: usize = 20;

/// Renders at most `limit` problems, one per line, then `... and K more` if some were left out.
pub fn render_problems(problems: &[Problem], limit: usize) -> String {
    let mut out = String::new();
    for problem in problems.iter().take(limit) {
        out.push_str(&problem.to_string());
        out.push('\n');
    }
    if problems.len() > limit {
        out.push_str(&format!("... and {} more\n", problems.len() - limit));
    }
    out
}

/// Why a desired state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The input was read but is invalid; every problem of the whole input is here, in input order.
    #[error("{}: {} problem(s) in the desired state", file, problems.len())]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    #[error("invalid read options: {0}")]
    Options(String),
    #[error("cannot open SQLite database {} read-only", path.display())]
    SqliteOpen {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{}: no table named `{table}` in the database", path.display())]
    SqliteMissingTable { path: PathBuf, table: String },
    #[error("{}: {what} has no column(s) {} (required: conversation_id (or customer_number or dialed_number, with an optional queue_id), key, value; optional: participant_id, purpose, user_id)",
        path.display(), missing.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "))]
    SqliteMissingColumns {
        path: PathBuf,
        /// `table `desired_attributes`` or `the query`.
        what: String,
        missing: Vec<String>,
    },
    /// SQLite cannot read a database from a pipe (`<(...)`, `/dev/stdin`, a FIFO).
    #[error("{}: not a regular file: reading an SQLite database from a pipe is not supported (save it to a file first)", path.display())]
    SqlitePipe { path: PathBuf },
    /// A truncated, corrupt or non-SQLite file given as an SQLite source.
    #[error("{}: not a SQLite database, or corrupt: {detail}", path.display())]
    SqliteNotADatabase { path: PathBuf, detail: String },
    /// `--query` is not a single read-only statement returning rows.
    #[error("{}: --query must be a SELECT (read-only) statement: {reason}", path.display())]
    SqliteQueryNotSelect { path: PathBuf, reason: String },
    #[error("{}: SQLite query failed", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl SourceError {
    /// The problems of an [`SourceError::Invalid`] input; empty for other errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: u64) -> Problem {
        Problem {
            file: "in.csv".into(),
            line,
            unit: LineUnit::Line,
            message: "bad".into(),
        }
    }

    #[test]
    fn problem_renders_file_line_message() {
        assert_eq!(problem(7).to_string(), "in.csv:7: bad");
        let row = Problem {
            unit: LineUnit::Row,
            ..problem(3)
        };
        assert_eq!(row.to_string(), "in.csv:row 3: bad");
    }

    #[test]
    fn render_problems_caps_and_counts_the_rest() {
        let problems: Vec<_> = (1..=5).map(problem).collect();
        assert_eq!(
            render_problems(&problems, 2),
            "in.csv:1: bad\nin.csv:2: bad\n... and 3 more\n"
        );
        assert_eq!(render_problems(&problems[..1], 2), "in.csv:1: bad\n");
    }
}
