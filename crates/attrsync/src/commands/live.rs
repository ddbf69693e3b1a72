//! `attrsync live [--queue ID|NAME] [--json|--csv]`: the live voice calls, through the analytics
//! details query (the client pages and de-duplicates).
//!
//! `--csv` prints a desired-state skeleton (`conversation_id,purpose`, one `customer` row per
//! call with a customer): add attribute columns and it is input for `plan` and `apply`.

use std::io::Write as _;

use genesys_core::LiveCallsQuery;
use genesys_core::models::AnalyticsConversation;

use crate::cli::LiveArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::settings::Connection;
use crate::ui::Ui;

/// The purpose the `--csv` skeleton selects: the caller.
const SKELETON_PURPOSE: &str = "customer";

/// One live call as `live` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LiveCall {
    pub conversation_id: String,
    pub start: Option<String>,
    /// Queues the call has been in, in order of first appearance.
    pub queue_ids: Vec<String>,
    pub participants: Vec<LiveParticipant>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LiveParticipant {
    pub participant_id: Option<String>,
    pub purpose: Option<String>,
    pub user_id: Option<String>,
}

impl LiveCall {
    pub fn from_analytics(conversation: &AnalyticsConversation) -> Self {
        LiveCall {
            conversation_id: conversation.conversation_id.clone(),
            start: conversation.conversation_start.clone(),
            queue_ids: engine::live::queue_ids_of(conversation),
            participants: conversation
                .participants
                .iter()
                .map(|p| LiveParticipant {
                    participant_id: p.participant_id.clone(),
                    purpose: p.purpose.clone(),
                    user_id: p.user_id.clone(),
                })
                .collect(),
        }
    }

    fn has_purpose(&self, purpose: &str) -> bool {
        self.participants
            .iter()
            .any(|p| p.purpose.as_deref() == Some(purpose))
    }
}

pub async fn run(args: LiveArgs, connection: Connection, ui: Ui) -> anyhow::Result<Exit> {
    let client = connection.connect(ui).await?;
    let queue = match &args.queue {
        Some(given) => Some(engine::queues::resolve(&client, given).await?),
        None => None,
    };
    let query = LiveCallsQuery {
        queue_id: queue.as_ref().map(|q| q.id.clone()),
        lookback: args.lookback,
        ..LiveCallsQuery::default()
    };
    let calls: Vec<LiveCall> = client
        .query_live_calls(&query)
        .await?
        .iter()
        .map(LiveCall::from_analytics)
        .collect();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &calls)?;
        writeln!(stdout)?;
    } else if args.csv {
        let (skeleton, without_customer) = skeleton_csv(&calls)?;
        stdout.write_all(skeleton.as_bytes())?;
        if without_customer > 0 {
            ui.note(format_args!(
                "{without_customer} live calls have no {SKELETON_PURPOSE} participant and are left out"
            ));
        }
    } else {
        write!(stdout, "{}", table(&calls, Style { color: ui.color }))?;
    }
    stdout.flush()?;
    let scope = queue.map(|q| format!(" in queue {q}")).unwrap_or_default();
    ui.note(format_args!("{} live calls{scope}", calls.len()));
    Ok(Exit::Success)
}

/// The live calls as a table: id, start, queues, the participants' purposes.
pub fn table(calls: &[LiveCall], style: Style) -> String {
    let header = ["CONVERSATION", "STARTED", "QUEUE", "PARTICIPANTS"];
    let rows: Vec<[String; 4]> = calls
        .iter()
        .map(|call| {
            let purposes: Vec<&str> = call
                .participants
                .iter()
                .map(|p| p.purpose.as_deref().unwrap_or("?"))
                .collect();
            [
                call.conversation_id.clone(),
                call.start.clone().unwrap_or_default(),
                call.queue_ids.join(","),
                purposes.join(","),
            ]
        })
        .collect();
    report::tables::table(&header, rows.into_iter().map(Vec::from).collect(), style)
}

/// `conversation_id,purpose` with one `customer` row per call that has a customer, and how
/// many calls had none.
pub fn skeleton_csv(calls: &[LiveCall]) -> anyhow::Result<(String, usize)> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["conversation_id", "purpose"])?;
    let mut without_customer = 0;
    for call in calls {
        if call.has_purpose(SKELETON_PURPOSE) {
            writer.write_record([call.conversation_id.as_str(), SKELETON_PURPOSE])?;
        } else {
            without_customer += 1;
        }
    }
    let bytes = writer.into_inner().map_err(|e| e.into_error())?;
    Ok((String::from_utf8(bytes)?, without_customer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesys_core::models::{AnalyticsParticipant, AnalyticsSegment, AnalyticsSession};

    fn participant(purpose: &str, queue: Option<&str>) -> AnalyticsParticipant {
        AnalyticsParticipant {
            participant_id: Some(format!("p-{purpose}")),
            purpose: Some(purpose.into()),
            sessions: vec![AnalyticsSession {
                media_type: Some("voice".into()),
                segments: vec![AnalyticsSegment {
                    queue_id: queue.map(Into::into),
                    ..AnalyticsSegment::default()
                }],
                ..AnalyticsSession::default()
            }],
            ..AnalyticsParticipant::default()
        }
    }

    fn conversation(id: &str, participants: Vec<AnalyticsParticipant>) -> AnalyticsConversation {
        AnalyticsConversation {
            conversation_id: id.into(),
            conversation_start: Some("2026-01-01T10:00:00.000Z".into()),
            participants,
            ..AnalyticsConversation::default()
        }
    }

    #[test]
    fn queues_are_collected_once_in_order() {
        let call = LiveCall::from_analytics(&conversation(
            "c1",
            vec![
                participant("customer", None),
                participant("acd", Some("q-sales")),
                participant("agent", Some("q-sales")),
                participant("acd", Some("q-vip")),
            ],
        ));
        assert_eq!(call.queue_ids, ["q-sales", "q-vip"]);
        assert_eq!(call.participants.len(), 4);
    }

    #[test]
    fn table_has_one_aligned_row_per_call() {
        let calls = [
            LiveCall::from_analytics(&conversation(
                "c1",
                vec![
                    participant("customer", None),
                    participant("acd", Some("q1")),
                ],
            )),
            LiveCall::from_analytics(&conversation("c2", vec![participant("customer", None)])),
        ];
        let text = table(&calls, Style { color: false });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("CONVERSATION  STARTED"), "{text}");
        assert!(
            lines[1].starts_with("c1            2026-01-01T10:00:00.000Z  q1     customer,acd"),
            "{text}"
        );
        assert!(lines[2].ends_with("customer"), "{text}");
    }

    #[test]
    fn skeleton_has_a_customer_row_per_call_with_a_customer() {
        let calls = [
            LiveCall::from_analytics(&conversation("c1", vec![participant("customer", None)])),
            LiveCall::from_analytics(&conversation("c2", vec![participant("agent", None)])),
        ];
        let (csv, left_out) = skeleton_csv(&calls).unwrap();
        assert_eq!(csv, "conversation_id,purpose\nc1,customer\n");
        assert_eq!(left_out, 1);
    }
}
