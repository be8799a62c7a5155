//! `host run COMPONENT`: one request through one component, without a
//! listener. The request takes the path a served request takes (the same
//! dispatcher, runtime, limits and outbound policy), so what a handler does
//! here is what it does behind `host serve`. The response goes to stdout
//! as HTTP/1.1 text; the guest's log lines go to stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use serverless_config::{
    AppConfig, ComponentSource, Config, DEFAULT_MAX_REQUEST_BODY, MethodFilter, OutboundConfig,
    RoutePattern, RouteTable,
};
use serverless_outbound::{HttpAllowlist, TcpAllowlist};
use serverless_runtime::OperatorRules;

use super::common::{
    CacheArgs, parse_http_rule, parse_seconds_flag, parse_tcp_rule, prepare_runtime,
};

use crate::admin::Metrics;
use crate::dispatch::Dispatcher;
use crate::invocations::Invocations;

/// Arguments of `host run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The component (our handler world or `wasi:http/proxy`), or a core
    /// module of the original serverless-wasm ABI.
    pub(crate) component: PathBuf,

    /// For a core module: the exported function to call (default
    /// `handle`), as an app's `function` key.
    #[arg(long, value_name = "NAME")]
    pub(crate) function: Option<String>,

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

/// Splits a `--header` value written `name: value`.
fn parse_header(
    text: &str,
) -> anyhow::Result<(hyper::header::HeaderName, hyper::header::HeaderValue)> {
    let Some((name, value)) = text.split_once(':') else {
        bail!("--header {text:?}: write it as `name: value`");
    };
    let name = hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("--header {text:?}: {:?} is not a header name", name.trim()))?;
    let value = hyper::header::HeaderValue::from_str(value.trim())
        .with_context(|| format!("--header {text:?}: the value has a control character"))?;
    Ok((name, value))
}

/// Splits an `--env` value written `NAME=value`.
fn parse_env(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => bail!("--env {text:?}: write it as `NAME=value`"),
    }
}

/// The one-app configuration `host run` serves: `--route` (by default the
/// request's own path) for any method, with the component and flags given.
fn one_app_config(args: &RunArgs) -> anyhow::Result<Config> {
    let path = args.path.split('?').next().unwrap_or("/");
    let route_text = args.route.as_deref().unwrap_or(path);
    let route: RoutePattern = route_text
        .parse()
        .with_context(|| format!("--route {route_text:?} is not a route pattern"))?;
    let mut env = args
        .env
        .iter()
        .map(|text| parse_env(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    env.sort();
    let name = args
        .component
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("component")
        .to_owned();
    let mut limits = serverless_config::AppLimits::default();
    if let Some(timeout) = args.timeout {
        limits.timeout = timeout;
    }
    let app = AppConfig {
        name,
        component: ComponentSource::File(args.component.clone()),
        env,
        messaging: serverless_config::MessagingRules::default(),
        secrets: Vec::new(),
        files: Vec::new(),
        max_request_body: DEFAULT_MAX_REQUEST_BODY,
        limits,
        location: None,
        outbound: OutboundConfig::default(),
        world: None,
        world_location: None,
        function: args
            .function
            .clone()
            .map(|name| serverless_config::Function {
                name,
                location: None,
            }),
    };
    let mut routes = RouteTable::new();
    routes.insert(
        route,
        MethodFilter::from_names(["ANY"])?,
        serverless_config::RouteTarget::App(Box::new(app)),
    )?;
    Ok(Config {
        warnings: Vec::new(),
        services: Vec::new(),
        subscriptions: Vec::new(),
        listen_address: serverless_config::DEFAULT_LISTEN_ADDRESS.parse()?,
        routes,
    })
}

/// Runs `host run` and returns whether the handler answered below 500;
/// the request's log lines are collected in `invocations`, as when served.
pub(crate) fn run(args: RunArgs, invocations: Arc<Invocations>) -> anyhow::Result<bool> {
    if !args.component.is_file() {
        bail!("{}: no such component file", args.component.display());
    }
    let config = one_app_config(&args)?;
    let runtime = prepare_runtime(&config, 1, &args.cache)?;
    let operator = OperatorRules {
        tcp: TcpAllowlist::new(args.allow_tcp.clone()),
        http: HttpAllowlist::new(args.allow_http.clone()),
    };
    // `host run` runs no services.
    // A `publish_to` route publishes to a broker of its own: nothing
    // listens in a single run.
    let broker = serverless_messaging::Broker::new(serverless_messaging::BrokerSettings::default());
    let routes = crate::routes::load(
        &runtime,
        config.routes,
        &operator,
        &Default::default(),
        &broker,
    )?;
    let body = match (&args.body, &args.body_file) {
        (Some(text), None) => Bytes::from(text.clone()),
        (None, Some(file)) => Bytes::from(
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
        ),
        _ => Bytes::new(),
    };
    let mut request = Request::builder()
        .method(args.method.as_str())
        .uri(&args.path)
        .header(hyper::header::HOST, "localhost");
    for header in &args.header {
        let (name, value) = parse_header(header)?;
        request = request.header(name, value);
    }
    if !body.is_empty() {
        request = request.header(hyper::header::CONTENT_LENGTH, body.len());
    }
    let request = request
        .body(Full::new(body))
        .with_context(|| format!("--method {:?} --path {:?}", args.method, args.path))?;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async move {
        let dispatcher = Arc::new(Dispatcher::new(
            routes,
            1,
            Duration::from_secs(1),
            // The one body is already in memory.
            u64::MAX,
            Arc::new(Metrics::new(1, runtime.counters(), None)),
            invocations,
        ));
        let response = dispatcher.dispatch(request, None).await;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|error| anyhow::anyhow!("the response body failed: {error:?}"))?
            .to_bytes();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "HTTP/1.1 {} {}",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )?;
        for (name, value) in &parts.headers {
            out.write_all(name.as_str().as_bytes())?;
            out.write_all(b": ")?;
            out.write_all(value.as_bytes())?;
            out.write_all(b"\n")?;
        }
        if !parts.headers.contains_key(hyper::header::CONTENT_LENGTH) {
            writeln!(out, "content-length: {}", body.len())?;
        }
        writeln!(out)?;
        out.write_all(&body)?;
        out.flush()?;
        Ok(parts.status.as_u16() < 500)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_env_entries_must_have_their_separator() {
        let (name, value) = parse_header("x-a:  b c ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-a", "b c"));
        assert!(
            parse_header("no separator")
                .unwrap_err()
                .to_string()
                .contains("name: value")
        );
        assert!(parse_header("bad name: x").is_err());
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            ("A".to_owned(), "b=c".to_owned())
        );
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOVALUE").is_err());
    }
}
