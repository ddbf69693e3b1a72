//! `--results DIR`: per-row result files.
//!
//! - `succeeded.csv`: rows whose targets are verified or were already in sync;
//! - `failed.csv`: rows with a target that failed, drifted, went stale or was skipped;
//! - `unprocessed.csv`: rows never reached (an interrupted run).
//!
//! For a CSV source each file repeats the input's own rows, columns and header, plus
//! `attrsync_status`, `attrsync_code`, `attrsync_message`, `attrsync_correlation_id`; the reader
//! ignores `attrsync_*` columns, so `failed.csv` can be fed straight back as input. Other
//! sources (SQLite, saved plans, resumed runs) get the long form with the same result columns.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::Context;
use reconcile::{SourceFormat, SourceInfo};

use audit::{TargetRecord, TargetStatus};

/// Columns the result files add; desired-state readers ignore them (`failed.csv` is valid input).
pub const RESULT_COLUMNS: [&str; 4] = [
    "attrsync_status",
    "attrsync_code",
    "attrsync_message",
    "attrsync_correlation_id",
];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Bucket {
    Succeeded,
    Failed,
    Unprocessed,
}

fn bucket(status: TargetStatus) -> Bucket {
    match status {
        TargetStatus::Verified | TargetStatus::Unchanged | TargetStatus::Applied => {
            Bucket::Succeeded
        }
        TargetStatus::Planned | TargetStatus::Sending | TargetStatus::NotApplied => {
            Bucket::Unprocessed
        }
        TargetStatus::Failed
        | TargetStatus::Unknown
        | TargetStatus::Drift
        | TargetStatus::Stale
        | TargetStatus::Skipped => Bucket::Failed,
    }
}

/// The outcome a result row reports: the worst of its targets'.
#[derive(Clone, Debug)]
struct RowOutcome {
    bucket: Bucket,
    status: String,
    code: String,
    message: String,
    correlation_id: String,
}

fn worse(a: &RowOutcome, b: &RowOutcome) -> bool {
    let rank = |o: &RowOutcome| match o.bucket {
        Bucket::Succeeded => 0,
        Bucket::Unprocessed => 1,
        Bucket::Failed => 2,
    };
    rank(b) > rank(a)
}

/// Writes the three files from the run's audit rows (the record of what happened).
pub fn write(dir: &Path, source: &SourceInfo, targets: &[TargetRecord]) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create results directory {}", dir.display()))?;
    let csv_source = matches!(source.format, SourceFormat::CsvWide | SourceFormat::CsvLong);
    if csv_source && Path::new(&source.path).is_file() {
        write_from_csv(dir, Path::new(&source.path), &outcome_per_line(targets))
    } else {
        write_long_form(dir, targets)
    }
}

fn outcome(t: &TargetRecord) -> RowOutcome {
    RowOutcome {
        bucket: bucket(t.status),
        status: t.status.as_str().to_owned(),
        code: t.error_code.clone().unwrap_or_default(),
        message: t
            .error_message
            .clone()
            .or_else(|| t.reason.clone())
            .unwrap_or_default(),
        correlation_id: t.correlation_id.clone().unwrap_or_default(),
    }
}

/// Input line -> the worst outcome of the targets that came from it.
fn outcome_per_line(targets: &[TargetRecord]) -> HashMap<u64, RowOutcome> {
    let mut by_line: HashMap<u64, RowOutcome> = HashMap::new();
    for t in targets {
        let lines = super::target_text::input_lines(&t.input_lines);
        let o = outcome(t);
        for line in lines {
            match by_line.get(&line) {
                Some(existing) if !worse(existing, &o) => {}
                _ => {
                    by_line.insert(line, o.clone());
                }
            }
        }
    }
    by_line
}

struct Writers {
    succeeded: csv::Writer<fs::File>,
    failed: csv::Writer<fs::File>,
    unprocessed: csv::Writer<fs::File>,
}

impl Writers {
    fn create(dir: &Path, header: &csv::StringRecord) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<csv::Writer<fs::File>> {
            let path = dir.join(name);
            let mut w = csv::Writer::from_path(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            w.write_record(header.iter().chain(RESULT_COLUMNS))?;
            Ok(w)
        };
        Ok(Writers {
            succeeded: open("succeeded.csv")?,
            failed: open("failed.csv")?,
            unprocessed: open("unprocessed.csv")?,
        })
    }

    fn write(&mut self, row: &csv::StringRecord, o: &RowOutcome) -> anyhow::Result<()> {
        let w = match o.bucket {
            Bucket::Succeeded => &mut self.succeeded,
            Bucket::Failed => &mut self.failed,
            Bucket::Unprocessed => &mut self.unprocessed,
        };
        let extra = [
            o.status.as_str(),
            o.code.as_str(),
            o.message.as_str(),
            o.correlation_id.as_str(),
        ];
        w.write_record(row.iter().chain(extra))?;
        Ok(())
    }

    fn flush(mut self) -> anyhow::Result<()> {
        self.succeeded.flush()?;
        self.failed.flush()?;
        self.unprocessed.flush()?;
        Ok(())
    }
}

fn write_from_csv(
    dir: &Path,
    input: &Path,
    by_line: &HashMap<u64, RowOutcome>,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(input)
        .with_context(|| format!("cannot re-read {}", input.display()))?;
    let header: csv::StringRecord = reader
        .headers()?
        .iter()
        .filter(|h| !h.starts_with("attrsync_"))
        .map(|h| h.trim_start_matches('\u{feff}'))
        .collect();
    let keep: Vec<bool> = reader
        .headers()?
        .iter()
        .map(|h| !h.starts_with("attrsync_"))
        .collect();
    let mut writers = Writers::create(dir, &header)?;
    // Line numbers from byte offsets: the csv crate's own line count drifts after CRLF endings,
    // and the reader that produced the targets' lines counts physical lines.
    let bytes = fs::read(input).with_context(|| format!("cannot re-read {}", input.display()))?;
    let newlines: Vec<u64> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i as u64)
        .collect();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        let offset = record.position().map_or(0, |p| p.byte());
        let line = 1 + newlines.partition_point(|&n| n < offset) as u64;
        if let Some(outcome) = by_line.get(&line) {
            let row: csv::StringRecord = record
                .iter()
                .zip(keep.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, k)| **k)
                .map(|(v, _)| v)
                .collect();
            writers.write(&row, outcome)?;
        }
    }
    writers.flush()
}

/// Long form, one row per target and key: valid input again (a known participant is pinned).
fn write_long_form(dir: &Path, targets: &[TargetRecord]) -> anyhow::Result<()> {
    let header = csv::StringRecord::from(vec![
        "conversation_id",
        "participant_id",
        "purpose",
        "user_id",
        "key",
        "value",
    ]);
    let mut writers = Writers::create(dir, &header)?;
    for t in targets {
        let (participant, purpose, user) = match (&t.participant_id, t.selector.split_once('=')) {
            (Some(pid), _) => (pid.as_str(), "", ""),
            (None, Some(("purpose", p))) => ("", p, ""),
            (None, Some(("user_id", u))) => ("", "", u),
            (None, Some((_, p))) => (p, "", ""),
            (None, None) => ("", "", ""),
        };
        let o = outcome(t);
        for (key, value) in &t.desired {
            let row = csv::StringRecord::from(vec![
                t.conversation_id.as_str(),
                participant,
                purpose,
                user,
                key.as_str(),
                value.as_str(),
            ]);
            writers.write(&row, &o)?;
        }
    }
    writers.flush()
}
