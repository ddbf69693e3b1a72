//! Group commit: one background task owns the store's hot writes (`sending` marks, outcomes,
//! request rows). Concurrent callers enqueue operations; the task drains whatever is queued,
//! applies it in ONE transaction and answers each caller only after that transaction has
//! committed. At high concurrency many `sending` marks share one fsync, so "durably recorded
//! before the PATCH" stays cheap.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::SqlitePool;
use sqlx::error::ErrorKind;
use tokio::sync::{mpsc, oneshot};

use super::error::AuditError;
use super::ids::TargetId;
use super::records::{Outcome, RequestRow};
use super::time::UnixMillis;
use super::{requests, targets};

/// Upper bound of operations per transaction, so one commit never holds the write lock for long.
const MAX_BATCH_OPS: usize = 1024;

type Reply = oneshot::Sender<Result<(), AuditError>>;

enum WriteOp {
    MarkSending {
        targets: Vec<TargetId>,
        reply: Reply,
    },

    RecordOutcome {
        target: TargetId,
        outcome: Outcome,
        reply: Reply,
    },
    /// Fire-and-forget: failures are logged, nobody waits.
    RecordRequests { rows: Vec<RequestRow> },
    /// Answered once everything queued before it has committed.
    Flush { reply: Reply },
}

impl WriteOp {
    fn answer(self, result: Result<(), AuditError>) {
        match self {
            Self::MarkSending { reply, .. }
            | Self::RecordOutcome { reply, .. }
            | Self::Flush { reply } => {
                // The caller may have given up waiting (e.g. cancelled); the write stands.
                let _ = reply.send(result);
            }
            Self::RecordRequests { rows } => {
                if let Err(error) = result {
                    tracing::warn!(rows = rows.len(), %error, "request rows not recorded");
                }
            }
        }
    }
}

/// Why one operation failed inside a batch.
pub(super) enum OpFailure {
    Sql(sqlx::Error),
    UnknownTarget(TargetId),
}

impl From<sqlx::Error> for OpFailure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

/// The sending side, held by every clone of the store. The queue is unbounded so that request
/// rows can be recorded from synchronous callbacks; its length stays small because the writer
/// drains up to `MAX_BATCH_OPS` per commit while the API budget allows only a few requests per
/// second, and callers of the other operations wait for their commit anyway.
#[derive(Debug)]
pub(super) struct GroupWriter {
    queue: mpsc::UnboundedSender<WriteOp>,
    /// Read only through `AuditStore::group_commits` (diagnostics, tests).
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
    path: Arc<Path>,
}

impl GroupWriter {
    /// Starts the writer task on the current Tokio runtime. It ends when every handle is dropped,
    /// after committing what was queued.
    pub(super) fn spawn(pool: SqlitePool, path: Arc<Path>) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let task = WriterTask {
            pool,
            path: Arc::clone(&path),
            commits: Arc::clone(&commits),
        };
        tokio::spawn(task.run(receiver));
        Self {
            queue,
            commits,
            path,
        }
    }

    /// Transactions committed by the writer so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub(super) async fn mark_sending(&self, targets: Vec<TargetId>) -> Result<(), AuditError> {
        self.round_trip(|reply| WriteOp::MarkSending { targets, reply })
            .await
    }

    pub(super) async fn record_outcome(
        &self,
        target: TargetId,
        outcome: Outcome,
    ) -> Result<(), AuditError> {
        self.round_trip(|reply| WriteOp::RecordOutcome {
            target,
            outcome,
            reply,
        })
        .await
    }

    /// Queues request rows without waiting; a failure to record them is logged.
    pub(super) fn record_requests(&self, rows: Vec<RequestRow>) {
        if let Err(unsent) = self.enqueue(WriteOp::RecordRequests { rows }) {
            tracing::warn!(path = %self.path.display(), %unsent, "request rows not recorded");
        }
    }

    pub(super) async fn flush(&self) -> Result<(), AuditError> {
        self.round_trip(|reply| WriteOp::Flush { reply }).await
    }

    async fn round_trip(&self, op: impl FnOnce(Reply) -> WriteOp) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(op(reply))?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn enqueue(&self, op: WriteOp) -> Result<(), AuditError> {
        self.queue.send(op).map_err(|_| self.stopped())
    }

    fn stopped(&self) -> AuditError {
        AuditError::WriterStopped {
            path: self.path.to_path_buf(),
        }
    }
}

struct WriterTask {
    pool: SqlitePool,
    path: Arc<Path>,
    commits: Arc<AtomicU64>,
}

impl WriterTask {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<WriteOp>) {
        let mut batch = Vec::with_capacity(MAX_BATCH_OPS);
        while receiver.recv_many(&mut batch, MAX_BATCH_OPS).await > 0 {
            let ops = std::mem::take(&mut batch);
            self.commit_batch(ops).await;
        }
    }

    async fn commit_batch(&self, ops: Vec<WriteOp>) {
        match self.write_batch(&ops).await {
            Ok(results) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                for (op, result) in ops.into_iter().zip(results) {
                    op.answer(result);
                }
            }
            Err(error) => {
                // Nothing of the batch is known to be durable: every caller hears so.
                let shared = Arc::new(error);
                for op in ops {
                    op.answer(Err(AuditError::Commit {
                        path: self.path.to_path_buf(),
                        source: Arc::clone(&shared),
                    }));
                }
            }
        }
    }

    /// Applies the batch in one transaction. The outer error aborts the whole batch; an inner
    /// error concerns one operation only (a constraint violation undoes just that statement,
    /// or an unknown target id) and the rest still commits.
    async fn write_batch(
        &self,
        ops: &[WriteOp],
    ) -> Result<Vec<Result<(), AuditError>>, sqlx::Error> {
        let now = UnixMillis::now();
        // IMMEDIATE takes the write lock up front, so the busy timeout applies here instead of
        // failing later with SQLITE_BUSY on the first write of a deferred transaction.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let outcome = match op {
                WriteOp::MarkSending { targets, .. } => {
                    targets::mark_sending_rows(&mut tx, targets, now).await
                }
                WriteOp::RecordOutcome {
                    target, outcome, ..
                } => targets::update_outcome(&mut tx, *target, outcome, now).await,
                WriteOp::RecordRequests { rows } => requests::insert_requests(&mut tx, rows)
                    .await
                    .map_err(OpFailure::from),
                WriteOp::Flush { .. } => Ok(()),
            };
            results.push(match outcome {
                Ok(()) => Ok(()),
                Err(OpFailure::UnknownTarget(target)) => Err(AuditError::UnknownTarget {
                    path: self.path.to_path_buf(),
                    target: target.get(),
                }),
                Err(OpFailure::Sql(error)) if is_statement_local(&error) => {
                    Err(AuditError::Database {
                        path: self.path.to_path_buf(),
                        source: error,
                    })
                }
                Err(OpFailure::Sql(error)) => return Err(error),
            });
        }
        tx.commit().await?;
        Ok(results)
    }
}

/// Constraint violations roll back only the failing statement; SQLite keeps the transaction.
/// Anything else (I/O, full disk, busy) may have ended it, so the batch is abandoned.
fn is_statement_local(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|db| {
        matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        )
    })
}
