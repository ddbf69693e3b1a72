//! Where a command's output goes: color, quiet, and the output context, decided once from the
//! command line and the environment.

use std::io::IsTerminal;

use crate::cli::Cli;
use crate::env;
use crate::output::{self, OutputContext};

/// What every command needs to know about where its output goes.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub color: bool,
    pub quiet: bool,
    pub output: OutputContext,
}

impl Ui {
    pub fn new(cli: &Cli) -> Self {
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
