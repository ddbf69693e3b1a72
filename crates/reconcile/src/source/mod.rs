//! Desired-state sources. Reading the source is the only I/O of this crate.

pub mod csv;
mod raw_input;
pub mod sqlite;

use std::io::Read;
use std::path::Path;

use crate::desired::DesiredState;
use crate::options::ReadOptions;
use crate::problem::SourceError;

pub use self::csv::{read_csv, read_csv_from};
pub use self::sqlite::{DEFAULT_TABLE, SqliteSelect, read_sqlite};

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether `path` is an SQLite database (by its header bytes, not its name).
pub fn is_sqlite_file(path: &Path) -> Result<bool, SourceError> {
    let io_error = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io_error)?;
    Ok(head == SQLITE_MAGIC)
}

/// Reads a desired state from a CSV file or an SQLite database, whichever `path` is;
/// `select` only applies to SQLite. CSV parsing runs on a blocking thread.
pub async fn read_path(
    path: &Path,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<DesiredState, SourceError> {
    if is_sqlite_file(path)? {
        return read_sqlite(path, select, options).await;
    }
    let (path, options) = (path.to_owned(), options.clone());
    let task_path = path.clone();
    tokio::task::spawn_blocking(move || read_csv(&task_path, &options))
        .await
        .map_err(|e| SourceError::Io {
            path,
            source: std::io::Error::other(e),
        })?
}
