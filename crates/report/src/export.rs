//! `attrsync audit export`: targets as CSV (one row per target and managed key), a JSON array,
//! or NDJSON. Writers rather than strings: an export can hold every target of every run.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;

use audit::TargetRecord;

/// An export that could not be written (a closed pipe included: the binary ends quietly then).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the export")]
    Io(#[from] std::io::Error),
    #[error("cannot write the CSV export")]
    Csv(#[from] csv::Error),
    #[error("cannot write the JSON export")]
    Json(#[from] serde_json::Error),
}

/// Columns of the CSV export, in order.
pub const CSV_HEADER: [&str; 22] = [
    "run_id",
    "seq",
    "conversation_id",
    "participant_id",
    "selector",
    "purpose",
    "input_lines",
    "status",
    "reason",
    "key",
    "before",
    "desired",
    "observed",
    "http_status",
    "error_code",
    "error_message",
    "correlation_id",
    "attempts",
    "created_at",
    "updated_at",
    "sent_at",
    "verified_via",
];

/// Characters that make a spreadsheet treat a cell as a formula (or, for tab and CR, that
/// some importers strip to reveal one). OWASP's "CSV injection" list.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell that a spreadsheet shows as text: a leading formula trigger gets a `'` before it.
/// Values are otherwise kept exactly (the CSV writer quotes as needed).
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_TRIGGERS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

pub fn write_csv(out: impl Write, targets: &[TargetRecord]) -> Result<(), ExportError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_HEADER)?;
    for target in targets {
        for row in csv_rows(target) {
            writer.write_record(row.iter().map(|cell| spreadsheet_safe(cell).into_owned()))?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// One JSON array, one target per line inside it, so that the output stays diffable.
pub fn write_json(mut out: impl Write, targets: &[TargetRecord]) -> Result<(), ExportError> {
    out.write_all(b"[")?;
    for (i, target) in targets.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut out, target)?;
    }
    out.write_all(b"\n]\n")?;
    out.flush()?;
    Ok(())
}

pub fn write_ndjson(mut out: impl Write, targets: &[TargetRecord]) -> Result<(), ExportError> {
    for target in targets {
        serde_json::to_writer(&mut out, target)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// A target's rows: one per key it manages (desired, read before, or observed); one row with
/// an empty key when it has none.
fn csv_rows(target: &TargetRecord) -> Vec<[String; 22]> {
    let mut keys: BTreeSet<&str> = target.desired.keys().map(String::as_str).collect();
    keys.extend(target.before.keys().map(String::as_str));
    if let Some(observed) = &target.observed {
        keys.extend(observed.keys().map(String::as_str));
    }
    let keys: Vec<Option<&str>> = if keys.is_empty() {
        vec![None]
    } else {
        keys.into_iter().map(Some).collect()
    };
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    keys.into_iter()
        .map(|key| {
            let before = key.and_then(|k| target.before.get(k).cloned().flatten());
            let desired = key.and_then(|k| target.desired.get(k).cloned());
            let observed = key.and_then(|k| {
                target
                    .observed
                    .as_ref()
                    .and_then(|observed| observed.get(k).cloned().flatten())
            });
            [
                target.run_id.to_string(),
                target.seq.to_string(),
                target.conversation_id.clone(),
                text(target.participant_id.as_ref()),
                target.selector.clone(),
                text(target.purpose.as_ref()),
                target.input_lines.clone(),
                target.status.to_string(),
                text(target.reason.as_ref()),
                key.unwrap_or_default().to_owned(),
                before.unwrap_or_default(),
                desired.unwrap_or_default(),
                observed.unwrap_or_default(),
                target
                    .http_status
                    .map(|status| status.to_string())
                    .unwrap_or_default(),
                text(target.error_code.as_ref()),
                text(target.error_message.as_ref()),
                text(target.correlation_id.as_ref()),
                target.attempts.to_string(),
                target.created_at.to_string(),
                target.updated_at.to_string(),
                target
                    .sent_at
                    .map(|sent| sent.to_string())
                    .unwrap_or_default(),
                target
                    .verified_via
                    .map(|via| via.as_str().to_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::target;
    use audit::TargetStatus;

    #[test]
    fn formula_triggers_are_escaped_and_everything_else_is_kept() {
        for dangerous in [
            "=1+2",
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=x",
            "\r=x",
            "=HYPERLINK(\"x\")",
        ] {
            assert_eq!(spreadsheet_safe(dangerous), format!("'{dangerous}"));
        }
        for harmless in ["spring", "", " =1", "a=b", "1-2", "'quoted", "é=1"] {
            assert_eq!(spreadsheet_safe(harmless), harmless);
        }
    }

    #[test]
    fn csv_has_one_row_per_managed_key_with_before_desired_and_observed() {
        let mut drifted = target(TargetStatus::Drift);
        drifted.observed = Some([("campaign".to_owned(), Some("=flow".to_owned()))].into());
        let mut out = Vec::new();
        write_csv(&mut out, &[drifted]).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(reader.headers().unwrap(), CSV_HEADER.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let keyed: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|r| (&r[9], &r[10], &r[11], &r[12]))
            .collect();
        assert_eq!(
            keyed,
            [
                ("campaign", "fall", "spring", "'=flow"),
                ("note", "", "", ""),
                ("tier", "gold", "gold", ""),
            ]
        );
        assert!(rows.iter().all(|r| &r[7] == "drift"));
    }

    #[test]
    fn json_is_one_array_and_ndjson_one_object_per_line() {
        let targets = [target(TargetStatus::Verified), target(TargetStatus::Failed)];
        let mut json = Vec::new();
        write_json(&mut json, &targets).unwrap();
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1]["status"], "failed");

        let mut ndjson = Vec::new();
        write_ndjson(&mut ndjson, &targets).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(ndjson)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines, parsed);

        let mut empty = Vec::new();
        write_json(&mut empty, &[]).unwrap();
        assert_eq!(
            serde_json::from_slice::<Vec<serde_json::Value>>(&empty).unwrap(),
            Vec::<serde_json::Value>::new()
        );
    }
}
