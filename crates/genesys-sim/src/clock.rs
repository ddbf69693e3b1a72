//! The simulator's clock: real time since start plus an offset that tests can advance, so that
//! token expiry, rate limits and visibility lag can be tested without sleeping.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug)]
pub(crate) struct SimClock {
    started: Instant,
    started_wall: SystemTime,
}

impl SimClock {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            started_wall: SystemTime::now(),
        }
    }

    /// Simulated time since start: real elapsed time plus `offset`.
    pub(crate) fn now(&self, offset: Duration) -> Duration {
        self.started.elapsed() + offset
    }

    /// The wall-clock time at simulated time `at`.
    pub(crate) fn wall(&self, at: Duration) -> SystemTime {
        self.started_wall + at
    }

    /// The wall-clock time of the simulator's start (calls are generated relative to it).
    pub(crate) fn started_wall(&self) -> SystemTime {
        self.started_wall
    }
}

/// ISO-8601 UTC with milliseconds (`2026-11-24T10:15:30.123Z`), the form the official SDKs parse.
pub(crate) fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}
