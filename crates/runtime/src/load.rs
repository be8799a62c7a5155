//! Compiling and pre-instantiating the configured components at startup.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serverless_config::{AppConfig, ComponentSource, Location};
use serverless_outbound::{HttpAllowlist, TcpAllowlist};
use wasmtime::Module;
use wasmtime::component::Component;

use crate::app::{App, Entry, Shared};
use crate::bindings::HandlerPre;
use crate::cache::CacheOutcome;
use crate::engine::Runtime;
use crate::host::outbound_http::HttpClient;
use crate::host::outbound_tcp::TcpSettings;
use crate::legacy::{LegacyPre, LegacyProblem};
use crate::state::InstanceState;
use serverless_config::World;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Why an app's component cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{}app `{app}` ({component}): {problem}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct LoadError {
    /// The app's name.
    pub app: String,
    /// The component file or built-in component.
    pub component: String,
    /// Where the app's `file_path` is written, when it comes from a file.
    pub location: Option<Location>,
    /// What is wrong.
    pub problem: LoadProblem,
}

/// What is wrong with a component.
#[derive(Debug)]
pub enum LoadProblem {
    /// The file could not be read.
    Read(std::io::Error),
    /// The bytes are not a WebAssembly binary at all.
    NotWasm,
    /// The component or module is invalid or could not be compiled.
    Compile(wasmtime::Error),
    /// A core module that does not fit the original serverless-wasm ABI.
    Legacy(LegacyProblem),
    /// The app's `function` key, which only core modules have, on a
    /// component.
    FunctionOnComponent(String),
    /// The app's `world` key on a core module, which has no world.
    WorldOnCoreModule(World),
    /// A service's component is not a `wasi:cli` command.
    NotACommand(wasmtime::Error),
    /// A service's file is a core module.
    ServiceIsCoreModule,
    /// A subscription's component does not export
    /// `wasi:messaging/incoming-handler`, or imports what the host lacks.
    NotASubscriber(wasmtime::Error),
    /// A subscription's file is a core module.
    SubscriberIsCoreModule,
    /// Another key that only components have, on a core module.
    KeyOnCoreModule {
        /// The key.
        key: &'static str,
        /// Why a core module cannot use it.
        why: &'static str,
    },
    /// The component imports something the host does not provide, or
    /// lacks an export of the world it was taken for.
    DoesNotFit(World, wasmtime::Error),
    /// The component exports neither `handle` nor
    /// `wasi:http/incoming-handler`.
    NoKnownWorld {
        /// What it exports instead.
        exports: Vec<String>,
    },
    /// The component exports both, and the configuration does not say
    /// which to serve.
    AmbiguousWorld,
    /// An `allowed_tcp` or `allowed_http` entry reaches further than the
    /// operator's `--allow-tcp` or `--allow-http` rules.
    RuleNotCovered {
        /// `allowed_tcp` or `allowed_http`.
        key: &'static str,
        /// `--allow-tcp` or `--allow-http`.
        flag: &'static str,
        /// The entry as written.
        entry: String,
        /// The operator's rules, as written.
        operator: Vec<String>,
    },
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Read(error) => write!(f, "cannot read the component: {error}"),
            LoadProblem::NotWasm => f.write_str(
                "not a WebAssembly component or module (the file does not start with the `\\0asm` header); point file_path at a .wasm file built for wasm32-wasip2 (a component) or wasm32-unknown-unknown (a serverless-wasm module)",
            ),
            LoadProblem::Compile(error) => write!(f, "cannot compile it: {error:#}"),
            LoadProblem::Legacy(problem) => fmt::Display::fmt(problem, f),
            LoadProblem::FunctionOnComponent(function) => write!(
                f,
                "function = \"{function}\" is for core modules of the serverless-wasm ABI, but this is a component, which serves its world's export; remove the key"
            ),
            LoadProblem::KeyOnCoreModule { key, why } => write!(
                f,
                "{key} is for components, but this is a core module of the serverless-wasm ABI: {why}; remove the key"
            ),
            LoadProblem::NotACommand(error) => write!(
                f,
                "the component is not a wasi:cli command: {error:#}; a service is a program that exports wasi:cli/run (a Rust binary built for wasm32-wasip2)"
            ),
            LoadProblem::NotASubscriber(error) => write!(
                f,
                "the component is not a subscription handler: {error:#}; a subscription runs a component that exports wasi:messaging/incoming-handler@0.2.0-draft (the world wasi:messaging/messaging-request-reply in wit/deps/messaging)"
            ),
            LoadProblem::SubscriberIsCoreModule => f.write_str(
                "this is a core module; a subscription runs a component that exports wasi:messaging/incoming-handler@0.2.0-draft",
            ),
            LoadProblem::ServiceIsCoreModule => f.write_str(
                "this is a core module; a service is a wasi:cli command component (a Rust binary built for wasm32-wasip2)",
            ),
            LoadProblem::WorldOnCoreModule(world) => write!(
                f,
                "world = \"{world}\" is for components, but this is a core module of the serverless-wasm ABI, which has no world; remove the key"
            ),
            LoadProblem::DoesNotFit(world, error) => {
                let expected = match world {
                    World::Handler => "a handler-world component exports `handle: func()`",
                    World::WasiHttp => "a wasi:http component exports `wasi:http/incoming-handler@0.2.x`",
                };
                write!(
                    f,
                    "the component does not fit the {world} world: {error:#}; {expected} and imports only WASI 0.2, wasi:http and serverless-wasm:platform interfaces"
                )
            }
            LoadProblem::NoKnownWorld { exports } => {
                let exports = if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
                };
                write!(
                    f,
                    "the component exports {exports}, but a route needs a component that exports `handle` (the serverless-wasm handler world) or `wasi:http/incoming-handler@0.2.x` (the wasi:http/proxy world)"
                )
            }
            LoadProblem::AmbiguousWorld => f.write_str(
                "the component exports both `handle` and `wasi:http/incoming-handler`; add world = \"handler\" or world = \"wasi-http\" to the app to say which to serve",
            ),
            LoadProblem::RuleNotCovered {
                key,
                flag,
                entry,
                operator,
            } => {
                let given = if operator.is_empty() {
                    format!("no {flag} rules were given")
                } else {
                    format!("the operator's {flag} rules are {}", operator.join(", "))
                };
                write!(
                    f,
                    "{key} entry `{entry}` is not covered by the operator's rules ({given}); an app may only narrow them, so remove the entry or ask the operator to allow it"
                )
            }
        }
    }
}

/// Where an app's rule entry is written.
fn location_of<R: PartialEq>(entries: &[(R, Location)], wanted: &R) -> Option<Location> {
    entries
        .iter()
        .find(|(rule, _)| rule == wanted)
        .map(|(_, location)| location.clone())
}

/// The operator's outbound rules from the command line.
#[derive(Debug, Clone, Default)]
pub struct OperatorRules {
    /// `--allow-tcp`.
    pub tcp: TcpAllowlist,
    /// `--allow-http`.
    pub http: HttpAllowlist,
}

/// Refuses the `function` key, which only core modules have, on a
/// component.
fn no_function(config: &AppConfig) -> Result<(), (LoadProblem, Option<Location>)> {
    match &config.function {
        Some(function) => Err((
            LoadProblem::FunctionOnComponent(function.name.clone()),
            function.location.clone(),
        )),
        None => Ok(()),
    }
}

/// Tells the world of a component from its exports.
fn detect_world(engine: &wasmtime::Engine, component: &Component) -> Result<World, LoadProblem> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let serves_http = exports
        .iter()
        .any(|name| name.starts_with("wasi:http/incoming-handler@0.2."));
    let handles = exports.iter().any(|name| name == "handle");
    match (handles, serves_http) {
        (true, false) => Ok(World::Handler),
        (false, true) => Ok(World::WasiHttp),
        (true, true) => Err(LoadProblem::AmbiguousWorld),
        (false, false) => Err(LoadProblem::NoKnownWorld { exports }),
    }
}

/// Where a component's bytes were found, so that apps sharing a file share
/// one compilation.
#[derive(Hash, PartialEq, Eq)]
enum ComponentKey {
    File(PathBuf),
    Embedded(&'static str),
}

/// What a file compiled to.
enum Artifact {
    Component(Box<CompiledComponent>),
    Module(Module),
}

/// A component compiled for some apps, with what was found out about it.
struct CompiledComponent {
    component: Component,
    /// The world its exports name, once an app without `world` asked.
    detected: Option<World>,
    /// Pre-instantiated for each world an app took it for.
    handler: Option<HandlerPre<InstanceState>>,
    wasi_http: Option<ProxyPre<InstanceState>>,
    subscriber: Option<crate::bindings::MessagingRequestReplyPre<InstanceState>>,
}

impl CompiledComponent {
    /// The component pre-instantiated for `world`, made once.
    fn entry(
        &mut self,
        linker: &wasmtime::component::Linker<InstanceState>,
        world: World,
    ) -> wasmtime::Result<Entry> {
        let component = &self.component;
        Ok(match world {
            World::Handler => Entry::Handler(made_once(&mut self.handler, || {
                HandlerPre::new(linker.instantiate_pre(component)?)
            })?),
            World::WasiHttp => Entry::WasiHttp(made_once(&mut self.wasi_http, || {
                ProxyPre::new(linker.instantiate_pre(component)?)
            })?),
        })
    }
}

/// What `slot` holds, made by `make` the first time.
fn made_once<T: Clone>(
    slot: &mut Option<T>,
    make: impl FnOnce() -> wasmtime::Result<T>,
) -> wasmtime::Result<T> {
    if let Some(made) = slot {
        return Ok(made.clone());
    }
    Ok(slot.insert(make()?).clone())
}

/// The WebAssembly binary header: magic, then a version and layer. Core
/// modules are layer 0, components layer 1.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

impl Runtime {
    /// A loader for the apps of one configuration: each component is
    /// compiled once and pre-instantiated, so that requests only
    /// instantiate. `operator` holds the `--allow-tcp` and `--allow-http`
    /// rules, which an app's `allowed_tcp` and `allowed_http` may only
    /// narrow.
    pub fn loader<'a>(&'a self, operator: &'a OperatorRules) -> Loader<'a> {
        Loader {
            runtime: self,
            operator,
            compiled: HashMap::new(),
            canonical: HashMap::new(),
            operator_tcp: Arc::new(operator.tcp.clone()),
            operator_http: HashMap::new(),
        }
    }
}

/// Compiles and pre-instantiates apps of one configuration. Apps that
/// share a component share its compilation and its pre-instantiation: an
/// app costs its route and its own settings, not a copy of the
/// component's imports.
pub struct Loader<'a> {
    runtime: &'a Runtime,
    operator: &'a OperatorRules,
    compiled: HashMap<ComponentKey, Artifact>,
    canonical: HashMap<PathBuf, PathBuf>,
    operator_tcp: Arc<TcpAllowlist>,
    /// Apps without their own `allowed_http` share one pooled client per
    /// pair of timeouts, so that each keeps its own.
    operator_http: HashMap<(Duration, Duration), Arc<HttpClient>>,
}

impl Loader<'_> {
    /// Every app is loaded: the first time a configuration is in service,
    /// say what limits it runs under (a configuration error is reported
    /// alone, without this line).
    pub fn finish(self) {
        self.runtime.log_limits();
    }

    /// Compiles (or finds compiled) and pre-instantiates one app. The
    /// operator's `--allow-tcp` and `--allow-http` rules may only be
    /// narrowed by the app's `allowed_tcp` and `allowed_http`.
    pub fn load(&mut self, config: AppConfig) -> Result<Arc<App>, Box<LoadError>> {
        self.load_as(config, false)
    }

    /// Like [`Loader::load`], for a `[[subscriptions]]` entry: its
    /// component must export `wasi:messaging/incoming-handler`.
    pub fn load_subscriber(&mut self, config: AppConfig) -> Result<Arc<App>, Box<LoadError>> {
        self.load_as(config, true)
    }

    fn load_as(&mut self, config: AppConfig, subscriber: bool) -> Result<Arc<App>, Box<LoadError>> {
        let Loader {
            runtime,
            operator,
            compiled,
            canonical,
            operator_tcp,
            operator_http,
        } = self;
        let this = *runtime;
        let operator = *operator;
        {
            let fail = |problem| LoadError {
                app: config.name.clone(),
                component: config.component.to_string(),
                location: config.location.clone(),
                problem,
            };
            let fail_boxed = |problem| Box::new(fail(problem));
            // An app's own entries must each lie within an operator rule.
            let not_covered =
                |key, flag, entry: String, location: Option<Location>, operator: Vec<String>| {
                    Box::new(LoadError {
                        location: location.or_else(|| config.location.clone()),
                        ..fail(LoadProblem::RuleNotCovered {
                            key,
                            flag,
                            entry,
                            operator,
                        })
                    })
                };
            let allowlist = match &config.outbound.allowed_tcp {
                None => operator_tcp.clone(),
                Some(entries) => {
                    let rules = entries.iter().map(|(rule, _)| rule.clone()).collect();
                    Arc::new(operator.tcp.narrow(rules).map_err(|uncovered| {
                        not_covered(
                            "allowed_tcp",
                            "--allow-tcp",
                            uncovered.to_string(),
                            location_of(entries, &uncovered),
                            operator.tcp.rules().iter().map(|r| r.to_string()).collect(),
                        )
                    })?)
                }
            };
            let timeouts = (config.outbound.connect_timeout, config.outbound.io_timeout);
            let http_client = match &config.outbound.allowed_http {
                None => operator_http
                    .entry(timeouts)
                    .or_insert_with(|| {
                        Arc::new(HttpClient::new(
                            operator.http.clone(),
                            timeouts,
                            this.slow_lane.clone(),
                            this.handles.clone(),
                        ))
                    })
                    .clone(),
                Some(entries) => {
                    let rules = entries.iter().map(|(rule, _)| rule.clone()).collect();
                    let narrowed = operator.http.narrow(rules).map_err(|uncovered| {
                        not_covered(
                            "allowed_http",
                            "--allow-http",
                            uncovered.to_string(),
                            location_of(entries, &uncovered),
                            operator
                                .http
                                .rules()
                                .iter()
                                .map(|r| r.to_string())
                                .collect(),
                        )
                    })?;
                    Arc::new(HttpClient::new(
                        narrowed,
                        timeouts,
                        this.slow_lane.clone(),
                        this.handles.clone(),
                    ))
                }
            };
            let tcp = TcpSettings {
                allowlist,
                connect_timeout: config.outbound.connect_timeout,
                io_timeout: config.outbound.io_timeout,
                max_connections: config.outbound.max_connections,
            };
            let key = match &config.component {
                ComponentSource::File(path) => {
                    let canonical = canonical.entry(path.clone()).or_insert_with(|| {
                        std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())
                    });
                    ComponentKey::File(canonical.clone())
                }
                ComponentSource::Embedded { label, .. } => ComponentKey::Embedded(label),
            };
            let artifact = match compiled.entry(key) {
                Slot::Occupied(known) => known.into_mut(),
                Slot::Vacant(slot) => slot.insert(
                    match this.compile(&config.component).map_err(fail_boxed)?.0 {
                        Wasm::Component(component) => {
                            Artifact::Component(Box::new(CompiledComponent {
                                component,
                                detected: None,
                                handler: None,
                                wasi_http: None,
                                subscriber: None,
                            }))
                        }
                        Wasm::Module(module) => Artifact::Module(module),
                    },
                ),
            };
            let at_key = |(problem, location): (LoadProblem, Option<Location>)| {
                let mut error = fail(problem);
                if location.is_some() {
                    error.location = location;
                }
                Box::new(error)
            };
            let entry = match artifact {
                Artifact::Module(_) if subscriber => {
                    return Err(fail_boxed(LoadProblem::SubscriberIsCoreModule));
                }
                Artifact::Component(component) if subscriber => {
                    let linker = &this.linker;
                    let compiled = &component.component;
                    Entry::Subscriber(
                        made_once(&mut component.subscriber, || {
                            crate::bindings::MessagingRequestReplyPre::new(
                                linker.instantiate_pre(compiled)?,
                            )
                        })
                        .map_err(|error| fail_boxed(LoadProblem::NotASubscriber(error)))?,
                    )
                }
                Artifact::Module(module) => {
                    Entry::Legacy(this.legacy_pre(module.clone(), &config).map_err(at_key)?)
                }
                Artifact::Component(component) => {
                    no_function(&config).map_err(at_key)?;
                    let world = match config.world {
                        Some(world) => world,
                        None => match &component.detected {
                            Some(world) => *world,
                            None => {
                                let world = detect_world(&this.engine, &component.component)
                                    .map_err(fail_boxed)?;
                                *component.detected.insert(world)
                            }
                        },
                    };
                    component
                        .entry(&this.linker, world)
                        .map_err(|error| fail_boxed(LoadProblem::DoesNotFit(world, error)))?
                }
            };
            Ok(Arc::new(App::new(
                config,
                this.shared(),
                tcp,
                http_client,
                entry,
            )))
        }
    }
}

impl Runtime {
    /// What every app and service of this runtime shares.
    pub(crate) fn shared(&self) -> Shared {
        Shared {
            fuel_metered: self.settings.fuel,
            contention: self.contention.clone(),
            slow_lane: self.slow_lane.clone(),
            handles: self.handles.clone(),
            denials: self.denials.clone(),
            broker: self.broker.clone(),
        }
    }

    /// Compiles one app's component or module into the compile cache (or
    /// finds it there), for `host compile`, and checks it as [`Loader::load`]
    /// would: a component against its world (`world`, or the one its
    /// exports name), a core module against the ABI and the app's keys.
    pub fn precompile(&self, config: &AppConfig) -> Result<CacheOutcome, Box<LoadError>> {
        self.check_and_cache(config).map_err(|(problem, location)| {
            Box::new(LoadError {
                app: config.name.clone(),
                component: config.component.to_string(),
                location: location.or_else(|| config.location.clone()),
                problem,
            })
        })
    }

    /// [`Runtime::precompile`], with where the problem is written when a
    /// key is at fault.
    fn check_and_cache(
        &self,
        config: &AppConfig,
    ) -> Result<CacheOutcome, (LoadProblem, Option<Location>)> {
        let (wasm, outcome) = self.compile(&config.component).map_err(|p| (p, None))?;
        let component = match wasm {
            Wasm::Component(component) => component,
            Wasm::Module(module) => {
                self.legacy_pre(module, config)?;
                return Ok(outcome);
            }
        };
        no_function(config)?;
        let world = match config.world {
            Some(world) => world,
            None => detect_world(&self.engine, &component).map_err(|p| (p, None))?,
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|error| (LoadProblem::DoesNotFit(world, error), None))?;
        match world {
            World::Handler => HandlerPre::new(instance_pre).map(drop),
            World::WasiHttp => ProxyPre::new(instance_pre).map(drop),
        }
        .map_err(|error| (LoadProblem::DoesNotFit(world, error), None))?;
        Ok(outcome)
    }

    /// `module` checked for `config`: the keys only components have, then
    /// the ABI, with where the offending key is written when it is one.
    fn legacy_pre(
        &self,
        module: Module,
        config: &AppConfig,
    ) -> Result<LegacyPre, (LoadProblem, Option<Location>)> {
        if let Some(world) = config.world {
            return Err((
                LoadProblem::WorldOnCoreModule(world),
                config.world_location.clone(),
            ));
        }
        if !config.files.is_empty() {
            return Err((
                LoadProblem::KeyOnCoreModule {
                    key: "files",
                    why: "a serverless-wasm module has no filesystem",
                },
                None,
            ));
        }
        if config.outbound.allowed_http.is_some() {
            return Err((
                LoadProblem::KeyOnCoreModule {
                    key: "allowed_http",
                    why: "a serverless-wasm module makes no HTTP requests",
                },
                None,
            ));
        }
        let function = config.function.as_ref();
        LegacyPre::new(
            module,
            function.map(|f| f.name.as_str()),
            config.limits.max_memory,
            self.legacy_linker.clone(),
        )
        .map_err(|problem| {
            let at_function = matches!(
                problem,
                LegacyProblem::MissingFunction {
                    configured: true,
                    ..
                } | LegacyProblem::FunctionType { .. }
            );
            let location = function
                .and_then(|f| f.location.clone())
                .filter(|_| at_function);
            (LoadProblem::Legacy(problem), location)
        })
    }

    fn compile(&self, source: &ComponentSource) -> Result<(Wasm, CacheOutcome), LoadProblem> {
        let bytes = read_source(source)?;
        self.compile_bytes(source, &bytes)
    }

    /// `bytes`, read from `source`, compiled through the cache.
    fn compile_bytes(
        &self,
        source: &ComponentSource,
        bytes: &[u8],
    ) -> Result<(Wasm, CacheOutcome), LoadProblem> {
        // Bytes 6..8 of the header hold the layer: 0 for core modules.
        let core = match bytes.get(..8) {
            Some(header) if header.starts_with(WASM_MAGIC) => header[6..8] == [0, 0],
            _ => return Err(LoadProblem::NotWasm),
        };
        let started = std::time::Instant::now();
        let (wasm, outcome) = if core {
            let (module, outcome) = self.cached(bytes)?;
            (Wasm::Module(module), outcome)
        } else {
            let (component, outcome) = self.cached(bytes)?;
            (Wasm::Component(component), outcome)
        };
        tracing::info!(
            component = %source,
            took_ms = started.elapsed().as_millis() as u64,
            "{outcome}"
        );
        Ok((wasm, outcome))
    }

    /// The SHA-256 of `source`'s bytes, as [`Runtime::load_service`] records
    /// it: a reload compares the two to tell whether a service changed.
    pub fn component_digest(&self, source: &ComponentSource) -> Result<[u8; 32], LoadProblem> {
        use sha2::Digest as _;
        Ok(sha2::Sha256::digest(&read_source(source)?).into())
    }

    /// `source` compiled as a component (a service's), through the cache,
    /// with the SHA-256 of the bytes compiled.
    pub(crate) fn compile_component(
        &self,
        source: &ComponentSource,
    ) -> Result<(Component, [u8; 32]), LoadProblem> {
        use sha2::Digest as _;
        let bytes = read_source(source)?;
        let digest = sha2::Sha256::digest(&bytes).into();
        match self.compile_bytes(source, &bytes)?.0 {
            Wasm::Component(component) => Ok((component, digest)),
            Wasm::Module(_) => Err(LoadProblem::ServiceIsCoreModule),
        }
    }

    /// `bytes` compiled, through the compile cache when there is one.
    fn cached<C: crate::cache::Compiled>(
        &self,
        bytes: &[u8],
    ) -> Result<(C, CacheOutcome), LoadProblem> {
        match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, bytes)
                .map_err(LoadProblem::Compile),
            None => Ok((
                C::compile(&self.engine, bytes).map_err(LoadProblem::Compile)?,
                CacheOutcome::Uncached,
            )),
        }
    }
}

/// The bytes of `source`.
fn read_source(source: &ComponentSource) -> Result<std::borrow::Cow<'static, [u8]>, LoadProblem> {
    match source {
        ComponentSource::File(path) => std::fs::read(path)
            .map(Into::into)
            .map_err(LoadProblem::Read),
        ComponentSource::Embedded { wasm, .. } => Ok((*wasm).into()),
    }
}

/// A compiled file: a component, or a core module of the serverless-wasm
/// ABI.
enum Wasm {
    Component(Component),
    Module(Module),
}
