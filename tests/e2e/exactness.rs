//! The plan carried from the input to the audit row on every path: merged targets, conflicts,
//! stale plans, dead runs and resumes, told from the simulator's request log and the audit store.

use std::time::Duration;

use genesys_sim::{SeedCall, SeedParticipant, SimConfig};

use crate::support::{TestOrg, audit_targets, spawn, within};

const CALL: &str = "3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f";
const CUSTOMER: &str = "7d0e5f6a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";
const AGENT: &str = "0b7c9d2e-3f4a-4b5c-8d6e-7f8a9b0c1d2e";

/// An org with one live call: a customer with `kb=old` and a connected agent.
async fn one_call_org() -> TestOrg {
    one_call_org_with(TestOrg::fast_config(0)).await
}

async fn one_call_org_with(config: SimConfig) -> TestOrg {
    let org = TestOrg::start(config).await;
    org.state().add_call(SeedCall {
        id: CALL.into(),
        ended: false,
        participants: vec![
            SeedParticipant {
                id: CUSTOMER.into(),
                purpose: "customer".into(),
                user_id: None,
                connected: true,
                attributes: [("kb".to_owned(), "old".to_owned())].into(),
            },
            SeedParticipant {
                id: AGENT.into(),
                purpose: "agent".into(),
                user_id: None,
                connected: true,
                attributes: Default::default(),
            },
        ],
    });
    org
}

fn customer_attributes(org: &TestOrg) -> std::collections::BTreeMap<String, String> {
    org.state()
        .call(CALL)
        .unwrap()
        .conversation
        .participants
        .into_iter()
        .find(|p| p.id == CUSTOMER)
        .unwrap()
        .attributes
}

fn patches(org: &TestOrg) -> usize {
    org.count_requests("PATCH", "/attributes")
}

/// Row 2 reaches the customer by purpose, row 3 by participant id: one target, one PATCH.
fn two_selectors_csv(org: &TestOrg, line_end: &str) -> std::path::PathBuf {
    let csv = [
        "conversation_id,purpose,participant_id,ka,kb".to_owned(),
        format!("{CALL},customer,,1,"),
        format!("{CALL},,{CUSTOMER},,2"),
        String::new(),
    ]
    .join(line_end);
    org.write("two.csv", &csv)
}

/// Runs `apply kb.csv` and `kill -9`s it once its PATCH was answered: the token, the read and
/// the PATCH go through, the verification read is held (by request count, not by time).
async fn kill_9_after_its_patch(org: &TestOrg) {
    // The token, the analytics read of which calls ended, the call's read, its PATCH (read
    // back: no channel requests before them).
    org.state().hold_after(4);
    let child = org.spawn(&["apply", "kb.csv", "--verify-via", "get"]);
    org.wait_until_holding().await;
    child.kill().await;
    org.state().release();
}

fn read_results(org: &TestOrg, name: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(org.path("res").join(name))
        .expect("result file exists");
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn rows_reaching_one_participant_are_one_patch_with_every_key() {
    let org = one_call_org().await;
    two_selectors_csv(&org, "\n");
    org.run(&["apply", "two.csv", "--results", "res"])
        .await
        .assert_code(0);
    assert_eq!(patches(&org), 1, "one PATCH for the one participant");
    let attributes = customer_attributes(&org);
    assert_eq!(attributes["ka"], "1");
    assert_eq!(attributes["kb"], "2");
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, "verified");
    let succeeded = read_results(&org, "succeeded.csv");
    assert_eq!(
        succeeded.len(),
        3,
        "header and both input rows: {succeeded:?}"
    );
}

#[tokio::test]
async fn a_saved_plan_keeps_every_key_of_a_merged_target_and_its_rows() {
    let org = one_call_org().await;
    two_selectors_csv(&org, "\r\n");
    org.run(&["plan", "two.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    org.run(&["apply", "plan.json", "--results", "res"])
        .await
        .assert_code(0);
    assert_eq!(patches(&org), 1);
    let attributes = customer_attributes(&org);
    assert_eq!(
        (attributes["ka"].as_str(), attributes["kb"].as_str()),
        ("1", "2")
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(
        rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["verified"]
    );
    let succeeded = read_results(&org, "succeeded.csv");
    assert_eq!(succeeded.len(), 3, "{succeeded:?}");
    assert_eq!(succeeded[1][0], CALL);
}

#[tokio::test]
async fn a_conflict_across_selectors_fails_the_participant_and_names_both_lines() {
    let org = one_call_org().await;
    org.write(
        "conflict.csv",
        &format!(
            "conversation_id,purpose,participant_id,tier\n{CALL},customer,,gold\n{CALL},,{CUSTOMER},silver\n"
        ),
    );
    let run = org
        .run(&["apply", "conflict.csv", "--results", "res"])
        .await;
    run.assert_code(1);
    assert_eq!(
        patches(&org),
        0,
        "nothing is sent to a conflicted participant"
    );
    let failed = read_results(&org, "failed.csv");
    assert_eq!(failed.len(), 3, "both rows fail: {failed:?}");
    let message = &failed[1][failed[0].len() - 2];
    assert!(
        message.contains("line 2") && message.contains("line 3"),
        "{message}"
    );
}

#[tokio::test]
async fn plan_fails_a_conflict_as_apply_does_and_never_calls_it_skipped() {
    let org = one_call_org().await;
    org.write(
        "conflict.csv",
        &format!(
            "conversation_id,purpose,participant_id,tier\n{CALL},customer,,gold\n{CALL},,{CUSTOMER},silver\n"
        ),
    );
    let plan = org
        .run(&["plan", "conflict.csv", "--detailed-exitcode"])
        .await;
    plan.assert_code(1);
    assert!(
        plan.stdout.contains(": fails, ") && !plan.stdout.contains(": skipped, "),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 in conflict"), "{}", plan.stdout);
    assert!(plan.stderr.contains("in conflict"), "{}", plan.stderr);
}

#[tokio::test]
async fn a_plan_whose_every_target_went_stale_does_not_exit_0() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},planned\n"));
    org.run(&["plan", "kb.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    // Someone changes the key after the plan was reviewed.
    org.run(&[
        "set",
        CALL,
        &format!("participant_id={CUSTOMER}"),
        "kb=moved",
    ])
    .await
    .assert_code(0);
    let before = patches(&org);
    org.run(&["apply", "plan.json"]).await.assert_code(1);
    assert_eq!(patches(&org), before, "a stale target is not sent");
    assert_eq!(customer_attributes(&org)["kb"], "moved");
}

#[tokio::test]
async fn resume_after_a_kill_keeps_the_true_before_of_a_change_that_was_sent() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    kill_9_after_its_patch(&org).await;
    assert_eq!(patches(&org), 1, "the change reached Genesys");
    assert_eq!(customer_attributes(&org)["kb"], "new");

    // The dead run reads as interrupted without anyone writing it so.
    let runs = org.run(&["audit", "runs", "--json"]).await;
    runs.assert_code(0);
    assert!(runs.stdout.contains("\"interrupted\""), "{}", runs.stdout);

    org.run(&["apply", "--resume", "latest"])
        .await
        .assert_code(0);
    assert_eq!(patches(&org), 1, "nothing needed sending again");
    let export = org.run(&["audit", "export", "--format", "json"]).await;
    export.assert_code(0);
    let rows: serde_json::Value = serde_json::from_str(&export.stdout).unwrap();
    let text = rows.to_string();
    assert!(text.contains("\"verified\""), "{text}");
    assert!(
        text.contains("\"before\":\"old\"") || text.contains("\"before\":{\"kb\":\"old\"}"),
        "the change keeps its true before-value: {text}"
    );
    assert!(!text.contains("\"unchanged\""), "{text}");
    // The run keeps its id and records both processes that worked on it.
    let show = org.run(&["audit", "show", "latest"]).await;
    show.assert_code(0);
    let processes: Vec<&str> = show
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("process"))
        .collect();
    assert_eq!(processes.len(), 2, "{}", show.stdout);
    assert!(processes[0].contains("apply by pid") && processes[0].contains("did not finish"));
    assert!(processes[1].contains("apply --resume by pid") && processes[1].contains("exit 0"));
}

#[tokio::test]
async fn a_plain_rerun_settles_the_rows_a_killed_run_left_sending() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    kill_9_after_its_patch(&org).await;

    org.run(&["apply", "kb.csv"]).await.assert_code(0);
    // The killed run, settled, lasted at least until its last recorded request.
    let runs = org.run(&["audit", "runs", "--json"]).await;
    runs.assert_code(0);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let killed = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "interrupted")
        .unwrap_or_else(|| panic!("an interrupted run in {runs}"));
    let shown = org
        .run(&["audit", "show", killed["id"].as_str().unwrap(), "--json"])
        .await;
    shown.assert_code(0);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let finished = shown["run"]["finished_at"].as_str().unwrap();
    let last_request = shown["run"]["requests"]["last_at"].as_str().unwrap();
    assert!(
        finished >= last_request,
        "finished {finished}, last request {last_request}"
    );
    let rows = audit_targets(&org.audit_path()).await;
    assert!(
        rows.iter()
            .all(|r| !matches!(r.status.as_str(), "planned" | "sending" | "applied")),
        "no row stays in doubt once a later run has finished: {rows:?}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.status == "verified").count(),
        1,
        "the killed run's change is recorded as verified: {rows:?}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.status == "unchanged").count(),
        1,
        "the rerun found it done: {rows:?}"
    );
}

/// Kills `apply kb.csv` while its first request (the token, before the analytics read of
/// which calls ended) is held: the run exists and recorded no target.
async fn kill_9_before_its_targets(org: &TestOrg) {
    org.state().hold_after(0);
    let child = org.spawn(&["apply", "kb.csv"]);
    org.wait_until_holding().await;
    child.kill().await;
    org.state().release();
}

#[tokio::test]
async fn a_run_killed_before_it_recorded_its_targets_is_resumed_from_its_unchanged_source() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    kill_9_before_its_targets(&org).await;

    let resumed = org.run(&["apply", "--resume", "latest"]).await;
    resumed.assert_code(0);
    assert!(
        resumed
            .stderr
            .contains("its source kb.csv is unchanged, so it is applied as a new run"),
        "{}",
        resumed.stderr
    );
    assert_eq!(customer_attributes(&org)["kb"], "new");
}

#[tokio::test]
async fn a_run_killed_before_it_recorded_its_targets_is_not_resumed_from_a_changed_source() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    kill_9_before_its_targets(&org).await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},newer\n"));

    let resumed = org.run(&["apply", "--resume", "latest"]).await;
    resumed.assert_code(1);
    assert!(
        resumed
            .stderr
            .contains("was stopped before it recorded its targets, so it changed nothing"),
        "{}",
        resumed.stderr
    );
    assert_eq!(org.count_requests("PATCH", "/attributes"), 0);
    // What it says to do converges.
    org.run(&["apply", "kb.csv"]).await.assert_code(0);
    assert_eq!(customer_attributes(&org)["kb"], "newer");
}

#[tokio::test]
async fn settling_a_killed_runs_change_is_named_with_until_when() {
    // The killed run's change shows only 4 s after it was accepted: settling waits for it.
    let org = one_call_org_with(SimConfig {
        faults: genesys_sim::FaultConfig {
            visibility_lag: Duration::from_secs(4),
            ..Default::default()
        },
        ..TestOrg::fast_config(0)
    })
    .await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    kill_9_after_its_patch(&org).await;

    let mut rerun = org.spawn(&["apply", "kb.csv", "--verify-timeout", "20s"]);
    let line = rerun
        .next_stderr_line("settling is named", |l| {
            l.contains("verifying 1 calls' changes: until ")
        })
        .await;
    assert!(line.contains(" at the latest (in "), "{line}");
    rerun.finish().await.assert_code(0);
    let rows = audit_targets(&org.audit_path()).await;
    assert_eq!(
        rows.iter().filter(|r| r.status == "verified").count(),
        1,
        "the killed run's change is settled as verified: {rows:?}"
    );
}

#[tokio::test]
async fn max_changes_refuses_to_start_a_larger_plan_and_sends_nothing() {
    let org = TestOrg::start(TestOrg::fast_config(5)).await;
    let mut csv = String::from("conversation_id,campaign\n");
    for call in org.live_calls() {
        csv.push_str(&format!("{},spring\n", call.id));
    }
    org.write("five.csv", &csv);
    let refused = org.run(&["apply", "five.csv", "--max-changes", "4"]).await;
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("would change 5 participants, more than --max-changes 4"),
        "{}",
        refused.stderr
    );
    assert_eq!(org.count_requests("PATCH", "/attributes"), 0);
    assert!(!org.audit_path().exists(), "no run was recorded");

    org.run(&["plan", "five.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    org.run(&["apply", "plan.json", "--max-changes", "4"])
        .await
        .assert_code(1);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 0);

    org.run(&["apply", "five.csv", "--max-changes", "5"])
        .await
        .assert_code(0);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 5);
}

#[tokio::test]
async fn a_source_given_as_a_pipe_is_read_once_and_applied() {
    let org = one_call_org().await;
    let csv = format!("conversation_id,ka\n{CALL},piped\n");
    let mut cmd = org.command(&["apply", "/dev/stdin"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = spawn(&mut cmd);
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.take_stdin().unwrap();
        within(
            "the CSV is written to stdin",
            stdin.write_all(csv.as_bytes()),
        )
        .await
        .unwrap();
    }
    child.finish().await.assert_code(0);
    assert_eq!(customer_attributes(&org)["ka"], "piped");
}

#[tokio::test]
async fn rows_skipped_as_invalid_are_in_failed_csv_with_their_problem() {
    let org = one_call_org().await;
    org.write(
        "mixed.csv",
        &format!("conversation_id,ka\r\n{CALL},ok\r\nnot-a-uuid,x\r\n"),
    );
    org.run(&["apply", "mixed.csv", "--skip-invalid", "--results", "res"])
        .await
        .assert_code(0);
    let succeeded = read_results(&org, "succeeded.csv");
    let failed = read_results(&org, "failed.csv");
    assert_eq!(succeeded.len(), 2, "{succeeded:?}");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[1][0], "not-a-uuid");
    assert_eq!(failed[1][2], "invalid");
}

#[tokio::test]
async fn a_hand_edited_plan_is_validated_like_an_input_and_nothing_is_sent() {
    let org = one_call_org().await;
    org.write("kb.csv", &format!("conversation_id,kb\n{CALL},new\n"));
    org.run(&["plan", "kb.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(org.path("plan.json")).unwrap()).unwrap();
    let big = "x".repeat(600_000);
    plan["targets"][0]["desired"]["kb"] = big.clone().into();
    plan["targets"][0]["action"]["set"]["kb"]["after"] = big.into();
    std::fs::write(org.path("plan.json"), plan.to_string()).unwrap();
    let run = org.run(&["apply", "plan.json"]).await;
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("plan.json:target 1: value of key \"kb\" is 600000 bytes"),
        "{}",
        run.stderr
    );
    assert_eq!(patches(&org), 0);
}

#[tokio::test]
async fn result_files_label_every_row_right_whatever_the_line_ends() {
    const MISSING: &str = "9e8d7c6b-5a49-4838-a726-1504f3e2d1c0";
    for line_end in ["\n", "\r\n", "\r"] {
        let org = one_call_org().await;
        let csv = [
            "conversation_id,ka".to_owned(),
            format!("{MISSING},x"),
            format!("\"{CALL}\",\"multi{line_end}line\""),
            String::new(),
        ]
        .join(line_end);
        org.write("ends.csv", &csv);
        org.run(&["apply", "ends.csv", "--results", "res"])
            .await
            .assert_code(0);
        let succeeded = read_results(&org, "succeeded.csv");
        let failed = read_results(&org, "failed.csv");
        let unprocessed = read_results(&org, "unprocessed.csv");
        assert_eq!(succeeded.len(), 2, "{line_end:?}: {succeeded:?}");
        assert_eq!(succeeded[1][0], CALL, "{line_end:?}");
        assert_eq!(
            succeeded[1][1],
            format!("multi{line_end}line"),
            "cells kept as read"
        );
        assert_eq!(succeeded[1][2], "verified");
        assert_eq!(failed.len(), 2, "{line_end:?}: {failed:?}");
        assert_eq!(failed[1][0], MISSING);
        assert_eq!(failed[1][2], "skipped");
        assert_eq!(unprocessed.len(), 1, "{line_end:?}: {unprocessed:?}");
    }
}
