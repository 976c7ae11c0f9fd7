//! Logging: human-readable or JSON lines, filtered by RUST_LOG. Each line of a request
//! carries its request id through the span opened in `middleware.rs`.
//!
//! Lines are written by a thread of their own (`tracing_appender::non_blocking`): at ten
//! thousand requests a second, one access line each, a write to stderr per line under its
//! lock was a system call on every request's path. The channel blocks when full rather than
//! drop lines (`lossy(false)`): a log that silently loses lines under load is worse than a
//! slower request. Access lines are INFO of `stockcart::middleware`; turn them down with
//! `RUST_LOG=info,sqlx=warn,stockcart::middleware=warn`.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{self, LogFormat};

/// Keep it until the process ends: dropping it flushes the lines still queued.
#[must_use]
pub struct LogGuard(#[allow(dead_code)] Option<WorkerGuard>);

pub fn init(format: &LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config::default_of("RUST_LOG")));
    // Colour only for a person watching: redirected to a file or a log collector, ANSI escape
    // codes would be written into every line. The check is on stderr, the stream written to.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
    LogGuard(installed.is_ok().then_some(guard))
}
