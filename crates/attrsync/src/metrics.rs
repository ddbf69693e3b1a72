//! Prometheus text-format metrics of the last `reconcile` iteration, written for
//! node_exporter's textfile collector (`--metrics-file`).
//!
//! Every value describes the last iteration only, so every metric is a gauge. Every target
//! status is always written (0 when absent), so that a series never disappears between runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit::{StatusCounts, TargetStatus};

/// What one iteration leaves for monitoring.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationMetrics {
    pub finished_at: SystemTime,
    pub duration: Duration,
    pub exit_code: u8,
    pub targets: StatusCounts,
    /// HTTP attempts of the run.
    pub requests: u64,
    /// Responses with status 429 (rate limited).
    pub throttled: u64,
}

/// The metrics in the Prometheus text exposition format (version 0.0.4).
pub fn render(metrics: &IterationMetrics) -> String {
    let mut text = String::new();
    let finished = metrics
        .finished_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    gauge(
        &mut text,
        "attrsync_last_run_timestamp_seconds",
        "When the last reconcile iteration finished, in seconds since the Unix epoch.",
        &[(None, format!("{:.3}", finished.as_secs_f64()))],
    );
    gauge(
        &mut text,
        "attrsync_last_run_duration_seconds",
        "How long the last reconcile iteration took.",
        &[(None, format!("{:.3}", metrics.duration.as_secs_f64()))],
    );
    gauge(
        &mut text,
        "attrsync_last_run_exit_code",
        "Exit code of the last reconcile iteration (0 in sync or converged, 1 failed, 3 partial, 130 interrupted).",
        &[(None, metrics.exit_code.to_string())],
    );
    let per_status: Vec<_> = TargetStatus::ALL
        .iter()
        .map(|status| {
            (
                Some(format!("status=\"{status}\"")),
                metrics.targets.get(*status).to_string(),
            )
        })
        .collect();
    gauge(
        &mut text,
        "attrsync_last_run_targets",
        "Targets of the last reconcile iteration, by final status.",
        &per_status,
    );
    gauge(
        &mut text,
        "attrsync_last_run_requests",
        "HTTP requests sent during the last reconcile iteration, retries included.",
        &[(None, metrics.requests.to_string())],
    );
    gauge(
        &mut text,
        "attrsync_last_run_throttled_requests",
        "Requests of the last reconcile iteration answered 429 (rate limited).",
        &[(None, metrics.throttled.to_string())],
    );
    text
}

/// What a running `tag --follow` reports, rewritten at least every 10 s (its age is a
/// liveness signal).
#[derive(Clone, Debug, PartialEq)]
pub struct FollowMetrics {
    pub updated_at: SystemTime,
    pub running_for: Duration,
    pub calls_seen: u64,
    pub tagged: u64,
    pub verified_by_event: u64,
    pub verified_by_read: u64,
    pub skipped: u64,
    pub failed: u64,
    pub drift: u64,
    pub reconnects: u64,
    /// Live calls followed now.
    pub tracked_calls: u64,
    pub requests: u64,
    pub throttled: u64,
    /// Mean time from a change's acceptance to the event that showed it.
    pub event_lag_seconds: Option<f64>,
    /// Set once the follow has ended.
    pub exit_code: Option<u8>,
}

/// A follow's metrics in the Prometheus text format: counters since it started, and gauges.
pub fn render_follow(m: &FollowMetrics) -> String {
    let mut text = String::new();
    let updated = m.updated_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    gauge(
        &mut text,
        "attrsync_follow_updated_timestamp_seconds",
        "When this file was written, in seconds since the Unix epoch (a liveness signal).",
        &[(None, format!("{:.3}", updated.as_secs_f64()))],
    );
    gauge(
        &mut text,
        "attrsync_follow_running_seconds",
        "How long the follow has run.",
        &[(None, format!("{:.3}", m.running_for.as_secs_f64()))],
    );
    for (name, help, value) in [
        (
            "attrsync_follow_calls_seen_total",
            "Calls the follow took up (from events or a backfill listing).",
            m.calls_seen,
        ),
        (
            "attrsync_follow_tagged_total",
            "Participants whose change was verified.",
            m.tagged,
        ),
        (
            "attrsync_follow_skipped_total",
            "Targets skipped (the call ended before its turn, or a stale plan).",
            m.skipped,
        ),
        (
            "attrsync_follow_failed_total",
            "Targets that failed.",
            m.failed,
        ),
        (
            "attrsync_follow_drift_total",
            "Targets whose values someone else overwrote.",
            m.drift,
        ),
        (
            "attrsync_follow_reconnects_total",
            "Notification socket reconnections.",
            m.reconnects,
        ),
        (
            "attrsync_follow_requests_total",
            "HTTP requests sent, retries included.",
            m.requests,
        ),
        (
            "attrsync_follow_throttled_requests_total",
            "Requests answered 429 (rate limited).",
            m.throttled,
        ),
    ] {
        counter(&mut text, name, help, &[(None, value.to_string())]);
    }
    counter(
        &mut text,
        "attrsync_follow_verified_total",
        "Verified or drifted changes, by what showed the values (a notification event or a read).",
        &[
            (
                Some("via=\"event\"".to_owned()),
                m.verified_by_event.to_string(),
            ),
            (
                Some("via=\"read\"".to_owned()),
                m.verified_by_read.to_string(),
            ),
        ],
    );
    gauge(
        &mut text,
        "attrsync_follow_tracked_calls",
        "Live calls the follow keeps state for now (forgotten when they end).",
        &[(None, m.tracked_calls.to_string())],
    );
    if let Some(lag) = m.event_lag_seconds {
        gauge(
            &mut text,
            "attrsync_follow_event_lag_seconds",
            "Mean time from a change's acceptance to the event that showed it.",
            &[(None, format!("{lag:.3}"))],
        );
    }
    if let Some(code) = m.exit_code {
        gauge(
            &mut text,
            "attrsync_follow_exit_code",
            "Exit code of the follow, once it has ended.",
            &[(None, code.to_string())],
        );
    }
    text
}

fn counter(text: &mut String, name: &str, help: &str, samples: &[(Option<String>, String)]) {
    metric(text, "counter", name, help, samples);
}

fn gauge(text: &mut String, name: &str, help: &str, samples: &[(Option<String>, String)]) {
    metric(text, "gauge", name, help, samples);
}

fn metric(
    text: &mut String,
    kind: &str,
    name: &str,
    help: &str,
    samples: &[(Option<String>, String)],
) {
    // Writing to a String cannot fail.
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        match labels {
            Some(labels) => {
                let _ = writeln!(text, "{name}{{{labels}}} {value}");
            }
            None => {
                let _ = writeln!(text, "{name} {value}");
            }
        }
    }
}

/// Replaces `path` with `contents` atomically: a collector reading it sees the old file or the
/// new one, never half of one. The temporary file sits in the same directory (so the rename
/// stays on one file system) and does not end in `.prom`, so the collector ignores it.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temp, path)) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = std::fs::remove_file(&temp);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IterationMetrics {
        let mut targets = StatusCounts::default();
        targets.add(TargetStatus::Verified, 5);
        targets.add(TargetStatus::Unchanged, 115);
        targets.add(TargetStatus::Failed, 2);
        IterationMetrics {
            finished_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            duration: Duration::from_millis(1_500),
            exit_code: 3,
            targets,
            requests: 250,
            throttled: 4,
        }
    }

    #[test]
    fn renders_every_metric_with_help_type_and_value() {
        let text = render(&sample());
        for expected in [
            "# HELP attrsync_last_run_timestamp_seconds ",
            "# TYPE attrsync_last_run_timestamp_seconds gauge\nattrsync_last_run_timestamp_seconds 1700000000.250\n",
            "# TYPE attrsync_last_run_duration_seconds gauge\nattrsync_last_run_duration_seconds 1.500\n",
            "attrsync_last_run_exit_code 3\n",
            "attrsync_last_run_targets{status=\"verified\"} 5\n",
            "attrsync_last_run_targets{status=\"unchanged\"} 115\n",
            "attrsync_last_run_targets{status=\"failed\"} 2\n",
            "attrsync_last_run_targets{status=\"drift\"} 0\n",
            "attrsync_last_run_requests 250\n",
            "# TYPE attrsync_last_run_throttled_requests gauge\nattrsync_last_run_throttled_requests 4\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn every_sample_line_is_name_optional_labels_and_a_number() {
        let text = render(&sample());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        // 5 single-value gauges plus one line per target status.
        assert_eq!(samples.len(), 5 + TargetStatus::ALL.len());
        for line in samples {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("attrsync_last_run_"), "{line}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn writing_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attrsync.prom");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["attrsync.prom"]);
    }

    #[test]
    fn writing_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/attrsync.prom");
        assert!(write_atomically(&path, "x").is_err());
    }
}
