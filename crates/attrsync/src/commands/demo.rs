//! `attrsync demo`: the whole job against the built-in simulator, in under a minute.
//!
//! Starts a simulated org of live calls on loopback, writes a sample desired-state CSV (a
//! campaign tag for every customer, a few rows already in sync, one call that has ended), shows
//! the plan, applies it under Genesys's default budget with progress, verifies, and prints the
//! audit summary and how to do the same against a real org.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use genesys_core::models::CallConversation;
use genesys_sim::{SimConfig, Simulator};

use engine::Work;
use engine::live::fetch_live;

use super::apply::open_audit;
use super::source::read_desired;
use crate::cli::{DemoArgs, SourceArgs};
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::render::summary::run_summary;
use crate::render::{Style, plan::plan_text};
use crate::ui::Ui;

/// Plan lines shown before "... N more": enough to see every kind of change.
const PLAN_LINES_SHOWN: usize = 40;

pub async fn run(args: DemoArgs, ui: Ui) -> anyhow::Result<Exit> {
    let style = Style { color: ui.color };
    let rate = args.rate;
    let sim = Simulator::start(
        SimConfig {
            seed: args.seed,
            calls: args.calls,
            rate_per_minute: rate.per_minute().round() as u32,
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..SimConfig::default()
        },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .context("cannot start the simulator")?;
    let (client_id, secret) = sim.demo_credentials();
    eprintln!(
        "{} a simulated Genesys Cloud org with {} live calls at {} (rate limit {} per token)",
        style.bold("1. Started"),
        args.calls,
        sim.url(),
        args.rate
    );

    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => tempfile_dir()?,
    };
    let calls: Vec<CallConversation> = sim
        .state()
        .calls()
        .into_iter()
        .map(|c| c.conversation)
        .collect();
    // One call ends before we start: the plan shows it as skipped, not failed.
    if let Some(ended) = calls.last() {
        sim.state().end_call(&ended.id);
    }
    let csv_path = dir.join("desired.csv");
    std::fs::write(&csv_path, sample_csv(&calls))
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    eprintln!(
        "{} the desired state for a spring campaign to {}",
        style.bold("2. Wrote"),
        csv_path.display()
    );

    let connection = crate::settings::demo_connection(&sim.url(), client_id, secret, rate)?;
    let source_args = SourceArgs {
        default_purpose: "customer".into(),
        skip_invalid: false,
        table: "desired_attributes".into(),
        query: None,
        default_region: None,
    };
    let desired = read_desired(&csv_path, &source_args, ui).await?;

    eprintln!(
        "{} (attrsync plan {}):\n",
        style.bold("3. The plan"),
        csv_path.display()
    );
    let plan_client = connection.client(None)?;
    let live = fetch_live(&plan_client, reconcile::conversation_ids(&desired), 16).await?;
    let plan = reconcile::diff(&desired, &live);
    eprintln!("{}", shorten(&plan_text(&plan, style), PLAN_LINES_SHOWN));
    if let Some(line) = rows_to_targets(desired.len(), plan.targets.len()) {
        eprintln!("{line}");
    }
    // What the plan's reads cost, apart from the run's own requests (which `audit show` counts).
    let plan_requests = api_requests(&sim.state().request_log());

    eprintln!(
        "{} it (attrsync apply {}):",
        style.bold("4. Applying"),
        csv_path.display()
    );
    let audit_path = dir.join("audit.sqlite");
    let audit = open_audit(&audit_path).await?;
    let settings = crate::settings::demo_run(connection.clone(), &audit_path, &dir.join("results"));
    let outcome = super::snapshot::run(
        Work::Desired(desired),
        &settings,
        &audit,
        CliObserver::new(ui, false),
    )
    .await?;
    let log = sim.state().request_log();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    eprintln!("\n{}", run_summary(&outcome, &audit_path, &settings.hints));
    eprintln!(
        "{}",
        requests_line(api_requests(&log), plan_requests, throttled)
    );
    eprintln!("Per-row results: {}", dir.join("results").display());
    eprintln!("\n{}", next_steps(&csv_path, &audit_path));
    sim.shutdown().await;
    Ok(crate::exit::for_run(&outcome))
}

/// API requests in a simulator's log (token requests are not API requests).
fn api_requests(log: &[genesys_sim::LoggedRequest]) -> usize {
    log.iter().filter(|r| r.path.starts_with("/api/")).count()
}

/// The simulator's count split the way the audit counts: the plan's reads are not the run's.
fn requests_line(total: usize, for_plan: usize, throttled: usize) -> String {
    format!(
        "The simulator answered {total} API requests: {for_plan} reads for the plan shown in step 3 \
         and {} for the run (the requests `audit show` counts), {throttled} of them 429 (rate limited).",
        total.saturating_sub(for_plan)
    )
}

/// Said when the rows of the desired state and the plan's targets differ in number: a row's
/// selector may match several participants, each its own target.
fn rows_to_targets(rows: usize, targets: usize) -> Option<String> {
    (rows != targets).then(|| {
        format!(
            "The {rows} rows matched {targets} participants: a row whose selector matches several \
             participants of its call (two agents after a transfer) is one target for each, and \
             the run counts targets."
        )
    })
}

/// Customers of most calls get the campaign; a few rows pin an agent; rows for calls that
/// already carry the tag show up as unchanged.
fn sample_csv(calls: &[CallConversation]) -> String {
    let mut csv = String::from("conversation_id,purpose,campaign,tier\n");
    for (i, call) in calls.iter().enumerate() {
        let tier = ["gold", "silver", "bronze"][i % 3];
        let _ = writeln!(csv, "{},customer,spring,{tier}", call.id);
        if i % 10 == 3 {
            let _ = writeln!(csv, "{},agent,spring,", call.id);
        }
    }
    csv
}

fn shorten(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max_lines + 2 {
        return text.to_owned();
    }
    let summary = lines.last().copied().unwrap_or_default();
    format!(
        "{}\n  ... {} more lines ...\n\n{summary}",
        lines[..max_lines].join("\n"),
        lines.len() - max_lines - 1
    )
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("attrsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn next_steps(csv: &Path, audit: &Path) -> String {
    format!(
        "Next: the same against a real org\n  \
         export GENESYSCLOUD_OAUTHCLIENT_ID=... GENESYSCLOUD_OAUTHCLIENT_SECRET=... GENESYSCLOUD_REGION=eu-west-1\n  \
         attrsync plan {csv}          # review\n  \
         attrsync apply {csv}         # apply, verify, record in the audit store\n\
         The demo's audit store is {audit} (pass --audit {audit} to inspect it).",
        csv = csv.display(),
        audit = audit.display()
    )
}
