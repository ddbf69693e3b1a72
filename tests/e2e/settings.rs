//! The command line is resolved once, up front: usage errors (exit 64) before any file is read
//! or any store created; `.env` into the settings lookup; errors printed once.

use std::collections::BTreeSet;

use crate::support::{TestOrg, output};

fn desired_csv(org: &TestOrg) -> std::path::PathBuf {
    let call = org.live_calls().remove(0);
    org.write(
        "desired.csv",
        &format!("conversation_id,campaign\n{},spring\n", call.id),
    )
}

#[tokio::test]
async fn a_bad_flag_value_is_a_usage_error_before_anything_is_read_or_created() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    desired_csv(&org);
    org.write("not-a-dir", "a file, not a directory\n");
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "abc"], "--rate"),
        (&["--rate", "300/min,burst=3", "--burst", "4"], "--burst"),
        (&["--verify-timeout", "soon"], "--verify-timeout"),
        (&["--region", "moon-1"], "--region"),
        (&["--api-url", "http://gateway.example"], "--api-url"),
        (&["--api-url", "https://api.mypurecloud.ie/v1"], "--api-url"),
        (&["--login-url", "http://login.example"], "--login-url"),
        (&["--timeout", "0.5 fortnights"], "--timeout"),
        (&["--results", "not-a-dir"], "--results"),
        (&["--results", ""], "--results"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--default-purpose", ""], "--default-purpose"),
    ];
    for (flags, named) in cases {
        let mut args = vec!["apply", "desired.csv"];
        args.extend_from_slice(flags);
        let run = org.run(&args).await;
        assert_eq!(run.code, 64, "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{flags:?}: {}", run.stderr);
        assert!(
            !org.audit_path().exists(),
            "{flags:?}: an audit store was created for a usage error"
        );
        assert_eq!(org.count_requests("GET", "/"), 0, "{flags:?}");
    }
    for args in [
        &["reconcile", "desired.csv", "--every", "soon"][..],
        &["audit", "list", "--since", "yesterday-ish"][..],
        &["sim", "--rate", "abc"][..],
        &[
            "tag",
            "--queue",
            "2f6a9c1e-5b4d-4e8f-9a7b-1c2d3e4f5a6b",
            "--follow",
            "--socket-idle-timeout",
            "0s",
            "k=v",
        ][..],
        // A queue is an id or a name; an empty one or a `*` inside a name is neither.
        &["tag", "--queue", "", "k=v"][..],
        &["tag", "--queue", "Sa*les", "--follow", "k=v"][..],
        &["live", "--queue", " "][..],
    ] {
        let run = org.run(args).await;
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert!(!org.audit_path().exists(), "{args:?}");
    }
}

#[tokio::test]
async fn help_says_burst_applies_to_even_pacing() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let run = org.run(&["apply", "--help"]).await;
    run.assert_code(0);
    let help = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("even pacing"), "{help}");
    assert!(help.contains(",burst=N"), "{help}");
}

#[tokio::test]
async fn a_dotenv_file_provides_the_credentials_and_the_environment_wins() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let call = org.live_calls().remove(0);
    let (id, secret) = org.sim.demo_credentials();
    org.write(
        ".env",
        &format!(
            "GENESYSCLOUD_OAUTHCLIENT_ID={id}\nGENESYSCLOUD_OAUTHCLIENT_SECRET={secret}\n\
             GENESYSCLOUD_API_URL=http://127.0.0.1:9\n"
        ),
    );
    // The credentials come from ./.env; the API URL of the environment wins over the file's.
    let out = output(
        org.command(&["get", &call.id])
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    )
    .await;
    let stderr = &out.stderr;
    assert_eq!(out.code, 0, "{stderr}");
    assert!(out.stdout.contains("customer"));

    // An explicit --env-file, from another directory.
    std::fs::rename(org.path(".env"), org.path("creds.env")).unwrap();
    let out = output(
        org.command(&["get", &call.id, "--env-file", "creds.env"])
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_ID")
            .env_remove("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
    )
    .await;
    let stderr = &out.stderr;
    assert_eq!(out.code, 0, "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");
}

/// `.env` values go into a lookup map: nothing in the workspace writes the process environment.
#[test]
fn no_code_writes_the_process_environment() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut offenders = Vec::new();
    let mut dirs = vec![root.join("crates"), root.join("xtask")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [
                    "set_var(",
                    "remove_var(",
                    "dotenvy::dotenv(",
                    "dotenvy::from_path(",
                ] {
                    if text.contains(needle) {
                        offenders.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[tokio::test]
async fn an_audit_store_error_names_the_path_once_and_the_cause_once() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    desired_csv(&org);
    org.write("blocker", "a file where a directory is expected\n");
    let store = org.path("blocker/x/audit.sqlite");
    let run = org
        .run(&["apply", "desired.csv", "--audit", store.to_str().unwrap()])
        .await;
    run.assert_code(1);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {}", run.stderr));
    let dir = org.path("blocker/x");
    let dir = dir.to_str().unwrap();
    assert_eq!(error.matches(dir).count(), 1, "{error}");
    let cause = std::io::Error::from_raw_os_error(20).to_string(); // ENOTDIR: "Not a directory"
    let cause = cause.split(" (os error").next().unwrap();
    assert_eq!(error.matches(cause).count(), 1, "{error}");
}

#[tokio::test]
async fn an_api_url_with_the_api_prefix_works() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let call = org.live_calls().remove(0);
    for suffix in ["/api/v2", "/api/v2/"] {
        let url = format!("{}{suffix}", org.sim.url());
        let run = org.run(&["get", &call.id, "--api-url", &url]).await;
        run.assert_code(0);
    }
    let log = org.state().request_log();
    assert!(log.iter().all(|r| !r.path.contains("/api/v2/api/v2")));
    assert_eq!(org.count_requests("GET", "/api/v2/conversations/calls/"), 2);

    let url = format!("{}/gateway", org.sim.url());
    let run = org.run(&["get", &call.id, "--api-url", &url]).await;
    run.assert_code(64);
    assert!(run.stderr.contains("--api-url"), "{}", run.stderr);
}

/// The options of a command's `--help`: every `--name` that starts an option line.
fn help_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            // `-v, --verbose`: the long name after the short one.
            let line = match line.get(..4) {
                Some(short) if short.starts_with('-') && short.ends_with(", ") => &line[4..],
                _ => line,
            };
            line.strip_prefix("--")
                .map(|rest| rest.split([' ', '<', '.']).next().unwrap_or("").to_owned())
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The subcommands a `--help` lists under "Commands:" (without `help`).
fn help_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[tokio::test]
async fn connection_options_are_offered_only_by_commands_that_connect() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let connection = [
        "env-file",
        "profile",
        "gc-config",
        "region",
        "api-url",
        "login-url",
        "client-id",
        "ca-cert",
        "tokens",
        "max-wait",
    ];
    let connecting = [
        "get",
        "set",
        "plan",
        "apply",
        "reconcile",
        "live",
        "tag",
        "queues",
        "revert",
        "doctor",
    ];
    let top = org.run(&["--help"]).await;
    top.assert_code(0);
    let mut paths: Vec<Vec<String>> = help_commands(&top.stdout)
        .into_iter()
        .map(|c| vec![c])
        .collect();
    let mut checked = 0;
    while let Some(path) = paths.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = org.run(&args).await;
        run.assert_code(0);
        let subcommands = help_commands(&run.stdout);
        if !subcommands.is_empty() {
            paths.extend(subcommands.into_iter().map(|c| {
                let mut sub = path.clone();
                sub.push(c);
                sub
            }));
            continue;
        }
        let options = help_options(&run.stdout);
        let connects = path.len() == 1 && connecting.contains(&path[0].as_str());
        for flag in connection {
            assert_eq!(
                options.contains(flag),
                connects,
                "`attrsync {} --help` and --{flag}:\n{}",
                path.join(" "),
                run.stdout
            );
        }
        // Every command keeps the options that are about output.
        assert!(
            options.contains("verbose") && options.contains("color"),
            "{path:?}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} commands were checked");
}
