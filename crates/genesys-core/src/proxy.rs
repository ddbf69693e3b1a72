//! Proxies as resolved settings: `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (lower-case
//! spellings first, as curl reads them), read through the caller's lookup like every other
//! setting, never by reqwest from the process environment. One matcher, [`ProxySettings::for_url`],
//! decides for HTTP (login, API) and the notification WebSocket alike.
//!
//! A proxy is `http://` (the traffic inside its CONNECT tunnel is TLS all the same). Its
//! credentials are kept as a secret: the URL shown in messages and `Debug` never carries them.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

use crate::env::{self, EnvVar};
use crate::profile::ProfileProxy;
use crate::settings::SettingsError;

/// One source of variables (the process environment, or `.env`).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The port curl assumes for a proxy URL without one.
const DEFAULT_PROXY_PORT: u16 = 1080;

/// The proxies of a connection and the hosts reached without them.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// For https:// and wss:// (every Genesys host).
    pub https: Option<ProxyTarget>,
    /// For plain http:// and ws:// (loopback only, e.g. the simulator).
    pub http: Option<ProxyTarget>,
    pub no_proxy: NoProxy,
}

/// One proxy: `http://host:port`, with optional basic credentials. `Debug` and `Display` show
/// the URL without credentials.
#[derive(Clone)]
pub struct ProxyTarget {
    url: Url,
    username: String,
    password: Option<SecretString>,
    /// The variable it came from, for messages.
    pub source: &'static str,
}

impl ProxyTarget {
    /// `http://host:port`, never with credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn has_credentials(&self) -> bool {
        !self.username.is_empty() || self.password.is_some()
    }

    /// The `Proxy-Authorization` value, when the URL carried credentials.
    pub(crate) fn authorization(&self) -> Option<SecretString> {
        self.has_credentials().then(|| {
            let password = self
                .password
                .as_ref()
                .map_or("", ExposeSecret::expose_secret);
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", self.username));
            SecretString::from(format!("Basic {token}"))
        })
    }

    /// `host:port` of the proxy itself.
    pub(crate) fn host_port(&self) -> (String, u16) {
        let host = match self.url.host() {
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => self.url.host_str().unwrap_or_default().to_owned(),
        };
        (host, self.url.port().unwrap_or(DEFAULT_PROXY_PORT))
    }
}

impl ProxyTarget {
    /// This proxy's refusal of `CONNECT authority`, with the status line it answered (when
    /// known: reqwest keeps only whether it was a 407).
    pub fn refused(&self, authority: &str, status_line: Option<&str>) -> TunnelRefused {
        let mut parts = status_line.unwrap_or_default().split_whitespace();
        let _version = parts.next();
        let status = parts.next().and_then(|code| code.parse::<u16>().ok());
        // The proxy's own words, kept short and printable.
        let reason: String = parts
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        TunnelRefused {
            proxy: self.to_string(),
            source: self.source,
            credentials: self.has_credentials(),
            authority: authority.to_owned(),
            status,
            reason: Some(reason).filter(|r| status.is_some() && !r.is_empty()),
        }
    }
}

/// A proxy's refusal to open a CONNECT tunnel, worded once for every path that tunnels: the
/// client's requests (login and API, through reqwest), the notification socket, and
/// `attrsync doctor`'s host checks. What happened ([`TunnelRefused::what`]) and what to check
/// ([`TunnelRefused::advice`]); `Display` is both. Never holds the proxy's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelRefused {
    /// The proxy, `http://host:port`.
    pub proxy: String,
    /// The variable (or profile) that names the proxy.
    pub source: &'static str,
    /// Whether credentials were sent with the CONNECT.
    pub credentials: bool,
    /// The `host:port` the tunnel was asked for.
    pub authority: String,
    /// The proxy's status code, when known.
    pub status: Option<u16>,
    /// The proxy's reason phrase (`Forbidden`), when it sent one.
    pub reason: Option<String>,
}

impl TunnelRefused {
    /// `the proxy http://p:3128 (from HTTPS_PROXY) refused CONNECT host:443 with HTTP 403 Forbidden`
    pub fn what(&self) -> String {
        let mut text = format!(
            "the proxy {} (from {}) refused CONNECT {}",
            self.proxy, self.source, self.authority
        );
        if let Some(status) = self.status {
            text.push_str(&format!(" with HTTP {status}"));
            let reason = self.reason.clone().or_else(|| {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(str::to_owned)
            });
            if let Some(reason) = reason {
                text.push(' ');
                text.push_str(&reason);
            }
        }
        text
    }

    /// What to check, by the proxy's answer.
    pub fn advice(&self) -> String {
        let authority = &self.authority;
        let source = self.source;
        match self.status {
            Some(407) if self.credentials => format!(
                "the proxy refused the credentials given in {source}: check the user name and password (percent-encoded in a URL)"
            ),
            Some(407) if source == PROFILE_SOURCE => "the proxy wants credentials: give them in the gc profile's proxy_username and proxy_password".to_owned(),
            Some(407) => format!(
                "the proxy wants credentials: give them in {source} as http://user:password@host:port"
            ),
            Some(403) => format!(
                "the proxy does not allow {authority}: ask its administrators to allow it, or list the host in NO_PROXY if it is reachable without the proxy"
            ),
            Some(502..=504) => format!(
                "the proxy could not reach {authority}: check the host (the region or the API URL) and the proxy's own network"
            ),
            _ => format!("check that the proxy allows {authority}, and check {source} and NO_PROXY"),
        }
    }
}

impl fmt::Display for TunnelRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.what(), self.advice())
    }
}

impl fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("url", &self.url.as_str())
            .field("credentials", &self.has_credentials())
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

impl ProxySettings {
    /// From `lookups` (highest first: the process environment, then `.env`), else a gc
    /// profile's `proxy_*` keys; `None` when no proxy is set. `NO_PROXY` alone sets nothing.
    /// Within one source the lower-case spelling wins, as in curl; a higher source wins over a
    /// lower one whatever the spelling.
    pub fn resolve(
        lookups: &[Lookup<'_>],
        profile: Option<&ProfileProxy>,
    ) -> Result<Option<Self>, SettingsError> {
        let read = |vars: [EnvVar; 2]| {
            lookups.iter().find_map(|lookup| {
                vars.into_iter().find_map(|var| {
                    lookup(var.name)
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .map(|v| (v, var.name))
                })
            })
        };
        let mut https = read([env::HTTPS_PROXY_LOWER, env::HTTPS_PROXY])
            .map(|(value, source)| parse_proxy(&value, source))
            .transpose()?;
        let http = read([env::HTTP_PROXY_LOWER, env::HTTP_PROXY])
            .map(|(value, source)| parse_proxy(&value, source))
            .transpose()?;
        if https.is_none()
            && http.is_none()
            && let Some(profile) = profile
        {
            // gc applies a profile's proxy to all of its (https) traffic.
            https = Some(from_profile(profile)?);
        }
        if https.is_none() && http.is_none() {
            return Ok(None);
        }
        let no_proxy = read([env::NO_PROXY_LOWER, env::NO_PROXY])
            .map(|(value, _)| NoProxy::parse(&value))
            .unwrap_or_default();
        Ok(Some(Self {
            https,
            http,
            no_proxy,
        }))
    }

    /// The proxy for a request to `url`: by its scheme (https/wss or http/ws), unless
    /// `NO_PROXY` lists its host.
    pub fn for_url(&self, url: &Url) -> Option<&ProxyTarget> {
        let target = match url.scheme() {
            "https" | "wss" => self.https.as_ref(),
            "http" | "ws" => self.http.as_ref(),
            _ => None,
        }?;
        (!self.no_proxy.matches(url)).then_some(target)
    }

    /// Warnings to show once: credentials that travel in clear text to an http:// proxy.
    pub fn warnings(&self) -> Vec<String> {
        [&self.https, &self.http]
            .into_iter()
            .flatten()
            .filter(|target| target.has_credentials())
            .map(|target| {
                format!(
                    "{}: the proxy's credentials are sent in clear text to {target} (an http:// proxy); \
                     the Genesys traffic inside its tunnel is TLS all the same",
                    target.source
                )
            })
            .collect()
    }
}

/// Where a profile's proxy is said to come from.
const PROFILE_SOURCE: &str = "gc profile proxy_*";

/// A gc profile's proxy (already validated by the profile reader).
fn from_profile(profile: &ProfileProxy) -> Result<ProxyTarget, SettingsError> {
    let mut url = profile.url();
    if url.scheme() != "http" {
        return Err(SettingsError::InvalidProxy {
            var: PROFILE_SOURCE,
            reason: format!(
                "{url} is an {}:// proxy, which attrsync does not speak; give its http:// address (proxy_protocol = \"http\"), the Genesys traffic inside the tunnel is TLS all the same",
                url.scheme()
            ),
        });
    }
    if url.port().is_none() {
        let _ = url.set_port(Some(DEFAULT_PROXY_PORT));
    }
    Ok(ProxyTarget {
        url,
        username: profile.username.clone().unwrap_or_default(),
        password: profile.password.clone(),
        source: PROFILE_SOURCE,
    })
}

/// The form a proxy variable takes, for messages.
const PROXY_FORM: &str = "expected http://[user:password@]host:port";

/// What to do about a password that breaks a proxy URL, for messages.
const PERCENT_ENCODE: &str = "percent-encode / ? # @ in the user or password (%2F %3F %23 %40)";

/// Parses a proxy URL. Errors never echo the value, nor any part of it: it may hold a password,
/// and a malformed URL (a password holding `/`, `?` or `#` ends the URL's authority early) has
/// no part known to be free of it. They name the variable and say what is wrong.
fn parse_proxy(value: &str, source: &'static str) -> Result<ProxyTarget, SettingsError> {
    let invalid = |reason: String| SettingsError::InvalidProxy {
        var: source,
        reason,
    };
    // A `user:password@` in the value: a malformed URL is then most likely a password that
    // needs percent-encoding.
    let hint = if value.contains('@') {
        format!("; {PERCENT_ENCODE}")
    } else {
        String::new()
    };
    // curl takes a bare `host:port` as http://.
    let text = if has_scheme(value) {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let mut url =
        Url::parse(&text).map_err(|e| invalid(format!("not a URL ({e}); {PROXY_FORM}{hint}")))?;
    if !url.path().trim_end_matches('/').is_empty()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(format!(
            "something follows the host and port (a path, ? or #); {PROXY_FORM}{hint}"
        )));
    }
    let username = percent_decode(url.username());
    let password = url
        .password()
        .map(|p| SecretString::from(percent_decode(p)));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(invalid(
                "an https:// proxy, which attrsync does not speak; give its http:// address (the Genesys traffic inside the tunnel is TLS all the same)".to_owned(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "unsupported proxy scheme {other:?}; only http:// proxies are supported"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("no host; {PROXY_FORM}")));
    }
    if url.port().is_none() {
        let _ = url.set_port(Some(DEFAULT_PROXY_PORT));
    }
    Ok(ProxyTarget {
        url,
        username,
        password,
        source,
    })
}

/// Whether `value` starts with a URL scheme and `://` (else it is a bare `host:port`). Only a
/// well-formed scheme counts: in `user:pa://ss@host`, `user:pa` is no scheme.
fn has_scheme(value: &str) -> bool {
    value.split_once("://").is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `NO_PROXY` list: `*`, host names (each with its subdomains; a leading `.` or `*.` is
/// the same), IP addresses and CIDR ranges. Ports in entries are ignored, as curl does.
#[derive(Clone, Debug, Default)]
pub struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxyEntry {
    All,
    Domain(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

impl NoProxy {
    pub fn parse(list: &str) -> Self {
        let entries = list
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .filter_map(NoProxyEntry::parse)
            .collect();
        Self { entries }
    }

    pub fn matches(&self, url: &Url) -> bool {
        let host = match url.host() {
            Some(Host::Domain(name)) => HostKind::Name(name.trim_end_matches('.').to_lowercase()),
            Some(Host::Ipv4(ip)) => HostKind::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => HostKind::Ip(IpAddr::V6(ip)),
            None => return false,
        };
        self.entries.iter().any(|entry| match (entry, &host) {
            (NoProxyEntry::All, _) => true,
            (NoProxyEntry::Domain(domain), HostKind::Name(name)) => {
                name == domain
                    || name
                        .strip_suffix(domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            (NoProxyEntry::Ip(entry), HostKind::Ip(ip)) => entry == ip,
            (NoProxyEntry::Cidr(net, bits), HostKind::Ip(ip)) => in_cidr(*ip, *net, *bits),
            _ => false,
        })
    }
}

enum HostKind {
    Name(String),
    Ip(IpAddr),
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<Self> {
        if entry == "*" {
            return Some(Self::All);
        }
        let unbracketed = entry.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        if let Some((net, bits)) = entry.split_once('/') {
            let net = net.parse::<IpAddr>().ok()?;
            let bits = bits.parse::<u8>().ok()?;
            let max = if net.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Self::Cidr(net, bits));
        }
        // `[v6]:port` or `host:port`: the port is ignored.
        if let Some(rest) = entry.strip_prefix('[')
            && let Some((ip, _port)) = rest.split_once(']')
        {
            return ip.parse().ok().map(Self::Ip);
        }
        let host = entry.rsplit_once(':').map_or(entry, |(host, _port)| host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        let domain = host
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_lowercase();
        (!domain.is_empty()).then_some(Self::Domain(domain))
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<Option<ProxySettings>, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxySettings::resolve(&[&|name| vars.get(name).cloned()], None)
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn no_proxy_variable_means_no_proxy() {
        assert!(resolve(&[]).unwrap().is_none());
        assert!(resolve(&[("NO_PROXY", "*")]).unwrap().is_none());
        assert!(resolve(&[("HTTPS_PROXY", "  ")]).unwrap().is_none());
    }

    #[test]
    fn lower_case_spellings_win_as_in_curl() {
        let p = resolve(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("NO_PROXY", "upper.example"),
            ("no_proxy", "lower.example"),
        ])
        .unwrap()
        .unwrap();
        let target = p.https.as_ref().unwrap();
        assert_eq!(target.url().as_str(), "http://lower:3128/");
        assert_eq!(target.source, "https_proxy");
        assert!(p.for_url(&url("https://lower.example/")).is_none());
        assert!(p.for_url(&url("https://upper.example/")).is_some());
        assert!(p.http.is_none());
    }

    #[test]
    fn the_scheme_picks_the_proxy() {
        let p = resolve(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("HTTP_PROXY", "plain:2"),
        ])
        .unwrap()
        .unwrap();
        for (dest, proxy) in [
            ("https://api.mypurecloud.ie/", "http://secure:1/"),
            (
                "wss://streaming.mypurecloud.ie/channels/x",
                "http://secure:1/",
            ),
            ("http://127.0.0.1:8642/", "http://plain:2/"),
            ("ws://127.0.0.1:8642/channels/x", "http://plain:2/"),
        ] {
            assert_eq!(
                p.for_url(&url(dest)).map(|t| t.url().as_str()),
                Some(proxy),
                "{dest}"
            );
        }
        let p = resolve(&[("HTTPS_PROXY", "proxy.corp")]).unwrap().unwrap();
        assert_eq!(
            p.https.unwrap().url().as_str(),
            "http://proxy.corp:1080/",
            "curl's default port"
        );
    }

    #[test]
    fn no_proxy_matches_names_with_subdomains_ips_and_cidrs() {
        let list =
            NoProxy::parse("example.com, .corp.test,*.wild.test ,10.0.0.0/8 [::1], 192.0.2.7:8080");
        for (dest, bypass) in [
            ("https://example.com/", true),
            ("https://api.example.com/", true),
            ("https://notexample.com/", false),
            ("https://a.corp.test/", true),
            ("https://corp.test/", true),
            ("https://x.wild.test/", true),
            ("https://10.200.0.1/", true),
            ("https://11.0.0.1/", false),
            ("https://[::1]:9/", true),
            ("https://192.0.2.7/", true),
            ("https://EXAMPLE.com./", true),
        ] {
            assert_eq!(list.matches(&url(dest)), bypass, "{dest}");
        }
        assert!(NoProxy::parse("*").matches(&url("https://anything/")));
        assert!(!NoProxy::parse("").matches(&url("https://anything/")));
        assert!(NoProxy::parse("127.0.0.0/8").matches(&url("http://127.3.2.1:8/")));
    }

    #[test]
    fn credentials_are_kept_secret_and_warned_about() {
        let p = resolve(&[("HTTPS_PROXY", "http://alice:s%40cret-pw@proxy.corp:3128")])
            .unwrap()
            .unwrap();
        let target = p.https.as_ref().unwrap();
        assert!(target.has_credentials());
        assert_eq!(target.to_string(), "http://proxy.corp:3128");
        let auth = target.authorization().unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s@cret-pw");
        assert_eq!(auth.expose_secret(), format!("Basic {expected}"));
        let shown = format!("{p:?} {target} {:?}", p.warnings());
        assert!(!shown.contains("cret-pw"), "{shown}");
        assert!(!shown.contains(&expected), "{shown}");
        assert_eq!(p.warnings().len(), 1);
        assert!(p.warnings()[0].contains("clear text"));

        let p = resolve(&[("HTTPS_PROXY", "http://proxy.corp:3128")])
            .unwrap()
            .unwrap();
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn a_gc_profile_proxy_applies_when_no_variable_sets_one() {
        let profile = ProfileProxy {
            protocol: "http".into(),
            host: "px.corp".into(),
            port: None,
            username: Some("gc-user".into()),
            password: Some("gc-pw-value".into()),
        };
        let empty = |_: &str| None;
        let p = ProxySettings::resolve(&[&empty], Some(&profile))
            .unwrap()
            .unwrap();
        let target = p.https.as_ref().unwrap();
        assert_eq!(target.url().as_str(), "http://px.corp:1080/");
        assert_eq!(target.source, "gc profile proxy_*");
        assert!(target.has_credentials());
        assert!(!format!("{p:?} {:?}", p.warnings()).contains("gc-pw-value"));

        // A variable, in the environment or in .env, wins over the profile.
        let dotenv = |name: &str| (name == "HTTPS_PROXY").then(|| "http://dot:1".to_owned());
        let p = ProxySettings::resolve(&[&empty, &dotenv], Some(&profile))
            .unwrap()
            .unwrap();
        assert_eq!(p.https.unwrap().source, "HTTPS_PROXY");

        let https = ProfileProxy {
            protocol: "https".into(),
            ..profile
        };
        let err = ProxySettings::resolve(&[&empty], Some(&https)).unwrap_err();
        assert!(err.to_string().contains("proxy_protocol"), "{err}");
        assert!(!err.to_string().contains("gc-pw-value"), "{err}");
    }

    #[test]
    fn the_environment_wins_over_dotenv_whatever_the_spelling() {
        let environment = |name: &str| (name == "HTTPS_PROXY").then(|| "http://env:1".to_owned());
        let dotenv = |name: &str| (name == "https_proxy").then(|| "http://dot:1".to_owned());
        let p = ProxySettings::resolve(&[&environment, &dotenv], None)
            .unwrap()
            .unwrap();
        assert_eq!(p.https.unwrap().url().as_str(), "http://env:1/");
    }

    #[test]
    fn bad_proxies_are_refused_without_echoing_the_password() {
        for value in [
            "https://bob:hunter2pw@proxy.corp:443",
            "socks5://bob:hunter2pw@proxy.corp:1080",
            "http://bob:hunter2pw@proxy.corp:3128/path",
            "http://bob:hunter2pw@[bad",
        ] {
            let err = resolve(&[("HTTPS_PROXY", value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("invalid HTTPS_PROXY"), "{text}");
            assert!(!text.contains("hunter2pw"), "{text}");
        }
    }

    /// One wording of a refused tunnel: the status (with the proxy's reason phrase, kept
    /// printable, else the standard one), then what to check by that status; no status known,
    /// no status claimed.
    #[test]
    fn a_refused_tunnel_says_the_status_and_what_to_check() {
        let p = resolve(&[("HTTPS_PROXY", "http://px.corp:3128")])
            .unwrap()
            .unwrap();
        let target = p.https.unwrap();
        let refused = target.refused(
            "api.example.test:443",
            Some("HTTP/1.1 403 Blocked\x1b[31m by policy"),
        );
        assert_eq!(
            refused.what(),
            "the proxy http://px.corp:3128 (from HTTPS_PROXY) refused CONNECT api.example.test:443 with HTTP 403 Blocked[31m by policy"
        );
        assert!(
            refused
                .advice()
                .starts_with("the proxy does not allow api.example.test:443")
        );
        assert_eq!(
            refused.to_string(),
            format!("{}; {}", refused.what(), refused.advice())
        );
        let refused = target.refused("api.example.test:443", Some("HTTP/1.0 407"));
        assert!(
            refused
                .what()
                .ends_with("with HTTP 407 Proxy Authentication Required")
        );
        assert_eq!(
            refused.advice(),
            "the proxy wants credentials: give them in HTTPS_PROXY as http://user:password@host:port"
        );
        let refused = target.refused("api.example.test:443", None);
        assert_eq!(
            refused.to_string(),
            "the proxy http://px.corp:3128 (from HTTPS_PROXY) refused CONNECT api.example.test:443; \
             check that the proxy allows api.example.test:443, and check HTTPS_PROXY and NO_PROXY"
        );
    }

    /// A password holding `/`, `?` or `#` ends the URL's authority early: what follows would
    /// be taken as a path, a query or a fragment (with `#`, the user name as the host). Refused,
    /// saying what to do, without any part of the value.
    #[test]
    fn a_password_that_breaks_the_url_is_refused_without_echoing_any_of_it() {
        for (var, value) in [
            ("HTTPS_PROXY", "http://bob:9876/SECRETPART@127.0.0.1:3128"),
            ("HTTPS_PROXY", "http://bob:98?76SECRETPART@127.0.0.1:3128"),
            ("HTTPS_PROXY", "http://bob:98#76SECRETPART@127.0.0.1:3128"),
            ("https_proxy", "bob:98#SECRETPART@127.0.0.1:3128"),
            ("HTTP_PROXY", "http://bob:ab/SECRETPART@127.0.0.1:3128"),
            ("HTTPS_PROXY", "bob:pa://SECRETPART@127.0.0.1:3128"),
            ("HTTPS_PROXY", "https://bob:98#SECRETPART@127.0.0.1:3128"),
        ] {
            let err = resolve(&[(var, value)]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("invalid {var}: ")),
                "{value}: {text}"
            );
            assert!(text.contains("percent-encode / ? # @"), "{value}: {text}");
            for part in ["SECRETPART", "9876", "bob", "127.0.0.1"] {
                assert!(!text.contains(part), "{value} shows {part}: {text}");
            }
        }
        // Percent-encoded, the same password is taken whole.
        let p = resolve(&[(
            "HTTPS_PROXY",
            "http://user:98%2F%3F%23%40SECRETPART@127.0.0.1:3128",
        )])
        .unwrap()
        .unwrap();
        let target = p.https.unwrap();
        assert_eq!(target.to_string(), "http://127.0.0.1:3128");
        let expected = base64::engine::general_purpose::STANDARD.encode("user:98/?#@SECRETPART");
        assert_eq!(
            target.authorization().unwrap().expose_secret(),
            format!("Basic {expected}")
        );
    }
}
