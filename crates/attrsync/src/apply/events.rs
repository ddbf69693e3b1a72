//! `--json`: NDJSON events on stdout, one object per line, each with `type` and `format_version`.

use std::io::Write;

use genesys_core::ClientStats;
use reconcile::SourceInfo;
use serde_json::{Value, json};

use super::{RunReport, TargetResult, counts};
use audit::RunId;

/// Bump when an event's fields change meaning or disappear (adding fields is compatible).
pub const FORMAT_VERSION: u32 = 1;

pub struct Events {
    enabled: bool,
}

impl Events {
    pub fn new(enabled: bool) -> Self {
        Events { enabled }
    }

    fn emit(&self, kind: &str, mut body: Value) {
        if !self.enabled {
            return;
        }
        if let Value::Object(map) = &mut body {
            map.insert("type".into(), kind.into());
            map.insert("format_version".into(), FORMAT_VERSION.into());
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not stop the run: the audit store is the record.
        let _ = writeln!(out, "{body}");
    }

    pub fn run_started(&self, run: &RunId, source: &SourceInfo) {
        self.emit(
            "run_started",
            json!({ "run_id": run.as_str(), "source": source.path, "source_sha256": source.sha256 }),
        );
    }

    pub fn target(&self, r: &TargetResult) {
        self.emit(
            "target",
            json!({
                "conversation_id": r.conversation_id,
                "participant_id": r.participant_id,
                "lines": r.lines,
                "status": r.status.as_str(),
                "http_status": r.http_status,
                "error_code": r.error_code,
                "message": r.message,
                "correlation_id": r.correlation_id,
            }),
        );
    }

    /// The end of a `tag --follow` run.
    pub fn follow_finished(
        &self,
        run: &RunId,
        counts: &audit::StatusCounts,
        exit: crate::exit::Exit,
        elapsed: std::time::Duration,
        stats: &ClientStats,
    ) {
        self.emit(
            "run_finished",
            json!({
                "run_id": run.as_str(),
                "exit_code": exit.code(),
                "elapsed_ms": elapsed.as_millis() as u64,
                "counts": counts,
                "requests": stats.requests,
                "throttled": stats.throttled,
            }),
        );
    }

    pub fn run_finished(&self, report: &RunReport, stats: &ClientStats) {
        self.emit(
            "run_finished",
            json!({
                "run_id": report.run.as_str(),
                "interrupted": report.interrupted,
                "exit_code": report.exit.code(),
                "elapsed_ms": report.elapsed.as_millis() as u64,
                "counts": counts(&report.results),
                "requests": stats.requests,
                "throttled": stats.throttled,
                "retries": stats.retries,
            }),
        );
    }
}
