//! Runs: begin, finish, resume, look up, list with counts, and recover crashed ones.

use std::collections::HashMap;
use std::time::Duration;

use super::AuditStore;
use super::decode::{int, json, opt_int, opt_millis, parsed, to_json_text};
use super::error::AuditError;
use super::ids::RunId;
use super::process::{current_host, current_pid, holder_is_gone, pid_is_alive};
use super::records::{NewRun, RunRecord, RunSummary};
use super::status::{RunStatus, StatusCounts, TargetStatus};
use super::time::UnixMillis;

const RUN_COLUMNS: &str = "id, started_at, finished_at, status, exit_code, command, source_path, \
     source_sha256, options, tool_version, host, pid, operator, rate_per_minute, resumed_count";

/// The run reference that means "the most recently started run".
pub const LATEST: &str = "latest";

/// How long a run of another host may stay silent before `mark_interrupted_runs` deems it
/// crashed. Apply records a request at least every few seconds while it works, and verification
/// polls are bounded well below this.
pub const REMOTE_RUN_QUIET_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Attempts at drawing a fresh run id; a clash needs two runs in the same second with the
/// same 24 random bits.
const RUN_ID_ATTEMPTS: usize = 3;

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    started_at: i64,
    finished_at: Option<i64>,
    status: String,
    exit_code: Option<i64>,
    command: String,
    source_path: Option<String>,
    source_sha256: Option<String>,
    options: String,
    tool_version: String,
    host: String,
    pid: i64,
    operator: Option<String>,
    rate_per_minute: Option<f64>,
    resumed_count: i64,
}

impl AuditStore {
    /// Records a new run as `running` and returns its id, before any request is made.
    pub async fn begin_run(&self, run: NewRun) -> Result<RunId, AuditError> {
        let started_at = UnixMillis::now();
        let options = to_json_text(&run.options);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let id = RunId::generate(started_at);
            let inserted = sqlx::query(
                "INSERT INTO runs (id, started_at, status, command, source_path, source_sha256, \
                 options, tool_version, host, pid, operator, rate_per_minute) \
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .bind(id.as_str())
            .bind(started_at.as_millis())
            .bind(&run.command)
            .bind(&run.source_path)
            .bind(&run.source_sha256)
            .bind(&options)
            .bind(&run.tool_version)
            .bind(current_host())
            .bind(current_pid())
            .bind(&run.operator)
            .bind(run.rate_per_minute)
            .execute(self.pool())
            .await;
            match inserted {
                Ok(_) => return Ok(id),
                Err(error) if is_unique_violation(&error) && attempt < RUN_ID_ATTEMPTS => {}
                Err(error) => return Err(self.db_error(error)),
            }
        }
    }

    /// Ends a run. Queued writes are flushed first so the run's record is complete.
    pub async fn finish_run(
        &self,
        run: &RunId,
        status: RunStatus,
        exit_code: Option<i32>,
    ) -> Result<(), AuditError> {
        self.flush().await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = ?1, exit_code = ?2, finished_at = max(?3, started_at) \
             WHERE id = ?4",
        )
        .bind(status.as_str())
        .bind(exit_code)
        .bind(UnixMillis::now().as_millis())
        .bind(run.as_str())
        .execute(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        if updated.rows_affected() == 0 {
            return Err(self.run_not_found(run.as_str()));
        }
        Ok(())
    }

    /// Takes an earlier run over for `apply --resume`: it becomes `running` in this process
    /// again. Refused while the process that ran it is still alive (call
    /// `mark_interrupted_runs` first so that crashed runs are recognised).
    pub async fn reopen_run(&self, run: &RunId) -> Result<RunRecord, AuditError> {
        let record = self.run(run).await?;
        let held_elsewhere = record.status == RunStatus::Running
            && !(record.host == current_host() && record.pid == current_pid())
            && !holder_is_gone(&record.host, record.pid);
        if held_elsewhere {
            return Err(AuditError::RunActive {
                path: self.path_buf(),
                run: run.to_string(),
                pid: record.pid,
                host: record.host,
            });
        }
        sqlx::query(
            "UPDATE runs SET status = 'running', finished_at = NULL, exit_code = NULL, \
             host = ?1, pid = ?2, resumed_count = resumed_count + 1 WHERE id = ?3",
        )
        .bind(current_host())
        .bind(current_pid())
        .bind(run.as_str())
        .execute(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        self.run(run).await
    }

    /// The most recently started run, if any.
    pub async fn latest_run(&self) -> Result<Option<RunRecord>, AuditError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC LIMIT 1");
        let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_optional(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        row.map(|row| self.run_record(row)).transpose()
    }

    /// Resolves `latest` (any case), a full run id, or a unique prefix of one.
    pub async fn resolve_run(&self, reference: &str) -> Result<RunId, AuditError> {
        if reference.eq_ignore_ascii_case(LATEST) {
            return match self.latest_run().await? {
                Some(run) => Ok(run.id),
                None => Err(AuditError::NoRuns {
                    path: self.path_buf(),
                }),
            };
        }
        let mut ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE id = ?1 OR substr(id, 1, length(?1)) = ?1 \
             ORDER BY id = ?1 DESC, id LIMIT 2",
        )
        .bind(reference)
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        // An exact match sorts first and wins over longer ids it happens to prefix.
        match ids.len() {
            0 => Err(self.run_not_found(reference)),
            1 => Ok(RunId::from_stored(ids.swap_remove(0))),
            _ if ids[0] == reference => Ok(RunId::from_stored(ids.swap_remove(0))),
            _ => Err(AuditError::AmbiguousRun {
                path: self.path_buf(),
                prefix: reference.to_owned(),
                matches: self.count_prefix(reference).await?,
            }),
        }
    }

    /// One run's record.
    pub async fn run(&self, run: &RunId) -> Result<RunRecord, AuditError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
        let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(run.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        match row {
            Some(row) => self.run_record(row),
            None => Err(self.run_not_found(run.as_str())),
        }
    }

    /// The most recent runs, newest first, with their counts.
    pub async fn list_runs(&self, limit: u32) -> Result<Vec<RunSummary>, AuditError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1");
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        let mut counts = self.recent_status_counts(limit).await?;
        let mut stats = self.recent_request_stats(limit).await?;
        rows.into_iter()
            .map(|row| {
                let run = self.run_record(row)?;
                Ok(RunSummary {
                    counts: counts.remove(&run.id).unwrap_or_default(),
                    requests: stats.remove(&run.id).unwrap_or_default(),
                    run,
                })
            })
            .collect()
    }

    /// One run with its counts per status and request statistics.
    pub async fn run_summary(&self, run: &RunId) -> Result<RunSummary, AuditError> {
        let record = self.run(run).await?;
        let counts = self.run_status_counts(run).await?;
        let requests = self.run_request_stats(run).await?;
        Ok(RunSummary {
            run: record,
            counts,
            requests,
        })
    }

    /// Marks `running` runs whose process is gone as `interrupted` and returns them; see
    /// `mark_interrupted_runs_quiet_for`, with `REMOTE_RUN_QUIET_LIMIT`.
    pub async fn mark_interrupted_runs(&self) -> Result<Vec<RunId>, AuditError> {
        self.mark_interrupted_runs_quiet_for(REMOTE_RUN_QUIET_LIMIT)
            .await
    }

    /// Marks `running` runs whose process is gone as `interrupted` and returns them. A run of
    /// this host is gone when its pid no longer exists; a run of another host (or of a platform
    /// where pids cannot be checked), when it has shown no activity (targets, requests) for
    /// `quiet_for`.
    pub async fn mark_interrupted_runs_quiet_for(
        &self,
        quiet_for: Duration,
    ) -> Result<Vec<RunId>, AuditError> {
        let candidates: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT r.id, r.host, r.pid, max(r.started_at, \
               coalesce((SELECT max(t.updated_at) FROM targets t WHERE t.run_id = r.id), 0), \
               coalesce((SELECT max(q.at) FROM requests q WHERE q.run_id = r.id), 0)) \
             FROM runs r WHERE r.status = 'running'",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;

        let stale_before = UnixMillis::now().saturating_sub(quiet_for);
        let mut interrupted = Vec::new();
        for (id, host, pid, last_activity) in candidates {
            let pid: u32 = int(self.path(), "runs.pid", pid)?;
            let quiet = last_activity < stale_before.as_millis();
            // On this host the pid answers definitively; elsewhere only inactivity can tell.
            let gone = match (host == current_host(), pid_is_alive(pid)) {
                (true, Some(alive)) => !alive,
                _ => quiet,
            };
            if !gone {
                continue;
            }
            sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = ?1 \
                 WHERE id = ?2 AND status = 'running'",
            )
            .bind(last_activity)
            .bind(&id)
            .execute(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
            interrupted.push(RunId::from_stored(id));
        }
        Ok(interrupted)
    }

    async fn count_prefix(&self, prefix: &str) -> Result<usize, AuditError> {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runs WHERE substr(id, 1, length(?1)) = ?1")
                .bind(prefix)
                .fetch_one(self.pool())
                .await
                .map_err(|error| self.db_error(error))?;
        int(self.path(), "run count", count)
    }

    async fn run_status_counts(&self, run: &RunId) -> Result<StatusCounts, AuditError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM targets WHERE run_id = ?1 GROUP BY status",
        )
        .bind(run.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        let mut counts = StatusCounts::default();
        for (status, count) in rows {
            let status: TargetStatus = parsed(self.path(), "targets.status", &status)?;
            counts.add(status, int(self.path(), "target count", count)?);
        }
        Ok(counts)
    }

    /// Counts per status for each of the `limit` most recent runs.
    async fn recent_status_counts(
        &self,
        limit: u32,
    ) -> Result<HashMap<RunId, StatusCounts>, AuditError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT run_id, status, count(*) FROM targets \
             WHERE run_id IN (SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1) \
             GROUP BY run_id, status",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        let mut counts: HashMap<RunId, StatusCounts> = HashMap::new();
        for (run, status, count) in rows {
            let status: TargetStatus = parsed(self.path(), "targets.status", &status)?;
            counts
                .entry(RunId::from_stored(run))
                .or_default()
                .add(status, int(self.path(), "target count", count)?);
        }
        Ok(counts)
    }

    fn run_not_found(&self, run: &str) -> AuditError {
        AuditError::RunNotFound {
            path: self.path_buf(),
            run: run.to_owned(),
        }
    }

    fn run_record(&self, row: RunRow) -> Result<RunRecord, AuditError> {
        let path = self.path();
        Ok(RunRecord {
            status: parsed(path, "runs.status", &row.status)?,
            exit_code: opt_int(path, "runs.exit_code", row.exit_code)?,
            options: json(path, "runs.options", &row.options)?,
            pid: int(path, "runs.pid", row.pid)?,
            resumed_count: int(path, "runs.resumed_count", row.resumed_count)?,
            id: RunId::from_stored(row.id),
            started_at: UnixMillis::from_millis(row.started_at),
            finished_at: opt_millis(row.finished_at),
            command: row.command,
            source_path: row.source_path,
            source_sha256: row.source_sha256,
            tool_version: row.tool_version,
            host: row.host,
            operator: row.operator,
            rate_per_minute: row.rate_per_minute,
        })
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
