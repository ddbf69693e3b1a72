//! Decisions about what goes to the terminal: color, progress display, log verbosity.
//! Each is a small pure function so that it can be tested without a terminal.

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Color precedence: `--color` > `NO_COLOR` > auto (terminal or not).
pub fn use_color(flag: ColorChoice, no_color_set: bool, stream_is_terminal: bool) -> bool {
    match flag {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color_set && stream_is_terminal,
    }
}

/// How progress of a long run is shown on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// An animated bar: only on an interactive terminal.
    Bar,
    /// A plain line every few seconds: logs, CI, pipes.
    Lines,
    /// Nothing: `-q`, or `--json` (stdout is a machine's, stderr stays quiet but for errors).
    Off,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OutputContext {
    pub stderr_is_terminal: bool,
    pub in_ci: bool,
    pub json: bool,
    pub quiet: bool,
}

pub fn progress_mode(ctx: OutputContext) -> ProgressMode {
    if ctx.quiet || ctx.json {
        ProgressMode::Off
    } else if ctx.stderr_is_terminal && !ctx.in_ci {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines
    }
}

/// Default log filter from counting `-v`/`-q`; `RUST_LOG`, when set, wins.
pub fn log_filter(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (_, q) if q >= 2 => "off",
        (_, 1) => "error",
        (0, _) => "warn",
        (1, _) => "info,attrsync=info",
        (2, _) => "info,attrsync=debug,engine=debug,genesys_core=debug,reconcile=debug,audit=debug",
        _ => "debug,attrsync=trace,engine=trace,genesys_core=trace,reconcile=trace,audit=trace",
    }
}

/// One line of a command's product on stdout. A closed stdout (`| head`) is an error the
/// command returns, so that it ends quietly with exit 0 (see `exit::for_error`), not a panic.
pub fn stdout_line(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_flag_beats_no_color_which_beats_auto() {
        assert!(use_color(ColorChoice::Always, true, false));
        assert!(!use_color(ColorChoice::Never, false, true));
        assert!(!use_color(ColorChoice::Auto, true, true));
        assert!(use_color(ColorChoice::Auto, false, true));
        assert!(!use_color(ColorChoice::Auto, false, false));
    }

    #[test]
    fn progress_bar_only_on_an_interactive_terminal_outside_ci() {
        let term = OutputContext {
            stderr_is_terminal: true,
            ..Default::default()
        };
        assert_eq!(progress_mode(term), ProgressMode::Bar);
        assert_eq!(
            progress_mode(OutputContext {
                in_ci: true,
                ..term
            }),
            ProgressMode::Lines
        );
        assert_eq!(
            progress_mode(OutputContext { json: true, ..term }),
            ProgressMode::Off
        );
        assert_eq!(
            progress_mode(OutputContext {
                quiet: true,
                ..term
            }),
            ProgressMode::Off
        );
        assert_eq!(progress_mode(OutputContext::default()), ProgressMode::Lines);
    }

    #[test]
    fn verbosity_counts_up_and_down() {
        assert_eq!(log_filter(0, 0), "warn");
        assert_eq!(log_filter(0, 1), "error");
        assert_eq!(log_filter(0, 2), "off");
        assert!(log_filter(1, 0).starts_with("info"));
        assert!(log_filter(3, 0).contains("trace"));
        // The engine is a crate of its own: its debug lines come with -vv too.
        assert!(log_filter(2, 0).contains("engine=debug"));
    }
}
