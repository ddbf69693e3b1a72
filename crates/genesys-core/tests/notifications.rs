//! The queue watch against the in-process simulator's Notification API, over loopback HTTP and
//! WebSocket: every way a socket ends leads to a new connection, reported with whether events
//! may have been missed.

use std::time::Duration;

use genesys_core::notifications::{Notice, Reconnect, TopicWatch, WatchOptions, watch_queues};
use genesys_core::{ClientOptions, ExplicitSettings, GenesysClient, RetryPolicy, Settings};
use genesys_sim::{LimitShape, SimConfig, SimHandle, Simulator};

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(
        SimConfig {
            calls: 0,
            queues: 2,
            rate_per_minute: 60_000,
            limit_shape: LimitShape::Bucket,
            burst: 1_000,
            ..config
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn client(sim: &SimHandle) -> GenesysClient {
    let (client_id, secret) = sim.demo_credentials();
    let settings = Settings::resolve(
        &ExplicitSettings {
            client_id: Some(client_id),
            client_secret: Some(secret.into()),
            api_url: Some(sim.url().parse().unwrap()),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap();
    let options = ClientOptions {
        rate: "60000/min,burst=1000".parse().unwrap(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    };
    GenesysClient::new(&settings, options).unwrap()
}

fn fast_options() -> WatchOptions {
    WatchOptions {
        max_reconnect_delay: Duration::from_millis(50),
        ..WatchOptions::default()
    }
}

/// The next notice, skipping troubles (bounded: the test fails after 30 s).
async fn next(watch: &mut TopicWatch) -> Notice {
    loop {
        let notice = tokio::time::timeout(Duration::from_secs(30), watch.notices.recv())
            .await
            .expect("a notice within 30 s")
            .expect("the watch is running");
        if !matches!(notice, Notice::Trouble { .. }) {
            return notice;
        }
    }
}

async fn connected(watch: &mut TopicWatch) -> (bool, Reconnect) {
    match next(watch).await {
        Notice::Connected { gap, why, .. } => (gap, why),
        other => panic!("expected a connection, got {other:?}"),
    }
}

fn queues(sim: &SimHandle) -> Vec<String> {
    sim.state().queues().into_iter().map(|q| q.id).collect()
}

#[tokio::test]
async fn a_call_entering_a_watched_queue_arrives_as_its_whole_conversation() {
    let sim = start(SimConfig::default()).await;
    let queues = queues(&sim);
    let mut watch = watch_queues(&client(&sim), &queues[..1], fast_options()).unwrap();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::First));
    // A call of the other queue is not announced; one of the watched queue is.
    sim.state().arrive_call(Some(&queues[1])).unwrap();
    let id = sim.state().arrive_call(Some(&queues[0])).unwrap();
    match next(&mut watch).await {
        Notice::Call { queue_id, call, .. } => {
            assert_eq!(queue_id, queues[0]);
            assert_eq!(call.id, id);
            assert!(
                call.participants
                    .iter()
                    .any(|p| p.purpose.as_deref() == Some("customer")),
                "{call:?}"
            );
        }
        other => panic!("expected the call, got {other:?}"),
    }
}

#[tokio::test]
async fn every_way_a_socket_ends_leads_to_a_new_connection_that_reports_the_gap() {
    let sim = start(SimConfig::default()).await;
    let queues = queues(&sim);
    let mut watch = watch_queues(&client(&sim), &queues, fast_options()).unwrap();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::First));

    sim.state().announce_socket_closing();
    assert_eq!(
        connected(&mut watch).await,
        (true, Reconnect::SocketClosing)
    );

    sim.state().drop_sockets();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::Dropped));

    let channels_before = sim.state().notification_status().channels.len();
    sim.state().expire_channels();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::ChannelGone));
    let status = sim.state().notification_status();
    assert_eq!(status.sockets, 1);
    assert!(channels_before >= 1);
    assert!(
        status
            .channels
            .iter()
            .all(|c| c.topics.len() == queues.len()),
        "the new channel has every topic again: {status:?}"
    );
}

#[tokio::test]
async fn a_silent_socket_is_replaced_and_an_old_channel_is_renewed_without_a_gap() {
    // Heartbeats keep a socket alive; when it goes silent with its connection open, it counts
    // as dead after the idle timeout.
    let sim = start(SimConfig {
        heartbeat_interval: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let queues = queues(&sim);
    let options = WatchOptions {
        idle_timeout: Duration::from_millis(1_000),
        ..fast_options()
    };
    let mut watch = watch_queues(&client(&sim), &queues, options).unwrap();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::First));
    assert_eq!(sim.state().stall_sockets(), 1);
    assert_eq!(connected(&mut watch).await, (true, Reconnect::Dropped));
    drop(watch);

    let options = WatchOptions {
        channel_max_age: Duration::from_millis(300),
        ..fast_options()
    };
    let mut watch = watch_queues(&client(&sim), &queues, options).unwrap();
    assert_eq!(connected(&mut watch).await, (true, Reconnect::First));
    assert_eq!(connected(&mut watch).await, (false, Reconnect::Renewed));
}
