//! One configured app, ready to serve: a pre-instantiated component plus
//! the settings each of its requests gets. A request's path through it:
//!
//! * `store.rs`: a fresh `Store` per request, its limits and deadline, the
//!   instantiate-and-call step both worlds share, and the store's
//!   retirement once the response has gone out;
//! * `handler.rs`: a handler-world request (`handle`);
//! * `wasi_http.rs`: a `wasi:http/incoming-handler` request, whose body
//!   streams on after the response has started;
//! * `subscriber.rs`: one message for a `wasi:messaging` subscription
//!   handler (`incoming-handler.handle`);
//! * a core module of the original serverless-wasm ABI runs through
//!   `handler.rs` too, with the ABI's instantiate and call (`legacy/`);
//! * `error.rs`: why a request failed, with the guest's trap and
//!   backtrace.

mod error;
mod handler;
mod store;
mod subscriber;
mod wasi_http;

use std::sync::Arc;

use serverless_config::{AppConfig, AppLimits, Mount, World};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::bindings::HandlerPre;
use crate::denials::Denials;
use crate::guest_log::Secrets;
use crate::handles::HostHandles;
use crate::host::outbound_http::HttpClient;
use crate::host::outbound_tcp::TcpSettings;
use crate::lanes::SlowLane;
use crate::legacy::LegacyPre;
use crate::limits::Contention;
use crate::state::InstanceState;

pub use error::HandleError;
pub(crate) use error::describe_trap;
pub use wasi_http::LaterStats;

/// What an app runs: a component of one of the two worlds, or a core
/// module of the original serverless-wasm ABI (which has no world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A component of `world`.
    Component(World),
    /// A core module of the serverless-wasm ABI.
    Legacy,
    /// A subscription handler: exports `wasi:messaging/incoming-handler`.
    Subscriber,
}

impl std::fmt::Display for AppKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppKind::Component(world) => world.fmt(f),
            AppKind::Legacy => f.write_str("legacy"),
            AppKind::Subscriber => f.write_str("subscriber"),
        }
    }
}

/// The pre-instantiated component, by world, or the checked core module.
pub(crate) enum Entry {
    Handler(HandlerPre<InstanceState>),
    WasiHttp(ProxyPre<InstanceState>),
    Legacy(LegacyPre),
    Subscriber(crate::bindings::MessagingRequestReplyPre<InstanceState>),
}

/// A configured app whose component is compiled and pre-instantiated.
pub struct App {
    name: Arc<str>,
    component: String,
    env: Arc<[(String, String)]>,
    secrets: Arc<Secrets>,
    files: Vec<Mount>,
    max_request_body: u64,
    limits: AppLimits,
    fuel_metered: bool,
    contention: Arc<Contention>,
    slow_lane: Arc<SlowLane>,
    tcp: TcpSettings,
    http: Arc<HttpClient>,
    handles: Arc<HostHandles>,
    denials: Arc<Denials>,
    broker: Option<serverless_messaging::Broker>,
    /// Its `publish` rules and limits, shared by its instances.
    messaging: Arc<serverless_messaging::MessagingPolicy>,
    entry: Entry,
}

/// What every app of one runtime shares with the others.
pub(crate) struct Shared {
    /// Whether fuel metering is on for every instance.
    pub(crate) fuel_metered: bool,
    pub(crate) contention: Arc<Contention>,
    pub(crate) slow_lane: Arc<SlowLane>,
    /// The OS handles all guests may hold together.
    pub(crate) handles: Arc<HostHandles>,
    /// Where refused outbound attempts are counted.
    pub(crate) denials: Arc<Denials>,
    /// What `wasi:messaging` guests send on.
    pub(crate) broker: Option<serverless_messaging::Broker>,
}

impl App {
    pub(crate) fn new(
        config: AppConfig,
        shared: Shared,
        tcp: TcpSettings,
        http: Arc<HttpClient>,
        entry: Entry,
    ) -> App {
        let Shared {
            fuel_metered,
            contention,
            slow_lane,
            handles,
            denials,
            broker,
        } = shared;
        App {
            messaging: Arc::new(config.messaging.policy(&config.name)),
            broker,
            name: config.name.into(),
            component: config.component.to_string(),
            env: config.env.into(),
            secrets: Arc::new(Secrets::new(&config.secrets)),
            files: config.files,
            max_request_body: config.max_request_body,
            limits: config.limits,
            fuel_metered,
            contention,
            slow_lane,
            tcp,
            http,
            handles,
            denials,
            entry,
        }
    }

    /// The app's name, for logs.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The component file or built-in component the app runs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// What the app runs: a component of which world, or a core module.
    pub fn kind(&self) -> AppKind {
        match self.entry {
            Entry::Handler(_) => AppKind::Component(World::Handler),
            Entry::WasiHttp(_) => AppKind::Component(World::WasiHttp),
            Entry::Legacy(_) => AppKind::Legacy,
            Entry::Subscriber(_) => AppKind::Subscriber,
        }
    }

    /// The largest request body this app accepts, in bytes.
    pub fn max_request_body(&self) -> u64 {
        self.max_request_body
    }

    /// The outbound HTTP rules this app runs with.
    pub fn http_allowlist(&self) -> &serverless_outbound::HttpAllowlist {
        self.http.rules()
    }

    /// The outbound TCP rules this app runs with.
    pub fn tcp_allowlist(&self) -> &serverless_outbound::TcpAllowlist {
        &self.tcp.allowlist
    }

    /// `text` with the app's secrets replaced, for log lines about the app
    /// that the host writes itself.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.secrets.redact(text)
    }

    /// The limits each request of this app runs under.
    pub fn limits(&self) -> &AppLimits {
        &self.limits
    }

    fn engine(&self) -> &wasmtime::Engine {
        match &self.entry {
            Entry::Handler(pre) => pre.engine(),
            Entry::WasiHttp(pre) => pre.engine(),
            Entry::Legacy(pre) => pre.engine(),
            Entry::Subscriber(pre) => pre.engine(),
        }
    }
}
