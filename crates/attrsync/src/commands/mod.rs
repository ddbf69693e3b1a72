//! One module per command. Each returns the `Exit` it decided, or an error (exit 1).

mod apply;
mod audit;
mod completions;
mod demo;
mod doctor;
mod follow;
mod get;
mod guard;
mod live;
mod man;
mod plan;
mod queues;
mod reconcile;
mod revert;
mod set;
pub mod sim;
mod snapshot;
mod source;
pub(crate) mod tag;

use crate::exit::Exit;
use crate::settings::CommandSettings;
use crate::ui::Ui;

pub async fn run(settings: CommandSettings, ui: Ui) -> anyhow::Result<Exit> {
    match settings {
        CommandSettings::Get(args, connection) => {
            get::run(args, connection, ui.with_json(false)).await
        }
        CommandSettings::Set(args, attributes, settings) => {
            set::run(args, attributes, settings, ui).await
        }
        CommandSettings::Plan(args, connection) => plan::run(args, connection, ui).await,
        CommandSettings::Apply(args, settings) => apply::run(args, settings, ui).await,
        CommandSettings::Reconcile(args, settings) => reconcile::run(args, settings, ui).await,
        CommandSettings::ReconcileFollow(args, poll_interval, settings) => {
            reconcile::follow(args, poll_interval, settings, ui).await
        }
        CommandSettings::Live(args, connection) => live::run(args, connection, ui).await,
        CommandSettings::Queues(args, connection) => queues::run(args, connection, ui).await,
        CommandSettings::Tag(args, attributes, settings) => {
            tag::run(args, attributes, settings, ui).await
        }
        CommandSettings::Revert(args, settings) => revert::run(args, settings, ui).await,
        CommandSettings::RevertDryRun(args, audit_path) => {
            let json = args.json;
            revert::dry_run(args, &audit_path, ui.with_json(json)).await
        }
        CommandSettings::Completions(args) => completions::run(&args),
        CommandSettings::GenerateMan(args) => man::run(&args, ui),
        CommandSettings::Sim(args) => sim::run(args, ui).await,
        CommandSettings::Demo(args) => demo::run(args, ui).await,
        CommandSettings::Audit(args) => audit::run(args, ui).await,
        CommandSettings::AuditPrune(settings) => audit::prune(settings, ui).await,
        CommandSettings::Doctor(args, connection) => {
            let json = args.json;
            doctor::run(args, *connection, ui.with_json(json)).await
        }
    }
}
