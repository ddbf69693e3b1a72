//! One validation for every entry point: `set` and `tag` refuse, as a usage error and before
//! anything is sent or stored, what a CSV or a saved plan could not carry; ids that are not
//! UUIDs are usage errors; a hand-edited saved plan cannot send a participant twice nor report
//! a row it never carried.

use crate::support::{Run, TestOrg};

const NOT_A_UUID: &str = "NOT-A-UUID";

/// The run was refused as a usage error before any request was sent or any store created, and
/// said why.
#[track_caller]
fn assert_refused_as_usage(org: &TestOrg, run: &Run, expected: &str) {
    run.assert_code(64);
    assert!(
        run.stderr.contains(expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    let log = org.state().request_log();
    assert!(log.is_empty(), "nothing is sent: {log:?}");
    assert!(
        !org.audit_path().exists(),
        "no audit store is created for a usage error"
    );
}

/// The `KEY=VALUE` arguments of each case, and the problem it is refused with.
fn bad_attribute_cases() -> Vec<(Vec<String>, String)> {
    let long_key = "k".repeat(300);
    let many: Vec<String> = (1..=120).map(|i| format!("key{i}=v")).collect();
    vec![
        (
            vec!["k\u{1}=v".to_owned()],
            "argument 1: key \"k\\u{1}\" contains a control character".to_owned(),
        ),
        (
            vec!["ok=1".to_owned(), format!("{long_key}=v")],
            format!("argument 2: key \"{long_key}\" is 300 bytes, over the limit of 200 bytes"),
        ),
        (
            vec![format!("big={}", "x".repeat(3_000))],
            "argument 1: value of key \"big\" is 3000 bytes, over the limit of 2048 bytes"
                .to_owned(),
        ),
        (
            many,
            "argument 101: each target would have 120 keys, over the limit of 100 keys per target"
                .to_owned(),
        ),
        (
            vec!["dup=a".to_owned(), "dup=b".to_owned()],
            "argument 2: conflicting values for key \"dup\": \"b\" here, \"a\" on argument 1"
                .to_owned(),
        ),
    ]
}

#[tokio::test]
async fn set_refuses_what_a_csv_refuses_as_a_usage_error_before_sending_or_storing() {
    for (attributes, expected) in bad_attribute_cases() {
        let org = TestOrg::start(TestOrg::fast_config(1)).await;
        let call = org.live_calls().remove(0).id;
        let mut args = vec!["set".to_owned(), call];
        args.extend(attributes);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = org.run(&args).await;
        assert_refused_as_usage(&org, &run, &expected);
    }
}

#[tokio::test]
async fn tag_and_tag_follow_refuse_what_a_csv_refuses_before_listing_a_queue() {
    for follow in [false, true] {
        for (attributes, expected) in bad_attribute_cases() {
            let org = TestOrg::start(TestOrg::fast_config(2)).await;
            let queue = org.state().queues().remove(0).id;
            let mut args = vec!["tag".to_owned(), "--queue".to_owned(), queue];
            if follow {
                args.push("--follow".to_owned());
            }
            args.extend(attributes);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = org.run(&args).await;
            assert_refused_as_usage(&org, &run, &expected);
        }
    }
}

#[tokio::test]
async fn get_doctor_and_set_refuse_an_id_that_is_not_a_uuid_before_sending() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let call = org.live_calls().remove(0).id;
    let cases: [&[&str]; 5] = [
        &["get", NOT_A_UUID],
        &["doctor", "--conversation", NOT_A_UUID],
        &["set", NOT_A_UUID, "k=v"],
        &["set", &call, "--participant-id", NOT_A_UUID, "k=v"],
        &["set", &call, "--user-id", NOT_A_UUID, "k=v"],
    ];
    for args in cases {
        let run = org.run(args).await;
        assert_refused_as_usage(&org, &run, "`NOT-A-UUID` is not a UUID");
    }
}

/// `plan --out plan.json` for the customer of one call, then the plan as JSON to edit.
async fn saved_plan(org: &TestOrg) -> serde_json::Value {
    let call = org.live_calls().remove(0).id;
    org.write("kb.csv", &format!("conversation_id,kb\n{call},new\n"));
    org.run(&["plan", "kb.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    serde_json::from_str(&std::fs::read_to_string(org.path("plan.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn a_saved_plan_naming_one_participant_twice_is_refused_and_nothing_is_sent() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let mut plan = saved_plan(&org).await;
    let target = plan["targets"][0].clone();
    let participant = target["participant_id"].as_str().unwrap().to_owned();
    let conversation = target["conversation_id"].as_str().unwrap().to_owned();
    plan["targets"].as_array_mut().unwrap().push(target);
    std::fs::write(org.path("plan.json"), plan.to_string()).unwrap();

    let run = org.run(&["apply", "plan.json"]).await;
    run.assert_code(1);
    let expected = format!(
        "plan.json:target 2: participant {participant} of conversation {conversation} is target 1 too: a plan names each participant once"
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert_eq!(org.count_requests("PATCH", ""), 0, "nothing is sent");
    assert!(!org.audit_path().exists(), "no run is recorded");
}

#[tokio::test]
async fn a_saved_plan_whose_lines_point_at_no_input_row_is_refused_and_nothing_is_sent() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let mut plan = saved_plan(&org).await;
    assert_eq!(plan["targets"][0]["lines"], serde_json::json!([2]));
    plan["targets"][0]["lines"] = serde_json::json!([2, 99]);
    std::fs::write(org.path("plan.json"), plan.to_string()).unwrap();

    let run = org.run(&["apply", "plan.json", "--results", "res"]).await;
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("plan.json:target 1: line 99 is not a row of the plan's input"),
        "{}",
        run.stderr
    );
    assert_eq!(org.count_requests("PATCH", ""), 0, "nothing is sent");
    assert!(!org.audit_path().exists(), "no run is recorded");
}
