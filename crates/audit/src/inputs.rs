//! A run's input, row by row: recorded when the run begins, read back to write its result
//! files, so that those never depend on re-reading (or re-parsing) the source.

use sqlx::{QueryBuilder, Sqlite};

use super::AuditStore;
use super::decode::{int, json, to_json_text};
use super::error::AuditError;
use super::ids::RunId;

/// Rows per INSERT statement: 6 parameters each.
const ROWS_PER_INSERT: usize = 2000;

/// One data row of a run's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The line (or SQLite row ordinal) the rest of the record refers to.
    pub line: u64,
    /// The row's cells, in the order of the input's header.
    pub cells: Vec<String>,
    /// Why `--skip-invalid` left the row out, if it did.
    pub problem: Option<String>,
    /// The row's conversation had ended when the run began: it has no target, it is counted in
    /// [`crate::RunRecord::ended_rows`] (recorded only when the run writes result files).
    pub conversation_ended: bool,
    /// The row selects calls by number and no live call had it when the run began: it has no
    /// target (recorded only when the run writes result files).
    pub no_live_call: bool,
}

/// A run's input: its header and rows in line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedInput {
    pub header: Vec<String>,
    pub rows: Vec<InputRecord>,
}

#[derive(sqlx::FromRow)]
struct InputRow {
    line: i64,
    cells: String,
    problem: Option<String>,
    conversation_ended: i64,
    no_live_call: i64,
}

impl AuditStore {
    /// Records a run's input in ONE transaction (before the run's first request).
    pub async fn record_input(&self, run: &RunId, input: &RecordedInput) -> Result<(), AuditError> {
        let mut tx = self.pool().begin().await.map_err(|e| self.db_error(e))?;
        sqlx::query("UPDATE runs SET input_header = ?1 WHERE id = ?2")
            .bind(to_json_text(&input.header))
            .bind(run.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db_error(e))?;
        for chunk in input.rows.chunks(ROWS_PER_INSERT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO input_rows \
                 (run_id, line, cells, problem, conversation_ended, no_live_call) ",
            );
            insert.push_values(chunk, |mut row, record| {
                row.push_bind(run.as_str())
                    .push_bind(record.line as i64)
                    .push_bind(to_json_text(&record.cells))
                    .push_bind(&record.problem)
                    .push_bind(i64::from(record.conversation_ended))
                    .push_bind(i64::from(record.no_live_call));
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    /// A run's recorded input; `None` when the run recorded none (e.g. `tag`, or a store written
    /// before input rows were recorded).
    pub async fn recorded_input(&self, run: &RunId) -> Result<Option<RecordedInput>, AuditError> {
        let header: Option<String> =
            sqlx::query_scalar("SELECT input_header FROM runs WHERE id = ?1")
                .bind(run.as_str())
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.db_error(e))?
                .flatten();
        let Some(header) = header else {
            return Ok(None);
        };
        let header: Vec<String> = json(self.path(), "runs.input_header", &header)?;
        let rows: Vec<InputRow> = sqlx::query_as(
            "SELECT line, cells, problem, conversation_ended, no_live_call FROM input_rows \
             WHERE run_id = ?1 ORDER BY line",
        )
        .bind(run.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.db_error(e))?;
        let rows = rows
            .into_iter()
            .map(|r| {
                Ok(InputRecord {
                    line: int(self.path(), "input_rows.line", r.line)?,
                    cells: json(self.path(), "input_rows.cells", &r.cells)?,
                    problem: r.problem,
                    conversation_ended: r.conversation_ended != 0,
                    no_live_call: r.no_live_call != 0,
                })
            })
            .collect::<Result<_, AuditError>>()?;
        Ok(Some(RecordedInput { header, rows }))
    }
}
