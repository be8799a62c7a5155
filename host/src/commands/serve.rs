//! `host serve`: load the configuration, prepare every app, listen, and
//! serve until SIGINT or SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serverless_config::Config;
use serverless_outbound::{HttpAllowlist, TcpAllowlist};
use serverless_runtime::OperatorRules;
use serverless_runtime::{CompileCache, Runtime, RuntimeSettings};
use tokio::net::TcpListener;

use crate::admin::{Admin, Metrics};
use crate::default_config;
use crate::dispatch::Dispatcher;
use crate::invocations::Invocations;
use crate::reload::{self, Reloader};
use crate::server;
use crate::{CacheArgs, CompileArgs, ServeArgs};

/// Runs `host serve` to completion; the requests' log lines are kept in
/// `invocations`, which the capture layer feeds.
pub(crate) fn run(args: ServeArgs, invocations: Arc<Invocations>) -> anyhow::Result<()> {
    // Configuration errors are complete messages with file, line and
    // column; they are reported as they are.
    // The samples' site folder must outlive the server.
    let (config, _sample_site) = load_config(args.config.as_deref())?;
    let runtime = Arc::new(prepare_runtime(&config, args.max_instances, &args.cache)?);
    let max_memory = max_memory(&config);
    let pool = pool_summary(&runtime, args.max_instances, max_memory);
    let operator_rules = OperatorRules {
        tcp: TcpAllowlist::new(args.allow_tcp),
        http: HttpAllowlist::new(args.allow_http),
    };
    let routes = runtime.load_routes(config.routes, &operator_rules)?;
    let address = args.listen.unwrap_or(config.listen_address);
    let max_connections = args.max_connections.unwrap_or_else(default_max_connections);
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
        let metrics = Arc::new(Metrics::new(args.max_instances, runtime.counters()));
        let admin = Arc::new(Admin::new(metrics.clone(), &routes, invocations.clone()));
        let admin_listen = args
            .admin_listen
            .unwrap_or_else(|| crate::AdminListen::default_for(address));
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
        let hangups = reload::hangups()?;
        print_banner(&routes, &operator_rules, &pool, bound, admin_address);
        tracing::info!(
            "at most {max_connections} connections at once (--max-connections); one idle for {:?} is closed (--idle-timeout)",
            args.idle_timeout
        );
        let described = reload::describe(&routes);
        let dispatcher = Arc::new(Dispatcher::new(
            routes,
            args.max_instances,
            args.queue_timeout,
            metrics,
            invocations,
        ));
        match &args.config {
            Some(config_path) => {
                let reloader = Arc::new(Reloader {
                    config_path: config_path.clone(),
                    runtime,
                    operator: operator_rules,
                    dispatcher: dispatcher.clone(),
                    admin: admin.clone(),
                    listen_address,
                });
                tokio::spawn(reloader.run(hangups, described, args.watch));
            }
            None => {
                if args.watch {
                    tracing::warn!(
                        "--watch needs a configuration file; the bundled samples do not reload"
                    );
                }
                // SIGHUP would otherwise end the process.
                tokio::spawn(reload::ignore_hangups(hangups));
            }
        }
        admin.set_ready(true);
        let signal = shutdown_signal()?;
        let shutdown = {
            let admin = admin.clone();
            async move {
                signal.await;
                // Load balancers stop sending new requests while in-flight
                // ones drain.
                admin.set_ready(false);
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
        Ok(())
    })
}

/// The default `--max-connections`: half the soft open-files limit, so
/// that the other half stays for the instances' files and sockets, the
/// compile cache and the admin listener; at most 10000.
fn default_max_connections() -> u32 {
    const MOST: u64 = 10_000;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one `rlimit` through a valid pointer.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        // Unknown: the usual default soft limit.
        1024
    };
    u32::try_from((soft / 2).clamp(1, MOST)).unwrap_or(1)
}

/// The configuration file, or the bundled samples with the folder holding
/// their site (which must outlive the server).
fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, Option<tempfile::TempDir>)> {
    // Configuration errors are complete messages with file, line and
    // column; they are reported as they are.
    Ok(match path {
        Some(path) => (Config::load(path)?, None),
        None => {
            let samples = default_config::samples()?;
            (samples.config, Some(samples.site))
        }
    })
}

/// The largest `max_memory` of the apps: the pool is sized for the most
/// demanding one.
fn max_memory(config: &Config) -> u64 {
    config
        .routes
        .routes()
        .map(|(_, _, app)| app.limits.max_memory)
        .max()
        .unwrap_or(0)
}

/// The engine for `config`, with the compile cache unless `--no-cache`.
/// `host compile` and `host serve` build it the same way, so that the
/// cache entries one writes are the ones the other finds.
pub(crate) fn prepare_runtime(
    config: &Config,
    max_instances: u32,
    cache: &CacheArgs,
) -> anyhow::Result<Runtime> {
    let max_memory = max_memory(config);
    let mut runtime = Runtime::new(RuntimeSettings {
        max_instances,
        max_memory_bytes: usize::try_from(max_memory).unwrap_or(usize::MAX),
        fuel: config
            .routes
            .routes()
            .any(|(_, _, app)| app.limits.fuel.is_some()),
    })?;
    if !cache.no_cache {
        match cache_dir(cache) {
            Some(dir) => runtime.use_compile_cache(CompileCache::open(dir)?),
            None => tracing::warn!(
                "no compile cache: neither XDG_CACHE_HOME nor HOME is set; pass --cache-dir to keep compiled components"
            ),
        }
    }
    Ok(runtime)
}

fn cache_dir(cache: &CacheArgs) -> Option<PathBuf> {
    if let Some(dir) = &cache.cache_dir {
        return Some(dir.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("serverless-wasm/compiled"))
}

/// Runs `host compile`: every distinct component of the configuration into
/// the compile cache, each checked against its world as `host serve` checks
/// it at startup.
pub(crate) fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let (config, _sample_site) = load_config(args.config.as_deref())?;
    let runtime = prepare_runtime(&config, 1, &args.cache)?;
    let mut seen = std::collections::HashSet::new();
    for (_, _, app) in config.routes.routes() {
        if !seen.insert(app.component.to_string()) {
            continue;
        }
        let started = Instant::now();
        let outcome = runtime
            .precompile(&app.component, app.world)
            .map_err(|problem| {
                anyhow::anyhow!("app `{}` ({}): {problem}", app.name, app.component)
            })?;
        println!(
            "{}: {outcome} ({} ms)",
            app.component,
            started.elapsed().as_millis()
        );
    }
    println!("{} components ready", seen.len());
    Ok(())
}

/// Prints the route table and the URL on stdout, where scripts and tests
/// read the bound address from the `listening on` line.
fn print_banner(
    routes: &serverless_config::RouteTable<Arc<serverless_runtime::App>>,
    operator_rules: &OperatorRules,
    pool: &str,
    bound: std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
) {
    let mut out = std::io::stdout().lock();
    let width = routes
        .routes()
        .map(|(p, _, _)| p.as_str().len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "serverless-wasm host {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "routes:");
    for (pattern, methods, app) in routes.routes() {
        let _ = writeln!(
            out,
            "  {:<7} {:<width$}  -> {} ({})",
            methods.to_string(),
            pattern.as_str(),
            app.name(),
            app.component()
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
    for (_, _, app) in routes.routes() {
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
