//! `attrsync doctor`: what is wrong, if anything, between attrsync and the org. One line per
//! check, in order: where each setting came from (secrets masked), then the checks of
//! [`engine::doctor`]: DNS, TCP and TLS to the login, API and streaming hosts; the
//! client-credentials grant (or the given token); read access to a live call; write permission
//! (which the API cannot tell without writing); notification channel creation; the token budget
//! (`--rate auto`'s source). Exit 0 when no check failed, 1 otherwise. Every request goes
//! through the settings of any other command.

use std::fmt::Write as _;

use engine::auto_rate::AutoRate;
use engine::doctor::{Check, Doctor, Outcome};
use genesys_core::settings::Credentials;
use serde::Serialize;
use url::Url;

use crate::cli::DoctorArgs;
use crate::exit::Exit;
use crate::settings::Connection;
use crate::ui::Ui;

/// What a secret is shown as.
const MASK: &str = "********";

/// The status column of a check's line.
fn label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Warn => "warn",
        Outcome::Note => "note",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "skip",
    }
}

/// A check's `status` in `--json`.
fn json_status(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Warn => "warn",
        Outcome::Note => "note",
        Outcome::Fail => "fail",
        Outcome::Skip => "skip",
    }
}

/// A check in `--json`.
#[derive(Serialize)]
struct JsonCheck<'a> {
    check: &'a str,
    status: &'static str,
    found: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    todo: Option<&'a str>,
}

impl<'a> From<&'a Check> for JsonCheck<'a> {
    fn from(check: &'a Check) -> Self {
        Self {
            check: check.name,
            status: json_status(check.outcome),
            found: &check.found,
            todo: check.todo.as_deref(),
        }
    }
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
    json: bool,
    /// Writing a line failed (stdout closed, e.g. `| head`).
    closed: Option<std::io::Error>,
}

impl Report {
    fn add(&mut self, name: &'static str, outcome: Outcome, found: String, todo: Option<String>) {
        let check = Check::new(name, outcome, found, todo);
        self.show(&check);
        self.checks.push(check);
    }

    /// Printed as it is found: a slow check shows where it stands.
    fn show(&mut self, check: &Check) {
        if self.json {
            return;
        }
        let mut line = format!(
            "{:<5} {:<14} {}",
            label(check.outcome),
            check.name,
            check.found
        );
        if let Some(todo) = &check.todo {
            let _ = write!(line, " -> {todo}");
        }
        // A closed stdout ends the command quietly once the checks are done.
        if self.closed.is_none()
            && let Err(err) = crate::output::stdout_line(format_args!("{line}"))
        {
            self.closed = Some(err);
        }
    }

    fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
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
                Outcome::Fail,
                engine::error_chain(err.as_ref()),
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
                report.add(check, Outcome::Skip, "settings failed".to_owned(), None);
            }
        }
    }
    let failed = report.failed();
    if args.json {
        let checks: Vec<JsonCheck<'_>> = report.checks.iter().map(JsonCheck::from).collect();
        let value = serde_json::json!({ "ok": !failed, "checks": checks });
        crate::output::stdout_line(format_args!("{}", serde_json::to_string_pretty(&value)?))?;
    }
    if let Some(closed) = report.closed.take() {
        return Err(closed.into());
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

/// The settings' sources, then the engine's checks through a client of these settings.
async fn check_all(
    args: &DoctorArgs,
    connection: &Connection,
    report: &mut Report,
) -> anyhow::Result<()> {
    settings(connection, report);
    let client = connection.client(None)?;
    let namespace = connection.auto_rate.as_ref().map_or_else(
        || crate::cli::DEFAULT_LIMITS_NAMESPACE.to_owned(),
        |auto| auto.namespace.clone(),
    );
    let budget = AutoRate::new(namespace, connection.rate);
    let doctor = Doctor {
        settings: &connection.genesys,
        client: &client,
        conversation: args.conversation.as_deref(),
        budget: &budget,
    };
    let checks = engine::doctor::diagnose(doctor, |check| report.show(check)).await;
    report.checks.extend(checks);
    Ok(())
}

/// Where each setting came from; secrets are masked.
fn settings(connection: &Connection, report: &mut Report) {
    let genesys = &connection.genesys;
    let sources = &genesys.sources;
    match &genesys.credentials {
        Credentials::Client { client_id, .. } => report.add(
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
        Credentials::Token(_) => report.add(
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
        (_, true) => report.add(
            "region",
            Outcome::Warn,
            format!("{region}: assumed, no source gives a region"),
            Some(format!(
                "set the org's region: --region, {} or a gc profile's environment",
                genesys_core::env::REGION.name
            )),
        ),
        (Some(source), false) => report.add(
            "region",
            Outcome::Ok,
            format!(
                "not used for the API: API URL {} from {source}",
                origin(&genesys.api_base)
            ),
            None,
        ),
        (None, false) => report.add(
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
    report.add(
        "login url",
        Outcome::Ok,
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
        report.add("settings", Outcome::Warn, warning.clone(), None);
    }
    let tokens = connection.tokens;
    let rate = if connection.auto_rate.is_some() {
        "auto".to_owned()
    } else {
        connection.rate.with_burst(1).to_string()
    };
    report.add(
        "rate",
        Outcome::Ok,
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
