//! `--max-changes N`: refuse to start when the plan would change more than N participants, so
//! that a scheduled job fed a wrong export cannot rewrite a whole contact centre.
//!
//! A saved plan is counted as it is. A desired state is planned first (batched analytics reads
//! for the calls that ended, one read per other call, no audit run yet), counted, and then executed exactly as that plan, like `plan --out` followed
//! by `apply plan.json`: each update is re-checked against a fresh read before it is sent.

use reconcile::Action;

use engine::Work;
use engine::numbered::plan_live;

use crate::settings::RunSettings;

/// The plan would change more participants than allowed: nothing was sent, no run was recorded.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plan would change {changes} participants, more than --max-changes {max}: nothing was \
     sent (review it with `attrsync plan`, then raise --max-changes or fix the input)"
)]
pub struct TooManyChanges {
    pub changes: usize,
    pub max: usize,
}

/// `work`, checked against `max` (and planned first when it is a desired state).
pub async fn max_changes(
    work: Work,
    settings: &RunSettings,
    ui: crate::ui::Ui,
) -> anyhow::Result<Work> {
    let Some(max) = settings.max_changes else {
        return Ok(work);
    };
    let (connection, concurrency) = (&settings.connection, settings.concurrency);
    let work = match work {
        Work::Desired(desired) => {
            let client = connection.connect(ui).await?;
            let planned =
                plan_live(&client, &desired, settings.liveness_batch, concurrency).await?;
            for note in &planned.notes {
                eprintln!("warning: {note}");
            }
            let plan = planned.plan;
            Work::Planned {
                source: desired.source,
                targets: plan.targets,
                input: desired.input,
                reverts: None,
                no_live_call: planned.no_live_call,
            }
        }
        other => other,
    };
    if let Work::Planned { targets, .. } = &work {
        let changes = changes(targets);
        if changes > max {
            return Err(TooManyChanges { changes, max }.into());
        }
    }
    Ok(work)
}

/// Participants a plan would change.
fn changes(targets: &[reconcile::PlannedTarget]) -> usize {
    targets
        .iter()
        .filter(|t| matches!(t.action, Action::Update { .. }))
        .count()
}
