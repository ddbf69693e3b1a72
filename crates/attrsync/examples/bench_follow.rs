//! `cargo xtask bench follow [--minutes N] [--numbers]`: `attrsync tag --follow` against the
//! simulator's Notification API under a steady stream of calls, with forced socket closes and a
//! dropped connection, measured from the simulator's state and request log and from the audit
//! store.
//!
//! With `--numbers [--contacts N]`: `attrsync reconcile contacts.sqlite --follow`, a campaign's
//! contact list of 100,000 (or N) customers' numbers with a tier, under the same stream of calls whose customers are on
//! the list (no socket faults); then, arrivals stopped, one committed change of the list that
//! gives 100 live calls' customers a new tier. Figures: arrival to verified, requests per
//! arrived call, calls missed; then the change's write to each call verified (p50, p95) and
//! its requests per change (every `/api/v2` request from the write until all 100 are verified).
//!
//! Conditions (issue 10's): latency 50 ms, no visibility lag, event delay 50 ms, an empty queue
//! at the start, 5 arrivals/s, calls lasting 3 minutes, `--rate 3000/min`, 3 socket closes
//! (`v2.system.socket_closing`) and 1 dropped connection spread over the run (default 10 min).
//!
//! Figures: arrival to verified (the audit row's verified time minus the call's arrival; the
//! simulator's clock starts a moment after the recorded start, so this errs long), requests per
//! arrived call (every `/api/v2` request of the run: PATCHes, fallback and backfill reads,
//! listings, channel requests), calls missed (arrived, still live at the end or ended, never
//! verified), and the follower's resident memory at 40 % and at the end of the run.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use audit::{AuditStore, TargetFilter, TargetStatus};
use genesys_sim::{ArrivalRate, SimConfig, SimHandle, Simulator};

fn attrsync_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .join("attrsync")
}

/// A memory figure of a process's `/proc/PID/status`, in KiB (Linux).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The high-water mark of a process's resident memory, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The conditions of every run: latency 50 ms, event delay 50 ms, one queue, empty at the start,
/// calls of 3 minutes, a budget of 3000/min.
fn follow_config() -> SimConfig {
    SimConfig {
        seed: 42,
        calls: 0,
        queues: 1,
        rate_per_minute: 3000,
        latency: Duration::from_millis(50),
        event_delay: Duration::from_millis(50),
        call_duration: Some(Duration::from_secs(180)),
        ..SimConfig::default()
    }
}

/// Starts `attrsync ARGS --rate 3000/min` against `sim` with its audit store at `audit`, and
/// waits until its notification socket is connected. Returns the process and its id.
async fn start_follower(
    sim: &SimHandle,
    audit: &Path,
    args: &[&OsStr],
) -> (tokio::process::Child, u32) {
    let (id, secret) = sim.demo_credentials();
    let child = tokio::process::Command::new(attrsync_bin())
        .arg("-q")
        .args(args)
        .args(["--rate", "3000/min"])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", id)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret)
        .env("GENESYSCLOUD_API_URL", sim.url())
        .env("ATTRSYNC_AUDIT", audit)
        .env("CI", "1")
        .kill_on_drop(true)
        .spawn()
        .expect("attrsync runs (build it first: cargo build --release -p attrsync)");
    let pid = child.id().unwrap();
    while sim.state().notification_status().sockets == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (child, pid)
}

/// Each arrived call's time from arrival to its first verified target, in ms (the simulator's
/// clock started at `sim_started`), and how many arrived calls were never verified.
fn arrival_latencies(
    arrived: &[genesys_sim::SimCall],
    rows: &[audit::TargetRecord],
    sim_started: SystemTime,
) -> (Vec<u64>, usize) {
    let mut verified_at: HashMap<String, u64> = HashMap::new();
    for row in rows.iter().filter(|r| r.status == TargetStatus::Verified) {
        let at = row.updated_at.as_millis() as u64;
        verified_at
            .entry(row.conversation_id.clone())
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    let start_ms = sim_started.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut latencies: Vec<u64> = Vec::new();
    let mut missed = 0;
    for call in arrived {
        match verified_at.get(&call.conversation.id) {
            Some(at) => latencies.push(at.saturating_sub(start_ms + call.arrived_at_ms.unwrap())),
            None => missed += 1,
        }
    }
    latencies.sort_unstable();
    (latencies, missed)
}

/// Arrival to verified (p50, p95, max), and the run's API requests per arrived call.
fn print_arrivals(latencies: &[u64], requests: usize, arrived: usize) {
    println!(
        "arrival -> verified: p50 {} ms, p95 {} ms, max {} ms",
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "API requests {requests}, per arrived call {:.3}",
        requests as f64 / arrived.max(1) as f64
    );
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The contact list's customer number of row `i` (E.164, US).
fn contact_number(i: u64) -> String {
    format!("+1555{:07}", i)
}

/// Contacts on the list unless `--contacts N` says otherwise.
const CONTACTS: u64 = 100_000;
/// Live calls whose customers a change of the list concerns.
const CHANGED: usize = 100;

/// `reconcile --follow` of a contact list: see the module's doc.
async fn numbers(run_for: Duration, minutes: f64, contacts: u64) {
    use sqlx::ConnectOptions;
    let arrivals = (run_for.as_secs_f64() * 5.0) as u64 + 100;
    let config = SimConfig {
        // Arriving customers are on the list, spread over it.
        arrival_customer_numbers: (0..arrivals)
            .map(|i| contact_number(i * (contacts / arrivals).max(1) % contacts))
            .collect(),
        ..follow_config()
    };
    let sim_started = SystemTime::now();
    let sim = Simulator::start(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let state = sim.state();
    let queue = state.queues()[0].id.clone();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("contacts.sqlite");
    let mut crm = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&list)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE desired_attributes (customer_number TEXT, key TEXT, value TEXT)")
        .execute(&mut crm)
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut crm).await.unwrap();
    for i in 0..contacts {
        sqlx::query("INSERT INTO desired_attributes VALUES (?1, 'tier', 'gold')")
            .bind(contact_number(i))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let audit_path = dir.path().join("audit.sqlite");
    let args = [
        OsStr::new("reconcile"),
        list.as_os_str(),
        OsStr::new("--follow"),
        OsStr::new("--queue"),
        OsStr::new(&queue),
    ];
    let (child, pid) = start_follower(&sim, &audit_path, &args).await;
    println!(
        "follow benchmark, by number: {minutes} min, a contact list of {contacts} numbers, 5 \
         arrivals/s whose customers are on it, calls of 3 min, latency 50 ms, event delay 50 ms, \
         --rate 3000/min"
    );
    state.set_arrival_rate(ArrivalRate::per_second(5.0));
    let started = Instant::now();
    let requests_before = state.request_log().len();
    let mut peak_rss = 0;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak_rss = peak_rss.max(rss_kib(pid).unwrap_or(0));
    }
    state.set_arrival_rate(ArrivalRate::NONE);
    // The last arrivals get their turn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let arrival_requests = state.request_log()[requests_before..]
        .iter()
        .filter(|r| r.path.starts_with("/api/v2"))
        .count();
    let arrived: Vec<_> = state
        .calls()
        .into_iter()
        .filter(|c| c.arrived_at_ms.is_some())
        .collect();

    // The change: 100 live calls' customers get a new tier, in one committed transaction.
    let live: Vec<String> = arrived
        .iter()
        .filter(|c| !c.ended)
        .rev()
        .take(CHANGED)
        .map(|c| {
            c.conversation
                .participants
                .iter()
                .find(|p| p.purpose.as_deref() == Some("customer"))
                .and_then(|p| p.address.clone())
                .expect("a customer's number")
                .trim_start_matches("tel:")
                .to_owned()
        })
        .collect();
    let change_before = state.request_log().len();
    let mut tx = sqlx::Connection::begin(&mut crm).await.unwrap();
    for number in &live {
        sqlx::query("UPDATE desired_attributes SET value = 'platinum' WHERE customer_number = ?1")
            .bind(number)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let written_at = unix_ms_now();
    let audit = AuditStore::open_read_only(&audit_path).await.unwrap();
    let changed_rows = || async {
        audit
            .list_targets(&TargetFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.status == TargetStatus::Verified
                    && r.desired.get("tier").map(String::as_str) == Some("platinum")
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while changed_rows().await.len() < live.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changed = changed_rows().await;
    let change_requests = state.request_log()[change_before..]
        .iter()
        .filter(|r| r.path.starts_with("/api/v2"))
        .count();
    let mut change_latencies: Vec<u64> = changed
        .iter()
        .map(|r| (r.updated_at.as_millis() as u64).saturating_sub(written_at))
        .collect();
    change_latencies.sort_unstable();

    let high_water = peak_kib(pid);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child
        .wait_with_output()
        .await
        .expect("attrsync ends")
        .status;
    let rows = audit.list_targets(&TargetFilter::default()).await.unwrap();
    let (latencies, missed) = arrival_latencies(&arrived, &rows, sim_started);
    println!();
    println!("attrsync exit {status}");
    println!(
        "calls arrived {}, verified {}, missed {missed}",
        arrived.len(),
        latencies.len()
    );
    print_arrivals(&latencies, arrival_requests, arrived.len());
    println!(
        "a change of the list for {} live calls: {} verified; write -> verified p50 {} ms, \
         p95 {} ms, max {} ms; API requests {change_requests}, per change {:.3}",
        live.len(),
        changed.len(),
        percentile(&change_latencies, 0.5),
        percentile(&change_latencies, 0.95),
        change_latencies.last().copied().unwrap_or(0),
        change_requests as f64 / changed.len().max(1) as f64
    );
    println!(
        "resident memory: peak {peak_rss} KiB during the arrivals; high-water mark {} KiB with \
         the change (VmHWM)",
        high_water.unwrap_or(0)
    );
    sim.shutdown().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut minutes = 10.0;
    let mut by_number = false;
    let mut contacts = CONTACTS;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--minutes N")
            }
            "--numbers" => by_number = true,
            "--contacts" => {
                contacts = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--contacts N")
            }
            _ => panic!("usage: bench_follow [--minutes N] [--numbers [--contacts N]]"),
        }
    }
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    if by_number {
        return numbers(run_for, minutes, contacts).await;
    }
    let config = follow_config();
    let sim_started = SystemTime::now();
    let sim = Simulator::start(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let state = sim.state();
    let queue = state.queues()[0].id.clone();
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.sqlite");
    let args = ["tag", "--queue", &queue, "--follow", "campaign=spring"].map(OsStr::new);
    let (child, pid) = start_follower(&sim, &audit_path, &args).await;
    println!(
        "follow benchmark: {minutes} min, 5 arrivals/s, calls of 3 min, latency 50 ms, event delay 50 ms, --rate 3000/min"
    );
    state.set_arrival_rate(ArrivalRate::per_second(5.0));
    let started = Instant::now();
    let requests_before = state.request_log().len();
    // Faults at fixed fractions of the run: closes at 20, 50 and 80 %, a drop at 65 %.
    let mut faults = vec![
        (0.2, "close"),
        (0.5, "close"),
        (0.65, "drop"),
        (0.8, "close"),
    ];
    let mut rss_at_40 = None;
    let mut peak_rss = 0;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = started.elapsed().as_secs_f64() / run_for.as_secs_f64();
        if let Some(rss) = rss_kib(pid) {
            peak_rss = peak_rss.max(rss);
            if rss_at_40.is_none() && done >= 0.4 {
                rss_at_40 = Some(rss);
            }
        }
        while let Some(&(at, kind)) = faults.first() {
            if done < at {
                break;
            }
            faults.remove(0);
            let sockets = if kind == "close" {
                state.announce_socket_closing()
            } else {
                state.drop_sockets()
            };
            println!(
                "  {:>5.1}s: {kind} ({sockets} socket)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    state.set_arrival_rate(ArrivalRate::NONE);
    let rss_end = rss_kib(pid);
    // The last arrivals get their turn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wall = started.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child
        .wait_with_output()
        .await
        .expect("attrsync ends")
        .status;

    let log = state.request_log();
    let api_requests = log[requests_before..]
        .iter()
        .filter(|r| r.path.starts_with("/api/v2"))
        .count();
    let arrived: Vec<_> = state
        .calls()
        .into_iter()
        .filter(|c| c.arrived_at_ms.is_some())
        .collect();
    let audit = AuditStore::open_read_only(&audit_path).await.unwrap();
    let rows = audit.list_targets(&TargetFilter::default()).await.unwrap();
    let (latencies, missed) = arrival_latencies(&arrived, &rows, sim_started);
    let unprocessed = rows
        .iter()
        .filter(|r| r.status == TargetStatus::Unprocessed)
        .count();
    println!();
    println!("wall {:.0} s, attrsync exit {status}", wall.as_secs_f64());
    println!(
        "calls arrived {}, verified {}, missed {missed} (unprocessed at stop {unprocessed})",
        arrived.len(),
        latencies.len()
    );
    print_arrivals(&latencies, api_requests, arrived.len());
    if let (Some(at_40), Some(end)) = (rss_at_40, rss_end) {
        println!(
            "resident memory: {at_40} KiB at 40 % of the run, {end} KiB at the end ({:+.1} %), peak {peak_rss} KiB",
            (end as f64 - at_40 as f64) * 100.0 / at_40 as f64
        );
    }
    sim.shutdown().await;
}
