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
    let options = ClientOptions {
        rate: "1000/s,burst=1000".parse().unwrap(),
        retry: fast_retry(),
        observer: observer.map(|o| o as Arc<dyn RequestObserver>),
        ..ClientOptions::default()
    };
    GenesysClient::new(&settings, options).unwrap()
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
    let client = client_with(&server, Some(Arc::clone(&recorder)));
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
