//! Queues by name or id: `attrsync queues`, and `--queue NAME|ID` of `live` and `tag`, resolved
//! through the routing queues API before anything is recorded or sent.

use std::collections::{BTreeMap, BTreeSet};

use genesys_sim::SimConfig;

use crate::support::{TestOrg, audit_targets};

/// An org whose queues have the names given, with calls in each.
async fn org_named(names: &[&str]) -> TestOrg {
    TestOrg::start(SimConfig {
        queue_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..TestOrg::fast_config(24)
    })
    .await
}

fn queue_id(org: &TestOrg, name: &str) -> String {
    org.state()
        .queues()
        .into_iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| panic!("a queue named {name}"))
        .id
}

/// Live calls per queue id, as the simulator holds them.
fn live_ids(org: &TestOrg, queue: &str) -> BTreeSet<String> {
    org.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_deref() == Some(queue))
        .map(|c| c.conversation.id)
        .collect()
}

/// The analytics listings and queue reads the simulator answered.
fn analytics_requests(org: &TestOrg) -> usize {
    org.count_requests("POST", "/analytics/conversations/details/query")
}

#[tokio::test]
async fn queues_lists_each_queue_with_its_id_and_live_calls_from_one_listing() {
    let org = org_named(&["Billing", "Sales", "Support"]).await;
    let run = org.run(&["queues", "--json"]).await;
    run.assert_code(0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let listed: BTreeMap<String, (String, u64)> = listed
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap().to_owned(),
                (
                    q["id"].as_str().unwrap().to_owned(),
                    q["live_calls"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, u64)> = org
        .state()
        .queues()
        .into_iter()
        .map(|q| {
            let live = live_ids(&org, &q.id).len() as u64;
            (q.name, (q.id, live))
        })
        .collect();
    assert_eq!(listed, expected);
    assert!(expected.values().any(|(_, live)| *live > 0));
    // Counted from one listing of the live calls, not one per queue.
    assert_eq!(analytics_requests(&org), 1);

    // A name pattern narrows the list; the table shows name, id and count.
    let table = org.run(&["queues", "sal*"]).await;
    table.assert_code(0);
    let rows: Vec<&str> = table.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", table.stdout);
    let sales = &expected["Sales"];
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["Sales", sales.0.as_str(), &sales.1.to_string()]
    );
}

#[tokio::test]
async fn tag_and_live_take_a_queue_by_name() {
    let org = org_named(&["Billing", "Sales", "Support"]).await;
    let billing = queue_id(&org, "Billing");
    let in_billing = live_ids(&org, &billing);
    assert!(!in_billing.is_empty());

    let live = org.run(&["live", "--queue", "billing", "--json"]).await;
    live.assert_code(0);
    let calls: Vec<serde_json::Value> = serde_json::from_str(&live.stdout).unwrap();
    let listed: BTreeSet<String> = calls
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, in_billing);
    assert!(
        live.stderr
            .contains(&format!("in queue Billing ({billing})")),
        "{}",
        live.stderr
    );

    let tag = org
        .run(&["tag", "--queue", "Billing", "campaign=spring"])
        .await;
    tag.assert_code(0);
    assert_eq!(org.count_requests("PATCH", "/attributes"), in_billing.len());
    let audited: BTreeSet<String> = audit_targets(&org.audit_path())
        .await
        .into_iter()
        .map(|r| r.conversation_id)
        .collect();
    assert_eq!(audited, in_billing);
    // The run records the queue's id, not the name it was given as.
    let shown = org.run(&["audit", "runs", "--json"]).await;
    shown.assert_code(0);
    assert!(
        shown.stdout.contains(&format!("queue:{billing}")),
        "{}",
        shown.stdout
    );
}

/// Each wrong queue: exit 1, an error naming it and what to do, nothing sent or recorded.
#[tokio::test]
async fn a_queue_that_names_no_single_queue_stops_before_any_run() {
    let org = org_named(&["Sales", "Sales", "Support"]).await;
    let unknown_id = "0b9f5a52-1111-4c2b-9a49-5d3f6a7b8c9d";
    let cases: [(&[&str], &str); 6] = [
        (
            &["tag", "--queue", "Biling", "campaign=spring"],
            "\"Biling\"",
        ),
        (
            &["tag", "--queue", unknown_id, "campaign=spring"],
            unknown_id,
        ),
        (
            &["tag", "--queue", "Biling", "--follow", "campaign=spring"],
            "\"Biling\"",
        ),
        (&["live", "--queue", unknown_id], unknown_id),
        (
            &["tag", "--queue", "Sales", "campaign=spring"],
            "matches 2 queues",
        ),
        (
            &["tag", "--queue", "Support", "--queue", "Sales", "x=y"],
            "matches 2 queues",
        ),
    ];
    for (args, named) in cases {
        let run = org.run(args).await;
        run.assert_code(1);
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("attrsync queues"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(analytics_requests(&org), 0, "no live calls were listed");
    assert_eq!(org.count_requests("PATCH", ""), 0);
    assert!(!org.audit_path().exists(), "no run was recorded");
}

#[tokio::test]
async fn a_client_that_may_not_read_queues_is_told_which_permission() {
    let org = TestOrg::start(SimConfig {
        queues_forbidden: true,
        ..TestOrg::fast_config(4)
    })
    .await;
    let run = org
        .run(&["tag", "--queue", "Sales", "campaign=spring"])
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("\"Sales\"") && run.stderr.contains("routing:queue:view"),
        "{}",
        run.stderr
    );
    assert!(!org.audit_path().exists());
    let run = org.run(&["queues"]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("routing:queue:view"), "{}", run.stderr);
}

#[tokio::test]
async fn a_malformed_queue_is_a_usage_error() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    for value in ["", "  ", "Bi*ll"] {
        let run = org.run(&["tag", "--queue", value, "campaign=spring"]).await;
        run.assert_code(64);
        assert!(run.stderr.contains("--queue"), "{value:?}: {}", run.stderr);
    }
    assert!(org.state().request_log().is_empty(), "nothing was sent");
}

/// `attrsync sim`'s banner: its queues (name, id), and one `export` line after which commands
/// reach it without `--api-url`; it suggests `attrsync` commands, not a curl pipeline.
#[tokio::test]
async fn the_simulator_banner_lists_its_queues_and_the_one_line_that_reaches_it() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let mut sim = org.spawn(&[
        "sim",
        "--port",
        "0",
        "--calls",
        "12",
        "--queue-name",
        "Billing,Sales",
    ]);
    let export = sim
        .next_stderr_line("the export line", |l| l.trim_start().starts_with("export "))
        .await;
    sim.next_stderr_line("the end of the banner", |l| l.contains("Ctrl-C"))
        .await;
    let vars: Vec<(String, String)> = export
        .trim()
        .strip_prefix("export ")
        .unwrap()
        .split_whitespace()
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    assert!(
        vars.iter().any(|(name, _)| name == "GENESYSCLOUD_API_URL"),
        "{export}"
    );

    // The pasted line alone: no credentials, API URL or audit store from the test's org.
    let mut queues = org.command(&["queues", "--json"]);
    queues
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET")
        .env_remove("GENESYSCLOUD_API_URL")
        .envs(vars);
    let listed = crate::support::output(&mut queues).await;
    listed.assert_code(0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Billing", "Sales"]);

    sim.signal("INT");
    let run = sim.finish().await;
    run.assert_code(0);
    for queue in &listed {
        let (name, id) = (
            queue["name"].as_str().unwrap(),
            queue["id"].as_str().unwrap(),
        );
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(name) && l.contains(id) && l.contains("live calls")),
            "{name} {id} in\n{}",
            run.stdout
        );
    }
    assert!(run.stderr.contains("attrsync live"), "{}", run.stderr);
    assert!(!run.stderr.contains("curl"), "{}", run.stderr);
}
