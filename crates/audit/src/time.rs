//! Timestamps of the audit store: integer milliseconds since the Unix epoch, UTC.
//!
//! Integers rather than RFC 3339 text because the store compares them (`--since`, `--until`,
//! stale locks) and does arithmetic on them (durations, requests per second in the report);
//! one representation for every column keeps that exact and indexable. Humans see RFC 3339
//! with milliseconds through `Display` and serde.
//!
//! `Display` is total: every `i64` is an instant, and the ones a person can produce (a cutoff
//! "57 years ago" from `audit prune --older-than`, a time before the epoch or after year 9999
//! in a hand-edited store) render instead of panicking as `humantime`'s formatter does for them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |m| -m),
        };
        Self(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// The instant `duration` earlier, saturating.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// RFC 3339 in UTC with milliseconds (`2026-11-24T10:15:30.123Z`), the proleptic Gregorian
/// calendar on both sides of the epoch. Years outside 0000..=9999, which RFC 3339 cannot write,
/// take ISO 8601's expanded form with a sign (`-0001-...`, `+10000-...`).
impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let in_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}")?;
        } else {
            write!(f, "{year:+05}")?;
        }
        write!(
            f,
            "-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1_000 % 60,
            in_day % 1_000
        )
    }
}

/// The (year, month, day) of the day `days` after 1970-01-01 (before it when negative), in the
/// proleptic Gregorian calendar: Howard Hinnant's `civil_from_days`, exact for every day an
/// `i64` of milliseconds can name.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Days since 0000-03-01, so that a leap day ends each 400-year era.
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses RFC 3339 in UTC (`2026-11-24T10:15:30Z`, fractions and a space separator accepted).
impl FromStr for UnixMillis {
    type Err = humantime::TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339_weak(text).map(Self::from_system_time)
    }
}

impl serde::Serialize for UnixMillis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
