//! `host`: the serverless-wasm command line.
//!
//! Each subcommand is a file of `commands` with its arguments. A request
//! travels `commands::serve` (startup) -> `server` (accepts connections)
//! -> `dispatch` (routes, reads the body) -> `serverless_runtime::App`
//! (one fresh instance) -> the host interfaces in `crates/runtime/src/host/`.

mod admin;
mod admission;
mod api;
mod catalog;
mod commands;
mod default_config;
mod dispatch;
mod invocations;
mod logging;
mod reload;
mod routes;
mod server;
mod services;
mod subscriptions;
mod taps;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use commands::apps::AppsArgs;
use commands::compile::CompileArgs;
use commands::login::{LoginArgs, WhoamiArgs};
use commands::logs::LogsArgs;
use commands::namespaces::NamespacesArgs;
use commands::run::RunArgs;
use commands::serve::ServeArgs;
use commands::services::ServicesArgs;
use commands::tokens::TokensArgs;
use commands::topics::{PublishArgs, SubscribeArgs};
use logging::LogFormat;

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
    /// Lists a running host's services (state, restarts, uptime, how the
    /// last run ended) from its admin endpoint.
    Services(ServicesArgs),
    /// Makes, lists and revokes the management API's tokens: offline on
    /// the state directory (the first admin token never travels), or
    /// through the API when logged in.
    Tokens(TokensArgs),
    /// Checks a token with a running host's management API and stores
    /// the URL and token (read from stdin or $SERVERLESS_WASM_TOKEN) for
    /// the commands below.
    Login(LoginArgs),
    /// Shows the stored login's token, namespace, scope and route prefix.
    Whoami(WhoamiArgs),
    /// Deploys, lists, shows, promotes, rolls back and deletes apps
    /// through the management API, and reads their logs.
    Apps(AppsArgs),
    /// Lists namespaces and assigns their route prefixes.
    Namespaces(NamespacesArgs),
    /// Publishes a message (standard input, or --data) on a running
    /// host's broker, through its admin endpoint.
    Publish(PublishArgs),
    /// Prints the messages of a topic or pattern as a running host's
    /// broker carries them, through its admin endpoint.
    Subscribe(SubscribeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    // Each arm drops its `Logging` as it ends, which writes every queued
    // line before the error below.
    let result = match cli.command {
        Command::Serve(args) => {
            let (store, _logging) = logging_with_store(format);
            commands::serve::run(args, store)
        }
        Command::Compile(args) => {
            let _logging = logging::init(format, None);
            commands::compile::run(args)
        }
        Command::Logs(args) => {
            let _logging = logging::init(format, None);
            commands::logs::run(args)
        }
        Command::Services(args) => {
            let _logging = logging::init(format, None);
            commands::services::run(args)
        }
        Command::Tokens(args) => {
            let _logging = logging::init(format, None);
            commands::tokens::run(args)
        }
        Command::Login(args) => {
            let _logging = logging::init(format, None);
            commands::login::login(args)
        }
        Command::Whoami(args) => {
            let _logging = logging::init(format, None);
            commands::login::whoami(args)
        }
        Command::Apps(args) => {
            let _logging = logging::init(format, None);
            commands::apps::run(args)
        }
        Command::Namespaces(args) => {
            let _logging = logging::init(format, None);
            commands::namespaces::run(args)
        }
        Command::Publish(args) => {
            let _logging = logging::init(format, None);
            commands::topics::publish(args)
        }
        Command::Subscribe(args) => {
            let _logging = logging::init(format, None);
            commands::topics::subscribe(args)
        }
        Command::Run(args) => {
            let (store, _logging) = logging_with_store(format);
            match commands::run::run(args, store) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(error) => Err(error),
            }
        }
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
fn logging_with_store(format: LogFormat) -> (Arc<invocations::Invocations>, logging::Logging) {
    let store = Arc::new(invocations::Invocations::new());
    let logging = logging::init(format, Some(store.clone()));
    (store, logging)
}
