//! Turning stored column values back into typed values; a mismatch means the file was edited by
//! hand or written by an incompatible version, reported as `AuditError::Corrupt`.

use std::path::Path;
use std::str::FromStr;

use super::error::AuditError;
use super::time::UnixMillis;

pub(super) fn corrupt(path: &Path, what: &'static str, detail: impl ToString) -> AuditError {
    AuditError::Corrupt {
        path: path.to_path_buf(),
        what,
        detail: detail.to_string(),
    }
}

pub(super) fn int<T: TryFrom<i64>>(
    path: &Path,
    what: &'static str,
    value: i64,
) -> Result<T, AuditError> {
    T::try_from(value).map_err(|_| corrupt(path, what, format!("{value} is out of range")))
}

pub(super) fn opt_int<T: TryFrom<i64>>(
    path: &Path,
    what: &'static str,
    value: Option<i64>,
) -> Result<Option<T>, AuditError> {
    value.map(|value| int(path, what, value)).transpose()
}

pub(super) fn parsed<T>(path: &Path, what: &'static str, text: &str) -> Result<T, AuditError>
where
    T: FromStr,
    T::Err: ToString,
{
    text.parse()
        .map_err(|error: T::Err| corrupt(path, what, error))
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    text: &str,
) -> Result<T, AuditError> {
    serde_json::from_str(text).map_err(|error| corrupt(path, what, error))
}

pub(super) fn opt_millis(value: Option<i64>) -> Option<UnixMillis> {
    value.map(UnixMillis::from_millis)
}

/// Encodes a JSON value for a TEXT column. Maps of strings cannot fail to serialise; the
/// fallback keeps the column valid JSON regardless.
pub(super) fn to_json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}
