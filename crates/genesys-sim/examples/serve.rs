//! Serves the demo org until Ctrl-C: `cargo run -p genesys-sim --example serve -- [PORT] [SEED]`.
//! Prints the URL on the first line (used by `tests/official_sdk.py`).

use std::net::SocketAddr;

use genesys_sim::{SimConfig, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let config = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("{}", sim.url());
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
