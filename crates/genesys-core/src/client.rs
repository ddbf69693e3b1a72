//! The Genesys API client: every call passes a token's rate limiter, is retried per its
//! [`ErrorClass`], and is reported to the [`RequestObserver`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::auth::Authenticator;
use crate::error::{ApiError, ErrorClass, correlation_id, transport_failure};
use crate::live_calls::LiveCallsQuery;
use crate::models::notifications::{Channel, ChannelTopic, ChannelTopicEntityListing};
use crate::models::{
    AnalyticsConversation, AnalyticsConversationEnd, AnalyticsConversationEnds,
    AnalyticsConversationQueryResponse, Attributes, CallConversation, Conversation,
    ConversationQuery, LimitEntity, LimitsEntityListing, ParticipantAttributes, Queue,
    QueueEntityListing,
};
use crate::observer::{RequestEvent, RequestObserver};
use crate::pool::{Slot, TokenPool};
use crate::rate::{Admission, Learned, Pacing, RateLimiter, RateSpec, SetAside};
use crate::retry::RetryPolicy;
use crate::settings::Settings;
use crate::stats::{ClientStats, Counters};

/// Requests held by the rate limiter (see [`GenesysClient::budget_wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetWait {
    /// Requests waiting for a token's budget.
    pub waiting: u32,
    /// Until the first of them may be sent.
    pub next_start_in: Duration,
}

/// How a client sends requests.
#[derive(Clone)]
pub struct ClientOptions {
    /// Rate of each token (Genesys default: 300/min).
    pub rate: RateSpec,
    /// How each token's requests are spread: a window budget (default) or even (GCRA, with
    /// `rate`'s burst). A token may switch to even when the server shows it paces evenly.
    pub pacing: Pacing,
    /// The longest `Retry-After` waited out. A longer one sets its token aside; with every token
    /// aside, calls fail at once with [`ApiError::BudgetExhausted`]. Genesys answers daily-limit
    /// breaches with waits of minutes to hours; its official SDKs and CLI give up above 180 s.
    pub max_wait: Duration,
    /// Tokens in the pool, each with its own `rate` budget (at least 1).
    pub tokens: usize,
    /// Pace of token minting for the whole pool.
    pub token_minting: RateSpec,
    pub retry: RetryPolicy,
    /// Whole-request timeout of one attempt.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub user_agent: String,
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            rate: RateSpec::GENESYS_DEFAULT,
            pacing: Pacing::Window,
            max_wait: Duration::from_secs(180),
            tokens: 1,
            token_minting: RateSpec::DEFAULT_TOKEN_MINTING,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("attrsync/", env!("CARGO_PKG_VERSION")).to_owned(),
            observer: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("rate", &self.rate.to_string())
            .field("pacing", &self.pacing)
            .field("max_wait", &self.max_wait)
            .field("tokens", &self.tokens)
            .field("token_minting", &self.token_minting.to_string())
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What came with a successful response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMeta {
    pub status: u16,
    /// `ININ-Correlation-Id` of the response.
    pub correlation_id: Option<String>,
    /// HTTP attempts it took (1 when the first one succeeded).
    pub attempts: u32,
}

/// A successful response's value and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched<T> {
    pub value: T,
    pub meta: ResponseMeta,
}

/// The HTTP client could not be built (TLS or system configuration).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// A Genesys Cloud API client. Cheap to clone; clones share tokens, limiters and counters.
#[derive(Clone)]
pub struct GenesysClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_base: Url,
    auth: Authenticator,
    pool: TokenPool,
    retry: RetryPolicy,
    max_wait: Duration,
    observer: Option<Arc<dyn RequestObserver>>,
    counters: Arc<Counters>,
    /// For the notification sockets, which reqwest does not carry.
    proxy: Option<crate::proxy::ProxySettings>,
    tls: Arc<rustls::ClientConfig>,
    /// Set by [`GenesysClient::stop_sending`]: no request leaves after it.
    stop: tokio::sync::watch::Sender<bool>,
    /// Requests waiting for their token's budget now.
    waiting: tokio::sync::watch::Sender<usize>,
}

/// reqwest's proxies for `settings`: one per proxy, each asking the one matcher
/// ([`ProxySettings::for_url`](crate::proxy::ProxySettings::for_url)) whether a URL is its.
fn reqwest_proxies(
    settings: &crate::proxy::ProxySettings,
) -> Result<Vec<reqwest::Proxy>, ClientBuildError> {
    let mut proxies = Vec::new();
    for target in [&settings.https, &settings.http].into_iter().flatten() {
        let matcher = settings.clone();
        let url = target.url().clone();
        let source = target.source;
        // Told apart by their variable: HTTPS_PROXY and HTTP_PROXY may name one proxy with
        // different credentials.
        let mut proxy = reqwest::Proxy::custom(move |dest| {
            matcher
                .for_url(dest)
                .filter(|chosen| chosen.source == source)
                .map(|_| url.clone())
        });
        if let Some(auth) = target.authorization() {
            let mut value =
                reqwest::header::HeaderValue::from_str(secrecy::ExposeSecret::expose_secret(&auth))
                    .map_err(|_| {
                        ClientBuildError(format!(
                            "{}: the proxy credentials are not valid in a header",
                            target.source
                        ))
                    })?;
            // Kept out of reqwest's Debug output of requests.
            value.set_sensitive(true);
            proxy = proxy.custom_http_auth(value);
        }
        proxies.push(proxy);
    }
    Ok(proxies)
}

impl fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("auth", &self.inner.auth)
            .field("tokens", &self.inner.pool.len())
            .field("retry", &self.inner.retry)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// An API operation: its method and route template (the template is what logs record).
#[derive(Clone, Copy)]
struct Route {
    method: &'static str,
    template: &'static str,
}

impl Route {
    fn method(self) -> Method {
        match self.method {
            "PATCH" => Method::PATCH,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "HEAD" => Method::HEAD,
            _ => Method::GET,
        }
    }
}

/// The contract's 404 code for a conversation that does not exist (call GET and both PATCHes).
pub const CONVERSATION_NOT_FOUND: &str = "conversation.error.conversation.not.found";

const GET_CALL: Route = Route {
    method: "GET",
    template: "GET /api/v2/conversations/calls/{conversationId}",
};
const GET_CONVERSATION: Route = Route {
    method: "GET",
    template: "GET /api/v2/conversations/{conversationId}",
};
const PATCH_CALL_PARTICIPANT_ATTRIBUTES: Route = Route {
    method: "PATCH",
    template: "PATCH /api/v2/conversations/calls/{conversationId}/participants/{participantId}/attributes",
};
const PATCH_PARTICIPANT_ATTRIBUTES: Route = Route {
    method: "PATCH",
    template: "PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes",
};
const GET_ORG_LIMITS: Route = Route {
    method: "GET",
    template: "GET /api/v2/organizations/limits/namespaces/{namespaceName}",
};
const GET_ROUTING_QUEUES: Route = Route {
    method: "GET",
    template: "GET /api/v2/routing/queues",
};
const GET_ROUTING_QUEUE: Route = Route {
    method: "GET",
    template: "GET /api/v2/routing/queues/{queueId}",
};
/// Queues per page of a routing queue listing.
const QUEUE_PAGE_SIZE: u32 = 100;
/// A listing stops after this many pages (100,000 queues), whatever the server says.
const MAX_QUEUE_PAGES: u32 = 1_000;
const POST_CONVERSATION_DETAILS_QUERY: Route = Route {
    method: "POST",
    template: "POST /api/v2/analytics/conversations/details/query",
};

const GET_CONVERSATION_DETAILS: Route = Route {
    method: "GET",
    template: "GET /api/v2/analytics/conversations/details",
};

const POST_CHANNEL: Route = Route {
    method: "POST",
    template: "POST /api/v2/notifications/channels",
};
const HEAD_CHANNEL: Route = Route {
    method: "HEAD",
    template: "HEAD /api/v2/notifications/channels/{channelId}",
};
const PUT_SUBSCRIPTIONS: Route = Route {
    method: "PUT",
    template: "PUT /api/v2/notifications/channels/{channelId}/subscriptions",
};

/// One request to send (and resend on retry).
struct Call<'a> {
    route: Route,
    url: &'a Url,
    body: Option<&'a [u8]>,
}

/// How long a read may wait for budget once the client is stopped (see
/// [`GenesysClient::stop_sending`]).
const STOPPED_READ_GRACE: Duration = Duration::from_secs(2);

/// Counts a request waiting for its token's budget while it lives.
struct Waiting<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Waiting<'a> {
    fn new(count: &'a tokio::sync::watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Safety net against a server that ignores paging.
const MAX_LIVE_CALL_PAGES: u32 = 1_000;

/// Outcome of one attempt; on failure, the generation of the token used (if one was).
type AttemptResult<T> = Result<(T, u16, Option<String>), (ApiError, Option<u64>)>;

impl GenesysClient {
    pub fn new(settings: &Settings, options: ClientOptions) -> Result<Self, ClientBuildError> {
        // reqwest is built with `rustls-no-provider`; "already installed" is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = crate::tls::client_config(settings.ca_cert.as_deref())
            .map_err(|e| ClientBuildError(crate::error::chain_text(&e)))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            // Retries are ours alone, so that every attempt is counted, observed and paced.
            .retry(reqwest::retry::never())
            // The same trust as the WebSocket's: platform roots plus --ca-cert.
            .tls_backend_preconfigured((*tls).clone())
            // Only the resolved settings choose a proxy, never reqwest's own reading of the
            // process environment (a `.env` file can set them; tests stay hermetic).
            .no_proxy();
        if let Some(proxy) = &settings.proxy {
            for proxy in reqwest_proxies(proxy)? {
                builder = builder.proxy(proxy);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientBuildError(crate::error::transport_message(&e)))?;
        let counters = Arc::new(Counters::default());
        let auth = Authenticator::new(
            http.clone(),
            settings,
            // Minting is paced evenly and is no part of any token's budget.
            RateLimiter::new(options.token_minting, Pacing::Even),
            Arc::clone(&counters),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base: settings.api_base.clone(),
                auth,
                pool: TokenPool::new(options.tokens, options.rate, options.pacing),
                retry: options.retry,
                max_wait: options.max_wait,
                observer: options.observer,
                counters,
                proxy: settings.proxy.clone(),
                tls,
                stop: tokio::sync::watch::channel(false).0,
                waiting: tokio::sync::watch::channel(0).0,
            }),
        })
    }

    /// Opens a notification WebSocket with this client's proxy and TLS settings.
    pub(crate) async fn connect_socket(&self, url: &Url) -> Result<crate::tls::Socket, String> {
        crate::tls::connect_socket(url, self.inner.proxy.as_ref(), &self.inner.tls).await
    }

    /// Counters since the client was built, and each token's pacing and budget now.
    pub fn stats(&self) -> ClientStats {
        let mut stats = self.inner.counters.snapshot();
        stats.tokens = self.inner.pool.stats();
        stats
    }

    /// From now on no PATCH of this client (or its clones) waits for budget, and no read waits
    /// more than a short grace: such a request ends with [`ApiError::Stopped`], not sent, and no
    /// retry is sent either. Requests already on the wire finish. A run's stop request: its in-flight work finishes and is
    /// recorded, and nothing new reaches Genesys.
    pub fn stop_sending(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Whether [`Self::stop_sending`] was called.
    pub fn is_stopped(&self) -> bool {
        *self.inner.stop.borrow()
    }

    /// Resolves once [`Self::stop_sending`] is called.
    async fn stopped(&self) {
        let mut stop = self.inner.stop.subscribe();
        // The sender lives as long as the client: `wait_for` ends only when it is set.
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Resolves when no request of this client waits for budget. A caller starting new work
    /// waits for it, so that work already started (a PATCH after its read) is not queued behind
    /// new reads when the budget is short.
    pub async fn until_nothing_waits(&self) {
        let mut waiting = self.inner.waiting.subscribe();
        // The sender lives as long as the client: `wait_for` ends only when nothing waits.
        let _ = waiting.wait_for(|n| *n == 0).await;
    }

    /// Tokens in the pool.
    pub fn token_slots(&self) -> usize {
        self.inner.pool.len()
    }

    pub fn api_base(&self) -> &Url {
        &self.inner.api_base
    }

    /// Obtains the first token's access token (the client-credentials grant; a fixed token is
    /// taken as given, with no request), without any API request: for `attrsync doctor`.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        let inner = &*self.inner;
        inner
            .pool
            .slot(0)
            .token
            .token(&inner.auth, 0)
            .await
            .map(|_| ())
            .map_err(|error| ApiError::Auth { error, attempts: 1 })
    }

    /// `GET url` without a token, through this client's HTTP stack (its TLS roots and
    /// connection settings): the status when the server answered at all, else why not. For
    /// `attrsync doctor`'s reachability checks; not rate-limited, not observed.
    pub async fn probe(&self, url: &Url) -> Result<u16, String> {
        match self.inner.http.get(url.clone()).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(transport_failure(&e, self.inner.proxy.as_ref()).await),
        }
    }

    /// Sets the rate of every token of the pool, e.g. to the org's own per-token limit read
    /// with [`Self::org_limits`] before the first request (see
    /// [`RateLimiter::set_configured_rate`]).
    pub fn set_rate(&self, rate: RateSpec) {
        self.inner.pool.set_rate(rate);
    }

    /// `GET /api/v2/organizations/limits/namespaces/{namespaceName}`: the org's limits in one
    /// namespace. Rate-limited, retried and observed like every other call. Which namespace holds
    /// `client.credentials.token.rate.per.minute`, and which permission the call needs, are not
    /// documented [?].
    pub async fn org_limits(&self, namespace: &str) -> Result<Vec<LimitEntity>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("organizations", None),
            ("limits", None),
            ("namespaces", None),
            (namespace, Some("limits namespace")),
        ])?;
        let listing: Fetched<LimitsEntityListing> =
            self.execute(GET_ORG_LIMITS, url, None, decode_json).await?;
        Ok(listing.value.entities)
    }

    /// Requests waiting for the rate budget now and how long until the first of them may be
    /// sent (what a progress display names instead of a silent wait); `None` when none waits.
    pub fn budget_wait(&self) -> Option<BudgetWait> {
        let (waiting, until) = self.inner.pool.budget_wait()?;
        Some(BudgetWait {
            waiting,
            next_start_in: until.saturating_duration_since(tokio::time::Instant::now()),
        })
    }

    /// `GET /api/v2/routing/queues?name=NAME`, every page: the queues whose whole name matches
    /// `name` (`*` at either end is a wildcard), or every queue with `None`. Permission
    /// `routing:queue:view`.
    pub async fn routing_queues(&self, name: Option<&str>) -> Result<Vec<Queue>, ApiError> {
        let base = self.url(&[
            ("api", None),
            ("v2", None),
            ("routing", None),
            ("queues", None),
        ])?;
        let mut queues = Vec::new();
        for page_number in 1..=MAX_QUEUE_PAGES {
            let mut url = base.clone();
            {
                let mut query = url.query_pairs_mut();
                if let Some(name) = name {
                    query.append_pair("name", name);
                }
                query
                    .append_pair("pageSize", &QUEUE_PAGE_SIZE.to_string())
                    .append_pair("pageNumber", &page_number.to_string());
            }
            let page: Fetched<QueueEntityListing> = self
                .execute(GET_ROUTING_QUEUES, url, None, decode_json)
                .await?;
            let received = page.value.entities.len();
            queues.extend(page.value.entities);
            let last_page = page
                .value
                .page_count
                .is_some_and(|count| page_number >= count);
            if received < QUEUE_PAGE_SIZE as usize || last_page {
                break;
            }
        }
        Ok(queues)
    }

    /// `GET /api/v2/routing/queues/{queueId}`; `Ok(None)` when Genesys answers 404.
    pub async fn find_queue(&self, queue_id: &str) -> Result<Option<Queue>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("routing", None),
            ("queues", None),
            (queue_id, Some("queue id")),
        ])?;
        match self
            .execute(GET_ROUTING_QUEUE, url, None, decode_json)
            .await
        {
            Ok(fetched) => Ok(Some(fetched.value)),
            Err(err) if err.status() == Some(404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /api/v2/conversations/calls/{conversationId}`.
    pub async fn get_call(
        &self,
        conversation_id: &str,
    ) -> Result<Fetched<CallConversation>, ApiError> {
        let url = self.call_url(conversation_id)?;
        self.execute(GET_CALL, url, None, decode_json).await
    }

    fn call_url(&self, conversation_id: &str) -> Result<Url, ApiError> {
        self.url(&[
            ("api", None),
            ("v2", None),
            ("conversations", None),
            ("calls", None),
            (conversation_id, Some("conversation id")),
        ])
    }

    /// [`Self::get_call`], with Genesys's "no such conversation" as `Ok(None)`: the one place a
    /// call read's 404 is interpreted. Only the contract's code
    /// [`CONVERSATION_NOT_FOUND`] means that; any other 404 (a wrong base URL, a route the API
    /// does not have, a gateway's page) stays an error and names the URL.
    pub async fn find_call(
        &self,
        conversation_id: &str,
    ) -> Result<Option<Fetched<CallConversation>>, ApiError> {
        match self.get_call(conversation_id).await {
            Ok(fetched) => Ok(Some(fetched)),
            Err(err) if err.status() == Some(404) && err.code() == Some(CONVERSATION_NOT_FOUND) => {
                Ok(None)
            }
            Err(ApiError::Http(mut failure)) if failure.status == 404 => {
                let url = self.call_url(conversation_id)?;
                failure.message = Some(format!(
                    "{}GET {url} is not an API route here (Genesys answers an unknown \
                     conversation with {CONVERSATION_NOT_FOUND}): check --api-url or the region",
                    failure
                        .message
                        .as_deref()
                        .map(|m| format!("{m} "))
                        .unwrap_or_default()
                ));
                Err(ApiError::Http(failure))
            }
            Err(err) => Err(err),
        }
    }

    /// `GET /api/v2/conversations/{conversationId}` (media-agnostic).
    pub async fn get_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Fetched<Conversation>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("conversations", None),
            (conversation_id, Some("conversation id")),
        ])?;
        self.execute(GET_CONVERSATION, url, None, decode_json).await
    }

    /// `PATCH /api/v2/conversations/calls/{cid}/participants/{pid}/attributes`: merges the given
    /// keys (`""` clears one). 202 carries the participant's attributes, when the body parses.
    pub async fn patch_call_participant_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: &Attributes,
    ) -> Result<Fetched<Option<ParticipantAttributes>>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("conversations", None),
            ("calls", None),
            (conversation_id, Some("conversation id")),
            ("participants", None),
            (participant_id, Some("participant id")),
            ("attributes", None),
        ])?;
        let body = attributes_body(attributes)?;
        self.execute(
            PATCH_CALL_PARTICIPANT_ATTRIBUTES,
            url,
            Some(body),
            |bytes| {
                // The write was accepted whatever the body says: an odd body is not a failure.
                Ok(serde_json::from_slice(bytes).ok())
            },
        )
        .await
    }

    /// `PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes` (media-agnostic; 202
    /// without a body).
    pub async fn patch_participant_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: &Attributes,
    ) -> Result<Fetched<()>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("conversations", None),
            (conversation_id, Some("conversation id")),
            ("participants", None),
            (participant_id, Some("participant id")),
            ("attributes", None),
        ])?;
        let body = attributes_body(attributes)?;
        self.execute(PATCH_PARTICIPANT_ATTRIBUTES, url, Some(body), |_| Ok(()))
            .await
    }

    /// One page of `POST /api/v2/analytics/conversations/details/query`.
    pub async fn query_conversation_details(
        &self,
        query: &ConversationQuery,
    ) -> Result<Fetched<AnalyticsConversationQueryResponse>, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("analytics", None),
            ("conversations", None),
            ("details", None),
            ("query", None),
        ])?;
        let body = serde_json::to_vec(query).map_err(|_| ApiError::InvalidArgument {
            what: "conversation query",
            value: String::new(),
            reason: "cannot be serialised",
        })?;
        self.execute(
            POST_CONVERSATION_DETAILS_QUERY,
            url,
            Some(body),
            decode_json,
        )
        .await
    }

    /// `GET /api/v2/analytics/conversations/details?id=ID1,ID2,...`: the analytics records of
    /// many conversations in one request, live or ended (`conversation_end` once ended). An id
    /// analytics does not know (yet) is left out of the answer, which proves nothing about it.
    /// How many ids Genesys takes in one request is not documented: callers batch. Only each
    /// conversation's id and end are kept of the answer.
    pub async fn conversation_details(
        &self,
        conversation_ids: &[String],
    ) -> Result<Fetched<Vec<AnalyticsConversationEnd>>, ApiError> {
        for id in conversation_ids {
            validate_path_value("conversation id", id)?;
            if id.contains(',') {
                return Err(ApiError::InvalidArgument {
                    what: "conversation id",
                    value: id.chars().take(80).collect(),
                    reason: "must not contain a comma",
                });
            }
        }
        let mut url = self.url(&[
            ("api", None),
            ("v2", None),
            ("analytics", None),
            ("conversations", None),
            ("details", None),
        ])?;
        url.query_pairs_mut()
            .append_pair("id", &conversation_ids.join(","));
        let fetched = self
            .execute(GET_CONVERSATION_DETAILS, url, None, |body: &[u8]| {
                decode_json::<AnalyticsConversationEnds>(body)
            })
            .await?;
        Ok(Fetched {
            value: fetched.value.conversations,
            meta: fetched.meta,
        })
    }

    /// Every live voice call (conversation not ended) matching `query`, paging until a short
    /// page. Pages shift while calls start and end, so results are de-duplicated by id.
    pub async fn query_live_calls(
        &self,
        query: &LiveCallsQuery,
    ) -> Result<Vec<AnalyticsConversation>, ApiError> {
        let mut calls = Vec::new();
        self.visit_live_calls(query, |call| calls.push(call))
            .await?;
        Ok(calls)
    }

    /// [`Self::query_live_calls`], handing each call to `visit` as its page arrives, so that a
    /// caller that keeps only ids (a follow's backfill of hundreds of live calls) never holds
    /// every call's whole analytics record at once.
    pub async fn visit_live_calls(
        &self,
        query: &LiveCallsQuery,
        mut visit: impl FnMut(AnalyticsConversation),
    ) -> Result<(), ApiError> {
        let now = SystemTime::now();
        let mut seen = HashSet::new();
        for page_number in 1..=MAX_LIVE_CALL_PAGES {
            let request = query.to_conversation_query(now, page_number);
            let page_size = request.paging.map_or(query.page_size, |p| p.page_size);
            let page = self.query_conversation_details(&request).await?.value;
            let received = page.conversations.len();
            let mut new_on_page = 0usize;
            for conversation in page.conversations {
                if seen.insert(conversation.conversation_id.clone()) {
                    new_on_page += 1;
                    visit(conversation);
                }
            }
            if received < page_size as usize || new_on_page == 0 {
                return Ok(());
            }
        }
        tracing::warn!(
            pages = MAX_LIVE_CALL_PAGES,
            "live call listing stopped at the page limit"
        );
        Ok(())
    }

    /// `POST /api/v2/notifications/channels`: a new notification channel. Creating a 21st
    /// channel with the same client silently removes the least recently used one.
    pub async fn create_channel(&self) -> Result<Channel, ApiError> {
        let url = self.url(&[
            ("api", None),
            ("v2", None),
            ("notifications", None),
            ("channels", None),
        ])?;
        Ok(self
            .execute(POST_CHANNEL, url, Some(b"{}".to_vec()), decode_json)
            .await?
            .value)
    }

    /// `HEAD /api/v2/notifications/channels/{channelId}`: whether the channel still exists (it
    /// expires after 24 h unused, and a 21st channel evicts the oldest).
    pub async fn channel_exists(&self, channel_id: &str) -> Result<bool, ApiError> {
        let url = self.channel_url(channel_id, None)?;
        match self.execute(HEAD_CHANNEL, url, None, |_| Ok(())).await {
            Ok(_) => Ok(true),
            Err(err) if err.status() == Some(404) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// `PUT /api/v2/notifications/channels/{channelId}/subscriptions`: the channel's topics
    /// become exactly `topics` (at most 1,000). Genesys answers with each topic's state (a topic
    /// may be `Rejected`, with a reason and missing permissions).
    pub async fn set_subscriptions(
        &self,
        channel_id: &str,
        topics: &[String],
    ) -> Result<Vec<ChannelTopic>, ApiError> {
        let url = self.channel_url(channel_id, Some("subscriptions"))?;
        let body: Vec<ChannelTopic> = topics.iter().map(ChannelTopic::named).collect();
        let body = serde_json::to_vec(&body).map_err(|_| ApiError::InvalidArgument {
            what: "topics",
            value: String::new(),
            reason: "cannot be serialised",
        })?;
        let listing: Fetched<ChannelTopicEntityListing> = self
            .execute(PUT_SUBSCRIPTIONS, url, Some(body), decode_json)
            .await?;
        Ok(listing.value.entities)
    }

    fn channel_url(&self, channel_id: &str, tail: Option<&str>) -> Result<Url, ApiError> {
        let mut segments = vec![
            ("api", None),
            ("v2", None),
            ("notifications", None),
            ("channels", None),
            (channel_id, Some("channel id")),
        ];
        segments.extend(tail.map(|t| (t, None)));
        self.url(&segments)
    }

    /// `api_base` plus the segments, each percent-encoded; `Some(what)` marks a caller-given
    /// value that is validated first.
    fn url(&self, segments: &[(&str, Option<&'static str>)]) -> Result<Url, ApiError> {
        for (value, what) in segments {
            if let Some(what) = what {
                validate_path_value(what, value)?;
            }
        }
        let mut url = self.inner.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::InvalidArgument {
                what: "API base URL",
                value: self.inner.api_base.to_string(),
                reason: "cannot take a path",
            })?
            .pop_if_empty()
            .extend(segments.iter().map(|(value, _)| *value));
        Ok(url)
    }

    /// Sends one call with retries: retryable errors back off (a 429 pauses its token's limiter
    /// instead), a 401 refreshes that token once (single-flight) and retries on it.
    async fn execute<T>(
        &self,
        route: Route,
        url: Url,
        body: Option<Vec<u8>>,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, ApiError> {
        let inner = &*self.inner;
        let mut attempt = 0u32;
        let mut refreshed_after_401 = false;
        let mut throttled = 0u32;
        let mut pinned_slot = None;
        loop {
            attempt += 1;
            let (slot, admission) = loop {
                let slot = match pinned_slot.take() {
                    Some(index) => inner.pool.slot(index),
                    None => inner
                        .pool
                        .pick()
                        .map_err(|aside| self.budget_exhausted(aside, attempt - 1))?,
                };
                // Once stopped, a PATCH goes only if its token's budget admits it at once, and
                // a read (a verification finishing) only within a short grace: one that would
                // wait for budget is never sent (the run is ending).
                let acquired = if self.is_stopped() {
                    let grace = if route.method == "PATCH" {
                        Duration::ZERO
                    } else {
                        STOPPED_READ_GRACE
                    };
                    match tokio::time::timeout(grace, slot.limiter.acquire()).await {
                        Ok(acquired) => acquired,
                        Err(_) => {
                            return Err(ApiError::Stopped {
                                attempts: attempt - 1,
                            });
                        }
                    }
                } else {
                    let _waiting = Waiting::new(&inner.waiting);
                    tokio::select! {
                        biased;
                        () = self.stopped() => continue,
                        acquired = slot.limiter.acquire() => acquired,
                    }
                };
                match acquired {
                    Ok(admission) => break (slot, admission),
                    // Set aside while waiting: another slot, or the error when none is left.
                    Err(_) => continue,
                }
            };
            let call = Call {
                route,
                url: &url,
                body: body.as_deref(),
            };
            let (mut error, token_generation) =
                match self.attempt(slot, &call, &decode, admission, attempt).await {
                    Ok((value, status, correlation_id)) => {
                        return Ok(Fetched {
                            value,
                            meta: ResponseMeta {
                                status,
                                correlation_id,
                                attempts: attempt,
                            },
                        });
                    }
                    Err(failure) => failure,
                };
            match (error.class(), token_generation) {
                (ErrorClass::RefreshAndRetry, Some(generation)) if !refreshed_after_401 => {
                    refreshed_after_401 = true;
                    slot.token
                        .refresh_after_unauthorized(&inner.auth, slot.index, generation)
                        .await
                        .map_err(|error| ApiError::Auth {
                            error,
                            attempts: attempt,
                        })?;
                    pinned_slot = Some(slot.index);
                }
                (ErrorClass::Retryable, _) if error.status() == Some(429) => {
                    throttled += 1;
                    if !inner.retry.allows_another_after_429(throttled) {
                        error.set_attempts(attempt);
                        return Err(error);
                    }
                    // The slot's limiter is already paused for Retry-After (or set aside); other
                    // slots may go on.
                }
                (ErrorClass::Retryable, _) if inner.retry.allows_another(attempt - throttled) => {
                    let delay = {
                        let mut rng = rand::rng();
                        inner
                            .retry
                            .delay(attempt - throttled, error.retry_after(), &mut rng)
                    };
                    tracing::debug!(
                        route = route.template,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying after {}",
                        error.class()
                    );
                    // A stop while backing off: the last answer is the outcome (an earlier
                    // attempt may have reached Genesys, so this is not "not sent").
                    tokio::select! {
                        biased;
                        () = self.stopped() => {
                            error.set_attempts(attempt);
                            return Err(error);
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                _ => {
                    error.set_attempts(attempt);
                    return Err(error);
                }
            }
            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The error when every token is set aside; `aside` is the one that ends first.
    fn budget_exhausted(&self, aside: SetAside, attempts: u32) -> ApiError {
        ApiError::BudgetExhausted {
            retry_after: aside.retry_after,
            resume_in: aside
                .until
                .saturating_duration_since(tokio::time::Instant::now()),
            max_wait: self.inner.max_wait,
            attempts,
        }
    }

    /// Says once what a 429 taught `slot`'s limiter (the limiter reports each change once).
    fn report_learned(&self, slot: &Slot, learned: Learned) {
        let spec = slot.limiter.spec();
        let per_minute = |count: u32| f64::from(count) * 60.0 / spec.per().as_secs_f64();
        match learned {
            Learned::Nothing => {}
            Learned::SwitchedToEven => tracing::warn!(
                token_slot = slot.index,
                "the server paces requests evenly (repeated 429s with a short Retry-After): \
                 switching this token to even pacing at {spec}"
            ),
            Learned::BudgetCut { from, to } => tracing::warn!(
                token_slot = slot.index,
                from,
                to,
                "the org allows about {:.0}/min on this token, not {:.0}/min: pacing to that",
                per_minute(to),
                per_minute(from),
            ),
            Learned::SetAside(aside) => tracing::warn!(
                token_slot = slot.index,
                retry_after_s = aside.retry_after.as_secs(),
                "the API asked this token to wait {} s, more than the maximum wait of {} s: \
                 setting it aside",
                aside.retry_after.as_secs(),
                self.inner.max_wait.as_secs(),
            ),
        }
    }

    /// One HTTP attempt through `slot`.
    async fn attempt<T>(
        &self,
        slot: &Slot,
        call: &Call<'_>,
        decode: &impl Fn(&[u8]) -> Result<T, String>,
        admission: Admission,
        attempt: u32,
    ) -> AttemptResult<T> {
        let inner = &*self.inner;
        let admitted_at = admission.at;
        let Call { route, url, body } = *call;
        let token = slot
            .token
            .token(&inner.auth, slot.index)
            .await
            .map_err(|error| {
                slot.limiter.forget(admission);
                (
                    ApiError::Auth {
                        error,
                        attempts: attempt,
                    },
                    None,
                )
            })?;
        inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!(
            "genesys_request",
            method = route.method,
            route = route.template,
            attempt,
            token_slot = slot.index,
            status = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
        );
        let exchange = async {
            let mut request = inner
                .http
                .request(route.method(), url.clone())
                .bearer_auth(token.bearer())
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_vec());
            }
            let failed = |e: reqwest::Error| async move {
                let message = transport_failure(&e, inner.proxy.as_ref()).await;
                ApiError::from_transport(route.template, &e, message)
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return Err(failed(e).await),
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => return Err(failed(e).await),
            };
            Ok::<_, ApiError>((status, headers, bytes))
        }
        .instrument(span.clone())
        .await;

        // Any answer but a 429 lets the token's slow start go on (see `RateLimiter::acquire`).
        if !matches!(&exchange, Ok((429, _, _))) {
            slot.limiter.on_answered(admission.instant);
        }
        let (status, correlation, outcome) = match exchange {
            Ok((status, headers, bytes)) => {
                let correlation = correlation_id(&headers);
                let outcome = if (200..300).contains(&status) {
                    decode(&bytes).map_err(|message| ApiError::Decode {
                        route: route.template,
                        status,
                        message,
                        correlation_id: correlation.clone(),
                        attempts: attempt,
                    })
                } else {
                    let error = ApiError::from_response(route.template, status, &headers, &bytes);
                    if status == 429 {
                        inner.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        // Pause (or set aside) before anything else observes the 429: every
                        // request admitted after this point waits (see `RateLimiter::acquire`).
                        let pause = {
                            let mut rng = rand::rng();
                            inner.retry.delay(attempt, error.retry_after(), &mut rng)
                        };
                        let learned = slot.limiter.on_throttled(
                            admission.instant,
                            error.retry_after(),
                            pause,
                            inner.max_wait,
                        );
                        self.report_learned(slot, learned);
                    }
                    Err(error)
                };
                (Some(status), correlation, outcome)
            }
            Err(error) => (None, None, Err(error)),
        };
        let latency = SystemTime::now()
            .duration_since(admitted_at)
            .unwrap_or_default();
        let error_class = outcome.as_ref().err().map(ApiError::class);
        let retry_after = outcome.as_ref().err().and_then(ApiError::retry_after);

        if let Some(status) = status {
            span.record("status", status);
        }
        if let Some(id) = &correlation {
            span.record("correlation_id", id.as_str());
        }
        span.in_scope(|| match &outcome {
            Ok(_) => tracing::debug!(latency_ms = latency.as_millis() as u64, "response"),
            Err(error) => tracing::debug!(
                latency_ms = latency.as_millis() as u64,
                class = %error.class(),
                error = %error,
                "request failed"
            ),
        });
        if let Some(observer) = &inner.observer {
            observer.on_request(&RequestEvent {
                started_at: admitted_at,
                method: route.method,
                route: route.template,
                path: url.path().to_owned(),
                status,
                latency,
                attempt,
                error_class,
                retry_after,
                token_slot: slot.index,
                correlation_id: correlation.clone(),
            });
        }
        match outcome {
            Ok(value) => Ok((value, status.unwrap_or_default(), correlation)),
            Err(error) => Err((error, Some(token.generation()))),
        }
    }
}

fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

fn attributes_body(attributes: &Attributes) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(&serde_json::json!({ "attributes": attributes })).map_err(|_| {
        ApiError::InvalidArgument {
            what: "attributes",
            value: String::new(),
            reason: "cannot be serialised",
        }
    })
}

/// An id that goes into a URL path: not empty, no dot segments, no control characters, and of
/// sane length. (Everything else is percent-encoded.)
fn validate_path_value(what: &'static str, value: &str) -> Result<(), ApiError> {
    let invalid = |reason| ApiError::InvalidArgument {
        what,
        value: value.chars().take(80).collect(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value == "." || value == ".." {
        return Err(invalid("must not be a dot segment"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    if value.len() > 256 {
        return Err(invalid("is too long"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
