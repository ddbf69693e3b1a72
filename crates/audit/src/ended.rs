//! The store's memory of conversations that ended, and each run's count of rows that named one.
//!
//! A conversation that ended never becomes live again: once a run has seen it end, later runs
//! skip its rows without a request. The memory is not tied to a run, so pruning keeps it.

use std::collections::HashSet;

use sqlx::{QueryBuilder, Sqlite};

use super::AuditStore;
use super::error::AuditError;
use super::ids::RunId;
use super::time::UnixMillis;

/// Ids per statement: well under SQLite's limit on bound parameters.
const IDS_PER_STATEMENT: usize = 5000;

/// A conversation a run saw ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedConversation {
    pub conversation_id: String,
    /// When it ended, when the source said (analytics' `conversationEnd`).
    pub ended_at: Option<UnixMillis>,
}

impl AuditStore {
    /// Which of `conversation_ids` an earlier run saw ended.
    pub async fn known_ended(
        &self,
        conversation_ids: &[String],
    ) -> Result<HashSet<String>, AuditError> {
        let mut ended = HashSet::new();
        for chunk in conversation_ids.chunks(IDS_PER_STATEMENT) {
            let mut select: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT conversation_id FROM ended_conversations WHERE conversation_id IN (",
            );
            let mut ids = select.separated(", ");
            for id in chunk {
                ids.push_bind(id);
            }
            select.push(")");
            let found: Vec<String> = select
                .build_query_scalar()
                .fetch_all(self.pool())
                .await
                .map_err(|e| self.db_error(e))?;
            ended.extend(found);
        }
        Ok(ended)
    }

    /// Remembers conversations seen ended (one already remembered keeps its first record).
    pub async fn record_ended(&self, ended: &[EndedConversation]) -> Result<(), AuditError> {
        if ended.is_empty() {
            return Ok(());
        }
        let seen_at = UnixMillis::now().as_millis();
        let mut tx = self.pool().begin().await.map_err(|e| self.db_error(e))?;
        for chunk in ended.chunks(IDS_PER_STATEMENT / 3) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO ended_conversations (conversation_id, ended_at, seen_at) ",
            );
            insert.push_values(chunk, |mut row, conversation| {
                row.push_bind(&conversation.conversation_id)
                    .push_bind(conversation.ended_at.map(UnixMillis::as_millis))
                    .push_bind(seen_at);
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db_error(e))?;
        }
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    /// Records how many of the run's desired rows named a conversation that had ended.
    pub async fn set_ended_rows(&self, run: &RunId, rows: u64) -> Result<(), AuditError> {
        self.set_rows_without_targets(run, rows, 0).await
    }

    /// Records the run's desired rows without a target: those that named a conversation that
    /// had ended, and those that select calls by a number no live call had.
    pub async fn set_rows_without_targets(
        &self,
        run: &RunId,
        ended: u64,
        no_live_call: u64,
    ) -> Result<(), AuditError> {
        sqlx::query("UPDATE runs SET ended_rows = ?1, no_live_call_rows = ?2 WHERE id = ?3")
            .bind(i64::try_from(ended).unwrap_or(i64::MAX))
            .bind(i64::try_from(no_live_call).unwrap_or(i64::MAX))
            .bind(run.as_str())
            .execute(self.pool())
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }
}
