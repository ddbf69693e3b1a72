//! `cargo xtask bench apply`: attrsync against the simulator with latency and a rate limit,
//! side by side with the tutorial's way (one row at a time: read, PATCH, read back).
//!
//! Figures come from the simulator's request log (what Genesys would have seen), not from the
//! tool's own accounting: wall time, achieved requests/s / configured budget (utilization),
//! requests per changed target, and 429s.
//!
//! attrsync runs with its default burst (5); the simulator tolerates a burst of 10.
//!
//! Usage: bench_apply [SCENARIO...] where SCENARIO is CALLS@RATE_PER_MINUTE (default:
//! `60@300 300@3000`: Genesys's default budget, and a raised one).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use genesys_sim::{LimitShape, SimConfig, SimHandle, Simulator};

struct Figures {
    wall: Duration,
    api_requests: usize,
    throttled: usize,
    patches: usize,
    span_secs: f64,
}

impl Figures {
    fn from_log(sim: &SimHandle, wall: Duration) -> Figures {
        let log: Vec<_> = sim
            .state()
            .request_log()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect();
        let first = log.iter().map(|r| r.at_ms).min().unwrap_or(0);
        let last = log.iter().map(|r| r.at_ms).max().unwrap_or(0);
        Figures {
            wall,
            api_requests: log.len(),
            throttled: log.iter().filter(|r| r.status == 429).count(),
            patches: log
                .iter()
                .filter(|r| r.method == "PATCH" && r.status == 202)
                .count(),
            span_secs: ((last - first) as f64 / 1000.0).max(0.001),
        }
    }

    fn row(&self, name: &str, budget_per_minute: f64) -> String {
        let rps = self.api_requests as f64 / self.span_secs;
        format!(
            "{name:<10} {:>8.1}s {:>9} {:>8.2} {:>11.2} {:>12.2} {:>6}",
            self.wall.as_secs_f64(),
            self.api_requests,
            rps,
            rps / (budget_per_minute / 60.0),
            self.api_requests as f64 / self.patches.max(1) as f64,
            self.throttled
        )
    }
}

fn sim_config(calls: usize, rate_per_minute: u32) -> SimConfig {
    SimConfig {
        seed: 42,
        calls,
        rate_per_minute,
        limit_shape: LimitShape::Bucket,
        burst: 10,
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        ..SimConfig::default()
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

async fn run_attrsync(calls: usize, rate: u32) -> Figures {
    let sim = Simulator::start(
        sim_config(calls, rate),
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
        .args(["--rate", &format!("{rate}/min"), "--concurrency", "64"])
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
    let figures = Figures::from_log(&sim, wall);
    sim.shutdown().await;
    figures
}

/// The tutorial's loop, made as fair as it can be: it honours Retry-After on a 429 instead of
/// failing the row, but it has no limiter and no concurrency.
async fn run_tutorial(calls: usize, rate: u32) -> Figures {
    let sim = Simulator::start(
        sim_config(calls, rate),
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
    let figures = Figures::from_log(&sim, started.elapsed());
    sim.shutdown().await;
    figures
}

#[tokio::main]
async fn main() {
    // reqwest is built without a default TLS provider (the client picks ring); the tutorial's
    // plain client needs one installed even for http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenarios: Vec<(usize, u32)> = if args.is_empty() {
        vec![(60, 300), (300, 3000)]
    } else {
        args.iter()
            .map(|a| {
                let (calls, rate) = a
                    .split_once('@')
                    .expect("SCENARIO is CALLS@RATE_PER_MINUTE");
                (
                    calls.parse().expect("CALLS"),
                    rate.parse().expect("RATE_PER_MINUTE"),
                )
            })
            .collect()
    };
    println!(
        "apply benchmark: simulator latency 50ms +- 20ms and burst 10 (attrsync: default burst 5), one customer target per call\n"
    );
    for (calls, rate) in scenarios {
        println!("{calls} calls, budget {rate}/min per token");
        println!(
            "{:<10} {:>9} {:>9} {:>8} {:>11} {:>12} {:>6}",
            "tool", "wall", "requests", "req/s", "utilization", "req/target", "429s"
        );
        let ours = run_attrsync(calls, rate).await;
        println!("{}", ours.row("attrsync", f64::from(rate)));
        let tutorial = run_tutorial(calls, rate).await;
        println!("{}", tutorial.row("tutorial", f64::from(rate)));
        println!(
            "attrsync is {:.1}x faster than the tutorial's way\n",
            tutorial.wall.as_secs_f64() / ours.wall.as_secs_f64()
        );
    }
}
