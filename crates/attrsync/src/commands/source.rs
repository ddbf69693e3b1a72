//! Reading the desired state for `plan` and `apply`: CSV or SQLite, told apart by content.

use std::path::Path;

use anyhow::Context;
use reconcile::{DesiredState, ReadOptions, SourceError, SqliteSelect, render_problems};

use crate::cli::SourceArgs;
use crate::ui::Ui;
use engine::apply::RESULT_COLUMNS;

/// An input that could not be used: every problem has been printed already.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

pub fn read_options(args: &SourceArgs) -> ReadOptions {
    ReadOptions {
        default_purpose: args.default_purpose.clone(),
        skip_invalid: args.skip_invalid,
        ignored_columns: RESULT_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        default_region: args.default_region,
        ..ReadOptions::default()
    }
}

/// Which rows of an SQLite source are the desired state: `--query`, else `--table`.
pub fn sqlite_select(args: &SourceArgs) -> SqliteSelect {
    match &args.query {
        Some(q) => SqliteSelect::Query(q.clone()),
        None => SqliteSelect::Table(args.table.clone()),
    }
}

/// Reads and validates the whole source. Invalid input: the problems go to stderr (at most
/// 20, then a count) and the error says how many there were; nothing is sent.
pub async fn read_desired(path: &Path, args: &SourceArgs, ui: Ui) -> anyhow::Result<DesiredState> {
    read_desired_with(path, args, &read_options(args), ui).await
}

/// [`read_desired`] with these read options.
pub async fn read_desired_with(
    path: &Path,
    args: &SourceArgs,
    options: &ReadOptions,
    ui: Ui,
) -> anyhow::Result<DesiredState> {
    let select = sqlite_select(args);
    // Read once, whatever the path is (a file, a pipe, a process substitution).
    match reconcile::read_path(path, &select, options).await {
        Ok(desired) => {
            if args.query.is_some() && desired.source.format != reconcile::SourceFormat::Sqlite {
                anyhow::bail!(
                    "--query applies to an SQLite source, and {} is not one",
                    path.display()
                );
            }
            if !desired.warnings.is_empty() {
                eprint!(
                    "{}",
                    render_problems(&desired.warnings, reconcile::DEFAULT_SHOWN_PROBLEMS)
                        .replace('\n', " (warning)\n")
                );
            }
            ui.note(format_args!(
                "read {}: {} (a call, or numbers, and a participant selector each), {}",
                path.display(),
                report::text::plural(
                    (desired.len() + desired.number_rules().len()) as u64,
                    "row",
                    "rows"
                ),
                report::text::plural(desired.key_count() as u64, "key", "keys")
            ));
            Ok(desired)
        }
        Err(err @ SourceError::Invalid { .. }) => Err(invalid_input(&err)),
        // Every source error names the file: the context says what it was for.
        Err(err) => Err(err).context("cannot read the desired state"),
    }
}

/// Prints an input's problems on stderr (at most 20, then a count) and returns the error that
/// says how many there were and that nothing was sent.
pub fn invalid_input(err: &SourceError) -> anyhow::Error {
    eprint!(
        "{}",
        render_problems(err.problems(), reconcile::DEFAULT_SHOWN_PROBLEMS)
    );
    InvalidInput(format!(
        "{err}; nothing was sent (fix the input; with a CSV or SQLite source, --skip-invalid applies the valid rows)"
    ))
    .into()
}
