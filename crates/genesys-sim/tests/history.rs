//! History: calls that ended before the simulator started, and the multi-id analytics read that
//! tells them from live ones, over real HTTP on loopback.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use genesys_models::{
    AnalyticsConversationMultiGetResponse, AnalyticsConversationQueryResponse, CallConversation,
    ErrorBody, ParticipantState, TokenResponse,
};
use genesys_sim::{SeedCall, SeedParticipant, SimConfig, SimHandle, Simulator};
use reqwest::{Client, StatusCode};
use serde_json::json;

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

async fn token(http: &Client, sim: &SimHandle) -> String {
    let (id, secret) = sim.demo_credentials();
    http.post(format!("{}/oauth/token", sim.url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .json::<TokenResponse>()
        .await
        .expect("token body")
        .access_token
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new()
}

fn history_org(history: usize) -> SimConfig {
    SimConfig {
        calls: 5,
        history,
        ..SimConfig::default()
    }
}

async fn details(http: &Client, sim: &SimHandle, token: &str, ids: &[&str]) -> reqwest::Response {
    http.get(format!(
        "{}/api/v2/analytics/conversations/details",
        sim.url()
    ))
    .query(&[("id", ids.join(","))])
    .bearer_auth(token)
    .send()
    .await
    .expect("request")
}

#[tokio::test]
async fn history_calls_ended_hours_to_weeks_ago_and_read_as_disconnected() {
    let sim = start(history_org(40)).await;
    let calls = sim.state().calls();
    let history: Vec<_> = calls.iter().filter(|c| c.ended).collect();
    assert_eq!(history.len(), 40);
    assert_eq!(calls.len() - history.len(), 5, "the live org is unchanged");
    let (http, token) = (client(), token(&client(), &sim).await);
    for call in history.iter().take(5) {
        let read: CallConversation = http
            .get(format!(
                "{}/api/v2/conversations/calls/{}",
                sim.url(),
                call.conversation.id
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("a call");
        assert!(
            read.participants
                .iter()
                .all(|p| p.state == Some(ParticipantState::Disconnected)),
            "{read:?}"
        );
        let ended = read
            .participants
            .iter()
            .filter_map(|p| p.end_time.as_deref())
            .map(|t| humantime::parse_rfc3339_weak(t).expect("a timestamp"))
            .max()
            .expect("an end");
        let ago = SystemTime::now()
            .duration_since(ended)
            .expect("in the past");
        assert!(
            ago >= Duration::from_secs(3_500) && ago <= Duration::from_secs(22 * 86_400),
            "{ago:?}"
        );
    }
    // The listing of live calls leaves them out.
    let now = SystemTime::now();
    let interval = format!(
        "{}/{}",
        humantime::format_rfc3339_seconds(now - Duration::from_secs(30 * 86_400)),
        humantime::format_rfc3339_seconds(now + Duration::from_secs(60))
    );
    let listed: AnalyticsConversationQueryResponse = http
        .post(format!(
            "{}/api/v2/analytics/conversations/details/query",
            sim.url()
        ))
        .bearer_auth(&token)
        .json(&json!({
            "interval": interval,
            "conversationFilters": [{"type": "and", "predicates": [
                {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}
            ]}],
            "paging": {"pageSize": 100, "pageNumber": 1}
        }))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("a listing");
    assert_eq!(listed.conversations.len(), 5);
    assert!(
        listed
            .conversations
            .iter()
            .all(|c| c.conversation_end.is_none())
    );
}

#[tokio::test]
async fn the_multi_id_read_answers_live_and_ended_calls_and_leaves_unknown_ids_out() {
    let sim = start(history_org(3)).await;
    let calls = sim.state().calls();
    let ended: Vec<&str> = calls
        .iter()
        .filter(|c| c.ended)
        .map(|c| c.conversation.id.as_str())
        .collect();
    let live: Vec<&str> = calls
        .iter()
        .filter(|c| !c.ended)
        .map(|c| c.conversation.id.as_str())
        .collect();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (http, token) = (client(), token(&client(), &sim).await);
    let mut ids = vec![ended[0], live[0], unknown, ended[1]];
    ids.push(ended[0]);
    let response = details(&http, &sim, &token, &ids).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: AnalyticsConversationMultiGetResponse = response.json().await.expect("body");
    let got: Vec<(&str, bool)> = answer
        .conversations
        .iter()
        .map(|c| (c.conversation_id.as_str(), c.conversation_end.is_some()))
        .collect();
    assert_eq!(
        got,
        vec![(ended[0], true), (live[0], false), (ended[1], true)]
    );
    let log = sim.state().request_log();
    let logged = log.last().expect("logged");
    assert_eq!(logged.path, "/api/v2/analytics/conversations/details");
    assert!(
        logged.query.as_deref().is_some_and(|q| q.contains(unknown)),
        "{logged:?}"
    );
}

#[tokio::test]
async fn more_ids_than_the_limit_are_refused_with_an_error_body() {
    let sim = start(SimConfig {
        details_max_ids: 2,
        ..history_org(3)
    })
    .await;
    let ids: Vec<String> = sim
        .state()
        .calls()
        .into_iter()
        .map(|c| c.conversation.id)
        .take(3)
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (http, token) = (client(), token(&client(), &sim).await);
    let response = details(&http, &sim, &token, &ids).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: ErrorBody = response.json().await.expect("an ErrorBody");
    assert_eq!(body.code.as_deref(), Some("constraint.validation"));
    assert_eq!(
        details(&http, &sim, &token, &ids[..2]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_call_younger_than_the_analytics_lag_is_not_in_the_multi_id_read() {
    let sim = start(SimConfig {
        analytics_lag: Duration::from_secs(300),
        ..history_org(1)
    })
    .await;
    let id = "11111111-2222-4333-8444-555555555555";
    sim.state().add_call(SeedCall {
        id: id.to_owned(),
        ended: false,
        participants: vec![SeedParticipant {
            id: "22222222-3333-4444-8555-666666666666".to_owned(),
            purpose: "customer".to_owned(),
            user_id: None,
            connected: true,
            attributes: Default::default(),
        }],
    });
    let ended = sim
        .state()
        .calls()
        .into_iter()
        .find(|c| c.ended)
        .expect("history")
        .conversation
        .id;
    let (http, token) = (client(), token(&client(), &sim).await);
    let answer: AnalyticsConversationMultiGetResponse = details(&http, &sim, &token, &[id, &ended])
        .await
        .json()
        .await
        .expect("body");
    let got: Vec<&str> = answer
        .conversations
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    assert_eq!(got, vec![ended.as_str()]);
}

/// The customer's leg of a call (the first participant of purpose `customer`).
fn customer(call: &CallConversation) -> &genesys_models::CallMediaParticipant {
    call.participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .expect("a customer")
}

#[tokio::test]
async fn seeded_and_history_calls_carry_the_customer_s_and_the_queue_s_numbers_everywhere() {
    let sim = start(SimConfig {
        queue_numbers: vec!["+18005550199".to_owned()],
        ..history_org(4)
    })
    .await;
    let state = sim.state();
    let queues = state.queues();
    assert_eq!(queues[0].number, "+18005550199", "configured");
    assert_eq!(queues[1].number, "+18005550101", "generated: 0100 + index");
    let (http, token) = (client(), token(&client(), &sim).await);
    let calls = state.calls();
    assert!(calls.iter().any(|c| c.ended) && calls.iter().any(|c| !c.ended));
    for call in &calls {
        let queue = queues
            .iter()
            .find(|q| Some(&q.id) == call.queue_id.as_ref())
            .expect("every generated call is in a queue");
        // The call read.
        let read: CallConversation = http
            .get(format!(
                "{}/api/v2/conversations/calls/{}",
                sim.url(),
                call.conversation.id
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("CallConversation");
        let leg = customer(&read);
        let address = leg.address.clone().expect("an address");
        assert!(
            address.starts_with("tel:+1555") && address.len() == 16,
            "{address}"
        );
        assert_eq!(leg.ani.as_ref(), Some(&address));
        assert_eq!(leg.dnis, Some(format!("tel:{}", queue.number)));
        assert_eq!(leg.direction.as_deref(), Some("inbound"));
        // Agents' legs carry no customer numbers.
        for agent in read
            .participants
            .iter()
            .filter(|p| p.purpose.as_deref() == Some("agent"))
        {
            assert_eq!((&agent.ani, &agent.dnis), (&None, &None));
        }
        // The analytics view of the same call.
        let answer: AnalyticsConversationMultiGetResponse =
            details(&http, &sim, &token, &[call.conversation.id.as_str()])
                .await
                .json()
                .await
                .expect("body");
        let session = answer.conversations[0]
            .participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some("customer"))
            .and_then(|p| p.sessions.first())
            .expect("a customer session");
        assert_eq!(session.ani.as_ref(), Some(&address));
        assert_eq!(session.dnis, Some(format!("tel:{}", queue.number)));
        assert_eq!(session.direction.as_deref(), Some("inbound"));
    }
    // Numbers are seeded: the same seed, the same numbers.
    let again = start(history_org(4)).await;
    let numbers = |calls: &[genesys_sim::SimCall]| -> Vec<Option<String>> {
        calls
            .iter()
            .map(|c| customer(&c.conversation).ani.clone())
            .collect()
    };
    assert_eq!(numbers(&calls), numbers(&again.state().calls()));
}
