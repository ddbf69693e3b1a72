//! `attrsync plan` against the simulator: rendering, JSON, exit codes, and that it never writes.

use crate::support::TestOrg;

/// Two calls: one needs a change, one a clear, plus a call that has ended.
fn desired_csv(calls: &[genesys_core::models::CallConversation]) -> String {
    format!(
        "conversation_id,purpose,campaign,tier\n{},customer,spring,gold\n{},customer,spring,\n{},customer,spring,\n",
        calls[0].id, calls[1].id, calls[2].id
    )
}

fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[uuid]",
    )]
}

#[tokio::test]
async fn plan_prints_changes_in_terraform_style_and_sends_no_patch() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let calls = org.live_calls();
    org.state().end_call(&calls[2].id);
    org.write("desired.csv", &desired_csv(&calls));
    let run = org.run(&["plan", "desired.csv"]).await;
    run.assert_code(0);
    assert_eq!(org.count_requests("PATCH", ""), 0, "plan never writes");
    assert_eq!(
        org.count_requests("GET", "/conversations/calls/"),
        2,
        "each live call read once; analytics showed the third ended"
    );
    assert_eq!(
        org.count_requests("GET", "/analytics/conversations/details"),
        1
    );
    insta::with_settings!({ filters => snapshot_filters() }, {
        insta::assert_snapshot!("plan_human", format!("exit: {}\n--- stdout ---\n{}", run.code, run.stdout));
    });
}

#[tokio::test]
async fn plan_json_is_the_same_plan_as_data() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    org.write("desired.csv", &desired_csv(&org.live_calls()));
    let run = org.run(&["plan", "desired.csv", "--json"]).await;
    run.assert_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON plan");
    insta::with_settings!({ filters => snapshot_filters() }, {
        insta::assert_json_snapshot!("plan_json", plan);
    });
}

#[tokio::test]
async fn detailed_exitcode_is_2_with_changes_and_0_in_sync() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    org.write(
        "desired.csv",
        &format!("conversation_id,campaign\n{},spring\n", call.id),
    );
    org.run(&["plan", "desired.csv", "--detailed-exitcode"])
        .await
        .assert_code(2);
    org.run(&["set", &call.id, "campaign=spring"])
        .await
        .assert_code(0);
    org.run(&["plan", "desired.csv", "--detailed-exitcode"])
        .await
        .assert_code(0);
}

#[tokio::test]
async fn invalid_input_is_reported_by_line_and_nothing_is_requested() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let call = org.live_calls().remove(0);
    org.write(
        "bad.csv",
        &format!(
            "conversation_id,campaign\n{},spring\nnot-a-uuid,spring\n",
            call.id
        ),
    );
    let run = org.run(&["plan", "bad.csv"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("bad.csv:3:"), "{}", run.stderr);
    assert!(
        org.state().request_log().is_empty(),
        "no request before the input is valid"
    );
}

#[tokio::test]
async fn saved_plan_applies_later_and_marks_moved_targets_stale() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let calls = org.live_calls();
    org.write(
        "desired.csv",
        &format!(
            "conversation_id,campaign\n{},spring\n{},spring\n",
            calls[0].id, calls[1].id
        ),
    );
    org.run(&["plan", "desired.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    // Someone changes call 1 after the plan was reviewed.
    org.run(&["set", &calls[1].id, "campaign=summer"])
        .await
        .assert_code(0);

    let run = org.run(&["apply", "plan.json", "--json"]).await;
    // A stale target was not applied: the run is partial, not a success.
    run.assert_code(3);
    let statuses: Vec<(String, String)> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "target")
        .map(|e| {
            (
                e["conversation_id"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(calls[0].id.clone(), "verified".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(calls[1].id.clone(), "stale".into())),
        "{statuses:?}"
    );
    let now = org.live_calls();
    let campaign = |cid: &str| {
        now.iter()
            .find(|c| c.id == cid)
            .unwrap()
            .participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("customer"))
            .unwrap()
            .attributes
            .get("campaign")
            .cloned()
    };
    assert_eq!(
        campaign(&calls[1].id).as_deref(),
        Some("summer"),
        "a stale target is not overwritten"
    );
}

/// `plan -` reads the desired state from standard input, as a pipe is read.
#[tokio::test]
async fn plan_reads_standard_input_given_as_dash() {
    use tokio::io::AsyncWriteExt as _;
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let mut command = org.command(&["plan", "-"]);
    command.stdin(std::process::Stdio::piped());
    let mut plan = crate::support::spawn(&mut command);
    let mut stdin = plan.take_stdin().expect("stdin");
    stdin
        .write_all(crate::support::campaign_csv(&org).as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let run = plan.finish().await;
    run.assert_code(0);
    assert!(run.stdout.contains("2 to update"), "{}", run.stdout);
}

/// `plan --json` is for reading: applying it says how to save a plan instead.
#[tokio::test]
async fn applying_plan_json_output_says_to_save_a_plan_with_out() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &crate::support::campaign_csv(&org));
    let json = org.run(&["plan", "desired.csv", "--json"]).await;
    json.assert_code(0);
    org.write("p.json", &json.stdout);
    let apply = org.run(&["apply", "p.json"]).await;
    apply.assert_code(1);
    assert!(apply.stderr.contains("--out PLAN.json"), "{}", apply.stderr);
    assert_eq!(org.count_requests("PATCH", "/attributes"), 0);
}
