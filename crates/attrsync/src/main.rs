//! attrsync: keep Genesys Cloud participant attributes on live calls equal to a desired state.
//!
//! `main` parses the command line, sets up logging and the runtime, runs one command and turns
//! its outcome into an exit code (see `exit.rs`). Errors are printed once, as one chain.

mod apply;
mod cli;
mod commands;
mod connect;
mod env;
mod exit;
mod metrics;
mod output;
mod render;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::Exit;
use crate::output::OutputContext;

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
    init_logging(&cli);
    let ui = Ui::new(&cli);

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
    let outcome = runtime.block_on(commands::run(cli, ui));
    // Leave in-flight work (e.g. a simulator) no longer than needed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) if is_broken_pipe(&err) => Exit::Success.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            Exit::Failure.into()
        }
    }
}

/// What every command needs to know about where its output goes.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub color: bool,
    pub quiet: bool,
    pub output: OutputContext,
}

impl Ui {
    fn new(cli: &Cli) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        Ui {
            color: output::use_color(
                cli.global.color,
                env::is_set(env::NO_COLOR),
                std::io::stdout().is_terminal(),
            ),
            quiet: cli.global.quiet > 0,
            output: OutputContext {
                stderr_is_terminal,
                in_ci: env::is_set(env::CI),
                json: false,
                quiet: cli.global.quiet > 0,
            },
        }
    }

    pub fn with_json(mut self, json: bool) -> Self {
        self.output.json = json;
        self
    }

    /// A line of human commentary on stderr (suppressed by `-q`).
    pub fn note(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var(env::RUST_LOG)
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(output::log_filter(cli.global.verbose, cli.global.quiet))
        });
    let ansi = output::use_color(
        cli.global.color,
        env::is_set(env::NO_COLOR),
        std::io::stderr().is_terminal(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
