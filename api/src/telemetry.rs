//! Structured logs through `tracing`.

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls (tests start many apps) are no-ops.
pub fn init(log: &LogSettings) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log.level.to_env_filter())
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
