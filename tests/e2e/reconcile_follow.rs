//! `attrsync reconcile SOURCE --follow --queue Q`: the real binary follows a queue of the real
//! simulator and keeps its live calls equal to a SQLite table that the test writes while it
//! runs, as a CRM would. Every claim is judged from the simulator's state and request log and
//! from the audit store.

use std::collections::BTreeMap;

use genesys_sim::SimConfig;
use sqlx::sqlite::SqliteConnection;

use crate::follow::terminate;
use crate::support::{Spawned, TestOrg, audit_targets, poll, wait_until};

fn config() -> SimConfig {
    SimConfig {
        queues: 2,
        ..TestOrg::fast_config(0)
    }
}

/// The CRM's table, empty ([the SQLite schema] of the README).
async fn crm_table(org: &TestOrg) -> SqliteConnection {
    org.sqlite_source(
        "crm.sqlite",
        "CREATE TABLE desired_attributes (conversation_id TEXT NOT NULL, purpose TEXT, \
         participant_id TEXT, user_id TEXT, key TEXT NOT NULL, value TEXT)",
    )
    .await
}

/// Replaces the table's rows with `rows` (conversation, key, value; the customer) in one
/// committed transaction: one new version of the source.
async fn write_version(conn: &mut SqliteConnection, rows: &[(&str, &str, &str)]) {
    use sqlx::Connection;
    let mut tx = conn.begin().await.expect("a transaction");
    sqlx::query("DELETE FROM desired_attributes")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (conversation_id, key, value) in rows {
        sqlx::query(
            "INSERT INTO desired_attributes (conversation_id, purpose, key, value) \
             VALUES (?1, 'customer', ?2, ?3)",
        )
        .bind(conversation_id)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.expect("the version is committed");
}

fn follow(org: &TestOrg, queue: &str) -> Spawned {
    org.spawn(&[
        "reconcile",
        "crm.sqlite",
        "--follow",
        "--queue",
        queue,
        "--poll-interval",
        "50ms",
        "--metrics-file",
        "follow.prom",
    ])
}

/// The customer's value of `key` on a call, as the simulator holds it.
fn customer_value(org: &TestOrg, conversation_id: &str, key: &str) -> Option<String> {
    let call = org.state().call(conversation_id)?;
    call.conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .and_then(|p| p.attributes.get(key).cloned())
}

async fn wait_for_value(org: &TestOrg, conversation_id: &str, key: &str, value: &str) {
    poll(&format!("{conversation_id} has {key}={value}"), || {
        let seen = customer_value(org, conversation_id, key);
        std::future::ready(if seen.as_deref() == Some(value) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        })
    })
    .await;
}

fn reads_of(org: &TestOrg, conversation_id: &str) -> usize {
    org.count_requests("GET", &format!("/conversations/calls/{conversation_id}"))
}

fn patches_of(org: &TestOrg, conversation_id: &str) -> usize {
    org.count_requests("PATCH", &format!("/conversations/calls/{conversation_id}/"))
}

/// PATCHes and reads of each call, in the request log now.
fn requests(org: &TestOrg, calls: &[&str]) -> BTreeMap<String, (usize, usize)> {
    calls
        .iter()
        .map(|id| ((*id).to_owned(), (patches_of(org, id), reads_of(org, id))))
        .collect()
}

fn connected(org: &TestOrg) -> bool {
    org.state().notification_status().sockets > 0
}

/// A metric's value in the follow's metrics file.
fn metric(org: &TestOrg, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(org.path("follow.prom")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
}

/// Calls queued before the follow starts are tagged from the backfill listing as their rows
/// say; then each committed version of the table is applied to exactly the calls whose desired
/// values it changed: a new value, a new row for a call that arrived while the follow ran
/// (planned from its event, never read), a new row for a listed call. A call whose values did
/// not change and a call whose row was removed get no request at all.
#[tokio::test]
async fn each_committed_version_of_a_sqlite_table_is_applied_to_exactly_the_calls_it_changes() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let arrive = || {
        org.state()
            .arrive_call(Some(&queue))
            .expect("the queue exists")
    };
    let (a, b, c, d) = (arrive(), arrive(), arrive(), arrive());
    let mut crm = crm_table(&org).await;
    write_version(
        &mut crm,
        &[
            (&a, "campaign", "spring"),
            (&b, "campaign", "spring"),
            (&c, "campaign", "spring"),
        ],
    )
    .await;

    let child = follow(&org, &queue);
    wait_until("the socket connects", || connected(&org)).await;
    for id in [&a, &b, &c] {
        wait_for_value(&org, id, "campaign", "spring").await;
    }
    // The listing found the four calls; each call with rows is read once and PATCHed once,
    // the call without one is not read.
    let all = [a.as_str(), b.as_str(), c.as_str(), d.as_str()];
    let start = requests(&org, &all);
    assert_eq!(
        start,
        BTreeMap::from([
            (a.clone(), (1, 1)),
            (b.clone(), (1, 1)),
            (c.clone(), (1, 1)),
            (d.clone(), (0, 0)),
        ])
    );

    // A call arrives while the follow runs; its id is known only now.
    let e = arrive();
    // One version: B gets a new key, D and E rows of their own, C's row is removed, A's
    // stays as it was.
    write_version(
        &mut crm,
        &[
            (&a, "campaign", "spring"),
            (&b, "campaign", "spring"),
            (&b, "tier", "gold"),
            (&d, "campaign", "summer"),
            (&e, "campaign", "summer"),
        ],
    )
    .await;
    wait_for_value(&org, &b, "tier", "gold").await;
    wait_for_value(&org, &d, "campaign", "summer").await;
    wait_for_value(&org, &e, "campaign", "summer").await;
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");

    let all = [a.as_str(), b.as_str(), c.as_str(), d.as_str(), e.as_str()];
    assert_eq!(
        requests(&org, &all),
        BTreeMap::from([
            // Unchanged desired values: no request.
            (a.clone(), (1, 1)),
            // Planned again from its latest event: one PATCH, no read.
            (b.clone(), (2, 1)),
            // Its row removed: its keys are no longer managed, nothing is written.
            (c.clone(), (1, 1)),
            // Listed but never seen in an event: read once, then PATCHed.
            (d.clone(), (1, 1)),
            // Seen in its arrival event: planned from it, never read.
            (e.clone(), (1, 0)),
        ]),
        "{stderr}"
    );
    assert_eq!(customer_value(&org, &c, "tier"), None);

    let rows = audit_targets(&org.audit_path()).await;
    let mut verified: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.status, "verified", "{rows:?}");
        *verified.entry(row.conversation_id.as_str()).or_default() += 1;
    }
    assert_eq!(
        verified,
        BTreeMap::from([
            (a.as_str(), 1),
            (b.as_str(), 2),
            (c.as_str(), 1),
            (d.as_str(), 1),
            (e.as_str(), 1),
        ]),
        "one verified target per write, none for a call that was not written"
    );
    assert_eq!(
        metric(&org, "attrsync_follow_source_versions_applied_total"),
        Some(1.0)
    );
    let run = crate::support::latest_run(&org).await;
    assert_eq!(run["command"], "reconcile", "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["options"]["follow"], true, "{run}");
    assert_eq!(run["options"]["poll_interval"], "50ms", "{run}");
    assert_eq!(run["options"]["queues"][0], queue.as_str(), "{run}");
}

/// A version that does not validate is refused whole, each problem with its file and row; the
/// follow goes on with the version before it (an overwrite of a call is still put back to it),
/// and the next valid version is applied. SIGTERM ends the follow normally.
#[tokio::test]
async fn an_invalid_version_is_refused_with_its_rows_and_the_previous_one_stays_in_force() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let a = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[(&a, "campaign", "spring")]).await;
    let mut child = follow(&org, &queue);
    wait_until("the socket connects", || connected(&org)).await;
    wait_for_value(&org, &a, "campaign", "spring").await;

    // A new value for A, and a row whose conversation id is no UUID.
    write_version(
        &mut crm,
        &[(&a, "campaign", "summer"), ("not-a-call", "campaign", "x")],
    )
    .await;
    let refused = child
        .next_stderr_line("the version is refused", |line| line.contains("is refused"))
        .await;
    assert!(refused.contains("crm.sqlite"), "{refused}");
    let problem = child
        .next_stderr_line("the problem with its row", |line| {
            line.contains("crm.sqlite:row 2")
        })
        .await;
    assert!(problem.contains("not-a-call"), "{problem}");

    // The earlier version is in force: a flow's overwrite is put back to spring.
    let customer = org
        .state()
        .call(&a)
        .unwrap()
        .conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .unwrap()
        .id
        .clone();
    assert!(org.state().flow_sets_attributes(
        &a,
        &customer,
        [("campaign".to_owned(), "flow".to_owned())].into()
    ));
    wait_until("the overwrite is put back to the version in force", || {
        patches_of(&org, &a) == 2
    })
    .await;
    wait_for_value(&org, &a, "campaign", "spring").await;

    // Fixed: the next version is applied.
    write_version(&mut crm, &[(&a, "campaign", "summer")]).await;
    wait_for_value(&org, &a, "campaign", "summer").await;

    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "SIGTERM is a follow's normal end: {stderr}");
    assert_eq!(patches_of(&org, &a), 3, "{stderr}");
    assert!(
        stderr.contains("1 new source versions in force, 1 refused"),
        "{stderr}"
    );
    assert_eq!(
        metric(&org, "attrsync_follow_source_versions_refused_total"),
        Some(1.0)
    );
    assert_eq!(metric(&org, "attrsync_follow_exit_code"), Some(0.0));
    let run = crate::support::latest_run(&org).await;
    assert_eq!(run["status"], "completed", "{run}");
}

/// `--follow` with `--once` or `--every`, or without `--queue`, is a usage error found before
/// the source is read.
#[tokio::test]
async fn follow_with_a_schedule_or_without_a_queue_is_a_usage_error_before_anything_is_read() {
    let org = TestOrg::start(config()).await;
    for args in [
        &[
            "reconcile",
            "missing.sqlite",
            "--follow",
            "--once",
            "--queue",
            "Sales",
        ][..],
        &[
            "reconcile",
            "missing.sqlite",
            "--follow",
            "--every",
            "5m",
            "--queue",
            "Sales",
        ],
        &["reconcile", "missing.sqlite", "--follow"],
        &["reconcile", "missing.sqlite", "--once", "--queue", "Sales"],
    ] {
        let run = org.run(args).await;
        run.assert_code(64);
        assert!(!run.stderr.contains("missing.sqlite"), "{}", run.stderr);
    }
    assert!(org.state().request_log().is_empty());
    assert!(!org.audit_path().exists());
}

/// A CSV export renamed into place, or rewritten, is a new version; the same bytes again (a
/// touch, a re-export of nothing new) are not.
#[tokio::test]
async fn a_csv_export_renamed_into_place_or_rewritten_is_a_new_version_and_the_same_bytes_are_not()
{
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let a = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let b = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let export = |rows: &[(&str, &str)]| {
        let mut csv = String::from("conversation_id,campaign\n");
        for (id, campaign) in rows {
            csv.push_str(&format!("{id},{campaign}\n"));
        }
        csv
    };
    // As an export job does: a new file, renamed over the old one.
    let rename_into_place = |csv: &str| {
        org.write("desired.csv.new", csv);
        std::fs::rename(org.path("desired.csv.new"), org.path("desired.csv")).unwrap();
    };
    let first = export(&[(&a, "spring")]);
    org.write("desired.csv", &first);
    // The watch's debug line says when it saw the file change but not its bytes.
    let mut child = crate::support::spawn(
        org.command(&[
            "reconcile",
            "desired.csv",
            "--follow",
            "--queue",
            &queue,
            "--poll-interval",
            "50ms",
        ])
        .env("RUST_LOG", "warn,engine::follow::source=debug"),
    );
    wait_for_value(&org, &a, "campaign", "spring").await;

    rename_into_place(&first);
    child
        .next_stderr_line("the same bytes are seen and are no new version", |line| {
            line.contains("its bytes did not: no new version")
        })
        .await;
    rename_into_place(&export(&[(&a, "spring"), (&b, "spring")]));
    wait_for_value(&org, &b, "campaign", "spring").await;
    child
        .next_stderr_line("the renamed export is in force", |line| {
            line.contains(
                "a new version of desired.csv is in force (2 rows): 1 live call concerned",
            )
        })
        .await;
    std::fs::write(
        org.path("desired.csv"),
        export(&[(&a, "summer"), (&b, "spring")]),
    )
    .unwrap();
    wait_for_value(&org, &a, "campaign", "summer").await;

    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr
            .matches("a new version of desired.csv is in force")
            .count(),
        2,
        "the same bytes renamed into place are no new version: {stderr}"
    );
    assert_eq!(
        requests(&org, &[a.as_str(), b.as_str()]),
        BTreeMap::from([(a.clone(), (2, 1)), (b.clone(), (1, 1))]),
        "{stderr}"
    );
}

/// The poll interval comes from `ATTRSYNC_POLL_INTERVAL` when no flag gives it; a bad value is
/// refused naming the variable, before the source is read or anything is sent.
#[tokio::test]
async fn the_poll_interval_comes_from_the_environment_and_a_bad_one_is_refused_first() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let run = crate::support::output(
        org.command(&["reconcile", "missing.sqlite", "--follow", "--queue", &queue])
            .env("ATTRSYNC_POLL_INTERVAL", "1ms"),
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("ATTRSYNC_POLL_INTERVAL") && run.stderr.contains("10ms"),
        "{}",
        run.stderr
    );
    assert!(org.state().request_log().is_empty());
    assert!(!org.audit_path().exists());

    let a = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[(&a, "campaign", "spring")]).await;
    let child = crate::support::spawn(
        org.command(&["reconcile", "crm.sqlite", "--follow", "--queue", &queue])
            .env("ATTRSYNC_POLL_INTERVAL", "30ms"),
    );
    wait_for_value(&org, &a, "campaign", "spring").await;
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    let run = crate::support::latest_run(&org).await;
    assert_eq!(run["options"]["poll_interval"], "30ms", "{run}");
}

/// A version that concerns a call whose job is under way (here: the read that verifies its
/// previous change is held by the simulator) is applied once that job ends: the call ends with
/// the newest values, each version written once.
#[tokio::test]
async fn a_version_that_comes_while_its_call_is_being_worked_on_is_applied_after() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let a = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[(&a, "campaign", "spring")]).await;
    let mut child = org.spawn(&[
        "reconcile",
        "crm.sqlite",
        "--follow",
        "--queue",
        &queue,
        "--poll-interval",
        "50ms",
        "--verify-via",
        "get",
    ]);
    wait_for_value(&org, &a, "campaign", "spring").await;
    // Listed: read, PATCHed, read back.
    wait_until("spring is verified by a read", || reads_of(&org, &a) == 2).await;

    // The next version's PATCH goes through; the read that verifies it is held.
    org.state().hold_after(1);
    write_version(&mut crm, &[(&a, "campaign", "summer")]).await;
    org.wait_until_holding().await;
    assert_eq!(patches_of(&org, &a), 2);
    write_version(&mut crm, &[(&a, "campaign", "autumn")]).await;
    for version in ["summer", "autumn"] {
        child
            .next_stderr_line(&format!("the {version} version is in force"), |line| {
                line.contains("is in force (1 row): 1 live call concerned")
            })
            .await;
    }
    org.state().release();
    wait_for_value(&org, &a, "campaign", "autumn").await;
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(patches_of(&org, &a), 3, "one PATCH per version: {stderr}");
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.len() == 3 && rows.iter().all(|r| r.status == "verified"),
        "{rows:?}"
    );
}

/// `--listen` serves the follow's metrics, its source versions among them, and its health.
#[tokio::test]
async fn listen_serves_the_metrics_and_health_of_a_reconcile_follow() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let a = org
        .state()
        .arrive_call(Some(&queue))
        .expect("the queue exists");
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[(&a, "campaign", "spring")]).await;
    // A free port, released for the follow to bind.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let child = org.spawn(&[
        "reconcile",
        "crm.sqlite",
        "--follow",
        "--queue",
        &queue,
        "--listen",
        &addr,
    ]);
    wait_for_value(&org, &a, "campaign", "spring").await;
    // reqwest is built without a default TLS provider (as attrsync is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let metrics = poll("/metrics serves the follow's counters", || async {
        match http.get(format!("http://{addr}/metrics")).send().await {
            Ok(answer) if answer.status() == 200 => {
                let metrics = answer.text().await.unwrap();
                if metrics.contains("attrsync_follow_source_versions_applied_total") {
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
    assert!(
        metrics.contains("attrsync_follow_source_versions_refused_total 0\n"),
        "{metrics}"
    );
    let health = crate::support::within(
        "/healthz answers",
        http.get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .unwrap();
    assert_eq!(health.status(), 200);
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");
}

/// A first version that does not validate ends the command with its problems, before anything
/// is sent or recorded.
#[tokio::test]
async fn an_invalid_first_version_ends_the_follow_before_anything_is_sent() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[("not-a-call", "campaign", "spring")]).await;
    let run = org
        .run(&["reconcile", "crm.sqlite", "--follow", "--queue", &queue])
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("crm.sqlite:row 1") && run.stderr.contains("not-a-call"),
        "{}",
        run.stderr
    );
    assert!(org.state().request_log().is_empty());
    assert!(!org.audit_path().exists());
}

/// `tag --follow` and `reconcile --follow` of one queue on one store would fight over its
/// calls: they share the queue's lock, and the second exits 75 having sent nothing.
#[tokio::test]
async fn a_reconcile_follow_of_a_queue_a_tag_follow_holds_exits_75() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[]).await;
    let tag = org.spawn(&["tag", "--queue", &queue, "--follow", "campaign=spring"]);
    wait_until("the tag follow's socket connects", || connected(&org)).await;
    let patches_before = org.count_requests("PATCH", "/conversations/calls/");
    let second = org
        .run(&["reconcile", "crm.sqlite", "--follow", "--queue", &queue])
        .await;
    second.assert_code(75);
    assert!(second.stderr.contains("follows queue"), "{}", second.stderr);
    assert_eq!(
        org.count_requests("PATCH", "/conversations/calls/"),
        patches_before
    );
    let (code, _, stderr) = terminate(tag).await;
    assert_eq!(code, 0, "{stderr}");
}

/// `reconcile --follow` is a reconcile: while it runs, a `reconcile --once` on the same store
/// (another desired state for the same calls) exits 75 having sent nothing, as it would beside
/// a `reconcile --every`.
#[tokio::test]
async fn a_reconcile_once_while_a_reconcile_follow_holds_the_store_exits_75() {
    let org = TestOrg::start(config()).await;
    let queue = org.state().queues()[0].id.clone();
    let mut crm = crm_table(&org).await;
    write_version(&mut crm, &[]).await;
    let following = follow(&org, &queue);
    wait_until("the reconcile follow's socket connects", || connected(&org)).await;
    let patches_before = org.count_requests("PATCH", "/conversations/calls/");
    let second = org.run(&["reconcile", "crm.sqlite", "--once"]).await;
    second.assert_code(75);
    assert!(
        second
            .stderr
            .contains("another `attrsync reconcile` is working on this audit store"),
        "{}",
        second.stderr
    );
    assert_eq!(
        org.count_requests("PATCH", "/conversations/calls/"),
        patches_before
    );
    let (code, _, stderr) = terminate(following).await;
    assert_eq!(code, 0, "{stderr}");
}

/// A campaign defined by numbers, followed: the campaign's dialled number tags every call of the
/// queue, a contact list's customer number adds a tier. Calls queued before the follow are
/// matched from the listing's numbers (a call with neither number is not read), arriving calls
/// from their arrival events (never read); a new version of the list concerns exactly the
/// followed call whose number got a new row, planned again from its latest event.
#[tokio::test]
async fn rows_by_number_follow_arriving_calls_and_a_new_version_of_the_list() {
    use genesys_sim::ArrivalNumbers;
    let org = TestOrg::start(config()).await;
    let queues = org.state().queues();
    let (queue, campaign_number) = (queues[0].id.clone(), queues[0].number.clone());
    let arrive = |queue: &str, customer: &str| {
        org.state()
            .arrive_call_with(
                Some(queue),
                &ArrivalNumbers {
                    customer_number: Some(customer.to_owned()),
                    dialed_number: None,
                },
            )
            .expect("the queue exists")
    };
    // Before the follow: A dialled the campaign's number (its queue's).
    let a = arrive(&queue, "+15551230009");

    let mut crm = org
        .sqlite_source(
            "crm.sqlite",
            "CREATE TABLE desired_attributes (customer_number TEXT, dialed_number TEXT, \
         key TEXT NOT NULL, value TEXT)",
        )
        .await;
    let insert = |customer: Option<&str>, dialed: Option<&str>, key: &str, value: &str| {
        sqlx::query("INSERT INTO desired_attributes VALUES (?1, ?2, ?3, ?4)")
            .bind(customer.map(str::to_owned))
            .bind(dialed.map(str::to_owned))
            .bind(key.to_owned())
            .bind(value.to_owned())
    };
    insert(None, Some(&campaign_number), "campaign", "spring")
        .execute(&mut crm)
        .await
        .unwrap();
    insert(Some("+15551230001"), None, "tier", "gold")
        .execute(&mut crm)
        .await
        .unwrap();

    let child = org.spawn(&[
        "reconcile",
        "crm.sqlite",
        "--follow",
        "--queue",
        &queue,
        "--poll-interval",
        "50ms",
        "--default-region",
        "US",
    ]);
    wait_until("the socket connects", || connected(&org)).await;
    wait_for_value(&org, &a, "campaign", "spring").await;

    // Arriving: B is on the contact list, C is not (yet).
    let b = arrive(&queue, "+15551230001");
    let c = arrive(&queue, "+15551230002");
    wait_for_value(&org, &b, "tier", "gold").await;
    wait_for_value(&org, &b, "campaign", "spring").await;
    wait_for_value(&org, &c, "campaign", "spring").await;

    // The CRM adds C's customer to the list, written nationally.
    insert(Some("(555) 123-0002"), None, "tier", "silver")
        .execute(&mut crm)
        .await
        .unwrap();
    wait_for_value(&org, &c, "tier", "silver").await;
    let (code, _, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");

    assert_eq!(
        requests(&org, &[a.as_str(), b.as_str(), c.as_str()]),
        BTreeMap::from([
            // Listed with its numbers: read once, PATCHed once.
            (a.clone(), (1, 1)),
            // From its arrival event: one PATCH with both rows' keys, no read.
            (b.clone(), (1, 0)),
            // From its arrival event, then from its latest event for the new version.
            (c.clone(), (2, 0)),
        ]),
        "{stderr}"
    );
    assert_eq!(customer_value(&org, &a, "tier"), None);
}
