//! Log lines on stderr. On a terminal, without `-v` or `RUST_LOG`, a warning is one plain line
//! (`warning: …`) with neither timestamp nor fields; the structured form (time, level, fields)
//! is for `-v` and for logs (no terminal: systemd, Kubernetes, CI).

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::Cli;
use crate::{env, output};

pub fn init(cli: &Cli) {
    let rust_log = env::var(env::RUST_LOG).and_then(|s| EnvFilter::try_new(s).ok());
    let plain = rust_log.is_none() && cli.global.verbose == 0 && std::io::stderr().is_terminal();
    let filter = rust_log.unwrap_or_else(|| {
        EnvFilter::new(output::log_filter(cli.global.verbose, cli.global.quiet))
    });
    let ansi = output::use_color(
        cli.global.color,
        env::is_set(env::NO_COLOR),
        std::io::stderr().is_terminal(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    let _ = if plain {
        builder.event_format(Plain).try_init()
    } else {
        builder.try_init()
    };
}

/// `warning: the message`, one line.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", plain_line(event))
    }
}

fn plain_line(event: &Event<'_>) -> String {
    let level = match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "note",
        _ => "debug",
    };
    let mut message = Message(String::new());
    event.record(&mut message);
    format!("{level}: {}", message.0)
}

/// An event's message, without its other fields.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_warning_on_a_terminal_is_one_plain_line() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&written);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(Arc::clone(&sink)))
            .with_ansi(false)
            .event_format(Plain)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(token_slot = 0, retry_after_s = 2, "setting the token aside");
        });
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "warning: setting the token aside\n");
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
