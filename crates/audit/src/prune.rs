//! Retention: deleting whole runs that ended long ago, with every row that belongs to them.
//!
//! A run is *prunable* when it ended before a cutoff and is not in progress:
//! - it *ended* at its recorded finish; a run whose process died without recording one (it reads
//!   as `interrupted`) ended at its last heartbeat (its start if it never heartbeated). The end,
//!   not the start, counts, so that a long campaign is kept for the whole retention after it
//!   stopped, not after it began;
//! - *in progress* is what every reader of the store means by a `running` run
//!   ([`RunRecord::status`]): its process is alive on this host, or, from another host, its
//!   heartbeat is recent. Such a run is never pruned, however old it is.
//!
//! The rows that belong to a run are found in the schema: every table with a foreign key to
//! `runs` (targets, requests, input_rows and run_processes today), so a table a later migration
//! adds is pruned with the rest. [`AuditStore::prune`] deletes in one `BEGIN IMMEDIATE`
//! transaction, choosing the runs inside it, so a run that a `--resume` takes over meanwhile is
//! either seen as in progress and kept or already gone; deleted rows are overwritten with zeros
//! (SQLite's `secure_delete`), because before-values and input rows may hold personal data.

use std::collections::BTreeMap;

use sqlx::{Connection as _, SqliteConnection};

use super::AuditStore;
use super::decode::int;
use super::error::AuditError;
use super::ids::RunId;
use super::records::RunRecord;
use super::runs::{RUN_COLUMNS, RunRow};
use super::status::RunStatus;
use super::time::UnixMillis;

/// A run old enough to prune, and how many rows of each table belong to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrunableRun {
    pub id: RunId,
    pub command: String,
    /// As every reader sees it: `completed`, `failed` or `interrupted` (a dead process's run).
    pub status: RunStatus,
    pub started_at: UnixMillis,
    /// Its recorded finish, or for a dead process's run, its last heartbeat.
    pub ended_at: UnixMillis,
    /// Rows per table that references the run (`targets`, `requests`, ...), zeros included.
    pub rows: BTreeMap<String, u64>,
}

/// What a prune selects (a dry run) or deleted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PruneSelection {
    /// Runs that ended before this instant are pruned.
    pub ended_before: UnixMillis,
    /// Oldest first.
    pub runs: Vec<PrunableRun>,
    /// Rows per table that references a run, over `runs` (zeros included); `runs.len()` runs.
    pub rows: BTreeMap<String, u64>,
    /// Runs in progress that started before the cutoff: kept.
    pub in_progress: Vec<RunRecord>,
}

impl PruneSelection {
    /// Rows of `table` over every selected run (0 when the table is unknown).
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }
}

/// A table with a foreign key to `runs`, and its column naming the run.
#[derive(Debug, Clone)]
struct RunTable {
    table: String,
    column: String,
}

impl AuditStore {
    /// The runs [`AuditStore::prune`] would delete for `ended_before`, and their rows. Reads
    /// only: works on a store opened read-only (a dry run).
    pub async fn prunable_runs(
        &self,
        ended_before: UnixMillis,
    ) -> Result<PruneSelection, AuditError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(|error| self.db_error(error))?;
        self.select_prunable(&mut conn, ended_before).await
    }

    /// Deletes the runs [`AuditStore::prunable_runs`] selects for `ended_before`, with every row
    /// of every table that references them, in one transaction, and returns what was deleted.
    /// The selection is made inside the transaction (taken with `BEGIN IMMEDIATE`, so no other
    /// writer can resume a run between the choice and the deletion).
    pub async fn prune(&self, ended_before: UnixMillis) -> Result<PruneSelection, AuditError> {
        self.writer()?;
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(|error| self.db_error(error))?;
        let secure_before: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(&mut *conn)
            .await
            .map_err(|error| self.db_error(error))?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await
            .map_err(|error| self.db_error(error))?;
        let result = self.prune_in_transaction(&mut conn, ended_before).await;
        // The connection goes back to the pool as it was.
        let restore = format!("PRAGMA secure_delete = {}", i64::from(secure_before != 0));
        sqlx::query(sqlx::AssertSqlSafe(restore))
            .execute(&mut *conn)
            .await
            .map_err(|error| self.db_error(error))?;
        result
    }

    async fn prune_in_transaction(
        &self,
        conn: &mut SqliteConnection,
        ended_before: UnixMillis,
    ) -> Result<PruneSelection, AuditError> {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|error| self.db_error(error))?;
        let mut selection = self.select_prunable(&mut tx, ended_before).await?;
        if selection.runs.is_empty() {
            tx.rollback().await.map_err(|error| self.db_error(error))?;
            return Ok(selection);
        }
        let ids = ids_json(&selection.runs);
        let mut deleted = BTreeMap::new();
        for RunTable { table, column } in self.run_tables(&mut tx).await? {
            let sql = format!(
                "DELETE FROM {} WHERE {} IN (SELECT value FROM json_each(?1))",
                quote(&table),
                quote(&column)
            );
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(|error| self.db_error(error))?;
            deleted.insert(table, done.rows_affected());
        }
        let runs = sqlx::query("DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(|error| self.db_error(error))?;
        if usize::try_from(runs.rows_affected()).ok() != Some(selection.runs.len()) {
            // Cannot happen under BEGIN IMMEDIATE; never commit a partial prune.
            tx.rollback().await.map_err(|error| self.db_error(error))?;
            return Err(super::decode::corrupt(
                self.path(),
                "prune",
                format!(
                    "{} runs selected but {} deleted; nothing was deleted",
                    selection.runs.len(),
                    runs.rows_affected()
                ),
            ));
        }
        tx.commit().await.map_err(|error| self.db_error(error))?;
        selection.rows = deleted;
        Ok(selection)
    }

    async fn select_prunable(
        &self,
        conn: &mut SqliteConnection,
        ended_before: UnixMillis,
    ) -> Result<PruneSelection, AuditError> {
        let cutoff = ended_before.as_millis();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs \
             WHERE coalesce(runs.finished_at, runs.heartbeat_at, runs.started_at) < ?1 \
             ORDER BY started_at, id"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .fetch_all(&mut *conn)
            .await
            .map_err(|error| self.db_error(error))?;
        let mut runs = Vec::new();
        for row in rows {
            let ended_at = UnixMillis::from_millis(row.ended_at());
            let record = self.run_record(row)?;
            // Still `running` as read: its process is alive (or heartbeats elsewhere).
            if record.status == RunStatus::Running {
                continue;
            }
            runs.push(PrunableRun {
                id: record.id,
                command: record.command,
                status: record.status,
                started_at: record.started_at,
                ended_at,
                rows: BTreeMap::new(),
            });
        }

        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND started_at < ?1 \
             ORDER BY started_at, id"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .fetch_all(&mut *conn)
            .await
            .map_err(|error| self.db_error(error))?;
        let mut in_progress = Vec::new();
        for row in rows {
            let record = self.run_record(row)?;
            if record.status == RunStatus::Running {
                in_progress.push(record);
            }
        }

        let ids = ids_json(&runs);
        let mut totals = BTreeMap::new();
        let mut per_run: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for RunTable { table, column } in self.run_tables(&mut *conn).await? {
            let sql = format!(
                "SELECT {col}, count(*) FROM {tab} \
                 WHERE {col} IN (SELECT value FROM json_each(?1)) GROUP BY {col}",
                col = quote(&column),
                tab = quote(&table)
            );
            let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(|error| self.db_error(error))?;
            let mut total = 0;
            for (run, count) in counts {
                let count: u64 = int(self.path(), "row count", count)?;
                total += count;
                per_run.entry(run).or_default().insert(table.clone(), count);
            }
            totals.insert(table, total);
        }
        for run in &mut runs {
            let counts = per_run.remove(run.id.as_str()).unwrap_or_default();
            run.rows = totals
                .keys()
                .map(|table| (table.clone(), counts.get(table).copied().unwrap_or(0)))
                .collect();
        }
        Ok(PruneSelection {
            ended_before,
            runs,
            rows: totals,
            in_progress,
        })
    }

    /// Every table with a foreign key to `runs`, by name, read from the schema.
    async fn run_tables(&self, conn: &mut SqliteConnection) -> Result<Vec<RunTable>, AuditError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, f.\"from\" FROM sqlite_master AS m \
             JOIN pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' AND f.\"table\" = 'runs' ORDER BY m.name, f.\"from\"",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|error| self.db_error(error))?;
        Ok(rows
            .into_iter()
            .map(|(table, column)| RunTable { table, column })
            .collect())
    }
}

/// The runs' ids as a JSON array, bound once and read with `json_each`.
fn ids_json(runs: &[PrunableRun]) -> String {
    serde_json::Value::from(runs.iter().map(|run| run.id.as_str()).collect::<Vec<_>>()).to_string()
}

/// An SQL identifier, quoted.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
impl AuditStore {
    pub(super) async fn run_tables_for_tests(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Vec<String>, AuditError> {
        Ok(self
            .run_tables(conn)
            .await?
            .into_iter()
            .map(|table| table.table)
            .collect())
    }
}
