//! SQLite desired states: the long form, from a table or a user query, opened read-only.
//!
//! Required columns: `conversation_id`, `key`, `value`; optional: `participant_id`, `purpose`,
//! `user_id`; other columns are carried in the input table only. Every cell is read as text
//! (SQLite's own conversion, like `CAST(... AS TEXT)`), so integer ids or values work.
//! A NULL `value` means clear, like an empty one; a NULL selector means "not given".
//! Problems are located by 1-based row ordinal of the result set (`file:row N: ...`).
//! An empty table is a valid, empty desired state (a CRM may have nothing to ask for).
//!
//! `--query` is any single read-only statement returning rows (`SELECT`, `WITH ... SELECT`),
//! comments and a trailing `;` allowed; SQLite itself says whether it is read-only
//! (`sqlite3_stmt_readonly`).
//! The database must be a regular file: SQLite cannot read one from a pipe.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::raw_input::sha256_hex;
use crate::desired::{DesiredState, InputTable, SourceFormat, SourceInfo};
use crate::options::ReadOptions;
use crate::problem::{LineUnit, SourceError};
use crate::validate::{DesiredBuilder, RawRow};

/// The default table of an SQLite desired state.
pub const DEFAULT_TABLE: &str = "desired_attributes";

const REQUIRED_COLUMNS: [&str; 2] = ["key", "value"];
/// A row names its call by one of these: a conversation, or numbers (with an optional queue).
const CALL_COLUMNS: [&str; 3] = ["conversation_id", "customer_number", "dialed_number"];
const QUEUE_COLUMN: &str = "queue_id";
const SELECTOR_COLUMNS: [&str; 3] = ["participant_id", "purpose", "user_id"];

/// What to read from an SQLite database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqliteSelect {
    /// A table (or view) in the long form.
    Table(String),
    /// A `SELECT` returning the long-form columns (`--query`).
    Query(String),
}

impl Default for SqliteSelect {
    fn default() -> Self {
        Self::Table(DEFAULT_TABLE.to_owned())
    }
}

/// Reads and validates a desired state from an SQLite database, opened read-only.
pub async fn read_sqlite(
    path: &Path,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<DesiredState, SourceError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
    read_sqlite_file(path, sha256_hex(&bytes), select, options)
        .await
        .map(super::with_input)
}

/// Reads a database whose bytes were already read and hashed (`sha256`), and dropped: SQLite
/// reads the file itself, on a blocking thread.
pub(crate) async fn read_sqlite_file(
    path: &Path,
    sha256: String,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<(DesiredState, InputTable), SourceError> {
    let (owned_path, select, options) = (path.to_owned(), select.clone(), options.clone());
    tokio::task::spawn_blocking(move || read_database(&owned_path, sha256, &select, &options))
        .await
        .map_err(|e| SourceError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?
}

/// An error of SQLite itself.
pub type SqliteError = rusqlite::Error;

/// Opens a database read-only, as every read of a source does: it is never created or changed.
fn open_read_only(path: &Path) -> Result<Connection, SqliteError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// A read-only connection held open to tell cheaply whether the database changed: its
/// `PRAGMA data_version` changes when another connection commits.
pub struct VersionProbe {
    connection: Connection,
}

impl std::fmt::Debug for VersionProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionProbe").finish_non_exhaustive()
    }
}

impl VersionProbe {
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        let probe = Self {
            connection: open_read_only(path)?,
        };
        probe.data_version()?;
        Ok(probe)
    }

    /// The database's version as this connection sees it.
    pub fn data_version(&self) -> Result<i64, SqliteError> {
        self.connection
            .query_row("PRAGMA data_version", [], |row| row.get(0))
    }
}

fn read_database(
    path: &Path,
    sha256: String,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<(DesiredState, InputTable), SourceError> {
    let name = path.display().to_string();
    let mut builder = DesiredBuilder::new(name.clone(), LineUnit::Row, options)?;
    ensure_regular_file(path)?;
    let sqlite_error = |source| sqlite_error(path, source);

    let conn = open_read_only(path).map_err(|source| match sqlite_error(source) {
        SourceError::Sqlite { path, source } => SourceError::SqliteOpen { path, source },
        other => other,
    })?;

    let (sql, what) = match select {
        SqliteSelect::Table(table) => {
            let exists: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                    [table],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sqlite_error)?;
            if exists.is_none() {
                return Err(SourceError::SqliteMissingTable {
                    path: path.to_owned(),
                    table: table.clone(),
                });
            }
            (
                format!("SELECT * FROM {}", quote_identifier(table)),
                format!("table `{table}`"),
            )
        }
        SqliteSelect::Query(query) => (
            checked_query(path, query, &conn)?.to_owned(),
            "the query".to_owned(),
        ),
    };

    let mut statement = conn.prepare(&sql).map_err(sqlite_error)?;
    let header: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let position = |wanted: &str| header.iter().position(|c| c == wanted);
    let mut missing: Vec<String> = REQUIRED_COLUMNS
        .iter()
        .filter(|c| position(c).is_none())
        .map(|c| (*c).to_owned())
        .collect();
    if CALL_COLUMNS.iter().all(|c| position(c).is_none()) {
        missing.insert(0, CALL_COLUMNS[0].to_owned());
    }
    if !missing.is_empty() {
        return Err(SourceError::SqliteMissingColumns {
            path: path.to_owned(),
            what,
            missing,
        });
    }
    let [key, value] = REQUIRED_COLUMNS.map(|c| position(c).unwrap_or(0));
    let [conversation_id, customer_number, dialed_number] = CALL_COLUMNS.map(position);
    let queue_id = position(QUEUE_COLUMN);
    builder.set_call_columns(
        conversation_id.is_some(),
        customer_number.is_some() || dialed_number.is_some(),
    );
    // A table's rows are counted cheaply (a query's would be run twice): room for them is
    // made at once.
    if let SqliteSelect::Table(table) = select {
        let rows: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_identifier(table)),
                [],
                |row| row.get(0),
            )
            .map_err(sqlite_error)?;
        builder.reserve(usize::try_from(rows).unwrap_or(0), header.len(), 0);
    }
    let selectors = SELECTOR_COLUMNS.map(position);
    let used = |i: usize| {
        i == key
            || i == value
            || [conversation_id, customer_number, dialed_number, queue_id].contains(&Some(i))
            || selectors.contains(&Some(i))
    };
    builder.set_input_header(header.clone());

    // A REAL cell is rare: SQLite itself says how it reads as text, so that it reads as it
    // does in SQLite (`CAST(... AS TEXT)`), not as Rust would print it.
    let mut real_text = conn
        .prepare("SELECT CAST(?1 AS TEXT)")
        .map_err(sqlite_error)?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    let mut numbers = vec![String::new(); header.len()];
    let mut ordinal = 0u64;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        ordinal += 1;
        // Borrowed from the row where SQLite holds text: no allocation per cell of a
        // million-row table.
        let mut cells: Vec<&str> = Vec::with_capacity(header.len());
        let mut invalid = Vec::new();
        for (i, number) in numbers.iter_mut().enumerate() {
            number.clear();
            let cell = row.get_ref(i).map_err(sqlite_error)?;
            if let ValueRef::Integer(n) = cell {
                use std::fmt::Write;
                let _ = write!(number, "{n}");
            } else if let ValueRef::Real(x) = cell {
                *number = real_text
                    .query_row([x], |row| row.get(0))
                    .map_err(sqlite_error)?;
            }
        }
        for (i, number) in numbers.iter().enumerate() {
            let text = match row.get_ref(i).map_err(sqlite_error)? {
                ValueRef::Null => Ok(""),
                ValueRef::Integer(_) | ValueRef::Real(_) => Ok(number.as_str()),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => std::str::from_utf8(bytes),
            };
            match text {
                Ok(cell) => cells.push(cell),
                Err(_) => {
                    invalid.push(i);
                    cells.push("");
                }
            }
        }
        builder.add_input_row(ordinal, cells.iter().copied());
        let mut valid = true;
        for &i in invalid.iter().filter(|&&i| used(i)) {
            builder.row_problem(
                ordinal,
                format!("column `{}` is not valid UTF-8 text", header[i]),
            );
            valid = false;
        }
        if !valid {
            continue;
        }
        let selector = |index: Option<usize>| index.map_or("", |i| cells[i]);
        let raw = RawRow {
            line: ordinal,
            conversation_id: selector(conversation_id),
            customer_number: selector(customer_number),
            dialed_number: selector(dialed_number),
            queue_id: selector(queue_id),
            participant_id: selector(selectors[0]),
            purpose: selector(selectors[1]),
            user_id: selector(selectors[2]),
            pairs: vec![(cells[key], cells[value])],
        };
        builder.add_row(&raw, true);
    }
    builder.finish_with_input(SourceInfo {
        path: name,
        format: SourceFormat::Sqlite,
        sha256,
    })
}

/// SQLite reads a database by seeking in it: a pipe (`<(...)`, `/dev/stdin`) cannot work.
pub(crate) fn ensure_regular_file(path: &Path) -> Result<(), SourceError> {
    let metadata = std::fs::metadata(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err(SourceError::SqlitePipe {
            path: path.to_owned(),
        })
    }
}

/// The statement to run for `--query`: a single statement that returns rows and that SQLite
/// says is read-only (`sqlite3_stmt_readonly`).
fn checked_query<'q>(
    path: &Path,
    query: &'q str,
    conn: &Connection,
) -> Result<&'q str, SourceError> {
    let not_select = |reason: &str| SourceError::SqliteQueryNotSelect {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let statement = single_statement(query).map_err(not_select)?;
    let prepared = conn
        .prepare(statement)
        .map_err(|source| sqlite_error(path, source))?;
    if prepared.column_count() == 0 {
        return Err(not_select("it returns no rows"));
    }
    if !prepared.readonly() {
        return Err(not_select("it writes to the database"));
    }
    Ok(statement)
}

/// The one statement of `sql`, without its terminating `;`: the rest may only be comments,
/// blanks and semicolons. This only finds where the first statement ends (quotes and
/// comments respected); SQLite judges the statement itself.
fn single_statement(sql: &str) -> Result<&str, &'static str> {
    let bytes = sql.as_bytes();
    let mut end = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let skip_to = |from: usize, pattern: &str| {
            sql[from..]
                .find(pattern)
                .map_or(bytes.len(), |at| from + at + pattern.len())
        };
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_to(i + 2, "\n"),
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_to(i + 2, "*/"),
            _ if end.is_some() && b != b';' && !b.is_ascii_whitespace() => {
                return Err("it holds more than one statement");
            }
            b'\'' | b'"' | b'`' => i = skip_to(i + 1, &char::from(b).to_string()),
            b'[' => i = skip_to(i + 1, "]"),
            b';' => {
                end.get_or_insert(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    // A doubled quote inside a literal ends and restarts it: the scan above stays in step.
    let statement = sql[..end.unwrap_or(sql.len())].trim();
    let only_comments = statement
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"));
    if only_comments {
        return Err("it is empty");
    }
    Ok(statement)
}

/// "file is not a database" (SQLITE_NOTADB) or "database disk image is malformed"
/// (SQLITE_CORRUPT, any extended code): SQLite's message, if `error` is one of those.
fn corruption(error: &rusqlite::Error) -> Option<String> {
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return None;
    };
    matches!(
        failure.code,
        rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
    )
    .then(|| message.clone().unwrap_or_else(|| failure.to_string()))
}

fn sqlite_error(path: &Path, source: rusqlite::Error) -> SourceError {
    match corruption(&source) {
        Some(detail) => SourceError::SqliteNotADatabase {
            path: path.to_owned(),
            detail,
        },
        None => SourceError::Sqlite {
            path: path.to_owned(),
            source,
        },
    }
}

/// `"name"` with embedded quotes doubled: safe to splice into SQL as an identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Selector;

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    async fn database(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn reads_the_default_table_with_null_value_as_clear() {
        let (_dir, path) = database(&format!(
            "CREATE TABLE desired_attributes (conversation_id TEXT, purpose TEXT, key TEXT, value TEXT);
             INSERT INTO desired_attributes VALUES ('{CID}', 'agent', 'tier', 'gold'), ('{CID}', NULL, 'old', NULL);"
        ))
        .await;
        let state = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(state.source.format, SourceFormat::Sqlite);
        assert_eq!(state.len(), 2);
        assert_eq!(
            state.to_entries()[0].target.selector,
            Selector::Purpose("agent".into())
        );
        assert_eq!(state.to_entries()[1].attributes["old"], "");
        assert_eq!(state.to_entries()[1].lines, [2]);
    }

    #[tokio::test]
    async fn a_query_can_rename_columns_and_integers_are_read_as_text() {
        let (_dir, path) = database(&format!(
            "CREATE TABLE crm (cid TEXT, k TEXT, v INTEGER);
             INSERT INTO crm VALUES ('{CID}', 'score', 42);"
        ))
        .await;
        let select = SqliteSelect::Query(
            "SELECT cid AS conversation_id, k AS key, v AS value FROM crm;".into(),
        );
        let state = read_sqlite(&path, &select, &ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(state.to_entries()[0].attributes["score"], "42");
    }

    #[tokio::test]
    async fn missing_table_and_columns_are_named() {
        let (_dir, path) = database("CREATE TABLE other (conversation_id TEXT, key TEXT);").await;
        let err = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no table named `desired_attributes`"),
            "{err}"
        );
        let err = read_sqlite(
            &path,
            &SqliteSelect::Table("other".into()),
            &ReadOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("table `other` has no column(s) `value`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn problems_are_located_by_row() {
        let (_dir, path) = database(
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT);
             INSERT INTO desired_attributes VALUES ('nope', 'k', 'v');",
        )
        .await;
        let err = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.problems()[0].to_string(),
            format!(
                "{}:row 1: invalid conversation_id \"nope\": not a UUID",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn an_empty_table_is_an_empty_desired_state() {
        let (_dir, path) = database(
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT);",
        )
        .await;
        let state = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap();
        assert!(state.is_empty());
    }

    #[tokio::test]
    async fn a_missing_database_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let err = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::Io { .. }), "{err}");
        assert!(!path.exists());
    }

    async fn long_form_db() -> (tempfile::TempDir, std::path::PathBuf) {
        database(&format!(
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT, note TEXT, n INTEGER);
             INSERT INTO desired_attributes VALUES ('{CID}', 'tier', 'gold', 'first', 7), ('{CID}', 'old', NULL, NULL, NULL);"
        ))
        .await
    }

    fn message(err: SourceError) -> String {
        err.to_string()
    }

    #[tokio::test]
    async fn a_query_may_have_comments_a_cte_and_a_trailing_semicolon() {
        let (_dir, path) = long_form_db().await;
        for query in [
            "SELECT * FROM desired_attributes; -- all of it",
            "-- leading\nSELECT conversation_id, key, value FROM desired_attributes -- trailing",
            "/* a; b */ WITH d AS (SELECT * FROM desired_attributes WHERE key <> ';') SELECT * FROM d;;\n",
        ] {
            let state = read_sqlite(
                &path,
                &SqliteSelect::Query(query.into()),
                &ReadOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(state.to_entries()[0].attributes["tier"], "gold", "{query}");
        }
    }

    #[tokio::test]
    async fn a_query_that_is_not_a_read_only_select_is_refused() {
        let (_dir, path) = long_form_db().await;
        for (query, reason) in [
            ("DELETE FROM desired_attributes", "it returns no rows"),
            (
                "DELETE FROM desired_attributes RETURNING conversation_id, key, value",
                "it writes to the database",
            ),
            (
                "SELECT * FROM desired_attributes; DELETE FROM desired_attributes",
                "it holds more than one statement",
            ),
            ("-- nothing\n;", "it is empty"),
        ] {
            let err = read_sqlite(
                &path,
                &SqliteSelect::Query(query.into()),
                &ReadOptions::default(),
            )
            .await
            .unwrap_err();
            assert_eq!(
                message(err),
                format!(
                    "{}: --query must be a SELECT (read-only) statement: {reason}",
                    path.display()
                ),
                "{query}"
            );
        }
        // Still there: nothing was run.
        let state = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(state.to_entries()[0].attributes.len(), 2);
    }

    #[test]
    fn single_statement_respects_quotes_and_comments() {
        assert_eq!(
            single_statement("SELECT ';' -- ;x\n ; /* */ ;"),
            Ok("SELECT ';' -- ;x")
        );
        assert_eq!(
            single_statement("SELECT \"a;b\", 'it''s;'"),
            Ok("SELECT \"a;b\", 'it''s;'")
        );
        assert!(single_statement("SELECT 1; SELECT 2").is_err());
    }

    #[tokio::test]
    async fn sqlite_rows_carry_every_selected_column_as_text() {
        let (_dir, path) = long_form_db().await;
        let bytes = std::fs::read(&path).unwrap();
        let (state, input) = read_sqlite_file(
            &path,
            sha256_hex(&bytes),
            &SqliteSelect::default(),
            &ReadOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            input.header,
            ["conversation_id", "key", "value", "note", "n"]
        );
        let rows: Vec<(u64, Vec<String>)> =
            input.rows().map(|r| (r.line, r.to_owned().cells)).collect();
        let text = |cells: [&str; 5]| cells.map(str::to_owned).to_vec();
        assert_eq!(
            rows,
            [
                (1, text([CID, "tier", "gold", "first", "7"])),
                (2, text([CID, "old", "", "", ""])),
            ]
        );
        assert_eq!(state.to_entries()[0].lines, [1, 2]);
        assert_eq!(state.source.sha256, sha256_hex(&bytes));
    }

    #[tokio::test]
    async fn numbers_and_blobs_read_as_sqlite_casts_them_to_text() {
        let (_dir, path) = database(&format!(
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value, note);
             INSERT INTO desired_attributes VALUES
               ('{CID}', 'a', 42.0, x'ff'), ('{CID}', 'b', 1e20, NULL), ('{CID}', 'c', 0.1 + 0.2, NULL),
               ('{CID}', 'd', -7, NULL), ('{CID}', 'e', 2.5e-7, NULL), ('{CID}', 'f', x'6f6b', NULL);"
        ))
        .await;
        let conn = Connection::open(&path).unwrap();
        let sqlite_text: Vec<String> = conn
            .prepare("SELECT CAST(value AS TEXT) FROM desired_attributes")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            sqlite_text,
            ["42.0", "1.0e+20", "0.3", "-7", "2.5e-07", "ok"]
        );
        let state = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap();
        let attributes = &state.to_entries()[0].attributes;
        let read: Vec<&str> = ["a", "b", "c", "d", "e", "f"]
            .map(|k| attributes[k].as_str())
            .to_vec();
        assert_eq!(read, sqlite_text);
        // Invalid UTF-8 in a column attrsync does not use is carried, not refused.
        assert_eq!(state.input.rows().next().unwrap().to_owned().cells[3], "");
    }

    #[tokio::test]
    async fn a_truncated_database_is_one_clear_error() {
        let (dir, path) = database(&format!(
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO desired_attributes SELECT '{CID}', 'k' || i, printf('%0100d', i) FROM n;"
        ))
        .await;
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
        for keep in [bytes.len() / 2, 100] {
            let truncated = dir.path().join(format!("truncated-{keep}.db"));
            std::fs::write(&truncated, &bytes[..keep]).unwrap();
            let err = read_sqlite(
                &truncated,
                &SqliteSelect::default(),
                &ReadOptions::default(),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(err, SourceError::SqliteNotADatabase { .. }),
                "{keep}: {err}"
            );
            let text = message(err);
            assert!(
                text.starts_with(&format!(
                    "{}: not a SQLite database, or corrupt: ",
                    truncated.display()
                )),
                "{text}"
            );
            assert!(
                text.ends_with("database disk image is malformed")
                    || text.ends_with("file is not a database"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_text_file_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        std::fs::write(&path, format!("conversation_id,key,value\n{CID},k,v\n")).unwrap();
        let err = read_sqlite(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            message(err),
            format!(
                "{}: not a SQLite database, or corrupt: file is not a database",
                path.display()
            )
        );
    }
}
