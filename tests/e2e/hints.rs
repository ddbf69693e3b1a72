//! Every command the tool prints for the person to run next works when pasted: it carries the
//! flags that decide where the run lives (here `--audit` and `--api-url`, given as flags and set
//! nowhere else).

use crate::support::{Run, TestOrg, campaign_csv, output, spawn, wait_for};

/// The binary with the org's credentials but neither its audit store nor its API URL in the
/// environment: only flags say where the run lives.
fn command(org: &TestOrg, args: &[&str]) -> tokio::process::Command {
    let mut command = org.command(args);
    command
        .env_remove("ATTRSYNC_AUDIT")
        .env_remove("GENESYSCLOUD_API_URL");
    command
}

/// Runs a printed command as pasted.
async fn pasted(org: &TestOrg, hint: &str) -> Run {
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"attrsync"), "{hint}");
    output(&mut command(org, &words[1..])).await
}

/// The text between the first `open` after `label` and the next `close`.
fn between<'a>(text: &'a str, label: &str, open: char, close: char) -> &'a str {
    let after = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("{label} in {text}"))..];
    let start = after.find(open).unwrap() + 1;
    let end = start + after[start..].find(close).unwrap();
    &after[start..end]
}

#[tokio::test]
async fn every_printed_command_works_when_pasted() {
    let org = TestOrg::start(TestOrg::fast_config(20)).await;
    let api = org.sim.url();
    let place = ["--audit", "elsewhere.sqlite", "--api-url", api.as_str()];
    org.write("desired.csv", &campaign_csv(&org));

    // A saved plan says how to apply it.
    let plan = output(&mut command(
        &org,
        &[
            &["plan", "desired.csv", "--out", "plan.json"][..],
            &place[2..],
        ]
        .concat(),
    ))
    .await;
    plan.assert_code(0);
    let apply_plan = between(&plan.stderr, "apply it with", '`', '`');
    assert!(apply_plan.contains("--api-url"), "{apply_plan}");

    // An interrupted run says how to resume it and how to look at it.
    let api_requests = |log: &[genesys_sim::LoggedRequest]| {
        log.iter().filter(|r| r.path.starts_with("/api/")).count()
    };
    let before = api_requests(&org.state().request_log());
    let run = spawn(&mut command(
        &org,
        &[&["apply", "desired.csv", "--rate", "8/min"][..], &place[..]].concat(),
    ));
    wait_for(&org, "the window's budget is spent", |log| {
        api_requests(log) >= before + 8
    })
    .await;
    run.signal("INT");
    let interrupted = run.finish().await;
    interrupted.assert_code(130);
    let show = between(&interrupted.stderr, "Audit store:", '(', ')');
    let resume = interrupted
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Resume with: "))
        .unwrap_or_else(|| panic!("a resume hint: {}", interrupted.stderr));

    pasted(&org, show).await.assert_code(0);
    let resumed = pasted(&org, resume).await;
    resumed.assert_code(0);
    assert!(
        !org.path("audit.sqlite").exists(),
        "every hint used the store the run lives in"
    );
    // The resumed run's own summary hint, and the plan's.
    let show_again = between(&resumed.stderr, "Audit store:", '(', ')');
    pasted(&org, show_again).await.assert_code(0);
    pasted(&org, apply_plan).await.assert_code(0);
}
