//! `attrsync sim`: the simulator on loopback, until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use genesys_sim::{ArrivalRate, DriftConfig, FaultConfig, LimitShape, SimConfig, Simulator};

use crate::cli::SimArgs;
use crate::exit::Exit;
use crate::ui::Ui;

pub fn config(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let rate = args.rate;
    if args.limit_window.is_zero() {
        anyhow::bail!("--limit-window must be longer than zero");
    }
    Ok(SimConfig {
        seed: args.seed,
        calls: args.calls,
        queues: args.queues,
        history: args.history,
        details_max_ids: args.details_max_ids,
        queue_names: args.queue_names.clone(),
        queues_forbidden: args.forbid_queues,
        rate_per_minute: rate.per_minute().round().max(1.0) as u32,
        limit_shape: args.limit_shape,
        limit_window: args.limit_window,
        burst: args.burst,
        limits_namespace: args.limits_namespace.clone(),
        limits_forbidden: args.forbid_limits,
        org_rate_per_minute: args
            .org_rate
            .map_or(0, |org| org.per_minute().round().max(1.0) as u32),
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
        arrival_rate: args.arrival_rate.unwrap_or(ArrivalRate::NONE),
        call_duration: args.call_duration,
        event_delay: args.event_delay,
        heartbeat_interval: args.heartbeat_interval,
        channel_ttl: args.channel_ttl,
        analytics_lag: args.analytics_lag,
        attribute_events: !args.no_attribute_events,
        tls: args.tls,
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
    let ca_path = match sim.ca_cert_pem() {
        Some(pem) => {
            let path = args.tls_ca.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("attrsync-sim-{}-ca.pem", sim.addr().port()))
            });
            std::fs::write(&path, pem)
                .with_context(|| format!("cannot write the test CA to {}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    // The URL and credentials are the product of this command: stdout, so scripts can read them.
    crate::output::stdout_line(format_args!("Genesys simulator listening on {url}"))?;
    if let Some(path) = &ca_path {
        crate::output::stdout_line(format_args!(
            "  test CA:       {}   (trust it with --ca-cert or SSL_CERT_FILE)",
            path.display()
        ))?;
    }
    crate::output::stdout_line(format_args!("  client id:     {id}"))?;
    crate::output::stdout_line(format_args!(
        "  client secret: {secret}   (a demo credential of the simulator, not a real secret)"
    ))?;
    let window = humantime::format_duration(args.limit_window);
    match args.limit_shape {
        LimitShape::Window => crate::output::stdout_line(format_args!(
            "  rate limit:    {} per token, in any trailing {window} window",
            args.rate
        ))?,
        LimitShape::Bucket => crate::output::stdout_line(format_args!(
            "  rate limit:    {} per token, bucket with burst {}",
            args.rate, args.burst
        ))?,
    }
    if let Some(org_rate) = args.org_rate {
        crate::output::stdout_line(format_args!(
            "  org limit:     {org_rate} for all tokens, in any trailing {window} window"
        ))?;
    }
    if let Some(rate) = args.arrival_rate.filter(|rate| !rate.is_none()) {
        let lasting = args.call_duration.map_or_else(
            || "until ended".to_owned(),
            |d| format!("about {}", humantime::format_duration(d)),
        );
        crate::output::stdout_line(format_args!(
            "  arrivals:      {rate} new calls, each lasting {lasting}"
        ))?;
    }
    for line in queue_lines(&sim.state().queues(), &sim.state().calls()) {
        crate::output::stdout_line(format_args!("{line}"))?;
    }
    let first_queue = sim.state().queues().first().map(|q| q.name.clone());
    ui.note(try_text(
        &url,
        &id,
        &secret,
        ca_path.as_deref(),
        first_queue.as_deref(),
    ));
    let _handling = crate::signals::Handling::start();
    crate::signals::received_at_least(1).await;
    sim.shutdown().await;
    Ok(Exit::Success)
}

/// The banner's queues: each with its name, id, dialled number (what customers dial to reach
/// it) and live calls, names aligned.
fn queue_lines(queues: &[genesys_sim::SimQueue], calls: &[genesys_sim::SimCall]) -> Vec<String> {
    let width = queues
        .iter()
        .map(|q| q.name.chars().count())
        .max()
        .unwrap_or(0);
    queues
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let live = calls
                .iter()
                .filter(|c| !c.ended && c.queue_id.as_deref() == Some(queue.id.as_str()))
                .count();
            let label = if i == 0 { "queues:" } else { "" };
            format!(
                "  {label:<14} {:<width$}  {}  dialed {}  ({live} live calls)",
                queue.name, queue.id, queue.number
            )
        })
        .collect()
}

/// What to paste to try attrsync against this simulator: the environment once, then plain
/// commands (no --api-url each time).
fn try_text(
    url: &str,
    id: &str,
    secret: &str,
    ca_path: Option<&std::path::Path>,
    queue: Option<&str>,
) -> String {
    let ca = ca_path
        .map(|path| {
            format!(
                " {}={}",
                genesys_core::env::SSL_CERT_FILE.name,
                path.display()
            )
        })
        .unwrap_or_default();
    let queue_commands = queue
        .map(|name| {
            let name = crate::hints::quoted(name);
            format!(
                "  attrsync live --queue {name}\n  attrsync tag --queue {name} --dry-run campaign=spring\n"
            )
        })
        .unwrap_or_default();
    format!(
        "\nTry, in another shell:\n  export {}={id} {}={secret} {}={url}{ca}\n  \
         attrsync queues\n  attrsync live\n{queue_commands}\
         Press Ctrl-C to stop.",
        genesys_core::env::CLIENT_ID.name,
        genesys_core::env::CLIENT_SECRET.name,
        genesys_core::env::API_URL.name,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use genesys_sim::LimitShape;

    use super::config;
    use crate::cli::{Cli, Command};

    fn sim_config(args: &[&str]) -> anyhow::Result<genesys_sim::SimConfig> {
        let cli = Cli::try_parse_from(["attrsync", "sim"].iter().chain(args))?;
        let Command::Sim(args) = cli.command else {
            unreachable!("parsed as sim")
        };
        config(&args)
    }

    #[test]
    fn the_banner_shows_each_queue_s_id_dialed_number_and_live_calls() {
        let queue = |name: &str, id: &str, number: &str| genesys_sim::SimQueue {
            id: id.to_owned(),
            name: name.to_owned(),
            number: number.to_owned(),
        };
        let call = |queue_id: &str, ended| genesys_sim::SimCall {
            conversation: genesys_core::models::CallConversation::default(),
            ended,
            queue_id: Some(queue_id.to_owned()),
            arrived_at_ms: None,
            attributes_visible_at_ms: None,
        };
        let lines = super::queue_lines(
            &[
                queue("Sales", "q1", "+18005550100"),
                queue("Technical", "q2", "+18005550101"),
            ],
            &[
                call("q1", false),
                call("q1", true),
                call("q2", false),
                call("q1", false),
            ],
        );
        assert_eq!(
            lines,
            [
                "  queues:        Sales      q1  dialed +18005550100  (2 live calls)",
                "                 Technical  q2  dialed +18005550101  (1 live calls)",
            ]
        );
    }

    #[test]
    fn limit_flags_default_to_genesys_s_window_and_no_org_limit() {
        let config = sim_config(&[]).unwrap();
        assert_eq!(config.limit_shape, LimitShape::Window);
        assert_eq!(config.limit_window, Duration::from_secs(60));
        assert_eq!(config.rate_per_minute, 300);
        assert_eq!(config.org_rate_per_minute, 0);
    }

    #[test]
    fn limit_flags_reach_the_simulator() {
        let config = sim_config(&[
            "--limit-shape",
            "bucket",
            "--limit-window",
            "10s",
            "--org-rate",
            "20/s",
            "--burst",
            "7",
        ])
        .unwrap();
        assert_eq!(config.limit_shape, LimitShape::Bucket);
        assert_eq!(config.limit_window, Duration::from_secs(10));
        assert_eq!(config.org_rate_per_minute, 1200);
        assert_eq!(config.burst, 7);
        assert!(sim_config(&["--limit-shape", "leaky"]).is_err());
        assert!(sim_config(&["--org-rate", "0/min"]).is_err());
        assert!(sim_config(&["--limit-window", "0s"]).is_err());
    }

    #[test]
    fn the_notification_and_arrival_flags_reach_the_simulator() {
        let config = sim_config(&[]).unwrap();
        assert!(config.arrival_rate.is_none());
        assert_eq!(config.call_duration, None);
        assert_eq!(config.event_delay, Duration::ZERO);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(config.channel_ttl, Duration::from_secs(86_400));
        assert_eq!(config.analytics_lag, Duration::ZERO);
        assert!(config.attribute_events);
        let config = sim_config(&[
            "--arrival-rate",
            "120/min",
            "--call-duration",
            "3m",
            "--event-delay",
            "50ms",
            "--heartbeat-interval",
            "5s",
            "--channel-ttl",
            "1h",
            "--analytics-lag",
            "2s",
            "--no-attribute-events",
        ])
        .unwrap();
        assert_eq!(config.arrival_rate.as_per_second(), 2.0);
        assert_eq!(config.call_duration, Some(Duration::from_secs(180)));
        assert_eq!(config.event_delay, Duration::from_millis(50));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.channel_ttl, Duration::from_secs(3600));
        assert_eq!(config.analytics_lag, Duration::from_secs(2));
        assert!(!config.attribute_events);
        assert!(sim_config(&["--arrival-rate", "2/day"]).is_err());
    }

    #[test]
    fn the_org_limits_flags_reach_the_simulator() {
        let config = sim_config(&[]).unwrap();
        assert_eq!(
            config.limits_namespace,
            genesys_sim::DEFAULT_LIMITS_NAMESPACE
        );
        assert!(!config.limits_forbidden);
        let config = sim_config(&["--limits-namespace", "custom", "--forbid-limits"]).unwrap();
        assert_eq!(config.limits_namespace, "custom");
        assert!(config.limits_forbidden);
    }
}
