//! `cargo xtask bench history [--rows N] [--live L] [--rate RATE] [--liveness-batch B] [--no-old]`:
//! a CRM table of N
//! rows of which L name live calls (the rest name calls that ended hours to weeks ago), two
//! `reconcile --once` iterations against the simulator (50 ms latency, Genesys's default 300/min
//! window unless `--rate` says otherwise), side by side with the old way: the same binary with
//! `--liveness-batch 0`, which reads every row's call.
//!
//! Figures come from the simulator's request log (what Genesys would have seen) and from the
//! audit store, not from the tool's own accounting: requests by kind (multi-id analytics reads,
//! call reads, PATCHes, the rest: tokens), wall time, the process's peak resident memory (VmHWM,
//! sampled until it exits), and the target rows the iteration added to the store.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use genesys_sim::{SimConfig, SimHandle, Simulator};

/// The simulated latency of every request.
const LATENCY: Duration = Duration::from_millis(50);

struct Options {
    rows: usize,
    live: usize,
    rate_per_minute: u32,
    /// Ids per multi-id analytics read: the tool's `--liveness-batch` and the simulator's limit.
    liveness_batch: usize,
    old: bool,
}

fn options() -> Options {
    let mut options = Options {
        rows: 2_000,
        live: 100,
        rate_per_minute: 300,
        liveness_batch: genesys_sim::DEFAULT_DETAILS_MAX_IDS,
        old: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || -> usize {
            args.next()
                .and_then(|v| v.trim_end_matches("/min").parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--rows" => options.rows = value(),
            "--live" => options.live = value(),
            "--rate" => options.rate_per_minute = value() as u32,
            "--liveness-batch" => options.liveness_batch = value(),
            "--no-old" => options.old = false,
            other => panic!("unknown argument {other:?}"),
        }
    }
    assert!(options.live <= options.rows, "--live is more than --rows");
    options
}

/// One iteration's figures.
struct Figures {
    details: usize,
    reads: usize,
    patches: usize,
    other: usize,
    wall: Duration,
    peak_kib: Option<u64>,
    target_rows: i64,
}

impl Figures {
    fn row(&self, name: &str) -> String {
        format!(
            "{name:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.1} s {:>9} {:>11}",
            self.details + self.reads + self.patches + self.other,
            self.details,
            self.reads,
            self.patches,
            self.other,
            self.wall.as_secs_f64(),
            self.peak_kib.map_or_else(
                || "-".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0)
            ),
            self.target_rows,
        )
    }
}

fn sim_config(options: &Options) -> SimConfig {
    SimConfig {
        seed: 42,
        calls: options.live,
        history: options.rows - options.live,
        rate_per_minute: options.rate_per_minute,
        details_max_ids: options.liveness_batch,
        latency: LATENCY,
        jitter: Duration::ZERO,
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
    // examples/bench_history -> ../attrsync, in the same profile directory.
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .join("attrsync")
}

/// The high-water mark of a process's resident memory, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn target_rows(audit: &Path) -> i64 {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(audit)
        .read_only(true)
        .connect()
        .await
        .expect("audit store opens");
    sqlx::query_scalar("SELECT count(*) FROM targets")
        .fetch_one(&mut conn)
        .await
        .expect("targets counted")
}

/// One `reconcile --once` iteration; `liveness_batch` 0 is the old way.
async fn iteration(sim: &SimHandle, dir: &Path, rate: &str, liveness_batch: &str) -> Figures {
    let audit = dir.join("audit.sqlite");
    let before = if audit.exists() {
        target_rows(&audit).await
    } else {
        0
    };
    sim.state().reset_log();
    let (id, secret) = sim.demo_credentials();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(attrsync_bin())
        .args(["-q", "reconcile"])
        .arg(dir.join("desired.csv"))
        .args(["--once", "--concurrency", "64", "--rate", rate])
        .args(["--liveness-batch", liveness_batch])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", id)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret)
        .env("GENESYSCLOUD_API_URL", sim.url())
        .env("ATTRSYNC_AUDIT", &audit)
        .env("CI", "1")
        .spawn()
        .expect("attrsync runs (build it first: cargo build --release -p attrsync)");
    let pid = child.id().expect("running");
    let mut peak = None;
    let status = loop {
        if let Some(kib) = peak_kib(pid) {
            peak = Some(peak.unwrap_or(0).max(kib));
        }
        tokio::select! {
            status = child.wait() => break status.expect("waited"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let wall = started.elapsed();
    assert!(status.success(), "attrsync reconcile failed: {status}");
    let log = sim.state().request_log();
    let api: Vec<_> = log.iter().filter(|r| r.path.starts_with("/api/")).collect();
    let details = api
        .iter()
        .filter(|r| r.path == "/api/v2/analytics/conversations/details")
        .count();
    let reads = api
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/v2/conversations/calls/"))
        .count();
    let patches = api.iter().filter(|r| r.method == "PATCH").count();
    Figures {
        details,
        reads,
        patches,
        other: log.len() - details - reads - patches,
        wall,
        peak_kib: peak,
        target_rows: target_rows(&audit).await - before,
    }
}

/// Two iterations of one way in a fresh world.
async fn two_iterations(options: &Options, liveness_batch: &str) -> (Figures, Figures) {
    let sim = Simulator::start(
        sim_config(options),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("desired.csv"), desired_csv(&sim)).unwrap();
    // attrsync's budget is the server's: the default 300/min unless --rate says otherwise.
    let rate = format!("{}/min", options.rate_per_minute);
    let first = iteration(&sim, dir.path(), &rate, liveness_batch).await;
    let second = iteration(&sim, dir.path(), &rate, liveness_batch).await;
    sim.shutdown().await;
    (first, second)
}

#[tokio::main]
async fn main() {
    let options = options();
    println!(
        "bench history: {} rows, {} live calls; simulator latency {} ms, {}/min window per token",
        options.rows,
        options.live,
        LATENCY.as_millis(),
        options.rate_per_minute
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>11} {:>9} {:>11}",
        "", "requests", "details", "reads", "PATCH", "other", "wall", "peak RSS", "target rows"
    );
    let (first, second) = two_iterations(&options, &options.liveness_batch.to_string()).await;
    println!("{}", first.row("attrsync, iteration 1"));
    println!("{}", second.row("attrsync, iteration 2"));
    if options.old {
        let (first, second) = two_iterations(&options, "0").await;
        println!("{}", first.row("old way, iteration 1"));
        println!("{}", second.row("old way, iteration 2"));
    }
}
