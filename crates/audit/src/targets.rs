//! Targets: inserted in bulk when a run is planned, then moved along their lifecycle by the
//! group-commit writer, and queried for `--resume` and audit review.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::AuditStore;
use super::decode::{corrupt, int, json, opt_int, opt_millis, parsed, to_json_text};
use super::error::AuditError;
use super::ids::{RunId, TargetId};
use super::records::{
    DesiredValues, NewTarget, ObservedValues, Outcome, TargetFilter, TargetOrder, TargetRecord,
    VerifiedVia,
};
use super::status::TargetStatus;
use super::time::UnixMillis;
use super::writer::OpFailure;

/// Rows per INSERT statement: 13 parameters each, well under SQLite's 32766-parameter limit.
const ROWS_PER_INSERT: usize = 1000;
/// Ids per `IN (...)` list of one UPDATE.
const IDS_PER_UPDATE: usize = 500;

const TARGET_COLUMNS: &str = "t.id, t.run_id, t.seq, t.conversation_id, t.participant_id, \
     t.selector, t.purpose, t.input_lines, t.status, t.reason, t.before, t.desired, t.observed, \
     t.http_status, t.error_code, t.error_message, t.correlation_id, t.attempts, t.created_at, \
     t.updated_at, t.sent_at, t.verified_via";

#[derive(sqlx::FromRow)]
struct TargetRow {
    id: i64,
    run_id: String,
    seq: i64,
    conversation_id: String,
    participant_id: Option<String>,
    selector: String,
    purpose: Option<String>,
    input_lines: String,
    status: String,
    reason: Option<String>,
    before: String,
    desired: String,
    observed: Option<String>,
    http_status: Option<i64>,
    error_code: Option<String>,
    error_message: Option<String>,
    correlation_id: Option<String>,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    sent_at: Option<i64>,
    verified_via: Option<String>,
}

impl AuditStore {
    /// Inserts a run's targets in ONE transaction and returns their ids in input order.
    pub async fn insert_targets(
        &self,
        run: &RunId,
        targets: &[NewTarget],
    ) -> Result<Vec<TargetId>, AuditError> {
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|error| self.db_error(error))?;
        let ids = self.insert_rows(&mut tx, run, targets).await?;
        tx.commit().await.map_err(|error| self.db_error(error))?;
        Ok(ids)
    }

    /// Inserts rows inside a caller's transaction; returns their ids in input order.
    async fn insert_rows(
        &self,
        tx: &mut SqliteConnection,
        run: &RunId,
        targets: &[NewTarget],
    ) -> Result<Vec<TargetId>, AuditError> {
        let now = UnixMillis::now().as_millis();
        let mut ids_by_seq = HashMap::with_capacity(targets.len());
        for chunk in targets.chunks(ROWS_PER_INSERT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO targets (run_id, seq, conversation_id, participant_id, selector, \
                 purpose, input_lines, status, reason, before, desired, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut values, target| {
                values
                    .push_bind(run.as_str().to_owned())
                    .push_bind(target.seq)
                    .push_bind(target.conversation_id.clone())
                    .push_bind(target.participant_id.clone())
                    .push_bind(target.selector.clone())
                    .push_bind(target.purpose.clone())
                    .push_bind(target.input_lines.clone())
                    .push_bind(target.status.as_str())
                    .push_bind(target.reason.clone())
                    .push_bind(to_json_text(&target.before))
                    .push_bind(to_json_text(&target.desired))
                    .push_bind(now)
                    .push_bind(now);
            });
            // RETURNING rows come in no guaranteed order, hence the (run, seq) key.
            insert.push(" RETURNING seq, id");
            let returned: Vec<(i64, i64)> = insert
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(|error| self.db_error(error))?;
            ids_by_seq.extend(returned);
        }

        targets
            .iter()
            .map(|target| {
                ids_by_seq
                    .get(&i64::from(target.seq))
                    .map(|id| TargetId::from_row(*id))
                    .ok_or_else(|| corrupt(self.path(), "inserted target ids", target.seq))
            })
            .collect()
    }

    /// Records the plan of one conversation in ONE transaction: `resolved` rows are overwritten
    /// with their resolution, `added` rows inserted, `removed` rows (never sent) deleted. Being
    /// atomic, a crash never leaves a conversation half planned. Returns the added rows' ids.
    pub async fn plan_conversation(
        &self,
        run: &RunId,
        resolved: &[(TargetId, Resolution)],
        added: &[NewTarget],
        removed: &[TargetId],
    ) -> Result<Vec<TargetId>, AuditError> {
        let now = UnixMillis::now();
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|error| self.db_error(error))?;
        let fail = |failure: OpFailure| match failure {
            OpFailure::Sql(error) => self.db_error(error),
            OpFailure::UnknownTarget(target) => AuditError::UnknownTarget {
                path: self.path_buf(),
                target: target.get(),
            },
        };
        for (row, resolution) in resolved {
            update_resolution(&mut tx, *row, resolution, now)
                .await
                .map_err(fail)?;
        }
        delete_rows(&mut tx, removed).await.map_err(fail)?;
        let ids = self.insert_rows(&mut tx, run, added).await?;
        tx.commit().await.map_err(|error| self.db_error(error))?;
        Ok(ids)
    }

    /// The highest plan position used in a run, so a resumed run can add targets after it.
    pub async fn max_seq(&self, run: &RunId) -> Result<Option<u32>, AuditError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM targets WHERE run_id = ?1")
            .bind(run.as_str())
            .fetch_one(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        opt_int(self.path(), "targets.seq", seq)
    }

    /// Durably marks targets `sending`; returns only after the mark has committed, so a PATCH
    /// sent afterwards is never missing from the log. Concurrent calls share one commit.
    pub async fn mark_sending(&self, targets: &[TargetId]) -> Result<(), AuditError> {
        if targets.is_empty() {
            return Ok(());
        }
        self.writer()?.mark_sending(targets.to_vec()).await
    }

    /// Records the outcome of a step for one target (see `Outcome` for which fields overwrite).
    /// Returns after the commit; concurrent calls share one commit.
    pub async fn record_outcome(
        &self,
        target: TargetId,
        outcome: Outcome,
    ) -> Result<(), AuditError> {
        self.writer()?.record_outcome(target, outcome).await
    }

    /// The run's targets that `apply --resume` must revisit (planned, sending, applied), in
    /// plan order.
    pub async fn unfinished_targets(&self, run: &RunId) -> Result<Vec<TargetRecord>, AuditError> {
        self.list_targets(&TargetFilter {
            run: Some(run.clone()),
            statuses: TargetStatus::UNFINISHED.to_vec(),
            ..TargetFilter::default()
        })
        .await
    }

    /// Rows that runs whose process is gone left unfinished (`planned`, `sending`, `applied`),
    /// in runs other than `except`: the ones a later run settles from the live state. Call
    /// [`AuditStore::mark_interrupted_runs`] first so that dead runs are recorded as such.
    pub async fn unsettled_targets(&self, except: &RunId) -> Result<Vec<TargetRecord>, AuditError> {
        let sql = format!(
            "SELECT {TARGET_COLUMNS} FROM targets t JOIN runs r ON r.id = t.run_id \
             WHERE r.status IN ('interrupted', 'failed') AND r.id != ?1 \
             AND t.status IN ('planned', 'sending', 'applied') ORDER BY t.run_id, t.seq"
        );
        let rows: Vec<TargetRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(except.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        rows.into_iter()
            .map(|row| self.target_record(row))
            .collect()
    }

    pub async fn list_targets(
        &self,
        filter: &TargetFilter,
    ) -> Result<Vec<TargetRecord>, AuditError> {
        let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {TARGET_COLUMNS} FROM targets t JOIN runs r ON r.id = t.run_id WHERE 1 = 1"
        ));
        if let Some(run) = &filter.run {
            query
                .push(" AND t.run_id = ")
                .push_bind(run.as_str().to_owned());
        }
        if let Some(conversation) = &filter.conversation {
            query
                .push(" AND t.conversation_id = ")
                .push_bind(conversation.clone());
        }
        if let Some(participant) = &filter.participant {
            query
                .push(" AND t.participant_id = ")
                .push_bind(participant.clone());
        }
        if !filter.statuses.is_empty() {
            query.push(" AND t.status IN (");
            let mut statuses = query.separated(", ");
            for status in &filter.statuses {
                statuses.push_bind(status.as_str());
            }
            query.push(")");
        }
        if let Some(key) = &filter.key {
            query
                .push(" AND (EXISTS (SELECT 1 FROM json_each(t.desired) d WHERE d.key = ")
                .push_bind(key.clone())
                .push(") OR EXISTS (SELECT 1 FROM json_each(t.before) b WHERE b.key = ")
                .push_bind(key.clone())
                .push("))");
        }
        if let Some(since) = filter.since {
            query
                .push(" AND t.updated_at >= ")
                .push_bind(since.as_millis());
        }
        if let Some(until) = filter.until {
            query
                .push(" AND t.updated_at < ")
                .push_bind(until.as_millis());
        }
        query.push(match filter.order {
            TargetOrder::Plan => " ORDER BY r.started_at, r.id, t.seq",
            TargetOrder::NewestFirst => " ORDER BY t.updated_at DESC, t.id DESC",
        });
        if let Some(limit) = filter.limit {
            query.push(" LIMIT ").push_bind(limit);
        }

        let rows: Vec<TargetRow> = query
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        rows.into_iter()
            .map(|row| self.target_record(row))
            .collect()
    }

    fn target_record(&self, row: TargetRow) -> Result<TargetRecord, AuditError> {
        let path = self.path();
        Ok(TargetRecord {
            id: TargetId::from_row(row.id),
            run_id: RunId::from_stored(row.run_id),
            seq: int(path, "targets.seq", row.seq)?,
            conversation_id: row.conversation_id,
            participant_id: row.participant_id,
            selector: row.selector,
            purpose: row.purpose,
            input_lines: row.input_lines,
            status: parsed(path, "targets.status", &row.status)?,
            reason: row.reason,
            before: json(path, "targets.before", &row.before)?,
            desired: json(path, "targets.desired", &row.desired)?,
            observed: row
                .observed
                .as_deref()
                .map(|text| json(path, "targets.observed", text))
                .transpose()?,
            http_status: opt_int(path, "targets.http_status", row.http_status)?,
            error_code: row.error_code,
            error_message: row.error_message,
            correlation_id: row.correlation_id,
            attempts: int(path, "targets.attempts", row.attempts)?,
            verified_via: row
                .verified_via
                .as_deref()
                .map(|text| parsed(path, "targets.verified_via", text))
                .transpose()?,
            created_at: UnixMillis::from_millis(row.created_at),
            updated_at: UnixMillis::from_millis(row.updated_at),
            sent_at: opt_millis(row.sent_at),
        })
    }
}

/// What planning a target against a live read decided, written over its row: who it is, the
/// input it carries, what the plan saw and wants, and its status (`planned`, or a plan's final
/// `unchanged`/`skipped`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub participant_id: Option<String>,
    pub purpose: Option<String>,
    pub selector: String,
    pub input_lines: String,
    pub before: ObservedValues,
    pub desired: DesiredValues,
    pub status: TargetStatus,
    pub reason: Option<String>,
}

/// Writes a resolution over a row (inside `plan_conversation`'s transaction).
pub(super) async fn update_resolution(
    conn: &mut SqliteConnection,
    target: TargetId,
    resolution: &Resolution,
    now: UnixMillis,
) -> Result<(), OpFailure> {
    let updated = sqlx::query(
        "UPDATE targets SET participant_id = ?1, purpose = ?2, selector = ?3, input_lines = ?4, \
         before = ?5, desired = ?6, status = ?7, reason = ?8, updated_at = ?9 WHERE id = ?10",
    )
    .bind(&resolution.participant_id)
    .bind(&resolution.purpose)
    .bind(&resolution.selector)
    .bind(&resolution.input_lines)
    .bind(to_json_text(&resolution.before))
    .bind(to_json_text(&resolution.desired))
    .bind(resolution.status.as_str())
    .bind(&resolution.reason)
    .bind(now.as_millis())
    .bind(target.get())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(OpFailure::UnknownTarget(target));
    }
    Ok(())
}

/// Removes rows whose input was merged into another target's row (that row
/// carries their lines). Only rows never sent can be removed.
pub(super) async fn delete_rows(
    conn: &mut SqliteConnection,
    targets: &[TargetId],
) -> Result<(), OpFailure> {
    for chunk in targets.chunks(IDS_PER_UPDATE) {
        let mut delete: QueryBuilder<Sqlite> =
            QueryBuilder::new("DELETE FROM targets WHERE status = 'planned' AND id IN (");
        let mut ids = delete.separated(", ");
        for id in chunk {
            ids.push_bind(id.get());
        }
        ids.push_unseparated(")");
        delete.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writer operation: marks targets `sending`. Ids that match no row are reported after the
/// known ones are marked (marking is conservative, so a partial mark does no harm).
pub(super) async fn mark_sending_rows(
    conn: &mut SqliteConnection,
    targets: &[TargetId],
    now: UnixMillis,
) -> Result<(), OpFailure> {
    for chunk in targets.chunks(IDS_PER_UPDATE) {
        let mut update: QueryBuilder<Sqlite> =
            QueryBuilder::new("UPDATE targets SET status = 'sending', sent_at = ");
        update
            .push_bind(now.as_millis())
            .push(", updated_at = ")
            .push_bind(now.as_millis())
            .push(" WHERE id IN (");
        let mut ids = update.separated(", ");
        for target in chunk {
            ids.push_bind(target.get());
        }
        update.push(") RETURNING id");
        let marked: Vec<i64> = update.build_query_scalar().fetch_all(&mut *conn).await?;
        if marked.len() != chunk.len() {
            let missing = chunk
                .iter()
                .find(|target| !marked.contains(&target.get()))
                .copied()
                .unwrap_or(chunk[0]);
            return Err(OpFailure::UnknownTarget(missing));
        }
    }
    Ok(())
}

/// Writer operation: records an outcome.
pub(super) async fn update_outcome(
    conn: &mut SqliteConnection,
    target: TargetId,
    outcome: &Outcome,
    now: UnixMillis,
) -> Result<(), OpFailure> {
    let observed = outcome.observed.as_ref().map(to_json_text);
    let updated = sqlx::query(
        "UPDATE targets SET \
           status = coalesce(?1, status), \
           reason = coalesce(?2, reason), \
           http_status = coalesce(?3, http_status), \
           error_code = ?4, \
           error_message = ?5, \
           correlation_id = coalesce(?6, correlation_id), \
           attempts = coalesce(?7, attempts), \
           observed = coalesce(?8, observed), \
           updated_at = ?9, \
           verified_via = coalesce(?11, verified_via) \
         WHERE id = ?10",
    )
    .bind(outcome.status.map(TargetStatus::as_str))
    .bind(&outcome.reason)
    .bind(outcome.http_status)
    .bind(&outcome.error_code)
    .bind(&outcome.error_message)
    .bind(&outcome.correlation_id)
    .bind(outcome.attempts)
    .bind(observed)
    .bind(now.as_millis())
    .bind(target.get())
    .bind(outcome.verified_via.map(VerifiedVia::as_str))
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(OpFailure::UnknownTarget(target));
    }
    Ok(())
}
