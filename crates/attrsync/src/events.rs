//! `--json`: NDJSON events on stdout, one object per line, each with `type` and `format_version`.

use std::io::Write;

use engine::{RunKind, RunOutcome, TargetResult};
use reconcile::SourceInfo;
use serde_json::{Value, json};

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
                "verified_via": r.verified_by.map(|by| audit::VerifiedVia::from(by).as_str()),
            }),
        );
    }

    /// The end of a run: its counts as recorded, and the exit code the process exits with.
    pub fn run_finished(&self, outcome: &RunOutcome) {
        let mut body = json!({
            "run_id": outcome.run.as_str(),
            "exit_code": outcome.exit_code,
            "elapsed_ms": outcome.elapsed.as_millis() as u64,
            "counts": outcome.counts,
            "requests": outcome.stats.requests,
            "throttled": outcome.stats.throttled,
        });
        if outcome.kind == RunKind::Snapshot {
            body["interrupted"] = outcome.is_interrupted().into();
            body["retries"] = outcome.stats.retries.into();
        }
        self.emit("run_finished", body);
    }
}
