//! Logs: tracing to stderr, readable text by default or one JSON object per line
//! (`SIDECAR_LOG_FORMAT=json`). Request lines carry a request id, the endpoint, the
//! language, the status and the duration, never code, file contents or env values.
//! Colours only on a terminal (a container's log is a pipe or a file: escape codes
//! there garble `kubectl logs` and log search), and never with `NO_COLOR` set.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` refines the level (default `level`: `info`
/// for the server, `warn` for one-shot commands, whose output is the program's).
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
