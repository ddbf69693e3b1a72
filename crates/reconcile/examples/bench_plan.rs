//! Benchmark of the reconcile engine: 1,000,000 desired rows (wide CSV) against the matching live
//! state, half already in sync and half needing a change. Reports rows/s for parse+validate and
//! for the diff, and peak memory (VmHWM). Run with
//! `cargo run --release -p reconcile --example bench_plan [ROWS]`.
//!
//! With `--contacts [ROWS]`: a contact list of 1,000,000 customers' numbers with their tier (a
//! tenth written nationally, read with `--default-region US`), read, validated and indexed;
//! reports the seconds and the peak memory of this process, which does nothing else. With
//! `--contacts-sqlite [ROWS]`: the same list as an SQLite table in the long form.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use genesys_models::{CallConversation, CallMediaParticipant, ParticipantState};
use reconcile::{LiveConversation, LiveState, ReadOptions, diff, read_csv};
use uuid::Uuid;

const DEFAULT_ROWS: u64 = 1_000_000;

/// A deterministic, random-looking conversation id for row `i`.
fn conversation_id(i: u64) -> String {
    let mixed = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1 << 78;
    Uuid::from_u128(mixed).hyphenated().to_string()
}

/// Peak resident set size of this process, in MiB (Linux only).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn participant(id: String, purpose: &str, attributes: &[(&str, &str)]) -> CallMediaParticipant {
    CallMediaParticipant {
        id,
        purpose: Some(purpose.to_owned()),
        state: Some(ParticipantState::Connected),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

/// Reads a contact list of `rows` numbers, as a campaign's target list in a CSV export.
fn contacts(rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("contacts.csv");
    let mut out = BufWriter::new(File::create(&path)?);
    writeln!(out, "customer_number,tier")?;
    for i in 0..rows {
        let subscriber = 1_000_000 + i % 9_000_000;
        let area = 200 + (i / 9_000_000) % 700;
        let tier = ["gold", "silver", "bronze"][(i % 3) as usize];
        if i % 10 == 0 {
            writeln!(
                out,
                "({area}) {}-{},{tier}",
                subscriber / 10_000,
                subscriber % 10_000
            )?;
        } else {
            writeln!(out, "+1{area}{subscriber},{tier}")?;
        }
    }
    out.into_inner()?.sync_all()?;
    let file_mib = std::fs::metadata(&path)?.len() as f64 / (1024.0 * 1024.0);
    let options = ReadOptions {
        default_region: Some("US".parse()?),
        ..ReadOptions::default()
    };
    let started = Instant::now();
    let desired = read_csv(&path, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let rules = desired.number_rules();
    println!(
        "contact list: {rows} numbers ({file_mib:.1} MiB CSV, a tenth written nationally): \
         read, validated and indexed in {seconds:.3} s ({:.0} rows/s); {} rules; peak memory \
         (VmHWM) {:.0} MiB",
        rows as f64 / seconds,
        rules.len(),
        peak_memory_mib().unwrap_or(f64::NAN)
    );
    if rules.len() as u64 != rows {
        return Err("every number is one rule".into());
    }
    Ok(())
}

/// The contact list as a CRM keeps it: an SQLite table in the long form.
fn contacts_sqlite(rows: u64) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("contacts.sqlite");
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "CREATE TABLE desired_attributes (customer_number TEXT, key TEXT, value TEXT)",
    )?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO desired_attributes VALUES (?1, 'tier', ?2)")?;
        for i in 0..rows {
            let tier = ["gold", "silver", "bronze"][(i % 3) as usize];
            let number = format!(
                "+1{}{}",
                200 + (i / 9_000_000) % 700,
                1_000_000 + i % 9_000_000
            );
            insert.execute((number, tier))?;
        }
    }
    tx.commit()?;
    drop(conn);
    let file_mib = std::fs::metadata(&path)?.len() as f64 / (1024.0 * 1024.0);
    let started = Instant::now();
    let desired = runtime.block_on(reconcile::read_sqlite(
        &path,
        &reconcile::SqliteSelect::default(),
        &ReadOptions::default(),
    ))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "contact list in SQLite: {rows} numbers ({file_mib:.1} MiB database): read, validated and \
         indexed in {seconds:.3} s ({:.0} rows/s); {} rules; peak memory (VmHWM) {:.0} MiB",
        rows as f64 / seconds,
        desired.number_rules().len(),
        peak_memory_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--contacts-sqlite") {
        args.next();
        return contacts_sqlite(match args.next() {
            Some(n) => n.parse()?,
            None => DEFAULT_ROWS,
        });
    }
    if args.peek().map(String::as_str) == Some("--contacts") {
        args.next();
        return contacts(match args.next() {
            Some(n) => n.parse()?,
            None => DEFAULT_ROWS,
        });
    }
    let rows: u64 = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_ROWS,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("desired.csv");
    let mut out = BufWriter::new(File::create(&path)?);
    writeln!(out, "conversation_id,purpose,campaign,tier")?;
    for i in 0..rows {
        writeln!(out, "{},,spring,gold", conversation_id(i))?;
    }
    out.into_inner()?.sync_all()?;
    let file_mib = std::fs::metadata(&path)?.len() as f64 / (1024.0 * 1024.0);

    let started = Instant::now();
    let desired = read_csv(&path, &ReadOptions::default())?;
    let parse_seconds = started.elapsed().as_secs_f64();
    let peak_after_parse = peak_memory_mib();

    // Live state: every call has a connected customer and agent; even rows are in sync, odd rows
    // have a stale tier. An unmanaged key is present everywhere and must be left alone.
    let mut live = LiveState::with_capacity(desired.len());
    for (i, entry) in desired.entries().enumerate() {
        let tier = if i % 2 == 0 { "gold" } else { "silver" };
        let cid = entry.target.conversation_id.clone();
        let conversation = CallConversation {
            id: cid.clone(),
            participants: vec![
                participant(
                    format!("{cid}-c"),
                    "customer",
                    &[("campaign", "spring"), ("tier", tier), ("crm_id", "42")],
                ),
                participant(format!("{cid}-a"), "agent", &[]),
            ],
            ..Default::default()
        };
        live.insert(cid, LiveConversation::Found(conversation));
    }

    let started = Instant::now();
    let plan = diff(&desired, &live);
    let diff_seconds = started.elapsed().as_secs_f64();
    let summary = plan.summary();

    println!("reconcile bench: {rows} desired rows ({file_mib:.1} MiB wide CSV)");
    println!(
        "{:<16} {:>10} {:>10} {:>14}",
        "stage", "rows", "seconds", "rows/s"
    );
    for (stage, seconds) in [("parse+validate", parse_seconds), ("diff", diff_seconds)] {
        println!(
            "{stage:<16} {rows:>10} {seconds:>10.3} {:>14.0}",
            rows as f64 / seconds
        );
    }
    let mib = |m: Option<f64>| m.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"));
    println!(
        "peak memory after parse+validate (VmHWM): {}",
        mib(peak_after_parse)
    );
    println!(
        "peak memory with live state and plan (VmHWM): {}",
        mib(peak_memory_mib())
    );
    println!(
        "plan: {} to update ({} keys set), {} unchanged, {} skipped",
        summary.to_update, summary.keys_set, summary.unchanged, summary.skipped
    );
    if summary.to_update as u64 != rows / 2 || summary.unchanged as u64 != rows - rows / 2 {
        return Err("the plan does not match the generated live state".into());
    }
    Ok(())
}
