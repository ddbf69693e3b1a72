//! The Notification API of the simulator over real HTTP and a real WebSocket client on loopback:
//! channels, subscriptions, the socket's messages, queue call events, arrivals and expiry.
//!
//! No sleeps: tests await messages (with a generous timeout only as a failure guard), or freeze
//! the simulator's clock and advance it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use futures::{SinkExt, StreamExt};
use genesys_models::CallConversation;
use genesys_models::notifications::{
    AttributeUpdateEvent, Channel, ChannelTopic, ChannelTopicEntityListing, HEARTBEAT_MESSAGE,
    METADATA_TOPIC, NotificationEnvelope, SOCKET_CLOSING_TOPIC, conversation_attributes_topic,
    queue_calls_topic,
};
use genesys_models::{ErrorBody, ParticipantState, TokenResponse};
use genesys_sim::{ArrivalRate, FaultConfig, SimConfig, SimHandle, SimState, Simulator};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Only a guard against a hung test: every wait normally ends long before.
const GUARD: Duration = Duration::from_secs(10);

// ---- helpers ----

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

/// `config` without the calls generated at start, its clock moving only when a test advances it.
async fn frozen(config: SimConfig) -> SimHandle {
    let sim = start(SimConfig { calls: 0, ..config }).await;
    sim.state().freeze_clock();
    sim
}

/// Installs the TLS provider reqwest needs even for http (already installed is fine).
fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().build().expect("http client")
}

struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(sim: &SimHandle) -> Self {
        let (id, secret) = sim.demo_credentials();
        Self::for_client(sim, &id, &secret).await
    }

    async fn for_client(sim: &SimHandle, id: &str, secret: &str) -> Self {
        let http = http();
        let token = http
            .post(format!("{}/oauth/token", sim.url()))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request")
            .json::<TokenResponse>()
            .await
            .expect("token body")
            .access_token;
        Self {
            http,
            base: sim.url(),
            token,
        }
    }

    async fn create_channel(&self) -> Channel {
        let response = self
            .http
            .post(format!("{}/api/v2/notifications/channels", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("Channel")
    }

    async fn head_channel(&self, id: &str) -> StatusCode {
        self.http
            .head(format!("{}/api/v2/notifications/channels/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
            .status()
    }

    /// `method` on the channel's subscriptions with `topics` as the body.
    async fn subscriptions(
        &self,
        method: reqwest::Method,
        channel: &str,
        query: &str,
        topics: &[String],
    ) -> reqwest::Response {
        let body: Vec<ChannelTopic> = topics.iter().map(ChannelTopic::named).collect();
        self.http
            .request(
                method,
                format!(
                    "{}/api/v2/notifications/channels/{channel}/subscriptions{query}",
                    self.base
                ),
            )
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn subscribe(&self, channel: &str, topics: &[String]) -> ChannelTopicEntityListing {
        let response = self
            .subscriptions(reqwest::Method::POST, channel, "", topics)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("ChannelTopicEntityListing")
    }

    async fn topics(&self, channel: &str) -> Vec<String> {
        let response = self
            .subscriptions(reqwest::Method::GET, channel, "", &[])
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let listing: ChannelTopicEntityListing = response.json().await.expect("listing");
        listing.entities.into_iter().map(|t| t.id).collect()
    }

    async fn patch_attributes(&self, call: &str, participant: &str, attributes: Value) {
        let response = self
            .http
            .patch(format!(
                "{}/api/v2/conversations/calls/{call}/participants/{participant}/attributes",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "attributes": attributes }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    /// Ids of the live calls the analytics details query lists.
    async fn listed_calls(&self) -> Vec<String> {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let body = json!({
            "interval": format!("{}/{}",
                humantime::format_rfc3339_millis(now - day),
                humantime::format_rfc3339_millis(now + day)),
            "conversationFilters": [{"type": "and", "predicates": [
                {"type": "dimension", "dimension": "conversationEnd", "operator": "notExists"}
            ]}],
            "paging": {"pageSize": 100, "pageNumber": 1}
        });
        let response = self
            .http
            .post(format!(
                "{}/api/v2/analytics/conversations/details/query",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        body["conversations"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| c["conversationId"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn error_of(response: reqwest::Response) -> (StatusCode, ErrorBody) {
    let status = response.status();
    (status, response.json().await.expect("ErrorBody"))
}

fn queue_ids(state: &SimState) -> Vec<String> {
    state.queues().into_iter().map(|q| q.id).collect()
}

async fn connect(channel: &Channel) -> Socket {
    let (socket, _) = tokio::time::timeout(
        GUARD,
        tokio_tungstenite::connect_async(channel.connect_uri.as_str()),
    )
    .await
    .expect("connects in time")
    .expect("WebSocket handshake");
    socket
}

/// The next frame, whatever it is (`None` when the stream ended).
async fn next_frame(
    socket: &mut Socket,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    tokio::time::timeout(GUARD, socket.next())
        .await
        .expect("a frame in time")
}

/// The next message, heartbeats included.
async fn next_message(socket: &mut Socket) -> NotificationEnvelope {
    loop {
        match next_frame(socket).await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).expect("a NotificationEnvelope");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// The next message that is not a `channel.metadata` one.
async fn next_event(socket: &mut Socket) -> NotificationEnvelope {
    loop {
        let message = next_message(socket).await;
        if message.topic_name != METADATA_TOPIC {
            return message;
        }
    }
}

fn call_of(event: &NotificationEnvelope) -> CallConversation {
    serde_json::from_value(event.event_body.clone()).expect("a queue call event")
}

/// Asserts the socket gets a close frame next (after any `channel.metadata` message).
async fn expect_close(socket: &mut Socket) {
    loop {
        match next_frame(socket).await {
            Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) if text.as_str().contains(METADATA_TOPIC) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A channel of the demo client subscribed to `queue`'s calls, with a socket.
async fn listening(api: &Api, queue: &str) -> (Channel, Socket) {
    let channel = api.create_channel().await;
    api.subscribe(&channel.id, &[queue_calls_topic(queue)])
        .await;
    let socket = connect(&channel).await;
    (channel, socket)
}

// ---- channels ----

#[tokio::test]
async fn a_channel_is_created_checked_with_head_and_the_21st_evicts_the_least_recently_used() {
    let sim = start(SimConfig {
        calls: 0,
        clients: vec![
            ("a".to_owned(), "a-secret".to_owned()),
            ("b".to_owned(), "b-secret".to_owned()),
        ],
        ..SimConfig::default()
    })
    .await;
    let api = Api::for_client(&sim, "a", "a-secret").await;
    let other_client = Api::for_client(&sim, "b", "b-secret").await;
    let queue = queue_ids(&sim.state())[0].clone();

    let first = api.create_channel().await;
    assert_eq!(
        first.connect_uri,
        format!("ws://{}/channels/{}", sim.addr(), first.id)
    );
    let expires = first.expires.as_deref().expect("expires");
    let expires = humantime::parse_rfc3339_weak(expires).expect("ISO-8601");
    let ttl = expires
        .duration_since(SystemTime::now())
        .expect("in the future");
    assert!(ttl > Duration::from_secs(23 * 3600), "{ttl:?}");
    assert_eq!(api.head_channel(&first.id).await, StatusCode::OK);
    assert_eq!(
        api.head_channel("00000000-0000-4000-8000-000000000000")
            .await,
        StatusCode::NOT_FOUND
    );

    let second = api.create_channel().await;
    // Connecting uses the second, subscribing then uses the first: the second is now the least
    // recently used, though not the oldest.
    let mut evicted_socket = connect(&second).await;
    api.subscribe(&first.id, &[queue_calls_topic(&queue)]).await;
    let mut channels = vec![first, second];
    for _ in 2..20 {
        channels.push(api.create_channel().await);
    }
    // Another client's channels do not count against this client's 20.
    let theirs = other_client.create_channel().await;

    let twenty_first = api.create_channel().await;

    assert_eq!(
        api.head_channel(&channels[1].id).await,
        StatusCode::NOT_FOUND
    );
    expect_close(&mut evicted_socket).await;
    for channel in channels.iter().filter(|c| c.id != channels[1].id) {
        assert_eq!(api.head_channel(&channel.id).await, StatusCode::OK);
    }
    assert_eq!(api.head_channel(&twenty_first.id).await, StatusCode::OK);
    assert_eq!(other_client.head_channel(&theirs.id).await, StatusCode::OK);
    let status = sim.state().notification_status();
    assert_eq!(status.channels.len(), 21);
    assert_eq!(
        status
            .channels
            .iter()
            .filter(|c| c.client_id == "a")
            .count(),
        20
    );
}

#[tokio::test]
async fn channel_endpoints_need_a_token_and_are_logged_like_the_rest_of_the_api() {
    let sim = start(SimConfig {
        calls: 0,
        ..SimConfig::default()
    })
    .await;
    let http = http();
    let response = http
        .post(format!("{}/api/v2/notifications/channels", sim.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let api = Api::new(&sim).await;
    let channel = api.create_channel().await;
    let _socket = connect(&channel).await;
    let paths: Vec<String> = sim
        .state()
        .request_log()
        .into_iter()
        .map(|r| r.path)
        .collect();
    // The socket is not an API request: it is not in the log.
    assert_eq!(
        paths,
        [
            "/api/v2/notifications/channels",
            "/oauth/token",
            "/api/v2/notifications/channels"
        ]
    );
}

// ---- subscriptions ----

#[tokio::test]
async fn subscriptions_are_added_replaced_listed_and_deleted() {
    let sim = start(SimConfig {
        calls: 0,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let queues = queue_ids(&sim.state());
    let topic = |i: usize| queue_calls_topic(&queues[i]);
    let channel = api.create_channel().await;

    let listing = api.subscribe(&channel.id, &[topic(0)]).await;
    assert_eq!(listing.entities.len(), 1);
    assert_eq!(listing.entities[0].id, topic(0));
    assert_eq!(listing.entities[0].state.as_deref(), Some("Permitted"));
    api.subscribe(&channel.id, &[topic(1)]).await;
    let mut both = vec![topic(0), topic(1)];
    both.sort();
    assert_eq!(api.topics(&channel.id).await, both);

    let replaced = api
        .subscriptions(reqwest::Method::PUT, &channel.id, "", &[topic(2)])
        .await;
    assert_eq!(replaced.status(), StatusCode::OK);
    assert_eq!(api.topics(&channel.id).await, [topic(2)]);

    let deleted = api
        .subscriptions(reqwest::Method::DELETE, &channel.id, "", &[])
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(api.topics(&channel.id).await.is_empty());

    let unknown = "00000000-0000-4000-8000-000000000000";
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = api.subscriptions(method, unknown, "", &[topic(0)]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_unknown_queue_or_topic_fails_the_whole_request_unless_errors_are_ignored() {
    let sim = start(SimConfig {
        calls: 0,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let known = queue_calls_topic(&queue_ids(&sim.state())[0]);
    let unknown_queue = queue_calls_topic("00000000-0000-4000-8000-000000000000");
    let unsupported = "v2.users.someone.presence".to_owned();
    let channel = api.create_channel().await;

    let (status, error) = error_of(
        api.subscriptions(
            reqwest::Method::POST,
            &channel.id,
            "",
            &[known.clone(), unknown_queue.clone()],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.code.as_deref(), Some("missing.permissions"));
    let (status, _) = error_of(
        api.subscriptions(
            reqwest::Method::PUT,
            &channel.id,
            "",
            &[known.clone(), unsupported.clone()],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        api.topics(&channel.id).await.is_empty(),
        "a failed request subscribes nothing"
    );

    let response = api
        .subscriptions(
            reqwest::Method::POST,
            &channel.id,
            "?ignoreErrors=true",
            &[known.clone(), unknown_queue.clone(), unsupported.clone()],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let listing: ChannelTopicEntityListing = response.json().await.expect("listing");
    let state_of = |topic: &str| {
        listing
            .entities
            .iter()
            .find(|t| t.id == topic)
            .and_then(|t| t.state.clone())
    };
    assert_eq!(state_of(&known).as_deref(), Some("Permitted"));
    assert_eq!(state_of(&unknown_queue).as_deref(), Some("Rejected"));
    assert_eq!(state_of(&unsupported).as_deref(), Some("Rejected"));
    assert!(
        listing
            .entities
            .iter()
            .filter(|t| t.state.as_deref() == Some("Rejected"))
            .all(|t| t.rejection_reason.is_some())
    );
    assert_eq!(api.topics(&channel.id).await, std::slice::from_ref(&known));
    // The official Python SDK writes the flag as a Python bool.
    let response = api
        .subscriptions(
            reqwest::Method::POST,
            &channel.id,
            "?ignoreErrors=True",
            &[unknown_queue],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.topics(&channel.id).await, [known]);
}

#[tokio::test]
async fn more_than_1000_topics_on_a_channel_is_a_400_that_changes_nothing() {
    let sim = start(SimConfig {
        calls: 0,
        queues: 1001,
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let topics: Vec<String> = queue_ids(&sim.state())
        .iter()
        .map(|q| queue_calls_topic(q))
        .collect();
    let channel = api.create_channel().await;

    let response = api
        .subscriptions(reqwest::Method::PUT, &channel.id, "", &topics[..1000])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, error) = error_of(
        api.subscriptions(
            reqwest::Method::POST,
            &channel.id,
            "?ignoreErrors=true",
            &topics[1000..],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error.message.unwrap_or_default().contains("1000"));
    let (status, _) = error_of(
        api.subscriptions(reqwest::Method::PUT, &channel.id, "", &topics)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(api.topics(&channel.id).await.len(), 1000);
}

// ---- events ----

#[tokio::test]
async fn an_arriving_call_is_sent_to_the_sockets_subscribed_to_its_queue_only() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queues = queue_ids(&state);
    let (first, mut first_socket) = listening(&api, &queues[0]).await;
    let (_, mut second_socket) = listening(&api, &queues[1]).await;

    let id = state.arrive_call(Some(&queues[0])).expect("a queue");

    let event = next_event(&mut first_socket).await;
    assert_eq!(event.topic_name, queue_calls_topic(&queues[0]));
    assert_eq!(event.version.as_deref(), Some("2"));
    assert!(
        event
            .metadata
            .as_ref()
            .and_then(|m| m.correlation_id.as_ref())
            .is_some()
    );
    let call = call_of(&event);
    assert_eq!(call.id, id);
    let customer = call
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .expect("a customer");
    assert_eq!(customer.state, Some(ParticipantState::Connected));
    assert_eq!(
        customer.queue.as_ref().and_then(|q| q.id.as_deref()),
        Some(queues[0].as_str())
    );
    assert!(customer.attributes.is_empty());
    assert!(
        call.participants
            .iter()
            .any(|p| p.purpose.as_deref() == Some("acd"))
    );

    // The other socket's first event is the call of its own queue, not the first one.
    let other = state.arrive_call(Some(&queues[1])).expect("a queue");
    assert_eq!(call_of(&next_event(&mut second_socket).await).id, other);
    let status = state.notification_status();
    let sent = |channel: &str| {
        status
            .channels
            .iter()
            .find(|c| c.id == channel)
            .map(|c| c.events_sent)
    };
    assert_eq!(sent(&first.id), Some(1));
    assert_eq!(status.events_sent, 2);
    let listed = state.call(&id).expect("listed by the admin surface");
    assert!(listed.arrived_at_ms.is_some());
}

#[tokio::test]
async fn an_agent_answering_is_a_participant_change_event() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    next_event(&mut socket).await;

    let answered = http()
        .post(format!("{}/__sim/calls/{id}/answer", sim.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(answered.status(), StatusCode::NO_CONTENT);

    let call = call_of(&next_event(&mut socket).await);
    let state_of = |purpose: &str| {
        call.participants
            .iter()
            .find(|p| p.purpose.as_deref() == Some(purpose))
            .and_then(|p| p.state.clone())
    };
    assert_eq!(state_of("acd"), Some(ParticipantState::Disconnected));
    assert_eq!(state_of("agent"), Some(ParticipantState::Connected));
    assert_eq!(state_of("customer"), Some(ParticipantState::Connected));
    assert!(!state.answer_call(&id), "answered once");
}

#[tokio::test]
async fn a_patch_is_published_once_it_is_visible_after_the_lag() {
    let sim = frozen(SimConfig {
        faults: FaultConfig {
            visibility_lag: Duration::from_millis(500),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    let arrival = call_of(&next_event(&mut socket).await);
    let customer = arrival.participants[0].id.clone();

    api.patch_attributes(&id, &customer, json!({"campaign": "spring"}))
        .await;
    assert_eq!(state.notification_status().events_published, 1);
    state.advance_clock(Duration::from_millis(499));
    assert_eq!(
        state.notification_status().events_published,
        1,
        "not visible yet: nothing published"
    );
    state.advance_clock(Duration::from_millis(1));

    let event = call_of(&next_event(&mut socket).await);
    assert_eq!(event.id, id);
    assert_eq!(event.participants[0].attributes["campaign"], "spring");
    let call = state.call(&id).expect("the call");
    let (arrived, tagged) = (
        call.arrived_at_ms.expect("arrived"),
        call.attributes_visible_at_ms.expect("tagged"),
    );
    assert_eq!(tagged - arrived, 500);
}

#[tokio::test]
async fn a_flow_overwriting_a_write_is_a_second_event() {
    let sim = frozen(SimConfig {
        faults: FaultConfig {
            drift: Some(genesys_sim::DriftConfig {
                key: "campaign".to_owned(),
                value: "flow".to_owned(),
                rate: 1.0,
            }),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    let customer = call_of(&next_event(&mut socket).await).participants[0]
        .id
        .clone();

    api.patch_attributes(&id, &customer, json!({"campaign": "spring"}))
        .await;

    let written = call_of(&next_event(&mut socket).await);
    assert_eq!(written.participants[0].attributes["campaign"], "spring");
    let overwritten = call_of(&next_event(&mut socket).await);
    assert_eq!(overwritten.participants[0].attributes["campaign"], "flow");
}

#[tokio::test]
async fn a_visible_write_is_an_attribute_event_on_its_conversation_topic_and_a_flow_s_is_another() {
    let sim = frozen(SimConfig {
        faults: FaultConfig {
            drift: Some(genesys_sim::DriftConfig {
                key: "campaign".to_owned(),
                value: "flow".to_owned(),
                rate: 1.0,
            }),
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let id = state.arrive_call(None).expect("a queue");
    let call = state.call(&id).expect("the call").conversation;
    let customer = call.participants[0].id.clone();
    let channel = api.create_channel().await;
    // A conversation that does not exist is accepted too: it never publishes.
    let unknown = conversation_attributes_topic("00000000-0000-4000-8000-000000000000");
    let listing = api
        .subscribe(
            &channel.id,
            &[conversation_attributes_topic(&call.id), unknown],
        )
        .await;
    assert!(
        listing
            .entities
            .iter()
            .all(|t| t.state.as_deref() == Some("Permitted")),
        "{listing:?}"
    );
    let mut socket = connect(&channel).await;

    api.patch_attributes(&call.id, &customer, json!({"campaign": "spring"}))
        .await;

    for expected in ["spring", "flow"] {
        let envelope = next_event(&mut socket).await;
        assert_eq!(envelope.topic_name, conversation_attributes_topic(&call.id));
        let event: AttributeUpdateEvent = serde_json::from_value(envelope.event_body).unwrap();
        assert_eq!(event.conversation_id, call.id);
        assert_eq!(event.participant_id, customer);
        assert_eq!(event.attributes["campaign"], expected);
        assert!(event.event_time.is_some());
    }
}

#[tokio::test]
async fn with_attribute_events_off_a_patch_publishes_nothing() {
    let sim = frozen(SimConfig {
        attribute_events: false,
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    let customer = call_of(&next_event(&mut socket).await).participants[0]
        .id
        .clone();

    api.patch_attributes(&id, &customer, json!({"campaign": "spring"}))
        .await;
    assert!(state.end_call(&id));

    // The next event is the end, which shows the write: the write itself published nothing.
    let ended = call_of(&next_event(&mut socket).await);
    assert!(
        ended
            .participants
            .iter()
            .all(|p| p.state == Some(ParticipantState::Disconnected))
    );
    assert_eq!(ended.participants[0].attributes["campaign"], "spring");
    assert_eq!(state.notification_status().events_published, 2);
}

#[tokio::test]
async fn a_call_ends_after_its_duration_is_published_and_leaves_the_analytics_listing() {
    let sim = frozen(SimConfig {
        call_duration: Some(Duration::from_secs(180)),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    next_event(&mut socket).await;
    assert_eq!(api.listed_calls().await, std::slice::from_ref(&id));

    // The duration is 3 min plus or minus 10 %.
    state.advance_clock(Duration::from_secs(161));
    assert!(!state.call(&id).expect("the call").ended);
    state.advance_clock(Duration::from_secs(38));

    let ended = call_of(&next_event(&mut socket).await);
    assert_eq!(ended.id, id);
    assert!(
        ended
            .participants
            .iter()
            .all(|p| p.state == Some(ParticipantState::Disconnected) && p.end_time.is_some())
    );
    assert!(state.call(&id).expect("the call").ended);
    assert!(api.listed_calls().await.is_empty());
}

#[tokio::test]
async fn an_arrived_call_is_listed_by_analytics_only_after_the_analytics_lag() {
    let sim = frozen(SimConfig {
        analytics_lag: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let id = state.arrive_call(None).expect("a queue");
    assert!(api.listed_calls().await.is_empty());
    state.advance_clock(Duration::from_millis(4_999));
    assert!(api.listed_calls().await.is_empty());
    state.advance_clock(Duration::from_millis(1));
    assert_eq!(api.listed_calls().await, [id]);
}

#[tokio::test]
async fn the_event_delay_holds_events_back_in_simulated_time() {
    let sim = frozen(SimConfig {
        event_delay: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (_, mut socket) = listening(&api, &queue).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(state.notification_status().events_pending, 1);
    state.advance_clock(Duration::from_millis(1_999));
    assert_eq!(state.notification_status().events_sent, 0);
    state.advance_clock(Duration::from_millis(1));
    assert_eq!(call_of(&next_event(&mut socket).await).id, id);
}

#[tokio::test]
async fn events_are_not_kept_for_a_channel_without_a_socket() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let channel = api.create_channel().await;
    api.subscribe(&channel.id, &[queue_calls_topic(&queue)])
        .await;
    state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(state.notification_status().events_lost, 1);

    let mut socket = connect(&channel).await;
    let later = state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(call_of(&next_event(&mut socket).await).id, later);
}

#[tokio::test]
async fn arrivals_follow_the_rate_round_robin_and_the_seed() {
    async fn arrived(seed: u64) -> Vec<(String, Option<String>)> {
        let sim = frozen(SimConfig {
            seed,
            arrival_rate: "2/s".parse::<ArrivalRate>().expect("a rate"),
            ..SimConfig::default()
        })
        .await;
        sim.state().advance_clock(Duration::from_secs(30));
        sim.state()
            .calls()
            .into_iter()
            .map(|c| (c.conversation.id, c.queue_id))
            .collect()
    }
    let calls = arrived(3).await;
    // About 60 at 2/s over 30 s.
    assert!((30..=90).contains(&calls.len()), "{}", calls.len());
    assert_eq!(arrived(3).await, calls);
    assert_ne!(arrived(4).await, calls);
    assert_ne!(calls[0].1, calls[1].1, "round robin over the queues");
    assert_eq!(calls[0].1, calls[3].1, "3 queues");
}

#[tokio::test]
async fn arrivals_can_be_started_and_stopped_through_the_admin_surface() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let http = http();
    let arrivals = format!("{}/__sim/arrivals", sim.url());
    let put = |rate: &'static str| http.put(&arrivals).json(&json!({ "rate": rate })).send();
    assert_eq!(
        put("10/s").await.expect("request").status(),
        StatusCode::NO_CONTENT
    );
    state.advance_clock(Duration::from_secs(10));
    let arrived = state.arrival_status().arrived;
    assert!(arrived > 0);
    assert_eq!(
        put("0").await.expect("request").status(),
        StatusCode::NO_CONTENT
    );
    state.advance_clock(Duration::from_secs(10));
    let status: Value = http
        .get(&arrivals)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(status, json!({"rate": "0", "arrived": arrived}));
}

/// The customer's leg of a queue call event.
fn customer_of(call: &CallConversation) -> genesys_models::CallMediaParticipant {
    call.participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .cloned()
        .expect("a customer")
}

#[tokio::test]
async fn an_arriving_call_carries_given_then_queued_then_seeded_customer_numbers() {
    let sim = frozen(SimConfig {
        queue_numbers: vec!["+18005550199".to_owned()],
        arrival_customer_numbers: vec!["+15551230001".to_owned()],
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let http = http();
    let queue = queue_ids(&state).remove(0);
    let (_, mut socket) = listening(&api, &queue).await;
    let admin = |path: &str| format!("{}/__sim/{path}", sim.url());
    let arrive = |body: Value| http.post(admin("arrivals/call")).json(&body).send();

    // Given numbers win over the queued one: E.164 is written as a tel: URI, a text with a
    // scheme as it is.
    let given: Value = arrive(json!({
        "queue_id": queue,
        "customer_number": "+447700900123",
        "dialed_number": "tel:08005550100",
    }))
    .await
    .expect("request")
    .json()
    .await
    .expect("json");
    let event = call_of(&next_event(&mut socket).await);
    assert_eq!(event.id, given["id"]);
    let leg = customer_of(&event);
    assert_eq!(leg.address.as_deref(), Some("tel:+447700900123"));
    assert_eq!(leg.ani.as_deref(), Some("tel:+447700900123"));
    assert_eq!(leg.dnis.as_deref(), Some("tel:08005550100"));
    assert_eq!(leg.direction.as_deref(), Some("inbound"));

    // Queued through the admin surface, after the configured one.
    let queued = http
        .post(admin("arrivals/numbers"))
        .json(&json!({"customer_numbers": ["+15551230002"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(queued.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        state.arrival_status().customer_numbers,
        vec!["+15551230001", "+15551230002"]
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        arrive(json!({ "queue_id": queue })).await.expect("request");
        let leg = customer_of(&call_of(&next_event(&mut socket).await));
        assert_eq!(leg.dnis.as_deref(), Some("tel:+18005550199"), "the queue's");
        assert_eq!(leg.ani, leg.address);
        seen.push(leg.address.expect("an address"));
    }
    assert_eq!(seen[..2], ["tel:+15551230001", "tel:+15551230002"]);
    assert!(
        seen[2].starts_with("tel:+1555") && seen[2].len() == 16,
        "seeded: {seen:?}"
    );
    assert!(state.arrival_status().customer_numbers.is_empty());

    // A body that is not the expected shape is refused, naming it.
    let (status, error) = error_of(
        http.post(admin("arrivals/numbers"))
            .json(&json!({"customer_numbers": "+15551230003"}))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error
            .message
            .unwrap_or_default()
            .contains("customer_numbers")
    );
}

#[tokio::test]
async fn scheduled_arrivals_take_the_queued_customer_numbers_in_order() {
    let numbers: Vec<String> = (1..=5).map(|i| format!("+1555123000{i}")).collect();
    let sim = frozen(SimConfig {
        arrival_rate: ArrivalRate::per_second(10.0),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    state.queue_arrival_numbers(numbers.clone());
    state.advance_clock(Duration::from_secs(10));
    let mut arrived: Vec<_> = state
        .calls()
        .into_iter()
        .filter_map(|c| Some((c.arrived_at_ms?, c)))
        .collect();
    arrived.sort_by_key(|(at, _)| *at);
    assert!(arrived.len() > numbers.len(), "{} arrived", arrived.len());
    let first: Vec<String> = arrived[..numbers.len()]
        .iter()
        .map(|(_, c)| customer_of(&c.conversation).ani.expect("an ani"))
        .collect();
    let expected: Vec<String> = numbers.iter().map(|n| format!("tel:{n}")).collect();
    assert_eq!(first, expected);
}

// ---- the socket ----

#[tokio::test]
async fn heartbeats_come_every_interval_and_a_ping_gets_a_pong() {
    let sim = start(SimConfig {
        calls: 0,
        heartbeat_interval: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let channel = api.create_channel().await;
    let mut socket = connect(&channel).await;

    for _ in 0..2 {
        let beat = next_message(&mut socket).await;
        assert_eq!(beat.topic_name, METADATA_TOPIC);
        assert_eq!(beat.version.as_deref(), Some("2"));
        assert_eq!(beat.event_body, json!({"message": HEARTBEAT_MESSAGE}));
        assert!(beat.metadata.and_then(|m| m.correlation_id).is_some());
    }
    socket
        .send(Message::Text(r#"{"message":"ping"}"#.into()))
        .await
        .expect("ping sent");
    loop {
        let message = next_message(&mut socket).await;
        assert_eq!(message.topic_name, METADATA_TOPIC);
        if message.event_body == json!({"message": "pong"}) {
            break;
        }
        assert_eq!(message.event_body, json!({"message": HEARTBEAT_MESSAGE}));
    }
}

#[tokio::test]
async fn socket_closing_is_announced_then_the_socket_closes_and_the_channel_stays() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (channel, mut socket) = listening(&api, &queue).await;

    let answer: Value = http()
        .post(format!("{}/__sim/sockets/closing", sim.url()))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(answer, json!({"sockets": 1}));

    assert_eq!(
        next_message(&mut socket).await.topic_name,
        SOCKET_CLOSING_TOPIC
    );
    expect_close(&mut socket).await;
    assert_eq!(api.head_channel(&channel.id).await, StatusCode::OK);
    let mut again = connect(&channel).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(call_of(&next_event(&mut again).await).id, id);
}

#[tokio::test]
async fn a_dropped_socket_ends_without_a_close_frame() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (channel, mut socket) = listening(&api, &queue).await;

    assert_eq!(state.drop_sockets(), 1);

    match next_frame(&mut socket).await {
        None | Some(Err(_)) => {}
        other => panic!("expected the connection to end without a close frame, got {other:?}"),
    }
    assert_eq!(api.head_channel(&channel.id).await, StatusCode::OK);
    assert_eq!(state.notification_status().sockets, 0);
}

#[tokio::test]
async fn a_stalled_socket_goes_silent_with_its_connection_open_and_the_channel_takes_a_new_one() {
    let sim = frozen(SimConfig {
        heartbeat_interval: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (channel, mut stalled) = listening(&api, &queue).await;

    assert_eq!(state.stall_sockets(), 1);

    stalled
        .send(Message::Text(r#"{"message":"ping"}"#.into()))
        .await
        .expect("the connection is still open");
    state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(state.notification_status().events_lost, 1);
    // A live socket answers a ping within milliseconds; this window only shows the silence.
    let silent = tokio::time::timeout(Duration::from_millis(300), stalled.next()).await;
    assert!(silent.is_err(), "no pong, no event, no close: {silent:?}");

    let mut fresh = connect(&channel).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(call_of(&next_event(&mut fresh).await).id, id);
}

#[tokio::test]
async fn a_second_connection_disconnects_the_first() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (channel, mut first) = listening(&api, &queue).await;

    let mut second = connect(&channel).await;

    expect_close(&mut first).await;
    let id = state.arrive_call(Some(&queue)).expect("a queue");
    assert_eq!(call_of(&next_event(&mut second).await).id, id);
    assert_eq!(state.notification_status().sockets, 1);
}

// ---- expiry ----

#[tokio::test]
async fn a_channel_expires_after_its_ttl_unless_used() {
    let sim = frozen(SimConfig {
        channel_ttl: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (idle, mut idle_socket) = listening(&api, &queue).await;
    let used = api.create_channel().await;

    state.advance_clock(Duration::from_secs(6));
    api.subscribe(&used.id, &[queue_calls_topic(&queue)]).await;
    state.advance_clock(Duration::from_secs(4));

    assert_eq!(api.head_channel(&idle.id).await, StatusCode::NOT_FOUND);
    expect_close(&mut idle_socket).await;
    let refused = tokio_tungstenite::connect_async(idle.connect_uri.as_str()).await;
    assert!(refused.is_err(), "an expired channel takes no socket");
    assert_eq!(api.head_channel(&used.id).await, StatusCode::OK);
    state.advance_clock(Duration::from_secs(6));
    assert_eq!(api.head_channel(&used.id).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expiring_all_channels_closes_their_sockets() {
    let sim = frozen(SimConfig::default()).await;
    let state = sim.state();
    let api = Api::new(&sim).await;
    let queue = queue_ids(&state)[0].clone();
    let (channel, mut socket) = listening(&api, &queue).await;

    let answer: Value = http()
        .post(format!("{}/__sim/channels/expire", sim.url()))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(answer, json!({"channels": 1}));

    expect_close(&mut socket).await;
    assert_eq!(api.head_channel(&channel.id).await, StatusCode::NOT_FOUND);
    let status: Value = http()
        .get(format!("{}/__sim/notifications", sim.url()))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(status["channels"], json!([]));
}

#[tokio::test]
async fn arrivals_in_real_time_reach_the_socket_without_any_request() {
    let sim = start(SimConfig {
        calls: 0,
        arrival_rate: "100/s".parse::<ArrivalRate>().expect("a rate"),
        event_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    let api = Api::new(&sim).await;
    let channel = api.create_channel().await;
    let topics: Vec<String> = queue_ids(&sim.state())
        .iter()
        .map(|q| queue_calls_topic(q))
        .collect();
    api.subscribe(&channel.id, &topics).await;
    let mut socket = connect(&channel).await;

    // The driver task publishes them: nothing here sends a request.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 5 {
        let event = next_event(&mut socket).await;
        assert!(topics.contains(&event.topic_name));
        seen.insert(call_of(&event).id);
    }
}
