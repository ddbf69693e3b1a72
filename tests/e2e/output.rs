//! What a command prints, when the reader goes away: a closed stdout (`| head`) ends every
//! command quietly with exit 0, never a panic or an error line.

use std::process::Stdio;

use crate::support::{TestOrg, campaign_csv, within};

/// Runs `args` with a stdout that is closed before the command writes to it.
async fn with_stdout_closed(org: &TestOrg, args: &[&str]) -> (i32, String) {
    let mut command = org.command(args);
    command.stdout(Stdio::piped());
    let mut child = command.spawn().expect("attrsync starts");
    drop(child.stdout.take());
    let out = within(&format!("attrsync {args:?} ends"), child.wait_with_output())
        .await
        .expect("attrsync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_closed_stdout_ends_every_command_quietly_with_exit_0() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let call = org.live_calls().remove(0).id;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    let cases: &[&[&str]] = &[
        &["doctor"],
        &["doctor", "--json"],
        &["get", &call],
        &["live"],
        &["live", "--json"],
        &["plan", "desired.csv"],
        &["set", &call, "campaign=spring"],
        &["audit", "runs"],
        &["audit", "list", "--json"],
        &["audit", "export", "--format", "csv"],
        &["audit", "export", "--format", "json"],
    ];
    for args in cases {
        let (code, stderr) = with_stdout_closed(&org, args).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

/// The demo's numbers agree with each other and with `audit show`: rows, targets (participants)
/// and requests, each worded as what it counts.
#[tokio::test]
async fn the_demo_counts_agree_with_its_summary_and_audit_show() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let demo = org
        .run(&["demo", "--rate", "60000/min", "--dir", "demo"])
        .await;
    demo.assert_code(0);
    let stderr = &demo.stderr;
    let number_before = |text: &str, label: &str| -> usize {
        let end = text
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {text}"));
        text[..end]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("a number before {label} in {text}"))
    };
    let store = org.path("demo/audit.sqlite");
    let shown = org
        .run(&[
            "audit",
            "show",
            "latest",
            "--json",
            "--limit",
            "0",
            "--audit",
            store.to_str().unwrap(),
        ])
        .await;
    shown.assert_code(0);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let targets = shown["targets"].as_array().unwrap().len();
    let run_requests = shown["run"]["requests"]["total"].as_u64().unwrap() as usize;

    // The plan's counts add up to the run's targets; the rows are told apart from them.
    let to_update = number_before(stderr, " to update");
    let unchanged = number_before(stderr, " unchanged,");
    let skipped = number_before(stderr, " skipped.");
    assert_eq!(to_update + unchanged + skipped, targets, "{stderr}");
    let rows = number_before(stderr, " rows (a call");
    if rows != targets {
        assert!(
            stderr.contains(&format!("The {rows} rows matched {targets} participants")),
            "{stderr}"
        );
    }
    // The simulator's total is the plan's reads plus the run's requests, as `audit show` has them.
    let total = number_before(stderr, " API requests:");
    let for_run = number_before(stderr, " for the run");
    assert_eq!(for_run, run_requests, "{stderr}");
    let for_plan = number_before(stderr, " reads for the plan");
    assert_eq!(total, for_plan + for_run, "{stderr}");
    assert!(for_plan > 0, "{stderr}");
}
