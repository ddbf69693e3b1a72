//! `attrsync reconcile`: once and in a loop, the one-instance lock, signals, metrics.

use std::collections::BTreeMap;

use genesys_sim::{LimitShape, SimConfig};

use crate::support::TestOrg;

fn desired_csv(org: &TestOrg, campaign: &str) -> String {
    let mut csv = String::from("conversation_id,campaign\n");
    for call in org.live_calls() {
        csv.push_str(&format!("{},{campaign}\n", call.id));
    }
    csv
}

/// Replaces a file the way a CRM export should: never half-written for a reader.
fn replace_file(org: &TestOrg, name: &str, contents: &str) {
    let temp = org.write(&format!("{name}.tmp"), contents);
    std::fs::rename(temp, org.path(name)).unwrap();
}

/// `name{labels} value` lines of a Prometheus text file, by series.
fn metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn customers_campaign(org: &TestOrg) -> Vec<Option<String>> {
    org.live_calls()
        .iter()
        .map(|call| {
            call.participants
                .iter()
                .find(|p| p.purpose.as_deref() == Some("customer"))
                .and_then(|p| p.attributes.get("campaign").cloned())
        })
        .collect()
}

#[tokio::test]
async fn once_applies_then_the_next_once_is_in_sync_with_one_quiet_line_each() {
    let org = TestOrg::start(TestOrg::fast_config(8)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));

    let first = org.run(&["reconcile", "desired.csv", "--once"]).await;
    first.assert_code(0);
    assert_eq!(first.stderr.lines().count(), 1, "{}", first.stderr);
    assert!(
        first
            .stderr
            .starts_with("reconcile: applied (8 targets: 8 verified) in "),
        "{}",
        first.stderr
    );
    assert!(first.stdout.is_empty(), "{}", first.stdout);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 8);
    assert!(
        customers_campaign(&org)
            .iter()
            .all(|c| c.as_deref() == Some("spring"))
    );

    let second = org.run(&["reconcile", "desired.csv", "--once"]).await;
    second.assert_code(0);
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.stderr);
    assert!(
        second
            .stderr
            .starts_with("reconcile: in sync (8 targets, 0 changes) in "),
        "{}",
        second.stderr
    );
    assert_eq!(
        org.count_requests("PATCH", "/attributes"),
        8,
        "no PATCH when in sync"
    );
}

#[tokio::test]
async fn metrics_file_holds_the_runs_real_counts() {
    let org = TestOrg::start(TestOrg::fast_config(6)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    org.state().end_call(&org.live_calls()[0].id);

    org.run(&[
        "reconcile",
        "desired.csv",
        "--once",
        "--metrics-file",
        "attrsync.prom",
    ])
    .await
    .assert_code(0);
    let text = std::fs::read_to_string(org.path("attrsync.prom")).unwrap();
    let values = metrics(&text);
    assert_eq!(
        values["attrsync_last_run_targets{status=\"verified\"}"],
        5.0
    );
    // The call that ended is a count of the run, not a skipped target.
    assert_eq!(values["attrsync_last_run_targets{status=\"skipped\"}"], 0.0);
    assert_eq!(values["attrsync_last_run_ended_rows"], 1.0);
    assert_eq!(values["attrsync_last_run_targets{status=\"failed\"}"], 0.0);
    assert_eq!(values["attrsync_last_run_exit_code"], 0.0);
    assert_eq!(values["attrsync_last_run_throttled_requests"], 0.0);
    let api_requests = org
        .state()
        .request_log()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert_eq!(values["attrsync_last_run_requests"], api_requests as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let finished = values["attrsync_last_run_timestamp_seconds"];
    assert!(finished > 0.0 && finished <= now, "{finished} vs {now}");
    assert!(values["attrsync_last_run_duration_seconds"] > 0.0);
    assert!(
        text.contains("# TYPE attrsync_last_run_targets gauge"),
        "{text}"
    );
    assert!(
        !org.path(".attrsync.prom.tmp").exists(),
        "no temporary file left"
    );

    // The next run replaces the file: now everything is unchanged.
    org.run(&[
        "reconcile",
        "desired.csv",
        "--once",
        "--metrics-file",
        "attrsync.prom",
    ])
    .await
    .assert_code(0);
    let values = metrics(&std::fs::read_to_string(org.path("attrsync.prom")).unwrap());
    assert_eq!(
        values["attrsync_last_run_targets{status=\"unchanged\"}"],
        5.0
    );
    assert_eq!(
        values["attrsync_last_run_targets{status=\"verified\"}"],
        0.0
    );
}

#[tokio::test]
async fn metrics_count_the_429s_the_simulator_sent() {
    // The simulator allows a burst of 3; attrsync is told it may send far more.
    let org = TestOrg::start(SimConfig {
        calls: 5,
        rate_per_minute: 1_200,
        limit_shape: LimitShape::Bucket,
        burst: 3,
        ..SimConfig::default()
    })
    .await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    org.run(&[
        "reconcile",
        "desired.csv",
        "--once",
        "--rate",
        "60000/min",
        "--burst",
        "100",
        "--metrics-file",
        "attrsync.prom",
    ])
    .await
    .assert_code(0);
    let throttled = org
        .state()
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(throttled > 0, "the simulator throttled some requests");
    let values = metrics(&std::fs::read_to_string(org.path("attrsync.prom")).unwrap());
    assert_eq!(
        values["attrsync_last_run_throttled_requests"],
        throttled as f64
    );
}

#[tokio::test]
async fn a_failed_once_exits_1_and_says_so_in_the_metrics() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    org.write("bad.csv", "conversation_id,campaign\nnot-a-uuid,spring\n");
    let run = org
        .run(&[
            "reconcile",
            "bad.csv",
            "--once",
            "--metrics-file",
            "attrsync.prom",
        ])
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("bad.csv:2"), "{}", run.stderr);
    let values = metrics(&std::fs::read_to_string(org.path("attrsync.prom")).unwrap());
    assert_eq!(values["attrsync_last_run_exit_code"], 1.0);
    assert_eq!(org.count_requests("PATCH", ""), 0);
}

#[tokio::test]
async fn a_second_instance_exits_75_naming_the_holder_and_sigterm_stops_the_first() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    let mut looping = org.spawn(&["reconcile", "desired.csv", "--every", "1h"]);
    looping
        .next_stderr_line("the first iteration applied", |l| {
            l.starts_with("reconcile: applied")
        })
        .await;
    let patches = org.count_requests("PATCH", "");

    let second = org.run(&["reconcile", "desired.csv", "--once"]).await;
    second.assert_code(75);
    let holder_pid = looping.id().unwrap();
    assert!(
        second
            .stderr
            .contains(&format!("held by process {holder_pid} on ")),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("since "), "{}", second.stderr);
    assert_eq!(
        org.count_requests("PATCH", ""),
        patches,
        "the second instance sent nothing"
    );

    // Between iterations, SIGTERM ends the loop at once (the interval is an hour), cleanly.
    looping.signal("TERM");
    looping
        .next_stderr_line("reconcile: stopped", |l| l == "reconcile: stopped")
        .await;
    looping.finish().await.assert_code(0);

    // The lock was released: the next reconcile runs.
    let after = org.run(&["reconcile", "desired.csv", "--once"]).await;
    after.assert_code(0);
    assert!(
        after.stderr.starts_with("reconcile: in sync"),
        "{}",
        after.stderr
    );
}

#[tokio::test]
async fn the_loop_rereads_the_source_every_iteration() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    let mut looping = org.spawn(&["reconcile", "desired.csv", "--every", "1s"]);
    looping
        .next_stderr_line("an iteration verified 3 targets", |l| {
            l.contains("3 verified")
        })
        .await;
    assert!(
        customers_campaign(&org)
            .iter()
            .all(|c| c.as_deref() == Some("spring"))
    );

    // The CRM changes its mind; a later iteration applies it.
    replace_file(&org, "desired.csv", &desired_csv(&org, "summer"));
    looping
        .next_stderr_line("a later iteration verified 3 targets", |l| {
            l.contains("3 verified")
        })
        .await;
    assert!(
        customers_campaign(&org)
            .iter()
            .all(|c| c.as_deref() == Some("summer"))
    );

    // (Stopping by signal is tested above, between iterations where its outcome is certain.)
    looping.kill().await;
}

#[tokio::test]
async fn the_loop_logs_a_failed_iteration_and_goes_on() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write(
        "desired.csv",
        "conversation_id,campaign\nnot-a-uuid,spring\n",
    );
    let mut looping = org.spawn(&["reconcile", "desired.csv", "--every", "1s"]);
    looping
        .next_stderr_line("an iteration failed", |l| {
            l.starts_with("error: reconcile: iteration failed")
        })
        .await;

    replace_file(&org, "desired.csv", &desired_csv(&org, "spring"));
    looping
        .next_stderr_line("a later iteration verified 2 targets", |l| {
            l.contains("2 verified")
        })
        .await;
    assert!(
        customers_campaign(&org)
            .iter()
            .all(|c| c.as_deref() == Some("spring"))
    );
    looping.kill().await;
}

/// `--listen`: `/metrics` serves the last iteration's metrics, the very text `--metrics-file`
/// gets, and `/healthz` says the loop is alive; SIGTERM ends the loop and its server.
#[tokio::test]
async fn listen_serves_the_last_iterations_metrics_and_the_loops_health() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    // A free port, released for the loop to bind.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut looping = org.spawn(&[
        "reconcile",
        "desired.csv",
        "--every",
        "1s",
        "--listen",
        &addr.to_string(),
        "--metrics-file",
        "attrsync.prom",
    ]);
    // The iteration's line shows once its metrics are served.
    looping
        .next_stderr_line("the first iteration's line", |l| {
            l.starts_with("reconcile: applied")
        })
        .await;

    // reqwest is built without a default TLS provider (as attrsync is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let file = || std::fs::read_to_string(org.path("attrsync.prom")).unwrap();
    // An iteration a second: the same one is read from the file before and after the scrape
    // (the loop writes the file and what it serves together).
    let (served, written) = loop {
        let before = file();
        let answer = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()[reqwest::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let served = answer.text().await.unwrap();
        if file() == before {
            break (served, before);
        }
    };
    assert_eq!(served, written);
    let values = metrics(&served);
    assert_eq!(values["attrsync_last_run_exit_code"], 0.0);
    let targets: f64 = values
        .iter()
        .filter(|(series, _)| series.starts_with("attrsync_last_run_targets{"))
        .map(|(_, value)| value)
        .sum();
    assert_eq!(targets, 2.0, "{served}");

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");

    looping.signal("TERM");
    // The loop exits, its server with it.
    let status = looping.wait().await;
    // 0 between iterations, 130 during one: with an iteration a second, either.
    assert!(matches!(status.code(), Some(0 | 130)), "{status}");
}

/// `--once` serves nothing: `--listen` with it is a usage error, before anything is sent or
/// any store created.
#[tokio::test]
async fn listen_is_refused_with_once() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    org.write("desired.csv", &desired_csv(&org, "spring"));
    let run = org
        .run(&[
            "reconcile",
            "desired.csv",
            "--once",
            "--listen",
            "127.0.0.1:0",
        ])
        .await;
    run.assert_code(64);
    assert!(
        run.stderr
            .contains("the argument '--once' cannot be used with '--listen <ADDR>'"),
        "{}",
        run.stderr
    );
    assert_eq!(org.state().request_log().len(), 0, "nothing was sent");
    assert!(!org.audit_path().exists(), "no store was created");
}
