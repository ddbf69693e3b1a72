//! `attrsync queues [NAME] [--json]`: the org's routing queues with their ids and live calls,
//! so that `--queue` can be given either (see `engine::queues`).

use std::io::Write as _;

use engine::queues::{QueueLiveCalls, queue_overview};

use crate::cli::QueuesArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::settings::Connection;
use crate::ui::Ui;

pub async fn run(args: QueuesArgs, connection: Connection, ui: Ui) -> anyhow::Result<Exit> {
    let client = connection.connect(ui).await?;
    let queues = queue_overview(&client, args.name.as_deref(), args.lookback).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = queues
            .iter()
            .map(|q| serde_json::json!({"id": q.id, "name": q.name, "live_calls": q.live_calls}))
            .collect();
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", table(&queues, Style { color: ui.color }))?;
    }
    stdout.flush()?;
    match (&args.name, queues.len()) {
        (Some(name), 0) => ui.note(format_args!(
            "no queue is named {name:?}; `attrsync queues` lists them all (a `*` at either end of NAME is a wildcard)"
        )),
        (_, count) => ui.note(format_args!(
            "{count} {}; give `--queue` a name or an id (`attrsync tag --queue NAME key=value`)",
            if count == 1 { "queue" } else { "queues" }
        )),
    }
    Ok(Exit::Success)
}

/// The queues as a table: name, id, live calls.
pub fn table(queues: &[QueueLiveCalls], style: Style) -> String {
    let header = ["NAME", "ID", "LIVE CALLS"];
    let rows: Vec<[String; 3]> = queues
        .iter()
        .map(|q| {
            [
                q.name.clone().unwrap_or_default(),
                q.id.clone(),
                q.live_calls.to_string(),
            ]
        })
        .collect();
    report::tables::table(&header, rows.into_iter().map(Vec::from).collect(), style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_one_aligned_row_per_queue() {
        let queues = [
            QueueLiveCalls {
                id: "q-1".into(),
                name: Some("Billing".into()),
                live_calls: 12,
            },
            QueueLiveCalls {
                id: "q-22".into(),
                name: Some("Sales".into()),
                live_calls: 0,
            },
        ];
        let text = table(&queues, Style { color: false });
        assert_eq!(
            text,
            "NAME     ID    LIVE CALLS\nBilling  q-1   12\nSales    q-22  0\n"
        );
    }
}
