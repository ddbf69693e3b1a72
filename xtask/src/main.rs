//! `cargo xtask`: project automation (rust-analyzer style), std only so that it builds in seconds.
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, and every test (what CI runs).
//! - `cargo xtask bench plan`: parse+validate and diff throughput on 1,000,000 desired rows, then
//!   a contact list of 1,000,000 numbers (read and indexed: seconds, peak memory), then one
//!   `reconcile --once` of 1,000,000 rows of which 2,000 name live calls (its peak memory).
//! - `cargo xtask bench apply`: apply against the simulator with latency and a rate limit,
//!   side by side with the tutorial's sequential way.
//! - `cargo xtask bench follow [--minutes N]`: `tag --follow` under a steady stream of calls with
//!   forced socket closes and a drop: arrival-to-verified latency, requests per call, calls
//!   missed, memory.
//! - `cargo xtask bench history [--rows N] [--live L] [--rate R] [--no-old]`: two
//!   `reconcile --once` iterations over a table of N rows of which L name live calls: requests by
//!   kind, wall, peak memory and target rows, side by side with the old way (every row read).
//! - `cargo xtask man`: the man pages (`attrsync.1`, `attrsync-COMMAND.1`) into `target/man`.
//! - `cargo xtask dist [--debug]`: the install archive `target/dist/attrsync-VERSION-TRIPLE.tar.gz`
//!   (binary, man pages, completions, systemd units, env example) and its `.sha256`, then
//!   unpacks it and runs the unpacked binary (see `dist.rs`).
//! - `cargo xtask soak [--minutes N] [--seed S]`: the model-based end-to-end tests of apply and follow
//!   (`tests/e2e/model.rs`) in batches from a random (or given) base seed until the time is up;
//!   prints each failing case's seed and the command that replays it.

mod dist;
#[cfg(test)]
mod imports;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["bench", "plan", rest @ ..] => bench_plan(rest),
        ["bench", "apply", rest @ ..] => bench_apply(rest),
        ["bench", "follow", rest @ ..] => bench_example("bench_follow", rest),
        ["bench", "history", rest @ ..] => bench_example("bench_history", rest),
        ["bench"] => bench_plan(&[]).and_then(|()| bench_apply(&[])),
        ["man"] => man(),
        ["dist", rest @ ..] => dist::dist(rest),
        ["soak", rest @ ..] => soak(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | bench [plan|apply|follow|history] | man | dist [--debug] | soak [--minutes N] [--seed S]"
            );
            return ExitCode::from(64);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env_or("CARGO", "cargo"))
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // nextest does not run doctests; they go first, so that the suite's summary is the last
    // test runner's word.
    cargo(&["test", "--workspace", "--doc"])?;
    cargo(&["nextest", "run", "--workspace", "--no-fail-fast"])?;
    // The install path: the archive the README's install section uses, built in the debug
    // profile (the tests built it already), unpacked and run.
    let archive = dist::build(dist::Profile::Debug)?;
    dist::verify(&archive)
}

/// The workspace root (xtask's parent directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// `CARGO_TARGET_DIR`, else the workspace's `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn bench_plan(extra: &[&str]) -> Result<(), String> {
    // The reconcile crate's benchmark, in release, with its arguments.
    let bench = |args: &[&str]| {
        let mut run = vec![
            "run",
            "--release",
            "--quiet",
            "-p",
            "reconcile",
            "--example",
            "bench_plan",
            "--",
        ];
        run.extend_from_slice(args);
        cargo(&run)
    };
    bench(extra)?;
    // A campaign's contact list of a million numbers, as CSV and as SQLite, each in a process of
    // its own (peak memory).
    bench(&["--contacts"])?;
    bench(&["--contacts-sqlite"])?;
    // What a run keeps of such a table: 2,000 live calls among 1,000,000 rows, the rest ended.
    // The server's budget is lifted so that the figure is the tool's memory, not a wait.
    bench_example(
        "bench_history",
        &[
            "--rows",
            "1000000",
            "--live",
            "2000",
            "--rate",
            "1000000",
            "--liveness-batch",
            "1000",
            "--no-old",
        ],
    )
}

fn bench_apply(extra: &[&str]) -> Result<(), String> {
    bench_example("bench_apply", extra)
}

/// Runs a benchmark example of the attrsync crate in release, after building the binary it runs.
fn bench_example(example: &str, extra: &[&str]) -> Result<(), String> {
    // The benchmark runs the real binary, so build it in the same profile first.
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "attrsync",
        "--bin",
        "attrsync",
    ])?;
    let mut args = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "attrsync",
        "--example",
        example,
        "--",
    ];
    args.extend_from_slice(extra);
    cargo(&args)
}

/// The man pages come from the CLI definition itself, through the binary's hidden
/// `generate-man` command (xtask stays std-only and cannot link the binary crate).
fn man() -> Result<(), String> {
    let dir = target_dir().join("man");
    let dir_arg = dir
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", dir.display()))?;
    cargo(&[
        "run",
        "--quiet",
        "-p",
        "attrsync",
        "--bin",
        "attrsync",
        "--",
        "generate-man",
        dir_arg,
    ])
}

/// Cases per batch: one `cargo nextest` invocation of the model test.
const SOAK_BATCH: u64 = 10;
/// Follow model cases per soak batch (each runs a follow for a few seconds).
const SOAK_FOLLOW_BATCH: u64 = 3;

/// Runs the model test (`model::model_cases`) in batches of generated cases until the time is
/// up. The case code lives in the test; this only chooses base seeds and reads the verdicts.
fn soak(args: &[&str]) -> Result<(), String> {
    let mut minutes: u64 = 10;
    let mut seed: Option<u64> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            rest.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match *arg {
            "--minutes" => minutes = value("--minutes")?,
            "--seed" => seed = Some(value("--seed")?),
            other => return Err(format!("soak: unknown argument {other:?}")),
        }
    }
    let mut base = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    // Build once, so that the clock measures cases rather than compiling.
    cargo(&[
        "nextest", "run", "-p", "attrsync", "--test", "e2e", "--no-run",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let started = Instant::now();
    let mut cases = 0;
    eprintln!(
        "soak: {minutes} min, base seed {base}, {SOAK_BATCH} apply and {SOAK_FOLLOW_BATCH} follow cases per batch"
    );
    while Instant::now() < deadline {
        // Both generated models, apply's and follow's, in each batch.
        let output = Command::new(env_or("CARGO", "cargo"))
            .args([
                "nextest",
                "run",
                "-p",
                "attrsync",
                "--test",
                "e2e",
                "--no-capture",
                "--no-fail-fast",
                "-E",
                "test(=model::model_cases) | test(=follow_model::follow_model_cases)",
            ])
            .env("ATTRSYNC_MODEL_BASE_SEED", base.to_string())
            .env("ATTRSYNC_MODEL_CASES", SOAK_BATCH.to_string())
            .env("ATTRSYNC_FOLLOW_MODEL_BASE_SEED", base.to_string())
            .env("ATTRSYNC_FOLLOW_MODEL_CASES", SOAK_FOLLOW_BATCH.to_string())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        cases += SOAK_BATCH;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let failed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("MODEL FAIL seed="))
            .collect();
        let follow_failed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("FOLLOW MODEL FAIL seed="))
            .collect();
        if !output.status.success() {
            eprintln!("{text}");
            for seed in &follow_failed {
                eprintln!(
                    "  follow model: ATTRSYNC_FOLLOW_MODEL_SEED={seed} cargo nextest run -p attrsync --test e2e -E 'test(follow_model_cases)'"
                );
            }
            if failed.is_empty() && !follow_failed.is_empty() {
                return Err(format!(
                    "{} follow model case(s) failed",
                    follow_failed.len()
                ));
            }
            if failed.is_empty() {
                return Err(format!(
                    "the model test failed (base seed {base}); see above"
                ));
            }
            eprintln!(
                "soak: {} failing case(s) after {cases} cases:",
                failed.len()
            );
            for seed in &failed {
                eprintln!(
                    "  ATTRSYNC_MODEL_SEED={seed} cargo nextest run -p attrsync --test e2e -E 'test(model_replay)'"
                );
            }
            return Err(format!("{} model case(s) failed", failed.len()));
        }
        eprintln!(
            "soak: {cases} cases passed ({} s), batch base seed {base}",
            started.elapsed().as_secs()
        );
        base = base.wrapping_add(SOAK_BATCH);
    }
    eprintln!("soak: done, {cases} cases passed");
    Ok(())
}
