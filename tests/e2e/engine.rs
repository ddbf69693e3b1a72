//! The one run lifecycle, as a user meets it: a stop stops sending, a verification that times
//! out is not called drift, and every command exits with what its run recorded.

use std::time::Duration;

use genesys_sim::{FaultConfig, SimConfig};

use crate::support::{TestOrg, audit_targets, campaign_csv, latest_run, wait_for};

fn api_requests(org: &TestOrg) -> usize {
    org.state()
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count()
}

/// SIGINT while every target waits for the budget's next window: nothing more is sent, the
/// process ends without waiting for the window, and the targets that waited are `planned`
/// (not sent) for `--resume`.
#[tokio::test]
async fn a_stop_while_waiting_for_the_budget_sends_nothing_more() {
    let org = TestOrg::start(TestOrg::fast_config(30)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let child = org.spawn(&[
        "apply",
        "desired.csv",
        "--rate",
        "8/min",
        "--concurrency",
        "8",
    ]);
    // The window's 8 requests are spent; everything else waits about a minute for the next.
    wait_for(&org, "the window's 8 API requests are sent", |log| {
        log.iter().filter(|r| r.path.starts_with("/api/")).count() >= 8
    })
    .await;
    let before = api_requests(&org);
    child.signal("INT");
    child.finish().await.assert_code(130);
    assert_eq!(
        api_requests(&org),
        before,
        "no request left after the stop request"
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter().all(|r| r.status != "sending"),
        "a target that waited for budget is recorded as not sent: {rows:?}"
    );
    assert!(rows.iter().any(|r| r.status == "planned"), "{rows:?}");
    let run = latest_run(&org).await;
    assert_eq!(run["status"], "interrupted", "{run}");
    assert_eq!(run["exit_code"], 130, "{run}");
}

/// Accepted (202) but not visible within `--verify-timeout` is not drift (nobody overwrote
/// it): the target stays `applied`, the run is partial, and a resume verifies it.
#[tokio::test]
async fn a_change_not_seen_in_time_is_applied_not_drift_and_a_resume_verifies_it() {
    let org = TestOrg::start(SimConfig {
        faults: FaultConfig {
            visibility_lag: Duration::from_millis(1_500),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(2)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--verify-timeout", "200ms"])
        .await;
    run.assert_code(3);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter().all(|r| r.status == "applied"),
        "accepted and not seen yet: {rows:?}"
    );
    assert_eq!(latest_run(&org).await["exit_code"], 3);

    let resumed = org
        .run(&["apply", "--resume", "latest", "--verify-timeout", "20s"])
        .await;
    resumed.assert_code(0);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");
    assert_eq!(latest_run(&org).await["exit_code"], 0);
}
