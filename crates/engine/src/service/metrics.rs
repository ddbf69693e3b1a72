//! Prometheus metrics of a `reconcile` iteration and of a running `tag --follow`, for
//! node_exporter's textfile collector (`--metrics-file`) and for a scrape of `/metrics`
//! ([`super::serve`]).
//!
//! Each snapshot ([`IterationMetrics`], [`FollowMetrics`]) becomes a `prometheus-client`
//! [`Registry`] ([`iteration_registry`], [`follow_registry`]), encoded by the library in the
//! Prometheus text format 0.0.4 ([`encode`], [`CONTENT_TYPE`]): the format node_exporter's
//! textfile collector parses, in which a counter's `# TYPE` line names its `_total` series.
//!
//! Every value of an iteration describes that iteration only, so every one of its metrics is a
//! gauge. Every target status is always written (0 when absent), in lifecycle order, so that a
//! series never disappears between runs.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit::{StatusCounts, TargetStatus};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, prometheus_text};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};

/// The `Content-Type` of [`encode`]'s text: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What one iteration leaves for monitoring.
#[derive(Clone, Debug, PartialEq)]
pub struct IterationMetrics {
    pub finished_at: SystemTime,
    pub duration: Duration,
    pub exit_code: u8,
    pub targets: StatusCounts,
    /// Desired rows whose call had ended: skipped with no request and no target row.
    pub ended_rows: u64,
    /// HTTP attempts of the run.
    pub requests: u64,
    /// Responses with status 429 (rate limited).
    pub throttled: u64,
}

/// The metrics of an iteration, as a registry of constant gauges.
pub fn iteration_registry(metrics: &IterationMetrics) -> Registry {
    let mut registry = Registry::default();
    add(
        &mut registry,
        "attrsync_last_run_timestamp_seconds",
        "When the last reconcile iteration finished, in seconds since the Unix epoch.",
        ConstGauge::new(seconds_since_epoch(metrics.finished_at)),
    );
    add(
        &mut registry,
        "attrsync_last_run_duration_seconds",
        "How long the last reconcile iteration took.",
        ConstGauge::new(metrics.duration.as_secs_f64()),
    );
    add(
        &mut registry,
        "attrsync_last_run_exit_code",
        "Exit code of the last reconcile iteration (0 in sync or converged, 1 failed, 3 partial, 130 interrupted).",
        ConstGauge::new(i64::from(metrics.exit_code)),
    );
    add(
        &mut registry,
        "attrsync_last_run_targets",
        "Targets of the last reconcile iteration, by final status.",
        Labelled {
            label: "status",
            series: TargetStatus::ALL
                .iter()
                .map(|status| {
                    (
                        status.as_str(),
                        ConstGauge::new(metrics.targets.get(*status)),
                    )
                })
                .collect(),
        },
    );
    add(
        &mut registry,
        "attrsync_last_run_ended_rows",
        "Desired rows of the last reconcile iteration whose call had ended (skipped without a request or a target).",
        ConstGauge::new(metrics.ended_rows),
    );
    add(
        &mut registry,
        "attrsync_last_run_requests",
        "HTTP requests sent during the last reconcile iteration, retries included.",
        ConstGauge::new(metrics.requests),
    );
    add(
        &mut registry,
        "attrsync_last_run_throttled_requests",
        "Requests of the last reconcile iteration answered 429 (rate limited).",
        ConstGauge::new(metrics.throttled),
    );
    registry
}

/// The metrics in the Prometheus text exposition format (version 0.0.4).
pub fn render(metrics: &IterationMetrics) -> String {
    encode(&iteration_registry(metrics))
}

/// What a running follow (`tag --follow`, `reconcile --follow`) reports, rewritten at least every 10 s (its age is a
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
    /// `reconcile --follow`: new versions of the source in force, and refused.
    pub source_versions_applied: u64,
    pub source_versions_refused: u64,
    /// Live calls followed now.
    pub tracked_calls: u64,
    pub requests: u64,
    pub throttled: u64,
    /// Mean time from a change's acceptance to the event that showed it.
    pub event_lag_seconds: Option<f64>,
    /// Set once the follow has ended.
    pub exit_code: Option<u8>,
}

/// A follow's metrics as a registry: counters since it started, and gauges. Counters are
/// registered without their `_total`, which the encoding adds.
pub fn follow_registry(m: &FollowMetrics) -> Registry {
    let mut registry = Registry::default();
    add(
        &mut registry,
        "attrsync_follow_updated_timestamp_seconds",
        "When this file was written, in seconds since the Unix epoch (a liveness signal).",
        ConstGauge::new(seconds_since_epoch(m.updated_at)),
    );
    add(
        &mut registry,
        "attrsync_follow_running_seconds",
        "How long the follow has run.",
        ConstGauge::new(m.running_for.as_secs_f64()),
    );
    for (name, help, value) in [
        (
            "attrsync_follow_calls_seen",
            "Calls the follow took up (from events or a backfill listing).",
            m.calls_seen,
        ),
        (
            "attrsync_follow_tagged",
            "Participants whose change was verified.",
            m.tagged,
        ),
        (
            "attrsync_follow_skipped",
            "Targets skipped (the call ended before its turn, or a stale plan).",
            m.skipped,
        ),
        ("attrsync_follow_failed", "Targets that failed.", m.failed),
        (
            "attrsync_follow_drift",
            "Targets whose values someone else overwrote.",
            m.drift,
        ),
        (
            "attrsync_follow_reconnects",
            "Notification socket reconnections.",
            m.reconnects,
        ),
        (
            "attrsync_follow_requests",
            "HTTP requests sent, retries included.",
            m.requests,
        ),
        (
            "attrsync_follow_source_versions_applied",
            "New versions of the source that validated and are in force (reconcile --follow).",
            m.source_versions_applied,
        ),
        (
            "attrsync_follow_source_versions_refused",
            "New versions of the source refused because they did not validate (reconcile --follow).",
            m.source_versions_refused,
        ),
        (
            "attrsync_follow_throttled_requests",
            "Requests answered 429 (rate limited).",
            m.throttled,
        ),
    ] {
        add(&mut registry, name, help, ConstCounter::new(value));
    }
    add(
        &mut registry,
        "attrsync_follow_verified",
        "Verified or drifted changes, by what showed the values (a notification event or a read).",
        Labelled {
            label: "via",
            series: vec![
                ("event", ConstCounter::new(m.verified_by_event)),
                ("read", ConstCounter::new(m.verified_by_read)),
            ],
        },
    );
    add(
        &mut registry,
        "attrsync_follow_tracked_calls",
        "Live calls the follow keeps state for now (forgotten when they end).",
        ConstGauge::new(m.tracked_calls),
    );
    if let Some(lag) = m.event_lag_seconds {
        add(
            &mut registry,
            "attrsync_follow_event_lag_seconds",
            "Mean time from a change's acceptance to the event that showed it.",
            ConstGauge::new(lag),
        );
    }
    if let Some(code) = m.exit_code {
        add(
            &mut registry,
            "attrsync_follow_exit_code",
            "Exit code of the follow, once it has ended.",
            ConstGauge::new(i64::from(code)),
        );
    }
    registry
}

/// A follow's metrics in the Prometheus text format (version 0.0.4).
pub fn render_follow(m: &FollowMetrics) -> String {
    encode(&follow_registry(m))
}

/// A registry in the Prometheus text format (version 0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail, and the metrics here encode without error.
    if let Err(fmt::Error) = prometheus_text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics");
    }
    text
}

/// Registers `metric`; the library ends every help text with a full stop, so the one given
/// here loses its own.
fn add(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

fn seconds_since_epoch(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A metric family with one label whose series keep the order given (a `Family` keeps its
/// series in a hash map, and a file that reorders itself at every write is harder to read and
/// to compare).
#[derive(Debug)]
struct Labelled<M> {
    label: &'static str,
    series: Vec<(&'static str, M)>,
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Labelled<M> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        for (value, metric) in &self.series {
            metric.encode(encoder.encode_family(&[(self.label, *value)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
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
            ended_rows: 3,
            requests: 250,
            throttled: 4,
        }
    }

    #[test]
    fn renders_every_metric_with_help_type_and_value() {
        let text = render(&sample());
        for expected in [
            "# HELP attrsync_last_run_timestamp_seconds ",
            "# TYPE attrsync_last_run_timestamp_seconds gauge\nattrsync_last_run_timestamp_seconds 1700000000.25\n",
            "# TYPE attrsync_last_run_duration_seconds gauge\nattrsync_last_run_duration_seconds 1.5\n",
            "attrsync_last_run_exit_code 3\n",
            "attrsync_last_run_targets{status=\"verified\"} 5\n",
            "attrsync_last_run_targets{status=\"unchanged\"} 115\n",
            "attrsync_last_run_targets{status=\"failed\"} 2\n",
            "attrsync_last_run_targets{status=\"drift\"} 0\n",
            "attrsync_last_run_requests 250\n",
            "# TYPE attrsync_last_run_ended_rows gauge\nattrsync_last_run_ended_rows 3\n",
            "# TYPE attrsync_last_run_throttled_requests gauge\nattrsync_last_run_throttled_requests 4\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn every_sample_line_is_name_optional_labels_and_a_number() {
        let text = render(&sample());
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        // 6 single-value gauges plus one line per target status.
        assert_eq!(samples.len(), 6 + TargetStatus::ALL.len());
        for line in samples {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("attrsync_last_run_"), "{line}");
        }
        assert!(text.ends_with('\n'));
    }

    fn follow_sample() -> FollowMetrics {
        FollowMetrics {
            updated_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
            running_for: Duration::from_secs(90),
            calls_seen: 12,
            tagged: 10,
            verified_by_event: 9,
            verified_by_read: 1,
            skipped: 1,
            failed: 0,
            drift: 1,
            reconnects: 2,
            source_versions_applied: 4,
            source_versions_refused: 1,
            tracked_calls: 3,
            requests: 40,
            throttled: 0,
            event_lag_seconds: Some(0.25),
            exit_code: None,
        }
    }

    #[test]
    fn target_statuses_come_in_lifecycle_order_with_help_ending_once() {
        let text = render(&sample());
        let statuses: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("attrsync_last_run_targets{status=\""))
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        let expected: Vec<&str> = TargetStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(statuses, expected);
        assert!(text.contains(
            "# HELP attrsync_last_run_targets Targets of the last reconcile iteration, by final status.\n"
        ));
        assert!(!text.contains(".."), "{text}");
        // The textfile format (0.0.4) has no OpenMetrics end marker.
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn follow_counters_are_counters_named_by_their_total_series() {
        let text = render_follow(&follow_sample());
        for expected in [
            "# TYPE attrsync_follow_calls_seen_total counter\nattrsync_follow_calls_seen_total 12\n",
            "# TYPE attrsync_follow_tagged_total counter\nattrsync_follow_tagged_total 10\n",
            "attrsync_follow_skipped_total 1\n",
            "attrsync_follow_failed_total 0\n",
            "attrsync_follow_drift_total 1\n",
            "attrsync_follow_reconnects_total 2\n",
            "attrsync_follow_requests_total 40\n",
            "attrsync_follow_throttled_requests_total 0\n",
            "attrsync_follow_source_versions_applied_total 4\n",
            "attrsync_follow_source_versions_refused_total 1\n",
            "# TYPE attrsync_follow_verified_total counter\n\
             attrsync_follow_verified_total{via=\"event\"} 9\n\
             attrsync_follow_verified_total{via=\"read\"} 1\n",
            "# TYPE attrsync_follow_tracked_calls gauge\nattrsync_follow_tracked_calls 3\n",
            "attrsync_follow_updated_timestamp_seconds 1700000000.5\n",
            "attrsync_follow_running_seconds 90.0\n",
            "attrsync_follow_event_lag_seconds 0.25\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // The exit code only once the follow has ended.
        assert!(!text.contains("attrsync_follow_exit_code"), "{text}");
        let ended = render_follow(&FollowMetrics {
            exit_code: Some(0),
            event_lag_seconds: None,
            ..follow_sample()
        });
        assert!(
            ended.contains("# TYPE attrsync_follow_exit_code gauge\nattrsync_follow_exit_code 0\n")
        );
        assert!(!ended.contains("event_lag"), "{ended}");
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
