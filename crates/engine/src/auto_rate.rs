//! `--rate auto`: the per-token budget is the org's own, read from its limits before the first
//! request, or Genesys's default (300/min) when it cannot be read.
//!
//! Unverified [?]: which namespace of `GET /api/v2/organizations/limits/namespaces/{namespace}`
//! holds `client.credentials.token.rate.per.minute` (`--limits-namespace`, default
//! `platform-api`), and which permission the call needs. Any failure falls back to the default
//! and says why.

use std::sync::Arc;
use std::time::Duration;

use genesys_core::{GenesysClient, RateSpec};

use crate::observer::{Note, RunObserver};

/// The key of the per-token budget in the org's limits.
pub const TOKEN_RATE_KEY: &str = "client.credentials.token.rate.per.minute";

/// `--rate auto` of one process: the namespace to ask, the rate to fall back to (Genesys's
/// default with the burst of the command line) and, once asked, the answer. Clones share it,
/// so the org is asked once per process.
#[derive(Clone, Debug)]
pub struct AutoRate {
    pub namespace: String,
    fallback: RateSpec,
    learned: Arc<tokio::sync::OnceCell<LearnedRate>>,
}

/// What `--rate auto` settled on.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedRate {
    /// The per-token rate used (burst included).
    pub rate: RateSpec,
    /// Whether it came from the org's limits (false: the fallback).
    pub from_org: bool,
    /// The line printed about it.
    pub note: String,
}

impl AutoRate {
    pub fn new(namespace: String, fallback: RateSpec) -> Self {
        Self {
            namespace,
            fallback,
            learned: Arc::default(),
        }
    }

    /// The rate settled on, once [`AutoRate::apply`] has run.
    pub fn learned(&self) -> Option<&LearnedRate> {
        self.learned.get()
    }

    /// Asks the org's limits through `client` (the first time only: rate-limited and observed
    /// like any request of that client), says what it found, and sets every token of `client`
    /// to the rate settled on.
    pub async fn apply(&self, client: &GenesysClient, observer: &dyn RunObserver) -> LearnedRate {
        let learned = self
            .learned
            .get_or_init(|| async {
                let learned = self.ask(client).await;
                observer.note(if learned.from_org {
                    Note::Info(learned.note.clone())
                } else {
                    // A fallback the user did not ask for.
                    Note::Warning(learned.note.clone())
                });
                learned
            })
            .await
            .clone();
        client.set_rate(learned.rate);
        learned
    }

    /// Asks the org's limits once, without setting any rate (`attrsync doctor`).
    pub async fn read(&self, client: &GenesysClient) -> LearnedRate {
        self.ask(client).await
    }

    async fn ask(&self, client: &GenesysClient) -> LearnedRate {
        let namespace = &self.namespace;
        let why = match client.org_limits(namespace).await {
            Err(error) => format!("cannot read the org's limits ({error})"),
            Ok(limits) => match limits
                .iter()
                .find(|limit| limit.key.as_deref() == Some(TOKEN_RATE_KEY))
            {
                None => format!(
                    "the org's limits in the {namespace} namespace (--limits-namespace) have no \
                     {TOKEN_RATE_KEY}"
                ),
                Some(limit) => match limit
                    .value
                    .and_then(|value| u32::try_from(value).ok())
                    .and_then(|value| RateSpec::new(value, Duration::from_secs(60)).ok())
                {
                    Some(rate) => {
                        return LearnedRate {
                            rate: rate.with_burst(self.fallback.burst()),
                            from_org: true,
                            note: format!(
                                "--rate auto: the org allows {} requests/min per token \
                                 ({namespace} namespace)",
                                rate.count()
                            ),
                        };
                    }
                    None => format!(
                        "the org's {TOKEN_RATE_KEY} is {}, not a request count",
                        limit
                            .value
                            .map_or_else(|| "missing".to_owned(), |v| v.to_string())
                    ),
                },
            },
        };
        LearnedRate {
            rate: self.fallback,
            from_org: false,
            note: format!(
                "--rate auto: {why}: using Genesys's default {}",
                self.fallback.with_burst(1)
            ),
        }
    }
}
