//! Small helpers: a simulated org on loopback, and running the binary against it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use genesys_sim::{LimitShape, SimConfig, SimHandle, SimState, Simulator};

pub const BIN: &str = env!("CARGO_BIN_EXE_attrsync");

/// A simulator on a free loopback port plus a scratch directory for inputs and the audit store.
pub struct TestOrg {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl TestOrg {
    pub async fn start(config: SimConfig) -> Self {
        let sim = Simulator::start(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("simulator starts");
        TestOrg {
            sim,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A fast org: a high rate limit so that tests about other things never wait on it.
    pub fn fast_config(calls: usize) -> SimConfig {
        SimConfig {
            calls,
            rate_per_minute: 60_000,
            limit_shape: LimitShape::Bucket,
            burst: 1_000,
            ..SimConfig::default()
        }
    }

    pub fn state(&self) -> SimState {
        self.sim.state()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn audit_path(&self) -> PathBuf {
        self.path("audit.sqlite")
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write test input");
        path
    }

    /// The binary, configured for this org through the environment only (as a user would).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let (id, secret) = self.sim.demo_credentials();
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", id)
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret)
            .env("GENESYSCLOUD_API_URL", self.sim.url())
            .env("ATTRSYNC_AUDIT", self.audit_path())
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().await.expect("attrsync runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Live (not ended) calls of the org, as the simulator holds them.
    pub fn live_calls(&self) -> Vec<genesys_core::models::CallConversation> {
        self.state()
            .calls()
            .into_iter()
            .filter(|c| !c.ended)
            .map(|c| c.conversation)
            .collect()
    }

    /// How many requests the simulator answered for `method` on paths containing `fragment`.
    pub fn count_requests(&self, method: &str, fragment: &str) -> usize {
        self.state()
            .request_log()
            .iter()
            .filter(|r| r.method == method && r.path.contains(fragment))
            .count()
    }
}

/// A campaign tag for the customer of every live call: `campaign=spring`, `tier=gold`.
pub fn campaign_csv(org: &TestOrg) -> String {
    let mut csv = String::from("conversation_id,campaign,tier\n");
    for call in org.live_calls() {
        csv.push_str(&format!("{},spring,gold\n", call.id));
    }
    csv
}

/// Every live call's customer has the campaign tag of [`campaign_csv`].
#[track_caller]
pub fn assert_converged(org: &TestOrg) {
    for call in org.live_calls() {
        let customer = call
            .participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("customer"))
            .unwrap();
        for (key, value) in [("campaign", "spring"), ("tier", "gold")] {
            assert_eq!(
                customer.attributes.get(key).map(String::as_str),
                Some(value),
                "call {}",
                call.id
            );
        }
    }
}

/// One target row of the audit store, as the tests look at it.
#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub status: String,
    pub conversation_id: String,
    pub participant_id: Option<String>,
    pub correlation_id: Option<String>,
    pub observed: Option<String>,
}

/// Reads the audit store's target rows directly (read-only), as an auditor would.
pub async fn audit_targets(path: &Path) -> Vec<AuditRow> {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .expect("audit store opens");
    sqlx::query_as::<_, AuditRow>(
        "SELECT status, conversation_id, participant_id, correlation_id, observed FROM targets ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .expect("targets readable")
}

/// One tunnel a [`ConnectProxy`] was asked for, as its own log records it.
#[derive(Clone, Debug)]
pub struct Tunnel {
    /// The `host:port` of the CONNECT (or the request line, for anything else).
    pub target: String,
    /// It was opened (a CONNECT with the expected credentials, to a reachable target).
    pub opened: bool,
    /// The proxy's own address on its connection to the target: what the target sees as the
    /// client's address.
    pub upstream_local: Option<SocketAddr>,
}

/// A loopback HTTP CONNECT proxy, as corporate proxies are for TLS traffic: it reads the
/// CONNECT, checks `Proxy-Authorization` when given credentials, connects to the target,
/// answers 200 and copies bytes both ways. It logs every tunnel asked for.
pub struct ConnectProxy {
    addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<Tunnel>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// `credentials`: the `(user, password)` it demands, if any.
    pub async fn start(credentials: Option<(&str, &str)>) -> Self {
        use base64::Engine;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("proxy address");
        let expected = credentials.map(|(user, password)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy_connection(client, expected.clone(), task_log.clone()));
            }
        });
        ConnectProxy { addr, log, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Every tunnel asked for, in order.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    mut client: tokio::net::TcpStream,
    expected: Option<String>,
    log: std::sync::Arc<std::sync::Mutex<Vec<Tunnel>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Byte by byte: what follows the head belongs to the tunnel.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match client.read_u8().await {
            Ok(byte) if head.len() < 16 * 1024 => head.push(byte),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next());
    let refuse = |status: &'static str| {
        log.lock().unwrap().push(Tunnel {
            target: request_line.clone(),
            opened: false,
            upstream_local: None,
        });
        status
    };
    let answer = match (method, target) {
        ("CONNECT", Some(target))
            if expected.is_none() || authorization.as_deref() == expected.as_deref() =>
        {
            match tokio::net::TcpStream::connect(target).await {
                Ok(mut upstream) => {
                    // Logged before the 200, so that the log is complete once the client
                    // sees its tunnel open.
                    log.lock().unwrap().push(Tunnel {
                        target: target.to_owned(),
                        opened: true,
                        upstream_local: upstream.local_addr().ok(),
                    });
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    return;
                }
                Err(_) => refuse("502 Bad Gateway"),
            }
        }
        ("CONNECT", Some(_)) => {
            refuse("407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"")
        }
        _ => refuse("405 Method Not Allowed"),
    };
    let _ = client
        .write_all(format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .await;
}

/// Polls the simulator's request log until `ready` holds: the one polling loop of the
/// end-to-end tests (bounded: the test fails after 60 s rather than hanging).
pub async fn wait_for(org: &TestOrg, ready: impl Fn(&[genesys_sim::LoggedRequest]) -> bool) {
    wait_until(|| ready(&org.state().request_log())).await;
}

/// Polls `ready` every few milliseconds until it holds (bounded: fails after 60 s).
pub async fn wait_until(mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if ready() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never reached the expected point"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Sends `signal` (e.g. "INT", "TERM") to a spawned binary.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the child runs").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.as_str()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The newest run as `attrsync audit runs --json` shows it.
pub async fn latest_run(org: &TestOrg) -> serde_json::Value {
    let run = org.run(&["audit", "runs", "--json"]).await;
    run.assert_code(0);
    let runs: serde_json::Value = serde_json::from_str(&run.stdout).expect("runs JSON");
    runs["runs"][0].clone()
}
