//! `attrsync revert RUN`: what a run changed is put back only where nobody changed it since,
//! judged from the simulator's attribute state and request log and from the audit store.

use std::collections::{BTreeMap, BTreeSet};

use genesys_core::models::Attributes;
use serde_json::Value;

use crate::support::{TestOrg, audit_targets, latest_run, poll, wait_until};

/// The customer participant's id of a call.
fn customer_id(org: &TestOrg, conversation_id: &str) -> String {
    let call = org.state().call(conversation_id).expect("the call exists");
    call.conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .expect("a customer")
        .id
        .clone()
}

/// A key's true value on a call's customer; absent reads as `""` (as Genesys clears).
fn value(org: &TestOrg, conversation_id: &str, key: &str) -> String {
    let call = org.state().call(conversation_id).expect("the call exists");
    call.conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .and_then(|p| p.attributes.get(key).cloned())
        .unwrap_or_default()
}

/// A flow sets `key=value` on a call's customer, outside the API.
fn flow_sets(org: &TestOrg, conversation_id: &str, key: &str, value: &str) {
    let participant = customer_id(org, conversation_id);
    assert!(org.state().flow_sets_attributes(
        conversation_id,
        &participant,
        Attributes::from([(key.to_owned(), value.to_owned())]),
    ));
}

/// The conversations the simulator answered PATCHes for, and how many PATCHes there were.
fn patched(org: &TestOrg) -> (BTreeSet<String>, usize) {
    let patches: Vec<String> = org
        .state()
        .request_log()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            r.path
                .split('/')
                .skip_while(|part| *part != "calls")
                .nth(1)
                .expect("a call's path")
                .to_owned()
        })
        .collect();
    (patches.iter().cloned().collect(), patches.len())
}

/// `conversation_id,KEY` = `value` for each call.
fn one_key_csv(calls: &[String], key: &str, value: &str) -> String {
    let mut csv = format!("conversation_id,{key}\n");
    for id in calls {
        csv.push_str(&format!("{id},{value}\n"));
    }
    csv
}

async fn latest_id(org: &TestOrg) -> String {
    latest_run(org).await["id"].as_str().unwrap().to_owned()
}

/// `audit show RUN --json` with every target.
async fn show(org: &TestOrg, run: &str) -> Value {
    let shown = org
        .run(&["audit", "show", run, "--json", "--limit", "0"])
        .await;
    shown.assert_code(0);
    serde_json::from_str(&shown.stdout).expect("show JSON")
}

#[tokio::test]
async fn a_revert_of_200_changes_restores_170_and_leaves_the_20_a_flow_changed_and_the_10_ended_alone()
 {
    let org = TestOrg::start(TestOrg::fast_config(200)).await;
    let calls: Vec<String> = org.live_calls().into_iter().map(|c| c.id).collect();
    assert_eq!(calls.len(), 200);
    let before: BTreeMap<String, String> = calls
        .iter()
        .map(|id| (id.clone(), value(&org, id, "campaign")))
        .collect();
    assert!(
        before.values().any(String::is_empty) && before.values().any(|v| !v.is_empty()),
        "some customers have a campaign before the run and some none: {before:?}"
    );
    org.write("campaign.csv", &one_key_csv(&calls, "campaign", "spring"));
    // 200 calls take more requests than the default budget's minute: the simulator allows more.
    let rate = ["--rate", "6000/min"];
    org.run(&["apply", "campaign.csv", rate[0], rate[1]])
        .await
        .assert_code(0);
    let original = latest_id(&org).await;
    assert!(
        calls
            .iter()
            .all(|id| value(&org, id, "campaign") == "spring")
    );

    // Meanwhile a flow changes 20 of the keys, and 10 other calls end.
    let (flowed, rest) = calls.split_at(20);
    let (ended, restored) = rest.split_at(10);
    for (i, id) in flowed.iter().enumerate() {
        flow_sets(&org, id, "campaign", &format!("flow-{i}"));
    }
    for id in ended {
        assert!(org.state().end_call(id));
    }
    org.state().reset_log();

    let revert = org.run(&["revert", &original, rate[0], rate[1]]).await;
    // Keys left alone as stale are not as the revert wanted: a partial result.
    revert.assert_code(3);
    for (i, id) in flowed.iter().enumerate() {
        assert_eq!(value(&org, id, "campaign"), format!("flow-{i}"), "{id}");
    }
    for id in ended {
        assert_eq!(value(&org, id, "campaign"), "spring", "{id}");
    }
    for id in restored {
        assert_eq!(value(&org, id, "campaign"), before[id], "{id}");
    }
    let restored_ids: BTreeSet<String> = restored.iter().cloned().collect();
    assert_eq!(
        patched(&org),
        (restored_ids, 170),
        "one PATCH for each of the 170, none for the 30"
    );

    let revert_run = latest_id(&org).await;
    let shown = show(&org, &revert_run).await;
    assert_eq!(shown["run"]["command"], "revert");
    assert_eq!(shown["run"]["reverts"], original.as_str());
    assert_eq!(shown["run"]["source_path"], format!("run:{original}"));
    let counts = &shown["run"]["counts"];
    assert_eq!(
        (
            counts["verified"].as_u64(),
            counts["stale"].as_u64(),
            counts["skipped"].as_u64()
        ),
        (Some(170), Some(20), Some(10)),
        "{counts}"
    );
    let targets = shown["targets"].as_array().unwrap();
    for (i, id) in flowed.iter().enumerate() {
        let target = targets
            .iter()
            .find(|t| t["conversation_id"] == id.as_str())
            .unwrap();
        assert_eq!(target["status"], "stale");
        let reason = target["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("\"flow-{i}\"")) && reason.contains("\"spring\""),
            "a stale key names the value found and the value the run wrote: {reason}"
        );
    }

    // The same revert again: everything is already back, or still stale or ended.
    org.state().reset_log();
    org.run(&["revert", &original, rate[0], rate[1]])
        .await
        .assert_code(3);
    assert_eq!(patched(&org).1, 0, "the second revert sends nothing");
    let counts = show(&org, &latest_id(&org).await).await["run"]["counts"].clone();
    assert_eq!(
        (
            counts["unchanged"].as_u64(),
            counts["stale"].as_u64(),
            counts["skipped"].as_u64()
        ),
        (Some(170), Some(20), Some(10)),
        "{counts}"
    );
    for id in restored {
        assert_eq!(value(&org, id, "campaign"), before[id], "{id}");
    }
}

#[tokio::test]
async fn dry_run_prints_the_plan_as_plan_does_sends_nothing_and_filters_narrow_the_revert() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    let calls: Vec<String> = org.live_calls().into_iter().map(|c| c.id).collect();
    // `tier` has no value before the run: reverting clears it.
    assert!(calls.iter().all(|id| value(&org, id, "tier").is_empty()));
    org.write("tier.csv", &one_key_csv(&calls, "tier", "gold"));
    org.run(&["apply", "tier.csv"]).await.assert_code(0);
    let original = latest_id(&org).await;
    org.state().reset_log();

    // It reads the audit store only: no credentials are needed.
    let mut without_credentials = org.command(&["revert", "latest", "--dry-run"]);
    without_credentials
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET");
    let dry = crate::support::output(&mut without_credentials).await;
    dry.assert_code(0);
    assert!(
        org.state().request_log().is_empty(),
        "a dry run reads the audit store only"
    );
    for id in &calls {
        assert!(
            dry.stdout.contains(&format!(
                "  ~ {id} participant {} (customer)\n      - tier = \"gold\" -> \"\" (clear)\n",
                customer_id(&org, id)
            )),
            "{}",
            dry.stdout
        );
    }
    assert!(
        dry.stdout
            .ends_with("Plan: 4 to update (0 keys set, 4 cleared), 0 unchanged, 0 skipped.\n"),
        "{}",
        dry.stdout
    );
    let runs = org.run(&["audit", "runs", "--json"]).await;
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "a dry run records no run"
    );

    let json = org
        .run(&[
            "revert",
            &original,
            "--dry-run",
            "--json",
            "--conversation",
            &calls[1].to_uppercase(),
            "--key",
            "tier",
        ])
        .await;
    json.assert_code(0);
    let plan: Value = serde_json::from_str(&json.stdout).expect("the plan as JSON");
    assert_eq!(plan["format_version"], 2);
    assert_eq!(plan["summary"]["to_update"], 1);
    assert_eq!(plan["targets"][0]["conversation_id"], calls[1].as_str());
    assert_eq!(
        plan["targets"][0]["desired"],
        serde_json::json!({"tier": ""})
    );
    let none = org
        .run(&[
            "revert",
            &original,
            "--dry-run",
            "--json",
            "--key",
            "campaign",
        ])
        .await;
    none.assert_code(0);
    let plan: Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(
        plan["summary"]["to_update"], 0,
        "the run never wrote campaign"
    );
    assert!(org.state().request_log().is_empty());

    // Applied with the same filter: one PATCH, to that call, clearing tier; NDJSON and results.
    let applied = org
        .run(&[
            "revert",
            &original,
            "--conversation",
            &calls[1],
            "--json",
            "--results",
            "out",
        ])
        .await;
    applied.assert_code(0);
    let (conversations, count) = patched(&org);
    assert_eq!(
        (conversations, count),
        (BTreeSet::from([calls[1].clone()]), 1)
    );
    let body = org
        .state()
        .request_log()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .and_then(|r| r.body)
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"attributes": {"tier": ""}}),
        "a cleared key is written as \"\""
    );
    assert_eq!(value(&org, &calls[1], "tier"), "");
    for id in [&calls[0], &calls[2], &calls[3]] {
        assert_eq!(value(&org, id, "tier"), "gold", "{id} is not in the filter");
    }
    let events: Vec<Value> = applied
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("NDJSON"))
        .collect();
    assert_eq!(events[0]["type"], "run_started");
    assert_eq!(events[0]["source"], format!("run:{original}"));
    let targets: Vec<&Value> = events.iter().filter(|e| e["type"] == "target").collect();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["status"], "verified");
    assert_eq!(targets[0]["conversation_id"], calls[1].as_str());
    let succeeded = std::fs::read_to_string(org.path("out/succeeded.csv")).unwrap();
    let participant = customer_id(&org, &calls[1]);
    assert_eq!(
        succeeded,
        format!(
            "conversation_id,participant_id,purpose,user_id,key,value,attrsync_status,attrsync_code,attrsync_message,attrsync_correlation_id\n\
             {},{participant},,,tier,,verified,,,{}\n",
            calls[1],
            audit_targets(&org.audit_path())
                .await
                .last()
                .and_then(|row| row.correlation_id.clone())
                .unwrap()
        )
    );
}

#[tokio::test]
async fn show_and_report_link_a_run_and_its_reverts_both_ways_and_a_revert_is_not_reverted() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let calls: Vec<String> = org.live_calls().into_iter().map(|c| c.id).collect();
    org.write("tier.csv", &one_key_csv(&calls, "tier", "gold"));
    org.run(&["apply", "tier.csv"]).await.assert_code(0);
    let original = latest_id(&org).await;
    org.run(&["revert", "latest"]).await.assert_code(0);
    let revert = latest_id(&org).await;

    let text = org.run(&["audit", "show", &original]).await;
    text.assert_code(0);
    assert!(
        text.stdout.contains(&format!(
            "reverted   by run {revert} (completed, exit 0): 3 verified\n"
        )),
        "{}",
        text.stdout
    );
    let shown = show(&org, &original).await;
    assert_eq!(shown["reverted_by"][0]["id"], revert.as_str());
    assert_eq!(shown["reverted_by"][0]["counts"]["verified"], 3);
    assert_eq!(shown["run"]["reverts"], Value::Null);
    let text = org.run(&["audit", "show", &revert]).await;
    assert!(
        text.stdout
            .contains(&format!("reverts    run {original}\n")),
        "{}",
        text.stdout
    );
    assert_eq!(
        show(&org, &revert).await["run"]["reverts"],
        original.as_str()
    );

    org.run(&["audit", "report", &original, "--html", "original.html"])
        .await
        .assert_code(0);
    let page = std::fs::read_to_string(org.path("original.html")).unwrap();
    assert!(
        page.contains(&format!("by run {revert} (completed, exit 0): 3 verified")),
        "{page}"
    );
    org.run(&["audit", "report", &revert, "--html", "revert.html"])
        .await
        .assert_code(0);
    let page = std::fs::read_to_string(org.path("revert.html")).unwrap();
    assert!(
        page.contains(&format!("This run reverts run <code>{original}</code>")),
        "{page}"
    );

    // A revert of the revert is refused before anything is read or sent.
    org.state().reset_log();
    for reference in [revert.as_str(), "latest"] {
        let refused = org.run(&["revert", reference]).await;
        refused.assert_code(1);
        assert!(
            refused.stderr.contains(&format!(
                "run {revert} is a revert (of run {original}) and is not reverted in turn"
            )),
            "{}",
            refused.stderr
        );
    }
    assert!(org.state().request_log().is_empty());
    assert_eq!(latest_id(&org).await, revert, "no run was recorded");
}

#[tokio::test]
async fn runs_of_set_tag_a_saved_plan_sqlite_and_reconcile_are_each_reverted() {
    let org = TestOrg::start(TestOrg::fast_config(6)).await;
    let calls: Vec<String> = org.live_calls().into_iter().map(|c| c.id).collect();
    let snapshot = |key: &str| -> BTreeMap<String, String> {
        calls
            .iter()
            .map(|id| (id.clone(), value(&org, id, key)))
            .collect()
    };
    let revert_restores = async |key: &str, before: &BTreeMap<String, String>| {
        assert_ne!(&snapshot(key), before, "the run changed {key}");
        org.run(&["revert", "latest"]).await.assert_code(0);
        assert_eq!(&snapshot(key), before, "the revert put {key} back");
    };

    let before = snapshot("agentic");
    org.run(&["set", &calls[0], "agentic=yes"])
        .await
        .assert_code(0);
    revert_restores("agentic", &before).await;

    let queue = org.state().calls()[0].queue_id.clone().expect("a queue");
    let before = snapshot("queue_tag");
    org.run(&["tag", "--queue", &queue, "queue_tag=q"])
        .await
        .assert_code(0);
    revert_restores("queue_tag", &before).await;

    let before = snapshot("campaign");
    org.write("campaign.csv", &one_key_csv(&calls, "campaign", "planned"));
    org.run(&["plan", "campaign.csv", "--out", "plan.json"])
        .await
        .assert_code(0);
    org.run(&["apply", "plan.json"]).await.assert_code(0);
    revert_restores("campaign", &before).await;

    let before = snapshot("crm");
    let mut conn = sqlx::ConnectOptions::connect(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(org.path("crm.sqlite"))
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    for id in &calls {
        sqlx::query("INSERT INTO desired_attributes VALUES (?1, 'crm', 'vip')")
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    org.run(&["apply", "crm.sqlite"]).await.assert_code(0);
    revert_restores("crm", &before).await;

    let before = snapshot("tier");
    org.write("tier.csv", &one_key_csv(&calls, "tier", "gold"));
    org.run(&["reconcile", "tier.csv", "--once"])
        .await
        .assert_code(0);
    revert_restores("tier", &before).await;
}

#[tokio::test]
async fn a_follows_key_written_twice_goes_back_to_its_value_before_the_first_write() {
    let org = TestOrg::start(genesys_sim::SimConfig {
        queues: 1,
        ..TestOrg::fast_config(0)
    })
    .await;
    let queue = org.state().queues()[0].id.clone();
    let follow = org.spawn(&["tag", "--queue", &queue, "--follow", "campaign=spring"]);
    wait_until("the follow's socket connects", || {
        org.state().notification_status().sockets > 0
    })
    .await;
    let id = org.state().arrive_call(Some(&queue)).unwrap();
    let audit = org.audit_path();
    let rows_of = |statuses: &'static [&'static str], count: usize| {
        let (audit, id) = (audit.clone(), id.clone());
        async move {
            let rows = audit_targets(&audit).await;
            let mine: Vec<&str> = rows
                .iter()
                .filter(|r| r.conversation_id == id)
                .map(|r| r.status.as_str())
                .collect();
            if mine.len() == count && mine.iter().all(|s| statuses.contains(s)) {
                Ok(())
            } else {
                Err(format!("{mine:?}"))
            }
        }
    };
    poll("the follow's change is verified", || {
        rows_of(&["verified"], 1)
    })
    .await;
    assert_eq!(value(&org, &id, "campaign"), "spring");
    // A flow overwrites it; the follow writes it again (its one re-application).
    flow_sets(&org, &id, "campaign", "summer");
    poll("the re-application is verified", || {
        rows_of(&["verified", "drift"], 2)
    })
    .await;
    assert_eq!(value(&org, &id, "campaign"), "spring");

    // While the follow runs, a revert covers what it recorded so far, and says so.
    let dry = org.run(&["revert", "latest", "--dry-run", "--json"]).await;
    dry.assert_code(0);
    assert!(
        dry.stderr
            .contains("is still running: this revert covers the changes it recorded"),
        "{}",
        dry.stderr
    );
    let plan: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["targets"][0]["conversation_id"], id.as_str());
    // Restored to the value before the first write (none), not the flow's "summer".
    assert_eq!(
        plan["targets"][0]["desired"],
        serde_json::json!({"campaign": ""})
    );

    follow.signal("TERM");
    follow.finish().await.assert_code(0);
    let follow_run = latest_id(&org).await;
    org.state().reset_log();
    org.run(&["revert", &follow_run]).await.assert_code(0);
    assert_eq!(value(&org, &id, "campaign"), "");
    assert_eq!(patched(&org).1, 1);
}

#[tokio::test]
async fn a_resumed_apply_is_reverted_and_a_killed_revert_is_finished_by_apply_resume() {
    let org = TestOrg::start(TestOrg::fast_config(6)).await;
    let calls: Vec<String> = org.live_calls().into_iter().map(|c| c.id).collect();
    org.write("tier.csv", &one_key_csv(&calls, "tier", "gold"));
    let killed_midway = async |args: &[&str]| {
        org.state().hold_after(5);
        let child = org.spawn(args);
        org.wait_until_holding().await;
        child.kill().await;
        org.state().release();
    };
    killed_midway(&["apply", "tier.csv"]).await;
    let original = latest_id(&org).await;
    org.run(&["apply", "--resume", &original])
        .await
        .assert_code(0);
    assert!(calls.iter().all(|id| value(&org, id, "tier") == "gold"));

    killed_midway(&["revert", &original]).await;
    let revert = latest_id(&org).await;
    assert_ne!(revert, original);
    assert!(
        calls.iter().any(|id| value(&org, id, "tier") == "gold"),
        "the revert was stopped before it was done"
    );
    org.run(&["apply", "--resume", &revert])
        .await
        .assert_code(0);
    assert!(calls.iter().all(|id| value(&org, id, "tier").is_empty()));
    let shown = show(&org, &revert).await;
    assert_eq!(shown["run"]["reverts"], original.as_str());
    let counts = &shown["run"]["counts"];
    assert_eq!(
        counts["verified"].as_u64().unwrap_or(0) + counts["unchanged"].as_u64().unwrap_or(0),
        6,
        "{counts}"
    );

    org.state().reset_log();
    org.run(&["revert", &original]).await.assert_code(0);
    assert_eq!(patched(&org).1, 0, "everything is already back");
}
