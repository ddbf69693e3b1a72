//! `attrsync live`, `attrsync tag --queue`, `attrsync completions`, `attrsync generate-man`.

use std::collections::BTreeSet;

use crate::support::{TestOrg, audit_targets};

/// Ids of the simulator's live calls, optionally only those of one queue.
fn live_ids(org: &TestOrg, queue: Option<&str>) -> BTreeSet<String> {
    org.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended)
        .filter(|c| queue.is_none_or(|q| c.queue_id.as_deref() == Some(q)))
        .map(|c| c.conversation.id)
        .collect()
}

/// An org with calls in several queues and one ended call, which is not live.
async fn org_with_queues() -> TestOrg {
    let org = TestOrg::start(TestOrg::fast_config(12)).await;
    let first = org.live_calls()[0].id.clone();
    org.state().end_call(&first);
    org
}

/// The queue with the most live calls, so that the queue filter has something to show.
fn busiest_queue(org: &TestOrg) -> String {
    org.state()
        .queues()
        .into_iter()
        .map(|q| q.id)
        .max_by_key(|q| live_ids(org, Some(q)).len())
        .unwrap()
}

fn json_ids(stdout: &str) -> BTreeSet<String> {
    let calls: Vec<serde_json::Value> = serde_json::from_str(stdout).expect("a JSON array");
    calls
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn live_lists_exactly_the_live_calls_and_filters_by_queue() {
    let org = org_with_queues().await;
    let all = org.run(&["live", "--json"]).await;
    all.assert_code(0);
    assert_eq!(json_ids(&all.stdout), live_ids(&org, None));

    let queue = busiest_queue(&org);
    let in_queue = live_ids(&org, Some(&queue));
    assert!(!in_queue.is_empty() && in_queue.len() < live_ids(&org, None).len());
    let filtered = org.run(&["live", "--queue", &queue, "--json"]).await;
    filtered.assert_code(0);
    assert_eq!(json_ids(&filtered.stdout), in_queue);
    let calls: Vec<serde_json::Value> = serde_json::from_str(&filtered.stdout).unwrap();
    assert!(
        calls.iter().all(|c| c["queue_ids"]
            .as_array()
            .unwrap()
            .contains(&queue.clone().into())),
        "{}",
        filtered.stdout
    );

    // The table: a header, then one row per call starting with its id.
    let table = org.run(&["live", "--queue", &queue]).await;
    table.assert_code(0);
    let mut lines = table.stdout.lines();
    assert!(lines.next().unwrap().starts_with("CONVERSATION"));
    let rows: BTreeSet<String> = lines
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(rows, in_queue);
    assert!(
        table.stdout.contains(&queue) && table.stdout.contains("customer"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn live_csv_is_a_skeleton_that_plan_accepts() {
    let org = org_with_queues().await;
    let live = org.run(&["live", "--csv"]).await;
    live.assert_code(0);
    let mut lines = live.stdout.lines();
    assert_eq!(lines.next(), Some("conversation_id,purpose"));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().all(|r| r.ends_with(",customer")), "{rows:?}");
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids, live_ids(&org, None));

    org.write("skeleton.csv", &live.stdout);
    org.run(&["plan", "skeleton.csv"]).await.assert_code(0);

    // Filled in with an attribute column, it plans one update per live call.
    let filled: String = live
        .stdout
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l},campaign\n")
            } else {
                format!("{l},spring\n")
            }
        })
        .collect();
    org.write("filled.csv", &filled);
    let plan = org.run(&["plan", "filled.csv", "--json"]).await;
    plan.assert_code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["summary"]["to_update"], ids.len());
}

#[tokio::test]
async fn tag_sets_the_attribute_on_every_live_call_of_the_queue_and_no_other() {
    let org = org_with_queues().await;
    let queue = busiest_queue(&org);
    let in_queue = live_ids(&org, Some(&queue));
    let run = org
        .run(&["tag", "--queue", &queue, "campaign=spring", "tier=gold"])
        .await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains(&format!("{} live calls in queue ", in_queue.len()))
            && run.stderr.contains(&format!("({queue})")),
        "{}",
        run.stderr
    );

    for call in org.state().calls() {
        let customer = call
            .conversation
            .participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("customer"))
            .unwrap();
        let agent_side_untouched = call
            .conversation
            .participants
            .iter()
            .filter(|p| p.purpose.as_deref() != Some("customer"))
            .all(|p| !p.attributes.contains_key("campaign"));
        assert!(agent_side_untouched, "only the customer is tagged");
        let tagged = customer.attributes.get("campaign").map(String::as_str) == Some("spring")
            && customer.attributes.get("tier").map(String::as_str) == Some("gold");
        assert_eq!(
            tagged,
            in_queue.contains(&call.conversation.id),
            "call {} (queue {:?}, ended {})",
            call.conversation.id,
            call.queue_id,
            call.ended
        );
    }
    assert_eq!(org.count_requests("PATCH", "/attributes"), in_queue.len());

    let rows = audit_targets(&org.audit_path()).await;
    let audited: BTreeSet<String> = rows.iter().map(|r| r.conversation_id.clone()).collect();
    assert_eq!(audited, in_queue);
    assert!(rows.iter().all(|r| r.status == "verified"), "{rows:?}");

    // Tagging again changes nothing.
    org.run(&["tag", "--queue", &queue, "campaign=spring", "tier=gold"])
        .await
        .assert_code(0);
    assert_eq!(org.count_requests("PATCH", "/attributes"), in_queue.len());
}

#[tokio::test]
async fn tag_dry_run_prints_the_plan_and_sends_no_patch() {
    let org = org_with_queues().await;
    let queue = busiest_queue(&org);
    let in_queue = live_ids(&org, Some(&queue));
    let run = org
        .run(&["tag", "--queue", &queue, "--dry-run", "campaign=spring"])
        .await;
    run.assert_code(0);
    assert_eq!(org.count_requests("PATCH", ""), 0);
    assert!(!org.audit_path().exists(), "a dry run records nothing");
    for id in &in_queue {
        assert!(run.stdout.contains(id.as_str()), "{id} in\n{}", run.stdout);
    }
    assert!(
        run.stdout
            .contains(&format!("Plan: {} to update", in_queue.len())),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn completions_for_bash_are_a_script_for_attrsync() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let run = org.run(&["completions", "bash"]).await;
    run.assert_code(0);
    assert!(run.stdout.contains("_attrsync()"), "{}", run.stdout);
    assert!(
        run.stdout.contains("complete -F _attrsync"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("reconcile"));
}

#[tokio::test]
async fn generate_man_writes_the_man_pages() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    org.run(&["generate-man", "man"]).await.assert_code(0);
    let page = std::fs::read_to_string(org.path("man/attrsync.1")).unwrap();
    assert!(page.contains(".TH attrsync 1"), "{page}");
    assert!(org.path("man/attrsync-tag.1").exists());
}
