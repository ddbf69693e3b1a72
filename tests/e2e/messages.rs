//! The words of errors and warnings, as the real binary prints them: no secret quoted, each
//! piece of information once, and advice that fits what was given.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use genesys_sim::{FaultConfig, SimConfig};

use crate::support::{Run, TestOrg, campaign_csv, output, write_private};

/// The binary with `env` added to the org's environment (`None`: removed).
async fn run_with(org: &TestOrg, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
    let mut command = org.command(args);
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    output(&mut command).await
}

const NO_CREDENTIALS: [(&str, Option<&str>); 2] = [
    ("GENESYSCLOUD_OAUTHCLIENT_ID", None),
    ("GENESYSCLOUD_OAUTHCLIENT_SECRET", None),
];

#[tokio::test]
async fn a_proxy_url_whose_password_breaks_it_is_refused_without_echoing_any_of_it() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let call = org.live_calls().remove(0).id;
    for value in [
        "http://user:9876/SECRETPART@127.0.0.1:3128",
        "http://user:98?76SECRETPART@127.0.0.1:3128",
        "http://user:98#76SECRETPART@127.0.0.1:3128",
    ] {
        let env = [("HTTPS_PROXY", Some(value))];
        let get = run_with(&org, &["get", &call], &env).await;
        get.assert_code(1);
        assert!(
            get.stderr.contains("invalid HTTPS_PROXY: ")
                && get.stderr.contains("percent-encode / ? # @"),
            "{value}: {}",
            get.stderr
        );
        let doctor = run_with(&org, &["doctor"], &env).await;
        assert_ne!(doctor.code, 0, "{value}: {}", doctor.stdout);
        assert!(
            doctor.stdout.contains("invalid HTTPS_PROXY: "),
            "{value}: {}",
            doctor.stdout
        );
        for run in [&get, &doctor] {
            for output in [&run.stdout, &run.stderr] {
                assert!(!output.contains("SECRETPART"), "{value}: {output}");
                assert!(!output.contains("9876"), "{value}: {output}");
            }
        }
    }
    assert!(org.state().request_log().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_gc_profile_proxy_host_with_credentials_is_refused_without_quoting_them() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let (id, secret) = org.sim.demo_credentials();
    let config = write_private(
        &org,
        "config.toml",
        &format!(
            "[p]\nclient_credentials = \"{id}\"\nclient_secret = \"{secret}\"\nproxy_protocol = \"http\"\nproxy_host = \"u:PROXYPASS@127.0.0.1\"\n"
        ),
    );
    let call = org.live_calls().remove(0).id;
    for args in [
        vec!["--profile", "p", "--gc-config", &config, "get", &call],
        vec!["--profile", "p", "--gc-config", &config, "doctor"],
    ] {
        let run = run_with(&org, &args, &NO_CREDENTIALS).await;
        assert_ne!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        let output = format!("{}{}", run.stdout, run.stderr);
        assert!(
            output.contains("proxy_host must be a host name or address only, without credentials"),
            "{args:?}: {output}"
        );
        assert!(!output.contains("PROXYPASS"), "{args:?}: {output}");
    }
    assert!(org.state().request_log().is_empty(), "nothing was sent");
}

/// The source error names the file; the binary's context says what the file was for.
#[tokio::test]
async fn a_desired_state_error_names_the_file_once() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let conn = org
        .sqlite_source(
            "crm.sqlite",
            "CREATE TABLE desired_attributes (conversation_id TEXT, key TEXT, value TEXT)",
        )
        .await;
    drop(conn);
    let run = org
        .run(&[
            "plan",
            "crm.sqlite",
            "--query",
            "DELETE FROM desired_attributes",
        ])
        .await;
    run.assert_code(1);
    let error = run
        .stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        error.starts_with(
            "error: cannot read the desired state: crm.sqlite: --query must be a SELECT (read-only) statement"
        ),
        "{error}"
    );
    assert_eq!(error.matches("crm.sqlite").count(), 1, "{error}");
}

/// The audit error names the store and the step that failed; the command adds nothing.
#[tokio::test]
async fn an_audit_upgrade_error_names_the_store_once() {
    use sqlx::ConnectOptions;
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(org.audit_path())
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::migrate::Migrator::with_migrations(Vec::new())
            .run(&mut conn)
            .await
            .unwrap();
        // The first migration, recorded with another checksum: it cannot be migrated past.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (20261124120000, 'initial', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let run = org.run(&["audit", "upgrade"]).await;
    run.assert_code(1);
    let store = org.audit_path().display().to_string();
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: cannot migrate audit store {store}: migration 20261124120000 was previously applied but has been modified"
        )
    );
}

/// A failed request as `audit show` words it: status, code, message and correlation id, once.
#[tokio::test]
async fn audit_show_words_a_failed_request_with_each_piece_once() {
    let org = TestOrg::start(SimConfig {
        faults: FaultConfig {
            status_rates: [(404, 1.0)].into(),
            ..FaultConfig::default()
        },
        ..TestOrg::fast_config(1)
    })
    .await;
    org.write("desired.csv", &campaign_csv(&org));
    let apply = org.run(&["apply", "desired.csv"]).await;
    assert_ne!(apply.code, 0, "{}", apply.stderr);
    let show = org.run(&["audit", "show", "latest"]).await;
    show.assert_code(0);
    let failed = show
        .stdout
        .lines()
        .find(|line| line.contains(" failed "))
        .unwrap_or_else(|| panic!("{}", show.stdout));
    assert!(
        failed.contains("HTTP 404 not.found: The requested resource was not found."),
        "{failed}"
    );
    for piece in ["HTTP 404 not.found", "HTTP 404", "correlation id"] {
        assert_eq!(failed.matches(piece).count(), 1, "{piece}: {failed}");
    }
}

#[tokio::test]
async fn a_profile_environment_that_is_no_region_is_not_needed_with_an_api_url() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let (id, secret) = org.sim.demo_credentials();
    let config = write_private(
        &org,
        "config.toml",
        &format!(
            "[local]\nclient_credentials = \"{id}\"\nclient_secret = \"{secret}\"\nenvironment = \"localhost\"\n"
        ),
    );
    let call = org.live_calls().remove(0).id;
    let sim_url = org.sim.url();
    let from_env = run_with(
        &org,
        &["--profile", "local", "--gc-config", &config, "get", &call],
        &NO_CREDENTIALS,
    )
    .await;
    let mut without_env_url = NO_CREDENTIALS.to_vec();
    without_env_url.push(("GENESYSCLOUD_API_URL", None));
    let from_flag = run_with(
        &org,
        &[
            "--profile",
            "local",
            "--gc-config",
            &config,
            "get",
            "--api-url",
            &sim_url,
            &call,
        ],
        &without_env_url,
    )
    .await;
    for (run, api_source) in [
        (&from_env, "environment GENESYSCLOUD_API_URL"),
        (&from_flag, "flag --api-url"),
    ] {
        run.assert_code(0);
        assert!(
            run.stderr.contains(&format!(
                "\"localhost\" is not a Genesys Cloud region; not needed, the API URL from {api_source} gives the hosts"
            )),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("instead"), "{}", run.stderr);
    }
}

#[tokio::test]
async fn missing_credentials_are_worded_as_the_three_ways_to_give_them() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    let run = run_with(
        &org,
        &["get", "00000000-0000-4000-8000-000000000000"],
        &NO_CREDENTIALS,
    )
    .await;
    run.assert_code(1);
    assert_eq!(
        run.stderr.trim_end(),
        "error: missing Genesys Cloud credentials; give them in one of three ways: \
         set GENESYSCLOUD_OAUTHCLIENT_ID (or GENESYS_CLIENT_ID) and \
         GENESYSCLOUD_OAUTHCLIENT_SECRET (or GENESYS_CLIENT_SECRET), \
         set GENESYSCLOUD_ACCESS_TOKEN, or name a gc profile with --profile"
    );
}

/// A loopback proxy that refuses every CONNECT with 403, as a proxy whose rules do not allow
/// the destination; it logs the request line of each.
struct RefusingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingProxy {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let log = task_log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read_u8().await {
                            Ok(byte) if head.len() < 16 * 1024 => head.push(byte),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    log.lock()
                        .unwrap()
                        .push(head.lines().next().unwrap_or_default().to_owned());
                    let _ = client
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        RefusingProxy { addr, log, task }
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `get` (its login, through reqwest) and `doctor` (its own tunnel) say the same of a proxy
/// that refuses the tunnel: its status and what to check.
#[tokio::test]
async fn a_proxy_refusing_connect_is_worded_alike_by_get_and_doctor() {
    let org = TestOrg::start(SimConfig {
        tls: true,
        ..TestOrg::fast_config(1)
    })
    .await;
    let ca = org.write("sim-ca.pem", org.sim.ca_cert_pem().expect("a test CA"));
    let ca = ca.to_str().unwrap();
    let proxy = RefusingProxy::start().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let sim = org.sim.addr();
    let what = format!(
        "the proxy {proxy_url} (from HTTPS_PROXY) refused CONNECT {sim} with HTTP 403 Forbidden"
    );
    let advice = format!(
        "the proxy does not allow {sim}: ask its administrators to allow it, or list the host in NO_PROXY if it is reachable without the proxy"
    );
    let env = [("HTTPS_PROXY", Some(proxy_url.as_str()))];

    let call = org.live_calls().remove(0).id;
    let get = run_with(&org, &["get", "--ca-cert", ca, &call], &env).await;
    assert_ne!(get.code, 0, "{}", get.stderr);
    assert!(
        get.stderr.contains(&format!("{what}; {advice}")),
        "{}",
        get.stderr
    );
    assert!(!get.stderr.contains("tunnel error"), "{}", get.stderr);

    let doctor = run_with(&org, &["doctor", "--ca-cert", ca], &env).await;
    assert_ne!(doctor.code, 0, "{}", doctor.stdout);
    assert!(
        doctor.stdout.contains(&format!("{what} -> {advice}")),
        "{}",
        doctor.stdout
    );

    let log = proxy.log.lock().unwrap().clone();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|line| *line == format!("CONNECT {sim} HTTP/1.1")),
        "{log:?}"
    );
    assert!(org.state().request_log().is_empty(), "nothing got through");
}
