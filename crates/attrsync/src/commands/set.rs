//! `attrsync set CONVERSATION_ID [SELECTOR] k=v...`: the tutorial's job done properly. One
//! target, through the same pipeline as `apply`: read, PATCH only what differs, verify by
//! reading back, and record it in the audit store.

use genesys_core::models::Attributes;
use reconcile::{DesiredEntry, DesiredState, Selector, SourceFormat, SourceInfo, Target};

use super::apply::open_audit;
use crate::cli::SetArgs;
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::render::summary::stopped_early;
use crate::settings::RunSettings;
use crate::ui::Ui;
use engine::Work;

/// `attributes` are the `KEY=VALUE` arguments, already checked (`settings::resolve`); the ids
/// are UUIDs (clap's `parse_uuid`).
pub async fn run(
    args: SetArgs,
    attributes: Attributes,
    run_settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let conversation_id = args.conversation_id.clone();
    let selector = match (&args.participant_id, &args.purpose, &args.user_id) {
        (Some(p), _, _) => Selector::ParticipantId(p.clone()),
        (_, Some(p), _) => Selector::Purpose(p.to_lowercase()),
        (_, _, Some(u)) => Selector::UserId(u.clone()),
        _ => Selector::Purpose("customer".into()),
    };
    let desired = DesiredState::from_entries(
        vec![DesiredEntry {
            target: Target {
                conversation_id: conversation_id.clone(),
                selector,
            },
            attributes,
            lines: vec![1],
        }],
        SourceInfo {
            path: "command line".into(),
            format: SourceFormat::CsvWide,
            sha256: String::new(),
        },
    );
    let audit = open_audit(&run_settings.audit_path).await?;
    let outcome = super::snapshot::run(
        Work::Desired(desired),
        &run_settings,
        &audit,
        CliObserver::new(ui, run_settings.json),
    )
    .await?;
    if !run_settings.json {
        for r in &outcome.results {
            let who = r.participant_id.as_deref().unwrap_or("(no participant)");
            let detail = r
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            crate::output::stdout_line(format_args!(
                "{conversation_id} participant {who}: {}{detail}",
                r.status.as_str()
            ))?;
        }
    }
    if let Some(line) = stopped_early(&outcome, &run_settings.hints) {
        eprintln!("{line}");
    }
    // What the run recorded is what the process exits with.
    Ok(crate::exit::for_run(&outcome))
}
