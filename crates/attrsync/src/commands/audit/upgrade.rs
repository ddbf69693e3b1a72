//! `attrsync audit upgrade`: applies to an existing store the migrations this attrsync embeds
//! and it lacks, so that the read-only review commands can open it. That is its only job.

use audit::AuditStore;

use super::check_store_exists;
use crate::cli::AuditUpgradeArgs;
use crate::exit::Exit;
use crate::ui::Ui;

pub async fn run(args: AuditUpgradeArgs, ui: Ui) -> anyhow::Result<Exit> {
    let path = crate::settings::audit_path(&args.audit);
    check_store_exists(&path).await?;
    // Every audit error names the store and the step that failed (open, migrate).
    let applied = AuditStore::upgrade(&path).await?;
    if applied.is_empty() {
        ui.note(format_args!(
            "audit store {} is already up to date",
            path.display()
        ));
    } else {
        let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
        ui.note(format_args!(
            "upgraded audit store {}: applied migration{} {}",
            path.display(),
            if applied.len() == 1 { "" } else { "s" },
            versions.join(", ")
        ));
    }
    Ok(Exit::Success)
}
