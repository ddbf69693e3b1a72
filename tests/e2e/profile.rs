//! gc CLI profiles, a given access token and `attrsync doctor`, against the simulator.

use crate::support::{Run, TestOrg, campaign_csv, output, write_private};

/// The binary with the org's URL but no credentials in the environment.
async fn run_without_credentials(org: &TestOrg, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = org.command(args);
    cmd.env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
        .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET");
    for (name, value) in env {
        cmd.env(name, value);
    }
    output(&mut cmd).await
}

#[tokio::test]
async fn a_named_profile_gives_the_credentials_and_a_higher_source_overrides_it_with_a_warning() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let (id, secret) = org.sim.demo_credentials();
    let config = write_private(
        &org,
        "config.toml",
        &format!(
            "[DEFAULT]\nclient_credentials = \"nobody\"\nclient_secret = \"wrong\"\n\n[Sim]\nclient_credentials = \"{id}\"\nclient_secret = \"{secret}\"\nenvironment = \"eu_central_2\"\n"
        ),
    );
    let call = org.live_calls().remove(0).id;

    // No profile is read unless one is named: without credentials elsewhere, that is an error.
    let run = run_without_credentials(&org, &["get", &call], &[]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("--profile"), "{}", run.stderr);

    // A configuration file with no profile named is a usage error, before anything is sent.
    let run = run_without_credentials(&org, &["--gc-config", &config, "get", &call], &[]).await;
    run.assert_code(64);
    assert!(run.stderr.contains("--profile NAME"), "{}", run.stderr);
    assert_eq!(org.count_requests("POST", "/oauth/token"), 0);

    let run = run_without_credentials(
        &org,
        &["--profile", "sim", "--gc-config", &config, "get", &call],
        &[],
    )
    .await;
    run.assert_code(0);
    assert!(!run.stderr.contains(&secret), "{}", run.stderr);
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);

    // ATTRSYNC_PROFILE names it too; the environment's credentials win, with a warning.
    let mut cmd = org.command(&["--gc-config", &config, "get", &call]);
    cmd.env("ATTRSYNC_PROFILE", "default");
    let run = output(&mut cmd).await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("credentials of gc profile \"DEFAULT\" are not used")
            && run.stderr.contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn unusable_profiles_are_refused_with_what_to_do() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let config = write_private(
        &org,
        "config.toml",
        "[me]\ngrant_type = \"3\"\nclient_credentials = \"pkce-client\"\noauth_token_data = \"{}\"\n",
    );
    let call = org.live_calls().remove(0).id;
    let run = run_without_credentials(
        &org,
        &["--profile", "me", "--gc-config", &config, "get", &call],
        &[],
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("user-login profile"), "{}", run.stderr);
    let run = run_without_credentials(
        &org,
        &["--profile", "other", "--gc-config", &config, "get", &call],
        &[],
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("profiles there: me"), "{}", run.stderr);
    assert_eq!(org.count_requests("POST", "/oauth/token"), 0);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (id, secret) = org.sim.demo_credentials();
        let open = org.write(
            "open.toml",
            &format!("[p]\nclient_credentials = \"{id}\"\nclient_secret = \"{secret}\"\n"),
        );
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = open.display().to_string();
        let run = run_without_credentials(
            &org,
            &["--profile", "p", "--gc-config", &open, "get", &call],
            &[],
        )
        .await;
        run.assert_code(0);
        assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    }
}

/// A token the simulator issued to the demo client, taken after one run with client credentials.
async fn issued_token(org: &TestOrg) -> String {
    let call = org.live_calls().remove(0).id;
    org.run(&["get", &call]).await.assert_code(0);
    let tokens = org.state().issued_tokens();
    assert_eq!(tokens.len(), 1);
    tokens.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_given_token_is_used_without_a_grant_and_its_refusal_stops_the_run_resumable() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let token = issued_token(&org).await;
    let grants = org.count_requests("POST", "/oauth/token");
    let call = org.live_calls().remove(0).id;
    let env = [("GENESYSCLOUD_ACCESS_TOKEN", token.as_str())];

    let run = run_without_credentials(&org, &["get", &call], &env).await;
    run.assert_code(0);
    assert_eq!(
        org.count_requests("POST", "/oauth/token"),
        grants,
        "no grant with a token"
    );

    // Several tokens need client credentials: a usage error before anything is read or created.
    org.write("desired.csv", &campaign_csv(&org));
    let run = run_without_credentials(&org, &["apply", "desired.csv", "--tokens", "2"], &env).await;
    run.assert_code(64);
    assert!(run.stderr.contains("--tokens 2"), "{}", run.stderr);
    assert!(!org.audit_path().exists());

    let run = run_without_credentials(&org, &["doctor"], &env).await;
    run.assert_code(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("accepted by the API")),
        "{}",
        run.stdout
    );

    org.state().expire_tokens();
    let run = run_without_credentials(&org, &["doctor"], &env).await;
    run.assert_code(1);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("expired or was revoked")),
        "{}",
        run.stdout
    );
    let run = run_without_credentials(&org, &["-vvv", "apply", "desired.csv"], &env).await;
    run.assert_code(4);
    assert!(
        run.stderr.contains("expired or was revoked"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("GENESYSCLOUD_ACCESS_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--resume"), "{}", run.stderr);
    assert_eq!(org.count_requests("POST", "/oauth/token"), grants);
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains(&token), "the token was shown");
    }
}

#[tokio::test]
async fn doctor_passes_against_the_simulator_and_says_where_each_setting_came_from() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let (_, secret) = org.sim.demo_credentials();
    let run = org.run(&["doctor"]).await;
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let order: Vec<&str> = lines
        .iter()
        .map(|line| line.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    for expected in [
        "credentials",
        "region",
        "login",
        "api",
        "streaming",
        "grant",
        "read",
        "write",
        "notifications",
        "budget",
    ] {
        assert!(
            order.contains(&expected),
            "{expected} missing:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout
            .contains("environment GENESYSCLOUD_OAUTHCLIENT_SECRET"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("TLS not used"), "{}", run.stdout);
    assert!(
        run.stdout.contains("the first PATCH will tell"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
    assert!(
        !lines.iter().any(|l| l.starts_with("FAIL")),
        "{}",
        run.stdout
    );

    let run = org.run(&["doctor", "--json"]).await;
    run.assert_code(0);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");
    assert_eq!(value["ok"], true);
    let checks = value["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "grant" && c["status"] == "ok")
    );
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "notifications" && c["status"] == "ok")
    );
}

#[tokio::test]
async fn doctor_with_a_wrong_secret_shows_the_failing_check_and_exits_1() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let mut cmd = org.command(&["doctor"]);
    cmd.env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "not-the-secret");
    let run = output(&mut cmd).await;
    run.assert_code(1);
    let grant = run
        .stdout
        .lines()
        .find(|l| l.contains("grant"))
        .unwrap_or_else(|| panic!("no grant line:\n{}", run.stdout));
    assert!(grant.starts_with("FAIL"), "{grant}");
    assert!(
        grant.contains("HTTP 401") || grant.contains("HTTP 400"),
        "{grant}"
    );
    assert!(grant.contains("->"), "says what to do: {grant}");
    assert!(!run.stdout.contains("not-the-secret"), "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("skip") && l.contains("read"))
    );
}
