//! `attrsync doctor`: what is wrong, if anything, between attrsync and the org. One line per
//! check, in order: where each setting came from (secrets masked); DNS, TCP and TLS to the
//! login, API and streaming hosts; the client-credentials grant (or the given token); read
//! access to a live call; write permission (which the API cannot tell without writing);
//! notification channel creation; the token budget (`--rate auto`'s source). Exit 0 when no
//! check failed, 1 otherwise. Every request goes through the settings of any other command.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use genesys_core::settings::Credentials;
use genesys_core::{ApiError, GenesysClient, LiveCallsQuery};
use serde::Serialize;
use url::Url;

use crate::Ui;
use crate::cli::DoctorArgs;
use crate::exit::Exit;
use crate::settings::Connection;
use engine::auto_rate::AutoRate;

/// How long a DNS lookup or a TCP connection may take before the check fails.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a secret is shown as.
const MASK: &str = "********";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Works, but something deserves attention; not a failure.
    Warn,
    /// Cannot be checked; said plainly. Not a failure.
    Note,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Note => "note",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Status,
    found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    todo: Option<String>,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    json: bool,
}

impl Report {
    fn add(&mut self, check: &str, status: Status, found: String, todo: Option<String>) {
        let check = Check {
            check: check.to_owned(),
            status,
            found,
            todo,
        };
        if !self.json {
            // Printed as it is found: a slow check shows where it stands.
            let mut line = format!(
                "{:<5} {:<14} {}",
                check.status.label(),
                check.check,
                check.found
            );
            if let Some(todo) = &check.todo {
                let _ = write!(line, " -> {todo}");
            }
            println!("{line}");
        }
        self.checks.push(check);
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

pub async fn run(
    args: DoctorArgs,
    resolved: anyhow::Result<Connection>,
    _ui: Ui,
) -> anyhow::Result<Exit> {
    let mut report = Report {
        json: args.json,
        ..Report::default()
    };
    match resolved {
        Ok(connection) => check_all(&args, &connection, &mut report).await?,
        Err(err) => {
            report.add(
                "settings",
                Status::Fail,
                crate::error_chain(err.as_ref()),
                Some(
                    "see \"Where settings come from\" in the README (flags > environment > .env > --profile)"
                        .to_owned(),
                ),
            );
            for check in [
                "network",
                "grant",
                "read",
                "write",
                "notifications",
                "budget",
            ] {
                report.add(check, Status::Skip, "settings failed".to_owned(), None);
            }
        }
    }
    let failed = report.failed();
    if args.json {
        let value = serde_json::json!({ "ok": !failed, "checks": report.checks });
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

async fn check_all(
    args: &DoctorArgs,
    connection: &Connection,
    report: &mut Report,
) -> anyhow::Result<()> {
    let genesys = &connection.genesys;
    settings(connection, report);

    let client = connection.client(None)?;
    let streaming = streaming_base(&genesys.api_base);
    let mut reachable = true;
    for (check, url) in [
        ("login host", Some(genesys.login_base.clone())),
        ("api host", Some(genesys.api_base.clone())),
        ("streaming host", streaming),
    ] {
        let Some(url) = url else {
            report.add(
                check,
                Status::Note,
                format!(
                    "cannot be derived from the API URL {} (its host does not start with api.): not checked",
                    genesys.api_base
                ),
                None,
            );
            continue;
        };
        reachable &= match genesys.proxy.as_ref().and_then(|p| p.for_url(&url)) {
            Some(proxy) => host_through(check, &url, proxy, &client, report).await,
            None => host(check, &url, &client, report).await,
        };
    }

    let fixed_token = genesys.credentials.is_fixed_token();
    // With a given token, the first API request is the token's check; its answer is reused.
    let mut listing = None;
    if !reachable {
        report.add(
            "grant",
            Status::Skip,
            "a host is unreachable".to_owned(),
            None,
        );
        for check in ["read", "write", "notifications", "budget"] {
            report.add(
                check,
                Status::Skip,
                "a host is unreachable".to_owned(),
                None,
            );
        }
        return Ok(());
    }
    if fixed_token {
        let answer = first_live_call(&client).await;
        match &answer {
            Err(err) if err.is_resume_later() || err.status() == Some(401) => {
                report.add(
                    "token",
                    Status::Fail,
                    err.to_string(),
                    Some("get a new access token, or use client credentials".to_owned()),
                );
                for check in ["read", "write", "notifications", "budget"] {
                    report.add(check, Status::Skip, "the token was refused".to_owned(), None);
                }
                return Ok(());
            }
            _ => report.add(
                "token",
                Status::Ok,
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
            Ok(()) => report.add(
                "grant",
                Status::Ok,
                format!(
                    "client-credentials token issued by {} in {} ms",
                    genesys.token_url(),
                    started.elapsed().as_millis()
                ),
                None,
            ),
            Err(err) => {
                report.add(
                    "grant",
                    Status::Fail,
                    err.to_string(),
                    Some(format!(
                        "check the client id and secret ({}) and that the OAuth client is a client-credentials client of this region's org",
                        genesys.sources.secret
                    )),
                );
                for check in ["read", "write", "notifications", "budget"] {
                    report.add(check, Status::Skip, "no token".to_owned(), None);
                }
                return Ok(());
            }
        }
    }

    read(args, &client, listing, report).await;
    report.add(
        "write",
        Status::Note,
        "cannot be checked without writing: the attribute PATCH has no dry run and attrsync never writes to check"
            .to_owned(),
        Some(
            "the first PATCH will tell: a 403 names the missing permission (attrsync set on one call is the smallest test)"
                .to_owned(),
        ),
    );
    notifications(&client, report).await;
    budget(connection, &client, report).await;
    Ok(())
}

/// Where each setting came from; secrets are masked.
fn settings(connection: &Connection, report: &mut Report) {
    let genesys = &connection.genesys;
    let sources = &genesys.sources;
    match &genesys.credentials {
        Credentials::Client { client_id, .. } => report.add(
            "credentials",
            Status::Ok,
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
        Credentials::Token(_) => report.add(
            "credentials",
            Status::Warn,
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
        (_, true) => report.add(
            "region",
            Status::Warn,
            format!("{region}: assumed, no source gives a region"),
            Some(format!(
                "set the org's region: --region, {} or a gc profile's environment",
                genesys_core::env::REGION.name
            )),
        ),
        (Some(source), false) => report.add(
            "region",
            Status::Ok,
            format!(
                "not used for the API: API URL {} from {source}",
                origin(&genesys.api_base)
            ),
            None,
        ),
        (None, false) => report.add(
            "region",
            Status::Ok,
            format!("{region} from {}", sources.region),
            None,
        ),
    }
    let login_source = match &sources.login_url {
        Some(source) => format!("from {source}"),
        None if sources.api_url.is_some() => "derived from the API URL".to_owned(),
        None => "from the region".to_owned(),
    };
    report.add(
        "login url",
        Status::Ok,
        format!("{}, {login_source}", origin(&genesys.login_base)),
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
            report.add(
                "proxy",
                Status::Ok,
                format!(
                    "{target}{who}, from {}; the host checks below go through it",
                    target.source
                ),
                None,
            );
        }
    }
    for warning in &genesys.warnings {
        report.add("settings", Status::Warn, warning.clone(), None);
    }
    let tokens = connection.tokens;
    let rate = if connection.auto_rate.is_some() {
        "auto".to_owned()
    } else {
        connection.rate.with_burst(1).to_string()
    };
    report.add(
        "rate",
        Status::Ok,
        format!(
            "--rate {rate} x {tokens} token(s), {} pacing",
            connection.pacing.as_str()
        ),
        None,
    );
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
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

/// DNS, TCP and TLS to one host; whether it is reachable.
/// TCP to the proxy, a CONNECT tunnel to the host, and TLS through it (the host's DNS is the
/// proxy's business); whether the host is reachable.
async fn host_through(
    check: &str,
    url: &Url,
    proxy: &genesys_core::proxy::ProxyTarget,
    client: &GenesysClient,
    report: &mut Report,
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
            report.add(check, Status::Fail, refused.what(), Some(refused.advice()));
            return false;
        }
        Ok(Err(error)) => {
            report.add(
                check,
                Status::Fail,
                crate::error_chain(&error),
                Some(format!("check {} and NO_PROXY", proxy.source)),
            );
            return false;
        }
        Err(_) => {
            report.add(
                check,
                Status::Fail,
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
            report.add(
                check,
                Status::Ok,
                format!(
                    "{authority}: CONNECT through the proxy {proxy} ok ({tunnel_ms} ms), TLS handshake ok (HTTP {status} on /)"
                ),
                None,
            );
            true
        }
        Err(message) => {
            report.add(
                check,
                Status::Fail,
                format!("{authority}: CONNECT through the proxy {proxy} ok, TLS or HTTP failed: {message}"),
                Some("a proxy that inspects TLS needs its CA trusted: --ca-cert PATH or SSL_CERT_FILE".to_owned()),
            );
            false
        }
    }
}

/// DNS, TCP and TLS to one host, directly; whether it is reachable.
async fn host(check: &str, url: &Url, client: &GenesysClient, report: &mut Report) -> bool {
    let Some(host) = url.host_str() else {
        report.add(check, Status::Fail, format!("{url} has no host"), None);
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
            report.add(
                check,
                Status::Fail,
                format!("{host}: DNS lookup failed: {err}"),
                Some("check the region (or the URL) and this machine's DNS; behind a proxy, set HTTPS_PROXY".to_owned()),
            );
            return false;
        }
        Err(_) => {
            report.add(
                check,
                Status::Fail,
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
        report.add(
            check,
            Status::Fail,
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
            report.add(
                check,
                Status::Fail,
                format!("{host}: DNS {first}, TCP connection to port {port} failed: {err}"),
                Some("a firewall may block it; behind a proxy, set HTTPS_PROXY".to_owned()),
            );
            return false;
        }
        Err(_) => {
            report.add(
                check,
                Status::Fail,
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
        report.add(
            check,
            Status::Ok,
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
            report.add(
                check,
                Status::Ok,
                format!(
                    "{host}:{port}: DNS {first}, TCP connected ({tcp_ms} ms), TLS handshake ok (HTTP {status} on /)"
                ),
                None,
            );
            true
        }
        Err(message) => {
            report.add(
                check,
                Status::Fail,
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

async fn read(
    args: &DoctorArgs,
    client: &GenesysClient,
    listing: Option<Result<Option<String>, ApiError>>,
    report: &mut Report,
) {
    let id = match &args.conversation {
        Some(id) => id.clone(),
        None => {
            let listing = match listing {
                Some(listing) => listing,
                None => first_live_call(client).await,
            };
            match listing {
                Ok(Some(id)) => id,
                Ok(None) => {
                    report.add(
                        "read",
                        Status::Warn,
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
                    report.add(
                        "read",
                        Status::Fail,
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
        Ok(call) => report.add(
            "read",
            Status::Ok,
            format!(
                "read call {id}: {} participants",
                call.value.participants.len()
            ),
            None,
        ),
        Err(err) => report.add(
            "read",
            Status::Fail,
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

async fn notifications(client: &GenesysClient, report: &mut Report) {
    match client.create_channel().await {
        Ok(channel) => report.add(
            "notifications",
            Status::Ok,
            format!(
                "created channel {} (unused, it expires after 24 h; a client keeps at most 20)",
                channel.id
            ),
            None,
        ),
        Err(err) => report.add(
            "notifications",
            Status::Fail,
            format!("cannot create a notification channel: {err}"),
            Some("tag --follow needs it; the other commands do not".to_owned()),
        ),
    }
}

async fn budget(connection: &Connection, client: &GenesysClient, report: &mut Report) {
    let namespace = connection.auto_rate.as_ref().map_or_else(
        || crate::cli::DEFAULT_LIMITS_NAMESPACE.to_owned(),
        |auto| auto.namespace.clone(),
    );
    let learned = AutoRate::new(namespace, connection.rate).read(client).await;
    if learned.from_org {
        report.add("budget", Status::Ok, learned.note, None);
    } else {
        report.add(
            "budget",
            Status::Warn,
            learned.note,
            Some(
                "--rate auto would use Genesys's default; give --rate COUNT/min to match the org"
                    .to_owned(),
            ),
        );
    }
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
}
