//! `host serve`: load the configuration, prepare every app, listen, and
//! serve until SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serverless_outbound::{HttpAllowlist, TcpAllowlist};
use serverless_runtime::{OperatorRules, Runtime};
use tokio::net::TcpListener;

use super::common::{
    CacheArgs, load_config, max_memory, parse_drain_flag, parse_http_rule, parse_idle_flag,
    parse_queue_flag, parse_tcp_rule, prepare_runtime,
};
use crate::admin::{Admin, Metrics};
use crate::dispatch::Dispatcher;
use crate::invocations::Invocations;
use crate::reload::{self, Reloader};
use crate::server;

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

    /// Allows services to bind and listen on an address, repeatable, in
    /// the --allow-tcp forms (`127.0.0.1:9000`, `0.0.0.0:8000-8099`,
    /// `[::1]:*`). Without any, no guest may bind or listen.
    #[arg(long = "allow-listen", value_name = "RULE", value_parser = parse_tcp_rule)]
    pub(crate) allow_listen: Vec<serverless_outbound::TcpRule>,

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
    /// until one closes. Default: half the open-file limit as the host
    /// raised it at startup (to its hard maximum, `ulimit -Hn`), at most
    /// 10000. The guests' files and sockets get what this, and 256 for the
    /// host's own listeners, pooled connections and cache, leave: a value
    /// that leaves them less than a quarter of the limit, or less than
    /// 256, stops the host at startup.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: Option<u32>,

    /// How many bytes of handler-world request bodies may be held at once
    /// while they are read, before their requests are admitted: `1 GiB`,
    /// `64 MiB`, `512 KiB`, or a number of bytes. Each chunk is counted as
    /// it arrives; a request whose chunk does not fit gets `503` with
    /// `Retry-After: 1`.
    #[arg(long, value_name = "SIZE", default_value = "1 GiB", value_parser = parse_size_flag)]
    pub(crate) max_pending_body_bytes: u64,

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

    /// The state directory: the catalog of apps deployed through the
    /// management API, their components and the API's tokens. Its apps
    /// are served beside the configuration's. Default, with
    /// --api-listen: $SERVERLESS_WASM_STATE_DIR, else
    /// $XDG_STATE_HOME/serverless-wasm, else
    /// ~/.local/state/serverless-wasm.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// Where the management API listens (off by default). Anything but
    /// loopback needs --api-tls-cert and --api-tls-key.
    #[arg(long, value_name = "ADDR")]
    pub(crate) api_listen: Option<std::net::SocketAddr>,

    /// The API's TLS certificate chain, PEM.
    #[arg(long, value_name = "FILE", requires = "api_listen")]
    pub(crate) api_tls_cert: Option<PathBuf>,

    /// The API's TLS private key, PEM.
    #[arg(long, value_name = "FILE", requires = "api_listen")]
    pub(crate) api_tls_key: Option<PathBuf>,

    /// The largest component the API takes in one upload.
    #[arg(long, value_name = "SIZE", default_value = "64 MiB", value_parser = parse_size_flag)]
    pub(crate) api_max_upload: u64,

    /// How many versions of each deployed app are kept (the active one
    /// always is).
    #[arg(long, value_name = "COUNT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) keep_versions: u32,

    /// The message broker: `embedded` (in this process), or a NATS server
    /// that several hosts share, `nats://HOST:PORT`.
    #[arg(long, value_name = "embedded|nats://HOST:PORT", default_value = "embedded", value_parser = parse_messaging)]
    pub(crate) messaging: Messaging,

    /// With NATS: every subject is put under this prefix, one per
    /// deployment, so that two deployments on one server do not mix.
    #[arg(long, value_name = "NAME", default_value = "serverless", value_parser = parse_prefix)]
    pub(crate) messaging_prefix: serverless_messaging::Topic,

    /// With NATS: a TOML file with `token = "..."`, or `user` and
    /// `password`. Without it, $SERVERLESS_WASM_NATS_TOKEN, or
    /// $SERVERLESS_WASM_NATS_USER and $SERVERLESS_WASM_NATS_PASSWORD.
    /// Never on the command line.
    #[arg(long, value_name = "FILE")]
    pub(crate) messaging_credentials: Option<PathBuf>,

    /// How many messages each subscription's queue holds; when one is
    /// full, publishers wait for room (--messaging-wait).
    #[arg(long, value_name = "COUNT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) messaging_queue: u32,

    /// How long a publisher waits for room in a full queue before its
    /// publish fails (`timeout` for a guest, 503 for a publish_to route).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_drain_flag)]
    pub(crate) messaging_wait: std::time::Duration,
}

/// The value of `--messaging`.
#[derive(Clone, Debug)]
pub(crate) enum Messaging {
    /// The broker in this process.
    Embedded,
    /// A NATS server at `HOST:PORT`.
    Nats(String),
}

fn parse_messaging(text: &str) -> Result<Messaging, String> {
    if text == "embedded" {
        return Ok(Messaging::Embedded);
    }
    let Some(address) = text.strip_prefix("nats://") else {
        return Err(format!(
            "{text:?} is not `embedded` or a `nats://HOST:PORT` URL"
        ));
    };
    let valid = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid || address.contains(['/', '@']) {
        return Err(format!(
            "{text:?} is not `nats://HOST:PORT`; credentials go in --messaging-credentials or the environment, never in the URL"
        ));
    }
    Ok(Messaging::Nats(address.to_owned()))
}

fn parse_prefix(text: &str) -> Result<serverless_messaging::Topic, String> {
    serverless_messaging::Topic::new(text).map_err(|error| error.to_string())
}

/// A NATS user and password, and a token, each when given.
type NatsCredentials = (Option<(String, String)>, Option<String>);

/// The NATS user and password, or token, from `file` or the environment.
fn nats_credentials(file: Option<&std::path::Path>) -> anyhow::Result<NatsCredentials> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
    }
    let read = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("--messaging-credentials {}: cannot read it", path.display())
            })?;
            // The parser's own message quotes the line, which may hold
            // the secret: only its place is told.
            toml::from_str::<File>(&text).map_err(|error| {
                let place = error
                    .span()
                    .map(|span| {
                        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                        format!(" at line {line}")
                    })
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "--messaging-credentials {}: not a credentials file{place}; write `token = \"...\"`, or `user = \"...\"` and `password = \"...\"`",
                    path.display()
                )
            })?
        }
        None => File {
            user: std::env::var("SERVERLESS_WASM_NATS_USER").ok(),
            password: std::env::var("SERVERLESS_WASM_NATS_PASSWORD").ok(),
            token: std::env::var("SERVERLESS_WASM_NATS_TOKEN").ok(),
        },
    };
    let user = match (read.user, read.password) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        _ => anyhow::bail!("NATS credentials need both a user and a password"),
    };
    Ok((user, read.token))
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

/// Parses a size flag as the configuration writes sizes; more than zero.
fn parse_size_flag(text: &str) -> Result<u64, String> {
    match serverless_config::parse_size(text) {
        Some(0) => Err(format!("{text:?} is zero; the size must be larger")),
        Some(size) => Ok(size),
        None => Err(format!(
            "{text:?} is not a size; write a number of bytes or a size with a unit such as 512 KiB, 64 MiB or 1 GiB"
        )),
    }
}

fn parse_admin_listen(text: &str) -> Result<AdminListen, String> {
    if text == "off" {
        return Ok(AdminListen(None));
    }
    text.parse()
        .map(|address| AdminListen(Some(address)))
        .map_err(|_| format!("{text:?} is not an address such as 127.0.0.1:9464, or `off`"))
}

/// Gives the heap that loading freed back to the system. Parsing a large
/// configuration (10,000 routes: a 1 MB file, 34 MiB of heap at its peak)
/// leaves memory that malloc would otherwise keep for good, and idle RSS
/// would count it.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the system;
    // it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `host serve` to completion; the requests' log lines are kept in
/// `invocations`, which the capture layer feeds.
pub(crate) fn run(args: ServeArgs, invocations: Arc<Invocations>) -> anyhow::Result<()> {
    // Configuration errors are complete messages with file, line and
    // column; they are reported as they are.
    // The samples' site folder must outlive the server.
    // The file is read once: the text that loaded is what catalog
    // changes parse again (reload.rs `last_good`).
    let (config, _sample_site, config_text) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                serverless_config::ConfigError::Read {
                    path: path.clone(),
                    error,
                }
            })?;
            let config = serverless_config::Config::parse(&text, path)?;
            super::common::log_warnings(&config);
            (config, None, Some(text))
        }
        None => {
            let (config, site) = load_config(None)?;
            (config, site, None)
        }
    };
    let state_dir = match (&args.state_dir, args.api_listen) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(_)) => Some(super::tokens::default_state_dir().context(
            "no state directory for --api-listen: pass --state-dir, or set SERVERLESS_WASM_STATE_DIR, XDG_STATE_HOME or HOME",
        )?),
        (None, None) => None,
    };
    let api_tls = match args.api_listen {
        Some(address) => crate::api::tls::acceptor(
            address,
            args.api_tls_cert.as_deref(),
            args.api_tls_key.as_deref(),
        )?,
        None => None,
    };
    let catalog = match &state_dir {
        Some(dir) => Some(crate::catalog::Catalog::open(dir, args.keep_versions)?),
        None => None,
    };
    let config = match &catalog {
        Some(catalog) => {
            crate::catalog::with_catalog(config, catalog, &crate::catalog::Proposal::Nothing)?
        }
        None => config,
    };
    // The embedded broker: `publish_to` routes, wasi:messaging guests and
    // subscriptions use it, the admin listener's /subscribe follows it.
    let broker = serverless_messaging::Broker::new(serverless_messaging::BrokerSettings {
        queue_capacity: args.messaging_queue as usize,
        publish_timeout: args.messaging_wait,
    });
    let mut runtime = prepare_runtime(&config, args.max_instances, &args.cache)?;
    runtime.attach_broker(broker.clone());
    let runtime = Arc::new(runtime);
    let max_memory = max_memory(&config);
    let pool = pool_summary(&runtime, args.max_instances, max_memory);
    let operator_rules = OperatorRules {
        tcp: TcpAllowlist::new(args.allow_tcp),
        http: HttpAllowlist::new(args.allow_http),
    };
    let max_connections = reserve_connections(&runtime, args.max_connections)?;
    let listen_rules = TcpAllowlist::new(args.allow_listen);
    let services =
        crate::services::load(&runtime, config.services, &operator_rules, &listen_rules)?;
    let subscriptions =
        crate::subscriptions::load_checked(&runtime, config.subscriptions, &operator_rules)?;
    let routes = crate::routes::load(
        &runtime,
        config.routes,
        &operator_rules,
        &crate::services::up_flags(&services),
        &broker,
    )?;
    let statuses = crate::services::Statuses::new();
    release_freed_heap();
    let address = args.listen.unwrap_or(config.listen_address);
    let listen_address = config.listen_address;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let metrics = Arc::new(Metrics::new(
            args.max_instances,
            runtime.counters(),
            Some(broker.clone()),
        ));
        let admin = Arc::new(Admin::new(
            metrics.clone(),
            &routes,
            invocations.clone(),
            statuses.clone(),
            Some(broker.clone()),
        ));
        let admin_listen = args
            .admin_listen
            .unwrap_or_else(|| AdminListen::default_for(address));
        let admin_address = match admin_listen.0 {
            Some(address) => {
                let admin_listener = TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen on {address} for the admin endpoints (--admin-listen)")
                })?;
                let bound = admin_listener
                    .local_addr()
                    .context("cannot read the admin address")?;
                tokio::spawn(admin.clone().serve(admin_listener));
                Some(bound)
            }
            None => None,
        };
        // The API's listener is bound before the banner, which names it.
        let api_listener = match (&catalog, args.api_listen) {
            (Some(_), Some(address)) => {
                let api_listener = TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen on {address} for the management API (--api-listen)")
                })?;
                let bound = api_listener
                    .local_addr()
                    .context("cannot read the management API's address")?;
                Some((api_listener, bound))
            }
            _ => None,
        };
        let api_line = api_listener.as_ref().map(|(_, bound)| {
            let scheme = if api_tls.is_some() { "https" } else { "http" };
            format!("management API on {scheme}://{bound}")
        });
        // With NATS, the broker publishes and subscribes through it.
        let messaging_line = match &args.messaging {
            Messaging::Embedded => "messaging: the embedded broker".to_owned(),
            Messaging::Nats(address) => {
                let (user, token) = nats_credentials(args.messaging_credentials.as_deref())?;
                broker.attach_nats(serverless_messaging::nats::NatsClient::start(
                    serverless_messaging::nats::NatsOptions {
                        address: address.clone(),
                        prefix: args.messaging_prefix.clone(),
                        user,
                        token,
                        max_payload: 64 << 20,
                        ping_interval: serverless_messaging::nats::client::DEFAULT_PING_INTERVAL,
                    },
                ));
                format!(
                    "messaging: NATS at nats://{address}, subjects under `{}.`",
                    args.messaging_prefix
                )
            }
        };
        let hangups = reload::hangups()?;
        let extra: Vec<String> = std::iter::once(messaging_line).chain(api_line).collect();
        print_banner(&routes, &operator_rules, &pool, bound, admin_address, &extra);
        tracing::info!(
            "at most {max_connections} connections at once (--max-connections), and {HOST_RESERVE} more open files for the listeners, the admin endpoints, pooled connections and the compile cache; one idle for {:?} is closed (--idle-timeout)",
            args.idle_timeout
        );
        let described = reload::describe(&routes);
        // Services start before requests can reach their routes.
        let supervisor = crate::services::Supervisor::start(services, statuses);
        let running = Arc::new(crate::subscriptions::Subscriptions::new(broker.clone()));
        metrics.count_deliveries(running.counts());
        let started = running.apply(subscriptions).await;
        tracing::info!("{started}");
        let admin_invocations = invocations.clone();
        let dispatcher = Arc::new(Dispatcher::new(
            routes,
            args.max_instances,
            args.queue_timeout,
            args.max_pending_body_bytes,
            metrics,
            invocations,
        ));
        let base = match (&args.config, &_sample_site) {
            (Some(path), _) => reload::Base::File(path.clone()),
            (None, Some(site)) => reload::Base::Samples(site.path().to_owned()),
            (None, None) => anyhow::bail!("no configuration and no samples"),
        };
        let reloader = Arc::new(Reloader {
            base,
            runtime: runtime.clone(),
            operator: operator_rules.clone(),
            dispatcher: dispatcher.clone(),
            admin: admin.clone(),
            listen_address,
            supervisor: supervisor.clone(),
            listen_rules,
            catalog: catalog.clone(),
            broker: broker.clone(),
            subscriptions: running.clone(),
            current: tokio::sync::Mutex::new(described),
            last_good: std::sync::Mutex::new(config_text),
        });
        if args.config.is_some() || catalog.is_some() {
            tokio::spawn(reloader.clone().run(hangups, args.watch && args.config.is_some()));
        } else {
            if args.watch {
                tracing::warn!(
                    "--watch needs a configuration file; the bundled samples do not reload"
                );
            }
            // SIGHUP would otherwise end the process.
            tokio::spawn(reload::ignore_hangups(hangups));
        }
        if let Some(catalog) = &catalog {
            let auth = Arc::new(crate::api::auth::Authenticator::new(catalog.clone()));
            // Previews count their failures apart from the API's.
            let previews = Arc::new(crate::catalog::previews::Previews::new(
                catalog.clone(),
                Arc::new(crate::api::auth::Authenticator::new(catalog.clone())),
                runtime.clone(),
                operator_rules.clone(),
            ));
            dispatcher.set_previews(previews.clone());
            tracing::info!("catalog: {}", catalog.path().display());
            if let Some((api_listener, _)) = api_listener {
                let api = Arc::new(crate::api::Api {
                    catalog: catalog.clone(),
                    auth,
                    reloader: reloader.clone(),
                    invocations: admin_invocations.clone(),
                    max_upload: args.api_max_upload,
                    previews,
                });
                tokio::spawn(api.serve(api_listener, api_tls.clone()));
            }
        }
        admin.set_ready(true);
        let signal = shutdown_signal()?;
        let shutdown = {
            let (admin, supervisor) = (admin.clone(), supervisor.clone());
            async move {
                signal.await;
                // Load balancers stop sending new requests while in-flight
                // ones drain.
                admin.set_ready(false);
                // A reload from now on changes nothing.
                supervisor.begin_stopping();
            }
        };
        server::serve(
            listener,
            dispatcher,
            shutdown,
            server::Settings {
                max_connections,
                idle_timeout: args.idle_timeout,
                drain_timeout: args.drain_timeout,
            },
        )
        .await;
        // After the HTTP drain, no route publishes any more: what the
        // subscriptions hold is handled, while the services they may call
        // still run.
        running.drain(args.drain_timeout).await;
        // After the HTTP drain: the services may be what handlers called.
        supervisor.stop().await;
        Ok(())
    })
}

/// Open files kept for the host besides its client connections: the
/// listeners, the admin endpoints, pooled outbound HTTP connections and the
/// compile cache.
const HOST_RESERVE: usize = 256;

/// The most connections the default `--max-connections` allows.
const MOST_CONNECTIONS: usize = 10_000;

/// Keeps open files for `--max-connections` (`explicit`, or the default)
/// and the host's own reserve out of the guests' budget, and returns the
/// connection cap. An explicit cap that leaves the guests too little is an
/// error naming the flag, the limit and what is left.
fn reserve_connections(runtime: &Runtime, explicit: Option<u32>) -> anyhow::Result<u32> {
    let open_files = runtime.open_file_limit();
    let max_connections = match explicit {
        Some(count) => count,
        None => default_max_connections(open_files).with_context(|| {
            format!(
                "the open-file limit (RLIMIT_NOFILE) of {open_files} leaves no room for client connections besides the host's reserve of {HOST_RESERVE} and the guests' share; raise it (ulimit -n)"
            )
        })?,
    };
    let connections = usize::try_from(max_connections).unwrap_or(usize::MAX);
    match runtime.reserve_descriptors(connections.saturating_add(HOST_RESERVE)) {
        Ok(_) => Ok(max_connections),
        Err(error) => anyhow::bail!(
            "--max-connections {max_connections} is too large: with {HOST_RESERVE} more open files for the host's listeners, admin endpoints, pooled connections and compile cache, {error}; lower --max-connections or raise the open-file limit (ulimit -n)"
        ),
    }
}

/// The default `--max-connections` for a process allowed `open_files`
/// descriptors (as the runtime raised it): half of them, at most 10000,
/// and never so many that the guests would keep too little (see
/// [`serverless_runtime::HostHandles::most_reservable`]); `None` when
/// not even one fits.
fn default_max_connections(open_files: usize) -> Option<u32> {
    let fits = serverless_runtime::HostHandles::most_reservable(open_files)
        .checked_sub(HOST_RESERVE)
        .filter(|fits| *fits > 0)?;
    let count = (open_files / 2).min(fits).min(MOST_CONNECTIONS);
    u32::try_from(count).ok()
}

/// Prints the route table and the URL on stdout, where scripts and tests
/// read the bound address from the `listening on` line.
fn print_banner(
    routes: &crate::routes::Routes,
    operator_rules: &OperatorRules,
    pool: &str,
    bound: std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
    extra: &[String],
) {
    let mut out = std::io::stdout().lock();
    let width = routes
        .routes()
        .map(|(p, _, _)| p.as_str().len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "serverless-wasm host {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "routes:");
    for (pattern, methods, target) in routes.routes() {
        let _ = writeln!(
            out,
            "  {:<7} {:<width$}  -> {} ({})",
            methods.to_string(),
            pattern.as_str(),
            target.name(),
            target.source()
        );
    }
    let tcp = &operator_rules.tcp;
    if tcp.is_empty() {
        let _ = writeln!(out, "outbound TCP: denied (no --allow-tcp rules)");
    } else {
        let _ = writeln!(out, "outbound TCP allowed to: {}", tcp.describe());
    }
    let http = &operator_rules.http;
    if http.is_empty() {
        let _ = writeln!(out, "outbound HTTP: denied (no --allow-http rules)");
    } else {
        let _ = writeln!(out, "outbound HTTP allowed to: {}", http.describe());
    }
    for app in routes.routes().filter_map(|(_, _, target)| match target {
        crate::routes::Target::App(app) => Some(app),
        crate::routes::Target::Service(_) | crate::routes::Target::Publish(_) => None,
    }) {
        if app.tcp_allowlist().rules() != tcp.rules() {
            let rules = app.tcp_allowlist().describe();
            let _ = writeln!(out, "  app {} narrows TCP to: {rules}", app.name());
        }
        if app.http_allowlist().rules() != http.rules() {
            let rules = app.http_allowlist().describe();
            let _ = writeln!(out, "  app {} narrows HTTP to: {rules}", app.name());
        }
    }
    let _ = writeln!(out, "{pool}");
    match admin {
        Some(admin) => {
            let _ = writeln!(
                out,
                "admin on http://{admin} (/healthz /readyz /metrics /routes)"
            );
        }
        None => {
            let _ = writeln!(out, "admin endpoints: off");
        }
    }
    for line in extra {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "listening on http://{bound}");
    let _ = out.flush();
}

/// What the instance pool costs, in words for the operator.
fn pool_summary(runtime: &Runtime, instances: u32, max_memory: u64) -> String {
    format!(
        "instance pool: {instances} instances of up to {} MiB linear memory each; \
         reserves {} GiB of virtual address space (not memory) up front; \
         a busy instance keeps resident only the pages it touches (copy-on-write \
         images share the rest), at most {} MiB",
        max_memory >> 20,
        runtime.reserved_address_space() >> 30,
        max_memory >> 20,
    )
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
