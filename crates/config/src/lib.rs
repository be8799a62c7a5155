//! The serverless-wasm configuration file: which component answers which
//! route.
//!
//! ```toml
//! listen_address = "127.0.0.1:8080"
//!
//! [[applications]]
//! name = "hello"                      # optional, defaults to the file stem
//! file_path = "./hello.wasm"          # relative to this file
//! method = "GET"                      # or ["GET", "POST"], or "ANY"
//! url_path = "/hello/:name"           # `:param` segments, trailing `*`
//! env = { GREETING = "Hello" }        # environment of the component
//! allowed_tcp = ["redis.internal:6379"]  # narrows the operator's --allow-tcp
//! allowed_http = ["https://api.example.com"]  # narrows --allow-http
//! function = "hello"                  # core modules only: the export to call
//!
//! [[applications]]
//! method = "ANY"
//! url_path = "/api/*"
//! service = "api"                     # proxied to the service's `http` address
//!
//! [[services]]
//! name = "api"
//! file_path = "./api.wasm"            # a wasi:cli command, run for as long as it likes
//! args = ["127.0.0.1:9001"]
//! http = "127.0.0.1:9001"             # where it answers HTTP, for routes with `service`
//! ```
//!
//! Parsing validates everything it can while it deserialises, so every
//! error carries the file, line and column of the offending value and says
//! how to fix it.

mod error;
mod fields;
mod lines;
mod messaging;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigWarning, Location};
pub use fields::{parse_duration, parse_duration_or_zero, parse_size};
pub use serverless_outbound::{HttpRule, TcpRule};
pub use serverless_router::{MethodFilter, RoutePattern, RouteTable};

/// Where the default listener binds when neither the file nor the command
/// line names an address.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:8080";

/// The request body limit when the configuration does not set one: 10 MiB.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;

/// How long an outbound TCP connect (DNS included) may take by default.
pub const DEFAULT_TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one outbound TCP read or write may wait by default.
pub const DEFAULT_TCP_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How many outbound TCP connections one request may open by default.
pub const DEFAULT_MAX_TCP_CONNECTIONS: u32 = 16;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The address the HTTP listener binds.
    pub listen_address: SocketAddr,
    /// Every route, to an app or to a service.
    pub routes: RouteTable<RouteTarget>,
    /// What the host should log when it takes this configuration.
    pub warnings: Vec<ConfigWarning>,
    /// The `[[services]]`, in the file's order.
    pub services: Vec<ServiceConfig>,
    /// The `[[subscriptions]]`, in the file's order.
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// What an entry may send through `wasi:messaging`: deny by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingRules {
    /// The `publish` patterns, each with where it is written.
    pub publish: Vec<(serverless_messaging::TopicPattern, Location)>,
    /// The largest message it may send, in bytes.
    pub max_message_size: u64,
    /// How many messages a second it may send; `None` for no cap.
    pub max_publish_rate: Option<u32>,
}

impl Default for MessagingRules {
    fn default() -> Self {
        MessagingRules {
            publish: Vec::new(),
            max_message_size: serverless_messaging::policy::DEFAULT_MAX_MESSAGE_SIZE,
            max_publish_rate: None,
        }
    }
}

impl MessagingRules {
    /// The policy the host enforces for app `app`.
    pub fn policy(&self, app: &str) -> serverless_messaging::MessagingPolicy {
        serverless_messaging::MessagingPolicy::new(
            app,
            self.publish.iter().map(|(rule, _)| rule.clone()).collect(),
            self.max_message_size,
            self.max_publish_rate,
        )
    }
}

/// One `[[subscriptions]]` entry: a component exporting
/// `wasi:messaging/incoming-handler`, run in a fresh instance for every
/// message on a topic its pattern matches.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The component and what each of its instances gets, as an app's.
    pub app: AppConfig,
    /// The topics it takes.
    pub topic: serverless_messaging::TopicPattern,
    /// How many messages it handles at once; 1 keeps the topic's order.
    pub max_concurrency: u32,
    /// What happens after a delivery fails.
    pub retry: serverless_messaging::RetryPolicy,
    /// Where its `topic` is written.
    pub location: Option<Location>,
}

/// One `[[services]]` entry: a long-running `wasi:cli` command.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Unique among apps and services.
    pub name: String,
    /// The command component.
    pub component: ComponentSource,
    /// Its arguments after the program name.
    pub args: Vec<String>,
    /// Its environment, sorted by name.
    pub env: Vec<(String, String)>,
    /// Values from the host's environment, kept out of the log.
    pub secrets: Vec<String>,
    /// Host folders it sees as preopened directories, as an app's.
    pub files: Vec<Mount>,
    /// The addresses it may bind and listen on, each within the
    /// operator's `--allow-listen` rules; `None` for those rules as they are.
    pub listen: Option<Vec<(TcpRule, Location)>>,
    /// When it is started again after it ends.
    pub restart: Restart,
    /// How large each of its memories may grow, in bytes.
    pub max_memory: u64,
    /// How long one run may last before the host stops it (a failure);
    /// `None` for as long as it likes.
    pub max_runtime: Option<std::time::Duration>,
    /// Its outbound rules and limits, as an app's.
    pub outbound: OutboundConfig,
    /// Where it answers HTTP, for the routes that name it, and where that
    /// is written.
    pub http: Option<(SocketAddr, Location)>,
    /// What it may send through `wasi:messaging`.
    pub messaging: MessagingRules,
    /// Where its `file_path` is written.
    pub location: Option<Location>,
}

impl ServiceConfig {
    /// Whether `other` runs the service exactly as this entry does, where
    /// each key is written aside: a reload leaves such a service running
    /// (when its component's bytes are the same, too).
    pub fn runs_like(&self, other: &ServiceConfig) -> bool {
        fn rules<R: PartialEq>(entries: &Option<Vec<(R, Location)>>) -> Option<Vec<&R>> {
            entries
                .as_ref()
                .map(|entries| entries.iter().map(|(rule, _)| rule).collect())
        }
        let (ours, theirs) = (&self.outbound, &other.outbound);
        self.name == other.name
            && self.component == other.component
            && self.args == other.args
            && self.env == other.env
            && self.secrets == other.secrets
            && self.files == other.files
            && rules(&self.listen) == rules(&other.listen)
            && self.restart == other.restart
            && self.max_memory == other.max_memory
            && self.max_runtime == other.max_runtime
            && rules(&ours.allowed_tcp) == rules(&theirs.allowed_tcp)
            && rules(&ours.allowed_http) == rules(&theirs.allowed_http)
            && ours.connect_timeout == theirs.connect_timeout
            && ours.io_timeout == theirs.io_timeout
            && ours.max_connections == theirs.max_connections
            && self.messaging.publish.iter().map(|(rule, _)| rule).eq(other
                .messaging
                .publish
                .iter()
                .map(|(rule, _)| rule))
            && self.messaging.max_message_size == other.messaging.max_message_size
            && self.messaging.max_publish_rate == other.messaging.max_publish_rate
            && self.http.as_ref().map(|(address, _)| address)
                == other.http.as_ref().map(|(address, _)| address)
    }
}

/// What a route leads to.
#[derive(Debug, Clone)]
pub enum RouteTarget {
    /// A component or core module, instantiated afresh for each request.
    App(Box<AppConfig>),
    /// A `[[services]]` entry's HTTP server, reached over loopback.
    Service(ServiceRoute),
    /// A topic: the request's body is published on it (`publish_to`).
    Publish(PublishRoute),
}

/// A route whose requests publish their body to a topic.
#[derive(Debug, Clone)]
pub struct PublishRoute {
    /// The route's name in logs and metrics.
    pub name: String,
    /// The topic.
    pub topic: serverless_messaging::Topic,
    /// A larger body is refused with `413`.
    pub max_request_body: u64,
    /// How long the request's body may take to arrive (the broker's own
    /// wait for room comes after it).
    pub timeout: Duration,
    /// Where `publish_to` is written.
    pub location: Option<Location>,
}

impl RouteTarget {
    /// The route's app name, for logs and metrics.
    pub fn name(&self) -> &str {
        match self {
            RouteTarget::App(app) => &app.name,
            RouteTarget::Service(route) => &route.name,
            RouteTarget::Publish(route) => &route.name,
        }
    }

    /// The app, when the route runs one.
    pub fn app(&self) -> Option<&AppConfig> {
        match self {
            RouteTarget::App(app) => Some(app.as_ref()),
            RouteTarget::Service(_) | RouteTarget::Publish(_) => None,
        }
    }
}

/// An `[[applications]]` entry with `service`: its requests are proxied
/// to the service's `http` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoute {
    /// The route's name in logs and metrics; the service's name unless the
    /// entry gives one.
    pub name: String,
    /// The service it goes to.
    pub service: String,
    /// The service's `http` address.
    pub address: SocketAddr,
    /// Larger request bodies are refused with `413`.
    pub max_request_body: u64,
    /// How long the service may take to start its answer (the response
    /// head) before the client gets `504`.
    pub timeout: Duration,
    /// A longer response body is cut off and logged.
    pub max_response_body: u64,
    /// How many of its requests may be in flight at once; `None` for no
    /// cap of its own.
    pub max_concurrency: Option<u32>,
    /// Where its `service` key is written.
    pub location: Option<Location>,
}

/// When a service that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Whatever way it ended.
    Always,
    /// After a trap or a non-zero exit status.
    OnFailure,
    /// Never: it ran once.
    Never,
}

/// One `[[applications]]` entry.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Unique name used in logs.
    pub name: String,
    /// Where the component comes from.
    pub component: ComponentSource,
    /// Environment variables the component sees, sorted by name.
    pub env: Vec<(String, String)>,
    /// Values that came from the host's environment (`from_env`): the host
    /// removes them from every log line.
    pub secrets: Vec<String>,
    /// Host folders the component sees as preopened directories.
    pub files: Vec<Mount>,
    /// Larger request bodies are refused with `413`.
    pub max_request_body: u64,
    /// Time, memory, size and concurrency limits of each request.
    pub limits: AppLimits,
    /// Where the entry's `file_path` is written, for errors found later
    /// (for example when the component does not compile).
    pub location: Option<Location>,
    /// The app's outbound TCP settings.
    pub outbound: OutboundConfig,
    /// The world the component implements, when the configuration says;
    /// otherwise the host tells from the component's exports.
    pub world: Option<World>,
    /// Where `world` is written, for errors found later.
    pub world_location: Option<Location>,
    /// The export a core module of the serverless-wasm ABI calls, when not
    /// `handle`.
    pub function: Option<Function>,
    /// What it may send through `wasi:messaging`.
    pub messaging: MessagingRules,
}

/// An app's `function` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The export's name.
    pub name: String,
    /// Where the key is written.
    pub location: Option<Location>,
}

/// The kinds of component a route can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// The serverless-wasm handler world: exports `handle`.
    Handler,
    /// The standard `wasi:http/proxy` world: exports
    /// `wasi:http/incoming-handler`.
    WasiHttp,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Handler => "handler",
            World::WasiHttp => "wasi-http",
        })
    }
}

/// How long a request may run by default, guest and host calls together.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much linear memory an instance may use by default: 128 MiB.
pub const DEFAULT_MAX_MEMORY: u64 = 128 * 1024 * 1024;

/// How large a response body may be by default: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BODY: u64 = 64 * 1024 * 1024;

/// The limits one request of an app runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppLimits {
    /// Past this the guest is stopped and the client gets `504`.
    pub timeout: Duration,
    /// Linear memory (each memory) an instance may grow to, in bytes.
    pub max_memory: u64,
    /// A larger response fails: the guest gets an error, the client `500`.
    pub max_response_body: u64,
    /// How many requests of this app may run at once; `None` for only the
    /// host's global cap.
    pub max_concurrency: Option<u32>,
    /// An instruction budget per request, for deterministic limits.
    pub fuel: Option<u64>,
}

impl Default for AppLimits {
    fn default() -> Self {
        AppLimits {
            timeout: DEFAULT_TIMEOUT,
            max_memory: DEFAULT_MAX_MEMORY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            max_concurrency: None,
            fuel: None,
        }
    }
}

/// A host folder mounted into an app's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where the guest sees it, absolute, without a trailing `/`.
    pub guest_path: String,
    /// The folder on the host, resolved against the configuration's folder.
    pub host_path: PathBuf,
    /// Whether the guest may create, change and delete files in it.
    pub writable: bool,
}

/// One app's outbound TCP settings.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// The app's `allowed_tcp` entries with where each is written; `None`
    /// when the app takes the operator's `--allow-tcp` rules as they are.
    pub allowed_tcp: Option<Vec<(TcpRule, Location)>>,
    /// The app's `allowed_http` entries, likewise for `--allow-http`.
    pub allowed_http: Option<Vec<(HttpRule, Location)>>,
    /// Limit on resolving and connecting, together.
    pub connect_timeout: Duration,
    /// Limit on each read or write.
    pub io_timeout: Duration,
    /// How many connections one request may open.
    pub max_connections: u32,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allowed_tcp: None,
            allowed_http: None,
            connect_timeout: DEFAULT_TCP_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_TCP_IO_TIMEOUT,
            max_connections: DEFAULT_MAX_TCP_CONNECTIONS,
        }
    }
}

/// The bytes of a component: a file named in the configuration, or a
/// component built into the host binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` file, already resolved against the configuration's folder.
    File(PathBuf),
    /// A component compiled into the host, such as the bundled samples.
    Embedded {
        /// A name for messages, such as `builtin:hello`.
        label: &'static str,
        /// The component's bytes.
        wasm: &'static [u8],
    },
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::File(path) => write!(f, "{}", path.display()),
            ComponentSource::Embedded { label, .. } => f.write_str(label),
        }
    }
}

impl Config {
    /// The apps among the routes (not the routes to services).
    pub fn apps(&self) -> impl Iterator<Item = &AppConfig> {
        self.routes
            .routes()
            .filter_map(|(_, _, target)| target.app())
    }

    /// Reads and validates the configuration file at `path`. Relative
    /// `file_path`s resolve against the file's folder, or, when nothing is
    /// there, against the working directory (with a warning), as the
    /// original serverless-wasm resolved them.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::parse(&source, path)
    }

    /// Validates configuration text. `path` names the file in errors and
    /// anchors relative paths; `from_env` values come from this process's
    /// environment.
    pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
        raw::parse(source, path, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::parse`], with `from_env` values looked up by
    /// `lookup` instead of in the environment.
    pub fn parse_with_env(
        source: &str,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        raw::parse(source, path, lookup)
    }
}
