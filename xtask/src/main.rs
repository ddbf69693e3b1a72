//! `cargo xtask`: project automation (rust-analyzer style), std only so that it builds in seconds.
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, and every test (what CI runs).
//! - `cargo xtask bench plan`: parse+validate and diff throughput on 1,000,000 desired rows.
//! - `cargo xtask bench apply`: apply against the simulator with latency and a rate limit,
//!   side by side with the tutorial's sequential way.
//! - `cargo xtask man`: the man pages (`attrsync.1`, `attrsync-COMMAND.1`) into `target/man`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci(),
        ["bench", "plan", rest @ ..] => bench_plan(rest),
        ["bench", "apply", rest @ ..] => bench_apply(rest),
        ["bench"] => bench_plan(&[]).and_then(|()| bench_apply(&[])),
        ["man"] => man(),
        _ => {
            eprintln!("usage: cargo xtask ci | bench [plan|apply] | man");
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
    cargo(&["nextest", "run", "--workspace", "--no-fail-fast"])?;
    // nextest does not run doctests.
    cargo(&["test", "--workspace", "--doc"])
}

fn bench_plan(extra: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "run",
        "--release",
        "--quiet",
        "-p",
        "reconcile",
        "--example",
        "bench_plan",
        "--",
    ];
    args.extend_from_slice(extra);
    cargo(&args)
}

fn bench_apply(extra: &[&str]) -> Result<(), String> {
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
        "bench_apply",
        "--",
    ];
    args.extend_from_slice(extra);
    cargo(&args)
}

/// The man pages come from the CLI definition itself, through the binary's hidden
/// `generate-man` command (xtask stays std-only and cannot link the binary crate).
fn man() -> Result<(), String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("."))
                .join("target")
        },
        PathBuf::from,
    );
    let dir = target.join("man");
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
