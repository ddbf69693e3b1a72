//! From connection flags to a ready `GenesysClient`.

use std::sync::Arc;

use anyhow::Context;
use genesys_core::settings::{ExplicitSettings, Settings, load_dotenv};
use genesys_core::{ClientOptions, GenesysClient, RateSpec, RequestObserver};

use crate::cli::ConnectionArgs;

/// Resolves settings (flags > environment > .env) and builds the client.
pub fn client(
    args: &ConnectionArgs,
    env_file: Option<&std::path::Path>,
    observer: Option<Arc<dyn RequestObserver>>,
) -> anyhow::Result<GenesysClient> {
    with_settings(&settings(args, env_file)?, args, observer)
}

/// Resolves where and as whom to connect. Commands that record a run call this first, so that
/// a missing credential or unknown region fails before anything is recorded.
pub fn settings(
    args: &ConnectionArgs,
    env_file: Option<&std::path::Path>,
) -> anyhow::Result<Settings> {
    load_dotenv(env_file)?;
    Ok(Settings::from_env(&ExplicitSettings {
        client_id: args.client_id.clone(),
        client_secret: None,
        region: args.region.clone(),
        api_url: args.api_url.clone(),
        login_url: args.login_url.clone(),
    })?)
}

/// Builds the client for resolved settings with the rate and pool of `args`.
pub fn with_settings(
    settings: &Settings,
    args: &ConnectionArgs,
    observer: Option<Arc<dyn RequestObserver>>,
) -> anyhow::Result<GenesysClient> {
    let options = ClientOptions {
        rate: rate_spec(args)?,
        tokens: usize::from(args.tokens),
        request_timeout: args.timeout,
        observer,
        ..ClientOptions::default()
    };
    GenesysClient::new(settings, options).context("cannot set up the Genesys client")
}

pub fn rate_spec(args: &ConnectionArgs) -> anyhow::Result<RateSpec> {
    let rate = args
        .rate
        .parse::<RateSpec>()
        .with_context(|| format!("--rate {}", args.rate))?;
    Ok(rate.with_burst(args.burst))
}
