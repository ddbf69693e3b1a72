//! SQLite desired states: the long form, from a table or a user query, opened read-only.
//!
//! Required columns: `conversation_id`, `key`, `value`; optional: `participant_id`, `purpose`,
//! `user_id`. Every cell is read as text (`CAST(... AS TEXT)`), so integer ids or values work.
//! A NULL `value` means clear, like an empty one; a NULL selector means "not given".
//! Problems are located by 1-based row ordinal of the result set (`file:row N: ...`).
//! An empty table is a valid, empty desired state (a CRM may have nothing to ask for).

use std::path::Path;

use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Executor, Row, SqlSafeStr, Statement};
use tokio::io::AsyncReadExt;

use crate::desired::{DesiredState, SourceFormat, SourceInfo};
use crate::options::ReadOptions;
use crate::problem::{LineUnit, SourceError};
use crate::validate::{DesiredBuilder, RawRow};

/// The default table of an SQLite desired state.
pub const DEFAULT_TABLE: &str = "desired_attributes";

const REQUIRED_COLUMNS: [&str; 3] = ["conversation_id", "key", "value"];
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
    let name = path.display().to_string();
    let mut builder = DesiredBuilder::new(name.clone(), LineUnit::Row, options)?;
    let sha256 = file_sha256(path).await?;
    let sqlite_error = |source| SourceError::Sqlite {
        path: path.to_owned(),
        source,
    };

    let mut conn: SqliteConnection = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|source| SourceError::SqliteOpen {
            path: path.to_owned(),
            source,
        })?;

    let (from, what) = match select {
        SqliteSelect::Table(table) => {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
            )
            .bind(table)
            .fetch_optional(&mut conn)
            .await
            .map_err(sqlite_error)?;
            if exists.is_none() {
                return Err(SourceError::SqliteMissingTable {
                    path: path.to_owned(),
                    table: table.clone(),
                });
            }
            (quote_identifier(table), format!("table `{table}`"))
        }
        SqliteSelect::Query(query) => (
            format!("({})", query.trim().trim_end_matches(';')),
            "the query".to_owned(),
        ),
    };

    let statement = (&mut conn)
        .prepare(AssertSqlSafe(format!("SELECT * FROM {from}")).into_sql_str())
        .await
        .map_err(sqlite_error)?;
    let available: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let missing: Vec<String> = REQUIRED_COLUMNS
        .iter()
        .filter(|c| !available.iter().any(|a| a == *c))
        .map(|c| (*c).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(SourceError::SqliteMissingColumns {
            path: path.to_owned(),
            what,
            missing,
        });
    }
    let selectors = SELECTOR_COLUMNS.map(|c| available.iter().any(|a| a == c));
    // Column order of the generated select: conversation_id, key, value, then present selectors.
    let mut wanted: Vec<&str> = REQUIRED_COLUMNS.to_vec();
    wanted.extend(
        SELECTOR_COLUMNS
            .iter()
            .zip(selectors)
            .filter(|(_, p)| *p)
            .map(|(c, _)| *c),
    );
    let projection: Vec<String> = wanted
        .iter()
        .map(|c| format!("CAST({} AS TEXT)", quote_identifier(c)))
        .collect();
    let sql = format!("SELECT {} FROM {from} AS desired", projection.join(", "));

    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut conn);
    let mut ordinal = 0u64;
    while let Some(row) = rows.try_next().await.map_err(sqlite_error)? {
        ordinal += 1;
        let mut cells: Vec<String> = Vec::with_capacity(wanted.len());
        let mut valid = true;
        for (i, column) in wanted.iter().enumerate() {
            match row.try_get_unchecked::<Option<String>, _>(i) {
                Ok(cell) => cells.push(cell.unwrap_or_default()),
                Err(_) => {
                    builder.row_problem(
                        ordinal,
                        format!("column `{column}` is not valid UTF-8 text"),
                    );
                    cells.push(String::new());
                    valid = false;
                }
            }
        }
        if !valid {
            continue;
        }
        let selector = |column: &str| {
            wanted
                .iter()
                .position(|c| *c == column)
                .map_or("", |i| cells[i].as_str())
        };
        let raw = RawRow {
            line: ordinal,
            conversation_id: &cells[0],
            participant_id: selector("participant_id"),
            purpose: selector("purpose"),
            user_id: selector("user_id"),
            pairs: vec![(cells[1].as_str(), cells[2].as_str())],
        };
        builder.add_row(&raw, true);
    }
    builder.finish(SourceInfo {
        path: name,
        format: SourceFormat::Sqlite,
        sha256,
    })
}

/// `"name"` with embedded quotes doubled: safe to splice into SQL as an identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn file_sha256(path: &Path) -> Result<String, SourceError> {
    use sha2::{Digest, Sha256};
    let io_error = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Selector;
    use sqlx::Connection;

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    async fn database(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
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
        assert_eq!(state.entries.len(), 2);
        assert_eq!(
            state.entries[0].target.selector,
            Selector::Purpose("agent".into())
        );
        assert_eq!(state.entries[1].attributes["old"], "");
        assert_eq!(state.entries[1].lines, [2]);
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
        assert_eq!(state.entries[0].attributes["score"], "42");
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
        assert!(state.entries.is_empty());
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
}
