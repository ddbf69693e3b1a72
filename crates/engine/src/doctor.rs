//! The checks of `attrsync doctor` between attrsync and the org, in order: DNS, TCP and TLS to
//! the login, API and streaming hosts (or a CONNECT tunnel through the proxy); the
//! client-credentials grant (or the given token); read access to a live call; write permission
//! (which the API cannot tell without writing); notification channel creation; the token budget
//! (`--rate auto`'s source). Every request goes through the client given, built from the
//! settings of any other command.
//!
//! [`diagnose`] returns the checks as typed results and hands each to its caller as soon as it
//! is known (a slow check shows where it stands). Where the settings came from is the caller's
//! to describe: only it knows its flags and environment.

use std::time::{Duration, Instant, SystemTime};

use genesys_core::proxy::ProxyTarget;
use genesys_core::settings::Credentials;
use genesys_core::{ApiError, GenesysClient, LiveCallsQuery, Settings};
use url::Url;

use crate::auto_rate::AutoRate;

/// What a secret is shown as.
const MASK: &str = "********";
use crate::error::error_chain;

/// How long a DNS lookup or a TCP connection may take before the check fails.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// What one check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Works, but something deserves attention; not a failure.
    Warn,
    /// Cannot be checked; said plainly. Not a failure.
    Note,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

/// One check: its name (`api host`, `grant`, ...), its outcome, what it found and, when
/// something is to be done, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub found: String,
    pub todo: Option<String>,
}

impl Check {
    pub fn new(name: &'static str, outcome: Outcome, found: String, todo: Option<String>) -> Self {
        Self {
            name,
            outcome,
            found,
            todo,
        }
    }
}

/// What the checks run against.
#[derive(Clone, Copy, Debug)]
pub struct Doctor<'a> {
    pub settings: &'a Settings,
    /// A client of these settings (no request log).
    pub client: &'a GenesysClient,
    /// The call to check read access on; default: the first live call of the analytics query.
    pub conversation: Option<&'a str>,
    /// Where `--rate auto` would read the org's budget, and its fallback.
    pub budget: &'a AutoRate,
}

/// Runs every check in order; `on_check` sees each as soon as it is known. A check that
/// depends on one that failed is skipped, and says so.
pub async fn diagnose(doctor: Doctor<'_>, on_check: impl FnMut(&Check) + Send) -> Vec<Check> {
    let mut checks = Checks {
        list: Vec::new(),
        on_check,
    };
    run(doctor, &mut checks).await;
    checks.list
}

struct Checks<F> {
    list: Vec<Check>,
    on_check: F,
}

impl<F: FnMut(&Check)> Checks<F> {
    fn add(&mut self, name: &'static str, outcome: Outcome, found: String, todo: Option<String>) {
        let check = Check::new(name, outcome, found, todo);
        (self.on_check)(&check);
        self.list.push(check);
    }

    fn skip_all(&mut self, names: &[&'static str], why: &str) {
        for name in names {
            self.add(name, Outcome::Skip, why.to_owned(), None);
        }
    }
}

/// The checks after the grant, skipped together when it fails.
const AFTER_GRANT: [&str; 4] = ["read", "write", "notifications", "budget"];

async fn run<F: FnMut(&Check)>(doctor: Doctor<'_>, checks: &mut Checks<F>) {
    let Doctor {
        settings: genesys,
        client,
        ..
    } = doctor;
    let streaming = streaming_base(&genesys.api_base);
    let mut reachable = true;
    for (check, url) in [
        ("login host", Some(genesys.login_base.clone())),
        ("api host", Some(genesys.api_base.clone())),
        ("streaming host", streaming),
    ] {
        let Some(url) = url else {
            checks.add(
                check,
                Outcome::Note,
                format!(
                    "cannot be derived from the API URL {} (its host does not start with api.): not checked",
                    genesys.api_base
                ),
                None,
            );
            continue;
        };
        reachable &= match genesys.proxy.as_ref().and_then(|p| p.for_url(&url)) {
            Some(proxy) => host_through(check, &url, proxy, client, checks).await,
            None => host(check, &url, client, checks).await,
        };
    }

    // With a given token, the first API request is the token's check; its answer is reused.
    let mut listing = None;
    if !reachable {
        checks.skip_all(&["grant"], "a host is unreachable");
        checks.skip_all(&AFTER_GRANT, "a host is unreachable");
        return;
    }
    if genesys.credentials.is_fixed_token() {
        let answer = first_live_call(client).await;
        match &answer {
            Err(err) if err.is_resume_later() || err.status() == Some(401) => {
                checks.add(
                    "token",
                    Outcome::Fail,
                    err.to_string(),
                    Some("get a new access token, or use client credentials".to_owned()),
                );
                checks.skip_all(&AFTER_GRANT, "the token was refused");
                return;
            }
            _ => checks.add(
                "token",
                Outcome::Ok,
                format!(
                    "the given access token ({}) is accepted by the API (its lifetime is unknown; it cannot be refreshed)",
                    genesys.sources.credentials
                ),
                None,
            ),
        }
        listing = Some(answer);
    } else {
        let started = Instant::now();
        match client.authenticate().await {
            Ok(()) => checks.add(
                "grant",
                Outcome::Ok,
                format!(
                    "client-credentials token issued by {} in {} ms",
                    genesys.token_url(),
                    started.elapsed().as_millis()
                ),
                None,
            ),
            Err(err) => {
                checks.add(
                    "grant",
                    Outcome::Fail,
                    err.to_string(),
                    Some(format!(
                        "check the client id and secret ({}) and that the OAuth client is a client-credentials client of this region's org",
                        genesys.sources.secret
                    )),
                );
                checks.skip_all(&AFTER_GRANT, "no token");
                return;
            }
        }
    }

    read(doctor.conversation, client, listing, checks).await;
    checks.add(
        "write",
        Outcome::Note,
        "cannot be checked without writing: the attribute PATCH has no dry run and attrsync never writes to check"
            .to_owned(),
        Some(
            "the first PATCH will tell: a 403 names the missing permission (attrsync set on one call is the smallest test)"
                .to_owned(),
        ),
    );
    notifications(client, checks).await;
    budget(doctor.budget, client, checks).await;
}

/// `streaming.<domain>` of an `api.<domain>` base; the API's own origin for loopback (the
/// simulator serves the WebSocket itself); `None` when it cannot be derived.
fn streaming_base(api_base: &Url) -> Option<Url> {
    if genesys_core::settings::is_loopback(api_base) {
        return Some(api_base.clone());
    }
    let host = api_base.host_str()?;
    let domain = host.strip_prefix("api.")?;
    let mut url = api_base.clone();
    url.set_host(Some(&format!("streaming.{domain}"))).ok()?;
    Some(url)
}

/// TCP to the proxy, a CONNECT tunnel to the host, and TLS through it (the host's DNS is the
/// proxy's business); whether the host is reachable.
async fn host_through<F: FnMut(&Check)>(
    check: &'static str,
    url: &Url,
    proxy: &ProxyTarget,
    client: &GenesysClient,
    checks: &mut Checks<F>,
) -> bool {
    let started = Instant::now();
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(443)
    );
    match tokio::time::timeout(NETWORK_TIMEOUT, genesys_core::tls::tunnel(proxy, url)).await {
        Ok(Ok(_tunnel)) => {}
        // A refusal is worded as the client's errors word it: what happened, what to check.
        Ok(Err(genesys_core::tls::TunnelError::Refused(refused))) => {
            checks.add(check, Outcome::Fail, refused.what(), Some(refused.advice()));
            return false;
        }
        Ok(Err(error)) => {
            checks.add(
                check,
                Outcome::Fail,
                error_chain(&error),
                Some(format!("check {} and NO_PROXY", proxy.source)),
            );
            return false;
        }
        Err(_) => {
            checks.add(
                check,
                Outcome::Fail,
                format!(
                    "CONNECT {authority} through the proxy {proxy} timed out after {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                Some(format!("check {} and NO_PROXY", proxy.source)),
            );
            return false;
        }
    }
    let tunnel_ms = started.elapsed().as_millis();
    let mut root = url.clone();
    root.set_path("/");
    match client.probe(&root).await {
        Ok(status) => {
            checks.add(
                check,
                Outcome::Ok,
                format!(
                    "{authority}: CONNECT through the proxy {proxy} ok ({tunnel_ms} ms), TLS handshake ok (HTTP {status} on /)"
                ),
                None,
            );
            true
        }
        Err(message) => {
            checks.add(
                check,
                Outcome::Fail,
                format!("{authority}: CONNECT through the proxy {proxy} ok, TLS or HTTP failed: {message}"),
                Some("a proxy that inspects TLS needs its CA trusted: --ca-cert PATH or SSL_CERT_FILE".to_owned()),
            );
            false
        }
    }
}

/// DNS, TCP and TLS to one host, directly; whether it is reachable.
async fn host<F: FnMut(&Check)>(
    check: &'static str,
    url: &Url,
    client: &GenesysClient,
    checks: &mut Checks<F>,
) -> bool {
    let Some(host) = url.host_str() else {
        checks.add(check, Outcome::Fail, format!("{url} has no host"), None);
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let started = Instant::now();
    let addresses = match tokio::time::timeout(
        NETWORK_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
        Ok(Err(err)) => {
            checks.add(
                check,
                Outcome::Fail,
                format!("{host}: DNS lookup failed: {err}"),
                Some("check the region (or the URL) and this machine's DNS; behind a proxy, set HTTPS_PROXY".to_owned()),
            );
            return false;
        }
        Err(_) => {
            checks.add(
                check,
                Outcome::Fail,
                format!(
                    "{host}: DNS lookup timed out after {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                Some("check this machine's DNS".to_owned()),
            );
            return false;
        }
    };
    let Some(first) = addresses.first().map(std::net::SocketAddr::ip) else {
        checks.add(
            check,
            Outcome::Fail,
            format!("{host}: DNS returned no address"),
            Some("check the region (or the URL)".to_owned()),
        );
        return false;
    };
    match tokio::time::timeout(
        NETWORK_TIMEOUT,
        tokio::net::TcpStream::connect((first, port)),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            checks.add(
                check,
                Outcome::Fail,
                format!("{host}: DNS {first}, TCP connection to port {port} failed: {err}"),
                Some("a firewall may block it; behind a proxy, set HTTPS_PROXY".to_owned()),
            );
            return false;
        }
        Err(_) => {
            checks.add(
                check,
                Outcome::Fail,
                format!(
                    "{host}: DNS {first}, TCP connection to port {port} timed out after {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                Some("a firewall may drop it; behind a proxy, set HTTPS_PROXY".to_owned()),
            );
            return false;
        }
    }
    let tcp_ms = started.elapsed().as_millis();
    if url.scheme() == "http" {
        checks.add(
            check,
            Outcome::Ok,
            format!(
                "{host}:{port}: DNS {first}, TCP connected ({tcp_ms} ms); TLS not used (plain http, loopback only)"
            ),
            None,
        );
        return true;
    }
    let mut root = url.clone();
    root.set_path("/");
    match client.probe(&root).await {
        Ok(status) => {
            checks.add(
                check,
                Outcome::Ok,
                format!(
                    "{host}:{port}: DNS {first}, TCP connected ({tcp_ms} ms), TLS handshake ok (HTTP {status} on /)"
                ),
                None,
            );
            true
        }
        Err(message) => {
            checks.add(
                check,
                Outcome::Fail,
                format!("{host}:{port}: DNS {first}, TCP connected, TLS or HTTP failed: {message}"),
                Some("a proxy that inspects TLS needs its CA trusted: --ca-cert PATH or SSL_CERT_FILE".to_owned()),
            );
            false
        }
    }
}

/// The first live call of the analytics query (one page).
async fn first_live_call(client: &GenesysClient) -> Result<Option<String>, ApiError> {
    let query = LiveCallsQuery::default().to_conversation_query(SystemTime::now(), 1);
    let page = client.query_conversation_details(&query).await?;
    Ok(page
        .value
        .conversations
        .into_iter()
        .next()
        .map(|c| c.conversation_id))
}

async fn read<F: FnMut(&Check)>(
    conversation: Option<&str>,
    client: &GenesysClient,
    listing: Option<Result<Option<String>, ApiError>>,
    checks: &mut Checks<F>,
) {
    let id = match conversation {
        Some(id) => id.to_owned(),
        None => {
            let listing = match listing {
                Some(listing) => listing,
                None => first_live_call(client).await,
            };
            match listing {
                Ok(Some(id)) => id,
                Ok(None) => {
                    checks.add(
                        "read",
                        Outcome::Warn,
                        "the analytics query works but lists no live call, so no call was read"
                            .to_owned(),
                        Some(
                            "run again during a call, or give one with --conversation ID"
                                .to_owned(),
                        ),
                    );
                    return;
                }
                Err(err) => {
                    checks.add(
                        "read",
                        Outcome::Fail,
                        format!("the live-call listing (analytics query) failed: {err}"),
                        Some(format!(
                            "{}; or give a call with --conversation ID",
                            permission_hint(&err, "analytics:conversationDetail:view")
                        )),
                    );
                    return;
                }
            }
        }
    };
    match client.get_call(&id).await {
        Ok(call) => checks.add(
            "read",
            Outcome::Ok,
            format!(
                "read call {id}: {} participants",
                call.value.participants.len()
            ),
            None,
        ),
        Err(err) => checks.add(
            "read",
            Outcome::Fail,
            format!("cannot read call {id}: {err}"),
            Some(permission_hint(&err, "conversation:communication:view")),
        ),
    }
}

fn permission_hint(err: &ApiError, permission: &str) -> String {
    match err.status() {
        Some(403) => format!(
            "give the OAuth client's role the permission the message names (documented for this call: {permission})"
        ),
        Some(404) => "the call does not exist or has ended: give a live one".to_owned(),
        _ => "see the error".to_owned(),
    }
}

async fn notifications<F: FnMut(&Check)>(client: &GenesysClient, checks: &mut Checks<F>) {
    match client.create_channel().await {
        Ok(channel) => checks.add(
            "notifications",
            Outcome::Ok,
            format!(
                "created channel {} (unused, it expires after 24 h; a client keeps at most 20)",
                channel.id
            ),
            None,
        ),
        Err(err) => checks.add(
            "notifications",
            Outcome::Fail,
            format!("cannot create a notification channel: {err}"),
            Some("tag --follow needs it; the other commands do not".to_owned()),
        ),
    }
}

async fn budget<F: FnMut(&Check)>(
    budget: &AutoRate,
    client: &GenesysClient,
    checks: &mut Checks<F>,
) {
    let learned = budget.read(client).await;
    if learned.from_org {
        checks.add("budget", Outcome::Ok, learned.note, None);
    } else {
        checks.add(
            "budget",
            Outcome::Warn,
            learned.note,
            Some(
                "--rate auto would use Genesys's default; give --rate COUNT/min to match the org"
                    .to_owned(),
            ),
        );
    }
}

/// Where each setting came from (secrets masked), as checks: credentials, region, login URL,
/// proxy, the settings' warnings, and the rate.
pub fn settings(genesys: &Settings, rate: &str, tokens: u16, pacing: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut add = |name, outcome, found, todo| checks.push(Check::new(name, outcome, found, todo));
    let sources = &genesys.sources;
    match &genesys.credentials {
        Credentials::Client { client_id, .. } => add(
            "credentials",
            Outcome::Ok,
            if sources.credentials == sources.secret {
                format!(
                    "client id {client_id} and secret {MASK}, from {}",
                    sources.credentials
                )
            } else {
                format!(
                    "client id {client_id} from {}, secret {MASK} from {}",
                    sources.credentials, sources.secret
                )
            },
            None,
        ),
        Credentials::Token(_) => add(
            "credentials",
            Outcome::Warn,
            format!(
                "access token {MASK} from {}, used as given",
                sources.credentials
            ),
            Some(
                "it cannot be refreshed: when it expires a run stops, resumable (exit 4); client credentials avoid that"
                    .to_owned(),
            ),
        ),
    }
    let region = genesys
        .region
        .map_or_else(|| "none".to_owned(), |r| format!("{r} ({})", r.domain()));
    match (&sources.api_url, genesys.region_assumed()) {
        (_, true) => add(
            "region",
            Outcome::Warn,
            format!("{region}: assumed, no source gives a region"),
            Some(format!(
                "set the org's region: --region, {} or a gc profile's environment",
                genesys_core::env::REGION.name
            )),
        ),
        (Some(source), false) => add(
            "region",
            Outcome::Ok,
            format!(
                "not used for the API: API URL {} from {source}",
                origin_of(&genesys.api_base)
            ),
            None,
        ),
        (None, false) => add(
            "region",
            Outcome::Ok,
            format!("{region} from {}", sources.region),
            None,
        ),
    }
    let login_source = match &sources.login_url {
        Some(source) => format!("from {source}"),
        None if sources.api_url.is_some() => "derived from the API URL".to_owned(),
        None => "from the region".to_owned(),
    };
    add(
        "login url",
        Outcome::Ok,
        format!("{}, {login_source}", origin_of(&genesys.login_base)),
        None,
    );
    if let Some(proxy) = &genesys.proxy {
        for target in [&proxy.https, &proxy.http].into_iter().flatten() {
            // The URL only: never the credentials.
            let who = if target.has_credentials() {
                format!(", credentials {MASK}")
            } else {
                String::new()
            };
            add(
                "proxy",
                Outcome::Ok,
                format!(
                    "{target}{who}, from {}; the host checks below go through it",
                    target.source
                ),
                None,
            );
        }
    }
    for warning in &genesys.warnings {
        add("settings", Outcome::Warn, warning.clone(), None);
    }
    add(
        "rate",
        Outcome::Ok,
        format!("--rate {rate} x {tokens} token(s), {pacing} pacing"),
        None,
    );
    checks
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streaming_host_follows_the_api_host() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            streaming_base(&url("https://api.mypurecloud.ie"))
                .unwrap()
                .as_str(),
            "https://streaming.mypurecloud.ie/"
        );
        assert_eq!(
            streaming_base(&url("http://127.0.0.1:8642"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8642/"
        );
        assert!(streaming_base(&url("https://gateway.example")).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_host_fails_and_skips_every_check_after_the_hosts() {
        // A loopback port nothing listens on any more: connections to it are refused.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let vars = [
            ("GENESYSCLOUD_OAUTHCLIENT_ID", "id"),
            ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "secret"),
            ("GENESYSCLOUD_API_URL", base.as_str()),
        ];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let settings = Settings::resolve(
            &genesys_core::settings::ExplicitSettings::default(),
            &lookup,
        )
        .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = GenesysClient::new(&settings, genesys_core::ClientOptions::default()).unwrap();
        let budget = AutoRate::new("platform-api".to_owned(), genesys_core::RateSpec::default());
        let mut seen = Vec::new();
        let checks = diagnose(
            Doctor {
                settings: &settings,
                client: &client,
                conversation: None,
                budget: &budget,
            },
            |check| seen.push(check.clone()),
        )
        .await;

        assert_eq!(seen, checks, "each check is handed over as it is found");
        let outcomes: Vec<(&str, Outcome)> = checks.iter().map(|c| (c.name, c.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                ("login host", Outcome::Fail),
                ("api host", Outcome::Fail),
                ("streaming host", Outcome::Fail),
                ("grant", Outcome::Skip),
                ("read", Outcome::Skip),
                ("write", Outcome::Skip),
                ("notifications", Outcome::Skip),
                ("budget", Outcome::Skip),
            ]
        );
        assert!(
            checks[1].found.contains("TCP connection to port") && checks[1].todo.is_some(),
            "{:?}",
            checks[1]
        );
        assert!(
            checks[3..]
                .iter()
                .all(|c| c.found == "a host is unreachable" && c.todo.is_none())
        );
    }
}
