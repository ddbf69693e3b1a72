//! OAuth client credentials: minting, caching and refreshing access tokens.
//!
//! `POST <login>/oauth/token` with `Authorization: Basic base64(id:secret)` and the form body
//! `grant_type=client_credentials`. A token is refreshed proactively shortly before it expires,
//! and after a 401 exactly once whatever the concurrency: every token carries a generation, and
//! only the first caller reporting a 401 for generation G mints G+1; the others wait for it and
//! reuse it. A fixed token ([`Credentials::Token`]) is used as is: it is never minted nor
//! refreshed, and a 401 is final ([`AuthError::TokenRefused`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::error::{ErrorClass, correlation_id, retry_after, transport_failure};
use crate::models::{OAuthError, TokenResponse};
use crate::proxy::ProxySettings;
use crate::rate::RateLimiter;
use crate::settings::{Credentials, Settings};
use crate::stats::Counters;

/// Why no token could be obtained. Never contains the client secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token endpoint refused (e.g. 401 `invalid_client`).
    #[error("{}", describe_rejection(*.status, .error.as_deref(), .description.as_deref(), .correlation_id.as_deref(), .credentials_from.as_deref(), *.region_assumed))]
    Rejected {
        status: u16,
        /// OAuth `error`, e.g. `invalid_client`.
        error: Option<String>,
        description: Option<String>,
        correlation_id: Option<String>,
        retry_after: Option<Duration>,
        /// The gc profile the client id came from, if it did (the advice names it).
        credentials_from: Option<String>,
        /// No source gave a region: the default's login host was used (the message says so).
        region_assumed: bool,
    },
    /// The API refused a fixed access token (401): it expired or was revoked, and it cannot be
    /// refreshed. Class [`ErrorClass::ResumeLater`]: stop, and resume with a new token.
    #[error(
        "the access token from {source_name} was refused (HTTP 401): it expired or was revoked, and a given token cannot be refreshed; get a new token and run again (an interrupted run resumes with `attrsync apply --resume latest`), or use client credentials ({} and {}), which are refreshed{}",
        crate::env::CLIENT_ID.name,
        crate::env::CLIENT_SECRET.name,
        if *.region_assumed { region_hint() } else { String::new() }
    )]
    TokenRefused {
        source_name: String,
        region_assumed: bool,
    },
    #[error("token endpoint {url} unreachable: {message}")]
    Transport {
        url: String,
        message: String,
        timed_out: bool,
    },
    #[error("unreadable token response from {url} (HTTP {status}): {message}")]
    Decode {
        url: String,
        status: u16,
        message: String,
    },
}

fn describe_rejection(
    status: u16,
    error: Option<&str>,
    description: Option<&str>,
    correlation_id: Option<&str>,
    credentials_from: Option<&str>,
    region_assumed: bool,
) -> String {
    let mut text = format!("token request refused: HTTP {status}");
    if let Some(error) = error {
        text.push(' ');
        text.push_str(error);
    }
    if let Some(description) = description {
        text.push_str(": ");
        text.push_str(description);
    }
    if token_endpoint_throttled(status, error, description) {
        text.push_str(" (the token endpoint's own rate limit: retried with backoff)");
    } else if matches!(status, 400 | 401) {
        match credentials_from {
            Some(source) => text.push_str(&format!(
                " (check the client id and secret of {source} and that the region matches the OAuth client)"
            )),
            None => text.push_str(&format!(
                " (check {} / {} and that the region matches the OAuth client)",
                crate::env::CLIENT_ID.name,
                crate::env::CLIENT_SECRET.name
            )),
        }
        if region_assumed {
            text.push_str(&region_hint());
        }
    }
    if let Some(id) = correlation_id {
        text.push_str(&format!(" (correlation id {id})"));
    }
    text
}

/// What an authentication failure adds when no source gave a region.
fn region_hint() -> String {
    let region = crate::Region::DEFAULT;
    format!(
        "; no region was set, so {region} ({}) was assumed: if the org is in another region, set it with --region, {} or a gc profile's environment",
        region.domain(),
        crate::env::REGION.name
    )
}

/// Whether a refusal of the token endpoint is its own rate limit: a 429, or the 400
/// `invalid_request` whose description says "rate limit exceeded" that Genesys answers when
/// tokens are minted too fast (its Terraform provider matches the same text and retries).
pub(crate) fn token_endpoint_throttled(
    status: u16,
    error: Option<&str>,
    description: Option<&str>,
) -> bool {
    status == 429
        || (status == 400
            && error == Some("invalid_request")
            && description.is_some_and(|d| d.to_ascii_lowercase().contains("rate limit exceeded")))
}

impl AuthError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AuthError::Rejected {
                status: 429 | 502 | 503 | 504,
                ..
            }
            | AuthError::Transport { .. } => ErrorClass::Retryable,
            AuthError::Rejected {
                status,
                error,
                description,
                ..
            } if token_endpoint_throttled(*status, error.as_deref(), description.as_deref()) => {
                ErrorClass::Retryable
            }
            AuthError::TokenRefused { .. } => ErrorClass::ResumeLater,
            _ => ErrorClass::Terminal,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Rejected { status, .. } | AuthError::Decode { status, .. } => Some(*status),
            AuthError::TokenRefused { .. } => Some(401),
            AuthError::Transport { .. } => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            AuthError::Rejected { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A cached access token. `Debug` never shows it.
pub(crate) struct AccessToken {
    secret: SecretString,
    generation: u64,
    refresh_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

impl AccessToken {
    pub(crate) fn bearer(&self) -> &str {
        self.secret.expose_secret()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Far enough never to come: a fixed token is replaced only after a 401.
const FIXED_TOKEN_HORIZON: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How long before expiry a token is replaced: min(60 s, 10 % of its lifetime).
pub(crate) fn refresh_margin(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_secs(60))
}

/// Mints tokens for one OAuth client (or hands out the one fixed token); shared by every slot
/// of a pool.
pub(crate) struct Authenticator {
    http: reqwest::Client,
    token_url: Url,
    credentials: Credentials,
    /// Where the credentials came from (named when a fixed token is refused).
    source: String,
    /// The same, for a refusal's advice, when it is a gc profile.
    credentials_from: Option<String>,
    region_assumed: bool,
    /// Minting is rate-limited too (Genesys warns about it); one limiter for the whole pool.
    mint_limiter: RateLimiter,
    counters: Arc<Counters>,
    /// The proxies, to word a refused tunnel.
    proxy: Option<ProxySettings>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("token_url", &self.token_url.as_str())
            .field("credentials", &self.credentials)
            .field("mint_limiter", &self.mint_limiter)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub(crate) fn new(
        http: reqwest::Client,
        settings: &Settings,
        mint_limiter: RateLimiter,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            http,
            token_url: settings.token_url(),
            credentials: settings.credentials.clone(),
            source: settings.sources.credentials.to_string(),
            // Only a profile's keys are not the variables the advice names by default.
            credentials_from: match &settings.sources.credentials {
                profile @ crate::settings::Source::Profile { .. } => Some(profile.to_string()),
                _ => None,
            },
            region_assumed: settings.region_assumed(),
            mint_limiter,
            counters,
            proxy: settings.proxy.clone(),
        }
    }

    /// The token endpoint `url` gave no answer.
    async fn unreachable(&self, url: &str, error: &reqwest::Error) -> AuthError {
        AuthError::Transport {
            url: url.to_owned(),
            message: transport_failure(error, self.proxy.as_ref()).await,
            timed_out: error.is_timeout(),
        }
    }

    /// One token request; `generation` is recorded in the returned token.
    async fn mint(&self, slot: usize, generation: u64) -> Result<AccessToken, AuthError> {
        let (client_id, client_secret) = match &self.credentials {
            Credentials::Client {
                client_id,
                client_secret,
            } => (client_id, client_secret),
            // The given token is the first "mint"; a second means the API refused it.
            Credentials::Token(token) if generation == 1 => {
                return Ok(AccessToken {
                    secret: token.clone(),
                    generation,
                    // Its lifetime is unknown: used until the API refuses it.
                    refresh_at: Instant::now() + FIXED_TOKEN_HORIZON,
                });
            }
            Credentials::Token(_) => {
                tracing::warn!(token_slot = slot, "the given access token was refused");
                return Err(AuthError::TokenRefused {
                    source_name: self.source.clone(),
                    region_assumed: self.region_assumed,
                });
            }
        };
        // Only `on_throttled` sets a limiter aside, and the mint limiter is only ever paused.
        let _ = self.mint_limiter.acquire().await;
        tracing::debug!(token_slot = slot, generation, "requesting an access token");
        let url = self.token_url.as_str().to_owned();
        let response = match self
            .http
            .post(self.token_url.clone())
            .basic_auth(client_id, Some(client_secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => return Err(self.unreachable(&url, &e).await),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return Err(self.unreachable(&url, &e).await),
        };
        if !(200..300).contains(&status) {
            let refusal: Option<OAuthError> = serde_json::from_slice(&body).ok();
            let retry_after = retry_after(&headers);
            let error = refusal
                .as_ref()
                .map(|r| r.error.clone())
                .filter(|e| !e.is_empty());
            let description = refusal.and_then(|r| r.error_description.or(r.description));
            let throttled =
                token_endpoint_throttled(status, error.as_deref(), description.as_deref());
            if throttled {
                self.mint_limiter
                    .pause_for(retry_after.unwrap_or(Duration::from_secs(1)));
            }
            let error = AuthError::Rejected {
                status,
                error,
                description,
                correlation_id: correlation_id(&headers),
                retry_after,
                credentials_from: self.credentials_from.clone(),
                region_assumed: self.region_assumed,
            };
            if throttled {
                tracing::warn!(token_slot = slot, status, "token requests throttled");
            } else {
                tracing::warn!(token_slot = slot, status, "token request refused");
            }
            return Err(error);
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| AuthError::Decode {
                url,
                status,
                message: e.to_string(),
            })?;
        let ttl = Duration::from_secs(token.expires_in);
        self.counters.tokens_minted.fetch_add(1, Ordering::Relaxed);
        if generation > 1 {
            self.counters
                .token_refreshes
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            token_slot = slot,
            generation,
            expires_in_s = token.expires_in,
            "access token issued"
        );
        Ok(AccessToken {
            secret: SecretString::from(token.access_token),
            generation,
            refresh_at: Instant::now() + ttl.saturating_sub(refresh_margin(ttl)),
        })
    }
}

/// The current token of one pool slot.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    // Held across the mint: that is what makes refreshing single-flight.
    current: Mutex<Option<Arc<AccessToken>>>,
}

impl TokenCache {
    /// The cached token, minted or replaced first when absent or due for refresh.
    pub(crate) async fn token(
        &self,
        auth: &Authenticator,
        slot: usize,
    ) -> Result<Arc<AccessToken>, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(Arc::clone(token));
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let token = Arc::new(auth.mint(slot, generation).await?);
        *current = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Replaces the token after the API refused `rejected_generation` with a 401, unless another
    /// caller already did; either way returns the token to retry with.
    pub(crate) async fn refresh_after_unauthorized(
        &self,
        auth: &Authenticator,
        slot: usize,
        rejected_generation: u64,
    ) -> Result<Arc<AccessToken>, AuthError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.generation > rejected_generation
        {
            return Ok(Arc::clone(token));
        }
        let generation = current.as_ref().map_or(1, |t| t.generation) + 1;
        tracing::debug!(
            token_slot = slot,
            rejected_generation,
            "token refused (401); refreshing"
        );
        let token = Arc::new(auth.mint(slot, generation).await?);
        *current = Some(Arc::clone(&token));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_ten_percent_capped_at_a_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(86_399)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn access_token_debug_hides_the_token() {
        let token = AccessToken {
            secret: SecretString::from("tok-123456"),
            generation: 3,
            refresh_at: Instant::now(),
        };
        let debug = format!("{token:?}");
        assert!(!debug.contains("tok-123456"), "{debug}");
        assert!(debug.contains("generation: 3"));
    }

    #[test]
    fn rejection_names_the_variables_and_classifies() {
        let error = AuthError::Rejected {
            status: 401,
            error: Some("invalid_client".into()),
            description: Some("client not found".into()),
            correlation_id: Some("c-1".into()),
            retry_after: None,
            credentials_from: None,
            region_assumed: false,
        };
        let text = error.to_string();
        assert!(
            text.contains("HTTP 401 invalid_client: client not found"),
            "{text}"
        );
        assert!(text.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"), "{text}");
        assert_eq!(error.class(), ErrorClass::Terminal);
        let throttled = AuthError::Rejected {
            status: 429,
            error: None,
            description: None,
            correlation_id: None,
            retry_after: Some(Duration::from_secs(1)),
            credentials_from: None,
            region_assumed: false,
        };
        assert_eq!(throttled.class(), ErrorClass::Retryable);
    }

    #[test]
    fn the_token_endpoints_rate_limit_is_a_throttle_not_bad_credentials() {
        let rejection = |error: &str, description: &str| AuthError::Rejected {
            status: 400,
            error: Some(error.into()),
            description: Some(description.into()),
            correlation_id: None,
            retry_after: None,
            credentials_from: None,
            region_assumed: false,
        };
        for description in [
            "Rate limit exceeded",
            "client RATE LIMIT EXCEEDED, slow down",
        ] {
            let error = rejection("invalid_request", description);
            assert_eq!(error.class(), ErrorClass::Retryable, "{description}");
            let text = error.to_string();
            assert!(text.contains("own rate limit"), "{text}");
            assert!(!text.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"), "{text}");
        }
        for (error, description) in [
            ("invalid_request", "missing grant_type"),
            ("invalid_client", "rate limit exceeded"),
        ] {
            assert_eq!(
                rejection(error, description).class(),
                ErrorClass::Terminal,
                "{error}: {description}"
            );
        }
    }

    #[test]
    fn an_assumed_region_is_named_in_a_refusal_and_a_refused_token_says_what_to_do() {
        let rejection = |region_assumed| AuthError::Rejected {
            status: 401,
            error: Some("invalid_client".into()),
            description: None,
            correlation_id: None,
            retry_after: None,
            credentials_from: None,
            region_assumed,
        };
        let text = rejection(true).to_string();
        assert!(
            text.contains("us-east-1 (mypurecloud.com) was assumed"),
            "{text}"
        );
        assert!(
            text.contains("--region") && text.contains("GENESYSCLOUD_REGION"),
            "{text}"
        );
        assert!(text.contains("gc profile's environment"), "{text}");
        assert!(!rejection(false).to_string().contains("assumed"));
        let from_profile = AuthError::Rejected {
            status: 401,
            error: Some("invalid_client".into()),
            description: None,
            correlation_id: None,
            retry_after: None,
            credentials_from: Some("gc profile \"prod\" (/h/.gc/config.toml)".into()),
            region_assumed: false,
        }
        .to_string();
        assert!(
            from_profile.contains("secret of gc profile \"prod\""),
            "{from_profile}"
        );
        assert!(
            !from_profile.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
            "{from_profile}"
        );

        let refused = AuthError::TokenRefused {
            source_name: "environment GENESYSCLOUD_ACCESS_TOKEN".into(),
            region_assumed: false,
        };
        let text = refused.to_string();
        assert!(text.contains("expired or was revoked"), "{text}");
        assert!(text.contains("GENESYSCLOUD_ACCESS_TOKEN"), "{text}");
        assert!(text.contains("--resume"), "{text}");
        assert_eq!(refused.class(), ErrorClass::ResumeLater);
    }
}
