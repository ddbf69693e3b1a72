//! The source of `reconcile SOURCE --follow`, watched cheaply for new versions.
//!
//! - SQLite: a read-only connection held open, asked `PRAGMA data_version` every poll (it changes
//!   when another connection commits), plus the file's identity (a database replaced by a new
//!   file is opened again).
//! - CSV: the file's identity, size and modification time (a new export renamed into place, or
//!   the file rewritten); when they change, the SHA-256 of its bytes, so that a touch is not a
//!   new version.
//!
//! A new version is read and validated whole with the source readers
//! ([`reconcile::read_path`]): valid, it becomes the follow's new desired state; invalid, it is
//! refused with every problem's file and line, and the previous state stays in force.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use reconcile::source::sqlite::{SqliteError, VersionProbe};
use reconcile::{ReadOptions, SourceError, SourceInfo, SqliteSelect};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::desired::FollowDesired;

/// What the watch found.
#[derive(Debug)]
pub enum SourceVersion {
    /// A version that validated: the follow's desired state from now on.
    Valid {
        desired: FollowDesired,
        source: SourceInfo,
        /// What reading it warned of (rows `--skip-invalid` left out, merged duplicates), as
        /// the readers render problems; empty when nothing.
        warnings: String,
    },
    /// A version that did not, with every problem (file and line) as the readers render them.
    Refused { path: PathBuf, problems: String },
}

/// A source that cannot be watched: it was not there, or not an SQLite database it looked like.
#[derive(Debug, thiserror::Error)]
pub enum SourceWatchError {
    #[error("cannot watch the source {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch the SQLite source {}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: SqliteError,
    },
}

/// Where a path's file is, and how it looked: a rename into place changes the inode, a rewrite
/// the size or the modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let (device, inode) = {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let (device, inode) = (0, 0);
    Ok(Identity {
        device,
        inode,
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// How a change is told.
enum Probe {
    /// A held connection and the `data_version` it last answered.
    Sqlite {
        connection: VersionProbe,
        data_version: i64,
    },
    /// The SHA-256 of the bytes last seen.
    Csv { sha256: [u8; 32] },
}

/// A watched source: the state it was in when the watch began (or last changed).
pub struct SourceWatch {
    path: PathBuf,
    select: SqliteSelect,
    options: ReadOptions,
    poll_interval: Duration,
    identity: Identity,
    probe: Probe,
}

impl std::fmt::Debug for SourceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatch")
            .field("path", &self.path)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

fn sha256_of(path: &Path) -> std::io::Result<[u8; 32]> {
    Ok(Sha256::digest(std::fs::read(path)?).into())
}

impl SourceWatch {
    /// Takes the source's state now: open this before the first version is read, so that a
    /// change made meanwhile is seen at the first poll.
    pub async fn open(
        path: &Path,
        select: SqliteSelect,
        options: ReadOptions,
        poll_interval: Duration,
    ) -> Result<Self, SourceWatchError> {
        let io = |source| SourceWatchError::Io {
            path: path.to_owned(),
            source,
        };
        let identity = identity(path).map_err(io)?;
        let is_sqlite = reconcile::source::is_sqlite_file(path).unwrap_or(false);
        let probe = if is_sqlite {
            let sqlite = |source| SourceWatchError::Sqlite {
                path: path.to_owned(),
                source,
            };
            let connection = VersionProbe::open(path).map_err(sqlite)?;
            let data_version = connection.data_version().map_err(sqlite)?;
            Probe::Sqlite {
                connection,
                data_version,
            }
        } else {
            Probe::Csv {
                sha256: sha256_of(path).map_err(io)?,
            }
        };
        Ok(Self {
            path: path.to_owned(),
            select,
            options,
            poll_interval,
            identity,
            probe,
        })
    }

    /// Whether the source changed since the last look. A file missing for a moment (between an
    /// unlink and a rename) is no change: the next poll looks again.
    fn changed(&mut self) -> bool {
        let Ok(now) = identity(&self.path) else {
            return false;
        };
        match &mut self.probe {
            Probe::Sqlite {
                connection,
                data_version: seen,
            } => {
                let replaced =
                    (now.device, now.inode) != (self.identity.device, self.identity.inode);
                if replaced {
                    let Ok(reopened) = VersionProbe::open(&self.path) else {
                        return false;
                    };
                    let Ok(version) = reopened.data_version() else {
                        return false;
                    };
                    *connection = reopened;
                    *seen = version;
                    self.identity = now;
                    return true;
                }
                match connection.data_version() {
                    Ok(version) if version != *seen => {
                        *seen = version;
                        true
                    }
                    Ok(_) => false,
                    Err(err) => {
                        tracing::debug!("cannot ask the source for its data_version: {err}");
                        false
                    }
                }
            }
            Probe::Csv { sha256 } => {
                if now == self.identity {
                    return false;
                }
                let Ok(bytes_now) = sha256_of(&self.path) else {
                    return false;
                };
                self.identity = now;
                if bytes_now == *sha256 {
                    tracing::debug!(
                        source = %self.path.display(),
                        "the source's file changed, its bytes did not: no new version"
                    );
                    return false;
                }
                *sha256 = bytes_now;
                true
            }
        }
    }

    /// Reads and validates the source as it is now (`&mut`: the held connection is not `Sync`).
    async fn read(&mut self) -> SourceVersion {
        match reconcile::read_path(&self.path, &self.select, &self.options).await {
            Ok(desired) => SourceVersion::Valid {
                source: desired.source.clone(),
                warnings: reconcile::render_problems(
                    &desired.warnings,
                    reconcile::DEFAULT_SHOWN_PROBLEMS,
                )
                .trim_end()
                .to_owned(),
                desired: FollowDesired::from_state(desired),
            },
            Err(err) => SourceVersion::Refused {
                path: self.path.clone(),
                problems: refusal(&err),
            },
        }
    }

    /// Polls the source until `versions` is closed, sending each new version.
    pub fn spawn(mut self, versions: mpsc::Sender<SourceVersion>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(self.poll_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = versions.closed() => return,
                }
                if !self.changed() {
                    continue;
                }
                let version = self.read().await;
                if versions.send(version).await.is_err() {
                    return;
                }
            }
        })
    }
}

/// The error and every problem with its file and line (at most the readers' default number).
fn refusal(err: &SourceError) -> String {
    let problems = reconcile::render_problems(err.problems(), reconcile::DEFAULT_SHOWN_PROBLEMS);
    let chain = crate::error_chain(err);
    if problems.trim().is_empty() {
        chain
    } else {
        format!("{chain}\n{}", problems.trim_end())
    }
}
