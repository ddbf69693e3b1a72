//! The API budget as the server counts it, judged from the simulator's request log: a window
//! budget is never exceeded (never a 429 under it); a wait longer than `--max-wait` stops the
//! run, resumable, with exit 4. When requests go (at once, a window apart) is the limiter's
//! logic, checked on a paused clock in crates/genesys-core/tests/rate_paused.rs: a threshold on
//! the simulator's clock, which is the wall clock, would depend on the machine's load.

use std::time::Duration;

use genesys_sim::{LimitShape, SimConfig};

use crate::support::{TestOrg, assert_converged, audit_targets, campaign_csv};

/// How many API requests the simulator answered.
fn api_requests(org: &TestOrg) -> usize {
    org.state()
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count()
}

fn window_org(calls: usize, per_window: u32, window: Duration) -> SimConfig {
    SimConfig {
        calls,
        rate_per_minute: (f64::from(per_window) * 60.0 / window.as_secs_f64()) as u32,
        limit_shape: LimitShape::Window,
        limit_window: window,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_job_that_fits_the_window_is_sent_at_once_without_a_429() {
    // 10 calls, 30 requests (read back: three a change) and one analytics read of which calls
    // ended, a budget of 300 per minute: nothing to wait for. That they go at once, not paced:
    // rate_paused.rs, a_job_that_fits_the_window_is_sent_at_once.
    let org = TestOrg::start(window_org(10, 300, Duration::from_secs(60))).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&[
        "apply",
        "desired.csv",
        "--rate",
        "300/min",
        "--verify-via",
        "get",
    ])
    .await
    .assert_code(0);
    assert_eq!(api_requests(&org), 31);
    assert_eq!(
        org.count_requests("GET", "") + org.count_requests("PATCH", ""),
        31
    );
    assert!(org.state().request_log().iter().all(|r| r.status != 429));
}

#[tokio::test]
async fn a_job_longer_than_a_window_never_exceeds_the_budget_in_any_window() {
    // 12 calls, 36 requests (read back) and one analytics read, 10 per 2 s: several windows,
    // and never a 429 (the simulator's own count of its window; the limiter's: rate_paused.rs,
    // the test of the same name).
    let window = Duration::from_secs(2);
    let org = TestOrg::start(window_org(12, 10, window)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&[
        "apply",
        "desired.csv",
        "--rate",
        "10/2s",
        "--verify-via",
        "get",
    ])
    .await
    .assert_code(0);
    assert_eq!(api_requests(&org), 37);
    assert!(org.state().request_log().iter().all(|r| r.status != 429));
}

#[tokio::test]
async fn a_wait_longer_than_max_wait_stops_the_run_resumably_with_exit_4() {
    // The server allows 5 requests a minute; attrsync is told 300/min.
    let org = TestOrg::start(window_org(4, 5, Duration::from_secs(60))).await;
    org.state().freeze_clock();
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&[
            "apply",
            "desired.csv",
            "--rate",
            "300/min",
            "--max-wait",
            "10s",
        ])
        .await;
    run.assert_code(4);
    assert!(
        run.stderr
            .contains("more than the maximum wait (--max-wait) of 10 s")
            && run.stderr.contains("attrsync apply --resume"),
        "{}",
        run.stderr
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter()
            .all(|r| r.status != "failed" && r.status != "sending"),
        "nothing failed, nothing is in doubt: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.status == "planned" || r.status == "applied")
    );
    let runs = org.run(&["audit", "runs", "--json"]).await;
    assert!(runs.stdout.contains("\"interrupted\""), "{}", runs.stdout);

    // Each resume spends the next window; the run converges.
    let mut last = 4;
    for _ in 0..6 {
        org.state().advance_clock(Duration::from_secs(61));
        last = org
            .run(&[
                "apply",
                "--resume",
                "latest",
                "--rate",
                "300/min",
                "--max-wait",
                "10s",
            ])
            .await
            .code;
        if last == 0 {
            break;
        }
        assert_eq!(last, 4);
    }
    assert_eq!(last, 0, "the resumed run finished");
    assert_converged(&org);
}

fn throttled(org: &TestOrg) -> usize {
    org.state()
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count()
}

#[tokio::test]
async fn against_a_smooth_limiter_repeated_short_waits_switch_to_even_pacing() {
    // A token bucket of 10/s with a burst of 3: its 429s say "retry in 1 s".
    let org = TestOrg::start(SimConfig {
        calls: 20,
        rate_per_minute: 600,
        burst: 3,
        limit_shape: LimitShape::Bucket,
        ..SimConfig::default()
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--rate", "600/min"])
        .await;
    run.assert_code(0);
    assert_converged(&org);
    assert!(
        run.stderr.contains("even pacing"),
        "it said what it learned: {}",
        run.stderr
    );
    // It learned from refusals (how many it costs is a benchmark figure: bench apply).
    assert!(throttled(&org) > 0);
}

#[tokio::test]
async fn a_rate_four_times_the_servers_is_cut_to_what_the_server_allows() {
    // The server allows 12 per 8 s (its Retry-After then says several seconds: a window's
    // answer); attrsync is told 48 per 8 s.
    let window = Duration::from_secs(8);
    let org = TestOrg::start(window_org(12, 12, window)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--rate", "48/8s"]).await;
    run.assert_code(0);
    assert_converged(&org);
    assert!(
        run.stderr.contains("not 360/min"),
        "it said what it learned: {}",
        run.stderr
    );
    // The first window teaches it; afterwards few requests are refused. Told by the server's
    // count, not its clock: after two windows' budgets were admitted (in time:
    // rate_paused.rs, a_rate_four_times_the_servers_is_cut_in_the_first_window).
    let api: Vec<_> = org
        .state()
        .request_log()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    let mut admitted = 0;
    let two_windows = api
        .iter()
        .position(|r| {
            admitted += usize::from(r.status != 429);
            admitted == 2 * 12
        })
        .expect("36 requests admitted");
    let later = &api[two_windows + 1..];
    let later_refused = later.iter().filter(|r| r.status == 429).count();
    assert!(
        later_refused * 5 <= later.len().max(1),
        "{later_refused} of {} requests refused after the first windows",
        later.len()
    );
}

#[tokio::test]
async fn a_rate_per_minute_against_a_shorter_server_window_learns_that_window() {
    // The server allows 20 per 4 s (300/min; its 429s say "retry in 4 s"); attrsync is told
    // 300/min and starts as if it could send them all within a minute.
    let window = Duration::from_secs(4);
    let org = TestOrg::start(window_org(20, 20, window)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--rate", "300/min"])
        .await;
    run.assert_code(0);
    assert_converged(&org);
    // 20 per 4 s is the 300/min it was told: no cut to report.
    assert!(!run.stderr.contains("not 300/min"), "{}", run.stderr);
    // The first window's refusals teach it the server's window; after that the server refuses
    // next to nothing (it did in every window while the window was taken to be a minute).
    let log: Vec<_> = org
        .state()
        .request_log()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    let first = log.iter().map(|r| r.at_ms).min().unwrap_or(0);
    let later_refused = log
        .iter()
        .filter(|r| r.status == 429 && r.at_ms >= first + window.as_millis() as u64)
        .count();
    assert!(
        later_refused <= 1,
        "{later_refused} of {} requests refused after the first window",
        log.len()
    );
}

#[tokio::test]
async fn an_org_limit_below_rate_times_tokens_still_converges() {
    let window = Duration::from_secs(2);
    let org = TestOrg::start(SimConfig {
        org_rate_per_minute: 300,
        ..window_org(16, 10, window)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--rate", "10/2s", "--tokens", "2"])
        .await;
    run.assert_code(0);
    assert_converged(&org);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter().all(|r| r.status == "verified"),
        "every target converged through the shared limit: {rows:?}"
    );
}

/// The recorded rate, options and the routes of the requests of the latest run.
async fn latest_run_record(
    org: &TestOrg,
) -> (Option<f64>, serde_json::Value, Vec<(String, Option<i64>)>) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(org.audit_path())
        .read_only(true)
        .connect()
        .await
        .expect("audit store opens");
    let (id, rate, options): (String, Option<f64>, String) = sqlx::query_as(
        "SELECT id, rate_per_minute, options FROM runs ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("a run");
    let requests: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT route, status FROM requests WHERE run_id = ?1 ORDER BY id")
            .bind(&id)
            .fetch_all(&mut conn)
            .await
            .expect("requests");
    (rate, serde_json::from_str(&options).unwrap(), requests)
}

const LIMITS_ROUTE: &str = "GET /api/v2/organizations/limits/namespaces/{namespaceName}";

#[tokio::test]
async fn rate_auto_spends_the_orgs_own_budget_and_never_more() {
    // 110 calls, 333 requests (read back, with two analytics reads of which calls ended): more
    // than the default 300/min would send in a window, less than the 600/min the org allows.
    // That the budget read is the window's, spent at once: rate_paused.rs,
    // a_rate_read_from_the_org_is_a_window_budget_spent_at_once.
    let window = Duration::from_secs(60);
    let org = TestOrg::start(window_org(110, 600, window)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&[
            "apply",
            "desired.csv",
            "--rate",
            "auto",
            "--verify-via",
            "get",
        ])
        .await;
    run.assert_code(0);
    assert!(
        run.stderr.contains(
            "--rate auto: the org allows 600 requests/min per token (platform-api namespace)"
        ),
        "{}",
        run.stderr
    );

    // The lookup was the run's first API request, and the server saw no 429.
    let log = org.state().request_log();
    let api: Vec<_> = log.iter().filter(|r| r.path.starts_with("/api/")).collect();
    assert_eq!(
        api[0].path,
        "/api/v2/organizations/limits/namespaces/platform-api"
    );
    assert_eq!(api[0].status, 200);
    assert!(log.iter().all(|r| r.status != 429));
    assert_eq!(api.len(), 333);

    let (rate, options, requests) = latest_run_record(&org).await;
    assert_eq!(rate, Some(600.0));
    assert_eq!(options["rate"], "600/min");
    assert_eq!(options["rate_auto"]["from_org"], true);
    assert_eq!(options["rate_auto"]["namespace"], "platform-api");
    // Recorded like any request of the run.
    assert_eq!(requests[0], (LIMITS_ROUTE.to_owned(), Some(200)));
    assert_converged(&org);
}

#[tokio::test]
async fn rate_auto_falls_back_to_300_per_minute_when_the_limits_are_forbidden() {
    let org = TestOrg::start(SimConfig {
        limits_forbidden: true,
        ..window_org(10, 300, Duration::from_secs(60))
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--rate", "auto"]).await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("--rate auto: cannot read the org's limits (HTTP 403 missing.permissions")
            && run.stderr.contains("using Genesys's default 300/min"),
        "{}",
        run.stderr
    );
    let (rate, options, requests) = latest_run_record(&org).await;
    assert_eq!(rate, Some(300.0));
    assert_eq!(options["rate"], "300/min");
    assert_eq!(options["rate_auto"]["from_org"], false);
    assert_eq!(requests[0], (LIMITS_ROUTE.to_owned(), Some(403)));
    assert_eq!(
        org.count_requests("GET", "/organizations/limits/"),
        1,
        "a 403 is not retried"
    );
    assert!(org.state().request_log().iter().all(|r| r.status != 429));
    assert_converged(&org);
}

#[tokio::test]
async fn rate_auto_asks_the_namespace_it_is_given_and_falls_back_on_a_404() {
    let org = TestOrg::start(SimConfig {
        limits_namespace: "org-limits".into(),
        ..window_org(4, 1200, Duration::from_secs(60))
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--rate", "auto"]).await;
    run.assert_code(0);
    assert!(
        run.stderr.contains("HTTP 404 not.found")
            && run.stderr.contains("using Genesys's default 300/min"),
        "{}",
        run.stderr
    );
    assert_eq!(latest_run_record(&org).await.0, Some(300.0));

    let run = org
        .run(&[
            "apply",
            "desired.csv",
            "--rate",
            "auto",
            "--limits-namespace",
            "org-limits",
        ])
        .await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("the org allows 1200 requests/min per token (org-limits namespace)"),
        "{}",
        run.stderr
    );
    assert_eq!(latest_run_record(&org).await.0, Some(1200.0));
}

#[tokio::test]
async fn rate_auto_falls_back_when_the_key_is_absent() {
    // A simulator without a per-token limit lists no such key.
    let org = TestOrg::start(SimConfig {
        calls: 3,
        rate_per_minute: 0,
        ..SimConfig::default()
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--rate", "auto"]).await;
    run.assert_code(0);
    assert!(
        run.stderr.contains(
            "--rate auto: the org's limits in the platform-api namespace (--limits-namespace) \
             have no client.credentials.token.rate.per.minute: using Genesys's default 300/min"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(latest_run_record(&org).await.0, Some(300.0));
    assert_converged(&org);
}

/// Off a terminal, a wait for the budget longer than 2 s is named on stderr as soon as it
/// begins, with when the next request goes; stdout stays clean.
#[tokio::test]
async fn a_wait_for_the_budget_is_named_on_stderr_with_when_the_next_request_goes() {
    let org = TestOrg::start(TestOrg::fast_config(6)).await;
    org.write("desired.csv", &campaign_csv(&org));
    // 4 requests per 30 s: the first window is spent before the calls are read.
    let mut apply = org.spawn(&["apply", "desired.csv", "--rate", "4/30s"]);
    let line = apply
        .next_stderr_line("the wait is named", |l| {
            l.contains("waiting for the API budget: next request at")
        })
        .await;
    assert!(
        line.starts_with("progress: ") && line.contains(" s), "),
        "{line}"
    );
    // The limiter holds the requests: the simulator saw no more than the window's 4.
    let api = org
        .state()
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert!(api <= 4, "{api} requests in the first window");
    apply.signal("INT");
    let run = apply.finish().await;
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// Off a terminal, a verification that goes on for more than 2 s (the write is not visible yet)
/// is named with until when it may last; the run then verifies it.
#[tokio::test]
async fn a_long_verification_is_named_with_until_when() {
    let org = TestOrg::start(SimConfig {
        faults: genesys_sim::FaultConfig {
            visibility_lag: Duration::from_secs(4),
            ..Default::default()
        },
        ..TestOrg::fast_config(1)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let mut apply = org.spawn(&["apply", "desired.csv", "--verify-timeout", "20s"]);
    let line = apply
        .next_stderr_line("the verification is named", |l| {
            l.contains("verifying 1 calls' changes: until ")
        })
        .await;
    assert!(line.contains(" at the latest (in "), "{line}");
    let run = apply.finish().await;
    run.assert_code(0);
    assert_converged(&org);
}
