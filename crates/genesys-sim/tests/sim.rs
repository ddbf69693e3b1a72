//! The simulator over real HTTP on loopback, as a client sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use genesys_models::{
    AnalyticsConversationQueryResponse, CallConversation, Conversation, ErrorBody,
    ParticipantAttributes, ParticipantState, TokenResponse,
};
use genesys_sim::{DriftConfig, FaultConfig, LimitShape, SimConfig, SimHandle, Simulator};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

// ---- helpers ----

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, loopback())
        .await
        .expect("simulator starts")
}

fn small_org() -> SimConfig {
    SimConfig {
        calls: 12,
        ..SimConfig::default()
    }
}

fn client() -> Client {
    // Already installed by another test in this binary is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().build().expect("http client")
}

async fn issue_token(http: &Client, sim: &SimHandle) -> String {
    let (id, secret) = sim.demo_credentials();
    let response = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .json::<TokenResponse>()
        .await
        .expect("token body")
        .access_token
}

async fn get(http: &Client, sim: &SimHandle, token: &str, path: &str) -> Response {
    http.get(format!("{}{path}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn patch(http: &Client, sim: &SimHandle, token: &str, path: &str, body: &Value) -> Response {
    http.patch(format!("{}{path}", sim.url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn query(http: &Client, sim: &SimHandle, token: &str, body: &Value) -> Response {
    http.post(format!(
        "{}/api/v2/analytics/conversations/details/query",
        sim.url()
    ))
    .bearer_auth(token)
    .json(body)
    .send()
    .await
    .expect("request")
}

fn correlation_id(response: &Response) -> String {
    response
        .headers()
        .get("ININ-Correlation-Id")
        .expect("ININ-Correlation-Id header")
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Status, correlation id, and the body as an `ErrorBody` (asserting its JSON shape).
async fn error_of(response: Response) -> (StatusCode, ErrorBody) {
    let status = response.status();
    let correlation = correlation_id(&response);
    assert!(is_json(&response), "error bodies are application/json");
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["details"], json!([]));
    assert_eq!(body["errors"], json!([]));
    let error: ErrorBody = serde_json::from_value(body).expect("ErrorBody");
    assert_eq!(error.status, Some(status.as_u16()));
    assert_eq!(error.context_id.as_deref(), Some(correlation.as_str()));
    (status, error)
}

fn interval_around_now() -> String {
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    format!(
        "{}/{}",
        humantime::format_rfc3339_millis(now - day),
        humantime::format_rfc3339_millis(now + day)
    )
}

fn live_calls_query(page_size: u32, page_number: u32) -> Value {
    json!({
        "interval": interval_around_now(),
        "order": "asc",
        "orderBy": "conversationStart",
        "conversationFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}
        ]}],
        "segmentFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"}
        ]}],
        "paging": {"pageSize": page_size, "pageNumber": page_number}
    })
}

/// A live call and its customer participant id.
fn first_customer(sim: &SimHandle) -> (String, String) {
    let call = sim
        .state()
        .calls()
        .into_iter()
        .find(|c| !c.ended)
        .expect("a live call");
    let customer = call
        .conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .expect("a customer");
    (call.conversation.id.clone(), customer.id.clone())
}

fn call_attributes_path(conversation_id: &str, participant_id: &str) -> String {
    format!(
        "/api/v2/conversations/calls/{conversation_id}/participants/{participant_id}/attributes"
    )
}

fn generic_attributes_path(conversation_id: &str, participant_id: &str) -> String {
    format!("/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes")
}

fn customer_attributes(call: &CallConversation, participant_id: &str) -> BTreeMap<String, String> {
    call.participants
        .iter()
        .find(|p| p.id == participant_id)
        .expect("participant")
        .attributes
        .clone()
}

// ---- OAuth ----

#[tokio::test]
async fn token_is_issued_via_basic_auth_and_via_form_fields() {
    let sim = start(small_org()).await;
    let http = client();
    let (id, secret) = sim.demo_credentials();

    let basic = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    assert!(is_json(&basic));
    correlation_id(&basic);
    let basic: TokenResponse = basic.json().await.unwrap();
    assert_eq!(basic.token_type, "bearer");
    assert_eq!(basic.expires_in, 86_399);

    let form = http
        .post(format!("{}/oauth/token", sim.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let form: TokenResponse = form.json().await.unwrap();
    assert_ne!(form.access_token, basic.access_token, "every token is new");

    for token in [&basic.access_token, &form.access_token] {
        let (cid, _) = first_customer(&sim);
        let call = get(
            &http,
            &sim,
            token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await;
        assert_eq!(call.status(), StatusCode::OK);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_is_401_invalid_client_and_wrong_grant_is_400() {
    let sim = start(small_org()).await;
    let http = client();
    let (id, secret) = sim.demo_credentials();

    let wrong = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(&id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    correlation_id(&wrong);
    assert!(is_json(&wrong));
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["description"].is_string() && body["error_description"].is_string());

    let grant = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = grant.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_are_401_with_their_codes() {
    let sim = start(small_org()).await;
    let http = client();
    let (cid, _) = first_customer(&sim);
    let path = format!("{}/api/v2/conversations/calls/{cid}", sim.url());

    let (status, error) = error_of(http.get(&path).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error.code.as_deref(), Some("authentication.required"));

    let (status, error) = error_of(
        get(
            &http,
            &sim,
            "not-a-token",
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error.code.as_deref(), Some("bad.credentials"));

    let token = issue_token(&http, &sim).await;
    assert_eq!(
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}")
        )
        .await
        .status(),
        StatusCode::OK
    );
    sim.state().expire_tokens();
    assert_eq!(
        sim.state().issued_tokens(),
        std::slice::from_ref(&token),
        "expired tokens stay listed"
    );
    let (status, error) = error_of(
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error.code.as_deref(), Some("bad.credentials"));
    sim.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let sim = start(SimConfig {
        token_ttl: Duration::from_secs(300),
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let path = format!("/api/v2/conversations/calls/{cid}");
    assert_eq!(
        get(&http, &sim, &token, &path).await.status(),
        StatusCode::OK
    );
    sim.state().advance_clock(Duration::from_secs(301));
    let (status, error) = error_of(get(&http, &sim, &token, &path).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error.code.as_deref(), Some("bad.credentials"));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_a_correlation_id() {
    let sim = start(SimConfig {
        rate_per_minute: 1,
        limit_shape: LimitShape::Bucket,
        burst: 2,
        ..small_org()
    })
    .await;
    let http = client();
    let (cid, pid) = first_customer(&sim);
    let mut seen = BTreeSet::new();

    let bad_token = http
        .post(format!("{}/oauth/token", sim.url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    seen.insert(correlation_id(&bad_token));
    let token = issue_token(&http, &sim).await;
    let responses = [
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await,
        patch(
            &http,
            &sim,
            &token,
            &generic_attributes_path(&cid, &pid),
            &json!({"attributes": {"a": "b"}}),
        )
        .await,
        get(&http, &sim, &token, &format!("/api/v2/conversations/{cid}")).await,
        http.get(format!("{}/api/v2/conversations/calls/{cid}", sim.url()))
            .send()
            .await
            .unwrap(),
        http.get(format!("{}/nowhere", sim.url()))
            .send()
            .await
            .unwrap(),
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 202, 429, 401, 404]);
    for response in &responses {
        seen.insert(correlation_id(response));
    }
    assert_eq!(seen.len(), 6, "correlation ids are unique per response");
    sim.shutdown().await;
}

// ---- reading calls ----

#[tokio::test]
async fn get_call_returns_the_call_as_the_simulator_holds_it() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    for expected in sim.state().calls() {
        let id = &expected.conversation.id;
        let response = get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{id}"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(is_json(&response));
        let call: CallConversation = response.json().await.unwrap();
        assert_eq!(call, expected.conversation);
        let purposes: Vec<&str> = call
            .participants
            .iter()
            .filter_map(|p| p.purpose.as_deref())
            .collect();
        assert_eq!(purposes[0], "customer");
        assert!(purposes.contains(&"acd"));
        let agent = call.participants.last().unwrap();
        assert_eq!(agent.purpose.as_deref(), Some("agent"));
        assert_eq!(agent.state, Some(ParticipantState::Connected));
        assert!(agent.user_id().is_some());
        assert!(
            call.participants[0]
                .address
                .as_deref()
                .unwrap()
                .starts_with("tel:+1555")
        );
        let acd = call
            .participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("acd"))
            .unwrap();
        assert_eq!(
            acd.queue.as_ref().and_then(|q| q.id.clone()),
            expected.queue_id
        );
        assert_eq!(acd.state, Some(ParticipantState::Disconnected));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn get_conversation_has_flat_ids_call_states_and_no_end_time_while_live() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let expected = sim.state().calls().remove(0);
    let id = &expected.conversation.id;
    let response = get(&http, &sim, &token, &format!("/api/v2/conversations/{id}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let raw: Value = response.json().await.unwrap();
    assert!(raw.get("endTime").is_none());
    let conversation: Conversation = serde_json::from_value(raw).unwrap();
    assert_eq!(conversation.id, *id);
    assert!(conversation.start_time.is_some());
    for (participant, truth) in conversation
        .participants
        .iter()
        .zip(&expected.conversation.participants)
    {
        assert_eq!(participant.id, truth.id);
        assert_eq!(participant.user_id.as_deref(), truth.user_id());
        assert_eq!(
            participant.queue_id,
            truth.queue.as_ref().and_then(|q| q.id.clone())
        );
        assert_eq!(participant.calls.len(), 1);
        assert_eq!(participant.calls[0].state, truth.state);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_the_contract_codes() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let unknown = "00000000-0000-4000-8000-000000000000";

    let cases = [
        (
            get(
                &http,
                &sim,
                &token,
                &format!("/api/v2/conversations/calls/{unknown}"),
            )
            .await,
            404,
            "conversation.error.conversation.not.found",
        ),
        (
            get(
                &http,
                &sim,
                &token,
                &format!("/api/v2/conversations/{unknown}"),
            )
            .await,
            404,
            "not.found",
        ),
        (
            patch(
                &http,
                &sim,
                &token,
                &call_attributes_path(unknown, unknown),
                &json!({"attributes": {}}),
            )
            .await,
            404,
            "conversation.error.conversation.not.found",
        ),
        (
            patch(
                &http,
                &sim,
                &token,
                &call_attributes_path(&cid, unknown),
                &json!({"attributes": {}}),
            )
            .await,
            404,
            "conversation.error.participant.not.found",
        ),
        (
            patch(
                &http,
                &sim,
                &token,
                &generic_attributes_path(&cid, unknown),
                &json!({"attributes": {}}),
            )
            .await,
            404,
            "conversation.error.participant.not.found",
        ),
        (
            get(
                &http,
                &sim,
                &token,
                "/api/v2/conversations/calls/not-a-uuid",
            )
            .await,
            400,
            "bad.request",
        ),
        (
            get(&http, &sim, &token, "/api/v2/no/such/route").await,
            404,
            "not.found",
        ),
    ];
    for (response, status, code) in cases {
        let (got_status, error) = error_of(response).await;
        assert_eq!(
            (got_status.as_u16(), error.code.as_deref()),
            (status, Some(code))
        );
    }
    sim.shutdown().await;
}

// ---- writing attributes ----

#[tokio::test]
async fn call_patch_merges_per_key_and_answers_202_with_all_attributes() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let before = customer_attributes(&sim.state().call(&cid).unwrap().conversation, &pid);
    let path = call_attributes_path(&cid, &pid);

    let first = patch(
        &http,
        &sim,
        &token,
        &path,
        &json!({"attributes": {"campaign": "spring", "tier": "gold"}}),
    )
    .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(is_json(&first));
    let first: ParticipantAttributes = first.json().await.unwrap();
    let mut expected = before.clone();
    expected.insert("campaign".into(), "spring".into());
    expected.insert("tier".into(), "gold".into());
    assert_eq!(first.attributes, expected);

    // Only `tier` is named: `campaign` stays; "" keeps the key with an empty value.
    let second = patch(
        &http,
        &sim,
        &token,
        &path,
        &json!({"attributes": {"tier": ""}}),
    )
    .await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let second: ParticipantAttributes = second.json().await.unwrap();
    expected.insert("tier".into(), String::new());
    assert_eq!(second.attributes, expected);

    let call: CallConversation = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/conversations/calls/{cid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(customer_attributes(&call, &pid), expected);
    sim.shutdown().await;
}

#[tokio::test]
async fn generic_patch_answers_202_without_a_body() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let response = patch(
        &http,
        &sim,
        &token,
        &generic_attributes_path(&cid, &pid),
        &json!({"attributes": {"k": "v"}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_none()
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let conversation: Conversation =
        get(&http, &sim, &token, &format!("/api/v2/conversations/{cid}"))
            .await
            .json()
            .await
            .unwrap();
    let participant = conversation
        .participants
        .iter()
        .find(|p| p.id == pid)
        .unwrap();
    assert_eq!(
        participant.attributes.get("k").map(String::as_str),
        Some("v")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn non_string_values_and_oversize_bodies_are_rejected() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let path = call_attributes_path(&cid, &pid);
    for value in [json!(42), json!(true), Value::Null, json!({"nested": "x"})] {
        let (status, error) = error_of(
            patch(
                &http,
                &sim,
                &token,
                &path,
                &json!({"attributes": {"k": value}}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code.as_deref(), Some("invalid.value"));
    }
    let not_json = http
        .patch(format!("{}{path}", sim.url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(not_json).await;
    assert_eq!(
        (status, error.code.as_deref()),
        (StatusCode::BAD_REQUEST, Some("bad.request"))
    );

    let big = json!({"attributes": {"k": "x".repeat(512_001)}});
    let (status, error) = error_of(patch(&http, &sim, &token, &path, &big).await).await;
    assert_eq!(
        (status, error.code.as_deref()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("request.entity.too.large")
        )
    );

    let truth = customer_attributes(&sim.state().call(&cid).unwrap().conversation, &pid);
    assert!(!truth.contains_key("k"), "rejected writes change nothing");
    sim.shutdown().await;
}

#[tokio::test]
async fn request_log_records_patch_bodies_and_token_ids_but_never_tokens() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let body = json!({"attributes": {"campaign": "spring"}});
    let response = patch(
        &http,
        &sim,
        &token,
        &call_attributes_path(&cid, &pid),
        &body,
    )
    .await;
    let correlation = correlation_id(&response);

    let log = sim.state().request_log();
    assert_eq!(log.len(), 2, "token + PATCH");
    assert_eq!(log[0].path, "/oauth/token");
    let entry = &log[1];
    assert_eq!(
        (entry.seq, entry.method.as_str(), entry.status),
        (2, "PATCH", 202)
    );
    assert_eq!(entry.path, call_attributes_path(&cid, &pid));
    assert_eq!(entry.body.as_ref(), Some(&body));
    assert_eq!(entry.token_id.as_deref(), Some("t1"));
    assert_eq!(entry.correlation_id, correlation);
    let serialized = serde_json::to_string(&log).unwrap();
    assert!(!serialized.contains(&token));
    assert!(!serialized.contains(&sim.demo_credentials().1));
    sim.shutdown().await;
}

// ---- rate limit ----

#[tokio::test]
async fn exceeding_the_per_token_limit_gets_genesys_429_and_each_token_has_its_own_budget() {
    let sim = start(SimConfig {
        // One request a minute after the burst: the test's own run time cannot refill it.
        rate_per_minute: 1,
        limit_shape: LimitShape::Bucket,
        burst: 3,
        ..small_org()
    })
    .await;
    let http = client();
    let first = issue_token(&http, &sim).await;
    let second = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let path = format!("/api/v2/conversations/calls/{cid}");
    for _ in 0..3 {
        assert_eq!(
            get(&http, &sim, &first, &path).await.status(),
            StatusCode::OK
        );
    }
    let limited = get(&http, &sim, &first, &path).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    let correlation = correlation_id(&limited);
    assert!(is_json(&limited));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
            "code": "too.many.requests.retry.after",
            "status": 429,
            "contextId": correlation,
            "details": [],
            "errors": []
        })
    );

    // The other token is untouched.
    for _ in 0..3 {
        assert_eq!(
            get(&http, &sim, &second, &path).await.status(),
            StatusCode::OK
        );
    }
    // One interval later the first token may send one more.
    sim.state().advance_clock(Duration::from_secs(60));
    assert_eq!(
        get(&http, &sim, &first, &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&http, &sim, &first, &path).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn retry_after_counts_whole_seconds_until_the_budget_refills() {
    let sim = start(SimConfig {
        rate_per_minute: 2,
        limit_shape: LimitShape::Bucket,
        burst: 1,
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let path = format!("/api/v2/conversations/calls/{cid}");
    assert_eq!(
        get(&http, &sim, &token, &path).await.status(),
        StatusCode::OK
    );
    let limited = get(&http, &sim, &token, &path).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (29..=30).contains(&retry_after),
        "30 s interval, got {retry_after}"
    );
    let (_, error) = error_of(limited).await;
    assert_eq!(
        error.message.unwrap(),
        format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds")
    );
    sim.shutdown().await;
}

/// The `Retry-After` header of a 429, checked against the number in its message.
async fn retry_after_of(response: Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let correlation = correlation_id(&response);
    assert!(is_json(&response));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
            "code": "too.many.requests.retry.after",
            "status": 429,
            "contextId": correlation,
            "details": [],
            "errors": []
        })
    );
    retry_after
}

/// A simulator with a frozen clock, so that times are exact, and a call path to read.
async fn frozen(config: SimConfig) -> (SimHandle, String) {
    let sim = start(config).await;
    sim.state().freeze_clock();
    let (cid, _) = first_customer(&sim);
    (sim, format!("/api/v2/conversations/calls/{cid}"))
}

#[tokio::test]
async fn window_shape_admits_the_budget_at_once_then_answers_the_seconds_until_it_frees() {
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 5,
        limit_shape: LimitShape::Window,
        // The window has no burst: this must not matter.
        burst: 1,
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    for _ in 0..5 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    // All five were admitted at the same instant: the window frees in exactly 60 s.
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        60
    );
    sim.state().advance_clock(Duration::from_secs(25));
    // Refusals consume nothing: the answer counts down with the clock alone.
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        35
    );
    sim.state().advance_clock(Duration::from_millis(34_500));
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        1
    );
    sim.state().advance_clock(Duration::from_millis(500));
    // The window has passed: the whole budget again, at once.
    for _ in 0..5 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        60
    );
    let logged: Vec<Option<u64>> = sim
        .state()
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.retry_after_secs)
        .collect();
    assert_eq!(logged, [Some(60), Some(35), Some(1), Some(60)]);
    sim.shutdown().await;
}

#[tokio::test]
async fn window_slides_and_its_length_is_configurable() {
    // 60 per minute over a 10 s window: 10 per 10 s.
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 60,
        limit_shape: LimitShape::Window,
        limit_window: Duration::from_secs(10),
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    for _ in 0..4 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    sim.state().advance_clock(Duration::from_secs(3));
    for _ in 0..6 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    // The four oldest leave the window 7 s from now.
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        7
    );
    sim.state().advance_clock(Duration::from_secs(7));
    // Sliding, not fixed: only the four that left make room, the six later ones still count.
    for _ in 0..4 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        3
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn bucket_shape_answers_about_one_request_interval() {
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 300,
        limit_shape: LimitShape::Bucket,
        burst: 3,
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    for _ in 0..3 {
        assert_eq!(
            get(&http, &sim, &token, &path).await.status(),
            StatusCode::OK
        );
    }
    // One interval is 200 ms: Retry-After rounds it up to one second.
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        1
    );
    sim.state().advance_clock(Duration::from_millis(200));
    assert_eq!(
        get(&http, &sim, &token, &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        retry_after_of(get(&http, &sim, &token, &path).await).await,
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn org_limit_refuses_across_tokens_once_their_sum_exceeds_it() {
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 100,
        org_rate_per_minute: 4,
        ..small_org()
    })
    .await;
    let http = client();
    let first = issue_token(&http, &sim).await;
    let second = issue_token(&http, &sim).await;
    for token in [&first, &first, &second, &second] {
        assert_eq!(
            get(&http, &sim, token, &path).await.status(),
            StatusCode::OK
        );
    }
    // Each token is far below its own budget; together they spent the org's.
    sim.state().advance_clock(Duration::from_secs(20));
    assert_eq!(
        retry_after_of(get(&http, &sim, &first, &path).await).await,
        40
    );
    assert_eq!(
        retry_after_of(get(&http, &sim, &second, &path).await).await,
        40
    );
    let third = issue_token(&http, &sim).await;
    assert_eq!(
        retry_after_of(get(&http, &sim, &third, &path).await).await,
        40
    );
    sim.state().advance_clock(Duration::from_secs(40));
    for token in [&third, &third, &first, &second] {
        assert_eq!(
            get(&http, &sim, token, &path).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        retry_after_of(get(&http, &sim, &third, &path).await).await,
        60
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_refused_by_its_token_consumes_no_org_budget() {
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 1,
        org_rate_per_minute: 3,
        ..small_org()
    })
    .await;
    let http = client();
    let tokens = [
        issue_token(&http, &sim).await,
        issue_token(&http, &sim).await,
        issue_token(&http, &sim).await,
        issue_token(&http, &sim).await,
    ];
    assert_eq!(
        get(&http, &sim, &tokens[0], &path).await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            retry_after_of(get(&http, &sim, &tokens[0], &path).await).await,
            60
        );
    }
    // Had those refusals counted, the org's budget of 3 would be spent.
    assert_eq!(
        get(&http, &sim, &tokens[1], &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&http, &sim, &tokens[2], &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        retry_after_of(get(&http, &sim, &tokens[3], &path).await).await,
        60
    );
    // Nor did the org's refusal count against the fourth token: it has its whole budget.
    sim.state().advance_clock(Duration::from_secs(60));
    assert_eq!(
        get(&http, &sim, &tokens[3], &path).await.status(),
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn token_requests_count_against_no_budget() {
    let (sim, path) = frozen(SimConfig {
        rate_per_minute: 2,
        org_rate_per_minute: 3,
        ..small_org()
    })
    .await;
    let http = client();
    let first = issue_token(&http, &sim).await;
    assert_eq!(
        get(&http, &sim, &first, &path).await.status(),
        StatusCode::OK
    );
    // More token requests than either budget holds, in the middle of the first token's use.
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(issue_token(&http, &sim).await);
    }
    assert_eq!(
        get(&http, &sim, &first, &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        retry_after_of(get(&http, &sim, &first, &path).await).await,
        60
    );
    assert_eq!(
        get(&http, &sim, &others[0], &path).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        retry_after_of(get(&http, &sim, &others[1], &path).await).await,
        60
    );
    let token_requests = sim
        .state()
        .request_log()
        .iter()
        .filter(|r| r.path == "/oauth/token" && r.status == 200)
        .count();
    assert_eq!(token_requests, 5);
    sim.shutdown().await;
}

// ---- faults ----

async fn status_sequence(seed: u64, requests: usize) -> Vec<u16> {
    let sim = start(SimConfig {
        seed,
        faults: FaultConfig {
            status_rates: BTreeMap::from([(502, 0.2), (503, 0.2), (500, 0.1)]),
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let mut statuses = Vec::new();
    for _ in 0..requests {
        let response = get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await;
        let status = response.status().as_u16();
        if status != 200 {
            let (_, error) = error_of(response).await;
            let expected = match status {
                500 => "internal.server.error",
                502 => "bad.gateway",
                _ => "service.unavailable",
            };
            assert_eq!(error.code.as_deref(), Some(expected));
        }
        statuses.push(status);
    }
    sim.shutdown().await;
    statuses
}

#[tokio::test]
async fn injected_statuses_are_deterministic_per_seed() {
    let a = status_sequence(7, 40).await;
    let b = status_sequence(7, 40).await;
    let c = status_sequence(8, 40).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    for status in [200, 500, 502, 503] {
        assert!(a.contains(&status), "{status} in {a:?}");
    }
}

#[tokio::test]
async fn same_seed_same_org() {
    let ids = |sim: &SimHandle| {
        sim.state()
            .calls()
            .into_iter()
            .map(|c| c.conversation.id)
            .collect::<Vec<_>>()
    };
    let a = start(small_org()).await;
    let b = start(small_org()).await;
    let c = start(SimConfig {
        seed: 2,
        ..small_org()
    })
    .await;
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.state().queues(), b.state().queues());
    assert_ne!(ids(&a), ids(&c));
    let names: Vec<String> = a.state().queues().into_iter().map(|q| q.name).collect();
    assert_eq!(names, ["Sales", "Support", "Billing"]);
}

#[tokio::test]
async fn a_dropped_connection_is_a_connection_error_not_a_response() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            drop_rate: 1.0,
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let result = http
        .get(format!("{}/api/v2/conversations/calls/{cid}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await;
    let error = result.expect_err("no response");
    assert!(error.status().is_none());
    let log = sim.state().request_log();
    let last = log.last().unwrap();
    assert!(last.dropped);
    assert_eq!(last.status, 0);
    // The token endpoint is never faulted.
    token_after_drop(&http, &sim).await;
    sim.shutdown().await;
}

async fn token_after_drop(http: &Client, sim: &SimHandle) {
    assert!(!issue_token(http, sim).await.is_empty());
}

#[tokio::test]
async fn conflicts_are_409_and_write_nothing() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            conflict_rate: 1.0,
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let (status, error) = error_of(
        patch(
            &http,
            &sim,
            &token,
            &call_attributes_path(&cid, &pid),
            &json!({"attributes": {"k": "v"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error.code.as_deref()),
        (StatusCode::CONFLICT, Some("request.conflict"))
    );
    assert!(
        !customer_attributes(&sim.state().call(&cid).unwrap().conversation, &pid).contains_key("k")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_write_is_invisible_until_the_visibility_lag_has_passed() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            visibility_lag: Duration::from_secs(3600),
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let accepted = patch(
        &http,
        &sim,
        &token,
        &call_attributes_path(&cid, &pid),
        &json!({"attributes": {"tier": "gold"}}),
    )
    .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: ParticipantAttributes = accepted.json().await.unwrap();
    assert_eq!(
        accepted.attributes.get("tier").map(String::as_str),
        Some("gold")
    );

    let read = |http: Client, token: String, path: String, url: String| async move {
        let call: CallConversation = http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        call
    };
    let path = format!("/api/v2/conversations/calls/{cid}");
    let before = read(http.clone(), token.clone(), path.clone(), sim.url()).await;
    assert!(
        !customer_attributes(&before, &pid).contains_key("tier"),
        "not visible yet"
    );
    let truth = sim.state().call(&cid).unwrap();
    assert_eq!(
        customer_attributes(&truth.conversation, &pid)
            .get("tier")
            .map(String::as_str),
        Some("gold")
    );

    sim.state().advance_clock(Duration::from_secs(3600));
    let after = read(http.clone(), token.clone(), path, sim.url()).await;
    assert_eq!(
        customer_attributes(&after, &pid)
            .get("tier")
            .map(String::as_str),
        Some("gold")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn end_call_rate_ends_the_call_after_a_successful_get() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            end_call_rate: 1.0,
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let path = format!("/api/v2/conversations/calls/{cid}");
    let live: CallConversation = get(&http, &sim, &token, &path).await.json().await.unwrap();
    assert!(
        live.participants
            .iter()
            .any(|p| p.state == Some(ParticipantState::Connected))
    );
    assert!(sim.state().call(&cid).unwrap().ended);

    let ended: CallConversation = get(&http, &sim, &token, &path).await.json().await.unwrap();
    for participant in &ended.participants {
        assert_eq!(participant.state, Some(ParticipantState::Disconnected));
        assert!(participant.end_time.is_some());
    }
    let conversation: Conversation =
        get(&http, &sim, &token, &format!("/api/v2/conversations/{cid}"))
            .await
            .json()
            .await
            .unwrap();
    assert!(conversation.end_time.is_some());
    let (status, error) = error_of(
        patch(
            &http,
            &sim,
            &token,
            &call_attributes_path(&cid, &pid),
            &json!({"attributes": {"k": "v"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error.code.as_deref()),
        (StatusCode::BAD_REQUEST, Some("constraint.validation"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn drift_overwrites_the_written_key_after_the_202() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            drift: Some(DriftConfig {
                key: "tier".into(),
                value: "bronze".into(),
                rate: 1.0,
            }),
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    let path = call_attributes_path(&cid, &pid);
    let accepted: ParticipantAttributes = patch(
        &http,
        &sim,
        &token,
        &path,
        &json!({"attributes": {"tier": "gold", "campaign": "spring"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        accepted.attributes.get("tier").map(String::as_str),
        Some("gold")
    );
    let call: CallConversation = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/conversations/calls/{cid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let seen = customer_attributes(&call, &pid);
    assert_eq!(seen.get("tier").map(String::as_str), Some("bronze"));
    assert_eq!(seen.get("campaign").map(String::as_str), Some("spring"));

    // A write that does not name the key is left alone.
    patch(
        &http,
        &sim,
        &token,
        &path,
        &json!({"attributes": {"campaign": "autumn"}}),
    )
    .await;
    let call: CallConversation = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/conversations/calls/{cid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        customer_attributes(&call, &pid)
            .get("campaign")
            .map(String::as_str),
        Some("autumn")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_never_touch_the_token_endpoint_or_the_admin_surface() {
    let sim = start(SimConfig {
        faults: FaultConfig {
            status_rates: BTreeMap::from([(503, 1.0)]),
            ..FaultConfig::default()
        },
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let calls = http
        .get(format!("{}/__sim/calls", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(calls.status(), StatusCode::OK);
    let (cid, _) = first_customer(&sim);
    let (status, error) = error_of(
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error.code.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("service.unavailable"))
    );
    sim.shutdown().await;
}

// ---- analytics ----

#[tokio::test]
async fn analytics_pages_through_live_calls_once_each() {
    let sim = start(SimConfig {
        calls: 30,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let ended = sim.state().calls()[3].conversation.id.clone();
    assert!(sim.state().end_call(&ended));
    let live: BTreeSet<String> = sim
        .state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended)
        .map(|c| c.conversation.id)
        .collect();
    assert_eq!(live.len(), 29);

    let mut seen = Vec::new();
    for page in 1..=5 {
        let response = query(&http, &sim, &token, &live_calls_query(7, page)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let raw: Value = response.json().await.unwrap();
        let body: AnalyticsConversationQueryResponse = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(body.total_hits, Some(29));
        if page == 5 {
            assert_eq!(body.conversations.len(), 1);
        }
        for conversation in &body.conversations {
            assert!(conversation.conversation_end.is_none());
            for participant in &conversation.participants {
                assert!(participant.participant_id.is_some() && participant.purpose.is_some());
                assert_eq!(participant.sessions[0].media_type.as_deref(), Some("voice"));
            }
        }
        assert!(raw["conversations"].as_array().unwrap().iter().all(|c| {
            c["participants"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p.get("attributes").is_none())
        }));
        seen.extend(body.conversations.into_iter().map(|c| c.conversation_id));
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(unique, live);

    let beyond: Value = query(&http, &sim, &token, &live_calls_query(7, 6))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        beyond.get("conversations").is_none(),
        "an empty page omits `conversations`: {beyond}"
    );
    assert_eq!(beyond["totalHits"], 29);
    sim.shutdown().await;
}

#[tokio::test]
async fn analytics_filters_by_queue() {
    let sim = start(SimConfig {
        calls: 30,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let queue = sim.state().queues().remove(1);
    let expected: BTreeSet<String> = sim
        .state()
        .calls()
        .into_iter()
        .filter(|c| c.queue_id.as_deref() == Some(queue.id.as_str()))
        .map(|c| c.conversation.id)
        .collect();
    assert!(!expected.is_empty() && expected.len() < 30);
    let mut body = live_calls_query(100, 1);
    body["segmentFilters"][0]["predicates"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "dimension", "dimension": "queueId", "operator": "matches", "value": queue.id}));
    let response: AnalyticsConversationQueryResponse = query(&http, &sim, &token, &body)
        .await
        .json()
        .await
        .unwrap();
    let got: BTreeSet<String> = response
        .conversations
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(got, expected);
    sim.shutdown().await;
}

/// The live calls whose segments match `dimension` = `value`.
async fn live_ids_where(
    http: &Client,
    sim: &SimHandle,
    token: &str,
    dimension: &str,
    value: String,
) -> BTreeSet<String> {
    let mut body = live_calls_query(100, 1);
    body["segmentFilters"][0]["predicates"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "dimension", "dimension": dimension, "value": value}));
    let response: AnalyticsConversationQueryResponse =
        query(http, sim, token, &body).await.json().await.unwrap();
    response
        .conversations
        .into_iter()
        .map(|c| c.conversation_id)
        .collect()
}

#[tokio::test]
async fn analytics_filters_by_dialed_and_customer_number() {
    let sim = start(SimConfig {
        calls: 30,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let queue = sim.state().queues().remove(1);
    let calls = sim.state().calls();
    let of_queue: BTreeSet<String> = calls
        .iter()
        .filter(|c| c.queue_id.as_deref() == Some(queue.id.as_str()))
        .map(|c| c.conversation.id.clone())
        .collect();
    assert!(!of_queue.is_empty() && of_queue.len() < 30);
    let ids = |dimension, value| live_ids_where(&http, &sim, &token, dimension, value);
    assert_eq!(ids("dnis", format!("tel:{}", queue.number)).await, of_queue);
    let first = &calls[0].conversation;
    let ani = first.participants[0].ani.clone().expect("a customer's ani");
    assert_eq!(
        ids("ani", ani.clone()).await,
        BTreeSet::from([first.id.clone()]),
        "seeded numbers are 7 random digits: one call has {ani}"
    );
    assert_eq!(ids("direction", "inbound".to_owned()).await.len(), 30);
    sim.shutdown().await;
}

#[tokio::test]
async fn analytics_requires_a_valid_interval() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let mut missing = live_calls_query(10, 1);
    missing.as_object_mut().unwrap().remove("interval");
    let mut malformed = live_calls_query(10, 1);
    malformed["interval"] = json!("yesterday/today");
    for body in [missing, malformed] {
        let (status, error) = error_of(query(&http, &sim, &token, &body).await).await;
        assert_eq!(
            (status, error.code.as_deref()),
            (StatusCode::BAD_REQUEST, Some("invalid.date"))
        );
    }
    sim.shutdown().await;
}

// ---- admin surface ----

#[tokio::test]
async fn admin_surface_reads_and_steers_the_simulator() {
    let sim = start(small_org()).await;
    let http = client();
    let admin = |path: &str| format!("{}/__sim{path}", sim.url());

    let calls: Vec<Value> = http
        .get(admin("/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls.len(), 12);
    let queues: Vec<Value> = http
        .get(admin("/queues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queues.len(), 3);

    let id = calls[0]["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        http.post(admin(&format!("/calls/{id}/end")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(sim.state().call(&id).unwrap().ended);
    assert_eq!(
        http.post(admin("/calls/nope/end"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let faults = json!({"status_rates": {"503": 0.5}, "visibility_lag": "250ms"});
    assert_eq!(
        http.put(admin("/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let state_faults = sim.state().faults();
    assert_eq!(state_faults.status_rates, BTreeMap::from([(503, 0.5)]));
    assert_eq!(state_faults.visibility_lag, Duration::from_millis(250));

    let token = issue_token(&http, &sim).await;
    assert_eq!(
        http.post(admin("/tokens/expire"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = error_of(
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{id}"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let log: Vec<Value> = http
        .get(admin("/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 2, "admin requests are not logged: {log:?}");
    assert_eq!(
        http.post(admin("/reset")).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert!(sim.state().request_log().is_empty());
    assert_eq!(sim.state().faults(), FaultConfig::default());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_flow_sets_attributes_through_the_admin_surface_visible_at_once_and_unlogged() {
    let sim = start(small_org()).await;
    let http = client();
    let call = sim.state().calls().remove(0);
    let (id, participant) = (
        call.conversation.id.clone(),
        call.conversation.participants[0].id.clone(),
    );
    let url = |cid: &str, pid: &str| {
        format!(
            "{}/__sim/calls/{cid}/participants/{pid}/attributes",
            sim.url()
        )
    };
    let status = http
        .post(url(&id, &participant))
        .json(&json!({"tier": "flow"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let token = issue_token(&http, &sim).await;
    let read: Value = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/conversations/calls/{id}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let shown = read["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == participant.as_str())
        .unwrap();
    assert_eq!(
        shown["attributes"]["tier"], "flow",
        "a read sees it at once"
    );
    assert!(
        sim.state()
            .request_log()
            .iter()
            .all(|r| r.method != "PATCH"),
        "a flow is not a request of the API"
    );
    for (cid, pid) in [("nope", participant.as_str()), (id.as_str(), "nope")] {
        let status = http
            .post(url(cid, pid))
            .json(&json!({"tier": "flow"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    sim.shutdown().await;
}

// ---- wire shape ----

/// The compiled schemas of `schemas/`, compiled once per test (the `Conversation` one is large).
struct Schemas(std::collections::HashMap<&'static str, jsonschema::Validator>);

impl Schemas {
    fn load() -> Self {
        let names = [
            "CallConversation",
            "Conversation",
            "ParticipantAttributes",
            "ErrorBody",
            "AnalyticsConversationQueryResponse",
            "TokenResponse",
            "OAuthError",
        ];
        Self(
            names
                .into_iter()
                .map(|name| (name, compile_schema(name)))
                .collect(),
        )
    }

    fn errors(&self, name: &str, body: &Value) -> Vec<String> {
        self.0[name]
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}

fn compile_schema(name: &str) -> jsonschema::Validator {
    let path = format!(
        "{}/../../schemas/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(map) => map.values().any(contains_null),
        _ => false,
    }
}

async fn assert_valid(schemas: &Schemas, name: &str, response: Response) {
    assert!(is_json(&response), "{name}: application/json");
    correlation_id(&response);
    let body: Value = response.json().await.unwrap();
    assert!(!contains_null(&body), "{name}: no null in {body}");
    let errors = schemas.errors(name, &body);
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{body}");
}

#[test]
fn the_schemas_enforce_enums_and_reject_null() {
    let schemas = Schemas::load();
    let call = |participant: Value| json!({"id": "c", "participants": [participant]});
    assert!(
        schemas
            .errors(
                "CallConversation",
                &call(json!({"id": "p", "state": "connected"}))
            )
            .is_empty()
    );
    assert!(
        !schemas
            .errors(
                "CallConversation",
                &call(json!({"id": "p", "state": "hovering"}))
            )
            .is_empty()
    );
    assert!(
        !schemas
            .errors(
                "CallConversation",
                &call(json!({"id": "p", "endTime": null}))
            )
            .is_empty()
    );
    assert!(
        !schemas
            .errors("ParticipantAttributes", &json!({"attributes": {"k": 1}}))
            .is_empty()
    );
}

#[tokio::test]
async fn every_kind_of_response_matches_the_genesys_schemas_without_nulls() {
    let schemas = Schemas::load();
    // No rate limit here: the 429 is checked on a sim of its own below.
    let sim = start(SimConfig {
        rate_per_minute: 0,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let (id, secret) = sim.demo_credentials();
    let token_response = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_valid(&schemas, "TokenResponse", token_response).await;
    let oauth_error = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_valid(&schemas, "OAuthError", oauth_error).await;

    let token = issue_token(&http, &sim).await;
    let (cid, pid) = first_customer(&sim);
    patch(
        &http,
        &sim,
        &token,
        &call_attributes_path(&cid, &pid),
        &json!({"attributes": {"campaign": "spring", "tier": ""}}),
    )
    .await;
    let ended = sim.state().calls().last().unwrap().conversation.id.clone();
    sim.state().end_call(&ended);
    for call in sim.state().calls() {
        let id = &call.conversation.id;
        assert_valid(
            &schemas,
            "CallConversation",
            get(
                &http,
                &sim,
                &token,
                &format!("/api/v2/conversations/calls/{id}"),
            )
            .await,
        )
        .await;
        assert_valid(
            &schemas,
            "Conversation",
            get(&http, &sim, &token, &format!("/api/v2/conversations/{id}")).await,
        )
        .await;
    }
    assert_valid(
        &schemas,
        "ParticipantAttributes",
        patch(
            &http,
            &sim,
            &token,
            &call_attributes_path(&cid, &pid),
            &json!({"attributes": {"k": "v"}}),
        )
        .await,
    )
    .await;
    let mut all_calls = live_calls_query(100, 1);
    all_calls
        .as_object_mut()
        .unwrap()
        .remove("conversationFilters");
    assert_valid(
        &schemas,
        "AnalyticsConversationQueryResponse",
        query(&http, &sim, &token, &all_calls).await,
    )
    .await;
    assert_valid(
        &schemas,
        "AnalyticsConversationQueryResponse",
        query(&http, &sim, &token, &live_calls_query(100, 9)).await,
    )
    .await;

    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_valid(
        &schemas,
        "ErrorBody",
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{unknown}"),
        )
        .await,
    )
    .await;
    assert_valid(
        &schemas,
        "ErrorBody",
        http.get(format!("{}/api/v2/conversations/{cid}", sim.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_valid(
        &schemas,
        "ErrorBody",
        patch(
            &http,
            &sim,
            &token,
            &call_attributes_path(&cid, &pid),
            &json!({"attributes": {"k": 1}}),
        )
        .await,
    )
    .await;
    sim.state().set_faults(FaultConfig {
        status_rates: BTreeMap::from([(502, 0.5), (504, 0.5)]),
        ..FaultConfig::default()
    });
    assert_valid(
        &schemas,
        "ErrorBody",
        get(
            &http,
            &sim,
            &token,
            &format!("/api/v2/conversations/calls/{cid}"),
        )
        .await,
    )
    .await;
    sim.state().set_faults(FaultConfig::default());

    // Both shapes' 429s, and the org limit's.
    for (limit_shape, org_rate_per_minute) in [
        (LimitShape::Window, 0),
        (LimitShape::Bucket, 0),
        (LimitShape::Window, 1),
    ] {
        let limited = start(SimConfig {
            rate_per_minute: 1,
            limit_shape,
            burst: 1,
            org_rate_per_minute,
            ..small_org()
        })
        .await;
        let (lcid, _) = first_customer(&limited);
        let path = format!("/api/v2/conversations/calls/{lcid}");
        let limited_token = issue_token(&http, &limited).await;
        get(&http, &limited, &limited_token, &path).await;
        // Over the org limit the request comes from a fresh token.
        let second_token = if org_rate_per_minute > 0 {
            issue_token(&http, &limited).await
        } else {
            limited_token
        };
        let response = get(&http, &limited, &second_token, &path).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_valid(&schemas, "ErrorBody", response).await;
        limited.shutdown().await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn timestamps_are_iso_8601_utc_with_millis() {
    let sim = start(small_org()).await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (cid, _) = first_customer(&sim);
    let call: CallConversation = get(
        &http,
        &sim,
        &token,
        &format!("/api/v2/conversations/calls/{cid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    for participant in &call.participants {
        let start = participant.start_time.as_deref().unwrap();
        assert_eq!(start.len(), "2026-11-24T10:15:30.123Z".len(), "{start}");
        assert!(
            start.ends_with('Z') && start.as_bytes()[19] == b'.',
            "{start}"
        );
        humantime::parse_rfc3339(start).unwrap();
    }
    sim.shutdown().await;
}

// ---- org limits ----

const LIMITS_PATH: &str = "/api/v2/organizations/limits/namespaces";

#[tokio::test]
async fn org_limits_list_the_per_token_budget_in_the_configured_namespace_only() {
    let sim = start(SimConfig {
        rate_per_minute: 600,
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let response = get(&http, &sim, &token, &format!("{LIMITS_PATH}/platform-api")).await;
    assert_eq!(response.status(), StatusCode::OK);
    correlation_id(&response);
    assert!(is_json(&response));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"entities": [{
            "key": "client.credentials.token.rate.per.minute",
            "namespace": "platform-api",
            "value": 600
        }]})
    );
    let listing: genesys_models::LimitsEntityListing = serde_json::from_value(body).unwrap();
    assert_eq!(listing.entities.len(), 1);

    let (status, error) =
        error_of(get(&http, &sim, &token, &format!("{LIMITS_PATH}/other")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error.code.as_deref(), Some("not.found"));

    // Counted and logged like any API request, and behind the same bearer auth.
    let log = sim.state().request_log();
    assert_eq!(
        log.iter()
            .filter(|r| r.path.starts_with(LIMITS_PATH) && r.token_id.is_some())
            .count(),
        2
    );
    let anonymous = http
        .get(format!("{}{LIMITS_PATH}/platform-api", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[tokio::test]
async fn org_limits_follow_the_configured_namespace_and_can_be_forbidden() {
    let sim = start(SimConfig {
        limits_namespace: "custom".into(),
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let (status, _) =
        error_of(get(&http, &sim, &token, &format!("{LIMITS_PATH}/platform-api")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = get(&http, &sim, &token, &format!("{LIMITS_PATH}/custom"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["entities"][0]["value"], 300);
    assert_eq!(body["entities"][0]["namespace"], "custom");
    sim.shutdown().await;

    let sim = start(SimConfig {
        limits_forbidden: true,
        ..small_org()
    })
    .await;
    let token = issue_token(&http, &sim).await;
    let (status, error) =
        error_of(get(&http, &sim, &token, &format!("{LIMITS_PATH}/platform-api")).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.code.as_deref(), Some("missing.permissions"));
    assert!(
        error
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Unable to perform the requested action.")),
        "{error:?}"
    );
    let schemas = Schemas::load();
    let response = get(&http, &sim, &token, &format!("{LIMITS_PATH}/platform-api")).await;
    assert_valid(&schemas, "ErrorBody", response).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn org_limits_without_a_per_token_limit_list_nothing() {
    let sim = start(SimConfig {
        rate_per_minute: 0,
        ..small_org()
    })
    .await;
    let http = client();
    let token = issue_token(&http, &sim).await;
    let body: Value = get(&http, &sim, &token, &format!("{LIMITS_PATH}/platform-api"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"entities": []}));
    sim.shutdown().await;
}
