//! Snapshot runs verify their changes through the Notification API: the calls' attribute
//! topics are subscribed before the first PATCH, and a change is read back only when no event
//! showed it. Judged from the simulator's request log and the audit store.

use std::time::Duration;

use genesys_sim::{DriftConfig, FaultConfig, SimConfig};

use crate::support::{
    AuditRow, TestOrg, assert_converged, audit_targets, campaign_csv, wait_until,
};

const CALLS: usize = 12;

/// Requests the simulator answered on the API, the token endpoint and the run's batched
/// lookup of which calls ended (analytics) aside.
fn api_requests(org: &TestOrg) -> usize {
    org.state()
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/") && !r.path.starts_with("/api/v2/analytics/"))
        .count()
}

fn channel_requests(org: &TestOrg) -> usize {
    org.count_requests("POST", "/notifications/channels")
        + org.count_requests("PUT", "/notifications/channels")
        + org.count_requests("HEAD", "/notifications/channels")
}

fn via(rows: &[AuditRow]) -> Vec<Option<&str>> {
    rows.iter().map(|r| r.verified_via.as_deref()).collect()
}

#[tokio::test]
async fn apply_verifies_every_change_by_its_attribute_event_for_two_requests_a_change() {
    let org = TestOrg::start(TestOrg::fast_config(CALLS)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--json"]).await;
    run.assert_code(0);
    assert_converged(&org);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|event: &serde_json::Value| event["type"] == "target")
        .collect();
    assert_eq!(events.len(), CALLS, "{}", run.stdout);
    assert!(
        events.iter().all(|e| e["verified_via"] == "event"),
        "{}",
        run.stdout
    );
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), CALLS);
    assert_eq!(org.count_requests("PATCH", "/attributes"), CALLS);
    // One channel, its topics in one subscription request, nothing else.
    assert_eq!(org.count_requests("POST", "/notifications/channels"), 1);
    assert_eq!(org.count_requests("PUT", "/subscriptions"), 1);
    assert_eq!(api_requests(&org), 2 * CALLS + 2, "{}", run.stderr);
    let topics: usize = org
        .state()
        .notification_status()
        .channels
        .iter()
        .map(|c| c.topics.len())
        .sum();
    assert_eq!(topics, CALLS);
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(rows.len(), CALLS);
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert!(via(&rows).iter().all(|v| *v == Some("event")), "{rows:?}");
}

#[tokio::test]
async fn verify_via_get_reads_every_change_back_for_three_requests_a_change() {
    let org = TestOrg::start(TestOrg::fast_config(CALLS)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv", "--verify-via", "get"])
        .await
        .assert_code(0);
    assert_converged(&org);
    assert_eq!(channel_requests(&org), 0);
    assert_eq!(
        org.count_requests("GET", "/conversations/calls/"),
        2 * CALLS
    );
    assert_eq!(api_requests(&org), 3 * CALLS);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert!(via(&rows).iter().all(|v| *v == Some("read")), "{rows:?}");
}

#[tokio::test]
async fn set_verifies_its_change_by_event_too() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let call = org.live_calls().remove(0);
    org.run(&["set", &call.id, "campaign=spring"])
        .await
        .assert_code(0);
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), 1);
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(via(&rows), [Some("event")], "{rows:?}");
}

#[tokio::test]
async fn without_attribute_events_every_change_is_verified_by_reading() {
    let org = TestOrg::start(SimConfig {
        attribute_events: false,
        ..TestOrg::fast_config(CALLS)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--verify-timeout", "300ms"])
        .await;
    run.assert_code(0);
    assert_converged(&org);
    assert_eq!(org.state().notification_status().events_published, 0);
    // After a few changes waited for an event in vain, the rest are read back at once.
    assert!(run.stderr.contains("none came at all"), "{}", run.stderr);
    assert_eq!(
        org.count_requests("GET", "/conversations/calls/"),
        2 * CALLS
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert!(via(&rows).iter().all(|v| *v == Some("read")), "{rows:?}");
}

#[tokio::test]
async fn a_client_that_may_not_create_a_channel_is_told_once_and_reads_back() {
    let org = TestOrg::start(SimConfig {
        channels_forbidden: true,
        ..TestOrg::fast_config(CALLS)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv"]).await;
    run.assert_code(0);
    assert_converged(&org);
    let said = run
        .stderr
        .lines()
        .filter(|l| l.contains("verified by reading"))
        .count();
    assert_eq!(said, 1, "{}", run.stderr);
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert_eq!(org.count_requests("POST", "/notifications/channels"), 1);
    assert_eq!(org.count_requests("PUT", "/subscriptions"), 0);
    assert_eq!(
        org.count_requests("GET", "/conversations/calls/"),
        2 * CALLS
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert!(via(&rows).iter().all(|v| *v == Some("read")), "{rows:?}");
}

#[tokio::test]
async fn a_change_not_visible_within_the_verify_timeout_is_read_back_and_left_applied() {
    let org = TestOrg::start(SimConfig {
        faults: FaultConfig {
            visibility_lag: Duration::from_secs(30),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(4)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv", "--verify-timeout", "300ms"])
        .await;
    // No event came (the write is not visible yet): one read back each, which shows the old
    // values, so the change stays accepted and unverified, as without events.
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), 2 * 4);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "applied"), "{rows:?}");
    assert!(via(&rows).iter().all(Option::is_none), "{rows:?}");
}

#[tokio::test]
async fn reconcile_verifies_by_event_too() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["reconcile", "desired.csv", "--once"])
        .await
        .assert_code(0);
    assert_converged(&org);
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), 4);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(via(&rows).iter().all(|v| *v == Some("event")), "{rows:?}");
}

#[tokio::test]
async fn an_iteration_with_nothing_to_change_creates_no_channel() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["reconcile", "desired.csv", "--once"])
        .await
        .assert_code(0);
    let notification_requests = || {
        org.state()
            .request_log()
            .iter()
            .filter(|r| r.path.contains("/notifications/channels"))
            .count()
    };
    let first = notification_requests();
    assert!(first >= 2, "a channel and its subscription: {first}");
    // In sync: every call is read, none is changed, so no channel or subscription is asked for
    // (a channel is a request, and one of the 20 an OAuth client may have).
    org.run(&["reconcile", "desired.csv", "--once"])
        .await
        .assert_code(0);
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), 8);
    assert_eq!(notification_requests(), first);
}

#[tokio::test]
async fn a_socket_lost_while_changes_wait_for_their_events_reads_them_back() {
    let org = TestOrg::start(SimConfig {
        faults: FaultConfig {
            visibility_lag: Duration::from_secs(10),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(4)
    })
    .await;
    // Nothing becomes visible until the test says so.
    org.state().freeze_clock();
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.spawn(&["apply", "desired.csv", "--verify-timeout", "10m"]);
    wait_until("every PATCH is accepted", || {
        org.count_requests("PATCH", "/attributes") == 4
    })
    .await;
    assert_eq!(org.state().drop_sockets(), 1);
    // The socket comes back (a gap): the changes waiting for events are read instead.
    wait_until("every change is read back", || {
        org.count_requests("GET", "/conversations/calls/") >= 8
    })
    .await;
    org.state().advance_clock(Duration::from_secs(10));
    run.finish().await.assert_code(0);
    assert_eq!(org.count_requests("POST", "/notifications/channels"), 1);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert!(via(&rows).iter().all(|v| *v == Some("read")), "{rows:?}");
}

#[tokio::test]
async fn an_event_showing_other_values_is_never_taken_for_drift_only_a_read_judges_it() {
    // A flow overwrites every write at once: each change's own event (the written values) and
    // the flow's (a third value) come together. Whichever a change's verification sees, drift
    // is only ever what a read showed.
    let org = TestOrg::start(SimConfig {
        faults: FaultConfig {
            drift: Some(DriftConfig {
                key: "campaign".into(),
                value: "flow".into(),
                rate: 1.0,
            }),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(CALLS)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv", "--verify-timeout", "300ms"])
        .await;
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(rows.len(), CALLS);
    for row in &rows {
        match (row.status.as_str(), row.verified_via.as_deref()) {
            ("verified", Some("event")) | ("drift", Some("read")) => {}
            other => panic!("{other:?}: {rows:?}"),
        }
    }
}
