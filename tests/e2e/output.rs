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
