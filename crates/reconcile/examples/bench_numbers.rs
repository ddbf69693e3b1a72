//! Benchmark of phone-number normalisation (`reconcile::number::parse`): a contact list of
//! 1,000,000 numbers parsed and indexed (a `HashMap<Number, row>`), in several writings: E.164 as
//! Genesys and most CRMs write it, international with punctuation, national with a default
//! region (all on fast paths), and one only the libphonenumber port reads. Reports numbers/s per
//! writing and peak memory (VmHWM). Run with
//! `cargo run --release -p reconcile --example bench_numbers [COUNT]`.

use std::collections::HashMap;
use std::time::Instant;

use reconcile::number::{Number, Region, parse};

const DEFAULT_COUNT: u64 = 1_000_000;

/// Peak resident set size of this process, in MiB (Linux only).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Seven deterministic, random-looking digits for row `i`.
fn subscriber(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 10_000_000
}

fn run(label: &str, texts: &[String], region: Option<Region>) {
    let started = Instant::now();
    let mut index: HashMap<Number, u32> = HashMap::with_capacity(texts.len());
    for (row, text) in texts.iter().enumerate() {
        let number = parse(text, region).unwrap_or_else(|e| panic!("row {row}: {e}"));
        index.insert(number, row as u32);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{label:<44} {:>9} numbers in {elapsed:>6.3} s  {:>11.0} numbers/s  ({} distinct)",
        texts.len(),
        texts.len() as f64 / elapsed,
        index.len()
    );
}

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("COUNT must be a whole number"))
        .unwrap_or(DEFAULT_COUNT);
    let us: Region = "US".parse().expect("US is a region");
    let gb: Region = "GB".parse().expect("GB is a region");

    let e164: Vec<String> = (0..count)
        .map(|i| format!("+1{}{:07}", 201 + i % 700, subscriber(i)))
        .collect();
    run("E.164 (+12015550123)", &e164, None);
    drop(e164);

    let uk_e164: Vec<String> = (0..count)
        .map(|i| format!("+447{:09}", subscriber(i) * 100 + i % 100))
        .collect();
    run("E.164, GB (+447700900123)", &uk_e164, None);
    drop(uk_e164);

    let punctuated: Vec<String> = (0..count)
        .map(|i| {
            let s = subscriber(i);
            format!("+1 ({}) {:03}-{:04}", 201 + i % 700, s / 10_000, s % 10_000)
        })
        .collect();
    run(
        "international, punctuated (+1 (201) 555-0123)",
        &punctuated,
        None,
    );
    drop(punctuated);

    let national: Vec<String> = (0..count)
        .map(|i| {
            let s = subscriber(i);
            format!("({}) {:03}-{:04}", 201 + i % 700, s / 10_000, s % 10_000)
        })
        .collect();
    run("national, US ((201) 555-0123)", &national, Some(us));
    drop(national);

    let uk_national: Vec<String> = (0..count)
        .map(|i| format!("020 {:04} {:04}", subscriber(i) / 1000, i % 10_000))
        .collect();
    run("national, GB (020 7946 0958)", &uk_national, Some(gb));
    drop(uk_national);

    // Not on a fast path: the library reads the bracketed trunk prefix.
    let uk_trunk: Vec<String> = (0..count)
        .map(|i| format!("+44 (0)20 {:04} {:04}", subscriber(i) / 1000, i % 10_000))
        .collect();
    run("library: +44 (0)20 7946 0958", &uk_trunk, None);
    drop(uk_trunk);

    if let Some(peak) = peak_memory_mib() {
        println!("peak memory: {peak:.0} MiB");
    }
}
