//! Saved plans (`plan --out plan.json`): a versioned JSON document applied later.
//!
//! ```json
//! {"format_version": 2, "kind": "attrsync-plan", "created_at": "2026-11-24T10:15:30Z",
//!  "source": {"path": "...", "format": "csv_wide", "sha256": "..."},
//!  "default_purpose": "customer", "targets": [ ... ]}
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::desired::{InputTable, Selector, SourceFormat, SourceInfo};
use crate::options::{Limits, ReadOptions};
use crate::plan::{Plan, PlannedTarget};
use crate::problem::{LineUnit, SourceError};
use crate::validate::{DesiredBuilder, RawRow};

/// The only saved-plan format this build writes and reads.
pub const PLAN_FORMAT_VERSION: u64 = 2;
/// The `kind` of a saved plan, so that another JSON file is not mistaken for one.
pub const PLAN_KIND: &str = "attrsync-plan";

/// Where a plan came from and when it was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMetadata {
    /// RFC 3339, UTC.
    pub created_at: String,
    pub source: SourceInfo,
    pub default_purpose: String,
    /// The input's own rows, so that applying the plan later writes result files with them.
    #[serde(default)]
    pub input: InputTable,
    /// The lines of rows selecting calls by a number no live call had when the plan was made:
    /// applied, the plan counts them and lists them skipped, as a direct apply does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_live_call: Vec<u64>,
}

impl PlanMetadata {
    pub fn new(source: SourceInfo, default_purpose: &str, created_at: SystemTime) -> Self {
        Self {
            created_at: humantime::format_rfc3339_seconds(created_at).to_string(),
            source,
            default_purpose: default_purpose.to_owned(),
            input: InputTable::default(),
            no_live_call: Vec::new(),
        }
    }
}

/// A loaded saved plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedPlan {
    pub metadata: PlanMetadata,
    pub plan: Plan,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot write plan {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read plan {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an attrsync plan document", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{} is the output of `attrsync plan --json`, for reading; save a plan to apply with \
         `attrsync plan SOURCE --out PLAN.json`, then `attrsync apply PLAN.json`",
        path.display()
    )]
    PlanJsonOutput { path: PathBuf },
    #[error("{} is not an attrsync plan (kind {}, expected \"{PLAN_KIND}\")", path.display(),
        found.as_deref().map_or_else(|| "missing".to_owned(), |k| format!("{k:?}")))]
    WrongKind {
        path: PathBuf,
        found: Option<String>,
    },
    #[error("{}: plan format version {} is not supported (this attrsync reads version {PLAN_FORMAT_VERSION})",
        path.display(), found.map_or_else(|| "missing".to_owned(), |v| v.to_string()))]
    UnsupportedVersion { path: PathBuf, found: Option<u64> },
    #[error("{}: invalid plan", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The on-disk shape, borrowed for writing.
#[derive(Serialize)]
struct SavedPlanRef<'a> {
    format_version: u64,
    kind: &'static str,
    #[serde(flatten)]
    metadata: &'a PlanMetadata,
    targets: &'a [PlannedTarget],
}

#[derive(Deserialize)]
struct SavedPlanOwned {
    #[serde(flatten)]
    metadata: PlanMetadata,
    targets: Vec<PlannedTarget>,
}

/// Just enough to recognise a saved plan before trusting its shape.
#[derive(Deserialize)]
struct Envelope {
    kind: Option<String>,
    format_version: Option<u64>,
    /// Only `plan --json` output has it (no saved plan does).
    summary: Option<serde::de::IgnoredAny>,
}

/// The saved-plan JSON document (pretty-printed).
pub fn to_json(plan: &Plan, metadata: &PlanMetadata) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&SavedPlanRef {
        format_version: PLAN_FORMAT_VERSION,
        kind: PLAN_KIND,
        metadata,
        targets: &plan.targets,
    })
}

/// Writes the plan to `path` atomically (a temporary file beside it, then a rename), so that an
/// interrupted save never leaves a truncated plan to be applied.
pub fn save(plan: &Plan, metadata: &PlanMetadata, path: &Path) -> Result<(), SavedPlanError> {
    let write_error = |source| SavedPlanError::Write {
        path: path.to_owned(),
        source,
    };
    let json = to_json(plan, metadata).map_err(|e| write_error(std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(write_error)?;
    file.write_all(json.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(write_error)
}

/// Reads a saved plan, refusing other JSON files and other format versions.
pub fn load(path: &Path) -> Result<SavedPlan, SavedPlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_json(&text, path)
}

/// Parses a saved plan; `path` is only used in errors.
pub fn from_json(text: &str, path: &Path) -> Result<SavedPlan, SavedPlanError> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|source| SavedPlanError::NotJson {
            path: path.to_owned(),
            source,
        })?;
    if envelope.kind.is_none() && envelope.summary.is_some() {
        return Err(SavedPlanError::PlanJsonOutput {
            path: path.to_owned(),
        });
    }
    if envelope.kind.as_deref() != Some(PLAN_KIND) {
        return Err(SavedPlanError::WrongKind {
            path: path.to_owned(),
            found: envelope.kind,
        });
    }
    if envelope.format_version != Some(PLAN_FORMAT_VERSION) {
        return Err(SavedPlanError::UnsupportedVersion {
            path: path.to_owned(),
            found: envelope.format_version,
        });
    }
    let saved: SavedPlanOwned =
        serde_json::from_str(text).map_err(|source| SavedPlanError::Invalid {
            path: path.to_owned(),
            source,
        })?;
    Ok(SavedPlan {
        metadata: saved.metadata,
        plan: Plan {
            targets: saved.targets,
        },
    })
}

/// Checks a saved plan's targets as an input is checked (conversation and participant ids,
/// keys, value sizes, keys per target, the request size), with the same rules and messages, so
/// that a hand-edited or foreign plan cannot send what a CSV could not. A plan made by attrsync
/// has one target per participant, and each of its lines is a row of the plan's input (when it
/// carries one): a participant named twice (two PATCHes) or a line that is no row (a result
/// file that reports a row the run never carried) is refused too. Every problem is named
/// `plan.json:target N: ...`.
pub fn validate(saved: &SavedPlan, path: &Path, limits: &Limits) -> Result<(), SourceError> {
    let options = ReadOptions {
        default_purpose: saved.metadata.default_purpose.clone(),
        limits: limits.clone(),
        ..ReadOptions::default()
    };
    let mut builder = DesiredBuilder::new(path.display().to_string(), LineUnit::Target, &options)?;
    let input = &saved.metadata.input;
    // Result files are written from the input's rows only when it has a header (as `results`).
    let rows: Option<HashMap<u64, bool>> = (!input.header.is_empty()).then(|| {
        input
            .rows()
            .map(|row| (row.line, row.problem.is_some()))
            .collect()
    });
    let line_word = match saved.metadata.source.format {
        SourceFormat::Sqlite => "row",
        SourceFormat::CsvWide | SourceFormat::CsvLong => "line",
    };
    // (conversation, participant), both lowercase -> the first target that names them.
    let mut participants: HashMap<(String, String), u64> = HashMap::new();
    for (index, target) in saved.plan.targets.iter().enumerate() {
        let mut row = RawRow {
            line: index as u64 + 1,
            conversation_id: &target.conversation_id,
            pairs: target
                .desired
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            ..RawRow::default()
        };
        match (&target.participant_id, target.selectors.first()) {
            (Some(pid), _) => row.participant_id = pid,
            (None, Some(Selector::ParticipantId(pid))) => row.participant_id = pid,
            (None, Some(Selector::Purpose(purpose))) => row.purpose = purpose,
            (None, Some(Selector::UserId(user))) => row.user_id = user,
            (None, None) => {}
        }
        builder.add_row(&row, true);
        let inconsistent = target
            .patch_body()
            .into_iter()
            .find(|(k, v)| target.desired.get(k) != Some(v));
        if let Some((key, _)) = inconsistent {
            builder.row_problem(
                row.line,
                format!("the update of key {key:?} does not match the target's desired value"),
            );
        }
        if let Some(pid) = &target.participant_id {
            let conversation = target.conversation_id.trim().to_ascii_lowercase();
            let participant = pid.trim().to_ascii_lowercase();
            match participants.entry((conversation, participant)) {
                Entry::Occupied(first) => builder.row_problem(
                    row.line,
                    format!(
                        "participant {pid} of conversation {} is target {} too: a plan names each participant once",
                        target.conversation_id,
                        first.get()
                    ),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(row.line);
                }
            }
        }
        if let Some(rows) = &rows {
            if target.lines.is_empty() {
                builder.row_problem(
                    row.line,
                    format!("the target names no {line_word} of the plan's input"),
                );
            }
            for line in &target.lines {
                match rows.get(line) {
                    None => builder.row_problem(
                        row.line,
                        format!("{line_word} {line} is not a row of the plan's input"),
                    ),
                    Some(true) => builder.row_problem(
                        row.line,
                        format!("{line_word} {line} is a row the input skipped as invalid"),
                    ),
                    Some(false) => {}
                }
            }
        }
    }
    builder.check()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::desired::{InputRow, Selector, SourceFormat};
    use crate::plan::{Action, Change, SkipReason};

    fn metadata() -> PlanMetadata {
        PlanMetadata::new(
            SourceInfo {
                path: "desired.csv".into(),
                format: SourceFormat::CsvWide,
                sha256: "ab".repeat(32),
            },
            "customer",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    const CID: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";

    /// Three targets, one per participant of one call.
    fn plan() -> Plan {
        let participants = [
            "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a",
            "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5b",
            "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5c",
        ];
        let mut participants = participants.into_iter();
        let mut target = |action| PlannedTarget {
            conversation_id: CID.into(),
            participant_id: participants.next().map(Into::into),
            selectors: vec![Selector::Purpose("customer".into())],
            lines: vec![2, 9],
            purpose: Some("customer".into()),
            desired: BTreeMap::from([
                ("tier".to_owned(), "gold".to_owned()),
                ("old".to_owned(), String::new()),
            ]),
            action,
        };
        Plan {
            targets: vec![
                target(Action::Update {
                    set: BTreeMap::from([(
                        "tier".to_owned(),
                        Change {
                            before: Some("silver".into()),
                            after: "gold".into(),
                        },
                    )]),
                    clear: BTreeMap::from([("old".to_owned(), "x".to_owned())]),
                }),
                target(Action::Unchanged),
                target(Action::skip(SkipReason::ConversationEnded)),
            ],
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        save(&plan(), &metadata(), &path).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.plan, plan());
        assert_eq!(loaded.metadata, metadata());
        assert_eq!(loaded.metadata.created_at, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn document_has_the_versioned_envelope() {
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&plan(), &metadata()).unwrap()).unwrap();
        assert_eq!(json["format_version"], 2);
        assert_eq!(json["kind"], "attrsync-plan");
        assert_eq!(json["default_purpose"], "customer");
        assert_eq!(json["source"]["format"], "csv_wide");
        assert_eq!(json["targets"][0]["action"]["type"], "update");
        assert_eq!(json["targets"][0]["selectors"][0]["purpose"], "customer");
    }

    #[test]
    fn a_plan_is_checked_like_an_input() {
        let mut saved = SavedPlan {
            metadata: metadata(),
            plan: plan(),
        };
        let path = Path::new("plan.json");
        validate(&saved, path, &Limits::default()).expect("a plan made by attrsync is valid");
        let target = &mut saved.plan.targets[0];
        target.conversation_id = "not-a-uuid".into();
        target.desired.insert("bad\u{7}key".into(), "v".into());
        target.desired.insert("big".into(), "x".repeat(600_000));
        target.desired.insert("tier".into(), "platinum".into());
        saved.plan.targets[1]
            .desired
            .insert("tier".into(), "silver".into());
        saved.plan.targets[2].participant_id = saved.plan.targets[1].participant_id.clone();
        let SourceError::Invalid { problems, .. } =
            validate(&saved, path, &Limits::default()).unwrap_err()
        else {
            panic!("expected input problems");
        };
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.starts_with("plan.json:target 1: ") && p.contains("conversation_id")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.contains("control character")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.contains("over the limit")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.starts_with("plan.json:target 1: ")
                && p.contains("does not match the target's desired value")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("plan.json:target 3: ") && p.contains("conflicting")),
            "two targets of one participant that disagree: {text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("plan.json:target 3: ") && p.contains("is target 2 too")),
            "{text:?}"
        );
    }

    fn problems(saved: &SavedPlan) -> Vec<String> {
        let err = validate(saved, Path::new("plan.json"), &Limits::default()).unwrap_err();
        err.problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_plan_naming_one_participant_twice_is_refused_even_when_the_targets_agree() {
        let mut saved = SavedPlan {
            metadata: metadata(),
            plan: plan(),
        };
        let first = saved.plan.targets[0].clone();
        let mut again = first.clone();
        // The same participant, spelled in capitals.
        again.participant_id = first.participant_id.as_deref().map(str::to_uppercase);
        saved.plan.targets.push(again);
        let pid = first.participant_id.unwrap().to_uppercase();
        assert_eq!(
            problems(&saved),
            [format!(
                "plan.json:target 4: participant {pid} of conversation {CID} is target 1 too: a plan names each participant once"
            )]
        );
    }

    #[test]
    fn a_plan_whose_lines_are_not_rows_of_its_input_is_refused() {
        let mut saved = SavedPlan {
            metadata: metadata(),
            plan: plan(),
        };
        let row = |line, problem: Option<&str>| InputRow {
            line,
            cells: vec![CID.into(), "gold".into()],
            problem: problem.map(Into::into),
        };
        saved.metadata.input = InputTable::from_rows(
            vec!["conversation_id".into(), "tier".into()],
            vec![row(2, None), row(9, None), row(10, Some("bad"))],
        );
        validate(&saved, Path::new("plan.json"), &Limits::default())
            .expect("every line of every target is a row of the input");
        saved.plan.targets[0].lines = vec![2, 99];
        saved.plan.targets[1].lines = vec![];
        saved.plan.targets[2].lines = vec![10];
        assert_eq!(
            problems(&saved),
            [
                "plan.json:target 1: line 99 is not a row of the plan's input",
                "plan.json:target 2: the target names no line of the plan's input",
                "plan.json:target 3: line 10 is a row the input skipped as invalid",
            ]
        );
        // Without an input table (no result rows are written from one), lines are not checked.
        saved.metadata.input = InputTable::default();
        validate(&saved, Path::new("plan.json"), &Limits::default()).expect("no input, no rows");
    }

    #[test]
    fn wrong_kind_and_version_are_refused_clearly() {
        let path = Path::new("p.json");
        let err = from_json(r#"{"kind":"something-else","format_version":1}"#, path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.json is not an attrsync plan (kind \"something-else\", expected \"attrsync-plan\")"
        );
        let err = from_json(r#"{"kind":"attrsync-plan","format_version":1}"#, path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.json: plan format version 1 is not supported (this attrsync reads version 2)"
        );
        let err = from_json(r#"{"format_version":2,"summary":{},"targets":[]}"#, path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.json is the output of `attrsync plan --json`, for reading; save a plan to apply with `attrsync plan SOURCE --out PLAN.json`"),
            "{err}"
        );
        let err = from_json("[1,2]", path).unwrap_err();
        assert!(matches!(err, SavedPlanError::NotJson { .. }), "{err}");
        let err = from_json(r#"{"kind":"attrsync-plan","format_version":2}"#, path).unwrap_err();
        assert!(matches!(err, SavedPlanError::Invalid { .. }), "{err}");
    }
}
