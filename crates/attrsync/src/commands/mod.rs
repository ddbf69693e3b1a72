//! One module per command. Each returns the `Exit` it decided, or an error (exit 1).

mod apply;
mod audit;
mod completions;
mod demo;
mod get;
mod live;
mod man;
mod plan;
mod reconcile;
mod set;
pub mod sim;
mod source;
mod tag;

use crate::Ui;
use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub async fn run(cli: Cli, ui: Ui) -> anyhow::Result<Exit> {
    let env_file = cli.global.env_file.as_deref();
    match cli.command {
        Command::Get(args) => get::run(args, env_file, ui.with_json(false)).await,
        Command::Set(args) => set::run(args, env_file, ui).await,
        Command::Plan(args) => plan::run(args, env_file, ui).await,
        Command::Apply(args) => apply::run(args, env_file, ui).await,
        Command::Reconcile(args) => reconcile::run(args, env_file, ui).await,
        Command::Live(args) => live::run(args, env_file, ui).await,
        Command::Tag(args) => tag::run(args, env_file, ui).await,
        Command::Completions(args) => completions::run(&args),
        Command::GenerateMan(args) => man::run(&args, ui),
        Command::Sim(args) => sim::run(args, ui).await,
        Command::Demo(args) => demo::run(args, ui).await,
        Command::Audit(args) => audit::run(args, ui).await,
    }
}
