//! Per-HTTP-attempt rows: written in batches by the group-commit writer, read back as the
//! report's timeline and aggregated into `RequestStats`.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::AuditStore;
use super::decode::{int, opt_int, opt_millis};
use super::error::AuditError;
use super::ids::RunId;
use super::records::{RequestRow, RequestStats};
use super::time::UnixMillis;

/// Rows per INSERT statement: 14 parameters each, well under SQLite's 32766-parameter limit.
const ROWS_PER_INSERT: usize = 1000;

const REQUEST_COLUMNS: &str = "run_id, at, method, route, conversation_id, participant_id, status, \
     latency_ms, attempt, retry_after_ms, error_class, correlation_id, token_slot";

#[derive(sqlx::FromRow)]
struct RequestDbRow {
    run_id: String,
    at: i64,
    method: String,
    route: String,
    conversation_id: Option<String>,
    participant_id: Option<String>,
    status: Option<i64>,
    latency_ms: i64,
    attempt: i64,
    retry_after_ms: Option<i64>,
    error_class: Option<String>,
    correlation_id: Option<String>,
    token_slot: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StatsDbRow {
    run_id: String,
    total: i64,
    throttled: i64,
    retries: i64,
    transport_errors: i64,
    first_at: Option<i64>,
    last_at: Option<i64>,
}

const STATS_SELECT: &str = "SELECT run_id, count(*) AS total, \
     sum(status IS 429) AS throttled, sum(attempt > 1) AS retries, \
     sum(status IS NULL) AS transport_errors, min(at) AS first_at, max(at) AS last_at \
     FROM requests";

impl AuditStore {
    /// Queues one request row for the next group commit without waiting (callable from
    /// synchronous observers). A failure to record it is logged; `flush`, `finish_run` and
    /// `close` wait for queued rows.
    pub fn record_request(&self, row: RequestRow) {
        self.queue_requests(vec![row]);
    }

    /// Queues request rows like `record_request`; the rows of one call are recorded all or none.
    #[cfg_attr(not(test), allow(dead_code))] // Apply records one row per attempt, as it happens.
    pub fn record_requests(&self, rows: Vec<RequestRow>) {
        if !rows.is_empty() {
            self.queue_requests(rows);
        }
    }

    fn queue_requests(&self, rows: Vec<RequestRow>) {
        match self.writer() {
            Ok(writer) => writer.record_requests(rows),
            Err(error) => tracing::warn!(%error, rows = rows.len(), "request rows not recorded"),
        }
    }

    /// Every recorded attempt of a run, in time order.
    pub async fn request_timeline(&self, run: &RunId) -> Result<Vec<RequestRow>, AuditError> {
        let sql =
            format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE run_id = ?1 ORDER BY at, id");
        let rows: Vec<RequestDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(run.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        rows.into_iter().map(|row| self.request_row(row)).collect()
    }

    pub(super) async fn run_request_stats(&self, run: &RunId) -> Result<RequestStats, AuditError> {
        let sql = format!("{STATS_SELECT} WHERE run_id = ?1 GROUP BY run_id");
        let row: Option<StatsDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(run.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        row.map_or(Ok(RequestStats::default()), |row| {
            Ok(self.request_stats(row)?.1)
        })
    }

    /// Request statistics for each of the `limit` most recent runs.
    pub(super) async fn recent_request_stats(
        &self,
        limit: u32,
    ) -> Result<HashMap<RunId, RequestStats>, AuditError> {
        let sql = format!(
            "{STATS_SELECT} WHERE run_id IN \
             (SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1) GROUP BY run_id"
        );
        let rows: Vec<StatsDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        rows.into_iter()
            .map(|row| self.request_stats(row))
            .collect()
    }

    fn request_stats(&self, row: StatsDbRow) -> Result<(RunId, RequestStats), AuditError> {
        let path = self.path();
        let stats = RequestStats {
            total: int(path, "request count", row.total)?,
            throttled: int(path, "request count", row.throttled)?,
            retries: int(path, "request count", row.retries)?,
            transport_errors: int(path, "request count", row.transport_errors)?,
            first_at: opt_millis(row.first_at),
            last_at: opt_millis(row.last_at),
        };
        Ok((RunId::from_stored(row.run_id), stats))
    }

    fn request_row(&self, row: RequestDbRow) -> Result<RequestRow, AuditError> {
        let path = self.path();
        Ok(RequestRow {
            run_id: RunId::from_stored(row.run_id),
            at: UnixMillis::from_millis(row.at),
            method: row.method,
            route: row.route,
            conversation_id: row.conversation_id,
            participant_id: row.participant_id,
            status: opt_int(path, "requests.status", row.status)?,
            latency_ms: int(path, "requests.latency_ms", row.latency_ms)?,
            attempt: int(path, "requests.attempt", row.attempt)?,
            retry_after_ms: opt_int(path, "requests.retry_after_ms", row.retry_after_ms)?,
            error_class: row.error_class,
            correlation_id: row.correlation_id,
            token_slot: opt_int(path, "requests.token_slot", row.token_slot)?,
        })
    }
}

/// Inserts request rows inside the writer's transaction, atomically: either all rows of the
/// call or none.
pub(super) async fn insert_requests(
    conn: &mut SqliteConnection,
    rows: &[RequestRow],
) -> Result<(), sqlx::Error> {
    if rows.len() <= ROWS_PER_INSERT {
        return insert_chunk(conn, rows).await;
    }
    sqlx::query("SAVEPOINT audit_requests")
        .execute(&mut *conn)
        .await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        if let Err(error) = insert_chunk(conn, chunk).await {
            sqlx::query("ROLLBACK TO audit_requests")
                .execute(&mut *conn)
                .await?;
            sqlx::query("RELEASE audit_requests")
                .execute(&mut *conn)
                .await?;
            return Err(error);
        }
    }
    sqlx::query("RELEASE audit_requests")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_chunk(conn: &mut SqliteConnection, rows: &[RequestRow]) -> Result<(), sqlx::Error> {
    let mut insert: QueryBuilder<Sqlite> =
        QueryBuilder::new(format!("INSERT INTO requests ({REQUEST_COLUMNS}) "));
    insert.push_values(rows, |mut values, row| {
        values
            .push_bind(row.run_id.as_str().to_owned())
            .push_bind(row.at.as_millis())
            .push_bind(row.method.clone())
            .push_bind(row.route.clone())
            .push_bind(row.conversation_id.clone())
            .push_bind(row.participant_id.clone())
            .push_bind(row.status)
            .push_bind(row.latency_ms)
            .push_bind(row.attempt)
            .push_bind(row.retry_after_ms)
            .push_bind(row.error_class.clone())
            .push_bind(row.correlation_id.clone())
            .push_bind(row.token_slot);
    });
    insert.build().execute(conn).await?;
    Ok(())
}
