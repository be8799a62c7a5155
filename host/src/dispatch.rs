//! One HTTP request: give it an id, route it, apply the app's body limit,
//! run the app in the world it implements, and turn the outcome into a
//! response.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, RETRY_AFTER,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serverless_config::RouteTable;
use serverless_router::{Lookup, RouteMatch};
use serverless_runtime::{
    App, BodyError, FailureKind, GuestResponse, IncomingRequest, InvocationStats, LaterStats,
    ResponseBody, World,
};
use tracing::Instrument as _;

use crate::admin::Metrics;
use crate::admission::{self, Admitted, Gate};
use crate::invocations::{Collecting, Invocations};

/// The header that carries the request id on every response, and on the
/// request to a wasi:http component.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything the access line of one request says, but the guest's
/// figures.
struct AccessRecord {
    /// Keeps the invocation's lines collected until the line is written.
    collecting: Collecting,
    request_id: Arc<str>,
    app: Option<Arc<str>>,
    route: Option<Arc<str>>,
    method: http::Method,
    path: String,
    status: u16,
    started: Instant,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
}

impl AccessRecord {
    /// Writes the access line, then closes the invocation's log record.
    fn emit(self, stats: Option<InvocationStats>) {
        tracing::info!(
            target: "access",
            request_id = &*self.request_id,
            app = self.app.as_deref().unwrap_or("-"),
            route = self.route.as_deref().unwrap_or("-"),
            method = self.method.as_str(),
            path = self.path,
            status = self.status,
            micros = self.started.elapsed().as_micros() as u64,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            instantiate_us = stats.map(|s| s.instantiate.as_micros() as u64),
            execute_us = stats.map(|s| s.execute.as_micros() as u64),
            peak_memory = stats.map(|s| s.peak_memory),
            tcp_connections = stats.map(|s| s.tcp_connections),
            tcp_denied = stats.map(|s| s.tcp_denied),
            "request"
        );
        self.collecting.finish(
            self.app.as_deref(),
            self.method.as_str(),
            &self.path,
            self.status,
            self.started.elapsed(),
        );
    }
}

/// The figures of a wasi:http guest that is still running, carried to the
/// access log (an extension must be `Clone`, hence the shared slot).
#[derive(Clone)]
struct PendingStats(Arc<std::sync::Mutex<Option<LaterStats>>>);

impl PendingStats {
    fn take(&self) -> Option<LaterStats> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The request body's size, carried to the access log.
#[derive(Clone, Copy)]
struct BytesIn(u64);

/// The route pattern that matched, carried to the access log.
#[derive(Clone)]
struct RouteUsed(Arc<str>);

/// Whether an incoming `x-request-id` may be used as this request's id: 1
/// to 128 characters of letters, digits and `-_.:`, so that it is safe in
/// log lines and headers. Others are replaced by a fresh UUID.
pub(crate) fn is_well_formed_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A request body the dispatcher can read: hyper's `Incoming` from the
/// server, or a whole body from `host run`.
pub(crate) trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// The route pattern that matched, on the request to a wasi:http
/// component.
pub(crate) const ROUTE_HEADER: &str = "x-serverless-route";

/// The route parameters, form-encoded, on the request to a wasi:http
/// component.
pub(crate) const PARAMS_HEADER: &str = "x-serverless-params";

/// Routes requests to apps and admits them under the concurrency caps.
pub(crate) struct Dispatcher {
    /// Replaced whole by a reload; a request keeps the table it started
    /// with, so it finishes on the instances it began on.
    served: RwLock<Arc<Served>>,
    global: Gate,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The server's invocation store, where each request's log lines go.
    invocations: Arc<Invocations>,
}

/// The routes being served and the per-app concurrency caps.
struct Served {
    routes: RouteTable<Arc<App>>,
    per_app: HashMap<Arc<str>, Arc<Gate>>,
}

/// What went wrong before or around the handler, with the status the client
/// gets. The body is short and generic; details go to the log.
enum Refusal {
    NotFound,
    MethodNotAllowed(String),
    /// An HTTP/1.1 request without exactly one `Host` header.
    BadHost,
    BadPath,
    TooLarge,
    BodyRead,
    /// A handler-world body did not arrive within the app's timeout.
    BodyTimedOut,
    /// The guest failed, and how (for the log and metrics).
    HandlerFailed(FailureKind),
    TimedOut,
    Busy,
}

/// A whole body in the type every response uses.
fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl Refusal {
    fn into_response(self) -> Response<ResponseBody> {
        let (status, body) = match &self {
            Refusal::NotFound => (StatusCode::NOT_FOUND, "not found\n"),
            Refusal::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            Refusal::BadHost => (
                StatusCode::BAD_REQUEST,
                "bad request: an HTTP/1.1 request needs exactly one Host header\n",
            ),
            Refusal::BadPath => (
                StatusCode::BAD_REQUEST,
                "bad request: the path is not valid percent-encoded UTF-8\n",
            ),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            Refusal::BodyRead => (
                StatusCode::BAD_REQUEST,
                "bad request: the body could not be read\n",
            ),
            Refusal::BodyTimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "request timeout: the body did not arrive in time\n",
            ),
            Refusal::HandlerFailed(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
            Refusal::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"),
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: too many requests in flight, retry shortly\n",
            ),
        };
        let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Refusal::MethodNotAllowed(allow) = &self
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(ALLOW, value);
        }
        if let Refusal::Busy = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Refusal::BodyTimedOut = self {
            // The rest of the body may still come; the connection cannot
            // carry another request (RFC 9110 15.5.9).
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The outcome of one request before the request id is attached: the
/// response and the app that produced it, if any.
type Outcome = Result<(Response<ResponseBody>, Arc<str>), (Refusal, Option<Arc<str>>)>;

impl Dispatcher {
    /// `max_instances` caps running requests across all apps; a request
    /// past a cap waits up to `queue_timeout` for a slot. Each request's
    /// lines are collected in `invocations`.
    pub(crate) fn new(
        routes: RouteTable<Arc<App>>,
        max_instances: u32,
        queue_timeout: Duration,
        metrics: Arc<Metrics>,
        invocations: Arc<Invocations>,
    ) -> Dispatcher {
        let per_app = per_app_gates(&routes, &HashMap::new());
        Dispatcher {
            served: RwLock::new(Arc::new(Served { routes, per_app })),
            global: Gate::new(max_instances),
            queue_timeout,
            metrics,
            invocations,
        }
    }

    /// Serves `routes` from the next request on. An app that keeps its
    /// name and concurrency cap keeps its gate, so requests running across
    /// the swap still count against it.
    pub(crate) fn replace_routes(&self, routes: RouteTable<Arc<App>>) {
        let mut served = self
            .served
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let per_app = per_app_gates(&routes, &served.per_app);
        *served = Arc::new(Served { routes, per_app });
    }

    /// The table being served now.
    fn current(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Answers one request. Never fails: every problem becomes a response.
    pub(crate) async fn dispatch<B: RequestBody>(
        &self,
        request: Request<B>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let request_id: Arc<str> = match request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
        {
            Some(given) if is_well_formed_request_id(given) => given.into(),
            _ => uuid::Uuid::new_v4().to_string().into(),
        };
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let collecting = self.invocations.begin(&request_id);
        // Every line of the request, the runtime's and the guest's, is
        // emitted in the invocation's span, which keys its log record.
        let span = collecting.span();
        let (mut response, app) = match self
            .route_and_run(request, &request_id)
            .instrument(span.clone())
            .await
        {
            Ok((response, app)) => (response, Some(app)),
            Err((refusal, app)) => {
                let kind = match &refusal {
                    Refusal::HandlerFailed(kind) => Some(*kind),
                    Refusal::TimedOut => Some(FailureKind::Deadline),
                    _ => None,
                };
                if let (Some(kind), Some(app)) = (kind, &app) {
                    self.metrics.record_failure(app, kind);
                }
                (refusal.into_response(), app)
            }
        };
        self.metrics.record(
            app.as_deref(),
            response.status().as_u16(),
            started.elapsed(),
        );
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let record = AccessRecord {
            collecting,
            request_id,
            app,
            route: response
                .extensions()
                .get::<RouteUsed>()
                .map(|r| r.0.clone()),
            method,
            path,
            status: response.status().as_u16(),
            started,
            bytes_in: response.extensions().get::<BytesIn>().map(|b| b.0),
            // Streaming (wasi:http) bodies have no size yet.
            bytes_out: hyper::body::Body::size_hint(response.body()).exact(),
        };
        let stats = response.extensions().get::<InvocationStats>().copied();
        let later = response
            .extensions()
            .get::<PendingStats>()
            .and_then(|pending| pending.take());
        match later {
            // A wasi:http guest is still writing its body: its line comes
            // when it has finished.
            Some(later) => {
                tokio::spawn(
                    async move {
                        let stats = later.wait().await;
                        record.emit(stats);
                    }
                    .instrument(span),
                );
            }
            None => record.emit(stats),
        }
        response
    }

    async fn route_and_run<B: RequestBody>(
        &self,
        request: Request<B>,
        request_id: &Arc<str>,
    ) -> Outcome {
        if let Some(hosts) = wrong_host_count(&request) {
            tracing::info!(
                request_id = &**request_id,
                "refused: an HTTP/1.1 request with {hosts} Host headers"
            );
            return Err((Refusal::BadHost, None));
        }
        let served = self.current();
        let found = match served
            .routes
            .lookup(request.method().as_str(), request.uri().path())
        {
            Lookup::Found(found) => found,
            Lookup::NotFound => return Err((Refusal::NotFound, None)),
            Lookup::MethodNotAllowed(allowed) => {
                return Err((Refusal::MethodNotAllowed(allowed.to_allow_header()), None));
            }
            Lookup::BadPath => return Err((Refusal::BadPath, None)),
        };
        let app = found.value.clone();
        let found_route = found.pattern.as_str().to_owned();
        let name = app.name().clone();
        let limit = app.max_request_body();
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            log_too_large(&name, request_id, limit);
            return Err((Refusal::TooLarge, Some(name)));
        }
        let result = match app.world() {
            World::Handler => {
                // The whole body is read before the request takes a slot,
                // under the app's timeout: a client that trickles or stalls
                // its upload holds only its own connection.
                let (parts, body) = request.into_parts();
                let body = match read_body(&app, body, request_id).await {
                    Ok(body) => body,
                    Err(refusal) => return Err((refusal, Some(name))),
                };
                let Some(admitted) = self.admit(&served, &name, request_id).await else {
                    return Err((Refusal::Busy, Some(name)));
                };
                let _running = self.metrics.in_flight();
                run_handler(&app, parts, body, found, request_id, admitted).await
            }
            World::WasiHttp => {
                // The body streams to the guest, whose deadline covers its
                // reads as every other host call.
                let Some(admitted) = self.admit(&served, &name, request_id).await else {
                    return Err((Refusal::Busy, Some(name)));
                };
                let _running = self.metrics.in_flight();
                run_wasi_http(&app, request, found, request_id, admitted).await
            }
        };
        let route: Arc<str> = found_route.into();
        result
            .map(|mut response| {
                response.extensions_mut().insert(RouteUsed(route));
                (response, name.clone())
            })
            .map_err(|refusal| (refusal, Some(name)))
    }
}

impl Dispatcher {
    /// Admits a request of app `name` through its gate and the global one.
    async fn admit(&self, served: &Served, name: &Arc<str>, request_id: &str) -> Option<Admitted> {
        let mut gates: Vec<&Gate> = Vec::with_capacity(2);
        gates.extend(served.per_app.get(name).map(|gate| &**gate));
        gates.push(&self.global);
        let admitted = admission::admit(&gates, self.queue_timeout).await;
        if admitted.is_none() {
            tracing::warn!(
                app = &**name,
                request_id,
                "refused: too many requests in flight"
            );
        }
        admitted
    }
}

/// How many `Host` headers an HTTP/1.1 request has, when that is not
/// exactly one (RFC 9112 3.2: the server answers `400`). HTTP/1.0 requests
/// may go without.
fn wrong_host_count<B>(request: &Request<B>) -> Option<usize> {
    let hosts = request.headers().get_all(HOST).iter().count();
    (request.version() == http::Version::HTTP_11 && hosts != 1).then_some(hosts)
}

/// The per-app gates for `routes`, reusing a gate of `previous` where the
/// app and its cap are the same.
fn per_app_gates(
    routes: &RouteTable<Arc<App>>,
    previous: &HashMap<Arc<str>, Arc<Gate>>,
) -> HashMap<Arc<str>, Arc<Gate>> {
    routes
        .routes()
        .filter_map(|(_, _, app)| {
            let cap = app.limits().max_concurrency?;
            let gate = previous
                .get(app.name())
                .filter(|gate| gate.cap() == cap)
                .cloned()
                .unwrap_or_else(|| Arc::new(Gate::new(cap)));
            Some((app.name().clone(), gate))
        })
        .collect()
}

fn log_too_large(app: &str, request_id: &str, limit: u64) {
    tracing::info!(
        app,
        request_id,
        limit,
        "request body is larger than the app's limit"
    );
}

/// Logs why a request failed and picks what the client sees: `504` when
/// it ran out of time, `500` otherwise.
fn failed(app: &App, request_id: &str, error: &serverless_runtime::HandleError) -> Refusal {
    let message = error.to_string();
    let message = app.redact(&message);
    tracing::error!(
        app = &**app.name(),
        request_id,
        kind = error.kind().as_str(),
        "request failed: {message}"
    );
    if error.is_deadline() {
        Refusal::TimedOut
    } else {
        Refusal::HandlerFailed(error.kind())
    }
}

/// Reads a handler-world request's whole body, at most the app's
/// `max_request_body`, within the app's `timeout`.
async fn read_body<B: RequestBody>(
    app: &App,
    body: B,
    request_id: &Arc<str>,
) -> Result<Bytes, Refusal> {
    let limit = app.max_request_body();
    let timeout = app.limits().timeout;
    let collecting = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    match tokio::time::timeout(timeout, collecting).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            log_too_large(app.name(), request_id, limit);
            Err(Refusal::TooLarge)
        }
        Ok(Err(error)) => {
            tracing::info!(
                app = &**app.name(),
                request_id = &**request_id,
                "cannot read the request body: {error}"
            );
            Err(Refusal::BodyRead)
        }
        Err(_elapsed) => {
            tracing::info!(
                app = &**app.name(),
                request_id = &**request_id,
                "the request body did not arrive within the app's timeout of {timeout:?}"
            );
            Err(Refusal::BodyTimedOut)
        }
    }
}

/// Handler world: run `handle` on the body already read, send what it
/// built.
async fn run_handler(
    app: &App,
    parts: http::request::Parts,
    body: Bytes,
    found: RouteMatch<'_, Arc<App>>,
    request_id: &Arc<str>,
    admitted: Admitted,
) -> Result<Response<ResponseBody>, Refusal> {
    let bytes_in = body.len() as u64;
    let incoming = IncomingRequest {
        request_id: request_id.clone(),
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        route: found.pattern.as_str().into(),
        params: found.params,
    };
    // The admission slot is released once the instance's pool slot is.
    match app.handle(incoming, admitted).await {
        Ok(guest) => Ok(into_http(guest, bytes_in)),
        Err(error) => Err(failed(app, request_id, &error)),
    }
}

/// Builds the HTTP response from what a handler-world guest set.
fn into_http(guest: GuestResponse, bytes_in: u64) -> Response<ResponseBody> {
    let mut response = Response::new(full(guest.body));
    *response.status_mut() = guest.status;
    *response.headers_mut() = guest.headers;
    response.extensions_mut().insert(guest.stats);
    response.extensions_mut().insert(BytesIn(bytes_in));
    if let Some(reason) = guest.reason
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(reason);
    }
    response
}

/// wasi:http world: hand the request over with its body still streaming,
/// plus the request id, route and parameters in headers that the host sets
/// (a client cannot forge them: its own are removed).
async fn run_wasi_http<B: RequestBody>(
    app: &App,
    request: Request<B>,
    found: RouteMatch<'_, Arc<App>>,
    request_id: &Arc<str>,
    admitted: Admitted,
) -> Result<Response<ResponseBody>, Refusal> {
    let limit = app.max_request_body();
    let (mut parts, body) = request.into_parts();
    let headers = &mut parts.headers;
    for name in [REQUEST_ID_HEADER, ROUTE_HEADER, PARAMS_HEADER] {
        headers.remove(name);
    }
    let params = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&found.params)
        .finish();
    for (name, value) in [
        (REQUEST_ID_HEADER, &**request_id),
        (ROUTE_HEADER, found.pattern.as_str()),
        (PARAMS_HEADER, params.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if !headers.contains_key(HOST) {
        headers.insert(HOST, HeaderValue::from_static("localhost"));
    }
    let body =
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(move |error| {
            if error.is::<LengthLimitError>() {
                BodyError::HttpRequestBodySize(Some(limit))
            } else {
                match error.downcast::<hyper::Error>() {
                    Ok(error) => BodyError::Hyper(*error),
                    Err(other) => BodyError::InternalError(Some(other.to_string())),
                }
            }
        });
    match app
        .serve_http(
            request_id.clone(),
            Request::from_parts(parts, body),
            admitted,
        )
        .await
    {
        Ok((response, later)) => {
            let mut response = limit_response(app, request_id, response)?;
            response
                .extensions_mut()
                .insert(PendingStats(Arc::new(std::sync::Mutex::new(Some(later)))));
            Ok(response)
        }
        Err(error) => Err(failed(app, request_id, &error)),
    }
}

/// Holds a wasi:http response to what may be sent: an informational
/// status (`1xx`) is no final answer, and the host upgrades no connection,
/// so it is refused (`500`) rather than put on the wire as, say, `101
/// Switching Protocols`. And to the app's size limit: a declared length
/// past it is refused before anything is sent (`500`); a streamed body that
/// grows past it is cut off, which the client sees as a broken response.
fn limit_response(
    app: &App,
    request_id: &Arc<str>,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Refusal> {
    if response.status().is_informational() {
        tracing::error!(
            app = &**app.name(),
            request_id = &**request_id,
            kind = "informational status",
            "request failed: the guest answered {}, an informational status, as its final response",
            response.status().as_u16()
        );
        return Err(Refusal::HandlerFailed(FailureKind::InformationalStatus));
    }
    let limit = app.limits().max_response_body;
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        tracing::error!(
            app = &**app.name(),
            request_id = &**request_id,
            kind = "response too large",
            "request failed: the response declares more than the app's limit of {limit} bytes"
        );
        return Err(Refusal::HandlerFailed(FailureKind::ResponseTooLarge));
    }
    let (app_name, id) = (app.name().clone(), request_id.clone());
    Ok(response.map(|body| {
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .map_err(move |error| {
                if error.is::<LengthLimitError>() {
                    tracing::error!(
                        app = &*app_name,
                        request_id = &*id,
                        kind = "response too large",
                        "response cut off: the body grew past the app's limit of {limit} bytes"
                    );
                    BodyError::HttpResponseBodySize(Some(limit))
                } else {
                    match error.downcast::<BodyError>() {
                        Ok(error) => *error,
                        Err(other) => BodyError::InternalError(Some(other.to_string())),
                    }
                }
            })
            .boxed_unsync()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_bounded_request_ids_are_taken_from_the_client() {
        for good in ["abc", "0f8e-11:trace.1_x", &"a".repeat(128)] {
            assert!(is_well_formed_request_id(good), "{good}");
        }
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ünïcode",
            &"a".repeat(129),
        ] {
            assert!(!is_well_formed_request_id(bad), "{bad}");
        }
    }
}
