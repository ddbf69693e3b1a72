//! Records for the tests.

use audit::{RunId, TargetId, TargetRecord, TargetStatus, UnixMillis};

/// A target whose campaign changes, tier stays and note is cleared.
pub(crate) fn target(status: TargetStatus) -> TargetRecord {
    let at = UnixMillis::from_millis(1_000);
    TargetRecord {
        id: TargetId::from_row(1),
        run_id: RunId::from_stored("20261124T101530Z-ab12cd".into()),
        seq: 0,
        conversation_id: "c1".into(),
        participant_id: Some("p1".into()),
        selector: "purpose=customer".into(),
        purpose: Some("customer".into()),
        input_lines: "desired.csv:2".into(),
        status,
        reason: None,
        before: [
            ("campaign".to_owned(), Some("fall".to_owned())),
            ("tier".to_owned(), Some("gold".to_owned())),
        ]
        .into(),
        desired: [
            ("campaign".to_owned(), "spring".to_owned()),
            ("tier".to_owned(), "gold".to_owned()),
            ("note".to_owned(), String::new()),
        ]
        .into(),
        observed: None,
        http_status: None,
        error_code: None,
        error_message: None,
        correlation_id: None,
        attempts: 1,
        verified_via: None,
        created_at: at,
        updated_at: at,
        sent_at: None,
    }
}
