//! `attrsync audit prune --older-than DURATION [--yes]`: retention. Without `--yes` it opens the
//! store read-only and shows what would be deleted; with it, it opens the existing store for
//! writing (never creating or migrating one) and deletes, in one transaction, every run that
//! ended before the cutoff and is not in progress, with every row that belongs to those runs.

use std::fmt::Write as _;

use anyhow::Context;
use audit::{AuditError, AuditStore, PruneSelection};
use report::text::plural;

use super::{
    AUDIT_JSON_FORMAT_VERSION, check_store_exists, open_read_only_at, print_json, print_text,
};
use crate::exit::Exit;
use crate::settings::PruneSettings;
use crate::ui::Ui;
use report::tables::prune_table;

pub async fn run(settings: PruneSettings, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(settings.json);
    let path = &settings.audit_path;
    // A fresh install's prune timer runs before the first run has made a store: nothing to do.
    if !path.exists() {
        ui.note(format_args!(
            "no audit store at {} yet: nothing to prune",
            path.display()
        ));
        return Ok(Exit::Success);
    }
    let selection = if settings.delete {
        check_store_exists(path).await?;
        let store = match AuditStore::open_existing(path).await {
            Ok(store) => store,
            Err(error @ AuditError::OutdatedSchema { .. }) => anyhow::bail!(
                "{error}\nupgrade it with: attrsync audit upgrade --audit {}",
                path.display()
            ),
            Err(error) => return Err(error.into()),
        };
        let deleted = store
            .prune(settings.ended_before)
            .await
            .with_context(|| format!("nothing was pruned from {}", path.display()));
        store.close().await?;
        deleted?
    } else {
        let store = open_read_only_at(path).await?;
        let selection = store.prunable_runs(settings.ended_before).await?;
        store.close().await?;
        selection
    };

    let older_than = duration_text(settings.older_than);
    if settings.json {
        print_json(&serde_json::json!({
            "format_version": AUDIT_JSON_FORMAT_VERSION,
            "dry_run": !settings.delete,
            "older_than": older_than,
            "ended_before": selection.ended_before,
            "runs": selection.runs,
            "rows": rows_with_runs(&selection),
            "in_progress": selection
                .in_progress
                .iter()
                .map(|run| &run.id)
                .collect::<Vec<_>>(),
        }))?;
    } else {
        print_text(&text(&selection, &settings, &older_than, ui))?;
    }
    if !settings.delete && !selection.runs.is_empty() {
        ui.note("nothing was deleted: pass --yes to delete these runs");
    }
    Ok(Exit::Success)
}

/// Rows per table with the runs themselves: `{"runs": 3, "targets": 120, ...}`.
fn rows_with_runs(selection: &PruneSelection) -> serde_json::Value {
    let mut rows = serde_json::Map::new();
    rows.insert("runs".to_owned(), selection.runs.len().into());
    for (table, count) in &selection.rows {
        rows.insert(table.clone(), (*count).into());
    }
    rows.into()
}

/// The summary: what would be (or was) deleted, the runs of a dry run one per line, and the
/// runs kept because they are in progress.
fn text(selection: &PruneSelection, settings: &PruneSettings, older_than: &str, ui: Ui) -> String {
    let mut out = String::new();
    let runs = selection.runs.len();
    let cutoff = format!(
        "ended before {} (more than {older_than} ago)",
        selection.ended_before
    );
    if runs == 0 {
        let _ = writeln!(
            out,
            "no finished run {cutoff} in {}",
            settings.audit_path.display()
        );
    } else {
        if !settings.delete {
            out.push_str(&prune_table(
                &selection.runs,
                crate::render::Style { color: ui.color },
            ));
        }
        let verb = if settings.delete {
            "deleted"
        } else {
            "would delete"
        };
        let _ = writeln!(
            out,
            "{verb} {} that {cutoff}: {}",
            plural(runs as u64, "run", "runs"),
            rows_text(selection)
        );
    }
    if !selection.in_progress.is_empty() {
        let ids: Vec<String> = selection
            .in_progress
            .iter()
            .map(|run| format!("{} ({} since {})", run.id, run.command, run.started_at))
            .collect();
        let _ = writeln!(
            out,
            "kept {} run{} still in progress: {}",
            ids.len(),
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        );
    }
    out
}

/// `120 targets, 40 input rows, 360 requests, 3 process records`: every table that references
/// a run, the well-known ones first and by their names in the README.
fn rows_text(selection: &PruneSelection) -> String {
    const KNOWN: [(&str, (&str, &str)); 4] = [
        ("targets", ("target", "targets")),
        ("input_rows", ("input row", "input rows")),
        ("requests", ("request", "requests")),
        ("run_processes", ("process record", "process records")),
    ];
    let mut parts: Vec<String> = KNOWN
        .iter()
        .map(|(table, (one, many))| plural(selection.rows_of(table), one, many))
        .collect();
    for (table, count) in &selection.rows {
        if !KNOWN.iter().any(|(known, _)| known == table) {
            parts.push(format!("{count} rows of {table}"));
        }
    }
    parts.join(", ")
}

/// `--older-than` as a person wrote it: `90d` rather than humantime's `2months 29days 2h...`
/// (its months are 30.44 days).
fn duration_text(duration: std::time::Duration) -> String {
    const DAY: u64 = 24 * 3600;
    let secs = duration.as_secs();
    if duration.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else if duration.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        humantime::format_duration(duration).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration_text;

    #[test]
    fn retention_durations_read_as_written() {
        assert_eq!(duration_text(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(duration_text(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(duration_text(Duration::from_secs(90)), "1m 30s");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }
}
