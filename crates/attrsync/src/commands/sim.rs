//! `attrsync sim`: the simulator on loopback, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use genesys_sim::{DriftConfig, FaultConfig, SimConfig, Simulator};

use crate::Ui;
use crate::cli::SimArgs;
use crate::exit::Exit;

pub fn config(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let rate = args.rate;
    Ok(SimConfig {
        seed: args.seed,
        calls: args.calls,
        queues: args.queues,
        rate_per_minute: rate.per_minute().round().max(1.0) as u32,
        burst: args.burst,
        latency: args.latency,
        jitter: args.jitter,
        token_ttl: args.token_ttl,
        faults: FaultConfig {
            status_rates: args.fail.iter().copied().collect(),
            drop_rate: args.drop_rate,
            conflict_rate: args.conflict_rate,
            end_call_rate: args.end_call_rate,
            visibility_lag: args.visibility_lag,
            drift: args
                .drift
                .clone()
                .map(|(key, value, rate)| DriftConfig { key, value, rate }),
        },
        ..SimConfig::default()
    })
}

pub async fn run(args: SimArgs, ui: Ui) -> anyhow::Result<Exit> {
    let config = config(&args)?;
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sim = Simulator::start(config, bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let (id, secret) = sim.demo_credentials();
    let url = sim.url();
    // The URL and credentials are the product of this command: stdout, so scripts can read them.
    println!("Genesys simulator listening on {url}");
    println!("  client id:     {id}");
    println!("  client secret: {secret}   (a demo credential of the simulator, not a real secret)");
    println!(
        "  rate limit:    {} per token, burst {}",
        args.rate, args.burst
    );
    ui.note(format_args!(
        "\nTry:\n  export GENESYSCLOUD_OAUTHCLIENT_ID={id} GENESYSCLOUD_OAUTHCLIENT_SECRET={secret}\n  \
         attrsync get --api-url {url} \"$(curl -s {url}/__sim/calls | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"conversation\"][\"id\"])')\"\n\
         Press Ctrl-C to stop."
    ));
    let _handling = crate::signals::Handling::start();
    crate::signals::received_at_least(1).await;
    sim.shutdown().await;
    Ok(Exit::Success)
}
