//! `host serve`: load the configuration, prepare every app, listen, and
//! serve until SIGINT or SIGTERM.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serverless_config::Config;
use serverless_outbound::{HttpAllowlist, TcpAllowlist};
use serverless_runtime::OperatorRules;
use serverless_runtime::{Runtime, RuntimeSettings};
use tokio::net::TcpListener;

use crate::ServeArgs;
use crate::default_config;
use crate::dispatch::Dispatcher;
use crate::server;

/// Runs `host serve` to completion.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Configuration errors are complete messages with file, line and
    // column; they are reported as they are.
    // The samples' site folder must outlive the server.
    let (config, _sample_site) = match &args.config {
        Some(path) => (Config::load(path)?, None),
        None => {
            let samples = default_config::samples()?;
            (samples.config, Some(samples.site))
        }
    };
    // The pool is sized for the most demanding app.
    let apps: Vec<&serverless_config::AppConfig> =
        config.routes.routes().map(|(_, _, app)| app).collect();
    let max_memory = apps
        .iter()
        .map(|app| app.limits.max_memory)
        .max()
        .unwrap_or(0);
    let runtime = Runtime::new(RuntimeSettings {
        max_instances: args.max_instances,
        max_memory_bytes: usize::try_from(max_memory).unwrap_or(usize::MAX),
        fuel: apps.iter().any(|app| app.limits.fuel.is_some()),
    })?;
    let pool = pool_summary(&runtime, args.max_instances, max_memory);
    let operator_rules = OperatorRules {
        tcp: TcpAllowlist::new(args.allow_tcp),
        http: HttpAllowlist::new(args.allow_http),
    };
    let routes = runtime.load_routes(config.routes, &operator_rules)?;
    let address = args.listen.unwrap_or(config.listen_address);

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
        print_banner(&routes, &operator_rules, &pool, bound);
        let dispatcher = Arc::new(Dispatcher::new(
            routes,
            args.max_instances,
            Duration::from_millis(args.queue_timeout),
        ));
        server::serve(
            listener,
            dispatcher,
            shutdown_signal()?,
            Duration::from_secs(args.drain_timeout),
        )
        .await;
        Ok(())
    })
}

/// Prints the route table and the URL on stdout, where scripts and tests
/// read the bound address from the `listening on` line.
fn print_banner(
    routes: &serverless_config::RouteTable<Arc<serverless_runtime::App>>,
    operator_rules: &OperatorRules,
    pool: &str,
    bound: std::net::SocketAddr,
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
