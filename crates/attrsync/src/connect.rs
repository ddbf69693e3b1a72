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
    load_dotenv(env_file)?;
    let explicit = ExplicitSettings {
        client_id: args.client_id.clone(),
        client_secret: None,
        region: args.region.clone(),
        api_url: args.api_url.clone(),
        login_url: args.login_url.clone(),
    };
    build(&explicit, args, observer)
}

/// Builds the client from explicit settings completed by the environment.
pub fn build(
    explicit: &ExplicitSettings,
    args: &ConnectionArgs,
    observer: Option<Arc<dyn RequestObserver>>,
) -> anyhow::Result<GenesysClient> {
    let settings = Settings::from_env(explicit)?;
    let rate = rate_spec(args)?;
    let options = ClientOptions {
        rate,
        tokens: usize::from(args.tokens),
        request_timeout: args.timeout,
        observer,
        ..ClientOptions::default()
    };
    GenesysClient::new(&settings, options).context("cannot set up the Genesys client")
}

pub fn rate_spec(args: &ConnectionArgs) -> anyhow::Result<RateSpec> {
    let rate = args
        .rate
        .parse::<RateSpec>()
        .with_context(|| format!("--rate {}", args.rate))?;
    Ok(rate.with_burst(args.burst))
}
