//! Identifiers of runs and targets.

use std::fmt;

use super::time::UnixMillis;

/// A run id such as `20261124T101530Z-ab12cd`: UTC start second (so ids sort by time) and
/// 24 random bits (so two runs started in the same second differ).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    pub fn generate(started_at: UnixMillis) -> Self {
        let seconds = humantime::format_rfc3339_seconds(started_at.to_system_time()).to_string();
        let compact: String = seconds.chars().filter(|c| *c != '-' && *c != ':').collect();
        let suffix = rand::random::<u32>() & 0x00ff_ffff;
        Self(format!("{compact}-{suffix:06x}"))
    }

    /// Wraps an id read from the store or typed by a user; resolution checks it exists.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The row id of one target of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TargetId(i64);

impl TargetId {
    /// The id of the target stored at row `id` (the store hands out ids; this is for decoding
    /// and for fixtures of callers' tests).
    pub const fn from_row(id: i64) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
