//! Logging: human-readable or JSON lines, filtered by RUST_LOG. Each line of a request
//! carries its request id through the span opened in `middleware.rs`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{self, LogFormat};

pub fn init(format: &LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(config::default_of("RUST_LOG")));
    // Colour only for a person watching: redirected to a file or a log collector, ANSI escape
    // codes would be written into every line. The check is on stderr, the stream written to.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
