//! `attrsync tag --queue ID --follow`: the real binary follows a queue of the real simulator
//! over loopback HTTP and WebSocket; every claim is judged from the simulator's own state and
//! request log and from the audit store.

use std::collections::BTreeSet;
use std::time::Duration;

use genesys_sim::{DriftConfig, FaultConfig, SimConfig};

use crate::support::{Spawned, TestOrg, audit_targets, poll, wait_until, within};

/// A fast org whose calls are all in one queue's reach: `queues` queues, `calls` live calls.
fn config(calls: usize) -> SimConfig {
    SimConfig {
        queues: 2,
        ..TestOrg::fast_config(calls)
    }
}

fn first_queue(org: &TestOrg) -> String {
    org.state().queues()[0].id.clone()
}

/// Starts `tag --queue QUEUE --follow campaign=spring` plus `extra`.
fn follow(org: &TestOrg, queue: &str, extra: &[&str]) -> Spawned {
    let mut args = vec!["tag", "--queue", queue, "--follow", "--json"];
    args.extend_from_slice(extra);
    args.push("campaign=spring");
    org.spawn(&args)
}

/// Live calls of `queue`, as the simulator holds them.
fn live_in(org: &TestOrg, queue: &str) -> Vec<genesys_sim::SimCall> {
    org.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_deref() == Some(queue))
        .collect()
}

/// Whether every live call of `queue` has `campaign` set on its customer, truly (reads may lag).
fn all_tagged(org: &TestOrg, queue: &str, value: &str) -> bool {
    live_in(org, queue).iter().all(|c| {
        c.conversation
            .participants
            .iter()
            .filter(|p| p.purpose.as_deref() == Some("customer"))
            .all(|p| p.attributes.get("campaign").map(String::as_str) == Some(value))
    })
}

fn connected(org: &TestOrg) -> bool {
    org.state().notification_status().sockets > 0
}

/// GETs of one call in the request log.
fn reads_of(org: &TestOrg, conversation_id: &str) -> usize {
    org.count_requests("GET", &format!("/conversations/calls/{conversation_id}"))
}

fn patches_of(org: &TestOrg, conversation_id: &str) -> usize {
    org.count_requests("PATCH", &format!("/conversations/calls/{conversation_id}/"))
}

/// SIGTERM, a follow's normal end; returns the exit code and the output.
pub(crate) async fn terminate(child: Spawned) -> (i32, String, String) {
    child.signal("TERM");
    let run = child.finish().await;
    (run.code, run.stdout, run.stderr)
}

#[tokio::test]
async fn calls_arriving_at_a_steady_rate_are_all_tagged_from_their_events_and_sigterm_ends_it_completed()
 {
    let org = TestOrg::start(config(6)).await;
    let queue = first_queue(&org);
    let child = follow(&org, &queue, &[]);
    wait_until("the socket connects", || connected(&org)).await;
    wait_until("the calls already queued are tagged", || {
        all_tagged(&org, &queue, "spring")
    })
    .await;

    org.state()
        .set_arrival_rate(genesys_sim::ArrivalRate::per_second(40.0));
    wait_until("20 calls arrived", || {
        org.state().arrival_status().arrived >= 20
    })
    .await;
    org.state().set_arrival_rate(genesys_sim::ArrivalRate::NONE);
    wait_until("every call of the queue is tagged", || {
        all_tagged(&org, &queue, "spring")
    })
    .await;
    let arrived: Vec<String> = org
        .state()
        .calls()
        .into_iter()
        .filter(|c| c.arrived_at_ms.is_some() && c.queue_id.as_deref() == Some(queue.as_str()))
        .map(|c| c.conversation.id)
        .collect();
    assert!(!arrived.is_empty());
    let (code, stdout, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");

    for id in &arrived {
        assert_eq!(
            reads_of(&org, id),
            0,
            "an arriving call is planned from its event and verified by the event that shows the value: {id}"
        );
        assert_eq!(patches_of(&org, id), 1, "one PATCH per call: {id}");
    }
    let rows = audit_targets(&org.audit_path()).await;
    let verified: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.status == "verified")
        .map(|r| r.conversation_id.as_str())
        .collect();
    for id in &arrived {
        assert!(
            verified.contains(id.as_str()),
            "{id} has a verified row: {rows:?}"
        );
    }
    assert!(
        rows.iter()
            .all(|r| !["planned", "sending", "applied"].contains(&r.status.as_str())),
        "nothing is left unfinished: {rows:?}"
    );
    let finished: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "run_finished")
        .expect("a run_finished event");
    assert_eq!(finished["exit_code"], 0);
    let show = org.run(&["audit", "runs", "--json"]).await;
    show.assert_code(0);
    assert!(show.stdout.contains("\"completed\""), "{}", show.stdout);
}

/// Events sent while no socket is connected are lost; the backfill after the reconnection finds
/// the calls that arrived in the gap.
#[tokio::test]
async fn a_socket_dropped_or_closed_by_the_server_mid_run_loses_no_call() {
    let org = TestOrg::start(config(2)).await;
    let queue = first_queue(&org);
    let child = follow(&org, &queue, &["--backfill-lag", "200ms"]);
    wait_until("the socket connects", || connected(&org)).await;
    wait_until("the queued calls are tagged", || {
        all_tagged(&org, &queue, "spring")
    })
    .await;

    for close in [true, false] {
        // Hold the client's next request (its check of the channel, or its listing), so that
        // calls arrive while it cannot have reconnected.
        org.state().hold_after(0);
        if close {
            org.state().announce_socket_closing();
        } else {
            org.state().drop_sockets();
        }
        wait_until("the socket is gone", || !connected(&org)).await;
        let before = org.state().notification_status().events_lost;
        for _ in 0..3 {
            org.state()
                .arrive_call(Some(&queue))
                .expect("the queue exists");
        }
        org.state().release();
        assert!(
            org.state().notification_status().events_lost >= before,
            "no socket was there to get the arrivals' events"
        );
        wait_until("the socket reconnects", || connected(&org)).await;
        wait_until("every call, those of the gap too, is tagged", || {
            all_tagged(&org, &queue, "spring")
        })
        .await;
    }
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "a reconnection is not a crash: {stderr}"
    );
}

/// Without an event for an attribute change, a read verifies it; with one, no read is sent.
#[tokio::test]
async fn the_verification_read_is_sent_only_when_no_event_shows_the_change() {
    let org = TestOrg::start(SimConfig {
        attribute_events: false,
        ..config(0)
    })
    .await;
    let queue = first_queue(&org);
    let child = follow(&org, &queue, &["--verify-timeout", "300ms"]);
    wait_until("the socket connects", || connected(&org)).await;
    let id = org.state().arrive_call(Some(&queue)).unwrap();
    wait_until("the call is tagged", || all_tagged(&org, &queue, "spring")).await;
    wait_until("its change is verified by a read", || {
        reads_of(&org, &id) >= 1
    })
    .await;
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(patches_of(&org, &id), 1);
    let rows = audit_targets(&org.audit_path()).await;
    let row = rows.iter().find(|r| r.conversation_id == id).unwrap();
    assert_eq!(row.status, "verified", "{rows:?}");
}

/// A flow overwrites the key after every write: attrsync re-applies once, then records drift
/// and leaves the call alone; the follow then exits 3.
#[tokio::test]
async fn a_write_overwritten_by_a_flow_is_reapplied_once_then_reported_as_drift() {
    let org = TestOrg::start(config(0)).await;
    org.state().set_faults(FaultConfig {
        drift: Some(DriftConfig {
            key: "campaign".into(),
            value: "flow-says-summer".into(),
            rate: 1.0,
        }),
        ..FaultConfig::default()
    });
    let queue = first_queue(&org);
    // The flow puts back the value the re-application saw before: only a read after the
    // timeout can tell, so keep it short.
    let child = follow(&org, &queue, &["--verify-timeout", "1s"]);
    wait_until("the socket connects", || connected(&org)).await;
    let id = org.state().arrive_call(Some(&queue)).unwrap();
    wait_until("the change and its one re-application are sent", || {
        patches_of(&org, &id) >= 2
    })
    .await;
    // The first change shows as verified (its event came before the flow's) or as drift (the
    // flow's came first): either way the re-application's row ends as drift.
    let ended = |rows: &[crate::support::AuditRow]| {
        let statuses: Vec<&str> = rows
            .iter()
            .filter(|r| r.conversation_id == id)
            .map(|r| r.status.as_str())
            .collect();
        statuses.len() == 2
            && ["verified", "drift"].contains(&statuses[0])
            && statuses[1] == "drift"
    };
    let audit = org.audit_path();
    poll("the re-application is recorded as drift", || async {
        let rows = audit_targets(&audit).await;
        if ended(&rows) {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    // Another change of the call (an agent answers) brings a new event: still left alone.
    org.state().answer_call(&id);
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 3, "drift is a partial result: {stderr}");
    assert_eq!(patches_of(&org, &id), 2, "attrsync does not fight the flow");
}

#[tokio::test]
async fn a_second_follow_of_the_same_queue_on_one_store_is_refused_with_75() {
    let org = TestOrg::start(config(0)).await;
    let queues: Vec<String> = org.state().queues().into_iter().map(|q| q.id).collect();
    // The first follows both queues; the second wants one of them.
    let child = follow(&org, &queues[0], &["--queue", &queues[1]]);
    wait_until("the socket connects", || connected(&org)).await;
    let second = org
        .run(&["tag", "--queue", &queues[1], "--follow", "campaign=spring"])
        .await;
    second.assert_code(75);
    assert!(second.stderr.contains("follows queue"), "{}", second.stderr);
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
}

/// Stopped with calls queued behind `--concurrency 1`: those seen but not sent are recorded as
/// `unprocessed`, nothing stays `sending`, and secrets appear nowhere, even at -vv.
#[tokio::test]
async fn sigterm_records_unsent_calls_as_unprocessed_and_no_secret_is_in_any_output() {
    let org = TestOrg::start(SimConfig {
        latency: Duration::from_millis(100),
        ..config(0)
    })
    .await;
    let queue = first_queue(&org);
    let metrics = org.path("follow.prom");
    let metrics_arg = metrics.to_str().unwrap().to_owned();
    let child = follow(
        &org,
        &queue,
        &["-vv", "--concurrency", "1", "--metrics-file", &metrics_arg],
    );
    wait_until("the socket connects", || connected(&org)).await;
    for _ in 0..8 {
        org.state().arrive_call(Some(&queue)).unwrap();
    }
    wait_until("the first change is sent", || {
        org.count_requests("PATCH", "/conversations/calls/") >= 1
    })
    .await;
    let (code, stdout, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter().any(|r| r.status == "unprocessed"),
        "calls still queued are unprocessed: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| !["planned", "sending", "applied"].contains(&r.status.as_str())),
        "{rows:?}"
    );
    let text = std::fs::read_to_string(&metrics).expect("the metrics file is written");
    assert!(text.contains("attrsync_follow_calls_seen_total"), "{text}");
    assert!(text.contains("attrsync_follow_exit_code 0"), "{text}");
    let (_, secret) = org.sim.demo_credentials();
    for token in org.state().issued_tokens() {
        assert!(
            !stderr.contains(&token) && !stdout.contains(&token),
            "a token leaked"
        );
    }
    assert!(
        !stderr.contains(&secret) && !stdout.contains(&secret),
        "the secret leaked"
    );
}

/// `--listen`: `/metrics` serves the follow's counters in the Prometheus format and `/healthz`
/// says it is alive, for as long as the follow runs.
#[tokio::test]
async fn listen_serves_the_follows_metrics_and_health() {
    let org = TestOrg::start(config(2)).await;
    let queue = first_queue(&org);
    // A free port, released for the follow to bind.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = follow(&org, &queue, &["--listen", &addr.to_string()]);
    wait_until("the socket connects", || connected(&org)).await;
    wait_until("every live call is tagged", || {
        all_tagged(&org, &queue, "spring")
    })
    .await;
    // reqwest is built without a default TLS provider (as attrsync is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    // Served from the first report on (the follow reports at once, then every 10 s).
    let metrics = poll("/metrics serves the follow's counters", || async {
        match http.get(format!("{base}/metrics")).send().await {
            Ok(answer) if answer.status() == 200 => {
                let metrics = answer.text().await.unwrap();
                if metrics.contains("attrsync_follow_") {
                    Ok(metrics)
                } else {
                    Err(metrics)
                }
            }
            Ok(answer) => Err(format!("HTTP {}", answer.status())),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    assert!(metrics.contains("attrsync_follow_calls_seen"), "{metrics}");
    let health = within(
        "/healthz answers",
        http.get(format!("{base}/healthz")).send(),
    )
    .await
    .unwrap();
    assert_eq!(health.status(), 200);
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
}
