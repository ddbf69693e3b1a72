//! Connection settings: where to send requests and with which credentials.
//!
//! Precedence: explicit values (command-line flags) > environment variables (primary names >
//! aliases, see [`crate::env`]) > defaults. The environment is a lookup function given by the
//! caller (the binary's lookup reads the process environment, then a `.env` file); this crate
//! never reads or changes the process environment itself.

use std::path::PathBuf;

use secrecy::SecretString;
use url::{Host, Url};

use crate::env::{self, EnvVar};
use crate::proxy::ProxySettings;
use crate::region::{Region, UnknownRegion};

/// OAuth client credentials. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: SecretString,
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
    /// The proxies of login, API and notification traffic (`HTTPS_PROXY`, ...), if any.
    pub proxy: Option<ProxySettings>,
    /// A PEM file of CAs trusted besides the platform's (`--ca-cert`, else `SSL_CERT_FILE`).
    pub ca_cert: Option<PathBuf>,
}

/// Why connection settings could not be resolved. Messages name what to set.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("missing Genesys Cloud credentials: set {}", .missing.join(" and "))]
    MissingCredentials { missing: Vec<String> },
    #[error("{source_name}: {error}")]
    UnknownRegion {
        /// Where the bad name came from (a flag or a variable).
        source_name: String,
        error: UnknownRegion,
    },
    #[error("invalid {which} {value:?}: {reason}")]
    InvalidUrl {
        which: &'static str,
        value: String,
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

impl Settings {
    /// Resolves settings from explicit values and `lookup` (the environment: the caller decides
    /// what it reads, e.g. the process environment and then a `.env` file).
    pub fn resolve(
        explicit: &ExplicitSettings,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let read = |primary: EnvVar, alias: Option<EnvVar>| -> Option<(String, &'static str)> {
            std::iter::once(primary)
                .chain(alias)
                .find_map(|var| non_empty(lookup(var.name)).map(|value| (value, var.name)))
        };

        let client_id = non_empty(explicit.client_id.clone())
            .or_else(|| read(env::CLIENT_ID, Some(env::CLIENT_ID_ALIAS)).map(|(v, _)| v));
        let client_secret = explicit
            .client_secret
            .clone()
            .filter(|s| !secrecy::ExposeSecret::expose_secret(s).trim().is_empty())
            .or_else(|| {
                read(env::CLIENT_SECRET, Some(env::CLIENT_SECRET_ALIAS))
                    .map(|(v, _)| SecretString::from(v))
            });
        let mut missing = Vec::new();
        if client_id.is_none() {
            missing.push(format!(
                "{} (or {})",
                env::CLIENT_ID.name,
                env::CLIENT_ID_ALIAS.name
            ));
        }
        if client_secret.is_none() {
            missing.push(format!(
                "{} (or {})",
                env::CLIENT_SECRET.name,
                env::CLIENT_SECRET_ALIAS.name
            ));
        }
        let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
            return Err(SettingsError::MissingCredentials { missing });
        };

        let region = match explicit.region {
            Some(region) => Some(region),
            None => read(env::REGION, Some(env::REGION_ALIAS))
                .map(|(name, source_name)| {
                    Region::from_name(&name).map_err(|error| SettingsError::UnknownRegion {
                        source_name: source_name.to_owned(),
                        error,
                    })
                })
                .transpose()?,
        };

        let api_url = match &explicit.api_url {
            Some(url) => Some(parse_api_url(url.as_str())?),
            None => read(env::API_URL, None)
                .map(|(v, _)| parse_api_url(&v))
                .transpose()?,
        };
        let login_url = match &explicit.login_url {
            Some(url) => Some(parse_login_url(url.as_str())?),
            None => read(env::LOGIN_URL, None)
                .map(|(v, _)| parse_login_url(&v))
                .transpose()?,
        };
        let effective_region = region.unwrap_or(Region::DEFAULT);

        let api_base = match &api_url {
            Some(url) => url.clone(),
            None => parse_base_url("API URL", &effective_region.api_base())?,
        };
        let login_base = match (&login_url, &api_url) {
            (Some(url), _) => url.clone(),
            (None, Some(_)) => derive_login_base(&api_base)?,
            (None, None) => parse_base_url("login URL", &effective_region.login_base())?,
        };
        let region = match (&api_url, &login_url) {
            (Some(_), Some(_)) => region,
            _ => Some(effective_region),
        };

        let proxy = ProxySettings::resolve(lookup)?;
        let ca_cert = explicit
            .ca_cert
            .clone()
            .or_else(|| read(env::SSL_CERT_FILE, None).map(|(v, _)| PathBuf::from(v)));

        Ok(Settings {
            region,
            api_base,
            login_base,
            credentials: Credentials {
                client_id,
                client_secret,
            },
            proxy,
            ca_cert,
        })
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
            value: value.trim().to_owned(),
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
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.host().is_none() {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Echo the URL without its userinfo: it may hold a password.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(SettingsError::InvalidUrl {
            which,
            value: url.to_string(),
            reason: "credentials in the URL are not accepted; use the credential variables"
                .to_owned(),
        });
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
            value: api_base.to_string(),
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
        assert_eq!(s.credentials.client_id, "env-id");
        assert_eq!(s.credentials.client_secret.expose_secret(), "env-secret");
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
        assert_eq!(s.credentials.client_id, "flag-id");
        assert_eq!(s.credentials.client_secret.expose_secret(), "flag-secret");
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
        assert_eq!(s.credentials.client_id, "env-id");
        assert_eq!(s.credentials.client_secret.expose_secret(), "env-secret");
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
        assert_eq!(s.credentials.client_id, "alias-id");
        assert_eq!(s.api_base.as_str(), "https://api.aps1.pure.cloud/");
    }

    #[test]
    fn missing_credentials_name_the_variables_to_set() {
        let err = resolve(&ExplicitSettings::default(), &[]).unwrap_err();
        let message = err.to_string();
        for name in [
            "GENESYSCLOUD_OAUTHCLIENT_ID",
            "GENESYS_CLIENT_ID",
            "GENESYSCLOUD_OAUTHCLIENT_SECRET",
            "GENESYS_CLIENT_SECRET",
        ] {
            assert!(message.contains(name), "{message} lacks {name}");
        }

        let err = resolve(
            &ExplicitSettings::default(),
            &[("GENESYSCLOUD_OAUTHCLIENT_ID", "id")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("GENESYSCLOUD_OAUTHCLIENT_SECRET"), "{err}");
        assert!(!err.contains("GENESYSCLOUD_OAUTHCLIENT_ID"), "{err}");
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
}
