//! `attrsync apply SOURCE|PLAN` and `attrsync apply --resume RUN|latest`.

use std::io::Read;
use std::path::Path;

use reconcile::{SourceFormat, SourceInfo};

use super::source::{invalid_input, read_desired, read_options};
use crate::cli::{ApplyArgs, SourceArgs};
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::render::summary::{run_summary, stopped_early};
use crate::settings::RunSettings;
use crate::ui::Ui;
use audit::AuditStore;
use engine::Work;

pub async fn run(args: ApplyArgs, run_settings: RunSettings, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(run_settings.json);
    let audit_path = run_settings.audit_path.clone();
    let mut work = match (&args.resume, &args.source) {
        (Some(run), source) => {
            // A resume never creates a store: a wrong path is said as such.
            let audit = AuditStore::open_no_create(&audit_path).await?;
            let work = resume_work(&audit, run).await?;
            if let (
                Some(given),
                Work::Resume {
                    run, source: own, ..
                },
            ) = (source, &work)
                && !same_source(given, &own.path)
            {
                eprintln!(
                    "error: {} is not the source of run {run} ({}): give --resume alone, or apply {} without --resume",
                    given.display(),
                    own.path,
                    given.display()
                );
                return Ok(Exit::Usage);
            }
            work
        }
        (None, Some(source)) if is_saved_plan(source) => {
            saved_plan_work(source, &read_options(&args.source_args).limits)?
        }
        (None, Some(source)) => Work::Desired(read_desired(source, &args.source_args, ui).await?),
        (None, None) => anyhow::bail!("give a desired state, a saved plan, or --resume RUN"),
    };
    if let Work::Resume {
        targets,
        run,
        source,
        ..
    } = &work
        && targets.is_empty()
    {
        // A run stopped before it recorded its targets (while asking which calls ended) sent
        // no change, and the store cannot say what it was to do: that is not "done".
        let summary = AuditStore::open_no_create(&audit_path)
            .await?
            .run_summary(run)
            .await?;
        if summary.counts.total() == 0
            && summary.run.ended_rows == 0
            && summary.run.status == audit::RunStatus::Interrupted
        {
            let recorded = recorded_source_args(&summary.run.options, &args.source_args);
            match unchanged_source(source, &recorded, ui).await {
                Some(desired) => {
                    ui.note(format_args!(
                        "run {run} was stopped before it recorded its targets (it changed \
                         nothing); its source {} is unchanged, so it is applied as a new run",
                        source.path
                    ));
                    work = Work::Desired(desired);
                }
                None => {
                    eprintln!(
                        "error: run {run} was stopped before it recorded its targets, so it \
                         changed nothing and cannot be resumed: apply its source again \
                         (attrsync apply {})",
                        source.path
                    );
                    return Ok(Exit::Failure);
                }
            }
        } else {
            ui.note(format_args!("run {run} has nothing left to do"));
            return Ok(Exit::Success);
        }
    }
    let work = super::guard::max_changes(work, &run_settings, ui).await?;
    let audit = open_audit(&audit_path).await?;
    let outcome = super::snapshot::run(
        work,
        &run_settings,
        &audit,
        CliObserver::new(ui, run_settings.json),
    )
    .await?;
    if let Some(line) = stopped_early(&outcome, &run_settings.hints) {
        eprintln!("{line}");
    }
    ui.note(run_summary(&outcome, &audit_path, &run_settings.hints));
    Ok(crate::exit::for_run(&outcome))
}

/// The desired state a run recorded as its source, read again the way the run read it
/// (`args`: its recorded options) when the file's content is what the run read (its sha256: of
/// a CSV's bytes, of an SQLite database file); `None` otherwise (a changed file is not what the
/// run was to do).
async fn unchanged_source(
    source: &SourceInfo,
    args: &SourceArgs,
    ui: Ui,
) -> Option<reconcile::DesiredState> {
    let path = Path::new(&source.path);
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) || is_saved_plan(path) {
        return None;
    }
    let desired = read_desired(path, args, ui).await.ok()?;
    (desired.source.sha256 == source.sha256).then_some(desired)
}

/// The source arguments a run recorded with its options; what a run of an older attrsync did
/// not record is taken from `given`.
fn recorded_source_args(options: &serde_json::Value, given: &SourceArgs) -> SourceArgs {
    let text = |key: &str| options.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    SourceArgs {
        default_purpose: text("default_purpose").unwrap_or_else(|| given.default_purpose.clone()),
        skip_invalid: options
            .get("skip_invalid")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(given.skip_invalid),
        table: text("table").unwrap_or_else(|| given.table.clone()),
        query: match options.get("query") {
            Some(serde_json::Value::Null) => None,
            Some(_) => text("query"),
            None => given.query.clone(),
        },
        default_region: match options.get("default_region") {
            Some(serde_json::Value::Null) => None,
            Some(_) => text("default_region").and_then(|r| r.parse().ok()),
            None => given.default_region,
        },
    }
}

/// Whether `given` names the file a run recorded as its source.
fn same_source(given: &Path, recorded: &str) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    given == Path::new(recorded)
        || canonical(given).is_some_and(|g| Some(g) == canonical(Path::new(recorded)))
}

/// Opens (or creates) the audit store; its errors name the store, so no context is added.
pub async fn open_audit(path: &Path) -> anyhow::Result<AuditStore> {
    Ok(AuditStore::open(path).await?)
}

/// A saved plan is a JSON document in a regular file; anything else (a pipe included, which must
/// be read only once) is a desired state.
fn is_saved_plan(path: &Path) -> bool {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A saved plan, executed as planned: each update is re-checked against the live call before
/// it is sent, and marked stale if a value moved since the plan saw it.
fn saved_plan_work(path: &Path, limits: &reconcile::Limits) -> anyhow::Result<Work> {
    // Its errors name the file.
    let saved = reconcile::saved_plan::load(path)?;
    reconcile::saved_plan::validate(&saved, path, limits).map_err(|err| invalid_input(&err))?;
    let source = SourceInfo {
        path: path.display().to_string(),
        format: saved.metadata.source.format,
        sha256: saved.metadata.source.sha256.clone(),
    };
    Ok(Work::Planned {
        source,
        targets: saved.plan.targets,
        input: saved.metadata.input,
        reverts: None,
        no_live_call: saved.metadata.no_live_call,
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
        budget_stopped: record.exit_code == Some(i32::from(Exit::StoppedEarly.code())),
    })
}
