//! `host`: the serverless-wasm command line.
//!
//! A request travels `serve` (startup) -> `server` (accepts connections)
//! -> `dispatch` (routes, reads the body) -> `serverless_runtime::App`
//! (one fresh instance) -> the host interfaces in `crates/runtime/src/host/`.

mod admin;
mod admission;
mod default_config;
mod dispatch;
mod invocations;
mod logs;
mod reload;
mod run;
mod serve;
mod server;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

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

/// Arguments of `host logs`.
#[derive(clap::Args)]
pub(crate) struct LogsArgs {
    /// The app's name, as in the configuration.
    pub(crate) app: String,

    /// The running host's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub(crate) admin: std::net::SocketAddr,

    /// Keeps printing invocations as they finish.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
}

/// Arguments of `host run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The component: our handler world or `wasi:http/proxy`.
    pub(crate) component: PathBuf,

    /// The request method.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,

    /// The request path, with a query string if any.
    #[arg(long, default_value = "/")]
    pub(crate) path: String,

    /// The route pattern the request matches, for route parameters (for
    /// example `/hello/:name`). Default: the path itself.
    #[arg(long)]
    pub(crate) route: Option<String>,

    /// A request header, `name: value`; repeatable.
    #[arg(long, value_name = "HEADER")]
    pub(crate) header: Vec<String>,

    /// The request body, as text.
    #[arg(long, conflicts_with = "body_file")]
    pub(crate) body: Option<String>,

    /// The request body, read from a file.
    #[arg(long, value_name = "FILE")]
    pub(crate) body_file: Option<PathBuf>,

    /// An environment variable for the component, `NAME=value`;
    /// repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,

    /// The request's time limit (default 30s, as `serve`): `250ms`, `5s`,
    /// `2m`, or a number of seconds.
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds_flag)]
    pub(crate) timeout: Option<std::time::Duration>,

    /// Allows outbound TCP to a destination, as for `host serve`.
    #[arg(long = "allow-tcp", value_name = "RULE", value_parser = parse_tcp_rule)]
    pub(crate) allow_tcp: Vec<serverless_outbound::TcpRule>,

    /// Allows outbound HTTP to a destination, as for `host serve`.
    #[arg(long = "allow-http", value_name = "RULE", value_parser = parse_http_rule)]
    pub(crate) allow_http: Vec<serverless_outbound::HttpRule>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// Where compiled components are kept between starts.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    /// The compile cache folder. Entries are keyed by the component's
    /// content and the engine's settings, and checked before use. Default:
    /// `$XDG_CACHE_HOME/serverless-wasm/compiled`, or
    /// `~/.cache/serverless-wasm/compiled`.
    #[arg(long, value_name = "DIR", env = "SERVERLESS_WASM_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Compiles every component at startup without reading or writing the
    /// compile cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub(crate) no_cache: bool,
}

/// Arguments of `host compile`.
#[derive(clap::Args)]
pub(crate) struct CompileArgs {
    /// The TOML file whose components to compile. Without it, the bundled
    /// samples are compiled.
    pub(crate) config: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// Arguments of `host serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The TOML file that maps routes to components. Without it, the
    /// bundled samples are served.
    pub(crate) config: Option<PathBuf>,

    /// The address to listen on, overriding the file's `listen_address`.
    /// Port 0 picks a free port; the chosen address is printed.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,

    /// On SIGINT or SIGTERM, how long in-flight requests may take to finish
    /// before the host exits anyway: `500ms`, `30s`, `2m`, or a number of
    /// seconds; 0 does not wait.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_drain_flag)]
    pub(crate) drain_timeout: std::time::Duration,

    /// Allows outbound TCP to a destination, repeatable. Without any,
    /// handlers cannot open connections. Forms: `redis.internal:6379`,
    /// `*.db.example.com:5432`, `10.0.0.5:6379`, `10.0.0.0/8:8000-8999`,
    /// `[::1]:7000`, `[fd00::/8]:443`; a port is N, N-M or *.
    #[arg(long = "allow-tcp", value_name = "RULE", value_parser = parse_tcp_rule)]
    pub(crate) allow_tcp: Vec<serverless_outbound::TcpRule>,

    /// Allows outbound HTTP from wasi:http components to a destination,
    /// repeatable. Without any, they cannot send requests. Forms:
    /// `http://127.0.0.1:8080`, `https://api.example.com`,
    /// `https://*.example.com:443`, `*://backend.internal:*`.
    #[arg(long = "allow-http", value_name = "RULE", value_parser = parse_http_rule)]
    pub(crate) allow_http: Vec<serverless_outbound::HttpRule>,

    /// How many requests may run at once across all apps (each runs in an
    /// instance of the pool, which is sized to this).
    #[arg(long, value_name = "COUNT", default_value_t = 1000)]
    pub(crate) max_instances: u32,

    /// How long a request past a concurrency cap may wait for a slot
    /// before it gets `503`: `250ms`, `1s`, or a number of milliseconds;
    /// 0 does not wait.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_queue_flag)]
    pub(crate) queue_timeout: std::time::Duration,

    /// How many client connections may be open at once. Past it the host
    /// stops accepting: new connections wait in the kernel's listen backlog
    /// until one closes. Default: half the soft open-files limit
    /// (`ulimit -n`), at most 10000, so that the instances' files and
    /// sockets keep the other half.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: Option<u32>,

    /// How long a connection may wait for its next request: counted from
    /// its opening or its last response until the request's head has
    /// arrived, then the connection is closed. For example `500ms`, `30s`,
    /// `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_idle_flag)]
    pub(crate) idle_timeout: std::time::Duration,

    /// Reloads when the configuration file or a component file changes,
    /// as SIGHUP does (checked twice a second).
    #[arg(long)]
    pub(crate) watch: bool,

    /// Where the admin endpoints listen (`/healthz`, `/readyz`,
    /// `/metrics`, `/routes`): keep it on loopback or a private network.
    /// `off` disables them; port 0 picks a free port, printed at startup.
    /// Default: `127.0.0.1:9464`, or `127.0.0.1:0` when the listen address
    /// has port 0, so that hosts started side by side do not collide.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_admin_listen)]
    pub(crate) admin_listen: Option<AdminListen>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// The value of `--admin-listen`.
#[derive(Clone, Copy)]
pub(crate) struct AdminListen(pub(crate) Option<std::net::SocketAddr>);

impl AdminListen {
    /// The admin address when `--admin-listen` is not given: the fixed
    /// port, or a free one when the server's own port is picked freely
    /// (a fixed one would make a second such host fail to start).
    pub(crate) fn default_for(listen: std::net::SocketAddr) -> AdminListen {
        let port = if listen.port() == 0 {
            0
        } else {
            DEFAULT_ADMIN_PORT
        };
        AdminListen(Some(std::net::SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            port,
        ))))
    }
}

/// The admin port when neither `--admin-listen` nor port 0 says otherwise.
const DEFAULT_ADMIN_PORT: u16 = 9464;

fn parse_admin_listen(text: &str) -> Result<AdminListen, String> {
    if text == "off" {
        return Ok(AdminListen(None));
    }
    text.parse()
        .map(|address| AdminListen(Some(address)))
        .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:9464, or `off`"))
}

/// What a bare number means in a time flag: the unit the flag took before
/// it took durations, or nothing for a flag that never took numbers.
#[derive(Clone, Copy, Debug)]
enum BareNumber {
    Seconds,
    Milliseconds,
    Refused,
}

/// The one parser of every time flag: a duration as the configuration
/// writes it (`250ms`, `5s`, `2m`, `1h`), or a bare number in the flag's
/// old unit. `zero` says whether zero ("do not wait") is allowed. Clap
/// names the flag in front of the error.
fn parse_time_flag(
    text: &str,
    bare: BareNumber,
    zero: bool,
) -> Result<std::time::Duration, String> {
    let forms = match bare {
        BareNumber::Seconds => "250ms, 5s, 2m, 1h, or a number of seconds",
        BareNumber::Milliseconds => "250ms, 5s, 2m, 1h, or a number of milliseconds",
        BareNumber::Refused => "a whole number with a unit: 250ms, 5s, 2m or 1h",
    };
    let number = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = match bare {
        BareNumber::Seconds if number => text
            .parse::<f64>()
            .ok()
            .and_then(|seconds| std::time::Duration::try_from_secs_f64(seconds).ok()),
        BareNumber::Milliseconds if number => text
            .parse::<u64>()
            .ok()
            .map(std::time::Duration::from_millis),
        _ => serverless_config::parse_duration_or_zero(text),
    };
    match parsed {
        Some(duration) if duration.is_zero() && !zero => Err(format!(
            "{text:?} is zero; the time must be longer; write {forms}"
        )),
        Some(duration) => Ok(duration),
        None => Err(format!("{text:?} is not a duration; write {forms}")),
    }
}

/// `host run --timeout`: seconds when bare, as before; more than zero.
fn parse_seconds_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Seconds, false)
}

/// `--drain-timeout`: seconds when bare, as before; zero does not wait.
fn parse_drain_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Seconds, true)
}

/// `--queue-timeout`: milliseconds when bare, as before; zero does not
/// wait.
fn parse_queue_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Milliseconds, true)
}

/// `--idle-timeout`: a duration with its unit; more than zero.
fn parse_idle_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Refused, false)
}

/// Parses one `--allow-tcp` value; clap reports the error before anything
/// starts.
fn parse_tcp_rule(text: &str) -> Result<serverless_outbound::TcpRule, String> {
    text.parse()
        .map_err(|e: serverless_outbound::AllowlistError| e.to_string())
}

/// Parses one `--allow-http` value.
fn parse_http_rule(text: &str) -> Result<serverless_outbound::HttpRule, String> {
    text.parse()
        .map_err(|e: serverless_outbound::HttpRuleError| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    let result = match cli.command {
        Command::Serve(args) => serve::run(args, logging_with_store(format)),
        Command::Compile(args) => {
            init_logging(format, None);
            serve::compile(args)
        }
        Command::Logs(args) => {
            init_logging(format, None);
            logs::logs(args)
        }
        Command::Run(args) => match run::run(args, logging_with_store(format)) {
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
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
    tracing_subscriber::registry()
        .with(output)
        .with(store.map(|store| invocations::CaptureLayer::new(store).with_filter(captured)))
        .init();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_time_flag_takes_durations_and_its_old_bare_unit() {
        let ok = |parse: fn(&str) -> Result<Duration, String>, text: &str| parse(text).unwrap();
        assert_eq!(ok(parse_seconds_flag, "250ms"), Duration::from_millis(250));
        assert_eq!(ok(parse_seconds_flag, "2"), Duration::from_secs(2));
        assert_eq!(ok(parse_seconds_flag, "0.5"), Duration::from_millis(500));
        assert_eq!(ok(parse_drain_flag, "30"), Duration::from_secs(30));
        assert_eq!(ok(parse_drain_flag, "2m"), Duration::from_secs(120));
        assert_eq!(ok(parse_drain_flag, "0"), Duration::ZERO);
        assert_eq!(ok(parse_queue_flag, "200"), Duration::from_millis(200));
        assert_eq!(ok(parse_queue_flag, "1s"), Duration::from_secs(1));
        assert_eq!(ok(parse_queue_flag, "0ms"), Duration::ZERO);
        assert_eq!(ok(parse_idle_flag, "1h"), Duration::from_secs(3600));
    }

    #[test]
    fn bad_time_flags_are_refused_with_the_forms() {
        let seconds = "250ms, 5s, 2m, 1h, or a number of seconds";
        for bad in [
            "inf", "-1", "nan", "NaN", "1e400", "", "1.5s", "1d", "1.2.3", "5 x",
        ] {
            assert_eq!(
                parse_seconds_flag(bad),
                Err(format!("{bad:?} is not a duration; write {seconds}")),
            );
        }
        assert_eq!(
            parse_seconds_flag("0"),
            Err(format!(
                "\"0\" is zero; the time must be longer; write {seconds}"
            ))
        );
        assert_eq!(
            parse_seconds_flag("99999999999999999999999"),
            Err(format!(
                "\"99999999999999999999999\" is not a duration; write {seconds}"
            ))
        );
        assert_eq!(
            parse_queue_flag("0.5"),
            Err(
                "\"0.5\" is not a duration; write 250ms, 5s, 2m, 1h, or a number of milliseconds"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_idle_flag("30"),
            Err(
                "\"30\" is not a duration; write a whole number with a unit: 250ms, 5s, 2m or 1h"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_idle_flag("0s"),
            Err("\"0s\" is zero; the time must be longer; write a whole number with a unit: 250ms, 5s, 2m or 1h".to_owned())
        );
    }
}
