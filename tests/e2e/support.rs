//! Small helpers: a simulated org on loopback, running the binary against it, and the one bound
//! on everything a test waits for (a spawned process, a poll, a held request), so that the suite
//! fails with a message instead of hanging.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use genesys_sim::{LimitShape, SimConfig, SimHandle, SimState, Simulator};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

pub const BIN: &str = env!("CARGO_BIN_EXE_attrsync");

/// How long a test waits for anything (a spawned process to end, a poll to hold, a request to be
/// held) before it fails: [`DEFAULT_TIMEOUT`], or `ATTRSYNC_TEST_TIMEOUT_SECS` seconds.
pub const TIMEOUT_ENV: &str = "ATTRSYNC_TEST_TIMEOUT_SECS";

/// The bound when [`TIMEOUT_ENV`] is not set: far above what any wait of the suite takes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How often [`try_poll`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The bound of every wait (see [`TIMEOUT_ENV`]).
pub fn timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| match std::env::var(TIMEOUT_ENV) {
        Ok(text) => {
            Duration::from_secs(text.trim().parse().unwrap_or_else(|_| {
                panic!("{TIMEOUT_ENV}={text:?} is not a whole number of seconds")
            }))
        }
        Err(_) => DEFAULT_TIMEOUT,
    })
}

/// `future`, bounded by [`timeout`]: the test fails naming `what` rather than hang.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout(), future).await {
        Ok(value) => value,
        Err(_) => panic!("{}", never(what, timeout(), "")),
    }
}

fn never(what: &str, bound: Duration, last_seen: &str) -> String {
    let mut message =
        format!("never happened within {bound:?} ({TIMEOUT_ENV} sets the bound): {what}");
    if !last_seen.is_empty() {
        message.push_str("\nlast seen: ");
        message.push_str(last_seen);
    }
    message
}

/// A simulator on a free loopback port plus a scratch directory for inputs and the audit store.
pub struct TestOrg {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

/// What one run of the binary (or of any spawned program) did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    /// The exit code; -1 when a signal ended the process.
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

    /// Runs the binary to its end (bounded, see [`Spawned::finish`]).
    pub async fn run(&self, args: &[&str]) -> Run {
        output(&mut self.command(args)).await
    }

    /// Starts the binary (see [`spawn`]).
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        spawn(&mut self.command(args))
    }

    /// Waits (bounded) until the simulator holds a request and has answered every request it
    /// let through (see [`genesys_sim::SimState::hold_after`]).
    pub async fn wait_until_holding(&self) {
        let state = self.state();
        within(
            "the simulator holds a request (hold_after)",
            state.wait_until_holding(),
        )
        .await;
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
    /// A CRM's SQLite database `name` in the org's folder, created with one table
    /// (`create_table`, a `CREATE TABLE` statement); the connection writes its rows.
    pub async fn sqlite_source(&self, name: &str, create_table: &str) -> sqlx::SqliteConnection {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.path(name))
            .create_if_missing(true)
            .connect()
            .await
            .expect("the CRM's database opens");
        sqlx::query(sqlx::AssertSqlSafe(create_table.to_owned()))
            .execute(&mut conn)
            .await
            .expect("the table is created");
        conn
    }

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
    /// `event` or `read`: what showed the values after the change.
    pub verified_via: Option<String>,
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
        "SELECT status, conversation_id, participant_id, correlation_id, observed, verified_via \
         FROM targets ORDER BY id",
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
    use tokio::io::AsyncWriteExt;
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

/// The one polling loop of the end-to-end tests: runs `check` every few milliseconds until it
/// returns `Ok`, and returns that. `Err(seen)` means "not yet" and says what it saw. Bounded by
/// [`timeout`] (each check too): past it, `Err` names `what` and the last thing seen.
pub async fn try_poll<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    try_poll_within(timeout(), what, check).await
}

async fn try_poll_within<T, Fut>(
    bound: Duration,
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + bound;
    let mut last_seen = String::new();
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(seen)) => last_seen = seen,
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(never(what, bound, &last_seen));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`try_poll`], failing the test on its bound.
pub async fn poll<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Result<T, String>>,
{
    try_poll(what, check)
        .await
        .unwrap_or_else(|message| panic!("{message}"))
}

/// Polls `ready` until it holds (see [`try_poll`]); `Err` past the bound.
pub async fn try_wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    try_poll(what, || {
        std::future::ready(if ready() { Ok(()) } else { Err(String::new()) })
    })
    .await
}

/// Polls `ready` until it holds (see [`try_poll`]); the test fails past the bound.
pub async fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    try_wait_until(what, ready)
        .await
        .unwrap_or_else(|message| panic!("{message}"));
}

/// Polls the simulator's request log until `ready` holds (see [`wait_until`]).
pub async fn wait_for(
    org: &TestOrg,
    what: &str,
    ready: impl Fn(&[genesys_sim::LoggedRequest]) -> bool,
) {
    wait_until(what, || ready(&org.state().request_log())).await;
}

/// Runs `command` to its end, bounded (see [`spawn`] and [`Spawned::finish`]).
pub async fn output(command: &mut tokio::process::Command) -> Run {
    spawn(command).finish().await
}

/// Starts `command` with its stdout and stderr captured (read as they come, so that a test can
/// wait for a line, and a process that hangs is reported with what it wrote) and killed when
/// the [`Spawned`] is dropped. Its stdin is left as `command` has it.
pub fn spawn(command: &mut tokio::process::Command) -> Spawned {
    let std = command.as_std();
    let program = Path::new(std.get_program())
        .file_name()
        .unwrap_or(std.get_program())
        .to_string_lossy()
        .into_owned();
    let what = std::iter::once(program)
        .chain(std.get_args().map(|arg| arg.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("`{what}` cannot start: {e}"));
    let (stdout, stdout_reader) = Captured::read(child.stdout.take());
    let (stderr, stderr_reader) = Captured::read(child.stderr.take());
    Spawned {
        child,
        what,
        stdout,
        stderr,
        readers: [stdout_reader, stderr_reader],
        stderr_seen: 0,
        bound: timeout(),
    }
}

/// A spawned process whose every wait is bounded by [`timeout`]: past it the process is killed
/// and the test fails, naming the command and showing what it wrote so far.
pub struct Spawned {
    child: tokio::process::Child,
    /// The command line, for messages.
    what: String,
    stdout: Captured,
    stderr: Captured,
    readers: [Option<JoinHandle<()>>; 2],
    /// How far [`Spawned::next_stderr_line`] has read stderr.
    stderr_seen: usize,
    /// The bound of its waits: [`timeout`].
    bound: Duration,
}

/// A pipe's bytes read so far, and whether it ended; a change wakes whoever waits for a line.
#[derive(Clone)]
struct Captured(tokio::sync::watch::Receiver<Pipe>);

#[derive(Default)]
struct Pipe {
    bytes: Vec<u8>,
    ended: bool,
}

impl Captured {
    fn read(
        pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    ) -> (Self, Option<JoinHandle<()>>) {
        let (sender, receiver) = tokio::sync::watch::channel(Pipe::default());
        let reader = pipe.map(|mut pipe| {
            tokio::spawn(async move {
                let mut buffer = [0; 8192];
                loop {
                    match pipe.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sender.send_modify(|p| p.bytes.extend_from_slice(&buffer[..n])),
                    }
                }
                sender.send_modify(|p| p.ended = true);
            })
        });
        (Self(receiver), reader)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow().bytes).into_owned()
    }
}

impl Spawned {
    /// The process id, while the process runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The process's stdin, when its command had it piped.
    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Sends `signal` (e.g. "INT", "TERM") to the process, which must still run.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .id()
            .unwrap_or_else(|| panic!("`{}` no longer runs: no SIG{signal}", self.what))
            .to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), pid.as_str()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} (`{}`)", self.what);
    }

    /// Waits for the process to end (bounded) and returns its status; its output stays
    /// available to [`Spawned::finish`]. Cancel-safe (e.g. in `tokio::select!`).
    pub async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(self.bound, self.child.wait()).await {
            Ok(status) => status.unwrap_or_else(|e| panic!("waiting for `{}`: {e}", self.what)),
            Err(_) => {
                let what = format!("`{}` ends", self.what);
                panic!("{}", self.hung(&what).await)
            }
        }
    }

    /// Waits for the process to end and for its output to close (bounded), and returns both.
    pub async fn finish(mut self) -> Run {
        let status = self.wait().await;
        for index in 0..self.readers.len() {
            let closed = match self.readers[index].as_mut() {
                Some(reader) => tokio::time::timeout(self.bound, reader).await.is_ok(),
                None => true,
            };
            if !closed {
                let what = format!("`{}` closes its output after its end", self.what);
                panic!("{}", self.hung(&what).await);
            }
        }
        Run {
            status,
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    /// `kill -9`, then [`Spawned::finish`].
    pub async fn kill(mut self) -> Run {
        // Only fails when the process already ended: finish tells it all the same.
        let _ = self.child.start_kill();
        self.finish().await
    }

    /// Waits (bounded) for the next line of stderr for which `wanted` holds, after those this
    /// method has already gone past, and returns it (without its line end). Fails when stderr
    /// ends without one.
    pub async fn next_stderr_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let mut stderr = self.stderr.0.clone();
        let mut seen = self.stderr_seen;
        let next = async {
            loop {
                {
                    let pipe = stderr.borrow_and_update();
                    while seen < pipe.bytes.len() {
                        let rest = &pipe.bytes[seen..];
                        let (line, length) = match rest.iter().position(|b| *b == b'\n') {
                            Some(end) => (&rest[..end], end + 1),
                            // The last line, unterminated, once stderr ended.
                            None if pipe.ended => (rest, rest.len()),
                            None => break,
                        };
                        seen += length;
                        let line = String::from_utf8_lossy(line);
                        let line = line.strip_suffix('\r').unwrap_or(&line);
                        if wanted(line) {
                            return Some(line.to_owned());
                        }
                    }
                    if pipe.ended {
                        return None;
                    }
                }
                // Only fails once the reader is gone, and it says `ended` first.
                let _ = stderr.changed().await;
            }
        };
        let found = tokio::time::timeout(self.bound, next).await;
        self.stderr_seen = seen;
        let failure = match found {
            Ok(Some(line)) => return line,
            Ok(None) => format!("`{}`: stderr ended before {what}", self.what),
            Err(_) => never(
                &format!("`{}` writes to stderr: {what}", self.what),
                self.bound,
                "",
            ),
        };
        panic!("{failure}\n--- stderr so far ---\n{}", self.stderr.text());
    }

    /// Kills the process, waits a little for what its pipes still hold, and returns the message
    /// the test fails with.
    async fn hung(&mut self, what: &str) -> String {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        for reader in self.readers.iter_mut().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        format!(
            "{} (killed)\n--- stderr so far ---\n{}\n--- stdout so far ---\n{}",
            never(what, self.bound, ""),
            self.stderr.text(),
            self.stdout.text()
        )
    }
}

/// The newest run as `attrsync audit runs --json` shows it.
pub async fn latest_run(org: &TestOrg) -> serde_json::Value {
    let run = org.run(&["audit", "runs", "--json"]).await;
    run.assert_code(0);
    let runs: serde_json::Value = serde_json::from_str(&run.stdout).expect("runs JSON");
    runs["runs"][0].clone()
}

/// The bounds themselves: a wait that would hang fails, naming what it waited for.
mod tests {
    use super::*;

    fn shell(script: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", script]).stdin(Stdio::null());
        command
    }

    #[tokio::test]
    async fn a_process_that_outlives_the_bound_is_killed_and_named_with_its_stderr() {
        let mut child = spawn(&mut shell("echo started >&2; exec sleep 60"));
        child
            .next_stderr_line("started", |line| line == "started")
            .await;
        child.bound = Duration::from_millis(300);
        let pid = child.id().expect("it runs").to_string();
        let began = std::time::Instant::now();
        let failure = tokio::spawn(child.finish())
            .await
            .expect_err("the wait fails")
            .into_panic();
        let message = failure.downcast_ref::<String>().expect("a message");
        assert!(
            message.contains("`sh -c echo started >&2; exec sleep 60` ends (killed)")
                && message.contains("--- stderr so far ---\nstarted\n"),
            "{message}"
        );
        assert!(began.elapsed() < Duration::from_secs(30), "it did not wait");
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .expect("kill runs");
        assert!(!alive.success(), "the process was killed and reaped");
    }

    #[tokio::test]
    async fn a_poll_past_its_bound_says_what_it_waited_for_and_what_it_saw_last() {
        let mut looks = 0;
        let third = poll("the third look", || {
            looks += 1;
            std::future::ready(if looks == 3 {
                Ok(looks)
            } else {
                Err(String::new())
            })
        })
        .await;
        assert_eq!(third, 3);
        let mut looks = 0;
        let outcome: Result<(), String> =
            try_poll_within(Duration::from_millis(50), "the moon turns blue", || {
                looks += 1;
                std::future::ready(Err(format!("look {looks}")))
            })
            .await;
        let message = outcome.expect_err("never");
        assert!(
            message.contains("the moon turns blue") && message.ends_with(&format!("look {looks}")),
            "{message}"
        );
        // A check that never answers is bounded too.
        let outcome: Result<(), String> =
            try_poll_within(Duration::from_millis(50), "an answer", std::future::pending).await;
        assert!(outcome.is_err());
    }

    #[tokio::test]
    async fn stderr_lines_are_found_in_order_each_once() {
        let mut child = spawn(&mut shell("echo one >&2; echo two >&2; printf one >&2"));
        let wanted = |line: &str| line == "one";
        assert_eq!(child.next_stderr_line("one", wanted).await, "one");
        // The second "one" (unterminated, at the end of stderr) is another line.
        assert_eq!(child.next_stderr_line("one again", wanted).await, "one");
        let run = child.finish().await;
        run.assert_code(0);
        assert_eq!(run.stderr, "one\ntwo\none");
    }

    /// The message a panicking `future` fails with.
    async fn failure(future: impl Future) -> String {
        use futures::FutureExt;
        let payload = std::panic::AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .err()
            .expect("it fails");
        payload.downcast_ref::<String>().expect("a message").clone()
    }

    #[tokio::test]
    async fn a_stderr_line_that_never_comes_fails_at_the_end_of_stderr_or_at_the_bound() {
        let mut ended = spawn(&mut shell("echo one >&2"));
        let message = failure(ended.next_stderr_line("two", |line| line == "two")).await;
        assert!(
            message.contains("stderr ended before two") && message.ends_with("one\n"),
            "{message}"
        );
        let mut silent = spawn(&mut shell("echo one >&2; exec sleep 60"));
        silent.next_stderr_line("one", |line| line == "one").await;
        silent.bound = Duration::from_millis(200);
        let message = failure(silent.next_stderr_line("two", |line| line == "two")).await;
        assert!(
            message.contains("writes to stderr: two") && message.ends_with("one\n"),
            "{message}"
        );
    }
}

/// Writes a file only its owner may read (a gc profile holds secrets), and returns its path.
pub fn write_private(org: &TestOrg, name: &str, text: &str) -> String {
    let path = org.write(name, text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.display().to_string()
}
