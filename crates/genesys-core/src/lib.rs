//! Genesys Cloud Platform API client for participant attributes on live voice calls.
//!
//! - [`settings`]: where to connect and with which credentials (flags > environment > `.env` >
//!   gc profile > defaults, credentials as one unit), [`profile`] (gc CLI profiles), and
//!   [`mod@env`], the one list of environment variables read; [`region`], the region table.
//! - [`auth`]: OAuth client credentials with proactive and single-flight refresh, or a given
//!   access token, never refreshed.
//! - [`rate`]: the `--rate` specification and the per-token limiter (a window budget by default,
//!   or even GCRA pacing) that a 429 pauses and teaches.
//! - [`retry`] and [`error`]: what is retried, how, and how long to wait.
//! - [`client`]: [`GenesysClient`], the calls attrsync makes; [`observer`] reports each attempt.
//! - [`notifications`]: following queues' call events over the Notification API's WebSocket.
//! - [`proxy`] and [`tls`]: the proxies (a CONNECT tunnel for the WebSocket) and the one rustls
//!   configuration, platform roots plus `--ca-cert`, that HTTP and the WebSocket share.
//! - [`models`]: the wire types, re-exported from the `genesys-models` crate (shared, as plain
//!   data, with reconcile and the simulator).
//!
//! This crate owns HTTP, auth, retries and rate limiting; it knows nothing of CSV, SQLite,
//! terminals or exit codes. Secrets (client secret, tokens) never reach logs, errors or `Debug`.

// A library prints nothing: it returns typed errors and values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod auth;
pub mod client;
pub mod env;
pub mod error;
pub mod live_calls;
pub mod notifications;
pub mod observer;
mod pool;
pub mod profile;
pub mod proxy;
pub mod rate;
pub mod region;
pub mod retry;
pub mod settings;
pub mod stats;
pub mod tls;

pub use genesys_models as models;

pub use auth::AuthError;
pub use client::{
    BudgetWait, ClientBuildError, ClientOptions, Fetched, GenesysClient, ResponseMeta,
};
pub use error::{ApiError, ErrorClass, HttpFailure};
pub use live_calls::LiveCallsQuery;
pub use observer::{RequestEvent, RequestObserver};
pub use profile::{Profile, ProfileError, ProfileProxy};
pub use proxy::ProxySettings;
pub use rate::{Pacing, PacingError, RateLimiter, RateSpec, RateSpecError};
pub use region::{Region, UnknownRegion};
pub use retry::RetryPolicy;
pub use settings::{
    Credentials, ExplicitSettings, SettingSources, Settings, SettingsError, Source, Sources,
};
pub use stats::{ClientStats, TokenStats};
