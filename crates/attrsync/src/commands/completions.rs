//! `attrsync completions SHELL`: a completion script for the shell, on stdout.

use std::io::Write as _;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::Exit;

pub fn run(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, name, &mut stdout);
    stdout.flush()?;
    Ok(Exit::Success)
}
