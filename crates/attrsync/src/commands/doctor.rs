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
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::exit::Exit;
use crate::settings::Connection;
use crate::ui::Ui;

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
    let rate = if connection.auto_rate.is_some() {
        "auto".to_owned()
    } else {
        connection.rate.with_burst(1).to_string()
    };
    let checks = engine::doctor::settings(
        &connection.genesys,
        &rate,
        connection.tokens,
        connection.pacing.as_str(),
    );
    for check in checks {
        report.add(check.name, check.outcome, check.found, check.todo);
    }
}
