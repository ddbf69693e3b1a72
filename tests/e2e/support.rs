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
