//! `attrsync apply` against the simulator: convergence under faults, rate limits, interruption.

use std::collections::BTreeMap;
use std::time::Duration;

use genesys_sim::{DriftConfig, FaultConfig, LimitShape, SimConfig};

use crate::support::{Run, TestOrg, assert_converged, audit_targets, campaign_csv, wait_for};

fn statuses(run: &Run) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in run.stdout.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["type"] == "target" {
            *counts
                .entry(event["status"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn happy_path_applies_verifies_and_records_every_target() {
    let org = TestOrg::start(TestOrg::fast_config(12)).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--json"]).await;
    run.assert_code(0);
    assert_converged(&org);
    assert_eq!(statuses(&run).get("verified"), Some(&12), "{}", run.stdout);
    // One read and one PATCH per changed call (its event verifies it): nothing more.
    assert_eq!(org.count_requests("PATCH", "/attributes"), 12);
    assert_eq!(org.count_requests("GET", "/conversations/calls/"), 12);
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(rows.len(), 12);
    let calls: std::collections::HashSet<String> =
        org.live_calls().into_iter().map(|c| c.id).collect();
    let audited: std::collections::HashSet<String> =
        rows.iter().map(|r| r.conversation_id.clone()).collect();
    assert_eq!(audited, calls, "one audit row per call of the input");
    assert!(
        rows.iter()
            .all(|r| r.status == "verified" && r.correlation_id.is_some()),
        "{rows:?}"
    );
}

#[tokio::test]
async fn already_in_sync_sends_no_patch_and_exits_0() {
    let org = TestOrg::start(TestOrg::fast_config(6)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    let patches = org.count_requests("PATCH", "/attributes");
    let run = org.run(&["apply", "desired.csv", "--json"]).await;
    run.assert_code(0);
    assert_eq!(
        org.count_requests("PATCH", "/attributes"),
        patches,
        "no PATCH when in sync"
    );
    assert_eq!(statuses(&run).get("unchanged"), Some(&6));
}

#[tokio::test]
async fn tool_rate_within_the_simulators_budget_never_sees_a_429() {
    let config = SimConfig {
        calls: 15,
        rate_per_minute: 1_200,
        limit_shape: LimitShape::Bucket,
        burst: 20,
        ..SimConfig::default()
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    // The simulator limits with a token bucket (GCRA): even pacing is what keeps within it.
    org.run(&[
        "apply",
        "desired.csv",
        "--rate",
        "1200/min",
        "--pacing",
        "even",
        "--burst",
        "10",
    ])
    .await
    .assert_code(0);
    assert_converged(&org);
    assert_eq!(org.count_requests("GET", "").min(1), 1);
    let throttled = org
        .state()
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(throttled, 0);
}

#[tokio::test]
async fn tool_rate_above_the_budget_gets_429s_honours_retry_after_and_converges() {
    let config = SimConfig {
        calls: 8,
        rate_per_minute: 120,
        limit_shape: LimitShape::Bucket,
        burst: 4,
        ..SimConfig::default()
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&[
        "apply",
        "desired.csv",
        "--rate",
        "6000/min",
        "--burst",
        "50",
    ])
    .await
    .assert_code(0);
    assert_converged(&org);
    let log = org.state().request_log();
    let throttled: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(!throttled.is_empty(), "the simulator's budget was exceeded");
    // After a 429 with Retry-After, that token sends nothing until the time has passed.
    for limited in &throttled {
        let retry_after_ms = limited.retry_after_secs.expect("429 carries Retry-After") * 1000;
        let too_early = log.iter().filter(|r| {
            r.token_id == limited.token_id
                && r.path.starts_with("/api/")
                && r.at_ms > limited.at_ms
                && r.at_ms < limited.at_ms + retry_after_ms - 50
        });
        // Requests already in flight when the 429 arrived may land just after it.
        assert!(too_early.count() <= 10, "requests ignored Retry-After");
    }
}

#[tokio::test]
async fn gateway_errors_are_retried_until_everything_converges() {
    let faults = FaultConfig {
        status_rates: [(502, 0.1), (503, 0.1), (504, 0.1)].into(),
        ..FaultConfig::default()
    };
    let config = SimConfig {
        faults,
        ..TestOrg::fast_config(15)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    assert_converged(&org);
    let log = org.state().request_log();
    assert!(
        log.iter().any(|r| [502, 503, 504].contains(&r.status)),
        "faults were injected"
    );
}

/// Every call ends right after attrsync reads it, so every PATCH meets an ended call.
#[tokio::test]
async fn calls_ending_mid_run_are_skipped_not_failed() {
    let faults = FaultConfig {
        end_call_rate: 1.0,
        ..FaultConfig::default()
    };
    let config = SimConfig {
        faults,
        ..TestOrg::fast_config(6)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org.run(&["apply", "desired.csv", "--json"]).await;
    run.assert_code(0);
    assert_eq!(statuses(&run), BTreeMap::from([("skipped".to_owned(), 6)]));
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().all(|r| r.status == "skipped"), "{rows:?}");
}

#[tokio::test]
async fn visibility_lag_is_waited_out_and_not_reported_as_drift() {
    let faults = FaultConfig {
        visibility_lag: Duration::from_millis(400),
        ..FaultConfig::default()
    };
    let config = SimConfig {
        faults,
        ..TestOrg::fast_config(5)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    let run = org
        .run(&["apply", "desired.csv", "--json", "--verify-timeout", "20s"])
        .await;
    run.assert_code(0);
    assert_eq!(statuses(&run).get("verified"), Some(&5), "{}", run.stdout);
}

#[tokio::test]
async fn a_flow_overwriting_a_key_is_reported_as_drift_with_exit_3() {
    let faults = FaultConfig {
        drift: Some(DriftConfig {
            key: "campaign".into(),
            value: "flow-override".into(),
            rate: 0.5,
        }),
        ..FaultConfig::default()
    };
    let config = SimConfig {
        seed: 3,
        faults,
        ..TestOrg::fast_config(10)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    // Read back: an event may show the written values before the flow's own event.
    let run = org
        .run(&[
            "apply",
            "desired.csv",
            "--json",
            "--verify-timeout",
            "2s",
            "--verify-via",
            "get",
        ])
        .await;
    run.assert_code(3);
    let counts = statuses(&run);
    assert!(counts.get("drift").copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(
        counts.get("verified").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(rows.iter().filter(|r| r.status == "drift").all(|r| {
        r.observed
            .as_deref()
            .is_some_and(|o| o.contains("flow-override"))
    }));
}

#[tokio::test]
async fn token_expiry_mid_run_is_recovered_with_one_refresh() {
    let org = TestOrg::start(SimConfig {
        latency: Duration::from_millis(20),
        ..TestOrg::fast_config(30)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let child = org.spawn(&["apply", "desired.csv", "--concurrency", "4"]);
    // Expire every token once the run is writing.
    wait_for(&org, "3 PATCHes are sent", |log| {
        log.iter().filter(|r| r.method == "PATCH").count() >= 3
    })
    .await;
    org.state().expire_tokens();
    child.finish().await.assert_code(0);
    assert_converged(&org);
    let log = org.state().request_log();
    assert!(
        log.iter().any(|r| r.status == 401),
        "the expired token was refused"
    );
    assert_eq!(
        log.iter().filter(|r| r.path == "/oauth/token").count(),
        2,
        "one token, one refresh"
    );
}

#[tokio::test]
async fn results_dir_has_succeeded_failed_and_unprocessed_rows() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    let calls = org.live_calls();
    org.write("desired.csv", &campaign_csv(&org));
    org.state().end_call(&calls[3].id);
    org.run(&["apply", "desired.csv", "--results", "out"])
        .await
        .assert_code(0);
    let succeeded = std::fs::read_to_string(org.path("out/succeeded.csv")).unwrap();
    let failed = std::fs::read_to_string(org.path("out/failed.csv")).unwrap();
    assert!(org.path("out/unprocessed.csv").exists());
    assert_eq!(succeeded.lines().count(), 1 + 3, "{succeeded}");
    assert!(
        failed.contains(&calls[3].id) && failed.contains("skipped"),
        "{failed}"
    );
    // failed.csv is valid input again: its result columns are ignored.
    org.run(&["plan", "out/failed.csv"]).await.assert_code(0);
}

/// Kill -9 at several points of a run; `--resume` (or a plain rerun) converges, and every PATCH
/// the simulator received is in the audit log.
#[tokio::test]
async fn kill_9_at_any_point_then_resume_converges_and_loses_no_patch() {
    for (kill_after_patches, rerun_plainly) in [(1, false), (7, false), (15, true)] {
        let config = SimConfig {
            latency: Duration::from_millis(15),
            ..TestOrg::fast_config(25)
        };
        let org = TestOrg::start(config).await;
        org.write("desired.csv", &campaign_csv(&org));
        let child = org.spawn(&["apply", "desired.csv", "--concurrency", "4"]);
        wait_for(
            &org,
            &format!("{kill_after_patches} PATCHes are sent"),
            |log| log.iter().filter(|r| r.method == "PATCH").count() >= kill_after_patches,
        )
        .await;
        child.kill().await;

        let patched_before_kill: Vec<String> = patched_participants(&org);
        let rows = audit_targets(&org.audit_path()).await;
        for pid in &patched_before_kill {
            assert!(
                rows.iter()
                    .any(|r| r.participant_id.as_deref() == Some(pid) && r.status != "planned"),
                "PATCH of {pid} reached Genesys but is not in the audit log"
            );
        }
        let args: &[&str] = if rerun_plainly {
            &["apply", "desired.csv"]
        } else {
            &["apply", "--resume", "latest"]
        };
        org.run(args).await.assert_code(0);
        assert_converged(&org);
    }
}

#[tokio::test]
async fn ctrl_c_stops_sending_records_the_run_and_exits_130_resumably() {
    let config = SimConfig {
        latency: Duration::from_millis(30),
        ..TestOrg::fast_config(40)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    let child = org.spawn(&["apply", "desired.csv", "--concurrency", "2"]);
    wait_for(&org, "2 PATCHes are sent", |log| {
        log.iter().filter(|r| r.method == "PATCH").count() >= 2
    })
    .await;
    // SIGINT, as a terminal's Ctrl-C sends.
    child.signal("INT");
    child.finish().await.assert_code(130);
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter().any(|r| r.status == "planned"),
        "work was left for --resume"
    );
    assert!(
        rows.iter().all(|r| r.status != "sending"),
        "in-flight requests were finished and recorded"
    );
    org.run(&["apply", "--resume", "latest"])
        .await
        .assert_code(0);
    assert_converged(&org);
}

/// A second Ctrl-C ends the process at once with what is recorded so far: the run reads as
/// interrupted, and a resume converges.
#[tokio::test]
async fn ctrl_c_twice_ends_at_once_the_run_reads_interrupted_and_a_resume_converges() {
    let config = SimConfig {
        latency: Duration::from_millis(30),
        ..TestOrg::fast_config(40)
    };
    let org = TestOrg::start(config).await;
    org.write("desired.csv", &campaign_csv(&org));
    let mut child = org.spawn(&["apply", "desired.csv", "--concurrency", "4"]);
    wait_for(&org, "2 PATCHes are sent", |log| {
        log.iter().filter(|r| r.method == "PATCH").count() >= 2
    })
    .await;
    child.signal("INT");
    // The second signal only once the first was taken, so that the two are not merged.
    let stopping = child
        .next_stderr_line("the first SIGINT is taken (stopping)", |line| {
            line.contains("stopping")
        })
        .await;
    // It says what it waits for and until when: --timeout 30s plus --verify-timeout 10s.
    assert!(
        stopping.contains("finishing the requests already sent")
            && stopping.contains("at the latest (in 40s)"),
        "{stopping}"
    );
    child.signal("INT");
    child.finish().await.assert_code(130);

    // The second signal ends the process at once: what was on the wire may be left `sending`,
    // the run reads as interrupted (its process is gone), and a resume settles it.
    let run = org.run(&["audit", "runs", "--json"]).await;
    run.assert_code(0);
    let runs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(runs["runs"][0]["status"], "interrupted", "{runs}");
    org.run(&["apply", "--resume", "latest"])
        .await
        .assert_code(0);
    assert_converged(&org);
}

fn patched_participants(org: &TestOrg) -> Vec<String> {
    org.state()
        .request_log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == 202)
        .filter_map(|r| r.path.split('/').nth(7).map(str::to_owned))
        .collect()
}

/// A CRM's SQLite table as the desired state; result files hold the table's own rows (its
/// columns, as selected), valid input again.
#[tokio::test]
async fn sqlite_source_applies_and_its_results_are_its_own_rows_as_input() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let calls = org.live_calls();
    let mut conn = org.sqlite_source("crm.sqlite", "CREATE TABLE desired_attributes (conversation_id TEXT, purpose TEXT, key TEXT, value TEXT)").await;
    for call in &calls {
        sqlx::query("INSERT INTO desired_attributes VALUES (?1, 'customer', 'campaign', 'spring')")
            .bind(&call.id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    org.state().end_call(&calls[2].id);

    org.run(&["apply", "crm.sqlite", "--results", "out"])
        .await
        .assert_code(0);
    let succeeded = std::fs::read_to_string(org.path("out/succeeded.csv")).unwrap();
    let failed = std::fs::read_to_string(org.path("out/failed.csv")).unwrap();
    assert!(
        succeeded.starts_with("conversation_id,purpose,key,value,attrsync_status"),
        "{succeeded}"
    );
    assert_eq!(succeeded.lines().count(), 1 + 2, "{succeeded}");
    assert!(
        failed.contains(&calls[2].id) && failed.contains("skipped"),
        "{failed}"
    );
    org.run(&["plan", "out/succeeded.csv", "--detailed-exitcode"])
        .await
        .assert_code(0);
}
