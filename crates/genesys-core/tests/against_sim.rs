//! The client against the in-process simulator, over loopback HTTP. Assertions about timing are
//! made on the simulator's request log, never on the test's own wall clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use genesys_core::models::Attributes;
use genesys_core::{
    ApiError, ClientOptions, ErrorClass, ExplicitSettings, GenesysClient, LiveCallsQuery, Pacing,
    RequestEvent, RequestObserver, RetryPolicy, Settings,
};
use genesys_sim::{FaultConfig, LimitShape, LoggedRequest, SimConfig, SimHandle, Simulator};

const TOKEN_PATH: &str = "/oauth/token";

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A fast simulator: rate limits far above what the tests send unless a test is about them.
fn fast_sim() -> SimConfig {
    SimConfig {
        calls: 20,
        rate_per_minute: 60_000,
        limit_shape: LimitShape::Bucket,
        burst: 1_000,
        ..SimConfig::default()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        rate: "60000/min,burst=1000".parse().unwrap(),
        retry: fast_retry(),
        ..ClientOptions::default()
    }
}

fn settings_for(sim: &SimHandle, secret: Option<&str>) -> Settings {
    let (client_id, demo_secret) = sim.demo_credentials();
    Settings::resolve(
        &ExplicitSettings {
            client_id: Some(client_id),
            client_secret: Some(secret.map_or(demo_secret, str::to_owned).into()),
            api_url: Some(sim.url().parse().unwrap()),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap()
}

fn client_for(sim: &SimHandle, options: ClientOptions) -> GenesysClient {
    GenesysClient::new(&settings_for(sim, None), options).unwrap()
}

fn api_requests(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter()
        .filter(|r| r.path.starts_with("/api/v2/"))
        .collect()
}

fn token_requests(log: &[LoggedRequest]) -> usize {
    log.iter().filter(|r| r.path == TOKEN_PATH).count()
}

fn count_status(log: &[LoggedRequest], status: u16) -> usize {
    log.iter().filter(|r| r.status == status).count()
}

fn live_call_ids(sim: &SimHandle) -> Vec<String> {
    sim.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended)
        .map(|c| c.conversation.id)
        .collect()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<RequestEvent>>);

impl RequestObserver for Recorder {
    fn on_request(&self, event: &RequestEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn issues_a_token_then_reads_a_call_and_a_conversation() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let id = live_call_ids(&sim).remove(0);

    let call = client.get_call(&id).await.unwrap();
    assert_eq!(call.value.id, id);
    assert!(!call.value.participants.is_empty());
    let conversation = client.get_conversation(&id).await.unwrap();
    assert_eq!(conversation.value.id, id);
    assert_eq!(conversation.value.end_time, None);

    let log = sim.state().request_log();
    assert_eq!(log[0].path, TOKEN_PATH);
    assert_eq!(log[0].status, 200);
    assert_eq!(token_requests(&log), 1);
    let api = api_requests(&log);
    assert_eq!(api.len(), 2);
    assert!(
        api.iter()
            .all(|r| r.status == 200 && r.token_id.as_deref() == Some("t1"))
    );
    assert_eq!(
        call.meta.correlation_id.as_deref(),
        Some(api[0].correlation_id.as_str())
    );
    assert_eq!(client.stats().tokens_minted, 1);
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let sim = start(SimConfig {
        token_ttl: Duration::from_secs(2),
        ..fast_sim()
    })
    .await;
    // Ten requests a second for 2.5 s: the pace (not a sleep) spans more than one token lifetime.
    let client = client_for(
        &sim,
        ClientOptions {
            rate: "10/s".parse().unwrap(),
            pacing: Pacing::Even,
            ..fast_options()
        },
    );
    let id = live_call_ids(&sim).remove(0);
    for _ in 0..26 {
        client.get_call(&id).await.unwrap();
    }
    let log = sim.state().request_log();
    assert!(token_requests(&log) >= 2, "a second token was minted");
    assert_eq!(count_status(&log, 401), 0, "no request was refused");
    let tokens: BTreeSet<_> = api_requests(&log)
        .iter()
        .filter_map(|r| r.token_id.clone())
        .collect();
    assert!(tokens.len() >= 2, "{tokens:?}");
    assert!(client.stats().token_refreshes >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refreshed_exactly_once_under_concurrency() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let ids = live_call_ids(&sim);
    client.get_call(&ids[0]).await.unwrap();

    sim.state().expire_tokens();
    sim.state().reset_log();
    let results = join_all((0..32).map(|i| {
        let client = client.clone();
        let id = ids[i % ids.len()].clone();
        async move { client.get_call(&id).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "every request recovered");

    let log = sim.state().request_log();
    assert_eq!(token_requests(&log), 1, "single-flight refresh");
    assert!(count_status(&log, 401) >= 1, "the expiry was noticed");
    assert_eq!(client.stats().token_refreshes, 1);
}

#[tokio::test]
async fn a_token_pool_spreads_requests_over_independently_minted_tokens() {
    let sim = start(fast_sim()).await;
    let client = client_for(
        &sim,
        ClientOptions {
            tokens: 3,
            ..fast_options()
        },
    );
    assert_eq!(client.token_slots(), 3);
    let id = live_call_ids(&sim).remove(0);
    for _ in 0..9 {
        client.get_call(&id).await.unwrap();
    }
    let log = sim.state().request_log();
    assert_eq!(token_requests(&log), 3);
    let mut per_token: BTreeMap<String, usize> = BTreeMap::new();
    for request in api_requests(&log) {
        *per_token
            .entry(request.token_id.clone().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_token.len(), 3, "{per_token:?}");
    assert!(per_token.values().all(|n| *n == 3), "{per_token:?}");
}

#[tokio::test]
async fn patches_merge_per_key_and_an_empty_string_clears() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let id = live_call_ids(&sim).remove(0);
    let call = client.get_call(&id).await.unwrap().value;
    let participant = &call.participants[0];
    let before = participant.attributes.clone();

    let first = Attributes::from([
        ("campaign".to_owned(), "spring".to_owned()),
        ("tier".to_owned(), "gold".to_owned()),
    ]);
    let accepted = client
        .patch_call_participant_attributes(&id, &participant.id, &first)
        .await
        .unwrap();
    assert_eq!(accepted.meta.status, 202);
    let echoed = accepted
        .value
        .expect("the call variant returns the attributes");
    assert_eq!(echoed.attributes["campaign"], "spring");

    let clear = Attributes::from([("tier".to_owned(), String::new())]);
    let generic = client
        .patch_participant_attributes(&id, &participant.id, &clear)
        .await
        .unwrap();
    assert_eq!(generic.meta.status, 202);

    let after = sim.state().call(&id).unwrap().conversation;
    let attributes = &after
        .participants
        .iter()
        .find(|p| p.id == participant.id)
        .unwrap()
        .attributes;
    assert_eq!(attributes["campaign"], "spring");
    assert_eq!(attributes["tier"], "");
    for (key, value) in &before {
        if key != "campaign" && key != "tier" {
            assert_eq!(&attributes[key], value, "unmanaged key {key} kept");
        }
    }
    let log = sim.state().request_log();
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[1].body,
        Some(serde_json::json!({"attributes": {"tier": ""}}))
    );
}

#[tokio::test]
async fn an_unknown_conversation_is_a_terminal_404() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let error = client
        .get_call("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert_eq!(
        error.code(),
        Some("conversation.error.conversation.not.found")
    );
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(error.attempts(), 1);
    let log = sim.state().request_log();
    let logged = api_requests(&log)[0];
    assert_eq!(error.correlation_id(), Some(logged.correlation_id.as_str()));
    assert!(
        error
            .to_string()
            .starts_with("HTTP 404 conversation.error.conversation.not.found: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_conflict_is_returned_for_the_caller_to_refetch() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let id = live_call_ids(&sim).remove(0);
    let participant_id = client.get_call(&id).await.unwrap().value.participants[0]
        .id
        .clone();
    sim.state().set_faults(FaultConfig {
        conflict_rate: 1.0,
        ..FaultConfig::default()
    });
    let attributes = Attributes::from([("k".to_owned(), "v".to_owned())]);
    let error = client
        .patch_call_participant_attributes(&id, &participant_id, &attributes)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409));
    assert_eq!(error.class(), ErrorClass::RefetchAndRetry);
    assert_eq!(error.attempts(), 1);
    let log = sim.state().request_log();
    assert_eq!(log.iter().filter(|r| r.method == "PATCH").count(), 1);
}

#[tokio::test]
async fn server_errors_500_is_terminal_503_and_dropped_connections_are_retried() {
    let sim = start(fast_sim()).await;
    let client = client_for(&sim, fast_options());
    let id = live_call_ids(&sim).remove(0);
    client.get_call(&id).await.unwrap();
    let cases = [
        (
            FaultConfig {
                status_rates: BTreeMap::from([(500, 1.0)]),
                ..FaultConfig::default()
            },
            1,
            Some(500),
        ),
        (
            FaultConfig {
                status_rates: BTreeMap::from([(503, 1.0)]),
                ..FaultConfig::default()
            },
            4,
            Some(503),
        ),
        (
            FaultConfig {
                drop_rate: 1.0,
                ..FaultConfig::default()
            },
            4,
            None,
        ),
    ];
    for (faults, attempts, status) in cases {
        sim.state().set_faults(faults);
        sim.state().reset_log();
        let error = client.get_call(&id).await.unwrap_err();
        assert_eq!(error.status(), status, "{error}");
        assert_eq!(error.attempts(), attempts, "{error}");
        let expected_class = if status == Some(500) {
            ErrorClass::Terminal
        } else {
            ErrorClass::Retryable
        };
        assert_eq!(error.class(), expected_class, "{error}");
        assert_eq!(
            api_requests(&sim.state().request_log()).len(),
            attempts as usize
        );
    }
    sim.state().set_faults(FaultConfig::default());
    client.get_call(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_wait_out_retry_after_and_all_succeed() {
    // 60/min with burst 1: a second request within a second gets 429 with Retry-After: 1.
    let sim = start(SimConfig {
        rate_per_minute: 60,
        limit_shape: LimitShape::Bucket,
        burst: 1,
        ..fast_sim()
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let client = client_for(
        &sim,
        ClientOptions {
            rate: "6000/min".parse().unwrap(),
            retry: RetryPolicy {
                max_attempts: 10,
                ..fast_retry()
            },
            observer: Some(Arc::clone(&recorder) as Arc<dyn RequestObserver>),
            ..ClientOptions::default()
        },
    );
    let ids = live_call_ids(&sim);
    let results = join_all(ids[..4].iter().map(|id| {
        let client = client.clone();
        async move { client.get_call(id).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let log = sim.state().request_log();
    let by_correlation: HashMap<&str, &LoggedRequest> = api_requests(&log)
        .into_iter()
        .map(|r| (r.correlation_id.as_str(), r))
        .collect();
    let events = recorder.0.lock().unwrap().clone();
    let throttled: Vec<_> = events.iter().filter(|e| e.status == Some(429)).collect();
    assert!(!throttled.is_empty(), "the client outpaced the simulator");
    assert_eq!(client.stats().throttled as usize, count_status(&log, 429));

    // Every request the client admitted after it had received a 429 reached the simulator no
    // earlier than that 429's Retry-After later (the whole token was paused, not one request).
    let mut checked = 0;
    for refusal in &throttled {
        let retry_after = refusal.retry_after.expect("429 carries Retry-After");
        assert_eq!(retry_after, Duration::from_secs(1));
        let refused = by_correlation[refusal.correlation_id.as_deref().unwrap()];
        let received_at = refusal.started_at + refusal.latency;
        for later in events.iter().filter(|e| e.started_at > received_at) {
            let logged = by_correlation[later.correlation_id.as_deref().unwrap()];
            if logged.token_id != refused.token_id {
                continue;
            }
            assert!(
                logged.at_ms >= refused.at_ms + retry_after.as_millis() as u64,
                "request {} at {} ms, within the Retry-After of the 429 {} at {} ms",
                logged.seq,
                logged.at_ms,
                refused.seq,
                refused.at_ms
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "some requests followed a 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_within_the_simulator_rate_is_never_throttled() {
    let sim = start(SimConfig {
        rate_per_minute: 3_000,
        limit_shape: LimitShape::Bucket,
        burst: 10,
        ..fast_sim()
    })
    .await;
    let client = client_for(
        &sim,
        ClientOptions {
            // The simulator's limiter is GCRA (burst 10): even pacing is what keeps within it.
            rate: "3000/min".parse().unwrap(),
            pacing: Pacing::Even,
            ..fast_options()
        },
    );
    let ids = live_call_ids(&sim);
    let results = join_all((0..40).map(|i| {
        let client = client.clone();
        let id = ids[i % ids.len()].clone();
        async move { client.get_call(&id).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    let log = sim.state().request_log();
    assert_eq!(api_requests(&log).len(), 40);
    assert_eq!(count_status(&log, 429), 0);
}

#[tokio::test]
async fn live_calls_are_paged_deduplicated_and_filtered_by_queue() {
    let sim = start(SimConfig {
        calls: 30,
        queues: 3,
        ..fast_sim()
    })
    .await;
    let state = sim.state();
    for id in live_call_ids(&sim).iter().take(2) {
        assert!(state.end_call(id));
    }
    let client = client_for(&sim, fast_options());

    let all = client
        .query_live_calls(&LiveCallsQuery {
            page_size: 7,
            ..LiveCallsQuery::default()
        })
        .await
        .unwrap();
    let found: BTreeSet<_> = all.iter().map(|c| c.conversation_id.clone()).collect();
    assert_eq!(found.len(), all.len(), "no duplicates");
    let live: BTreeSet<_> = live_call_ids(&sim).into_iter().collect();
    assert_eq!(found, live);
    let pages = api_requests(&state.request_log()).len();
    assert_eq!(pages, live.len() / 7 + 1);

    let queue_id = state.queues()[0].id.clone();
    let in_queue = client
        .query_live_calls(&LiveCallsQuery {
            queue_id: Some(queue_id.clone()),
            page_size: 7,
            ..LiveCallsQuery::default()
        })
        .await
        .unwrap();
    let found: BTreeSet<_> = in_queue.iter().map(|c| c.conversation_id.clone()).collect();
    let expected: BTreeSet<_> = state
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_deref() == Some(queue_id.as_str()))
        .map(|c| c.conversation.id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(found, expected);
}

/// Collects everything every subscriber layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A run of at least 40 ASCII letters and digits: the shape of an issued access token.
fn has_token_shaped_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_alphanumeric() {
            run + 1
        } else {
            0
        };
        if run >= 40 {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_traces_errors_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber in this test process");

    let sim = start(fast_sim()).await;
    let (_, secret) = sim.demo_credentials();
    let settings = settings_for(&sim, None);
    let client = GenesysClient::new(&settings, fast_options()).unwrap();
    let id = live_call_ids(&sim).remove(0);

    let call = client.get_call(&id).await.unwrap().value;
    let attributes = Attributes::from([("campaign".to_owned(), "spring".to_owned())]);
    client
        .patch_call_participant_attributes(&id, &call.participants[0].id, &attributes)
        .await
        .unwrap();
    sim.state().expire_tokens();
    client.get_conversation(&id).await.unwrap();
    let not_found: ApiError = client.get_call("no-such-call").await.unwrap_err();

    let wrong_secret = "wrong-secret-for-the-test";
    let refused_client =
        GenesysClient::new(&settings_for(&sim, Some(wrong_secret)), fast_options()).unwrap();
    let refused = refused_client.get_call(&id).await.unwrap_err();
    assert_eq!(refused.code(), Some("invalid_client"));

    let mut text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("genesys_request"), "tracing was captured");
    assert!(
        text.contains("access token issued"),
        "auth tracing was captured"
    );
    for value in [
        format!("{not_found} {not_found:?}"),
        format!("{refused} {refused:?}"),
        format!("{settings:?} {:?}", settings.credentials),
        format!("{client:?} {refused_client:?} {:?}", fast_options()),
        format!("{:?}", client.stats()),
    ] {
        text.push('\n');
        text.push_str(&value);
    }
    assert_eq!(client.stats().token_refreshes, 1, "the 401 path ran");
    for forbidden in [secret.as_str(), wrong_secret, "Bearer ", "Basic "] {
        assert!(!text.contains(forbidden), "{forbidden:?} leaked");
    }
    assert!(!has_token_shaped_run(&text), "a token-shaped string leaked");
}
