//! Where a log line goes: from a `tracing` event, through the output's
//! `RUST_LOG` filter, into a [`record::Record`] on the request's thread,
//! then through a bounded queue to the writer thread, which formats it
//! (`text` or `json`) and writes batches of lines to stderr.
//!
//! A request thus pays a few hundred nanoseconds for each line it logs,
//! and the lines are the ones `tracing-subscriber` wrote before. Beside
//! the output, the commands that run requests feed the invocation store
//! for `host logs` (`crate::invocations`), whatever `RUST_LOG` says.
//!
//! The access line, one per request (`dispatch::identity`), is the stable
//! record of what the host did; its fields are documented in the README.

mod json;
mod layer;
mod record;
mod text;
mod timestamp;

pub(crate) use timestamp::write as write_timestamp;
mod writer;

use std::io::IsTerminal as _;
use std::sync::Arc;

use crate::invocations;
pub(crate) use writer::dropped;
use writer::{Format, LogWriter};

/// The formats of `--log-format`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Keeps the writer thread running; dropping it writes every queued line.
/// Hold it until the command is done, and drop it before printing the
/// command's error, so that the lines come first.
#[must_use = "dropping it stops the log writer"]
pub(crate) struct Logging {
    _writer: Option<LogWriter>,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`); stdout is
/// kept for the routes and the listening address. With a store, lines
/// about requests are also kept per invocation for `host logs`, whatever
/// `RUST_LOG` says (but the access line, whose facts the invocation record
/// holds already).
pub(crate) fn init(format: LogFormat, store: Option<Arc<invocations::Invocations>>) -> Logging {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Records of the `log` crate (Cranelift and regalloc2 write many at
    // trace level while compiling) reach tracing only up to what the
    // output shows. Left to the default, the bridge would take the
    // subscriber's maximum, TRACE because of the capture layer's hidden
    // invocation span, and build every one of those records: compiling a
    // Python component then took ten times longer.
    let log_level = log_bridge_level(&filter);
    let format = match format {
        LogFormat::Text => Format::Text {
            ansi: std::io::stderr().is_terminal(),
        },
        LogFormat::Json => Format::Json,
    };
    let writer = match LogWriter::start(format, Box::new(std::io::stderr())) {
        Ok(writer) => Some(writer),
        Err(error) => {
            eprintln!("cannot start the log writer thread ({error}); logging is off");
            None
        }
    };
    let output = writer
        .as_ref()
        .map(|writer| layer::OutputLayer::new(writer.queue()).with_filter(filter));
    let captured = tracing_subscriber::filter::Targets::new()
        .with_target("guest", tracing::Level::INFO)
        .with_target("host", tracing::Level::INFO)
        .with_target("serverless_runtime", tracing::Level::INFO)
        .with_target(invocations::INVOCATION_TARGET, tracing::Level::TRACE);
    let subscriber = tracing_subscriber::registry()
        .with(output)
        .with(store.map(|store| invocations::CaptureLayer::new(store).with_filter(captured)));
    // Both fail only when logging was set up already, which it is not.
    let _ = tracing::subscriber::set_global_default(subscriber);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(log_level)
        .init();
    Logging { _writer: writer }
}

/// The most detailed `log` record worth building: what the output layer
/// shows, whatever the capture layer's hidden span asks of tracing.
fn log_bridge_level(filter: &tracing_subscriber::EnvFilter) -> tracing_log::log::LevelFilter {
    filter
        .max_level_hint()
        .map_or(tracing_log::log::LevelFilter::Info, |level| {
            tracing_log::AsLog::as_log(&level)
        })
}

#[cfg(test)]
mod tests;
