//! `attrsync tag --queue ID... [--purpose customer] [--dry-run] key=value...`: every live call of
//! the queues gets the attributes, through the same plan -> apply -> verify -> audit pipeline as
//! `apply`. The desired state is built in memory from the live-call listing; its source is
//! recorded as `queue:ID[,ID...]`. With `--follow`, see `crate::follow`.

use std::collections::BTreeMap;
use std::io::Write as _;

use genesys_core::LiveCallsQuery;
use reconcile::{DesiredEntry, DesiredState, Selector, SourceFormat, SourceInfo, Target};

use super::apply::open_audit;
use super::plan::fetch_live;
use crate::Ui;
use crate::apply::{Events, Work, execute};
use crate::cli::TagArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::render::plan::plan_text;
use crate::render::summary::run_summary;
use crate::settings::RunSettings;

pub async fn run(args: TagArgs, run_settings: RunSettings, ui: Ui) -> anyhow::Result<Exit> {
    let attributes = attribute_map(&args.attributes)?;
    let ui = ui.with_json(args.json);
    if args.follow {
        let settings = crate::follow::FollowSettings {
            queues: args.queues.clone(),
            selector: Selector::Purpose(args.purpose.to_lowercase()),
            attributes,
            lookback: args.lookback,
            verify_via: args.verify_via,
            backfill_lag: args.backfill_lag,
            socket_idle_timeout: args.socket_idle_timeout,
            metrics_file: args.metrics_file.clone(),
            json: args.json,
        };
        return crate::follow::run(settings, run_settings, ui).await;
    }
    let connection = &run_settings.connection;
    let client = connection.connect(ui).await?;
    let queues = args.queues.join(",");
    let conversation_ids = live_call_ids(&client, &args.queues, args.lookback).await?;
    if conversation_ids.is_empty() {
        ui.note(format_args!(
            "no live calls in queue {queues}; nothing to do"
        ));
        return Ok(Exit::Success);
    }
    ui.note(format_args!(
        "{} live calls in queue {queues}",
        conversation_ids.len()
    ));
    let desired = desired_state(&args, attributes, &conversation_ids);

    if args.dry_run {
        let live = fetch_live(&client, conversation_ids, args.concurrency).await?;
        let plan = reconcile::diff(&desired, &live);
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "{}", plan_text(&plan, Style { color: ui.color }))?;
        stdout.flush()?;
        ui.note("dry run: nothing was sent");
        return Ok(Exit::Success);
    }

    let audit_path = &run_settings.audit_path;
    let audit = open_audit(audit_path).await?;
    let settings = run_settings.apply_settings();
    let report = execute(
        Work::Desired(desired),
        settings,
        audit,
        |observer| connection.client(Some(observer)),
        ui,
        &Events::new(args.json),
    )
    .await?;
    ui.note(run_summary(&report, audit_path));
    Ok(report.exit)
}

/// The live calls of every queue, in listing order, each once (a call may have been in two of
/// the queues); a listed id that is not a UUID is skipped with a warning.
pub(crate) async fn live_call_ids(
    client: &genesys_core::GenesysClient,
    queues: &[String],
    lookback: std::time::Duration,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for queue in queues {
        let query = LiveCallsQuery {
            queue_id: Some(queue.clone()),
            lookback,
            ..LiveCallsQuery::default()
        };
        client
            .visit_live_calls(&query, |call| {
                match uuid::Uuid::parse_str(&call.conversation_id) {
                    Ok(id) => {
                        let id = id.hyphenated().to_string();
                        if seen.insert(id.clone()) {
                            ids.push(id);
                        }
                    }
                    Err(_) => tracing::warn!(
                        conversation = call.conversation_id,
                        "skipping a live call whose id is not a UUID"
                    ),
                }
            })
            .await?;
    }
    Ok(ids)
}

/// One target per call: the participants with the purpose get every attribute. The "line" of
/// an entry is the call's position in the listing.
fn desired_state(
    args: &TagArgs,
    attributes: BTreeMap<String, String>,
    conversation_ids: &[String],
) -> DesiredState {
    let selector = Selector::Purpose(args.purpose.to_lowercase());
    DesiredState {
        input: reconcile::InputTable::default(),
        entries: conversation_ids
            .iter()
            .zip(1..)
            .map(|(conversation_id, position)| DesiredEntry {
                target: Target {
                    conversation_id: conversation_id.clone(),
                    selector: selector.clone(),
                },
                attributes: attributes.clone(),
                lines: vec![position],
            })
            .collect(),
        source: SourceInfo {
            path: format!("queue:{}", args.queues.join(",")),
            format: SourceFormat::CsvWide,
            sha256: String::new(),
        },
        warnings: Vec::new(),
    }
}

/// The command line's `key=value` pairs; one key with two different values is a mistake.
fn attribute_map(pairs: &[(String, String)]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut attributes = BTreeMap::new();
    for (key, value) in pairs {
        if let Some(previous) = attributes.insert(key.clone(), value.clone())
            && previous != *value
        {
            anyhow::bail!("`{key}` is given twice, as {previous:?} and as {value:?}");
        }
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_key_given_twice_must_agree_with_itself() {
        let same = attribute_map(&pairs(&[("a", "1"), ("b", ""), ("a", "1")])).unwrap();
        assert_eq!(same.len(), 2);
        let err = attribute_map(&pairs(&[("a", "1"), ("a", "2")])).unwrap_err();
        assert!(err.to_string().contains("`a` is given twice"), "{err}");
    }
}
