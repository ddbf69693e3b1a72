//! The one run lifecycle, as a user meets it: a stop stops sending, a verification that times
//! out is not called drift, and every command exits with what its run recorded.

use std::time::Duration;

use genesys_sim::{FaultConfig, LimitShape, SimConfig};

use crate::support::{Spawned, TestOrg, audit_targets, campaign_csv, latest_run, wait_for};

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

/// Waits for a follow to end by itself (bounded), with its exit code and stderr.
async fn ends_by_itself(child: Spawned) -> (i32, String) {
    let run = child.finish().await;
    (run.code, run.stderr)
}

/// A follow of a queue the org does not have ends at once with exit 1, before any run is
/// recorded or any subscription made; it never retries forever.
#[tokio::test]
async fn a_follow_of_an_unknown_queue_fails_instead_of_retrying_forever() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let unknown = "2f6a9c1e-5b4d-4e8f-9a7b-1c2d3e4f5a6b";
    let child = org.spawn(&["tag", "--queue", unknown, "--follow", "campaign=spring"]);
    let (code, stderr) = ends_by_itself(child).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(unknown) && stderr.contains("attrsync queues"),
        "{stderr}"
    );
    assert!(!org.audit_path().exists(), "no run was recorded");
    assert_eq!(org.count_requests("POST", "/notifications/channels"), 0);
    assert_eq!(org.count_requests("PUT", "/subscriptions"), 0);
}

/// A follow on a given token (`GENESYSCLOUD_ACCESS_TOKEN`) that is revoked stops resumable:
/// exit 4 with the advice, recorded as such, not a quiet "completed".
#[tokio::test]
async fn a_follow_whose_given_token_is_revoked_stops_with_exit_4() {
    let org = TestOrg::start(SimConfig {
        queues: 1,
        ..TestOrg::fast_config(2)
    })
    .await;
    let call = org.live_calls().remove(0).id;
    org.run(&["get", &call]).await.assert_code(0);
    let token = org.state().issued_tokens().into_iter().next().unwrap();
    let queue = org.state().queues()[0].id.clone();
    let mut cmd = org.command(&["tag", "--queue", &queue, "--follow", "campaign=spring"]);
    cmd.env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET")
        .env("GENESYSCLOUD_ACCESS_TOKEN", &token);
    let child = crate::support::spawn(&mut cmd);
    crate::support::wait_until("the follow's socket connects", || {
        org.state().notification_status().sockets > 0
    })
    .await;
    org.state().expire_tokens();
    // The channel goes: the follow must make a new one, with the revoked token.
    org.state().expire_channels();
    let (code, stderr) = ends_by_itself(child).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("expired or was revoked"), "{stderr}");
    let run = latest_run(&org).await;
    assert_eq!(run["exit_code"], 4, "{run}");
    assert!(!stderr.contains(&token), "the token was shown");
}

/// A follow settles what a dead follow left alongside its own work: it subscribes without
/// waiting for the settling (which waits out visibility lag), and a SIGTERM while it settles
/// ends it as a follow ends: exit 0, recorded as completed.
#[tokio::test]
async fn a_follow_settles_a_dead_follow_alongside_subscribing_and_stops_while_settling() {
    let org = TestOrg::start(SimConfig {
        queues: 1,
        faults: FaultConfig {
            visibility_lag: Duration::from_secs(30),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(2)
    })
    .await;
    let queue = org.state().queues()[0].id.clone();
    let first = org.spawn(&[
        "tag",
        "--queue",
        &queue,
        "--follow",
        "--verify-via",
        "get",
        "campaign=spring",
    ]);
    wait_for(&org, "the first follow's PATCH is accepted", |log| {
        log.iter().any(|r| r.method == "PATCH" && r.status == 202)
    })
    .await;
    // kill -9 while its change waits to be seen: its row is left for the next run to settle.
    first.kill().await;
    let channels = |log: &[genesys_sim::LoggedRequest]| {
        log.iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/notifications/channels"))
            .count()
    };
    assert_eq!(channels(&org.state().request_log()), 1);

    // The second follow has nothing of its own to do (no participant has that purpose), and
    // would settle for up to 2 minutes before subscribing if settling came first.
    let second = org.spawn(&[
        "tag",
        "--queue",
        &queue,
        "--follow",
        "--purpose",
        "nobody",
        "--verify-timeout",
        "120s",
        "campaign=spring",
    ]);
    wait_for(&org, "the second follow makes its channel", |log| {
        channels(log) >= 2
    })
    .await;
    second.signal("TERM");
    let (code, stderr) = ends_by_itself(second).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("settling"),
        "it said what it waits for: {stderr}"
    );
    let run = latest_run(&org).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["exit_code"], 0, "{run}");
}

/// On a budget far below `--rate` (7 requests per 2 s against the default 300/min) with a short
/// `--max-wait`, every run stops early (exit 4); each resume must still make progress (it reads
/// one call ahead of its PATCHes, one more per accepted change), and the work converges.
#[tokio::test]
async fn every_resume_on_a_tiny_budget_makes_progress() {
    let org = TestOrg::start(SimConfig {
        calls: 8,
        rate_per_minute: 7 * 30,
        limit_shape: LimitShape::Window,
        limit_window: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let accepted = |org: &TestOrg| {
        org.state()
            .request_log()
            .iter()
            .filter(|r| r.method == "PATCH" && r.status == 202)
            .count()
    };
    let mut run = org
        .run(&["apply", "desired.csv", "--max-wait", "500ms"])
        .await;
    // The first run reads every call at once and is stopped before its PATCHes; every resume
    // must then buy changes with the budget left.
    run.assert_code(4);
    let mut before = accepted(&org);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    run = org
        .run(&["apply", "--resume", "latest", "--max-wait", "500ms"])
        .await;
    for _ in 0..12 {
        if run.code == 0 {
            break;
        }
        assert_eq!(run.code, 4, "stopped early, resumable: {}", run.stderr);
        let now = accepted(&org);
        assert!(
            now > before,
            "a run stopped by the budget sent no PATCH: {}\n{:?}",
            run.stderr,
            org.state()
                .request_log()
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.status, r.path))
                .collect::<Vec<_>>()
        );
        before = now;
        // The server's window (2 s) passes before the next run, as the message advises.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        run = org
            .run(&["apply", "--resume", "latest", "--max-wait", "500ms"])
            .await;
    }
    run.assert_code(0);
    crate::support::assert_converged(&org);
}

/// A follow runs through the one lifecycle: `--rate auto` asks the org before its first other
/// request (it used to run at the default budget without asking), and the run records it.
#[tokio::test]
async fn a_follow_honours_rate_auto() {
    let org = TestOrg::start(SimConfig {
        queues: 1,
        rate_per_minute: 600,
        ..TestOrg::fast_config(2)
    })
    .await;
    let queue = org.state().queues()[0].id.clone();
    let mut follow = org.spawn(&[
        "tag",
        "--queue",
        &queue,
        "--follow",
        "--rate",
        "auto",
        "campaign=spring",
    ]);
    follow
        .next_stderr_line("the org's own limit is read", |l| {
            l.contains("--rate auto: the org allows 600 requests/min per token")
        })
        .await;
    let api: Vec<_> = org
        .state()
        .request_log()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    assert_eq!(
        api[0].path, "/api/v2/organizations/limits/namespaces/platform-api",
        "asked before any other request"
    );
    follow.signal("TERM");
    let run = follow.finish().await;
    run.assert_code(0);
    let recorded = latest_run(&org).await;
    assert_eq!(recorded["exit_code"], 0, "{recorded}");
}
