//! `attrsync audit runs|show|list|export|report`: read-only review of the audit store. None of
//! these commands creates a store or changes one: the file is opened read-only, no migration
//! runs and no writer starts. `attrsync audit upgrade` is the one that migrates a store written
//! by an older attrsync, and `attrsync audit prune --yes` the one that deletes (old runs).

mod export;
mod list;
mod prune;
mod report;
mod runs;
mod show;
mod upgrade;

use std::io::Write;
use std::path::Path;

use crate::cli::{AuditArgs, AuditCommand, AuditFilterArgs, AuditPathArgs};
use crate::exit::Exit;
use crate::settings::PruneSettings;
use crate::ui::Ui;
use audit::{AuditError, AuditStore, RunId, TargetFilter, TargetOrder};

/// Version of the JSON documents printed by `audit runs|show|list --json`.
const AUDIT_JSON_FORMAT_VERSION: u32 = 1;

pub async fn run(args: AuditArgs, ui: Ui) -> anyhow::Result<Exit> {
    match args.command {
        AuditCommand::Runs(args) => runs::run(args, ui).await,
        AuditCommand::Show(args) => show::run(args, ui).await,
        AuditCommand::List(args) => list::run(args, ui).await,
        AuditCommand::Export(args) => export::run(args).await,
        AuditCommand::Report(args) => report::run(args, ui).await,
        AuditCommand::Upgrade(args) => upgrade::run(args, ui).await,
        // Resolved into its own settings (see `settings::resolve`).
        AuditCommand::Prune(_) => unreachable!("audit prune is resolved into PruneSettings"),
    }
}

/// `attrsync audit prune`.
pub async fn prune(settings: PruneSettings, ui: Ui) -> anyhow::Result<Exit> {
    prune::run(settings, ui).await
}

/// Opens the store named by `--audit`/`ATTRSYNC_AUDIT` read-only, refusing to create one: a
/// typo in the path must be an error, not an empty review. A store written by an older
/// attrsync is an error that names the command upgrading it.
async fn open_existing(args: &AuditPathArgs) -> anyhow::Result<AuditStore> {
    open_read_only_at(&crate::settings::audit_path(args)).await
}

/// [`open_existing`] for a path already resolved.
pub(super) async fn open_read_only_at(path: &Path) -> anyhow::Result<AuditStore> {
    check_store_exists(path).await?;
    match AuditStore::open_read_only(path).await {
        Ok(store) => Ok(store),
        Err(error @ AuditError::OutdatedSchema { .. }) => Err(anyhow::anyhow!(
            "{error}\nupgrade it with: attrsync audit upgrade --audit {}",
            path.display()
        )),
        Err(error) => Err(error.into()),
    }
}

async fn check_store_exists(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => anyhow::bail!("the audit store {} is not a file", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no audit store at {}: nothing has been recorded there \
             (name the store with --audit PATH or ATTRSYNC_AUDIT)",
            path.display()
        ),
        Err(error) => Err(anyhow::Error::new(error)
            .context(format!("cannot read the audit store {}", path.display()))),
    }
}

/// Resolves `latest`, a run id or a unique prefix; when that fails, says how to see the runs.
pub(super) async fn resolve_run(store: &AuditStore, reference: &str) -> anyhow::Result<RunId> {
    store
        .resolve_run(reference)
        .await
        .map_err(|error| match error {
            AuditError::RunNotFound { .. }
            | AuditError::NoRuns { .. }
            | AuditError::AmbiguousRun { .. } => anyhow::anyhow!(
                "{error}\nsee the recorded runs with: attrsync audit runs --audit {}",
                store.path().display()
            ),
            other => other.into(),
        })
}

/// The store query for `audit list`/`audit export` filters.
async fn target_filter(
    store: &AuditStore,
    filters: &AuditFilterArgs,
    limit: Option<u32>,
    order: TargetOrder,
) -> anyhow::Result<TargetFilter> {
    let run = match &filters.run {
        Some(reference) => Some(resolve_run(store, reference).await?),
        None => None,
    };
    Ok(TargetFilter {
        run,
        conversation: filters.conversation.clone(),
        participant: filters.participant.clone(),
        statuses: filters.statuses.clone(),
        key: filters.key.clone(),
        since: filters.since,
        until: filters.until,
        limit,
        order,
    })
}

/// A JSON document on stdout.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Text on stdout.
fn print_text(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
