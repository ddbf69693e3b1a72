//! Unit tests of the audit store against real SQLite files in temporary directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use tempfile::TempDir;

use super::process::{current_host, current_pid};
use super::*;

const A_LONG_TIME: Duration = Duration::from_secs(3600);

async fn open_fresh() -> (TempDir, AuditStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    // A missing parent directory must be created.
    let store = AuditStore::open(dir.path().join("state").join("audit.db"))
        .await
        .expect("open store");
    (dir, store)
}

/// An independent pool on the same file: sees only what was committed.
async fn second_pool(path: &Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .expect("second pool")
}

fn new_run(command: &str) -> NewRun {
    NewRun {
        command: command.to_owned(),
        source_path: Some("desired.csv".to_owned()),
        source_sha256: Some("ab".repeat(32)),
        options: serde_json::json!({ "concurrency": 8, "rate": "300/min" }),
        tool_version: "0.1.0".to_owned(),
        operator: Some("ops".to_owned()),
        rate_per_minute: Some(300.0),
        reverts: None,
    }
}

fn new_target(seq: u32, conversation: &str, desired: &[(&str, &str)]) -> NewTarget {
    NewTarget {
        seq,
        conversation_id: conversation.to_owned(),
        participant_id: Some(format!("participant-{seq}")),
        selector: "purpose=customer".to_owned(),
        purpose: Some("customer".to_owned()),
        input_lines: format!("desired.csv:{}", seq + 2),
        status: TargetStatus::Planned,
        reason: None,
        before: desired
            .iter()
            .map(|(key, _)| ((*key).to_owned(), None))
            .collect(),
        desired: desired
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

fn numbered_targets(count: u32) -> Vec<NewTarget> {
    (0..count)
        .map(|seq| {
            new_target(
                seq,
                &format!("conversation-{seq}"),
                &[("campaign", "spring")],
            )
        })
        .collect()
}

/// A pid that no process can have: Linux allocates pids strictly below pid_max.
fn dead_pid() -> i64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(i64::from(i32::MAX))
}

async fn set_run_holder(store: &AuditStore, run: &RunId, host: &str, pid: i64) {
    sqlx::query("UPDATE runs SET host = ?1, pid = ?2 WHERE id = ?3")
        .bind(host)
        .bind(pid)
        .bind(run.as_str())
        .execute(store.pool())
        .await
        .expect("update run holder");
}

#[tokio::test]
async fn migrations_apply_on_a_fresh_file_and_reopening_is_idempotent() {
    let (dir, store) = open_fresh().await;
    let path = store.path().to_path_buf();
    assert!(path.starts_with(dir.path()) && path.exists());
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    store.close().await.expect("close");

    let reopened = AuditStore::open(&path).await.expect("reopen");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(reopened.pool())
        .await
        .expect("count migrations");
    let on_disk = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations"))
        .expect("migrations dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
        })
        .count();
    assert_eq!(usize::try_from(applied).ok(), Some(on_disk));
    let kept = reopened.resolve_run(LATEST).await.expect("run kept");
    assert_eq!(kept, run);
}

#[tokio::test]
async fn connections_use_wal_full_sync_and_foreign_keys() {
    let (_dir, store) = open_fresh().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .expect("journal_mode");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .expect("synchronous");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .expect("foreign_keys");
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "FULL");
    assert_eq!(foreign_keys, 1);
}

#[tokio::test]
async fn a_revert_names_its_run_and_the_run_lists_its_reverts_with_their_counts() {
    let (_dir, store) = open_fresh().await;
    let original = store.begin_run(new_run("apply")).await.expect("begin run");
    let revert = store
        .begin_run(NewRun {
            reverts: Some(original.clone()),
            source_path: Some(format!("run:{original}")),
            ..new_run("revert")
        })
        .await
        .expect("begin revert");
    let mut targets = vec![
        new_target(0, "conversation-a", &[("tier", "silver")]),
        new_target(1, "conversation-b", &[("tier", "silver")]),
    ];
    targets[0].status = TargetStatus::Unchanged;
    targets[1].status = TargetStatus::Stale;
    store
        .insert_targets(&revert, &targets)
        .await
        .expect("insert");

    assert_eq!(
        store.run(&revert).await.expect("revert").reverts,
        Some(original.clone())
    );
    assert_eq!(store.run(&original).await.expect("original").reverts, None);
    let reverts = store.reverted_by(&original).await.expect("reverted by");
    assert_eq!(reverts.len(), 1);
    assert_eq!(reverts[0].run.id, revert);
    assert_eq!(reverts[0].counts.unchanged, 1);
    assert_eq!(reverts[0].counts.stale, 1);
    assert!(store.reverted_by(&revert).await.expect("none").is_empty());
}

#[tokio::test]
async fn a_run_round_trips_through_begin_insert_outcome_requests_and_finish() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let mut targets = vec![
        new_target(
            0,
            "conversation-a",
            &[("campaign", "spring"), ("tier", "gold")],
        ),
        new_target(1, "conversation-b", &[("campaign", "spring")]),
    ];
    targets[1].status = TargetStatus::Skipped;
    targets[1].reason = Some("conversation ended".to_owned());
    let ids = store.insert_targets(&run, &targets).await.expect("insert");

    store.mark_sending(&ids[..1]).await.expect("mark sending");
    store
        .record_outcome(
            ids[0],
            Outcome {
                status: Some(TargetStatus::Applied),
                http_status: Some(202),
                correlation_id: Some("corr-1".to_owned()),
                attempts: Some(2),
                ..Outcome::default()
            },
        )
        .await
        .expect("applied");
    let observed: ObservedValues = BTreeMap::from([
        ("campaign".to_owned(), Some("spring".to_owned())),
        ("tier".to_owned(), Some("gold".to_owned())),
    ]);
    store
        .record_outcome(
            ids[0],
            Outcome {
                observed: Some(observed.clone()),
                ..Outcome::status(TargetStatus::Verified)
            },
        )
        .await
        .expect("verified");
    let request = RequestRow {
        run_id: run.clone(),
        at: UnixMillis::from_millis(1_000),
        method: "PATCH".to_owned(),
        route:
            "/api/v2/conversations/calls/{conversationId}/participants/{participantId}/attributes"
                .to_owned(),
        conversation_id: Some("conversation-a".to_owned()),
        participant_id: Some("participant-0".to_owned()),
        status: Some(429),
        latency_ms: 40,
        attempt: 1,
        retry_after_ms: Some(1_000),
        error_class: Some("throttled".to_owned()),
        correlation_id: Some("corr-0".to_owned()),
        token_slot: Some(0),
    };
    let retried = RequestRow {
        at: UnixMillis::from_millis(2_100),
        status: Some(202),
        attempt: 2,
        retry_after_ms: None,
        error_class: None,
        correlation_id: Some("corr-1".to_owned()),
        ..request.clone()
    };
    store.record_requests(vec![retried.clone(), request.clone()]);
    store
        .finish_run(&run, RunStatus::Completed, Some(0))
        .await
        .expect("finish");

    let summary = store.run_summary(&run).await.expect("summary");
    assert_eq!(summary.run.status, RunStatus::Completed);
    assert_eq!(summary.run.exit_code, Some(0));
    assert!(summary.run.finished_at >= Some(summary.run.started_at));
    assert_eq!(summary.run.command, "apply");
    assert_eq!(summary.run.options["concurrency"], 8);
    assert_eq!(summary.run.rate_per_minute, Some(300.0));
    assert_eq!(summary.run.host, current_host());
    assert_eq!(summary.run.pid, current_pid());
    assert_eq!((summary.counts.verified, summary.counts.skipped), (1, 1));
    assert_eq!(summary.counts.total(), 2);
    assert_eq!(summary.requests.total, 2);
    assert_eq!(summary.requests.throttled, 1);
    assert_eq!(summary.requests.retries, 1);
    assert_eq!(
        summary.requests.first_at,
        Some(UnixMillis::from_millis(1_000))
    );

    let rows = store
        .list_targets(&TargetFilter {
            run: Some(run.clone()),
            ..TargetFilter::default()
        })
        .await
        .expect("targets");
    let verified = &rows[0];
    assert_eq!(verified.status, TargetStatus::Verified);
    assert_eq!(
        verified.http_status,
        Some(202),
        "kept from the PATCH outcome"
    );
    assert_eq!(verified.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(verified.attempts, 2);
    assert_eq!(verified.observed.as_ref(), Some(&observed));
    assert_eq!(verified.desired, targets[0].desired);
    assert_eq!(verified.before, targets[0].before);
    assert!(verified.sent_at.is_some());
    assert_eq!(rows[1].reason.as_deref(), Some("conversation ended"));

    assert_eq!(
        store.request_timeline(&run).await.expect("timeline"),
        vec![request, retried],
        "time order"
    );
    let runs = store.list_runs(10).await.expect("list runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].counts, summary.counts);
    assert_eq!(runs[0].requests, summary.requests);
}

#[tokio::test]
async fn resolving_a_target_records_its_participant_purpose_and_before_values() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    assert_eq!(store.max_seq(&run).await.expect("empty"), None);
    let mut planned = new_target(7, "conversation-a", &[("campaign", "spring")]);
    planned.participant_id = None;
    planned.purpose = None;
    let ids = store
        .insert_targets(&run, &[planned])
        .await
        .expect("insert");
    assert_eq!(store.max_seq(&run).await.expect("max seq"), Some(7));

    let before = BTreeMap::from([("campaign".to_owned(), Some("winter".to_owned()))]);
    let resolution = Resolution {
        participant_id: Some("participant-x".into()),
        purpose: Some("customer".into()),
        selector: "purpose=customer, participant_id=participant-x".into(),
        input_lines: "desired.csv:2,3".into(),
        before: before.clone(),
        desired: BTreeMap::from([("campaign".to_owned(), "spring".to_owned())]),
        status: TargetStatus::Planned,
        reason: None,
    };
    // A plan naming a row that does not exist is refused whole: nothing of it is written.
    let unknown = TargetId::from_row(ids[0].get() + 1);
    let refused = store
        .plan_conversation(
            &run,
            &[(ids[0], resolution.clone()), (unknown, resolution.clone())],
            &[],
            &[],
        )
        .await;
    assert!(
        matches!(refused, Err(AuditError::UnknownTarget { .. })),
        "{refused:?}"
    );
    let untouched = &store.unfinished_targets(&run).await.expect("targets")[0];
    assert_eq!(untouched.participant_id, None);

    store
        .plan_conversation(&run, &[(ids[0], resolution)], &[], &[])
        .await
        .expect("resolve");

    let target = &store.unfinished_targets(&run).await.expect("targets")[0];
    assert_eq!(target.participant_id.as_deref(), Some("participant-x"));
    assert_eq!(target.purpose.as_deref(), Some("customer"));
    assert_eq!(target.before, before);
    assert_eq!(
        target.selector,
        "purpose=customer, participant_id=participant-x"
    );
    assert_eq!(target.input_lines, "desired.csv:2,3");
}

#[tokio::test]
async fn planning_a_conversation_removes_only_rows_never_sent() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let ids = store
        .insert_targets(
            &run,
            &[
                new_target(0, "conversation-a", &[("k", "v")]),
                new_target(1, "conversation-a", &[("k", "v")]),
            ],
        )
        .await
        .expect("insert");
    store.mark_sending(&ids[1..]).await.expect("mark");
    let added = store
        .plan_conversation(
            &run,
            &[],
            &[new_target(2, "conversation-a", &[("k", "v")])],
            &ids,
        )
        .await
        .expect("plan");
    let left = store.unfinished_targets(&run).await.expect("targets");
    assert_eq!(
        left.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ids[1], added[0]]
    );
}

#[tokio::test]
async fn twenty_thousand_targets_insert_in_one_call_with_ids_in_input_order() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let mut targets = numbered_targets(20_000);
    targets.reverse(); // ids must follow the input, not seq
    let ids = store.insert_targets(&run, &targets).await.expect("insert");
    assert_eq!(ids.len(), targets.len());

    let stored: Vec<(i64, i64)> = sqlx::query_as("SELECT id, seq FROM targets WHERE run_id = ?1")
        .bind(run.as_str())
        .fetch_all(store.pool())
        .await
        .expect("ids");
    let seq_by_id: BTreeMap<i64, i64> = stored.into_iter().collect();
    assert_eq!(seq_by_id.len(), targets.len());
    for (id, target) in ids.iter().zip(&targets) {
        assert_eq!(seq_by_id.get(&id.get()), Some(&i64::from(target.seq)));
    }
}

#[tokio::test]
async fn concurrent_sending_marks_share_commits_and_are_all_durable() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let ids = store
        .insert_targets(&run, &numbered_targets(500))
        .await
        .expect("insert");

    let commits_before = store.group_commits();
    let marks = ids
        .iter()
        .map(|id| store.mark_sending(std::slice::from_ref(id)));
    for result in futures::future::join_all(marks).await {
        result.expect("mark sending");
    }
    let commits = store.group_commits() - commits_before;
    assert!(
        (1..500).contains(&commits),
        "500 marks took {commits} commits"
    );

    // Every call has returned, so every mark must be visible to an independent reader.
    let reader = second_pool(store.path()).await;
    let sending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM targets WHERE status = 'sending' AND sent_at IS NOT NULL",
    )
    .fetch_one(&reader)
    .await
    .expect("count");
    assert_eq!(sending, 500);
}

fn request_at(run: &RunId, at: i64) -> RequestRow {
    RequestRow {
        run_id: run.clone(),
        at: UnixMillis::from_millis(at),
        method: "GET".to_owned(),
        route: "/api/v2/conversations/calls/{conversationId}".to_owned(),
        conversation_id: None,
        participant_id: None,
        status: None,
        latency_ms: 5,
        attempt: 1,
        retry_after_ms: None,
        error_class: Some("connect".to_owned()),
        correlation_id: None,
        token_slot: None,
    }
}

#[tokio::test]
async fn request_rows_of_one_call_are_recorded_all_or_nothing() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let many: Vec<RequestRow> = (0..2_500).map(|at| request_at(&run, at)).collect();
    store.record_requests(many);
    // Spans several INSERT statements; its last row names a run that does not exist.
    let mut doomed: Vec<RequestRow> = (0..1_500).map(|at| request_at(&run, at)).collect();
    doomed.push(request_at(&RunId::from_stored("no-such-run".to_owned()), 0));
    store.record_requests(doomed);
    store.flush().await.expect("flush");

    let summary = store.run_summary(&run).await.expect("summary");
    assert_eq!(summary.requests.total, 2_500);
    assert_eq!(summary.requests.transport_errors, 2_500);
}

#[tokio::test]
async fn an_unknown_target_fails_alone_while_its_batch_commits() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let ids = store
        .insert_targets(&run, &numbered_targets(1))
        .await
        .expect("insert");
    let unknown = TargetId::from_row(ids[0].get() + 1_000);

    let (bad, good) = tokio::join!(
        store.record_outcome(unknown, Outcome::status(TargetStatus::Failed)),
        store.mark_sending(&ids),
    );
    assert!(
        matches!(bad, Err(AuditError::UnknownTarget { target, .. }) if target == unknown.get()),
        "{bad:?}"
    );
    good.expect("known target marked");
    let unfinished = store.unfinished_targets(&run).await.expect("unfinished");
    assert_eq!(unfinished[0].status, TargetStatus::Sending);
}

#[tokio::test]
async fn after_a_crash_the_run_is_interrupted_and_its_unfinished_targets_resumable() {
    let (_dir, store) = open_fresh().await;
    let path = store.path().to_path_buf();
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let mut targets = numbered_targets(6);
    targets[5].status = TargetStatus::Unchanged;
    let ids = store.insert_targets(&run, &targets).await.expect("insert");
    store.mark_sending(&ids[1..4]).await.expect("sending");
    store
        .record_outcome(ids[2], Outcome::status(TargetStatus::Applied))
        .await
        .expect("applied");
    store
        .record_outcome(ids[3], Outcome::status(TargetStatus::Verified))
        .await
        .expect("verified");
    // The crash: no finish_run, and the run's process no longer exists.
    set_run_holder(&store, &run, current_host(), dead_pid()).await;
    drop(store);

    let store = AuditStore::open(&path).await.expect("reopen");
    let interrupted = store
        .mark_interrupted_runs_quiet_for(A_LONG_TIME)
        .await
        .expect("mark interrupted");
    assert_eq!(interrupted, vec![run.clone()]);
    let latest = store.resolve_run(LATEST).await.expect("latest");
    assert_eq!(latest, run);
    let record = store.run(&run).await.expect("record");
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(record.finished_at.is_some());

    let unfinished = store.unfinished_targets(&run).await.expect("unfinished");
    let seen: Vec<(u32, TargetStatus)> = unfinished.iter().map(|t| (t.seq, t.status)).collect();
    assert_eq!(
        seen,
        vec![
            (0, TargetStatus::Planned),
            (1, TargetStatus::Sending),
            (2, TargetStatus::Applied),
            (4, TargetStatus::Planned),
        ]
    );

    let resumed = store
        .reopen_run(&run, "apply --resume")
        .await
        .expect("resume");
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(resumed.resumed_count, 1);
    assert_eq!((resumed.finished_at, resumed.pid), (None, current_pid()));
    let processes = store.run_processes(&run).await.expect("processes");
    assert_eq!(
        processes
            .iter()
            .map(|p| p.command.as_str())
            .collect::<Vec<_>>(),
        ["apply", "apply --resume"]
    );
    store
        .finish_run(&run, RunStatus::Completed, Some(0))
        .await
        .expect("finish");
    let processes = store.run_processes(&run).await.expect("processes");
    assert_eq!(processes[1].exit_code, Some(0));
    assert!(processes[1].finished_at.is_some());
}

#[tokio::test]
async fn a_dead_process_run_reads_as_interrupted_without_any_write() {
    let (_dir, store) = open_fresh().await;
    let gone = store.begin_run(new_run("apply")).await.expect("gone");
    set_run_holder(&store, &gone, current_host(), dead_pid()).await;
    // pid 1 exists, but it is not the process that started the run (another start time): in a
    // container every first process is pid 1.
    let reused = store.begin_run(new_run("apply")).await.expect("reused");
    set_run_holder(&store, &reused, current_host(), 1).await;
    sqlx::query("UPDATE runs SET pid_start_time = -1 WHERE id = ?1")
        .bind(reused.as_str())
        .execute(store.pool())
        .await
        .expect("other start time");
    let silent = store.begin_run(new_run("apply")).await.expect("silent");
    set_run_holder(&store, &silent, "another-host", 1).await;
    sqlx::query("UPDATE runs SET heartbeat_at = 0 WHERE id = ?1")
        .bind(silent.as_str())
        .execute(store.pool())
        .await
        .expect("old heartbeat");
    let alive = store.begin_run(new_run("apply")).await.expect("alive");

    for run in [&gone, &reused, &silent] {
        assert_eq!(
            store.run(run).await.expect("run").status,
            RunStatus::Interrupted,
            "{run}"
        );
    }
    assert_eq!(
        store.run(&alive).await.expect("run").status,
        RunStatus::Running
    );
    let listed = store.list_runs(10).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .filter(|s| s.run.status == RunStatus::Interrupted)
            .count(),
        3
    );
    // Reading wrote nothing: the stored status is still `running` for all four.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE status = 'running'")
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(stored, 4);
}

#[tokio::test]
async fn live_runs_are_not_marked_interrupted() {
    let (_dir, store) = open_fresh().await;
    let ours = store.begin_run(new_run("apply")).await.expect("ours");
    let remote_active = store.begin_run(new_run("apply")).await.expect("remote");
    set_run_holder(&store, &remote_active, "another-host", 1).await;
    let remote_quiet = store.begin_run(new_run("apply")).await.expect("quiet");
    set_run_holder(&store, &remote_quiet, "another-host", 1).await;
    sqlx::query("UPDATE runs SET started_at = 0, heartbeat_at = 0 WHERE id = ?1")
        .bind(remote_quiet.as_str())
        .execute(store.pool())
        .await
        .expect("age run");

    let interrupted = store
        .mark_interrupted_runs_quiet_for(A_LONG_TIME)
        .await
        .expect("mark interrupted");
    assert_eq!(interrupted, vec![remote_quiet]);
    assert_eq!(
        store.run_summary(&ours).await.expect("ours").run.status,
        RunStatus::Running
    );
    let refused = store.reopen_run(&remote_active, "apply --resume").await;
    assert!(
        matches!(refused, Err(AuditError::RunActive { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn runs_resolve_by_latest_id_and_unique_prefix() {
    let (_dir, store) = open_fresh().await;
    assert!(matches!(
        store.resolve_run(LATEST).await,
        Err(AuditError::NoRuns { .. })
    ));
    let first = store.begin_run(new_run("apply")).await.expect("first");
    let second = store.begin_run(new_run("reconcile")).await.expect("second");
    // Fixed ids and start times so that prefixes and "latest" are deterministic.
    for (run, id, started_at) in [
        (&first, "20261124T101530Z-aaaaaa", 1_000),
        (&second, "20261124T101530Z-aaaabb", 2_000),
    ] {
        sqlx::query("UPDATE runs SET id = ?1, started_at = ?2 WHERE id = ?3")
            .bind(id)
            .bind(started_at)
            .bind(run.as_str())
            .execute(store.pool())
            .await
            .expect("fix run");
    }

    let latest = store.resolve_run("Latest").await;
    assert_eq!(latest.expect("latest").as_str(), "20261124T101530Z-aaaabb");
    let exact = store.resolve_run("20261124T101530Z-aaaaaa").await;
    assert_eq!(exact.expect("exact").as_str(), "20261124T101530Z-aaaaaa");
    let unique = store.resolve_run("20261124T101530Z-aaaaa").await;
    assert_eq!(
        unique.expect("unique prefix").as_str(),
        "20261124T101530Z-aaaaaa"
    );
    let ambiguous = store.resolve_run("20261124T101530Z-aaaa").await;
    assert!(
        matches!(ambiguous, Err(AuditError::AmbiguousRun { matches: 2, .. })),
        "{ambiguous:?}"
    );
    let missing = store.resolve_run("19990101T000000Z-000000").await;
    let message = missing.expect_err("unknown run").to_string();
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn list_targets_filters_by_run_conversation_participant_status_key_and_time() {
    let (_dir, store) = open_fresh().await;
    let first = store.begin_run(new_run("apply")).await.expect("first");
    let second = store.begin_run(new_run("apply")).await.expect("second");
    sqlx::query("UPDATE runs SET started_at = started_at + 1 WHERE id = ?1")
        .bind(second.as_str())
        .execute(store.pool())
        .await
        .expect("order runs");
    let mut clearing = new_target(1, "conversation-b", &[("tier", "")]);
    clearing.before = BTreeMap::from([("legacy".to_owned(), Some("x".to_owned()))]);
    let first_ids = store
        .insert_targets(
            &first,
            &[
                new_target(0, "conversation-a", &[("campaign", "spring")]),
                clearing,
            ],
        )
        .await
        .expect("first targets");
    let second_ids = store
        .insert_targets(
            &second,
            &[new_target(0, "conversation-a", &[("campaign", "summer")])],
        )
        .await
        .expect("second targets");
    store
        .record_outcome(first_ids[0], Outcome::status(TargetStatus::Verified))
        .await
        .expect("verified");
    store
        .record_outcome(second_ids[0], Outcome::status(TargetStatus::Drift))
        .await
        .expect("drift");
    // Deterministic update times: 1000, 2000, 3000 in insertion order.
    for (index, id) in first_ids.iter().chain(&second_ids).enumerate() {
        sqlx::query("UPDATE targets SET updated_at = ?1 WHERE id = ?2")
            .bind((i64::try_from(index).expect("index") + 1) * 1_000)
            .bind(id.get())
            .execute(store.pool())
            .await
            .expect("set time");
    }

    let ids_of = |filter: TargetFilter| {
        let store = store.clone();
        async move {
            store
                .list_targets(&filter)
                .await
                .expect("list")
                .into_iter()
                .map(|target| target.id)
                .collect::<Vec<_>>()
        }
    };
    let all = TargetFilter::default();
    assert_eq!(
        ids_of(all.clone()).await,
        vec![first_ids[0], first_ids[1], second_ids[0]]
    );
    assert_eq!(
        ids_of(TargetFilter {
            run: Some(second.clone()),
            ..all.clone()
        })
        .await,
        second_ids
    );
    assert_eq!(
        ids_of(TargetFilter {
            conversation: Some("conversation-a".to_owned()),
            ..all.clone()
        })
        .await,
        vec![first_ids[0], second_ids[0]]
    );
    assert_eq!(
        ids_of(TargetFilter {
            participant: Some("participant-1".to_owned()),
            ..all.clone()
        })
        .await,
        vec![first_ids[1]]
    );
    assert_eq!(
        ids_of(TargetFilter {
            statuses: vec![TargetStatus::Drift, TargetStatus::Planned],
            ..all.clone()
        })
        .await,
        vec![first_ids[1], second_ids[0]]
    );
    assert_eq!(
        ids_of(TargetFilter {
            key: Some("campaign".to_owned()),
            ..all.clone()
        })
        .await,
        vec![first_ids[0], second_ids[0]],
        "key in desired"
    );
    assert_eq!(
        ids_of(TargetFilter {
            key: Some("legacy".to_owned()),
            ..all.clone()
        })
        .await,
        vec![first_ids[1]],
        "key in before"
    );
    assert!(
        ids_of(TargetFilter {
            key: Some("absent".to_owned()),
            ..all.clone()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        ids_of(TargetFilter {
            since: Some(UnixMillis::from_millis(2_000)),
            until: Some(UnixMillis::from_millis(3_000)),
            ..all.clone()
        })
        .await,
        vec![first_ids[1]],
        "since inclusive, until exclusive"
    );
    assert_eq!(
        ids_of(TargetFilter {
            order: TargetOrder::NewestFirst,
            limit: Some(2),
            ..all.clone()
        })
        .await,
        vec![second_ids[0], first_ids[1]]
    );
}

#[tokio::test]
async fn a_held_lock_refuses_a_second_holder_until_released() {
    let (_dir, store) = open_fresh().await;
    let lease = store
        .acquire_lock(RECONCILE_LOCK, A_LONG_TIME)
        .await
        .expect("first acquire");
    assert_eq!(lease.took_over, None);

    let refused = store.acquire_lock(RECONCILE_LOCK, A_LONG_TIME).await;
    let Err(AuditError::Locked { pid, ref host, .. }) = refused else {
        panic!("expected Locked, got {refused:?}");
    };
    assert_eq!((pid, host.as_str()), (current_pid(), current_host()));
    let message = refused.expect_err("locked").to_string();
    assert!(
        message.contains("reconcile") && message.contains("audit.db"),
        "{message}"
    );

    store.heartbeat_lock(&lease).await.expect("heartbeat");
    store.release_lock(lease).await.expect("release");
    assert_eq!(
        store.lock_holder_of(RECONCILE_LOCK).await.expect("holder"),
        None
    );
    store
        .acquire_lock(RECONCILE_LOCK, A_LONG_TIME)
        .await
        .expect("acquire after release");
}

#[tokio::test]
async fn a_lock_of_a_dead_process_or_without_heartbeat_is_taken_over() {
    let (_dir, store) = open_fresh().await;
    let insert_holder = |host: &'static str, pid: i64, heartbeat_at: i64| {
        let store = store.clone();
        async move {
            sqlx::query(
                "INSERT OR REPLACE INTO locks \
                 (name, lease_id, holder_pid, holder_host, acquired_at, heartbeat_at) \
                 VALUES ('reconcile', 'old', ?1, ?2, 0, ?3)",
            )
            .bind(pid)
            .bind(host)
            .bind(heartbeat_at)
            .execute(store.pool())
            .await
            .expect("insert holder");
        }
    };
    let now = UnixMillis::now().as_millis();

    // Same host, fresh heartbeat, but the pid does not exist.
    insert_holder(current_host(), dead_pid(), now).await;
    let lease = store
        .acquire_lock(RECONCILE_LOCK, A_LONG_TIME)
        .await
        .expect("take over dead holder");
    assert_eq!(
        lease.took_over.map(|holder| holder.pid),
        u32::try_from(dead_pid()).ok()
    );

    // Another host with a fresh heartbeat is respected...
    insert_holder("another-host", 1, now).await;
    let refused = store.acquire_lock(RECONCILE_LOCK, A_LONG_TIME).await;
    assert!(
        matches!(refused, Err(AuditError::Locked { .. })),
        "{refused:?}"
    );

    // ...until its heartbeat is older than the staleness bound.
    insert_holder("another-host", 1, 0).await;
    let lease = store
        .acquire_lock(RECONCILE_LOCK, A_LONG_TIME)
        .await
        .expect("take over silent holder");
    assert_eq!(
        lease.took_over.map(|holder| holder.host),
        Some("another-host".to_owned())
    );
}

#[tokio::test]
async fn a_lease_taken_over_reports_lock_lost() {
    let (_dir, store) = open_fresh().await;
    let lease = store
        .acquire_lock(RECONCILE_LOCK, A_LONG_TIME)
        .await
        .expect("acquire");
    sqlx::query("UPDATE locks SET lease_id = 'someone-else'")
        .execute(store.pool())
        .await
        .expect("take over");
    assert!(matches!(
        store.heartbeat_lock(&lease).await,
        Err(AuditError::LockLost { .. })
    ));
    assert!(matches!(
        store.release_lock(lease).await,
        Err(AuditError::LockLost { .. })
    ));
}

#[test]
fn run_ids_sort_by_start_second_and_carry_a_random_suffix() {
    let at: UnixMillis = "2026-11-24T10:15:30.999Z".parse().expect("time");
    let id = RunId::generate(at);
    let (stamp, suffix) = id.as_str().split_once('-').expect("dash");
    assert_eq!(stamp, "20261124T101530Z");
    assert!(
        suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(RunId::generate(UnixMillis::from_millis(at.as_millis() + 1_000)) > id);
}

#[test]
fn timestamps_render_and_parse_as_rfc3339_millis() {
    let at = UnixMillis::from_millis(1_795_515_330_123);
    let text = at.to_string();
    assert_eq!(text, "2026-11-24T10:15:30.123Z");
    assert_eq!(text.parse::<UnixMillis>().expect("parse"), at);
    assert_eq!(
        serde_json::to_string(&at).expect("json"),
        "\"2026-11-24T10:15:30.123Z\""
    );
}

#[test]
fn timestamps_before_the_epoch_and_beyond_year_9999_render_as_instants() {
    // `audit prune --older-than 57years` makes a cutoff before 1970; humantime's formatter
    // panics on those ("all times should be after the epoch") and fails after 9999.
    for (millis, text) in [
        (-1, "1969-12-31T23:59:59.999Z"),
        (-86_400_000, "1969-12-31T00:00:00.000Z"),
        (-126_230_400_000, "1966-01-01T00:00:00.000Z"),
        (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
        (-62_167_219_200_001, "-0001-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
        (i64::MIN, "-292275055-05-16T16:47:04.192Z"),
        (i64::MAX, "+292278994-08-17T07:12:55.807Z"),
    ] {
        let at = UnixMillis::from_millis(millis);
        assert_eq!(at.to_string(), text, "{millis}");
        assert_eq!(
            serde_json::to_string(&at).expect("json"),
            format!("\"{text}\"")
        );
    }
    // A cutoff any duration before now is an instant that renders.
    let cutoff = UnixMillis::now().saturating_sub(Duration::from_secs(57 * 365 * 86_400));
    assert!(cutoff.as_millis() < 0, "{cutoff:?}");
    assert!(cutoff.to_string().ends_with('Z'));
    let far = UnixMillis::now().saturating_sub(Duration::MAX).to_string();
    assert!(far.starts_with("-29227") && far.ends_with('Z'), "{far}");
}

#[test]
fn timestamps_after_the_epoch_render_as_humantime_did() {
    // Every day from 1970 to 2400 (leap years and centuries included), at a time of day that
    // moves through the hours, minutes and milliseconds.
    let mut millis = 0_i64;
    while millis < 13_569_465_600_000 {
        let at = UnixMillis::from_millis(millis);
        assert_eq!(
            at.to_string(),
            humantime::format_rfc3339_millis(at.to_system_time()).to_string()
        );
        millis += 86_400_000 + 3_601_001;
    }
}

/// Every file of `dir` (the store, and its `-wal`/`-shm` when present) with its bytes and
/// modification time.
fn snapshot_dir(dir: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let bytes = std::fs::read(entry.path()).expect("read file");
            let modified = entry
                .metadata()
                .expect("metadata")
                .modified()
                .expect("mtime");
            (
                entry.file_name().to_string_lossy().into_owned(),
                (bytes, modified),
            )
        })
        .collect()
}

/// A store with one finished run, closed (so its WAL is checkpointed).
async fn closed_store_with_a_run() -> (TempDir, std::path::PathBuf, RunId) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let store = AuditStore::open(&path).await.expect("open store");
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let targets = store
        .insert_targets(&run, &numbered_targets(2))
        .await
        .expect("add targets");
    store.mark_sending(&targets).await.expect("mark sending");
    store
        .finish_run(&run, RunStatus::Completed, Some(0))
        .await
        .expect("finish run");
    store.close().await.expect("close");
    (dir, path, run)
}

#[tokio::test]
async fn read_only_open_reads_the_store_and_writes_nothing() {
    let (dir, path, run) = closed_store_with_a_run().await;
    let before = snapshot_dir(dir.path());
    // Make any write's new mtime distinguishable from the old one.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let store = AuditStore::open_read_only(&path)
        .await
        .expect("open read-only");
    assert!(store.is_read_only());
    let runs = store.list_runs(10).await.expect("list runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run.id, run);
    assert_eq!(store.resolve_run(LATEST).await.expect("latest"), run);
    let summary = store.run_summary(&run).await.expect("summary");
    assert_eq!(summary.run.id, run);

    // Writes fail: through the (absent) group-commit writer, and through the pool.
    let targets = store
        .list_targets(&TargetFilter::default())
        .await
        .expect("targets");
    assert_eq!(targets.len(), 2);
    let error = store
        .mark_sending(&[targets[0].id])
        .await
        .expect_err("no writer");
    assert!(matches!(error, AuditError::ReadOnly { .. }), "{error}");
    let error = store
        .begin_run(new_run("apply"))
        .await
        .expect_err("read-only file");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        cause.as_deref().is_some_and(|c| c.contains("readonly")),
        "a write through the read-only pool: {error}: {cause:?}"
    );
    store.record_request(RequestRow {
        run_id: run.clone(),
        at: UnixMillis::from_millis(1_000),
        method: "GET".to_owned(),
        route: "/api/v2/conversations/calls/{conversationId}".to_owned(),
        conversation_id: None,
        participant_id: None,
        status: Some(200),
        latency_ms: 1,
        attempt: 1,
        retry_after_ms: None,
        error_class: None,
        correlation_id: None,
        token_slot: None,
    });
    store.flush().await.expect("flush is a no-op");
    assert_eq!(store.group_commits(), 0);
    store.close().await.expect("close");

    // The store and its WAL are as they were. SQLite may create an empty `-wal` and the
    // shared-memory index `-shm` for a reader; neither holds data.
    let mut after = snapshot_dir(dir.path());
    for side in ["audit.db-wal", "audit.db-shm"] {
        if !before.contains_key(side)
            && let Some((bytes, _)) = after.remove(side)
        {
            assert!(
                side.ends_with("-shm") || bytes.is_empty(),
                "{side} gained {} bytes",
                bytes.len()
            );
        }
    }
    assert_eq!(
        before, after,
        "the read-only open changed the store's files"
    );
}

#[tokio::test]
async fn read_only_open_of_a_store_missing_a_migration_says_it_is_older() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    // What an older attrsync left: every migration but the last one this build embeds.
    let embedded: Vec<_> = MIGRATOR.iter().cloned().collect();
    let last = embedded.last().expect("at least one migration").version;
    let older = sqlx::migrate::Migrator::with_migrations(embedded[..embedded.len() - 1].to_vec());
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create the old store");
    older.run(&pool).await.expect("apply the older migrations");
    pool.close().await;
    let before = std::fs::read(&path).expect("read store");

    let error = AuditStore::open_read_only(&path)
        .await
        .expect_err("an outdated schema");
    match &error {
        AuditError::OutdatedSchema {
            path: named,
            missing,
        } => {
            assert_eq!(named, &path);
            assert_eq!(missing, &vec![last]);
        }
        other => panic!("expected OutdatedSchema, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string())
            && message.contains("written by an older attrsync")
            && message.contains(&last.to_string()),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read store"),
        before,
        "nothing migrated"
    );

    // `upgrade` applies exactly what was missing; then the store is readable, and current.
    assert_eq!(
        AuditStore::upgrade(&path).await.expect("upgrade"),
        vec![last]
    );
    let store = AuditStore::open_read_only(&path)
        .await
        .expect("open upgraded");
    assert!(store.list_runs(10).await.expect("list runs").is_empty());
    store.close().await.expect("close");
    assert!(
        AuditStore::upgrade(&path)
            .await
            .expect("upgrade again")
            .is_empty()
    );
}

#[tokio::test]
async fn read_only_open_of_a_missing_file_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("never.db");
    let error = AuditStore::open_read_only(&path)
        .await
        .expect_err("a missing store");
    assert!(matches!(error, AuditError::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    let error = AuditStore::open_read_only(dir.path().join("never.db"))
        .await
        .expect_err("a missing store");
    assert!(matches!(error, AuditError::NotFound { .. }), "{error:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "open_read_only created a file or directory"
    );
}

#[tokio::test]
async fn a_runs_rate_can_be_replaced_once_known() {
    let (_dir, store) = open_fresh().await;
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    let options = serde_json::json!({ "concurrency": 8, "rate": "600/min" });
    store
        .update_run_rate(&run, 600.0, &options)
        .await
        .expect("update rate");
    let record = store.run(&run).await.expect("run");
    assert_eq!(record.rate_per_minute, Some(600.0));
    assert_eq!(record.options, options);
    let missing = RunId::generate(UnixMillis::now());
    assert!(
        store
            .update_run_rate(&missing, 1.0, &options)
            .await
            .is_err()
    );
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A finished run with `targets` targets, two input rows and three request rows, then aged so
/// that it started and finished `days_ago` days ago.
async fn aged_run(store: &AuditStore, status: RunStatus, targets: u32, days_ago: i64) -> RunId {
    let run = store.begin_run(new_run("apply")).await.expect("begin");
    store
        .insert_targets(&run, &numbered_targets(targets))
        .await
        .expect("targets");
    let input = RecordedInput {
        header: vec!["conversation_id".to_owned(), "campaign".to_owned()],
        rows: (0..2)
            .map(|line| InputRecord {
                line: line + 2,
                cells: vec![
                    format!("conversation-{line}"),
                    "Jane Doe +4930123".to_owned(),
                ],
                problem: None,
                conversation_ended: false,
                no_live_call: false,
            })
            .collect(),
    };
    store.record_input(&run, &input).await.expect("input");
    store.record_requests((0..3).map(|at| request_at(&run, at)).collect());
    store
        .finish_run(&run, status, Some(0))
        .await
        .expect("finish");
    age_run(store, &run, days_ago).await;
    run
}

/// Moves a run's start, heartbeat and (when recorded) finish `days_ago` days into the past.
async fn age_run(store: &AuditStore, run: &RunId, days_ago: i64) {
    let at = UnixMillis::now().as_millis() - days_ago * DAY_MS;
    sqlx::query(
        "UPDATE runs SET started_at = ?1 - 1000, heartbeat_at = ?1, \
         finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ?1 END WHERE id = ?2",
    )
    .bind(at)
    .bind(run.as_str())
    .execute(store.pool())
    .await
    .expect("age run");
}

async fn count(store: &AuditStore, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(store.pool())
        .await
        .expect("count")
}

fn days_ago(days: i64) -> UnixMillis {
    UnixMillis::from_millis(UnixMillis::now().as_millis() - days * DAY_MS)
}

#[tokio::test]
async fn prune_deletes_old_finished_runs_with_all_their_rows_and_keeps_runs_in_progress() {
    let (_dir, store) = open_fresh().await;
    let completed = aged_run(&store, RunStatus::Completed, 3, 100).await;
    let failed = aged_run(&store, RunStatus::Failed, 1, 95).await;
    let recent = aged_run(&store, RunStatus::Completed, 2, 10).await;
    // A crashed process's run: stored `running`, its pid gone; its last heartbeat is its end.
    let crashed = store.begin_run(new_run("apply")).await.expect("crashed");
    store
        .insert_targets(&crashed, &numbered_targets(2))
        .await
        .expect("targets");
    set_run_holder(&store, &crashed, current_host(), dead_pid()).await;
    age_run(&store, &crashed, 120).await;
    // In progress in this very process, started (and last heartbeated) long ago: kept.
    let ours = store
        .begin_run(new_run("tag --follow"))
        .await
        .expect("ours");
    age_run(&store, &ours, 200).await;
    // In progress on another host, heartbeat fresh, started long ago: kept.
    let remote = store.begin_run(new_run("reconcile")).await.expect("remote");
    set_run_holder(&store, &remote, "another-host", 1).await;
    sqlx::query("UPDATE runs SET started_at = 0 WHERE id = ?1")
        .bind(remote.as_str())
        .execute(store.pool())
        .await
        .expect("old start");
    store.flush().await.expect("flush");

    let cutoff = days_ago(90);
    let selection = store.prunable_runs(cutoff).await.expect("dry run");
    let ids: Vec<&RunId> = selection.runs.iter().map(|run| &run.id).collect();
    // Oldest start first.
    assert_eq!(ids, vec![&crashed, &completed, &failed]);
    assert_eq!(
        selection
            .runs
            .iter()
            .map(|run| run.status)
            .collect::<Vec<_>>(),
        vec![
            RunStatus::Interrupted,
            RunStatus::Completed,
            RunStatus::Failed
        ]
    );
    assert_eq!(selection.rows_of("targets"), 3 + 1 + 2);
    assert_eq!(selection.rows_of("input_rows"), 2 + 2);
    assert_eq!(selection.rows_of("requests"), 3 + 3);
    assert_eq!(selection.rows_of("run_processes"), 3);
    assert_eq!(selection.runs[1].rows["targets"], 3);
    assert_eq!(selection.runs[0].rows["input_rows"], 0, "zeros are listed");
    let kept: Vec<&RunId> = selection.in_progress.iter().map(|run| &run.id).collect();
    assert_eq!(kept, vec![&remote, &ours]);
    // A dry run wrote nothing.
    assert_eq!(count(&store, "SELECT count(*) FROM runs").await, 6);

    let deleted = store.prune(cutoff).await.expect("prune");
    assert_eq!(deleted.runs, selection.runs);
    assert_eq!(
        deleted.rows, selection.rows,
        "deleted what the dry run said"
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM runs ORDER BY started_at")
        .fetch_all(store.pool())
        .await
        .expect("runs left");
    assert_eq!(
        left,
        [&remote, &ours, &recent].map(|run| run.as_str().to_owned())
    );
    for table in ["targets", "input_rows", "requests", "run_processes"] {
        let orphans = count(
            &store,
            &format!("SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"),
        )
        .await;
        assert_eq!(orphans, 0, "{table}");
    }
    assert_eq!(
        count(&store, "SELECT count(*) FROM targets").await,
        2,
        "the recent run's targets are kept"
    );
    // Nothing more to prune; the kept run still works.
    assert!(store.prune(cutoff).await.expect("again").runs.is_empty());
    store.heartbeat_run(&ours).await.expect("still ours");
    store
        .finish_run(&ours, RunStatus::Completed, Some(0))
        .await
        .expect("finish ours");
}

#[tokio::test]
async fn every_table_that_references_a_run_is_pruned() {
    let (_dir, store) = open_fresh().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    let tables: Vec<String> = store.run_tables_for_tests(&mut conn).await.expect("tables");
    assert_eq!(
        tables,
        ["input_rows", "requests", "run_processes", "targets"]
    );
}

#[tokio::test]
async fn prune_needs_a_writable_store_and_a_read_only_dry_run_writes_nothing() {
    let (dir, path, _run) = closed_store_with_a_run().await;
    let writable = AuditStore::open(&path).await.expect("open");
    let old = aged_run(&writable, RunStatus::Completed, 1, 30).await;
    writable.close().await.expect("close");
    let before = snapshot_dir(dir.path());

    let store = AuditStore::open_read_only(&path).await.expect("read-only");
    let selection = store.prunable_runs(days_ago(7)).await.expect("dry run");
    assert_eq!(
        selection.runs.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&old]
    );
    let refused = store.prune(days_ago(7)).await;
    assert!(
        matches!(refused, Err(AuditError::ReadOnly { .. })),
        "{refused:?}"
    );
    store.close().await.expect("close");
    // As for any reader, SQLite may add an empty `-wal` and the `-shm` index; no data.
    let mut after = snapshot_dir(dir.path());
    for side in ["audit.db-wal", "audit.db-shm"] {
        if !before.contains_key(side)
            && let Some((bytes, _)) = after.remove(side)
        {
            assert!(side.ends_with("-shm") || bytes.is_empty(), "{side}");
        }
    }
    assert_eq!(before, after, "a dry run changed the store's files");

    let store = AuditStore::open_existing(&path)
        .await
        .expect("open existing");
    assert_eq!(store.prune(days_ago(7)).await.expect("prune").runs.len(), 1);
    store.close().await.expect("close");
}

#[tokio::test]
async fn open_existing_creates_nothing_and_migrates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("never.db");
    let error = AuditStore::open_existing(&missing)
        .await
        .expect_err("a missing store");
    assert!(matches!(error, AuditError::NotFound { .. }), "{error:?}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

    let path = dir.path().join("old.db");
    let embedded: Vec<_> = MIGRATOR.iter().cloned().collect();
    let older = sqlx::migrate::Migrator::with_migrations(embedded[..embedded.len() - 1].to_vec());
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create the old store");
    older.run(&pool).await.expect("older migrations");
    pool.close().await;
    let error = AuditStore::open_existing(&path)
        .await
        .expect_err("an outdated store");
    assert!(
        matches!(error, AuditError::OutdatedSchema { .. }),
        "{error:?}"
    );
}

/// The versions recorded in a store's `_sqlx_migrations`, read straight from the file.
async fn recorded_versions(path: &Path) -> Vec<i64> {
    let pool = second_pool(path).await;
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .expect("migration history");
    pool.close().await;
    versions
}

fn embedded_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|migration| migration.version).collect()
}

/// What an older attrsync left at `path`: every migration but the last one this build embeds.
async fn older_store(path: &Path) {
    let embedded: Vec<_> = MIGRATOR.iter().cloned().collect();
    let older = sqlx::migrate::Migrator::with_migrations(embedded[..embedded.len() - 1].to_vec());
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("create the old store");
    older.run(&pool).await.expect("apply the older migrations");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_store_all_succeed_and_migrate_it_once() {
    // Several rounds, each on a new store: before the fix, openers racing on a new store ran
    // the same migration twice ("table runs already exists"), or one failed to connect while
    // another converted the new file to WAL ("database is locked"; rarer in one process than
    // across processes, where the e2e tests of tests/e2e/store.rs race real binaries).
    for round in 0..12 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state").join("audit.db");
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { AuditStore::open(&path).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            match open.await.expect("open task") {
                Ok(store) => stores.push(store),
                Err(error) => panic!("round {round}: a concurrent open failed: {error:?}"),
            }
        }
        // Every handle writes to the same, complete store.
        for store in &stores {
            store.begin_run(new_run("apply")).await.expect("begin run");
        }
        for store in &stores {
            store.close().await.expect("close");
        }
        assert_eq!(recorded_versions(&path).await, embedded_versions());
        let store = AuditStore::open_read_only(&path).await.expect("read");
        assert_eq!(store.list_runs(100).await.expect("runs").len(), 8);
        store.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_beside_concurrent_opens_applies_each_migration_once() {
    // An older store brought up to date by `audit upgrade` and writers opening it at once:
    // before the fix, two of them applied the missing migration ("duplicate column name").
    let last = *embedded_versions().last().expect("a migration");
    for round in 0..8 {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        older_store(&path).await;
        let upgrades: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { AuditStore::upgrade(&path).await })
            })
            .collect();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { AuditStore::open(&path).await?.close().await })
            })
            .collect();
        let mut applied = Vec::new();
        for upgrade in upgrades {
            match upgrade.await.expect("task") {
                Ok(versions) => applied.extend(versions),
                Err(error) => panic!("round {round}: an upgrade failed: {error:?}"),
            }
        }
        for open in opens {
            if let Err(error) = open.await.expect("task") {
                panic!("round {round}: an open failed: {error:?}");
            }
        }
        // Applied once; an upgrade reports the migration only if it applied it.
        assert!(
            applied.len() <= 1 && applied.iter().all(|version| *version == last),
            "round {round}: {applied:?}"
        );
        assert_eq!(recorded_versions(&path).await, embedded_versions());
    }
}

#[tokio::test]
async fn read_only_open_of_a_store_with_no_schema_yet_says_so_and_not_that_it_is_older() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    // What a reader finds while the first writer creates the store: a file, no table yet.
    std::fs::File::create(&path).expect("empty file");

    let error = AuditStore::open_read_only_waiting(&path, Duration::ZERO)
        .await
        .expect_err("no schema");
    assert!(
        matches!(&error, AuditError::Uninitialized { path: named, .. } if named == &path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string())
            && message.contains("another attrsync may still be creating it")
            && !message.contains("older"),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), Vec::<u8>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_open_of_a_store_being_created_waits_for_its_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    std::fs::File::create(&path).expect("empty file");
    // The reader finds the file without a schema (before the fix: "written by an older
    // attrsync"), then the writer creates it; the reader waits for it and reads it.
    let reader = {
        let path = path.clone();
        tokio::spawn(async move { AuditStore::open_read_only_waiting(&path, A_LONG_TIME).await })
    };
    let writer = AuditStore::open(&path).await.expect("create");
    let run = writer.begin_run(new_run("apply")).await.expect("begin run");
    let reader = reader.await.expect("reader task").expect("read-only open");
    let runs = reader.list_runs(10).await.expect("runs");
    assert!(runs.iter().all(|summary| summary.run.id == run), "{runs:?}");
    reader.close().await.expect("close");
    writer.close().await.expect("close");
}

#[tokio::test]
async fn a_store_written_by_a_newer_attrsync_is_refused_by_every_opener_and_left_as_it_is() {
    const NEWER: i64 = 29_991_231_000_000;
    let (_dir, path, _run) = closed_store_with_a_run().await;
    {
        let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
            .await
            .expect("store");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (?1, 'from the future', TRUE, x'00', 0)",
        )
        .bind(NEWER)
        .execute(&pool)
        .await
        .expect("a newer migration");
        pool.close().await;
    }
    let before = std::fs::read(&path).expect("read store");

    let errors = [
        ("open", AuditStore::open(&path).await.err()),
        (
            "open_no_create",
            AuditStore::open_no_create(&path).await.err(),
        ),
        (
            "open_existing",
            AuditStore::open_existing(&path).await.err(),
        ),
        (
            "open_read_only",
            AuditStore::open_read_only(&path).await.err(),
        ),
        ("upgrade", AuditStore::upgrade(&path).await.err()),
    ];
    for (opener, error) in errors {
        let error = error.unwrap_or_else(|| panic!("{opener} accepted a newer store"));
        match &error {
            AuditError::NewerSchema {
                path: named,
                unknown,
                version,
            } => {
                assert_eq!(named, &path, "{opener}");
                assert_eq!(unknown, &vec![NEWER], "{opener}");
                assert_eq!(*version, env!("CARGO_PKG_VERSION"), "{opener}");
            }
            other => panic!("{opener}: expected NewerSchema, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("written by a newer attrsync")
                && message.contains(&NEWER.to_string())
                && message.contains("use that newer attrsync"),
            "{opener}: {message}"
        );
        assert!(std::error::Error::source(&error).is_none(), "{opener}");
    }
    assert_eq!(
        std::fs::read(&path).expect("read store"),
        before,
        "a refused open changed the store"
    );
}

#[tokio::test]
async fn open_no_create_migrates_an_existing_store_and_never_creates_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    for missing in [
        dir.path().join("never.db"),
        dir.path().join("nested").join("never.db"),
    ] {
        let error = AuditStore::open_no_create(&missing)
            .await
            .expect_err("a missing store");
        assert!(
            matches!(&error, AuditError::NotFound { path } if path == &missing),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("no audit store at {}", missing.display())
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "open_no_create created a file or directory"
    );

    // An older store is migrated, as `open` would, and keeps its runs.
    let path = dir.path().join("old.db");
    older_store(&path).await;
    let store = AuditStore::open_no_create(&path).await.expect("open");
    let run = store.begin_run(new_run("apply")).await.expect("begin run");
    store.close().await.expect("close");
    assert_eq!(recorded_versions(&path).await, embedded_versions());
    let store = AuditStore::open_no_create(&path).await.expect("reopen");
    assert_eq!(store.resolve_run(LATEST).await.expect("latest"), run);
    store.close().await.expect("close");
}

#[tokio::test]
async fn read_only_open_of_a_database_attrsync_never_migrated_says_it_is_not_an_audit_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crm.db");
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create");
    sqlx::query("CREATE TABLE desired_attributes (conversation_id TEXT)")
        .execute(&pool)
        .await
        .expect("a table");
    pool.close().await;
    let error = AuditStore::open_read_only(&path)
        .await
        .expect_err("not a store");
    assert!(
        matches!(&error, AuditError::NotAnAuditStore { path: named } if named == &path),
        "{error:?}"
    );
    assert!(!error.to_string().contains("older"), "{error}");
}

#[tokio::test]
async fn calls_seen_ended_are_remembered_once_and_a_run_keeps_its_count_of_their_rows() {
    let (_dir, store) = open_fresh().await;
    let ended = |id: &str, at: Option<i64>| EndedConversation {
        conversation_id: id.to_owned(),
        ended_at: at.map(UnixMillis::from_millis),
    };
    store
        .record_ended(&[ended("c-1", Some(1_000)), ended("c-2", None)])
        .await
        .expect("recorded");
    // Seen again by a later run: the first record stands.
    store
        .record_ended(&[ended("c-1", Some(2_000))])
        .await
        .expect("recorded again");
    let asked = vec!["c-1".to_owned(), "c-2".to_owned(), "c-3".to_owned()];
    let known = store.known_ended(&asked).await.expect("looked up");
    assert_eq!(
        known,
        ["c-1", "c-2"].into_iter().map(str::to_owned).collect()
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT ended_at FROM ended_conversations WHERE conversation_id = 'c-1'",
    )
    .fetch_one(store.pool())
    .await
    .expect("read");
    assert_eq!(stored, 1_000);

    let run = store
        .begin_run(new_run("reconcile"))
        .await
        .expect("begin run");
    assert_eq!(store.run(&run).await.expect("run").ended_rows, 0);
    store.set_ended_rows(&run, 500).await.expect("counted");
    assert_eq!(store.run(&run).await.expect("run").ended_rows, 500);
}
