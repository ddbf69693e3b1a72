//! Named advisory locks in the store, e.g. "one reconcile at a time per audit store".
//!
//! A lock row records its holder (pid, host) and a heartbeat. A later process may take it over
//! when the holder is provably gone (same host, no such pid) or has not heartbeated within
//! `stale_after`; holders therefore call `heartbeat_lock` well within that period.

use std::time::Duration;

use super::AuditStore;
use super::decode::int;
use super::error::AuditError;
use super::process::{current_host, current_pid, holder_is_gone};
use super::time::UnixMillis;

/// The lock that keeps scheduled reconciliation to one instance per audit store.
pub const RECONCILE_LOCK: &str = "reconcile";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub acquired_at: UnixMillis,
    pub heartbeat_at: UnixMillis,
}

impl LockHolder {
    fn is_stale(&self, stale_before: UnixMillis) -> bool {
        holder_is_gone(&self.host, self.pid) || self.heartbeat_at < stale_before
    }
}

/// Proof of holding a lock; pass it to `heartbeat_lock` and `release_lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    name: String,
    lease_id: String,
    /// The stale holder this acquisition replaced, for the caller to report.
    pub took_over: Option<LockHolder>,
}

impl LockLease {
    #[allow(dead_code)] // No command names its lock yet: reconcile holds only one.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[derive(sqlx::FromRow)]
struct LockRow {
    holder_pid: i64,
    holder_host: String,
    acquired_at: i64,
    heartbeat_at: i64,
}

impl AuditStore {
    /// Takes the lock `name`, or fails with `AuditError::Locked` naming the live holder.
    pub async fn acquire_lock(
        &self,
        name: &str,
        stale_after: Duration,
    ) -> Result<LockLease, AuditError> {
        let now = UnixMillis::now();
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|error| self.db_error(error))?;
        let existing: Option<LockRow> = sqlx::query_as(
            "SELECT holder_pid, holder_host, acquired_at, heartbeat_at FROM locks WHERE name = ?1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|error| self.db_error(error))?;
        let holder = existing.map(|row| self.lock_holder(row)).transpose()?;

        if let Some(holder) = holder
            .as_ref()
            .filter(|holder| !holder.is_stale(now.saturating_sub(stale_after)))
        {
            return Err(AuditError::Locked {
                path: self.path_buf(),
                lock: name.to_owned(),
                pid: holder.pid,
                host: holder.host.clone(),
                acquired_at: holder.acquired_at,
                heartbeat_at: holder.heartbeat_at,
            });
        }

        let lease_id = format!("{:032x}", rand::random::<u128>());
        sqlx::query(
            "INSERT INTO locks (name, lease_id, holder_pid, holder_host, acquired_at, heartbeat_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
             ON CONFLICT (name) DO UPDATE SET lease_id = excluded.lease_id, \
               holder_pid = excluded.holder_pid, holder_host = excluded.holder_host, \
               acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at",
        )
        .bind(name)
        .bind(&lease_id)
        .bind(current_pid())
        .bind(current_host())
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(|error| self.db_error(error))?;
        tx.commit().await.map_err(|error| self.db_error(error))?;

        Ok(LockLease {
            name: name.to_owned(),
            lease_id,
            took_over: holder,
        })
    }

    /// Proves the holder is alive; fails with `LockLost` if another process took the lock over.
    pub async fn heartbeat_lock(&self, lease: &LockLease) -> Result<(), AuditError> {
        let updated =
            sqlx::query("UPDATE locks SET heartbeat_at = ?1 WHERE name = ?2 AND lease_id = ?3")
                .bind(UnixMillis::now().as_millis())
                .bind(&lease.name)
                .bind(&lease.lease_id)
                .execute(self.pool())
                .await
                .map_err(|error| self.db_error(error))?;
        self.held_by_lease(updated.rows_affected(), lease)
    }

    /// Releases the lock; fails with `LockLost` if another process had taken it over.
    pub async fn release_lock(&self, lease: LockLease) -> Result<(), AuditError> {
        let deleted = sqlx::query("DELETE FROM locks WHERE name = ?1 AND lease_id = ?2")
            .bind(&lease.name)
            .bind(&lease.lease_id)
            .execute(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        self.held_by_lease(deleted.rows_affected(), &lease)
    }

    /// The current holder of lock `name`, stale or not.
    #[cfg_attr(not(test), allow(dead_code))] // Inspection; only the store's tests use it yet.
    pub async fn lock_holder_of(&self, name: &str) -> Result<Option<LockHolder>, AuditError> {
        let row: Option<LockRow> = sqlx::query_as(
            "SELECT holder_pid, holder_host, acquired_at, heartbeat_at FROM locks WHERE name = ?1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(|error| self.db_error(error))?;
        row.map(|row| self.lock_holder(row)).transpose()
    }

    fn held_by_lease(&self, rows_affected: u64, lease: &LockLease) -> Result<(), AuditError> {
        if rows_affected == 0 {
            return Err(AuditError::LockLost {
                path: self.path_buf(),
                lock: lease.name.clone(),
            });
        }
        Ok(())
    }

    fn lock_holder(&self, row: LockRow) -> Result<LockHolder, AuditError> {
        Ok(LockHolder {
            pid: int(self.path(), "locks.holder_pid", row.holder_pid)?,
            host: row.holder_host,
            acquired_at: UnixMillis::from_millis(row.acquired_at),
            heartbeat_at: UnixMillis::from_millis(row.heartbeat_at),
        })
    }
}
