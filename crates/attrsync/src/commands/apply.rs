//! `attrsync apply SOURCE|PLAN` and `attrsync apply --resume RUN|latest`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use reconcile::{SourceFormat, SourceInfo};

use super::source::read_desired;
use crate::Ui;
use crate::apply::{ApplySettings, Events, Work, execute};
use crate::cli::ApplyArgs;
use crate::connect;
use crate::exit::Exit;
use crate::render::summary::run_summary;
use audit::AuditStore;

pub async fn run(args: ApplyArgs, env_file: Option<&Path>, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(args.json);
    let connection_settings = connect::settings(&args.connection, env_file)?;
    let audit_path = args.audit.resolve();
    let work = match (&args.resume, &args.source) {
        (Some(run), _) => {
            let audit = open_audit(&audit_path).await?;
            resume_work(&audit, run).await?
        }
        (None, Some(source)) if is_saved_plan(source) => saved_plan_work(source)?,
        (None, Some(source)) => Work::Desired(read_desired(source, &args.source_args, ui).await?),
        (None, None) => anyhow::bail!("give a desired state, a saved plan, or --resume RUN"),
    };
    if let Work::Resume { targets, run, .. } = &work
        && targets.is_empty()
    {
        ui.note(format_args!("run {run} has nothing left to do"));
        return Ok(Exit::Success);
    }
    let audit = open_audit(&audit_path).await?;
    let rate = connect::rate_spec(&args.connection)?;
    let settings = ApplySettings {
        command: if args.resume.is_some() {
            "apply --resume".into()
        } else {
            "apply".into()
        },
        concurrency: args.concurrency,
        verify_timeout: args.verify.verify_timeout,
        results_dir: args.results.clone(),
        rate_per_minute: rate.per_minute() * f64::from(args.connection.tokens),
        options: serde_json::json!({
            "concurrency": args.concurrency,
            "rate": args.connection.rate,
            "burst": args.connection.burst,
            "tokens": args.connection.tokens,
            "verify_timeout": humantime::format_duration(args.verify.verify_timeout).to_string(),
            "default_purpose": args.source_args.default_purpose,
            "skip_invalid": args.source_args.skip_invalid,
        }),
    };
    let events = Events::new(args.json);
    let connection = args.connection.clone();
    let report = execute(
        work,
        settings,
        audit,
        |observer| connect::with_settings(&connection_settings, &connection, Some(observer)),
        ui,
        &events,
    )
    .await?;
    ui.note(run_summary(&report, &audit_path));
    Ok(report.exit)
}

pub async fn open_audit(path: &Path) -> anyhow::Result<AuditStore> {
    AuditStore::open(path)
        .await
        .with_context(|| format!("cannot open the audit store {}", path.display()))
}

fn is_saved_plan(path: &Path) -> bool {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A saved plan, executed as planned: each update is re-checked against the live call before
/// it is sent, and marked stale if a value moved since the plan saw it.
fn saved_plan_work(path: &Path) -> anyhow::Result<Work> {
    let saved = reconcile::saved_plan::load(path)
        .with_context(|| format!("cannot load the plan {}", path.display()))?;
    let source = SourceInfo {
        path: path.display().to_string(),
        format: saved.metadata.source.format,
        sha256: saved.metadata.source.sha256.clone(),
    };
    Ok(Work::Planned {
        source,
        targets: saved.plan.targets,
    })
}

async fn resume_work(audit: &AuditStore, run: &str) -> anyhow::Result<Work> {
    audit.mark_interrupted_runs().await?;
    let run = audit.resolve_run(run).await?;
    let record = audit.run(&run).await?;
    if record.status == audit::RunStatus::Running {
        anyhow::bail!(
            "run {run} is still running (pid {} on {}); wait for it or stop it first",
            record.pid,
            record.host
        );
    }
    let targets = audit.unfinished_targets(&run).await?;
    let source = SourceInfo {
        path: record.source_path.clone().unwrap_or_default(),
        format: SourceFormat::CsvWide,
        sha256: record.source_sha256.clone().unwrap_or_default(),
    };
    Ok(Work::Resume {
        run,
        source,
        targets,
    })
}
