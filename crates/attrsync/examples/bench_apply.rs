//! `cargo xtask bench apply`: attrsync against the simulator, side by side with the tutorial's
//! way (one row at a time: read, PATCH, read back), on the same worlds, for each limiter shape
//! the server may have (a window, Genesys's by the evidence; a smooth bucket).
//!
//! Figures come from the simulator's request log (what Genesys would have seen) and the audit
//! store, not from the tool's own accounting: wall time, API requests (channel and subscription
//! requests included), requests per changed participant, how the changes were verified (by
//! event, by read, or not), 429s, 429s
//! after the first window, and wall / floor, where the floor is the least time the server's
//! budget allows for the job's requests (window: W x floor((N-1)/B); bucket: (N-burst)/rate;
//! buckets behind an org window, which the simulator's org limit always is: W x floor((N-1)/B)
//! for the org's window, plus the time the buckets take to pass its first window's B), plus
//! one call's read, PATCH and read back at the simulated latency.
//!
//! Usage: bench_apply [--no-tutorial] [SCENARIO...] with names from the list printed at the
//! start (default: all of them). With `BENCH_APPLY_LOG=DIR`, each attrsync run's request log (as
//! the simulator recorded it) is written to `DIR/SCENARIO.tsv`: milliseconds, token, method,
//! status, Retry-After, one request a line, to see where a run loses time.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use genesys_sim::{LimitShape, SimConfig, SimHandle, Simulator};

/// The simulated latency of every request.
const LATENCY: Duration = Duration::from_millis(50);

/// One world and one way to run attrsync in it.
#[derive(Clone)]
struct Scenario {
    name: &'static str,
    calls: usize,
    shape: LimitShape,
    /// Per-token budget: `budget` requests per `window` (window shape); the same rate (bucket).
    budget: u32,
    window: Duration,
    /// The bucket's burst (bucket shape only).
    burst: u32,
    /// An org-wide window of this many requests per `window`, shared by all tokens.
    org_budget: Option<u32>,
    /// attrsync's `--rate`, `--tokens`.
    rate: String,
    tokens: u16,
    /// Whether the tutorial's loop runs too (it has no tokens).
    tutorial: bool,
    /// attrsync's `--verify-via`.
    verify_via: &'static str,
}

impl Scenario {
    fn per_minute(&self, budget: u32) -> u32 {
        (f64::from(budget) * 60.0 / self.window.as_secs_f64()).round() as u32
    }

    fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: 42,
            calls: self.calls,
            rate_per_minute: self.per_minute(self.budget),
            limit_shape: self.shape,
            limit_window: self.window,
            burst: self.burst,
            org_rate_per_minute: self.org_budget.map_or(0, |b| self.per_minute(b)),
            latency: LATENCY,
            jitter: Duration::from_millis(0),
            ..SimConfig::default()
        }
    }

    /// The least time the server allows for `requests` API requests from `tokens` tokens.
    fn floor(&self, requests: usize, tokens: u16) -> Duration {
        let tokens_budget = self.budget * u32::from(tokens);
        let per_window = tokens_budget
            .min(self.org_budget.unwrap_or(u32::MAX))
            .max(1) as usize;
        // One call's read, PATCH and verification (a read back, or its event).
        let wire = LATENCY * 3;
        let windows =
            |per_window: usize| self.window * ((requests.saturating_sub(1) / per_window) as u32);
        match self.shape {
            LimitShape::Window => windows(per_window) + wire,
            LimitShape::Bucket => {
                // The tokens' buckets: their bursts at once, then their rate.
                let per_sec = f64::from(tokens_budget) / self.window.as_secs_f64();
                let burst = (self.burst * u32::from(tokens)) as usize;
                let through_buckets =
                    |n: usize| Duration::from_secs_f64(n.saturating_sub(burst) as f64 / per_sec);
                let buckets = through_buckets(requests);
                match self.org_budget {
                    // The org's limit is a window (the simulator's always is): a request starts
                    // a window after the one the org's budget before it, back to the first
                    // window's, which the buckets pass no faster than their rate.
                    Some(org) if org < tokens_budget => {
                        let org = org as usize;
                        buckets.max(windows(org) + through_buckets(org)) + wire
                    }
                    _ => buckets + wire,
                }
            }
        }
    }
}

fn scenarios() -> Vec<Scenario> {
    let base = |name, shape| Scenario {
        name,
        calls: 100,
        shape,
        budget: 300,
        window: Duration::from_secs(60),
        burst: 10,
        org_budget: None,
        rate: "300/min".into(),
        tokens: 1,
        tutorial: true,
        verify_via: "event",
    };
    let mut all = Vec::new();
    for (shape, suffix) in [
        (LimitShape::Window, "window"),
        (LimitShape::Bucket, "bucket"),
    ] {
        let name =
            |s: &str| -> &'static str { Box::leak(format!("{s}-{suffix}").into_boxed_str()) };
        // A campaign that fits in one window: 100 calls, 300 requests, at Genesys's default.
        all.push(base(name("small"), shape));
        // A long job: 300 calls, 900 requests with a budget of 100 per 10 s (nine windows).
        all.push(Scenario {
            calls: 300,
            budget: 100,
            window: Duration::from_secs(10),
            rate: "100/10s".into(),
            ..base(name("long"), shape)
        });
        // --rate four times what the server allows.
        all.push(Scenario {
            calls: 200,
            budget: 60,
            window: Duration::from_secs(10),
            rate: "240/10s".into(),
            ..base(name("rate-4x"), shape)
        });
        // An org-wide limit below --rate x --tokens: two tokens of 100/10s, the org 100/10s.
        all.push(Scenario {
            calls: 200,
            budget: 100,
            window: Duration::from_secs(10),
            org_budget: Some(100),
            rate: "100/10s".into(),
            tokens: 2,
            tutorial: false,
            ..base(name("org-limit"), shape)
        });
    }
    // --rate per minute against a server that counts in windows of 10 s (600/min both): the
    // server's window is learned from the first refusal.
    all.push(Scenario {
        calls: 200,
        budget: 100,
        window: Duration::from_secs(10),
        rate: "600/min".into(),
        tutorial: false,
        ..base("rate-per-min", LimitShape::Window)
    });
    // A smooth server that is a window of a second (10 per second, 600/min): 201 requests.
    all.push(Scenario {
        calls: 67,
        budget: 10,
        window: Duration::from_secs(1),
        rate: "600/min".into(),
        tutorial: false,
        ..base("smooth-window", LimitShape::Window)
    });
    // 1,000 calls that each need a change at Genesys's default: verified by their attribute
    // events (issue 16's target: at most 2.05 requests per change), and read back for comparison.
    for (name, verify_via) in [("changes-event", "event"), ("changes-get", "get")] {
        all.push(Scenario {
            calls: 1_000,
            tutorial: false,
            verify_via,
            ..base(name, LimitShape::Window)
        });
    }
    // Sustained throughput of a token pool: at least 10 windows per token.
    for tokens in [1u16, 4] {
        all.push(Scenario {
            calls: 200 * usize::from(tokens),
            budget: 60,
            window: Duration::from_secs(5),
            rate: "60/5s".into(),
            tokens,
            tutorial: false,
            ..base(
                if tokens == 1 { "tokens-1" } else { "tokens-4" },
                LimitShape::Window,
            )
        });
    }
    all
}

struct Figures {
    wall: Duration,
    api_requests: usize,
    throttled: usize,
    /// 429s after the first window of the run.
    throttled_later: usize,
    patches: usize,
    span_secs: f64,
    /// Changes verified by an event, by a read, and not verified (the audit store's count).
    by_event: usize,
    by_read: usize,
    unverified: usize,
}

impl Figures {
    fn from_log(sim: &SimHandle, wall: Duration, window: Duration) -> Figures {
        let log: Vec<_> = sim
            .state()
            .request_log()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect();
        let first = log.iter().map(|r| r.at_ms).min().unwrap_or(0);
        let last = log.iter().map(|r| r.at_ms).max().unwrap_or(0);
        let window_ms = window.as_millis() as u64;
        Figures {
            wall,
            api_requests: log.len(),
            throttled: log.iter().filter(|r| r.status == 429).count(),
            throttled_later: log
                .iter()
                .filter(|r| r.status == 429 && r.at_ms >= first + window_ms)
                .count(),
            patches: log
                .iter()
                .filter(|r| r.method == "PATCH" && r.status == 202)
                .count(),
            span_secs: ((last - first) as f64 / 1000.0).max(0.001),
            by_event: 0,
            by_read: 0,
            unverified: 0,
        }
    }

    /// How the run's changes were verified, as its audit store records it.
    async fn count_verifications(&mut self, audit: &std::path::Path) {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(audit)
            .read_only(true)
            .connect()
            .await
            .expect("the audit store opens");
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT status, verified_via FROM targets WHERE sent_at IS NOT NULL")
                .fetch_all(&mut conn)
                .await
                .expect("targets readable");
        for (status, via) in rows {
            match (status.as_str(), via.as_deref()) {
                ("verified", Some("event")) => self.by_event += 1,
                ("verified", _) => self.by_read += 1,
                _ => self.unverified += 1,
            }
        }
    }

    fn verification(&self) -> String {
        format!(
            "verified: {} by event, {} by read; {} not verified",
            self.by_event, self.by_read, self.unverified
        )
    }

    fn row(&self, name: &str, floor: Duration) -> String {
        let later_total = self.api_requests.max(1);
        format!(
            "{name:<10} {:>8.1}s {:>9} {:>11.2} {:>6} {:>15} {:>11.2}",
            self.wall.as_secs_f64(),
            self.api_requests,
            self.api_requests as f64 / self.patches.max(1) as f64,
            self.throttled,
            format!(
                "{} ({:.1} %)",
                self.throttled_later,
                100.0 * self.throttled_later as f64 / later_total as f64
            ),
            self.wall.as_secs_f64() / floor.as_secs_f64(),
        )
    }
}

fn desired_csv(sim: &SimHandle) -> String {
    let mut csv = String::from("conversation_id,campaign,tier\n");
    for call in sim.state().calls() {
        csv.push_str(&format!("{},spring,gold\n", call.conversation.id));
    }
    csv
}

fn attrsync_bin() -> PathBuf {
    // examples/bench_apply -> ../attrsync, in the same profile directory.
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .join("attrsync")
}

async fn run_attrsync(scenario: &Scenario) -> Figures {
    let sim = Simulator::start(
        scenario.sim_config(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("desired.csv");
    std::fs::write(&csv, desired_csv(&sim)).unwrap();
    let (id, secret) = sim.demo_credentials();
    let started = Instant::now();
    let status = tokio::process::Command::new(attrsync_bin())
        .args(["-q", "apply"])
        .arg(&csv)
        .args(["--rate", &scenario.rate, "--concurrency", "64"])
        .args(["--verify-via", scenario.verify_via])
        .args(["--tokens", &scenario.tokens.to_string()])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", id)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret)
        .env("GENESYSCLOUD_API_URL", sim.url())
        .env("ATTRSYNC_AUDIT", dir.path().join("audit.sqlite"))
        .env("CI", "1")
        .status()
        .await
        .expect("attrsync runs (build it first: cargo build --release -p attrsync)");
    let wall = started.elapsed();
    assert!(status.success(), "attrsync apply failed: {status}");
    let mut figures = Figures::from_log(&sim, wall, scenario.window);
    figures
        .count_verifications(&dir.path().join("audit.sqlite"))
        .await;
    if let Some(dir) = std::env::var_os("BENCH_APPLY_LOG") {
        write_request_log(
            &sim,
            &PathBuf::from(dir).join(format!("{}.tsv", scenario.name)),
        );
    }
    sim.shutdown().await;
    figures
}

/// The simulator's request log as tab-separated lines: at_ms, token, method, status, Retry-After.
fn write_request_log(sim: &SimHandle, path: &std::path::Path) {
    let mut text = String::from("at_ms\ttoken\tmethod\tstatus\tretry_after\n");
    for r in sim.state().request_log() {
        if !r.path.starts_with("/api/") {
            continue;
        }
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.at_ms,
            r.token_id.as_deref().unwrap_or("-"),
            r.method,
            r.status,
            r.retry_after_secs
                .map_or_else(String::new, |s| s.to_string()),
        ));
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The tutorial's loop, made as fair as it can be: it honours Retry-After on a 429 instead of
/// failing the row, but it has no limiter and no concurrency.
async fn run_tutorial(scenario: &Scenario) -> Figures {
    let sim = Simulator::start(
        scenario.sim_config(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let (id, secret) = sim.demo_credentials();
    let token: serde_json::Value = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let send = |req: reqwest::RequestBuilder| {
        let bearer = bearer.clone();
        async move {
            loop {
                let resp = req
                    .try_clone()
                    .unwrap()
                    .bearer_auth(&bearer)
                    .send()
                    .await
                    .unwrap();
                if resp.status() == 429 {
                    let wait = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                return resp;
            }
        }
    };
    let started = Instant::now();
    for call in sim.state().calls() {
        let url = format!(
            "{}/api/v2/conversations/calls/{}",
            sim.url(),
            call.conversation.id
        );
        let conversation: serde_json::Value = send(http.get(&url)).await.json().await.unwrap();
        let customer = conversation["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "customer")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = serde_json::json!({"attributes": {"campaign": "spring", "tier": "gold"}});
        send(
            http.patch(format!("{url}/participants/{customer}/attributes"))
                .json(&body),
        )
        .await;
        send(http.get(&url)).await;
    }
    let figures = Figures::from_log(&sim, started.elapsed(), scenario.window);
    sim.shutdown().await;
    figures
}

#[tokio::main]
async fn main() {
    // reqwest is built without a default TLS provider (the client picks ring); the tutorial's
    // plain client needs one installed even for http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--no-tutorial`: attrsync only (the tutorial's loop does not change with attrsync).
    let with_tutorial = !args.iter().any(|a| a == "--no-tutorial");
    args.retain(|a| a != "--no-tutorial");
    let all = scenarios();
    let chosen: Vec<Scenario> = if args.is_empty() {
        all.clone()
    } else {
        args.iter()
            .map(|a| {
                all.iter()
                    .find(|s| s.name == a)
                    .cloned()
                    .unwrap_or_else(|| panic!("unknown scenario {a}"))
            })
            .collect()
    };
    println!(
        "apply benchmark: simulator latency 50 ms, one customer per call gets two keys; scenarios: {}\n",
        all.iter().map(|s| s.name).collect::<Vec<_>>().join(" ")
    );
    let mut sustained = Vec::new();
    for scenario in &chosen {
        let org = scenario
            .org_budget
            .map_or_else(String::new, |b| format!(", org {b} per window"));
        println!(
            "{}: {} calls, {:?} limit of {} per {:?} per token{org}; attrsync --rate {} --tokens {} --verify-via {}",
            scenario.name,
            scenario.calls,
            scenario.shape,
            scenario.budget,
            scenario.window,
            scenario.rate,
            scenario.tokens,
            scenario.verify_via
        );
        println!(
            "{:<10} {:>9} {:>9} {:>11} {:>6} {:>15} {:>11}",
            "tool", "wall", "requests", "req/change", "429s", "429s after 1st", "wall/floor"
        );
        let ours = run_attrsync(scenario).await;
        // The floor counts what the server admitted: a refused request costs it nothing.
        let floor = scenario.floor(ours.api_requests - ours.throttled, scenario.tokens);
        println!("{}", ours.row("attrsync", floor));
        println!("{}", ours.verification());
        sustained.push((scenario.name, ours.api_requests as f64 / ours.span_secs));
        if scenario.tutorial && with_tutorial {
            let tutorial = run_tutorial(scenario).await;
            println!(
                "{}",
                tutorial.row("tutorial", scenario.floor(tutorial.api_requests, 1))
            );
            println!(
                "attrsync is {:.1}x faster than the tutorial's way",
                tutorial.wall.as_secs_f64() / ours.wall.as_secs_f64()
            );
        }
        println!();
    }
    let rate = |name: &str| sustained.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    if let (Some(one), Some(four)) = (rate("tokens-1"), rate("tokens-4")) {
        println!(
            "sustained throughput: 1 token {one:.1} req/s, 4 tokens {four:.1} req/s ({:.2}x)",
            four / one
        );
    }
}
