//! `host`: the serverless-wasm command line.
//!
//! Each subcommand is a file of `commands` with its arguments. A request
//! travels `commands::serve` (startup) -> `server` (accepts connections)
//! -> `dispatch` (routes, reads the body) -> `serverless_runtime::App`
//! (one fresh instance) -> the host interfaces in `crates/runtime/src/host/`.

mod admin;
mod admission;
mod commands;
mod default_config;
mod dispatch;
mod invocations;
mod reload;
mod server;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use commands::compile::CompileArgs;
use commands::logs::LogsArgs;
use commands::run::RunArgs;
use commands::serve::ServeArgs;

/// Runs WebAssembly components as serverless HTTP handlers.
#[derive(Parser)]
#[command(name = "host", version, about)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object a line) for log collectors. Filter them with `RUST_LOG`
    /// (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// The formats of `--log-format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the apps of a configuration file, or the bundled samples when
    /// no file is given.
    Serve(ServeArgs),
    /// Compiles every component of a configuration into the compile cache,
    /// so that `host serve` starts without compiling.
    Compile(CompileArgs),
    /// Sends one request to a component without a server, as `host serve`
    /// would run it, and prints the response; the guest's logs go to
    /// stderr. Exits 1 when the answer is 500 or above.
    Run(RunArgs),
    /// Prints an app's last invocations with their log lines, from a
    /// running host's admin endpoint; `--follow` keeps printing new ones.
    Logs(LogsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args, logging_with_store(format)),
        Command::Compile(args) => {
            init_logging(format, None);
            commands::compile::run(args)
        }
        Command::Logs(args) => {
            init_logging(format, None);
            commands::logs::run(args)
        }
        Command::Run(args) => match commands::run::run(args, logging_with_store(format)) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// For the commands that run requests: a fresh invocation store, created
/// before logging so that the capture layer can feed it, then logging.
fn logging_with_store(format: LogFormat) -> Arc<invocations::Invocations> {
    let store = Arc::new(invocations::Invocations::new());
    init_logging(format, Some(store.clone()));
    store
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`); stdout is
/// kept for the routes and the listening address. With a store, lines
/// about requests are also kept per invocation for `host logs`, whatever
/// `RUST_LOG` says (but the access line, whose facts the invocation record
/// holds already).
fn init_logging(format: LogFormat, store: Option<Arc<invocations::Invocations>>) {
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
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Text => output
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => output
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    };
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
mod tests {
    use super::*;

    #[test]
    fn log_records_are_built_only_up_to_the_output_level() {
        // Before the fix the bridge took the subscriber's maximum, TRACE,
        // and compiling built every trace record of Cranelift.
        let filter = tracing_subscriber::EnvFilter::new("info");
        assert_eq!(
            log_bridge_level(&filter),
            tracing_log::log::LevelFilter::Info
        );
        let filter = tracing_subscriber::EnvFilter::new("warn,host=debug");
        assert_eq!(
            log_bridge_level(&filter),
            tracing_log::log::LevelFilter::Debug
        );
    }
}
