//! Connection settings: where to send requests and with which credentials.
//!
//! The one resolver of every source, highest first: explicit values (command-line flags) >
//! the process environment > the `.env` file > a named gc profile > defaults (primary variable
//! names before their aliases, see [`crate::env`]). Credentials are one unit, a client id with
//! its secret or an access token, taken whole from the highest source that has them, never
//! combined key by key across sources; the region is taken from the highest source that has
//! one. The sources are given by the caller (lookups and an already-read profile); this crate
//! never reads or changes the process environment itself.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

use crate::env::{self, EnvVar};
use crate::profile::{Profile, ProfileProxy};
use crate::proxy::ProxySettings;
use crate::region::{Region, UnknownRegion};

/// How attrsync authenticates. `Debug` never shows the secret or the token.
#[derive(Clone)]
pub enum Credentials {
    /// An OAuth client: tokens are minted with the client-credentials grant and refreshed.
    Client {
        client_id: String,
        client_secret: SecretString,
    },
    /// An access token issued elsewhere (`GENESYSCLOUD_ACCESS_TOKEN`, a profile's
    /// `access_token`): used as is, never refreshed; a 401 ends the run.
    Token(SecretString),
}

impl Credentials {
    /// The client id, for client credentials.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Credentials::Client { client_id, .. } => Some(client_id),
            Credentials::Token(_) => None,
        }
    }

    pub fn is_fixed_token(&self) -> bool {
        matches!(self, Credentials::Token(_))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Client { client_id, .. } => f
                .debug_struct("Client")
                .field("client_id", client_id)
                .field("client_secret", &"[REDACTED]")
                .finish(),
            Credentials::Token(_) => f.debug_tuple("Token").field(&"[REDACTED]").finish(),
        }
    }
}

/// Values given explicitly (flags), already parsed; each one wins over the environment. Parse
/// URLs with [`parse_api_url`] and [`parse_login_url`] (they are checked again on resolution).
#[derive(Clone, Debug, Default)]
pub struct ExplicitSettings {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub region: Option<Region>,
    pub api_url: Option<Url>,
    pub login_url: Option<Url>,
    /// `--ca-cert`: a PEM file of CAs to trust besides the platform's.
    pub ca_cert: Option<PathBuf>,
}

/// The sources below the flags: two lookups and a profile already read (see
/// [`crate::profile::read`]).
pub struct Sources<'a> {
    /// The process environment.
    pub environment: &'a dyn Fn(&str) -> Option<String>,
    /// The `.env` file's values.
    pub dotenv: &'a dyn Fn(&str) -> Option<String>,
    pub profile: Option<&'a Profile>,
}

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Environment(&'static str),
    DotEnv(&'static str),
    Profile {
        name: String,
        path: PathBuf,
    },
    /// Nothing gave it: the default (us-east-1 for the region).
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Environment(name) => write!(f, "environment {name}"),
            Source::DotEnv(name) => write!(f, ".env {name}"),
            Source::Profile { name, path } => {
                write!(f, "gc profile {name:?} ({})", path.display())
            }
            Source::Default => f.write_str("default"),
        }
    }
}

/// Where each resolved setting came from (for warnings and `attrsync doctor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingSources {
    /// The client id's (or the access token's) source.
    pub credentials: Source,
    /// The client secret's source (the token's, for a token).
    pub secret: Source,
    pub region: Source,
    pub api_url: Option<Source>,
    pub login_url: Option<Source>,
}

/// Resolved connection settings. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The region used for the hosts, or `None` when both URLs are overridden.
    pub region: Option<Region>,
    /// API base URL without a trailing slash, e.g. `https://api.mypurecloud.ie`.
    pub api_base: Url,
    /// Login base URL; the token endpoint is `<login_base>/oauth/token`.
    pub login_base: Url,
    pub credentials: Credentials,
    pub sources: SettingSources,
    /// The named profile's `proxy_*` keys, parsed and validated; applied through `proxy` when
    /// no proxy variable is set.
    pub profile_proxy: Option<ProfileProxy>,
    /// The proxies of login, API and notification traffic (`HTTPS_PROXY`, ..., else the
    /// profile's), if any.
    pub proxy: Option<ProxySettings>,
    /// A PEM file of CAs trusted besides the platform's (`--ca-cert`, else `SSL_CERT_FILE`).
    pub ca_cert: Option<PathBuf>,
    /// What the caller should show: a named profile overridden by a higher source, credentials
    /// sent to a plain-http proxy.
    pub warnings: Vec<String>,
}

/// Why connection settings could not be resolved. Messages name what to set.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No source gives credentials; the message lists the three ways to give them.
    #[error(
        "missing Genesys Cloud credentials; give them in one of three ways: set {} (or {}) and {} (or {}), set {}, or name a gc profile with --profile",
        env::CLIENT_ID.name,
        env::CLIENT_ID_ALIAS.name,
        env::CLIENT_SECRET.name,
        env::CLIENT_SECRET_ALIAS.name,
        env::ACCESS_TOKEN.name
    )]
    MissingCredentials,
    #[error(
        "{have} is set in {place} but {missing} is not: set both there (a client id and its secret are always taken from one place, never combined across flags, environment, .env and profile)"
    )]
    IncompleteCredentials {
        place: String,
        have: String,
        missing: String,
    },
    #[error("{source_name}: {error}")]
    UnknownRegion {
        /// Where the bad name came from (a flag, a variable or a profile).
        source_name: String,
        error: UnknownRegion,
    },
    /// `value` is `None` when it may hold credentials (it has an `@`): never shown then.
    #[error("invalid {which}{}: {reason}", value.as_ref().map(|v| format!(" {v:?}")).unwrap_or_default())]
    InvalidUrl {
        which: &'static str,
        value: Option<String>,
        reason: String,
    },
    #[error(
        "refusing plain http:// for {which} {url}: only loopback hosts (127.0.0.0/8, ::1, localhost) may use http; use https://"
    )]
    InsecureUrl { which: &'static str, url: String },
    #[error(
        "cannot derive the login URL from API URL {api_url} (its host does not start with `api.`); set the login URL explicitly ({})",
        env::LOGIN_URL.name
    )]
    CannotDeriveLoginUrl { api_url: String },
    /// A proxy variable that cannot be used; `reason` never holds its credentials.
    #[error("invalid {var}: {reason}")]
    InvalidProxy { var: &'static str, reason: String },
}

/// A variable's value from one lookup: primary name first, then the alias.
fn read_var(
    lookup: &dyn Fn(&str) -> Option<String>,
    primary: EnvVar,
    alias: Option<EnvVar>,
) -> Option<(String, &'static str)> {
    std::iter::once(primary)
        .chain(alias)
        .find_map(|var| non_empty(lookup(var.name)).map(|value| (value, var.name)))
}

/// What one source holds of the credentials.
enum Held {
    Nothing,
    Complete(Credentials, Source, Source),
    Incomplete {
        place: String,
        have: String,
        missing: String,
    },
}

/// The credentials of an environment-like source (the environment or `.env`). Within one
/// source, a client id with its secret wins over an access token: it can be refreshed.
fn held_in_lookup(
    lookup: &dyn Fn(&str) -> Option<String>,
    place: &str,
    source: fn(&'static str) -> Source,
) -> Held {
    let id = read_var(lookup, env::CLIENT_ID, Some(env::CLIENT_ID_ALIAS));
    let secret = read_var(lookup, env::CLIENT_SECRET, Some(env::CLIENT_SECRET_ALIAS));
    let token = read_var(lookup, env::ACCESS_TOKEN, None);
    match (id, secret, token) {
        (Some((id, id_var)), Some((secret, secret_var)), _) => Held::Complete(
            Credentials::Client {
                client_id: id,
                client_secret: SecretString::from(secret),
            },
            source(id_var),
            source(secret_var),
        ),
        (_, _, Some((token, var))) => Held::Complete(
            Credentials::Token(SecretString::from(token)),
            source(var),
            source(var),
        ),
        (Some((_, id_var)), None, None) => Held::Incomplete {
            place: place.to_owned(),
            have: id_var.to_owned(),
            missing: format!(
                "{} (or {})",
                env::CLIENT_SECRET.name,
                env::CLIENT_SECRET_ALIAS.name
            ),
        },
        (None, Some((_, secret_var)), None) => Held::Incomplete {
            place: place.to_owned(),
            have: secret_var.to_owned(),
            missing: format!("{} (or {})", env::CLIENT_ID.name, env::CLIENT_ID_ALIAS.name),
        },
        (None, None, None) => Held::Nothing,
    }
}

fn held_in_profile(profile: &Profile) -> Held {
    let source = Source::Profile {
        name: profile.name.clone(),
        path: profile.path.clone(),
    };
    let place = format!("gc profile {:?}", profile.name);
    match (
        &profile.client_id,
        &profile.client_secret,
        &profile.access_token,
    ) {
        (Some(id), Some(secret), _) => Held::Complete(
            Credentials::Client {
                client_id: id.clone(),
                client_secret: secret.clone(),
            },
            source.clone(),
            source,
        ),
        (_, _, Some(token)) => {
            Held::Complete(Credentials::Token(token.clone()), source.clone(), source)
        }
        (Some(_), None, None) => Held::Incomplete {
            place,
            have: "client_credentials".to_owned(),
            missing: "client_secret".to_owned(),
        },
        (None, Some(_), None) => Held::Incomplete {
            place,
            have: "client_secret".to_owned(),
            missing: "client_credentials".to_owned(),
        },
        (None, None, None) => Held::Nothing,
    }
}

/// The credentials, as one unit from the highest source that has them.
fn resolve_credentials(
    explicit: &ExplicitSettings,
    sources: &Sources<'_>,
) -> Result<(Credentials, Source, Source), SettingsError> {
    let flag_secret = explicit
        .client_secret
        .clone()
        .filter(|s| !s.expose_secret().trim().is_empty());
    if let Some(id) = non_empty(explicit.client_id.clone()) {
        if let Some(secret) = flag_secret {
            return Ok((
                Credentials::Client {
                    client_id: id,
                    client_secret: secret,
                },
                Source::Flag("--client-id"),
                Source::Flag("--client-secret"),
            ));
        }
        // The secret never comes from a flag (shell history, process lists): --client-id takes
        // the secret of the environment, else of `.env`, else of the profile when the profile
        // names the same client.
        let secret_in = |lookup: &dyn Fn(&str) -> Option<String>,
                         source: fn(&'static str) -> Source| {
            read_var(lookup, env::CLIENT_SECRET, Some(env::CLIENT_SECRET_ALIAS))
                .map(|(secret, var)| (SecretString::from(secret), source(var)))
        };
        let secret = secret_in(sources.environment, Source::Environment)
            .or_else(|| secret_in(sources.dotenv, Source::DotEnv))
            .or_else(|| {
                let profile = sources.profile?;
                (profile.client_id.as_deref() == Some(id.as_str()))
                    .then(|| profile.client_secret.clone())
                    .flatten()
                    .map(|secret| {
                        (
                            secret,
                            Source::Profile {
                                name: profile.name.clone(),
                                path: profile.path.clone(),
                            },
                        )
                    })
            });
        return match secret {
            Some((secret, secret_source)) => Ok((
                Credentials::Client {
                    client_id: id,
                    client_secret: secret,
                },
                Source::Flag("--client-id"),
                secret_source,
            )),
            None => Err(SettingsError::IncompleteCredentials {
                place: "a flag".to_owned(),
                have: "--client-id".to_owned(),
                missing: format!(
                    "its secret ({} in the environment or .env)",
                    env::CLIENT_SECRET.name
                ),
            }),
        };
    }
    let layers = [
        held_in_lookup(sources.environment, "the environment", Source::Environment),
        held_in_lookup(sources.dotenv, ".env", Source::DotEnv),
        sources.profile.map_or(Held::Nothing, held_in_profile),
    ];
    for held in layers {
        match held {
            Held::Nothing => continue,
            Held::Complete(credentials, source, secret) => {
                return Ok((credentials, source, secret));
            }
            Held::Incomplete {
                place,
                have,
                missing,
            } => {
                return Err(SettingsError::IncompleteCredentials {
                    place,
                    have,
                    missing,
                });
            }
        }
    }
    Err(SettingsError::MissingCredentials)
}

/// The region from the highest source that has one, or the default.
fn resolve_region(
    explicit: &ExplicitSettings,
    sources: &Sources<'_>,
) -> Result<(Option<Region>, Source), SettingsError> {
    if let Some(region) = explicit.region {
        return Ok((Some(region), Source::Flag("--region")));
    }
    let parse = |name: &str, source: Source| {
        Region::from_name(name)
            .map(|region| (Some(region), source.clone()))
            .map_err(|error| SettingsError::UnknownRegion {
                source_name: match &source {
                    Source::Environment(var) => (*var).to_owned(),
                    other => other.to_string(),
                },
                error,
            })
    };
    if let Some((name, var)) = read_var(sources.environment, env::REGION, Some(env::REGION_ALIAS)) {
        return parse(&name, Source::Environment(var));
    }
    if let Some((name, var)) = read_var(sources.dotenv, env::REGION, Some(env::REGION_ALIAS)) {
        return parse(&name, Source::DotEnv(var));
    }
    if let Some(profile) = sources.profile
        && let Some(environment) = &profile.environment
    {
        return parse(
            environment,
            Source::Profile {
                name: profile.name.clone(),
                path: profile.path.clone(),
            },
        );
    }
    Ok((None, Source::Default))
}

/// A URL from the flag, else the environment, else `.env` (profiles hold no URLs).
fn resolve_url(
    flag: Option<&Url>,
    flag_name: &'static str,
    var: EnvVar,
    sources: &Sources<'_>,
    parse: fn(&str) -> Result<Url, SettingsError>,
) -> Result<Option<(Url, Source)>, SettingsError> {
    if let Some(url) = flag {
        return Ok(Some((parse(url.as_str())?, Source::Flag(flag_name))));
    }
    if let Some((value, name)) = read_var(sources.environment, var, None) {
        return Ok(Some((parse(&value)?, Source::Environment(name))));
    }
    if let Some((value, name)) = read_var(sources.dotenv, var, None) {
        return Ok(Some((parse(&value)?, Source::DotEnv(name))));
    }
    Ok(None)
}

impl Settings {
    /// Resolves settings from explicit values and one lookup taken as the environment (no
    /// `.env`, no profile): for callers with a single source, e.g. the demo and tests.
    pub fn resolve(
        explicit: &ExplicitSettings,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        Self::resolve_from(
            explicit,
            &Sources {
                environment: lookup,
                dotenv: &|_| None,
                profile: None,
            },
        )
    }

    /// Resolves settings from every source; see the module's documentation for the order.
    pub fn resolve_from(
        explicit: &ExplicitSettings,
        sources: &Sources<'_>,
    ) -> Result<Self, SettingsError> {
        let (credentials, credentials_source, secret_source) =
            resolve_credentials(explicit, sources)?;
        let api_url = resolve_url(
            explicit.api_url.as_ref(),
            "--api-url",
            env::API_URL,
            sources,
            parse_api_url,
        )?;
        let login_url = resolve_url(
            explicit.login_url.as_ref(),
            "--login-url",
            env::LOGIN_URL,
            sources,
            parse_login_url,
        )?;

        let mut warnings = Vec::new();
        let (region, region_source, region_unused) = match (
            resolve_region(explicit, sources),
            &api_url,
        ) {
            (Ok((region, source)), _) => (region, source, false),
            // The API URL gives the hosts, so the region is not needed: a name that is no
            // region (gc's `localhost` environment) is said, not refused.
            (Err(SettingsError::UnknownRegion { source_name, error }), Some((_, api_source))) => {
                warnings.push(format!(
                    "{source_name}: {:?} is not a Genesys Cloud region; not needed, the API URL from {api_source} gives the hosts",
                    error.name.trim()
                ));
                (None, Source::Default, true)
            }
            (Err(error), _) => return Err(error),
        };
        if let Some(profile) = sources.profile {
            let from_profile = |source: &Source| matches!(source, Source::Profile { .. });
            let profile_has_credentials = profile.client_id.is_some()
                || profile.client_secret.is_some()
                || profile.access_token.is_some();
            if profile_has_credentials
                && !from_profile(&credentials_source)
                && !from_profile(&secret_source)
            {
                warnings.push(format!(
                    "the credentials of gc profile {:?} are not used: {} overrides them",
                    profile.name, credentials_source
                ));
            }
            if profile.environment.is_some() && !from_profile(&region_source) && !region_unused {
                warnings.push(format!(
                    "the environment of gc profile {:?} is not used: {} overrides it",
                    profile.name, region_source
                ));
            }
        }

        let effective_region = region.unwrap_or(Region::DEFAULT);
        let api_base = match &api_url {
            Some((url, _)) => url.clone(),
            None => parse_base_url("API URL", &effective_region.api_base())?,
        };
        let login_base = match (&login_url, &api_url) {
            (Some((url, _)), _) => url.clone(),
            (None, Some(_)) => derive_login_base(&api_base)?,
            (None, None) => parse_base_url("login URL", &effective_region.login_base())?,
        };
        let region = match (&api_url, &login_url) {
            (Some(_), Some(_)) => region,
            _ => Some(effective_region),
        };

        let proxy = ProxySettings::resolve(
            &[sources.environment, sources.dotenv],
            sources.profile.and_then(|p| p.proxy.as_ref()),
        )?;
        if let Some(proxy) = &proxy {
            warnings.extend(proxy.warnings());
        }
        let ca_cert = explicit.ca_cert.clone().or_else(|| {
            [sources.environment, sources.dotenv]
                .into_iter()
                .find_map(|lookup| read_var(lookup, env::SSL_CERT_FILE, None))
                .map(|(path, _)| PathBuf::from(path))
        });

        Ok(Settings {
            region,
            api_base,
            login_base,
            credentials,
            sources: SettingSources {
                credentials: credentials_source,
                secret: secret_source,
                region: region_source,
                api_url: api_url.map(|(_, source)| source),
                login_url: login_url.map(|(_, source)| source),
            },
            profile_proxy: sources.profile.and_then(|p| p.proxy.clone()),
            proxy,
            ca_cert,
            warnings,
        })
    }

    /// Whether no source gave a region and the hosts are the default region's (us-east-1):
    /// an authentication failure then says so.
    pub fn region_assumed(&self) -> bool {
        self.sources.region == Source::Default && self.sources.api_url.is_none()
    }

    /// `<login_base>/oauth/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.login_base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["oauth", "token"]);
        }
        url
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The path of the API that every route starts with; a base URL copied from documentation or a
/// browser often ends with it.
const API_PREFIX: &str = "/api/v2";

/// Parses an API base URL (`--api-url`, `GENESYSCLOUD_API_URL`): https, or http to loopback;
/// no path but a trailing `/api/v2`, which is dropped (every route already starts with it).
pub fn parse_api_url(value: &str) -> Result<Url, SettingsError> {
    let mut url = parse_base_url("API URL", value)?;
    let path = url.path().trim_end_matches('/').to_owned();
    if path == API_PREFIX {
        tracing::debug!(
            "API URL {value} ends with {API_PREFIX}; using {} (every route starts with {API_PREFIX})",
            url.origin().ascii_serialization()
        );
        url.set_path("");
    } else if !path.is_empty() {
        return Err(SettingsError::InvalidUrl {
            which: "API URL",
            value: Some(value.trim().to_owned()),
            reason: format!(
                "a base URL takes no path (found {path}); give the scheme and host only, e.g. https://api.mypurecloud.com"
            ),
        });
    }
    Ok(url)
}

/// Parses a login base URL (`--login-url`, `GENESYSCLOUD_LOGIN_URL`): https, or http to loopback.
pub fn parse_login_url(value: &str) -> Result<Url, SettingsError> {
    parse_base_url("login URL", value)
}

/// Parses a base URL and enforces https except for loopback hosts.
fn parse_base_url(which: &'static str, value: &str) -> Result<Url, SettingsError> {
    let invalid = |reason: &str| SettingsError::InvalidUrl {
        which,
        value: Some(value.to_owned()),
        reason: reason.to_owned(),
    };
    // An `@` is credentials (a base URL has no path or query to hold one), or a malformed
    // attempt at them (a password with `/`, `?` or `#` ends the authority early): the value is
    // then never shown, nor any part of it.
    if value.contains('@') {
        return Err(SettingsError::InvalidUrl {
            which,
            value: None,
            reason: "credentials in the URL are not accepted; use the credential variables"
                .to_owned(),
        });
    }
    let mut url = Url::parse(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.host().is_none() {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(SettingsError::InsecureUrl {
                which,
                url: value.trim().to_owned(),
            });
        }
        other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// Whether the URL's host is 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Login base from an API base: the same origin on loopback (the simulator serves both), else
/// `api.` replaced with `login.`, as the official SDKs do.
fn derive_login_base(api_base: &Url) -> Result<Url, SettingsError> {
    let mut login = api_base.clone();
    login.set_path("");
    if is_loopback(api_base) {
        return Ok(login);
    }
    let host = api_base.host_str().unwrap_or_default();
    let Some(rest) = host.strip_prefix("api.") else {
        return Err(SettingsError::CannotDeriveLoginUrl {
            api_url: api_base.to_string(),
        });
    };
    login
        .set_host(Some(&format!("login.{rest}")))
        .map_err(|e| SettingsError::InvalidUrl {
            which: "login URL",
            value: Some(api_base.to_string()),
            reason: e.to_string(),
        })?;
    Ok(login)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn resolve(
        explicit: &ExplicitSettings,
        vars: &[(&str, &str)],
    ) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::resolve(explicit, &|name| vars.get(name).cloned())
    }

    fn secret(credentials: &Credentials) -> &str {
        match credentials {
            Credentials::Client { client_secret, .. } => client_secret.expose_secret(),
            Credentials::Token(token) => token.expose_secret(),
        }
    }

    const CREDS: &[(&str, &str)] = &[
        ("GENESYSCLOUD_OAUTHCLIENT_ID", "env-id"),
        ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "env-secret"),
    ];

    fn with_creds(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        CREDS.iter().chain(extra).copied().collect()
    }

    #[test]
    fn defaults_to_us_east_1_hosts() {
        let s = resolve(&ExplicitSettings::default(), CREDS).unwrap();
        assert_eq!(s.region, Some(Region::DEFAULT));
        assert_eq!(s.api_base.as_str(), "https://api.mypurecloud.com/");
        assert_eq!(
            s.token_url().as_str(),
            "https://login.mypurecloud.com/oauth/token"
        );
        assert_eq!(s.credentials.client_id().unwrap(), "env-id");
        assert_eq!(secret(&s.credentials), "env-secret");
    }

    #[test]
    fn explicit_values_win_over_environment() {
        let explicit = ExplicitSettings {
            client_id: Some("flag-id".into()),
            client_secret: Some("flag-secret".into()),
            region: Some(Region::from_name("eu-west-1").unwrap()),
            ..Default::default()
        };
        let s = resolve(
            &explicit,
            &with_creds(&[("GENESYSCLOUD_REGION", "ap-south-1")]),
        )
        .unwrap();
        assert_eq!(s.credentials.client_id().unwrap(), "flag-id");
        assert_eq!(secret(&s.credentials), "flag-secret");
        assert_eq!(s.api_base.as_str(), "https://api.mypurecloud.ie/");
    }

    #[test]
    fn primary_names_win_over_aliases() {
        let vars = with_creds(&[
            ("GENESYS_CLIENT_ID", "alias-id"),
            ("GENESYS_CLIENT_SECRET", "alias-secret"),
            ("GENESYSCLOUD_REGION", "eu-central-1"),
            ("GENESYS_ENVIRONMENT", "ap-south-1"),
        ]);
        let s = resolve(&ExplicitSettings::default(), &vars).unwrap();
        assert_eq!(s.credentials.client_id().unwrap(), "env-id");
        assert_eq!(secret(&s.credentials), "env-secret");
        assert_eq!(s.region.unwrap().name(), "eu-central-1");
    }

    #[test]
    fn aliases_are_used_when_primary_names_are_unset_or_empty() {
        let vars = [
            ("GENESYSCLOUD_OAUTHCLIENT_ID", ""),
            ("GENESYS_CLIENT_ID", "alias-id"),
            ("GENESYS_CLIENT_SECRET", "alias-secret"),
            (
                "GENESYS_ENVIRONMENT",
                "mypurecloud-not-a-region-but-ap-south-1",
            ),
        ];
        // An alias region is validated like the primary one.
        let err = resolve(&ExplicitSettings::default(), &vars).unwrap_err();
        assert!(err.to_string().starts_with("GENESYS_ENVIRONMENT:"), "{err}");

        let vars = [
            ("GENESYS_CLIENT_ID", "alias-id"),
            ("GENESYS_CLIENT_SECRET", "alias-secret"),
            ("GENESYS_ENVIRONMENT", "ap-south-1"),
        ];
        let s = resolve(&ExplicitSettings::default(), &vars).unwrap();
        assert_eq!(s.credentials.client_id().unwrap(), "alias-id");
        assert_eq!(s.api_base.as_str(), "https://api.aps1.pure.cloud/");
    }

    #[test]
    fn missing_credentials_name_the_variables_to_set() {
        let err = resolve(&ExplicitSettings::default(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing Genesys Cloud credentials; give them in one of three ways: \
             set GENESYSCLOUD_OAUTHCLIENT_ID (or GENESYS_CLIENT_ID) and \
             GENESYSCLOUD_OAUTHCLIENT_SECRET (or GENESYS_CLIENT_SECRET), \
             set GENESYSCLOUD_ACCESS_TOKEN, or name a gc profile with --profile"
        );

        let err = resolve(
            &ExplicitSettings::default(),
            &[("GENESYSCLOUD_OAUTHCLIENT_ID", "id")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("GENESYSCLOUD_OAUTHCLIENT_ID is set in the environment but GENESYSCLOUD_OAUTHCLIENT_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn unknown_region_lists_valid_regions() {
        let message = resolve(
            &ExplicitSettings::default(),
            &with_creds(&[("GENESYSCLOUD_REGION", "moon-1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("GENESYSCLOUD_REGION"), "{message}");
        assert!(message.contains("moon-1"), "{message}");
        assert!(message.contains("eu-west-1") && message.contains("eusc-de-east-1"));
    }

    #[test]
    fn plain_http_is_refused_for_non_loopback_hosts() {
        for text in [
            "http://api.mypurecloud.com",
            "http://10.0.0.1:8080",
            "http://gateway.example",
        ] {
            let explicit = ExplicitSettings {
                api_url: Some(url(text)),
                login_url: Some(url("https://login.example")),
                ..Default::default()
            };
            let err = resolve(&explicit, CREDS).unwrap_err();
            assert!(
                matches!(err, SettingsError::InsecureUrl { .. }),
                "{text}: {err}"
            );
            assert!(matches!(
                parse_api_url(text).unwrap_err(),
                SettingsError::InsecureUrl { .. }
            ));
        }
        let explicit = ExplicitSettings {
            login_url: Some(url("http://login.example")),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&explicit, CREDS).unwrap_err(),
            SettingsError::InsecureUrl { .. }
        ));
    }

    #[test]
    fn plain_http_is_accepted_for_loopback_with_login_on_the_same_origin() {
        for (text, origin) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.1.2.3:9", "http://127.1.2.3:9"),
            ("http://localhost:8080/", "http://localhost:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            let explicit = ExplicitSettings {
                api_url: Some(url(text)),
                ..Default::default()
            };
            let s = resolve(&explicit, CREDS).unwrap();
            assert_eq!(s.api_base.as_str(), format!("{origin}/"));
            assert_eq!(s.token_url().as_str(), format!("{origin}/oauth/token"));
        }
    }

    #[test]
    fn login_url_is_derived_by_replacing_api_with_login() {
        let explicit = ExplicitSettings {
            api_url: Some(url("https://api.example.test:8443/")),
            ..Default::default()
        };
        let s = resolve(&explicit, CREDS).unwrap();
        assert_eq!(s.api_base.as_str(), "https://api.example.test:8443/");
        assert_eq!(
            s.token_url().as_str(),
            "https://login.example.test:8443/oauth/token"
        );

        let explicit = ExplicitSettings {
            api_url: Some(url("https://gateway.example.test")),
            ..Default::default()
        };
        let err = resolve(&explicit, CREDS).unwrap_err();
        assert!(err.to_string().contains("GENESYSCLOUD_LOGIN_URL"), "{err}");
    }

    #[test]
    fn url_overrides_come_from_the_environment_too() {
        let vars = with_creds(&[
            ("GENESYSCLOUD_API_URL", "https://api.gw.test"),
            ("GENESYSCLOUD_LOGIN_URL", "https://auth.gw.test"),
        ]);
        let s = resolve(&ExplicitSettings::default(), &vars).unwrap();
        assert_eq!(s.api_base.host_str(), Some("api.gw.test"));
        assert_eq!(s.token_url().as_str(), "https://auth.gw.test/oauth/token");
        assert_eq!(s.region, None);
    }

    #[test]
    fn urls_with_credentials_are_rejected() {
        let explicit = ExplicitSettings {
            api_url: Some(url("https://user:pw@api.example.test")),
            ..Default::default()
        };
        let err = resolve(&explicit, CREDS).unwrap_err().to_string();
        assert!(err.contains("credentials in the URL"), "{err}");
        assert!(!err.contains("pw"), "{err}");
    }

    /// A password holding `/`, `?` or `#` ends the URL's authority early, leaving it in a
    /// path, a query or a fragment: such a URL is refused without showing any of it.
    #[test]
    fn a_url_with_a_broken_password_is_refused_without_showing_it() {
        for text in [
            "https://user:12/SECRETPART@api.example.test",
            "https://user:12?SECRETPART@api.example.test",
            "https://user:12#SECRETPART@api.example.test",
            "https://user:ab/SECRETPART@api.example.test",
        ] {
            for err in [parse_api_url(text), parse_login_url(text)] {
                let err = err.unwrap_err().to_string();
                assert!(err.contains("credentials in the URL"), "{text}: {err}");
                assert!(!err.contains("SECRETPART"), "{text}: {err}");
                assert!(!err.contains("user"), "{text}: {err}");
            }
        }
    }

    #[test]
    fn a_trailing_api_prefix_is_dropped_from_the_api_url() {
        for text in [
            "https://api.mypurecloud.ie/api/v2",
            "https://api.mypurecloud.ie/api/v2/",
            "https://api.mypurecloud.ie/api/v2//",
        ] {
            let parsed = parse_api_url(text).unwrap();
            assert_eq!(parsed.as_str(), "https://api.mypurecloud.ie/", "{text}");
        }
        let parsed = parse_api_url("http://127.0.0.1:8642/api/v2").unwrap();
        assert_eq!(parsed.as_str(), "http://127.0.0.1:8642/");
        let vars = with_creds(&[("GENESYSCLOUD_API_URL", "https://api.mypurecloud.ie/api/v2/")]);
        let s = resolve(&ExplicitSettings::default(), &vars).unwrap();
        assert_eq!(s.api_base.as_str(), "https://api.mypurecloud.ie/");
        assert_eq!(
            s.token_url().as_str(),
            "https://login.mypurecloud.ie/oauth/token"
        );
    }

    #[test]
    fn any_other_path_on_the_api_url_is_refused() {
        for text in [
            "https://api.mypurecloud.ie/prefix",
            "https://api.mypurecloud.ie/api",
            "https://api.mypurecloud.ie/api/v2/conversations",
            "https://api.mypurecloud.ie/v2/api/v2",
        ] {
            let err = parse_api_url(text).unwrap_err();
            assert!(
                matches!(err, SettingsError::InvalidUrl { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("takes no path"), "{text}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = resolve(&ExplicitSettings::default(), CREDS).unwrap();
        let debug = format!("{s:?} {:?}", s.credentials);
        assert!(!debug.contains("env-secret"), "{debug}");
        assert!(debug.contains("env-id"));
        let explicit = ExplicitSettings {
            client_secret: Some("flag-secret".into()),
            ..Default::default()
        };
        assert!(!format!("{explicit:?}").contains("flag-secret"));
    }

    /// The precedence table of the README, row by row: each source over the ones below it.
    mod precedence {
        use std::path::Path;

        use super::*;
        use crate::profile;

        fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
            let vars: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |name| vars.get(name).cloned()
        }

        fn profile(text: &str) -> Profile {
            profile::parse(text, Path::new("/home/u/.gc/config.toml"), "prod").unwrap()
        }

        const PROFILE: &str = "[prod]\nclient_credentials = \"profile-id\"\nclient_secret = \"profile-secret\"\nenvironment = \"mypurecloud.de\"\n";

        fn resolve_all(
            explicit: &ExplicitSettings,
            environment: &[(&str, &str)],
            dotenv: &[(&str, &str)],
            profile: Option<&Profile>,
        ) -> Result<Settings, SettingsError> {
            let environment = lookup(environment);
            let dotenv = lookup(dotenv);
            Settings::resolve_from(
                explicit,
                &Sources {
                    environment: &environment,
                    dotenv: &dotenv,
                    profile,
                },
            )
        }

        const DOTENV: &[(&str, &str)] = &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "dotenv-id"),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "dotenv-secret"),
            ("GENESYSCLOUD_REGION", "ap-south-1"),
        ];
        const ENV: &[(&str, &str)] = &[
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "env-id"),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "env-secret"),
            ("GENESYSCLOUD_REGION", "eu-west-2"),
        ];

        #[test]
        fn each_source_wins_over_the_ones_below_it() {
            let p = profile(PROFILE);
            let s = resolve_all(&ExplicitSettings::default(), &[], &[], Some(&p)).unwrap();
            assert_eq!(s.credentials.client_id(), Some("profile-id"));
            assert_eq!(secret(&s.credentials), "profile-secret");
            assert_eq!(s.region.unwrap().name(), "eu-central-1");
            assert!(matches!(s.sources.credentials, Source::Profile { .. }));
            assert!(matches!(s.sources.region, Source::Profile { .. }));
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);

            let s = resolve_all(&ExplicitSettings::default(), &[], DOTENV, Some(&p)).unwrap();
            assert_eq!(s.credentials.client_id(), Some("dotenv-id"));
            assert_eq!(secret(&s.credentials), "dotenv-secret");
            assert_eq!(s.region.unwrap().name(), "ap-south-1");
            assert_eq!(
                s.sources.credentials,
                Source::DotEnv("GENESYSCLOUD_OAUTHCLIENT_ID")
            );
            assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
            assert!(s.warnings[0].contains("\"prod\"") && s.warnings[0].contains(".env"));

            let s = resolve_all(&ExplicitSettings::default(), ENV, DOTENV, Some(&p)).unwrap();
            assert_eq!(s.credentials.client_id(), Some("env-id"));
            assert_eq!(secret(&s.credentials), "env-secret");
            assert_eq!(s.region.unwrap().name(), "eu-west-2");
            assert_eq!(s.sources.region, Source::Environment("GENESYSCLOUD_REGION"));

            let explicit = ExplicitSettings {
                client_id: Some("flag-id".into()),
                region: Some(Region::from_name("eu-west-1").unwrap()),
                ..Default::default()
            };
            let s = resolve_all(&explicit, ENV, DOTENV, Some(&p)).unwrap();
            assert_eq!(s.credentials.client_id(), Some("flag-id"));
            // The secret of --client-id comes from the environment, never from a flag.
            assert_eq!(secret(&s.credentials), "env-secret");
            assert_eq!(s.sources.credentials, Source::Flag("--client-id"));
            assert_eq!(
                s.sources.secret,
                Source::Environment("GENESYSCLOUD_OAUTHCLIENT_SECRET")
            );
            assert_eq!(s.region.unwrap().name(), "eu-west-1");
            assert_eq!(s.sources.region, Source::Flag("--region"));
        }

        #[test]
        fn credentials_are_never_combined_across_sources() {
            let p = profile(PROFILE);
            // An id in the environment and a secret in the profile are not a pair.
            let err = resolve_all(
                &ExplicitSettings::default(),
                &[("GENESYSCLOUD_OAUTHCLIENT_ID", "env-id")],
                &[],
                Some(&p),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("set in the environment"), "{err}");
            assert!(err.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"), "{err}");
            // Nor a secret in the environment and an id in .env.
            let err = resolve_all(
                &ExplicitSettings::default(),
                &[("GENESYSCLOUD_OAUTHCLIENT_SECRET", "env-secret")],
                &[("GENESYSCLOUD_OAUTHCLIENT_ID", "dotenv-id")],
                None,
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET is set in the environment"),
                "{err}"
            );
            // A profile with an id and no secret is incomplete too.
            let half = profile("[prod]\nclient_credentials = \"profile-id\"\n");
            let err = resolve_all(&ExplicitSettings::default(), &[], &[], Some(&half))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("client_credentials is set in gc profile \"prod\" but client_secret"),
                "{err}"
            );
            // --client-id pairs with a profile's secret only when the profile names that client.
            let explicit = ExplicitSettings {
                client_id: Some("other-id".into()),
                ..Default::default()
            };
            let err = resolve_all(&explicit, &[], &[], Some(&p))
                .unwrap_err()
                .to_string();
            assert!(err.contains("--client-id"), "{err}");
            let explicit = ExplicitSettings {
                client_id: Some("profile-id".into()),
                ..Default::default()
            };
            let s = resolve_all(&explicit, &[], &[], Some(&p)).unwrap();
            assert_eq!(secret(&s.credentials), "profile-secret");
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        }

        #[test]
        fn an_access_token_is_a_unit_of_its_source() {
            let p = profile(PROFILE);
            let s = resolve_all(
                &ExplicitSettings::default(),
                &[("GENESYSCLOUD_ACCESS_TOKEN", "env-token")],
                DOTENV,
                Some(&p),
            )
            .unwrap();
            assert!(s.credentials.is_fixed_token());
            assert_eq!(secret(&s.credentials), "env-token");
            assert_eq!(
                s.sources.credentials,
                Source::Environment("GENESYSCLOUD_ACCESS_TOKEN")
            );
            assert!(!format!("{s:?}").contains("env-token"));
            // Within one source, a client id with its secret wins (it can be refreshed).
            let mut both = ENV.to_vec();
            both.push(("GENESYSCLOUD_ACCESS_TOKEN", "env-token"));
            let s = resolve_all(&ExplicitSettings::default(), &both, &[], None).unwrap();
            assert_eq!(s.credentials.client_id(), Some("env-id"));
            // A token-only profile.
            let t = profile(
                "[prod]\naccess_token = \"profile-token\"\nenvironment = \"eu_central_2\"\n",
            );
            let s = resolve_all(&ExplicitSettings::default(), &[], &[], Some(&t)).unwrap();
            assert_eq!(secret(&s.credentials), "profile-token");
            assert_eq!(s.region.unwrap().name(), "eu-central-2");
            // A token and half a pair in one source: the token is the unit.
            let s = resolve_all(
                &ExplicitSettings::default(),
                &[
                    ("GENESYSCLOUD_ACCESS_TOKEN", "t"),
                    ("GENESYSCLOUD_OAUTHCLIENT_ID", "x"),
                ],
                &[],
                None,
            )
            .unwrap();
            assert!(s.credentials.is_fixed_token());
        }

        #[test]
        fn the_region_is_never_a_silent_guess() {
            let s = resolve_all(&ExplicitSettings::default(), ENV, &[], None).unwrap();
            assert!(!s.region_assumed());
            let s = resolve_all(&ExplicitSettings::default(), CREDS, &[], None).unwrap();
            assert!(s.region_assumed());
            assert_eq!(s.sources.region, Source::Default);
            assert_eq!(s.region, Some(Region::DEFAULT));
            let with_url = with_creds(&[("GENESYSCLOUD_API_URL", "http://127.0.0.1:9")]);
            let s = resolve_all(&ExplicitSettings::default(), &with_url, &[], None).unwrap();
            assert!(!s.region_assumed(), "an API URL chooses the hosts");
        }

        #[test]
        fn a_region_is_a_name_in_either_spelling_or_a_domain_in_every_source() {
            for (vars, expected) in [
                (
                    with_creds(&[("GENESYSCLOUD_REGION", "me_central_1")]),
                    "me-central-1",
                ),
                (
                    with_creds(&[("GENESYSCLOUD_REGION", "mypurecloud.ie")]),
                    "eu-west-1",
                ),
                (
                    with_creds(&[("GENESYS_ENVIRONMENT", "apne3.pure.cloud")]),
                    "ap-northeast-3",
                ),
            ] {
                let s = resolve_all(&ExplicitSettings::default(), &vars, &[], None).unwrap();
                assert_eq!(s.region.unwrap().name(), expected, "{vars:?}");
            }
            let bad = profile("[prod]\naccess_token = \"t\"\nenvironment = \"localhost\"\n");
            let err = resolve_all(&ExplicitSettings::default(), &[], &[], Some(&bad))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("gc profile \"prod\""), "{err}");
            assert!(err.contains("--api-url"), "{err}");
        }

        /// With an API URL the hosts are known: a profile's environment that is no region
        /// (gc's `localhost`) is not needed, so it is said, not refused with advice to give the
        /// API URL that is given.
        #[test]
        fn an_api_url_makes_a_profile_environment_that_is_no_region_unneeded() {
            let local = profile("[prod]\naccess_token = \"t\"\nenvironment = \"localhost\"\n");
            let flag = ExplicitSettings {
                api_url: Some(url("http://127.0.0.1:8642")),
                ..Default::default()
            };
            let from_env = [("GENESYSCLOUD_API_URL", "http://127.0.0.1:8642")];
            for (explicit, environment, api_source) in [
                (&flag, &[][..], "flag --api-url"),
                (
                    &ExplicitSettings::default(),
                    &from_env[..],
                    "environment GENESYSCLOUD_API_URL",
                ),
            ] {
                let s = resolve_all(explicit, environment, &[], Some(&local)).unwrap();
                assert_eq!(s.api_base.as_str(), "http://127.0.0.1:8642/");
                assert_eq!(s.token_url().as_str(), "http://127.0.0.1:8642/oauth/token");
                assert!(!s.region_assumed());
                assert_eq!(
                    s.warnings,
                    vec![format!(
                        "gc profile \"prod\" (/home/u/.gc/config.toml): \"localhost\" is not a Genesys Cloud region; not needed, the API URL from {api_source} gives the hosts"
                    )]
                );
            }
            // A region that is one is still taken, with no warning.
            let s = resolve_all(&flag, &[], &[], Some(&profile(PROFILE))).unwrap();
            assert_eq!(
                s.sources.region,
                Source::Profile {
                    name: "prod".into(),
                    path: "/home/u/.gc/config.toml".into(),
                }
            );
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        }

        #[test]
        fn the_profile_proxy_is_exposed_and_urls_come_from_env_then_dotenv() {
            let p = profile(
                "[prod]\naccess_token = \"t\"\nproxy_protocol = \"http\"\nproxy_host = \"px\"\nproxy_port = 8080\n",
            );
            let s = resolve_all(
                &ExplicitSettings::default(),
                &[],
                &[("GENESYSCLOUD_API_URL", "http://127.0.0.1:7")],
                Some(&p),
            )
            .unwrap();
            assert_eq!(s.profile_proxy.unwrap().url().as_str(), "http://px:8080/");
            assert_eq!(s.api_base.as_str(), "http://127.0.0.1:7/");
            assert_eq!(
                s.sources.api_url,
                Some(Source::DotEnv("GENESYSCLOUD_API_URL"))
            );
        }
    }
}
