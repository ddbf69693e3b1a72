//! The client against scripted HTTP responses (wiremock): odd bodies, retries, refresh.

use std::sync::Mutex;

use serde_json::json;
use wiremock::matchers::{body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::models::ParticipantState;
use crate::settings::ExplicitSettings;

const CALL_PATH: &str = "/api/v2/conversations/calls/c-1";
const SECRET: &str = "wiremock-secret-value";

#[derive(Default)]
struct Recorder(Mutex<Vec<RequestEvent>>);

impl RequestObserver for Recorder {
    fn on_request(&self, event: &RequestEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<RequestEvent> {
        self.0.lock().unwrap().clone()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(50),
        max_throttled: 3,
    }
}

fn token_body(token: &str) -> serde_json::Value {
    json!({"access_token": token, "token_type": "bearer", "expires_in": 86399})
}

/// A server whose token endpoint issues `tok-1`, `tok-2`, ... to the right Basic credentials.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    let issued = std::sync::atomic::AtomicU32::new(0);
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header(
            "authorization",
            "Basic aWQ6d2lyZW1vY2stc2VjcmV0LXZhbHVl", // base64("id:wiremock-secret-value")
        ))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(move |_: &Request| {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(token_body(&format!("tok-{n}")))
        })
        .mount(&server)
        .await;
    server
}

fn client_with(server: &MockServer, observer: Option<Arc<Recorder>>) -> GenesysClient {
    client_with_options(
        server,
        ClientOptions {
            rate: "1000/s,burst=1000".parse().unwrap(),
            retry: fast_retry(),
            observer: observer.map(|o| o as Arc<dyn RequestObserver>),
            ..ClientOptions::default()
        },
    )
}

fn client_with_options(server: &MockServer, options: ClientOptions) -> GenesysClient {
    let settings = Settings::resolve(
        &ExplicitSettings {
            client_id: Some("id".into()),
            client_secret: Some(SECRET.into()),
            api_url: Some(server.uri().parse().unwrap()),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap();
    GenesysClient::new(&settings, options).unwrap()
}

/// A client whose window (one minute) outlasts any test: what it learns stays put.
fn minute_client(server: &MockServer, tokens: usize) -> GenesysClient {
    client_with_options(
        server,
        ClientOptions {
            rate: "60000/min".parse().unwrap(),
            tokens,
            retry: fast_retry(),
            ..ClientOptions::default()
        },
    )
}

fn too_many_requests(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", retry_after)
        .set_body_json(json!({
            "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
            "code": "too.many.requests.retry.after",
            "status": 429
        }))
}

fn client(server: &MockServer) -> GenesysClient {
    client_with(server, None)
}

async fn requests_to(server: &MockServer, wanted: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == wanted)
        .count()
}

fn error_json(status: u16, code: &str) -> serde_json::Value {
    json!({"message": "scripted", "code": code, "status": status})
}

#[tokio::test]
async fn unknown_fields_and_enum_values_are_tolerated() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("ININ-Correlation-Id", "corr-1")
                .set_body_json(json!({
                    "id": "c-1",
                    "brandNewField": {"nested": [1, 2]},
                    "participants": [{
                        "id": "p-1", "purpose": "customer", "state": "teleporting",
                        "attributes": {"a": "1"}, "futureFlag": true
                    }]
                })),
        )
        .mount(&server)
        .await;
    let fetched = client(&server).get_call("c-1").await.unwrap();
    let participant = &fetched.value.participants[0];
    assert_eq!(
        participant.state,
        Some(ParticipantState::Other("teleporting".into()))
    );
    assert_eq!(participant.attributes["a"], "1");
    assert_eq!(
        fetched.meta,
        ResponseMeta {
            status: 200,
            correlation_id: Some("corr-1".into()),
            attempts: 1
        }
    );
}

#[tokio::test]
async fn non_json_error_body_gives_a_readable_terminal_error() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(
            ResponseTemplate::new(400).set_body_raw("<html>upstream\nsaid no</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.code(), None);
    assert_eq!(error.to_string(), "HTTP 400: <html>upstream said no</html>");
}

#[tokio::test]
async fn success_status_with_an_unreadable_body_is_a_decode_error() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw("not json", "text/plain"))
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert!(
        matches!(error, ApiError::Decode { status: 200, .. }),
        "{error}"
    );
    assert_eq!(error.class(), ErrorClass::Terminal);
}

#[tokio::test]
async fn a_429_is_retried_after_the_capped_retry_after() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1000")
                .set_body_json(error_json(429, "too.many.requests.retry.after")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "c-1"})))
        .mount(&server)
        .await;
    let recorder = Arc::new(Recorder::default());
    let client = client_with_options(
        &server,
        ClientOptions {
            rate: "1000/s,burst=1000".parse().unwrap(),
            retry: fast_retry(),
            // Waits up to 1000 s are allowed: the retry policy's cap applies.
            max_wait: Duration::from_secs(1000),
            observer: Some(Arc::clone(&recorder) as Arc<dyn RequestObserver>),
            ..ClientOptions::default()
        },
    );
    // Without the 50 ms cap this would wait 1000 s.
    let fetched = client.get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 2);
    let events = recorder.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].status, Some(429));
    assert_eq!(events[0].retry_after, Some(Duration::from_secs(1000)));
    assert_eq!(events[0].error_class, Some(ErrorClass::Retryable));
    assert_eq!(events[1].status, Some(200));
    assert_eq!(events[1].attempt, 2);
    let stats = client.stats();
    assert_eq!((stats.throttled, stats.retries, stats.requests), (1, 1, 2));
}

#[tokio::test]
async fn a_500_is_not_retried() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(error_json(500, "internal.server.error")),
        )
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(error.attempts(), 1);
    assert_eq!(requests_to(&server, CALL_PATH).await, 1);
}

#[tokio::test]
async fn a_503_is_retried_until_success() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(error_json(503, "service.unavailable")),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "c-1"})))
        .mount(&server)
        .await;
    let fetched = client(&server).get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 3);
}

#[tokio::test]
async fn a_persistent_503_gives_up_after_max_attempts() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(error_json(503, "service.unavailable")),
        )
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert_eq!(error.attempts(), fast_retry().max_attempts);
    assert_eq!(requests_to(&server, CALL_PATH).await, 4);
    assert!(error.to_string().ends_with("(4 attempts)"), "{error}");
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_then_succeeds() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_json(401, "bad.credentials")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .and(header("authorization", "Bearer tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "c-1"})))
        .mount(&server)
        .await;
    let client = client(&server);
    let fetched = client.get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 2);
    assert_eq!(requests_to(&server, "/oauth/token").await, 2);
    let stats = client.stats();
    assert_eq!((stats.tokens_minted, stats.token_refreshes), (2, 1));
}

#[tokio::test]
async fn a_second_401_is_returned_after_exactly_one_refresh() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_json(401, "bad.credentials")))
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.attempts(), 2);
    assert_eq!(requests_to(&server, "/oauth/token").await, 2);
}

#[tokio::test]
async fn refused_credentials_give_a_clear_error_without_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "description": "client not found",
            "error_description": "client not found"
        })))
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert!(matches!(error, ApiError::Auth { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(error.code(), Some("invalid_client"));
    let text = format!("{error} {error:?}");
    assert!(text.contains("invalid_client: client not found"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(requests_to(&server, "/oauth/token").await, 1);
    assert_eq!(requests_to(&server, CALL_PATH).await, 0);
}

#[tokio::test]
async fn patches_send_the_attributes_body_and_read_the_202() {
    let server = server().await;
    let pid_path = "/api/v2/conversations/calls/c-1/participants/p-1/attributes";
    Mock::given(method("PATCH"))
        .and(path(pid_path))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"attributes": {"campaign": "spring", "old": ""}}),
        ))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(json!({"attributes": {"campaign": "spring", "old": "", "x": "y"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(
            "/api/v2/conversations/c-1/participants/p-1/attributes",
        ))
        .and(body_json(
            json!({"attributes": {"campaign": "spring", "old": ""}}),
        ))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let client = client(&server);
    let attributes = Attributes::from([
        ("campaign".to_owned(), "spring".to_owned()),
        ("old".to_owned(), String::new()),
    ]);
    let fetched = client
        .patch_call_participant_attributes("c-1", "p-1", &attributes)
        .await
        .unwrap();
    assert_eq!(fetched.meta.status, 202);
    assert_eq!(fetched.value.unwrap().attributes["x"], "y");
    let generic = client
        .patch_participant_attributes("c-1", "p-1", &attributes)
        .await
        .unwrap();
    assert_eq!(generic.meta.status, 202);
}

#[tokio::test]
async fn path_values_are_validated_and_percent_encoded() {
    let server = server().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x"})))
        .mount(&server)
        .await;
    let client = client(&server);
    client.get_call("a/b c?d").await.unwrap();
    assert_eq!(
        requests_to(&server, "/api/v2/conversations/calls/a%2Fb%20c%3Fd").await,
        1
    );
    for bad in ["", " ", "..", "a\nb"] {
        let error = client.get_call(bad).await.unwrap_err();
        assert!(matches!(error, ApiError::InvalidArgument { .. }), "{bad:?}");
        assert_eq!(error.attempts(), 0);
    }
}

#[tokio::test]
async fn live_calls_page_until_a_short_page_and_deduplicate() {
    let server = server().await;
    let query_path = "/api/v2/analytics/conversations/details/query";
    Mock::given(method("POST"))
        .and(path(query_path))
        .respond_with(|request: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            let ids: &[&str] = match body["paging"]["pageNumber"].as_u64() {
                Some(1) => &["a", "b"],
                // The list shifted: `b` moved onto page 2.
                Some(2) => &["b", "c"],
                _ => &["d"],
            };
            let conversations: Vec<_> = ids
                .iter()
                .map(|id| json!({"conversationId": id, "participants": []}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"conversations": conversations}))
        })
        .mount(&server)
        .await;
    let query = LiveCallsQuery {
        queue_id: Some("q-9".into()),
        page_size: 2,
        ..LiveCallsQuery::default()
    };
    let calls = client(&server).query_live_calls(&query).await.unwrap();
    let ids: Vec<_> = calls.iter().map(|c| c.conversation_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);

    let requests = server.received_requests().await.unwrap();
    let first: serde_json::Value = requests
        .iter()
        .find(|r| r.url.path() == query_path)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    assert_eq!(first["paging"], json!({"pageSize": 2, "pageNumber": 1}));
    assert_eq!(
        first["segmentFilters"][0]["predicates"][1],
        json!({"type": "dimension", "dimension": "queueId", "value": "q-9"})
    );
    assert_eq!(requests_to(&server, query_path).await, 3);
}

#[tokio::test]
async fn an_empty_result_is_an_empty_list() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/analytics/conversations/details/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let calls = client(&server)
        .query_live_calls(&LiveCallsQuery::default())
        .await
        .unwrap();
    assert!(calls.is_empty());
}

#[test]
fn client_debug_hides_credentials() {
    let settings = Settings::resolve(
        &ExplicitSettings {
            client_id: Some("id".into()),
            client_secret: Some(SECRET.into()),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap();
    let client = GenesysClient::new(&settings, ClientOptions::default()).unwrap();
    let debug = format!("{client:?} {:?}", ClientOptions::default());
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("api.mypurecloud.com"), "{debug}");
}

#[tokio::test]
async fn find_call_reads_not_found_only_from_genesys_code() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "The conversation does not exist.",
            "code": "conversation.error.conversation.not.found",
            "status": 404
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/conversations/calls/c-2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "The requested resource was not found.",
            "code": "not.found",
            "status": 404
        })))
        .mount(&server)
        .await;
    let client = client_with(&server, None);
    assert!(client.find_call("c-1").await.unwrap().is_none());
    let err = client.find_call("c-2").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("not.found"));
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/api/v2/conversations/calls/c-2", server.uri())),
        "the error names the URL: {text}"
    );
}

/// Mounts `count` 429s with `retry_after` on the call path, then 200s.
async fn throttle_then_succeed(server: &MockServer, retry_after: &str, count: u64) {
    if count > 0 {
        Mock::given(method("GET"))
            .and(path(CALL_PATH))
            .respond_with(too_many_requests(retry_after))
            .up_to_n_times(count)
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(CALL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "c-1"})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn window_pacing_is_the_default_and_reported_per_token() {
    let server = server().await;
    throttle_then_succeed(&server, "1", 0).await;
    let client = minute_client(&server, 3);
    let results = futures::future::join_all((0..20).map(|_| client.get_call("c-1"))).await;
    assert!(results.iter().all(Result::is_ok));
    let tokens = client.stats().tokens;
    let seen: Vec<_> = tokens
        .iter()
        .map(|t| {
            (
                t.slot,
                t.pacing,
                t.budget,
                t.configured_budget,
                t.set_aside_for,
            )
        })
        .collect();
    assert_eq!(
        seen,
        (0..3)
            .map(|slot| (slot, Pacing::Window, 60_000, 60_000, None))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn repeated_short_retry_afters_switch_the_token_to_even_pacing() {
    let server = server().await;
    throttle_then_succeed(&server, "1", 3).await;
    let client = minute_client(&server, 1);
    let fetched = client.get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 4);
    let token = client.stats().tokens[0];
    assert_eq!(token.pacing, Pacing::Even);
    assert_eq!(
        token.budget, token.configured_budget,
        "the budget is untouched"
    );
}

#[tokio::test]
async fn one_short_retry_after_is_not_evidence() {
    let server = server().await;
    throttle_then_succeed(&server, "1", 1).await;
    let client = minute_client(&server, 1);
    client.get_call("c-1").await.unwrap();
    assert_eq!(client.stats().tokens[0].pacing, Pacing::Window);
}

#[tokio::test]
async fn a_long_retry_after_cuts_the_token_budget() {
    let server = server().await;
    throttle_then_succeed(&server, "42", 1).await;
    let client = minute_client(&server, 1);
    client.get_call("c-1").await.unwrap();
    let token = client.stats().tokens[0];
    assert_eq!((token.budget, token.configured_budget), (42_000, 60_000));
    assert!((token.budget_per_minute() - 42_000.0).abs() < 1e-6);
    assert_eq!(token.pacing, Pacing::Window);
}

#[tokio::test]
async fn a_retry_after_above_max_wait_sets_tokens_aside_then_fails_fast_with_a_typed_error() {
    let server = server().await;
    throttle_then_succeed(&server, "3600", 10).await;
    let client = minute_client(&server, 2);
    let error = client.get_call("c-1").await.unwrap_err();
    // Both tokens were tried once, then set aside.
    assert_eq!(requests_to(&server, CALL_PATH).await, 2);
    assert!(error.is_budget_exhausted(), "{error:?}");
    assert_eq!(error.class(), ErrorClass::ResumeLater);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(error.attempts(), 2);
    let text = error.to_string();
    assert!(
        text.contains("asked to wait 3600 s, more than the maximum wait (--max-wait) of 180 s"),
        "{text}"
    );
    let ApiError::BudgetExhausted { resume_in, .. } = error else {
        unreachable!()
    };
    assert!(resume_in <= Duration::from_secs(3600));
    let stats = client.stats();
    assert!(stats.tokens.iter().all(|t| t.set_aside_for.is_some()));

    // Every token aside: the next call fails at once, without a request.
    let again = client.get_call("c-1").await.unwrap_err();
    assert!(again.is_budget_exhausted());
    assert_eq!(again.attempts(), 0);
    assert_eq!(requests_to(&server, CALL_PATH).await, 2);
}

#[tokio::test]
async fn one_token_set_aside_leaves_the_others_working() {
    let server = server().await;
    throttle_then_succeed(&server, "3600", 1).await;
    let client = minute_client(&server, 2);
    let fetched = client.get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 2);
    for _ in 0..3 {
        client.get_call("c-1").await.unwrap();
    }
    let aside: Vec<_> = client
        .stats()
        .tokens
        .iter()
        .map(|t| t.set_aside_for.is_some())
        .collect();
    assert_eq!(aside, [true, false]);
}

#[tokio::test]
async fn the_token_endpoints_rate_limit_is_retried_not_reported_as_bad_credentials() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "description": "Rate limit exceeded",
            "error_description": "Rate limit exceeded"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    throttle_then_succeed(&server, "1", 0).await;
    let client = client(&server);
    let fetched = client.get_call("c-1").await.unwrap();
    assert_eq!(fetched.meta.attempts, 2);
    assert_eq!(requests_to(&server, "/oauth/token").await, 2);
    assert_eq!(requests_to(&server, CALL_PATH).await, 1);
    assert_eq!(client.stats().tokens_minted, 1);
}

#[tokio::test]
async fn another_invalid_request_from_the_token_endpoint_stays_terminal() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": "grant type not allowed"
        })))
        .mount(&server)
        .await;
    let error = client(&server).get_call("c-1").await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert!(
        error.to_string().contains("GENESYSCLOUD_OAUTHCLIENT_ID"),
        "{error}"
    );
    assert_eq!(requests_to(&server, "/oauth/token").await, 1);
}

const LIMITS_PATH: &str = "/api/v2/organizations/limits/namespaces/platform-api";

#[tokio::test]
async fn org_limits_parse_the_listing_and_are_observed_like_any_call() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(LIMITS_PATH))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "entities": [
                {"key": "client.credentials.token.rate.per.minute", "namespace": "platform-api", "value": 1200},
                {"key": "some.other.limit", "namespace": "platform-api", "value": 7, "futureField": [1]},
                {"key": "no.value"}
            ],
            "pageSize": 25,
            "total": 3
        })))
        .mount(&server)
        .await;
    let recorder = Arc::new(Recorder::default());
    let client = client_with(&server, Some(Arc::clone(&recorder)));
    let limits = client.org_limits("platform-api").await.unwrap();
    assert_eq!(limits.len(), 3);
    assert_eq!(
        limits[0],
        LimitEntity {
            key: Some("client.credentials.token.rate.per.minute".into()),
            namespace: Some("platform-api".into()),
            value: Some(1200),
        }
    );
    assert_eq!(limits[1].value, Some(7));
    assert_eq!(limits[2].value, None);
    let events = recorder.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].route,
        "GET /api/v2/organizations/limits/namespaces/{namespaceName}"
    );
    assert_eq!(events[0].path, LIMITS_PATH);
    assert_eq!(client.stats().requests, 1);
}

#[tokio::test]
async fn org_limits_without_entities_are_an_empty_list() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(LIMITS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total": 0})))
        .mount(&server)
        .await;
    assert!(
        client(&server)
            .org_limits("platform-api")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_refused_org_limits_call_is_a_typed_error_with_its_code() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(LIMITS_PATH))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(error_json(403, "missing.permissions")),
        )
        .mount(&server)
        .await;
    let error = client(&server)
        .org_limits("platform-api")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    assert_eq!(error.code(), Some("missing.permissions"));
    assert_eq!(error.class(), ErrorClass::Terminal);
    assert_eq!(requests_to(&server, LIMITS_PATH).await, 1, "not retried");
}

#[tokio::test]
async fn the_namespace_is_validated_and_percent_encoded() {
    let server = server().await;
    let client = client(&server);
    assert!(matches!(
        client.org_limits("..").await,
        Err(ApiError::InvalidArgument { .. })
    ));
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/limits/namespaces/a%2Fb"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"entities": []})))
        .mount(&server)
        .await;
    assert!(client.org_limits("a/b").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rate_set_on_the_client_is_every_tokens_budget() {
    let server = server().await;
    let client = minute_client(&server, 2);
    client.set_rate(RateSpec::new(1200, Duration::from_secs(60)).unwrap());
    let stats = client.stats();
    assert_eq!(stats.tokens.len(), 2);
    for token in &stats.tokens {
        assert_eq!(token.configured_budget, 1200);
        assert_eq!(token.budget, 1200);
        assert_eq!(token.window, Duration::from_secs(60));
    }
}

/// A loopback proxy that answers every CONNECT with `HTTP/1.1 {answer}`; its port.
async fn refusing_proxy(answer: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read_u8().await {
                        Ok(byte) => head.push(byte),
                        Err(_) => return,
                    }
                }
                let _ = stream
                    .write_all(format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            });
        }
    });
    port
}

/// reqwest reports a refused tunnel without its status (but a 407's); hyper-util's words for
/// it are matched, and pinned here against the real stack. The client's errors, for the API
/// and the token endpoint alike, say the proxy's status and what to check, in the words of
/// `TunnelRefused` (those of `attrsync doctor` and the notification socket), and never the
/// proxy's password.
#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_worded_with_its_status_and_what_to_check() {
    for (answer, advice) in [
        (
            "403 Forbidden",
            "the proxy does not allow {host}:443: ask its administrators to allow it, or list the host in NO_PROXY if it is reachable without the proxy",
        ),
        (
            "407 Proxy Authentication Required",
            "the proxy refused the credentials given in HTTPS_PROXY: check the user name and password (percent-encoded in a URL)",
        ),
        (
            "502 Bad Gateway",
            "the proxy could not reach {host}:443: check the host (the region or the API URL) and the proxy's own network",
        ),
    ] {
        let port = refusing_proxy(answer).await;
        let proxy = format!("http://me:pr0xy-pw@127.0.0.1:{port}");
        let settings = Settings::resolve(
            &ExplicitSettings {
                client_id: Some("id".into()),
                client_secret: Some(SECRET.into()),
                api_url: Some("https://api.example.test".parse().unwrap()),
                ..Default::default()
            },
            &|name| (name == "HTTPS_PROXY").then(|| proxy.clone()),
        )
        .unwrap();
        let client = GenesysClient::new(
            &settings,
            ClientOptions {
                retry: RetryPolicy::none(),
                ..ClientOptions::default()
            },
        )
        .unwrap();
        let expected = |host: &str| {
            format!(
                "the proxy http://127.0.0.1:{port} (from HTTPS_PROXY) refused CONNECT {host}:443 with HTTP {answer}; {}",
                advice.replace("{host}", host)
            )
        };

        let message = client
            .probe(&"https://api.example.test/".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(message, expected("api.example.test"));

        let error = client.authenticate().await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "token endpoint https://login.example.test/oauth/token unreachable: {}",
                expected("login.example.test")
            )
        );
        assert!(!error.contains("pr0xy-pw"), "{error}");
    }
}
