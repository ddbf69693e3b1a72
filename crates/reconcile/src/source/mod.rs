//! Desired-state sources. Reading the source is the only I/O of this crate.
//!
//! A source is read exactly once, whole, into memory: the format is told from those bytes, the
//! SHA-256 is of those bytes, and CSV is parsed from them, so a pipe, a process substitution
//! (`<(...)`) or `/dev/stdin` works as a CSV source. SQLite needs a regular file.

pub mod csv;
mod raw_input;
pub mod sqlite;

use std::io::Read;
use std::path::Path;

use crate::desired::{DesiredState, InputTable};
use crate::options::ReadOptions;
use crate::problem::SourceError;

pub use self::csv::{read_csv, read_csv_from};
pub use self::sqlite::{DEFAULT_TABLE, SqliteSelect, read_sqlite};

/// The desired state with its input table in [`DesiredState::input`].
fn with_input((mut state, input): (DesiredState, InputTable)) -> DesiredState {
    state.input = input;
    state
}

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// File name extensions of SQLite databases: such a file is read as one even when its header is
/// wrong, so a truncated or mistaken file gets "not a SQLite database" rather than CSV errors.
const SQLITE_EXTENSIONS: [&str; 3] = ["sqlite", "sqlite3", "db"];

/// Whether `path` is an SQLite database (by its header bytes, not its name). This opens and reads
/// the path: not for a pipe that is read afterwards ([`read_path`] reads a source only once).
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

/// Reads a desired state from a CSV file or an SQLite database, whichever `path` is (by its
/// header bytes, or an SQLite file name extension); `select` only applies to SQLite.
/// The path is read once; CSV parsing runs on a blocking thread.
pub async fn read_path(
    path: &Path,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<DesiredState, SourceError> {
    read_path_with_input(path, select, options)
        .await
        .map(with_input)
}

/// [`read_path`], also returning the input table.
pub(crate) async fn read_path_with_input(
    path: &Path,
    select: &SqliteSelect,
    options: &ReadOptions,
) -> Result<(DesiredState, InputTable), SourceError> {
    // `-` is standard input, as for most tools (read once, like any pipe).
    let read = if path == Path::new("-") {
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut bytes)
            .await
            .map(|_| bytes)
    } else {
        tokio::fs::read(path).await
    };
    let bytes = read.map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    let sqlite_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SQLITE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if bytes.starts_with(SQLITE_MAGIC) || sqlite_name {
        // SQLite reads the file itself: the bytes are needed for their hash only.
        let sha256 = raw_input::sha256_hex(&bytes);
        drop(bytes);
        return sqlite::read_sqlite_file(path, sha256, select, options).await;
    }
    let (name, options) = (path.display().to_string(), options.clone());
    tokio::task::spawn_blocking(move || csv::parse_csv(&bytes, &name, &options))
        .await
        .map_err(|e| SourceError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    /// A named pipe in a fresh temp dir, fed `content` by a writer thread (which blocks until the
    /// pipe is opened for reading, then writes in small pieces).
    fn fifo(
        content: Vec<u8>,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::thread::JoinHandle<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mkfifo failed");
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            for piece in content.chunks(7) {
                // The reader may stop early on an error; a broken pipe is its problem to report.
                if pipe.write_all(piece).is_err() {
                    return;
                }
            }
        });
        (dir, path, writer)
    }

    #[tokio::test]
    async fn a_csv_pipe_is_read_once_and_parses() {
        let content = format!("\u{feff}conversation_id,tier\r\n{CID},gold\r\n");
        let (_dir, path, writer) = fifo(content.clone().into_bytes());
        let (state, input) =
            read_path_with_input(&path, &SqliteSelect::default(), &ReadOptions::default())
                .await
                .unwrap();
        writer.join().unwrap();
        assert_eq!(state.to_entries()[0].attributes["tier"], "gold");
        assert_eq!(
            state.source.sha256,
            raw_input::sha256_hex(content.as_bytes())
        );
        assert_eq!(input.rows().next().unwrap().to_owned().cells, [CID, "gold"]);

        let (_dir, path, writer) = fifo(content.into_bytes());
        let state = read_csv(&path, &ReadOptions::default()).unwrap();
        writer.join().unwrap();
        assert_eq!(state.to_entries()[0].attributes["tier"], "gold");
    }

    #[tokio::test]
    async fn an_sqlite_pipe_is_refused_clearly() {
        let mut content = SQLITE_MAGIC.to_vec();
        content.resize(4096, 0);
        let (_dir, path, writer) = fifo(content);
        let err = read_path(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        writer.join().unwrap();
        assert!(matches!(err, SourceError::SqlitePipe { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("reading an SQLite database from a pipe is not supported"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_text_file_named_sqlite_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        std::fs::write(&path, format!("conversation_id,tier\n{CID},gold\n")).unwrap();
        let err = read_path(&path, &SqliteSelect::default(), &ReadOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: not a SQLite database, or corrupt: file is not a database",
                path.display()
            )
        );
    }
}
