//! attrsync: keep Genesys Cloud participant attributes on live calls equal to a desired state.
//!
//! `main` parses the command line, sets up logging and the runtime, runs one command and turns
//! its outcome into an exit code (see `exit.rs`). Errors are printed once, as one chain.

mod cli;
mod commands;
mod env;
mod events;
mod exit;
mod hints;
mod logging;
mod observer;
mod output;
mod progress;
#[cfg(test)]
mod readme_recipes;
mod render;
mod settings;
mod signals;
mod ui;

use std::process::ExitCode;

use clap::Parser;
/// The chain of an error, each cause once: `context: cause: root cause`.
use engine::error_chain;

use crate::cli::Cli;
use crate::exit::Exit;
use crate::settings::ResolveError;
use crate::ui::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are "errors" to clap but successes to the user.
            let _ = err.print();
            return if err.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    // The environment is complete (process environment, then .env) before anything reads it.
    if let Err(err) = env::load_dotenv(cli.credential_files().env_file.as_deref()) {
        print_error(&anyhow::Error::from(err));
        return Exit::Failure.into();
    }
    logging::init(&cli);
    let ui = Ui::new(&cli);
    // The whole command line becomes settings before any file is read or store created.
    let settings = match settings::resolve(cli) {
        Ok(settings) => settings,
        Err(ResolveError::Usage(err)) => {
            let _ = err.print();
            return Exit::Usage.into();
        }
        Err(ResolveError::Config(err)) => {
            print_error(&err);
            return Exit::Failure.into();
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return Exit::Failure.into();
        }
    };
    let outcome = runtime.block_on(async {
        let _listener = signals::install();
        tokio::select! {
            // A command that has finished wins over a signal that arrived meanwhile.
            biased;
            outcome = commands::run(settings, ui) => outcome,
            // A signal that no command handles: stop waiting for it (the work is dropped, its
            // destructors run) and exit as interrupted.
            () = signals::quit_requested() => Ok(Exit::Interrupted),
            // A second signal ends the process at once, with what is recorded so far (a later
            // run settles what this one left).
            () = signals::received_at_least(2) => {
                eprintln!("attrsync: stopped at once; a later run settles what this one left unfinished");
                Ok(Exit::Interrupted)
            }
        }
    });
    // Leave in-flight work (e.g. a simulator) no longer than needed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) => {
            let exit = exit::for_error(&err);
            if exit != Exit::Success {
                print_error(&err);
            }
            exit.into()
        }
    }
}

/// Prints an error once, as one chain: `error: context: cause: root cause`.
fn print_error(err: &anyhow::Error) {
    eprintln!("error: {}", error_chain(err.as_ref()));
}
