//! What `nas` logs, and where: `tracing` events and spans, written to stderr. `RUST_LOG`
//! chooses what is written (`NAS_LOG`, its older name, when `RUST_LOG` is not set), in
//! `tracing`'s own format with times and, at `debug`, every span as it closes with how
//! long it took. Without either, warnings and the host's own messages (`info`) are
//! written as they always were, `warning: ...` and plain lines, and nothing else; the
//! results of a command go to stdout whatever the setting.

use crate::spans;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_log::AsLog;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::{self, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// What is written when no variable says otherwise: warnings from anything (the
/// device libraries included), and the host's own messages.
pub const DEFAULT_FILTER: &str = "warn,nas=info,nas_cli=info,nas_core=info";

/// Installs the process's subscriber: the log on stderr, filtered by `RUST_LOG`, and
/// the span recorder ([`spans`]) beside it. A `RUST_LOG` that does not parse is
/// reported, and the default used.
pub fn init() {
    let given = ["RUST_LOG", "NAS_LOG"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().map(|s| (v, s)));
    let (filter, bad) = match &given {
        Some((var, s)) => match EnvFilter::try_new(s) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!("{var}={s}: {e}")),
            ),
        },
        None => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let detailed = given.is_some() && bad.is_none();
    // `log` records (from the device libraries) cost nothing below what is written.
    let log_level = filter
        .max_level_hint()
        .unwrap_or(tracing::level_filters::LevelFilter::TRACE);
    let out = if detailed {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_timer(fmt::time::uptime())
            .with_span_events(FmtSpan::CLOSE)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(Plain)
            .boxed()
    };
    let subscriber = tracing_subscriber::registry()
        .with(out.with_filter(filter))
        .with(spans::layer());
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(log_level.as_log())
            .init();
    }
    if let Some(why) = bad {
        tracing::warn!("{why}; logging as the default `{DEFAULT_FILTER}` does");
    }
}

/// The default format: `error: ...`, `warning: ...`, and other messages as they are,
/// each followed by its fields.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(w, "error: ")?,
            Level::WARN => write!(w, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
