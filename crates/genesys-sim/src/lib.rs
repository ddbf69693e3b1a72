//! A local simulator of the Genesys Cloud API subset attrsync speaks (see
//! `genesys-api/README.md`), with fault injection, for tests, demos and benchmarks.
//!
//! It serves, on one origin:
//! - `POST /oauth/token` (client credentials via Basic or form fields);
//! - `GET /api/v2/conversations/calls/{id}` and `GET /api/v2/conversations/{id}`;
//! - both participant-attribute PATCHes (202; merge per key);
//! - `POST /api/v2/analytics/conversations/details/query` (live calls, queue filter, paging);
//! - `GET /api/v2/analytics/conversations/details?id=ID1,ID2,...` (many conversations by id,
//!   live or ended; at most [`SimConfig::details_max_ids`] ids);
//! - history (`SimConfig::history`): calls that ended before the simulator started, readable
//!   with every participant disconnected, never listed as live;
//! - `GET /api/v2/organizations/limits/namespaces/{namespaceName}`: the per-token budget as
//!   `client.credentials.token.rate.per.minute` in [`SimConfig::limits_namespace`] (404
//!   `not.found` in any other namespace; 403 `missing.permissions` with
//!   [`SimConfig::limits_forbidden`]);
//! - `GET /api/v2/routing/queues` (by `name`, whole and ignoring case, `*` at either end; by
//!   `id`; paged) and `GET /api/v2/routing/queues/{id}` (404 `not.found`); 403
//!   `missing.permissions` with [`SimConfig::queues_forbidden`]. Names come from
//!   [`SimConfig::queue_names`] or are generated (`Sales`, `Support`, `Billing`, ...);
//! - the Notification API: `POST /api/v2/notifications/channels`, `HEAD` of a channel, its
//!   subscriptions (`GET`/`POST`/`PUT`/`DELETE`), and its WebSocket at `ws://ADDR/channels/{id}`
//!   publishing `v2.routing.queues.{id}.conversations.calls` and
//!   `v2.detail.events.conversation.{id}.attributes` events, heartbeats and pongs;
//! - call arrivals and durations (`SimConfig::arrival_rate`, `SimConfig::call_duration`);
//! - phone numbers on every call: the customer's (seeded, or queued for arrivals with
//!   [`SimConfig::arrival_customer_numbers`] or `/__sim/arrivals/numbers`) as the customer's
//!   `address` and `ani`, its queue's dialed number ([`SimConfig::queue_numbers`]) as `dnis`, in
//!   reads, queue events and analytics sessions;
//! - `/__sim/`: a test-only admin surface (calls, request log, queues, faults, token expiry,
//!   clock, reset, notification status, socket closing/dropping/stalling, channel expiry,
//!   arrivals with given numbers, answering a call) that is not part of Genesys.
//!
//! Every response carries `ININ-Correlation-Id`; errors are `ErrorBody` JSON with the contract's
//! codes; each token has its own budget (a sliding window by default, or a GCRA bucket; see
//! [`LimitShape`]), an org-wide window may cap them all, and a request over either gets
//! Genesys's exact 429. `POST /oauth/token` counts against neither. The org, and for a
//! given request order the injected faults, follow from the seed.
//!
//! Choices where the contract is silent ([?] in the README), so that clients handle them:
//! - a PATCH on an ended call: 400 `constraint.validation`;
//! - a malformed conversation or participant id: 400 `bad.request`;
//! - an injected 502: code `bad.gateway` (the contract documents none);
//! - writing `""` keeps the key with an empty value (there is no delete);
//! - 404 codes: `conversation.error.conversation.not.found` for an unknown conversation on the
//!   call GET and both PATCHes, `not.found` on the media-agnostic GET (the only code the contract
//!   lists for it), `conversation.error.participant.not.found` for an unknown participant;
//! - subscribing a queue topic of an unknown queue: 403 `missing.permissions` (as a topic
//!   without permission), a conversation's attribute topic: accepted whatever the id (an
//!   unknown conversation never publishes), any other topic: 400 `invalid.value`; with
//!   `?ignoreErrors=true` both are listed `Rejected` instead; more than 1,000 topics: 400
//!   `constraint.validation`; `DELETE` of the subscriptions: 204;
//! - a queue event for an attribute-only change: sent (`SimConfig::attribute_events`), once the
//!   write is visible to reads, `SimConfig::event_delay` later; an `AttributeUpdateEvent` on the
//!   conversation's attribute topic at the same time, one per write that became visible (a
//!   drift fault's overwrite is its own); neither with `attribute_events` off;
//! - a channel is used (its 24 h start over) by subscribing and connecting, not by `HEAD`;
//! - numbers are written as `tel:+E164` URIs; queue call events carry `ani` and `dnis` as reads
//!   do (whether Genesys's events have them is not documented);
//! - the multi-id analytics read leaves unknown ids out, and refuses more than
//!   [`SimConfig::details_max_ids`] ids (100 by default) with 400 `constraint.validation`.
//!
//! It shares nothing with the client's request handling beyond the plain model types of
//! `genesys_models` (the `genesys-models` crate).

// A library prints nothing: it returns typed errors and values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod admin;
mod analytics;
mod api;
mod arrivals;
mod bus;
mod call;
mod clock;
mod config;
mod driver;
mod error;
mod middleware;
mod notifications;
mod oauth;
mod org;
mod rate_limit;
mod routing;
mod server;
mod socket;
mod state;
#[cfg(feature = "tls")]
mod tls;

pub use bus::{ChannelStatus, NotificationStatus};
pub use config::{
    ArrivalNumbers, ArrivalRate, DEFAULT_DETAILS_MAX_IDS, DEFAULT_LIMITS_NAMESPACE, DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET, DriftConfig, FaultConfig, LimitShape, ParseArrivalRateError,
    ParseLimitShapeError, SimConfig, TOKEN_RATE_LIMIT_KEY,
};
pub use org::SimQueue;
pub use server::{SimHandle, Simulator};
pub use state::{ArrivalStatus, LoggedRequest, SeedCall, SeedParticipant, SimCall, SimState};
