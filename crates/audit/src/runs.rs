//! Runs: begin, finish, resume, look up, list with counts, and recover crashed ones.

use std::collections::HashMap;
use std::time::Duration;

use super::AuditStore;
use super::decode::{int, json, opt_int, opt_millis, parsed, to_json_text};
use super::error::AuditError;
use super::ids::RunId;
use super::process::{current_host, current_pid, current_start_time, process_is_gone};
use super::records::{NewRun, RunProcess, RunRecord, RunSummary};
use super::status::{RunStatus, StatusCounts, TargetStatus};
use super::time::UnixMillis;

/// `heartbeat_at` is when the run was last known alive: its heartbeat, or for a run not finished
/// its last recorded request when that is later (a heartbeat comes once a minute, so a run
/// killed seconds after its start would otherwise read as having lasted milliseconds).
pub(super) const RUN_COLUMNS: &str = "id, started_at, finished_at, status, exit_code, command, source_path, \
     source_sha256, options, tool_version, host, pid, operator, rate_per_minute, resumed_count, \
     pid_start_time, \
     CASE WHEN finished_at IS NULL \
       THEN max(coalesce(heartbeat_at, started_at), \
                coalesce((SELECT max(r.at) FROM requests r WHERE r.run_id = runs.id), 0)) \
       ELSE coalesce(heartbeat_at, started_at) END AS heartbeat_at, reverts_run_id, ended_rows, no_live_call_rows";

/// The run reference that means "the most recently started run".
pub const LATEST: &str = "latest";

/// How long a run of another host may go without a heartbeat before it is deemed dead (its
/// process crashed or its machine went away).
pub const REMOTE_RUN_QUIET_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How often a working process refreshes its run's heartbeat: well inside the quiet limit.
pub const RUN_HEARTBEAT: Duration = Duration::from_secs(60);

/// Attempts at drawing a fresh run id; a clash needs two runs in the same second with the
/// same 24 random bits.
const RUN_ID_ATTEMPTS: usize = 3;

/// (command, host, pid, started_at, finished_at, exit_code) of `run_processes`.
type ProcessRow = (String, String, i64, i64, Option<i64>, Option<i64>);

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
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
    pid_start_time: Option<i64>,
    heartbeat_at: i64,
    reverts_run_id: Option<String>,
    ended_rows: i64,
    no_live_call_rows: i64,
}

impl RunRow {
    /// When the run ended: its recorded finish, or for a run whose process died without
    /// recording one, its last heartbeat (its start when it never heartbeated).
    pub(super) fn ended_at(&self) -> i64 {
        self.finished_at.unwrap_or(self.heartbeat_at)
    }
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
                 options, tool_version, host, pid, operator, rate_per_minute, pid_start_time, \
                 heartbeat_at, reverts_run_id) \
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?2, ?13)",
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
            .bind(current_start_time())
            .bind(run.reverts.as_ref().map(RunId::as_str))
            .execute(self.pool())
            .await;
            match inserted {
                Ok(_) => {
                    self.record_process(&id, &run.command).await?;
                    return Ok(id);
                }
                Err(error) if is_unique_violation(&error) && attempt < RUN_ID_ATTEMPTS => {}
                Err(error) => return Err(self.db_error(error)),
            }
        }
    }

    /// Replaces the rate and options a run recorded at its start: for a rate only known once
    /// the client has asked the API (`--rate auto`).
    pub async fn update_run_rate(
        &self,
        run: &RunId,
        rate_per_minute: f64,
        options: &serde_json::Value,
    ) -> Result<(), AuditError> {
        let updated =
            sqlx::query("UPDATE runs SET rate_per_minute = ?1, options = ?2 WHERE id = ?3")
                .bind(rate_per_minute)
                .bind(to_json_text(options))
                .bind(run.as_str())
                .execute(self.pool())
                .await
                .map_err(|error| self.db_error(error))?;
        if updated.rows_affected() == 0 {
            return Err(self.run_not_found(run.as_str()));
        }
        Ok(())
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
        sqlx::query(
            "UPDATE run_processes SET finished_at = ?1, exit_code = ?2 \
             WHERE run_id = ?3 AND host = ?4 AND pid = ?5 AND finished_at IS NULL",
        )
        .bind(UnixMillis::now().as_millis())
        .bind(exit_code)
        .bind(run.as_str())
        .bind(current_host())
        .bind(current_pid())
        .execute(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        Ok(())
    }

    /// Records that this process works on `run` (its first process, or a `--resume`).
    async fn record_process(&self, run: &RunId, command: &str) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO run_processes (run_id, command, host, pid, pid_start_time, started_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(run.as_str())
        .bind(command)
        .bind(current_host())
        .bind(current_pid())
        .bind(current_start_time())
        .bind(UnixMillis::now().as_millis())
        .execute(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        Ok(())
    }

    /// The processes that worked on a run, in order: (command, host, pid, started, finished,
    /// exit code).
    pub async fn run_processes(&self, run: &RunId) -> Result<Vec<RunProcess>, AuditError> {
        let rows: Vec<ProcessRow> = sqlx::query_as(
            "SELECT command, host, pid, started_at, finished_at, exit_code FROM run_processes \
             WHERE run_id = ?1 ORDER BY id",
        )
        .bind(run.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        rows.into_iter()
            .map(|(command, host, pid, started, finished, exit)| {
                Ok(RunProcess {
                    command,
                    host,
                    pid: int(self.path(), "run_processes.pid", pid)?,
                    started_at: UnixMillis::from_millis(started),
                    finished_at: opt_millis(finished),
                    exit_code: opt_int(self.path(), "run_processes.exit_code", exit)?,
                })
            })
            .collect()
    }

    /// Refreshes the heartbeat of a run this process is working on, so that readers on other
    /// hosts can tell it is alive (see [`RUN_HEARTBEAT`]).
    pub async fn heartbeat_run(&self, run: &RunId) -> Result<(), AuditError> {
        sqlx::query("UPDATE runs SET heartbeat_at = ?1 WHERE id = ?2 AND status = 'running'")
            .bind(UnixMillis::now().as_millis())
            .bind(run.as_str())
            .execute(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        Ok(())
    }

    /// Takes an earlier run over for `apply --resume`: it becomes `running` in this process
    /// again. Refused while the process that ran it is still alive (call
    /// `mark_interrupted_runs` first so that crashed runs are recognised).
    pub async fn reopen_run(&self, run: &RunId, command: &str) -> Result<RunRecord, AuditError> {
        let record = self.run(run).await?;
        // `run` reports a dead process's run as interrupted: still running means alive.
        let held_elsewhere = record.status == RunStatus::Running
            && !(record.host == current_host() && record.pid == current_pid());
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
             host = ?1, pid = ?2, pid_start_time = ?3, heartbeat_at = ?4, \
             resumed_count = resumed_count + 1 WHERE id = ?5",
        )
        .bind(current_host())
        .bind(current_pid())
        .bind(current_start_time())
        .bind(UnixMillis::now().as_millis())
        .bind(run.as_str())
        .execute(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        self.record_process(run, command).await?;
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

    /// The runs that revert `run` (`attrsync revert`), oldest first, each with its counts: what
    /// each put back (verified), found already back (unchanged), left alone (stale, skipped).
    pub async fn reverted_by(&self, run: &RunId) -> Result<Vec<RunSummary>, AuditError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE reverts_run_id = ?1 ORDER BY started_at, id",
        )
        .bind(run.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        let mut summaries = Vec::with_capacity(ids.len());
        for id in ids {
            summaries.push(self.run_summary(&RunId::from_stored(id)).await?);
        }
        Ok(summaries)
    }

    /// Records as `interrupted` the runs whose process is gone (see [`RunRecord::status`], which
    /// readers get without writing) and returns them.
    pub async fn mark_interrupted_runs(&self) -> Result<Vec<RunId>, AuditError> {
        self.mark_interrupted_runs_quiet_for(REMOTE_RUN_QUIET_LIMIT)
            .await
    }

    /// [`Self::mark_interrupted_runs`] with another quiet limit for runs of other hosts.
    pub async fn mark_interrupted_runs_quiet_for(
        &self,
        quiet_for: Duration,
    ) -> Result<Vec<RunId>, AuditError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running'");
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        let mut interrupted = Vec::new();
        for row in rows {
            if !run_is_dead(&row, quiet_for)? {
                continue;
            }
            sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = max(?1, started_at) \
                 WHERE id = ?2 AND status = 'running'",
            )
            .bind(row.heartbeat_at)
            .bind(&row.id)
            .execute(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
            interrupted.push(RunId::from_stored(row.id));
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

    pub(super) fn run_record(&self, row: RunRow) -> Result<RunRecord, AuditError> {
        let path = self.path();
        let stored: RunStatus = parsed(path, "runs.status", &row.status)?;
        // Worked out when read, never written by a reader: a run whose process is gone.
        let status = if stored == RunStatus::Running && run_is_dead(&row, REMOTE_RUN_QUIET_LIMIT)? {
            RunStatus::Interrupted
        } else {
            stored
        };
        Ok(RunRecord {
            status,
            exit_code: opt_int(path, "runs.exit_code", row.exit_code)?,
            options: json(path, "runs.options", &row.options)?,
            pid: int(path, "runs.pid", row.pid)?,
            resumed_count: int(path, "runs.resumed_count", row.resumed_count)?,
            ended_rows: int(path, "runs.ended_rows", row.ended_rows)?,
            no_live_call_rows: int(path, "runs.no_live_call_rows", row.no_live_call_rows)?,
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
            reverts: row.reverts_run_id.map(RunId::from_stored),
        })
    }
}

/// Whether the process of a `running` run is gone: on its own host, /proc says so (pid and start
/// time); from another host, its heartbeat is older than `quiet_for`.
pub(super) fn run_is_dead(row: &RunRow, quiet_for: Duration) -> Result<bool, AuditError> {
    let pid = u32::try_from(row.pid).unwrap_or(u32::MAX);
    Ok(match process_is_gone(&row.host, pid, row.pid_start_time) {
        Some(gone) => gone,
        None => row.heartbeat_at < UnixMillis::now().saturating_sub(quiet_for).as_millis(),
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
