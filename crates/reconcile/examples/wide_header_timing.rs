//! Times reading a wide CSV whose header has N columns (default 100,000) and one data row.
//! `cargo run --release -p reconcile --example wide_header_timing [COLUMNS]`

use std::time::Instant;

use reconcile::{ReadOptions, read_csv_from};

fn main() {
    let columns: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("a column count"));
    let mut input = String::from("conversation_id");
    for i in 0..columns {
        input.push_str(&format!(",k{i}"));
    }
    input.push_str("\n3f1c2a4e-8b1d-4c6a-9e2f-0a1b2c3d4e5f");
    for _ in 0..columns {
        input.push_str(",v");
    }
    input.push('\n');
    let options = ReadOptions {
        limits: reconcile::Limits {
            max_keys_per_target: usize::MAX,
            max_request_bytes: usize::MAX,
            ..reconcile::Limits::default()
        },
        ..ReadOptions::default()
    };
    let start = Instant::now();
    let result = read_csv_from(input.as_bytes(), "wide.csv", &options);
    let elapsed = start.elapsed();
    match result {
        Ok(state) => println!(
            "{columns} columns: {} keys read in {:.3} s",
            state.key_count(),
            elapsed.as_secs_f64()
        ),
        Err(err) => println!(
            "{columns} columns: error after {:.3} s: {err}",
            elapsed.as_secs_f64()
        ),
    }
}
