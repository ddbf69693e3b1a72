//! `--results DIR`: per-row result files, written from what the run recorded (its input rows and
//! its targets), never by reading the source again.
//!
//! - `succeeded.csv`: rows whose targets are all verified or were already in sync;
//! - `failed.csv`: rows with a target that failed, drifted, went stale, was skipped or is
//!   unknown, rows whose call had ended when the run began (status `skipped`, no target of their
//!   own), and rows `--skip-invalid` left out (status `invalid`, the problem as message);
//! - `unprocessed.csv`: rows not reached (an interrupted run).
//!
//! Each input row lands in exactly one file, with the input's own header and cells plus
//! `attrsync_status`, `attrsync_code`, `attrsync_message`, `attrsync_correlation_id`; the
//! reader ignores `attrsync_*` columns, so `failed.csv` can be fed straight back as input. A run
//! without recorded input rows (`tag`) gets the long form, one row per target and key.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use audit::{RecordedInput, StatusClass, TargetRecord, TargetStatus};
use reconcile::Selector;

/// Writing a result file; a CSV error is an I/O error with the file's name.
type Result<T> = std::io::Result<T>;

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
    match status.class() {
        StatusClass::Done => Bucket::Succeeded,
        StatusClass::NotReached => Bucket::Unprocessed,
        // A call that ended is reported with the failures: its row was not applied.
        StatusClass::NotDone | StatusClass::Gone => Bucket::Failed,
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

/// Writes the three files from the run's record: its input rows when it has them, else its
/// targets in long form.
pub fn write(dir: &Path, input: Option<&RecordedInput>, targets: &[TargetRecord]) -> Result<()> {
    fs::create_dir_all(dir)?;
    match input {
        Some(input) if !input.header.is_empty() => write_input_rows(dir, input, targets),
        _ => write_long_form(dir, targets),
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

fn csv_error(path: &Path, err: csv::Error) -> std::io::Error {
    std::io::Error::other(format!("{}: {err}", path.display()))
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
    fn create(dir: &Path, header: &csv::StringRecord) -> Result<Self> {
        let open = |name: &str| -> Result<csv::Writer<fs::File>> {
            let path = dir.join(name);
            let mut w = csv::Writer::from_path(&path).map_err(|e| csv_error(&path, e))?;
            w.write_record(header.iter().chain(RESULT_COLUMNS))
                .map_err(|e| csv_error(&path, e))?;
            Ok(w)
        };
        Ok(Writers {
            succeeded: open("succeeded.csv")?,
            failed: open("failed.csv")?,
            unprocessed: open("unprocessed.csv")?,
        })
    }

    fn write(&mut self, row: &csv::StringRecord, o: &RowOutcome) -> Result<()> {
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
        w.write_record(row.iter().chain(extra))
            .map_err(std::io::Error::other)
    }

    fn flush(mut self) -> Result<()> {
        self.succeeded.flush()?;
        self.failed.flush()?;
        self.unprocessed.flush()?;
        Ok(())
    }
}

fn write_input_rows(dir: &Path, input: &RecordedInput, targets: &[TargetRecord]) -> Result<()> {
    let by_line = outcome_per_line(targets);
    let header = csv::StringRecord::from(input.header.clone());
    let mut writers = Writers::create(dir, &header)?;
    for row in &input.rows {
        let outcome = match (&row.problem, by_line.get(&row.line)) {
            (Some(problem), _) => RowOutcome {
                bucket: Bucket::Failed,
                status: "invalid".into(),
                code: String::new(),
                message: problem.clone(),
                correlation_id: String::new(),
            },
            // Its call had ended when the run began: skipped without a target of its own.
            (None, _) if row.conversation_ended => RowOutcome {
                bucket: bucket(TargetStatus::Skipped),
                status: TargetStatus::Skipped.as_str().into(),
                code: String::new(),
                message: reconcile::SkipReason::ConversationEnded
                    .describe()
                    .to_owned(),
                correlation_id: String::new(),
            },
            // It selects calls by number, and no live call had it when the run began.
            (None, _) if row.no_live_call => RowOutcome {
                bucket: bucket(TargetStatus::Skipped),
                status: TargetStatus::Skipped.as_str().into(),
                code: String::new(),
                message: "no live call has this number".to_owned(),
                correlation_id: String::new(),
            },
            (None, Some(outcome)) => outcome.clone(),
            // No target carries the row: nothing was done with it.
            (None, None) => RowOutcome {
                bucket: Bucket::Unprocessed,
                status: TargetStatus::Planned.as_str().into(),
                code: String::new(),
                message: String::new(),
                correlation_id: String::new(),
            },
        };
        writers.write(&csv::StringRecord::from(row.cells.clone()), &outcome)?;
    }
    writers.flush()
}

/// Long form, one row per target and key: valid input again (a known participant is pinned).
fn write_long_form(dir: &Path, targets: &[TargetRecord]) -> Result<()> {
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
        let selectors = super::target_text::parse_selectors(&t.selector);
        let (participant, purpose, user) = match (&t.participant_id, selectors.first()) {
            (Some(pid), _) => (pid.as_str(), "", ""),
            (None, Some(Selector::Purpose(p))) => ("", p.as_str(), ""),
            (None, Some(Selector::UserId(u))) => ("", "", u.as_str()),
            (None, Some(Selector::ParticipantId(p))) => (p.as_str(), "", ""),
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
