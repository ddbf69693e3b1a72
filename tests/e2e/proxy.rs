//! Proxies and corporate TLS: the real binary against the simulator serving TLS with a test CA,
//! through a loopback CONNECT proxy (support.rs). That every connection went through the proxy
//! is judged from the proxy's own log of tunnels and from the simulator's log of which peer
//! (which tunnel) carried each request and socket.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use base64::Engine;
use genesys_sim::SimConfig;

use crate::follow::terminate;
use crate::support::{ConnectProxy, Run, TestOrg, output, spawn, wait_until};

const PROXY_USER: &str = "svc-attrsync";
const PROXY_PASSWORD: &str = "pr0xy-Pa55word";

async fn tls_org(calls: usize) -> (TestOrg, String) {
    let org = TestOrg::start(SimConfig {
        queues: 2,
        tls: true,
        ..TestOrg::fast_config(calls)
    })
    .await;
    assert!(org.sim.url().starts_with("https://"), "{}", org.sim.url());
    let pem = org.sim.ca_cert_pem().expect("a TLS simulator has a CA");
    let ca = org.write("sim-ca.pem", pem);
    (org, ca.to_str().unwrap().to_owned())
}

fn customer_tagged(org: &TestOrg, id: &str) -> bool {
    org.state().call(id).is_some_and(|call| {
        call.conversation
            .participants
            .iter()
            .filter(|p| p.purpose.as_deref() == Some("customer"))
            .all(|p| p.attributes.get("campaign").map(String::as_str) == Some("spring"))
    })
}

/// The simulator-side addresses of the proxy's tunnels.
fn tunnel_peers(proxy: &ConnectProxy) -> BTreeSet<SocketAddr> {
    proxy
        .tunnels()
        .iter()
        .filter_map(|t| t.upstream_local)
        .collect()
}

#[tokio::test]
async fn a_follow_through_a_connect_proxy_to_the_tls_simulator_sends_login_api_and_socket_through_it()
 {
    let (org, ca) = tls_org(6).await;
    let proxy = ConnectProxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let queue = org.state().queues()[0].id.clone();
    let mut command = org.command(&[
        "tag",
        "--queue",
        &queue,
        "--follow",
        "--json",
        "-vv",
        "--ca-cert",
        &ca,
        "campaign=spring",
    ]);
    command.env("HTTPS_PROXY", proxy.url_with(PROXY_USER, PROXY_PASSWORD));
    let child = spawn(&mut command);
    wait_until("the socket connects", || {
        org.state().notification_status().sockets > 0
    })
    .await;
    let queued: Vec<String> = org
        .live_calls()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| org.state().call(id).unwrap().queue_id.as_deref() == Some(&queue))
        .collect();
    assert!(!queued.is_empty());
    wait_until("the calls already queued are tagged (backfill)", || {
        queued.iter().all(|id| customer_tagged(&org, id))
    })
    .await;
    // Calls announced on the socket only.
    let arrived: Vec<String> = (0..3)
        .map(|_| org.state().arrive_call(Some(&queue)).unwrap())
        .collect();
    wait_until("the arrived calls are tagged", || {
        arrived.iter().all(|id| customer_tagged(&org, id))
    })
    .await;
    let (code, stdout, stderr) = terminate(child).await;
    assert_eq!(code, 0, "{stderr}");

    // The proxy's log: every tunnel it opened went to the simulator.
    let tunnels = proxy.tunnels();
    assert!(!tunnels.is_empty());
    let target = org.sim.addr().to_string();
    for tunnel in &tunnels {
        assert!(tunnel.opened, "{tunnel:?}");
        assert_eq!(tunnel.target, target, "{tunnel:?}");
    }
    // The simulator's log: every request and every socket came out of one of those tunnels.
    let peers = tunnel_peers(&proxy);
    let log = org.state().request_log();
    for request in &log {
        let peer = request.peer.expect("the simulator records peers");
        assert!(
            peers.contains(&peer),
            "{} {} came from {peer}, not through the proxy",
            request.method,
            request.path
        );
    }
    let sockets = org.state().socket_peers();
    assert!(!sockets.is_empty());
    for peer in &sockets {
        assert!(peers.contains(&peer.expect("a socket's peer")), "{peer:?}");
    }
    let count = |method: &str, fragment: &str| {
        log.iter()
            .filter(|r| r.method == method && r.path.contains(fragment))
            .count()
    };
    let logins = count("POST", "/oauth/token");
    let channels = count("POST", "/api/v2/notifications/channels");
    let patches = count("PATCH", "/conversations/calls/");
    assert!(
        logins >= 1 && channels >= 1 && patches >= queued.len() + arrived.len(),
        "{log:?}"
    );
    println!(
        "proxy figures: the proxy opened {} tunnels, all to {target}; the simulator logged {} \
         requests (login {logins}, channel {channels}, PATCH {patches}, other API {}) and {} \
         socket(s), every one from a tunnel's address, none from elsewhere",
        tunnels.len(),
        log.len(),
        log.len() - logins - channels - patches,
        sockets.len()
    );

    // Credentials to a plain-http proxy are warned about, and never shown, even at -vv.
    assert!(stderr.contains("clear text"), "{stderr}");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains(PROXY_PASSWORD),
            "the proxy password leaked"
        );
        assert!(!output.contains(&basic), "the proxy credentials leaked");
    }
    assert!(
        stderr.contains(&proxy.url()),
        "-vv names the proxy: {stderr}"
    );
}

/// `get` of one call with `env` added to the org's environment.
async fn get_with(org: &TestOrg, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let id = org.live_calls()[0].id.clone();
    let mut args = vec!["get", id.as_str()];
    args.extend_from_slice(extra);
    let mut command = org.command(&args);
    for (name, value) in env {
        command.env(name, value);
    }
    output(&mut command).await
}

#[tokio::test]
async fn no_proxy_sends_the_listed_hosts_around_the_proxy_and_ssl_cert_file_trusts_the_ca() {
    let (org, ca) = tls_org(1).await;
    let proxy = ConnectProxy::start(None).await;
    let proxy_url = proxy.url();
    let env = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];

    // Without NO_PROXY, through the proxy.
    get_with(&org, &[], &env).await.assert_code(0);
    let through = proxy.tunnels().len();
    assert!(through >= 1);
    let requests = org.state().request_log().len();

    for no_proxy in [
        ("NO_PROXY", "127.0.0.1"),
        ("no_proxy", "example.test,127.0.0.0/8"),
        ("NO_PROXY", "*"),
    ] {
        let env = [env[0], env[1], no_proxy];
        get_with(&org, &[], &env).await.assert_code(0);
        assert_eq!(proxy.tunnels().len(), through, "{no_proxy:?} bypasses");
    }
    let peers = tunnel_peers(&proxy);
    let direct = org.state().request_log()[requests..]
        .iter()
        .filter(|r| !peers.contains(&r.peer.unwrap()))
        .count();
    assert_eq!(direct, org.state().request_log().len() - requests);
    assert!(direct >= 3);
}

#[tokio::test]
async fn proxy_and_ca_cert_come_from_the_dotenv_file_too() {
    let (org, ca) = tls_org(1).await;
    let proxy = ConnectProxy::start(None).await;
    org.write(
        ".env",
        &format!("HTTPS_PROXY={}\nSSL_CERT_FILE={ca}\n", proxy.url()),
    );
    get_with(&org, &[], &[]).await.assert_code(0);
    assert!(!proxy.tunnels().is_empty());
    let peers = tunnel_peers(&proxy);
    assert!(
        org.state()
            .request_log()
            .iter()
            .all(|r| peers.contains(&r.peer.unwrap()))
    );
}

#[tokio::test]
async fn the_tls_simulator_is_refused_without_its_ca_and_bad_proxy_or_ca_settings_stop_before_any_request()
 {
    let (org, ca) = tls_org(1).await;
    let run = get_with(&org, &[], &[]).await;
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
    assert!(org.state().request_log().is_empty());

    let run = get_with(
        &org,
        &["--ca-cert", &ca],
        &[("HTTPS_PROXY", "https://u:sekr1t-value@proxy.corp:443")],
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("invalid HTTPS_PROXY"), "{}", run.stderr);
    assert!(!run.stderr.contains("sekr1t-value"), "{}", run.stderr);

    // A CA file that is not one stops the command before any request.
    let not_a_ca = org.write("not-a-ca.pem", "hello\n");
    let run = get_with(&org, &["--ca-cert", not_a_ca.to_str().unwrap()], &[]).await;
    run.assert_code(1);
    assert!(run.stderr.contains("not-a-ca.pem"), "{}", run.stderr);
    assert!(org.state().request_log().is_empty());
}

/// `doctor` through the proxy to the TLS simulator: its host checks tunnel through the proxy,
/// and so do its grant and API checks.
#[tokio::test]
async fn doctor_checks_the_hosts_through_the_proxy_with_the_ca_cert() {
    let (org, ca) = tls_org(2).await;
    let proxy = ConnectProxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let mut command = org.command(&["doctor", "--ca-cert", &ca]);
    command.env("HTTPS_PROXY", proxy.url_with(PROXY_USER, PROXY_PASSWORD));
    let run = output(&mut command).await;
    let (stdout, stderr) = (run.stdout, run.stderr);
    assert_eq!(run.code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} ", proxy.url())) && stdout.contains("from HTTPS_PROXY"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("CONNECT through the proxy").count(),
        3,
        "login, api and streaming hosts: {stdout}"
    );
    let peers = tunnel_peers(&proxy);
    let log = org.state().request_log();
    assert!(!log.is_empty());
    assert!(log.iter().all(|r| peers.contains(&r.peer.unwrap())));
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains(PROXY_PASSWORD),
            "the proxy password leaked"
        );
    }
}
