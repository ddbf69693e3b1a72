//! `attrsync audit export --format csv|json|ndjson [filters]`: targets on stdout.

use std::io::BufWriter;

use super::{open_existing, target_filter};
use crate::cli::{AuditExportArgs, ExportFormat};
use crate::exit::Exit;
use audit::TargetOrder;
use report::export::{write_csv, write_json, write_ndjson};

pub async fn run(args: AuditExportArgs) -> anyhow::Result<Exit> {
    let store = open_existing(&args.audit).await?;
    // Plan order (run by run) reads like the runs themselves and is stable across exports.
    let filter = target_filter(&store, &args.filters, args.limit, TargetOrder::Plan).await?;
    let targets = store.list_targets(&filter).await?;
    let out = BufWriter::new(std::io::stdout().lock());
    match args.format {
        ExportFormat::Csv => write_csv(out, &targets)?,
        ExportFormat::Json => write_json(out, &targets)?,
        ExportFormat::Ndjson => write_ndjson(out, &targets)?,
    }
    store.close().await?;
    Ok(Exit::Success)
}
