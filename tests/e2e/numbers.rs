//! Rows that select calls by phone number: a snapshot finds the live calls they select from the
//! analytics listing of live calls, reads only those, and reports numbers no live call has.
//! Judged from the simulator's calls and request log, and the audit store.

use std::collections::BTreeSet;

use genesys_core::models::CallConversation;

use crate::support::{TestOrg, audit_targets};

const LISTING: &str = "/api/v2/analytics/conversations/details/query";
const CALLS: &str = "/api/v2/conversations/calls/";

/// The customer's number of a simulated call, as E.164 (`+15551234567`).
fn customer_number(call: &CallConversation) -> String {
    call.participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .and_then(|p| p.address.clone())
        .expect("a customer with an address")
        .trim_start_matches("tel:")
        .to_owned()
}

fn customer_attribute(org: &TestOrg, conversation_id: &str, key: &str) -> Option<String> {
    let call = org
        .state()
        .call(conversation_id)
        .expect("the call")
        .conversation;
    call.participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .and_then(|p| p.attributes.get(key).cloned())
}

/// `+15551234567` written as a US customer would: `(555) 123-4567`.
fn national(e164: &str) -> String {
    let digits = e164.trim_start_matches("+1");
    format!("({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..])
}

#[tokio::test]
async fn numbered_rows_tag_the_live_calls_with_those_numbers_and_read_no_other() {
    let org = TestOrg::start(TestOrg::fast_config(8)).await;
    let calls = org.live_calls();
    let (first, second) = (&calls[0], &calls[1]);
    let queues = org.state().queues();
    let first_queue = org
        .state()
        .call(&first.id)
        .and_then(|c| c.queue_id)
        .expect("a queued call");
    let dialed = &queues
        .iter()
        .find(|q| q.id == first_queue)
        .expect("its queue")
        .number;
    // The calls of that queue: an inbound customer dialled its number.
    let of_queue: BTreeSet<String> = org
        .state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_deref() == Some(first_queue.as_str()))
        .map(|c| c.conversation.id)
        .collect();
    let csv = format!(
        "customer_number,dialed_number,tier,campaign\n\
         {},,gold,\n\
         \"{}\",,silver,\n\
         +15550000000,,bronze,\n\
         ,{dialed},,spring\n",
        customer_number(first),
        national(&customer_number(second)),
    );
    let source = org.write("numbers.csv", &csv);
    org.state().reset_log();

    let run = org
        .run(&["apply", source.to_str().unwrap(), "--default-region", "US"])
        .await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("1 row selects calls by a number no live call has (no request)"),
        "{}",
        run.stderr
    );

    assert_eq!(
        customer_attribute(&org, &first.id, "tier").as_deref(),
        Some("gold")
    );
    assert_eq!(
        customer_attribute(&org, &second.id, "tier").as_deref(),
        Some("silver")
    );
    for call in org.live_calls() {
        let campaign = customer_attribute(&org, &call.id, "campaign");
        assert_eq!(
            campaign.as_deref(),
            of_queue.contains(&call.id).then_some("spring"),
            "call {} (queue {:?})",
            call.id,
            org.state().call(&call.id).and_then(|c| c.queue_id)
        );
    }

    // One listing page of the 8 live calls, then reads of the matched calls only.
    let log = org.state().request_log();
    let listed = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == LISTING)
        .count();
    assert_eq!(listed, 1);
    let read: BTreeSet<String> = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(CALLS))
        .map(|r| r.path.trim_start_matches(CALLS).to_owned())
        .collect();
    let mut matched = of_queue.clone();
    matched.insert(first.id.clone());
    matched.insert(second.id.clone());
    assert_eq!(read, matched, "only the matched calls are read");

    // Each matched call's customer is one target, carrying the lines of the rows that reach it.
    let targets = audit_targets(&org.audit_path()).await;
    let conversations: BTreeSet<String> =
        targets.iter().map(|t| t.conversation_id.clone()).collect();
    assert_eq!(conversations, matched);
}

#[tokio::test]
async fn a_national_number_without_a_default_region_is_refused_with_its_line_and_nothing_is_sent() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let source = org.write(
        "numbers.csv",
        "customer_number,tier\n+15551230001,gold\n(555) 123-0002,silver\n",
    );
    let run = org.run(&["apply", source.to_str().unwrap()]).await;
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "numbers.csv:3: invalid customer_number: \"(555) 123-0002\" is not a phone number: \
             it has no country code (+...); numbers written nationally need --default-region"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(org.count_requests("PATCH", ""), 0);
}

#[tokio::test]
async fn an_unknown_default_region_is_a_usage_error() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let run = org
        .run(&["plan", "missing.csv", "--default-region", "UK"])
        .await;
    run.assert_code(64);
    assert!(
        run.stderr.contains("the United Kingdom is GB"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_contact_list_in_sqlite_is_applied_then_reconciled_and_its_unmatched_numbers_are_listed_skipped()
 {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    let calls = org.live_calls();
    let mut conn = org
        .sqlite_source(
            "contacts.sqlite",
            "CREATE TABLE desired_attributes (customer_number TEXT, key TEXT, value TEXT)",
        )
        .await;
    let rows = [
        (customer_number(&calls[0]), "gold"),
        (national(&customer_number(&calls[1])), "silver"),
        ("+15550000000".to_owned(), "bronze"),
    ];
    for (number, tier) in &rows {
        sqlx::query("INSERT INTO desired_attributes VALUES (?1, 'tier', ?2)")
            .bind(number)
            .bind(tier)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);

    org.run(&[
        "apply",
        "contacts.sqlite",
        "--default-region",
        "US",
        "--results",
        "out",
    ])
    .await
    .assert_code(0);
    assert_eq!(
        customer_attribute(&org, &calls[0].id, "tier").as_deref(),
        Some("gold")
    );
    assert_eq!(
        customer_attribute(&org, &calls[1].id, "tier").as_deref(),
        Some("silver")
    );
    let succeeded = std::fs::read_to_string(org.path("out/succeeded.csv")).unwrap();
    let failed = std::fs::read_to_string(org.path("out/failed.csv")).unwrap();
    assert_eq!(succeeded.lines().count(), 1 + 2, "{succeeded}");
    assert!(
        failed.contains("+15550000000,tier,bronze,skipped,,no live call has this number"),
        "{failed}"
    );

    // In sync: the second iteration lists the live calls, reads the two matched ones, writes none.
    org.state().reset_log();
    let run = org
        .run(&[
            "reconcile",
            "contacts.sqlite",
            "--default-region",
            "US",
            "--once",
        ])
        .await;
    run.assert_code(0);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(
        said.contains("in sync (2 targets, 0 changes; 1 row with numbers no live call has)"),
        "{said}"
    );
    assert_eq!(org.count_requests("PATCH", ""), 0);
    assert_eq!(org.count_requests("GET", CALLS), 2);
    // The run says it too, as a count: the store has no row for it.
    let show = org.run(&["audit", "show", "latest"]).await;
    assert!(
        show.stdout
            .contains("1 row selected calls by a number no live call had"),
        "{}",
        show.stdout
    );
}

/// Applies `numbers.csv`, a live call's customer with a tier and a number no live call has,
/// through `commands` (each run in turn, each exiting 0; the last writes `--results out`), then
/// checks what any way of applying it must give: the call's tier set, the other number a count
/// on the run and a skipped row of the result files.
async fn apply_one_matched_one_unmatched_number(commands: &[&[&str]]) {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let calls = org.live_calls();
    org.write(
        "numbers.csv",
        &format!(
            "customer_number,tier\n{},gold\n+15550000000,bronze\n",
            customer_number(&calls[0])
        ),
    );
    for command in commands {
        org.run(command).await.assert_code(0);
    }
    assert_eq!(
        customer_attribute(&org, &calls[0].id, "tier").as_deref(),
        Some("gold")
    );
    let failed = std::fs::read_to_string(org.path("out/failed.csv")).unwrap();
    assert!(
        failed.contains("+15550000000,bronze,skipped,,no live call has this number"),
        "{failed}"
    );
    assert_eq!(
        crate::support::latest_run(&org).await["no_live_call_rows"],
        1
    );
}

/// With `--max-changes` the desired state is planned first (`plan_live`): a number no live call
/// has is still a count on the run and a skipped row of the result files, as without it.
#[tokio::test]
async fn under_max_changes_an_unmatched_number_is_still_counted_and_listed_skipped() {
    apply_one_matched_one_unmatched_number(&[&[
        "apply",
        "numbers.csv",
        "--max-changes",
        "10",
        "--results",
        "out",
    ]])
    .await;
}

/// A plan saved with `plan --out` keeps the rows whose number no live call had: applied, it
/// counts them on its run and lists them skipped, as applying the source directly does.
#[tokio::test]
async fn a_saved_plan_keeps_its_unmatched_numbers_counted_and_listed_skipped() {
    apply_one_matched_one_unmatched_number(&[
        &["plan", "numbers.csv", "--out", "plan.json"],
        &["apply", "plan.json", "--results", "out"],
    ])
    .await;
}

/// Rows that all name a queue list only that queue's live calls: one page of its calls, not
/// every page of the org's.
#[tokio::test]
async fn rows_that_all_name_a_queue_list_only_its_live_calls() {
    let org = TestOrg::start(TestOrg::fast_config(250)).await;
    let queue = org.state().queues()[0].clone();
    let of_queue: BTreeSet<String> = org
        .state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_deref() == Some(queue.id.as_str()))
        .map(|c| c.conversation.id)
        .collect();
    assert!(
        !of_queue.is_empty() && of_queue.len() <= 100,
        "{}",
        of_queue.len()
    );
    let before: Vec<(String, Option<String>)> = org
        .live_calls()
        .into_iter()
        .map(|call| {
            let campaign = customer_attribute(&org, &call.id, "campaign");
            (call.id, campaign)
        })
        .collect();
    let source = org.write(
        "spring.csv",
        &format!(
            "dialed_number,queue_id,campaign\n{},{},spring\n",
            queue.number, queue.id
        ),
    );
    org.run(&["apply", source.to_str().unwrap()])
        .await
        .assert_code(0);
    let listings = org.count_requests("POST", "/analytics/conversations/details/query");
    assert_eq!(
        listings, 1,
        "one page of the queue's calls, not 3 of the org's"
    );
    for (id, campaign) in before {
        let wanted = match of_queue.contains(&id) {
            true => Some("spring"),
            false => campaign.as_deref(),
        };
        assert_eq!(
            customer_attribute(&org, &id, "campaign").as_deref(),
            wanted,
            "call {id}"
        );
    }
}
