//! One HTTP request: give it an id, route it, apply the app's body limit,
//! admit it under the concurrency caps, run the app in the world it
//! implements, and turn the outcome into a response and an access record.
//!
//! - [`identity`]: the request id and the access record.
//! - [`handler`]: the handler world's path (body read before admission).
//! - [`wasi_http`]: the wasi:http world's path and the response limits.
//! - [`proxy`]: a route to a service, over loopback to its HTTP server.
//! - [`refusal`]: what went wrong before or around the handler, and the
//!   response the client gets.

mod handler;
mod identity;
mod proxy;
mod publish;
mod refusal;
mod wasi_http;

pub(crate) use proxy::{ProxyClient, ServiceProxy, client as proxy_client};
pub(crate) use publish::Publisher;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use serverless_router::Lookup;
use serverless_runtime::{AppKind, InvocationStats, LaterStats, ResponseBody, World};
use tracing::Instrument as _;

use handler::BodyBudget;
use identity::{AccessRecord, REQUEST_ID_HEADER, request_id};
use refusal::{Refusal, log_too_large};

use crate::admin::{AppSeries, Metrics};
use crate::admission::{self, Admitted, Gate};
use crate::catalog::previews::{PREVIEW_HEADER, PREVIEW_TOKEN_HEADER, Previews};
use crate::invocations::Invocations;
use crate::routes::{Routes, Target};

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

/// A request an app answered, with what its access record needs besides
/// the response: the typed outcome of routing and running.
struct Served {
    response: Response<ResponseBody>,
    app: Arc<str>,
    /// The route pattern that matched.
    route: Arc<str>,
    /// The request body's size, when it was read whole (handler world).
    bytes_in: Option<u64>,
    stats: Stats,
}

/// A guest's figures for the access line.
enum Stats {
    /// Known with the response (handler world).
    Known(InvocationStats),
    /// Known once a wasi:http guest has finished writing its body.
    Later(LaterStats),
    /// A service answered (no instance ran): the bytes of its body are
    /// known once it has gone out.
    Proxied(proxy::BodyEnd),
    /// A `publish_to` route published the body (no instance ran).
    Published,
}

/// A request no app answered: why, and the app it was for, if routing got
/// that far.
struct Refused {
    refusal: Refusal,
    app: Option<Arc<str>>,
}

impl Refused {
    /// Refused before any app was chosen.
    fn early(refusal: Refusal) -> Refused {
        Refused { refusal, app: None }
    }
}

/// A whole body in the type every response uses.
fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Routes requests to apps and admits them under the concurrency caps.
pub(crate) struct Dispatcher {
    /// Replaced whole by a reload; a request keeps the table it started
    /// with, so it finishes on the instances it began on.
    table: RwLock<Arc<Table>>,
    global: Gate,
    queue_timeout: Duration,
    /// The bytes of handler-world bodies being read before admission.
    pending_bodies: BodyBudget,
    metrics: Arc<Metrics>,
    /// The series of requests that matched no app.
    unrouted: AppSeries,
    /// The server's invocation store, where each request's log lines go.
    invocations: Arc<Invocations>,
    /// The catalog's versions that preview requests may try.
    previews: std::sync::OnceLock<Arc<Previews>>,
}

/// The routes being served, with what the dispatcher keeps per app.
struct Table {
    routes: Arc<Routes>,
    per_app: HashMap<Arc<str>, PerApp>,
}

/// What an app's requests share besides the app itself.
#[derive(Clone)]
struct PerApp {
    /// Its concurrency cap, if it has one.
    gate: Option<Arc<Gate>>,
    /// Its request series.
    series: Arc<AppSeries>,
}

impl Dispatcher {
    /// `max_instances` caps running requests across all apps; a request
    /// past a cap waits up to `queue_timeout` for a slot. Handler-world
    /// bodies being read before admission hold at most
    /// `max_pending_body_bytes` together. Each request's lines are
    /// collected in `invocations`.
    pub(crate) fn new(
        routes: Routes,
        max_instances: u32,
        queue_timeout: Duration,
        max_pending_body_bytes: u64,
        metrics: Arc<Metrics>,
        invocations: Arc<Invocations>,
    ) -> Dispatcher {
        let per_app = per_app(&routes, &HashMap::new(), &metrics);
        Dispatcher {
            previews: std::sync::OnceLock::new(),
            table: RwLock::new(Arc::new(Table {
                routes: Arc::new(routes),
                per_app,
            })),
            global: Gate::new(max_instances),
            queue_timeout,
            pending_bodies: BodyBudget::new(max_pending_body_bytes),
            unrouted: metrics.series(None),
            metrics,
            invocations,
        }
    }

    /// Serves `routes` from the next request on. An app that keeps its
    /// name and concurrency cap keeps its gate, so requests running across
    /// the swap still count against it; an app that keeps its name keeps
    /// its series.
    pub(crate) fn replace_routes(&self, routes: Routes) {
        let mut table = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let per_app = per_app(&routes, &table.per_app, &self.metrics);
        *table = Arc::new(Table {
            routes: Arc::new(routes),
            per_app,
        });
    }

    /// Lets requests with a `serverless-preview` header try versions of
    /// the catalog's apps that are not active.
    pub(crate) fn set_previews(&self, previews: Arc<Previews>) {
        let _ = self.previews.set(previews);
    }

    /// The table a preview request runs in: the version's own routes,
    /// with the live table's gates and series for its app.
    async fn preview_table<B>(
        &self,
        request: &mut Request<B>,
        live: &Table,
        peer: Option<SocketAddr>,
    ) -> Option<Result<Arc<Table>, Refusal>> {
        if !request.headers().contains_key(PREVIEW_HEADER) {
            // A token sent without the header still never reaches the app.
            request.headers_mut().remove(PREVIEW_TOKEN_HEADER);
            return None;
        }
        let Some(previews) = self.previews.get() else {
            return Some(Err(Refusal::Preview(
                http::StatusCode::BAD_REQUEST,
                "this host has no catalog of versions to preview (start it with --state-dir)"
                    .to_owned(),
            )));
        };
        let resolved = previews.resolve(request.headers(), peer).await;
        // The app never sees the preview's headers, its token least.
        request.headers_mut().remove(PREVIEW_HEADER);
        request.headers_mut().remove(PREVIEW_TOKEN_HEADER);
        Some(
            resolved
                .map(|routes| {
                    let per_app = per_app(&routes, &live.per_app, &self.metrics);
                    Arc::new(Table { routes, per_app })
                })
                .map_err(|(status, message)| Refusal::Preview(status, message)),
        )
    }

    /// The table being served now.
    fn current(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Answers one request from `peer` (the client's address, when it
    /// came over the network). Never fails: every problem becomes a
    /// response.
    pub(crate) async fn dispatch<B: RequestBody>(
        &self,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let request_id = request_id(request.headers());
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let collecting = self.invocations.begin(&request_id);
        let mut request = request;
        let live = self.current();
        let (table, preview_refused) = match self.preview_table(&mut request, &live, peer).await {
            None => (live, None),
            Some(Ok(preview)) => (preview, None),
            Some(Err(refusal)) => (live, Some(refusal)),
        };
        // Every line of the request, the runtime's and the guest's, is
        // emitted in the invocation's span, which keys its log record.
        let span = collecting.span();
        let outcome = match preview_refused {
            Some(refusal) => Err(Refused::early(refusal)),
            None => {
                self.route_and_run(&table, request, &request_id, peer)
                    .instrument(span.clone())
                    .await
            }
        };
        let (mut response, app, route, bytes_in, stats) = match outcome {
            Ok(Served {
                response,
                app,
                route,
                bytes_in,
                stats,
            }) => (response, Some(app), Some(route), bytes_in, Some(stats)),
            Err(Refused { refusal, app }) => {
                if let (Some(kind), Some(app)) = (refusal.failure_kind(), &app) {
                    self.metrics.record_failure(app, kind);
                }
                (refusal.into_response(), app, None, None, None)
            }
        };
        let series = app
            .as_ref()
            .and_then(|name| table.per_app.get(name))
            .map_or(&self.unrouted, |per_app| &*per_app.series);
        self.metrics
            .record(series, response.status().as_u16(), started.elapsed());
        drop(table);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let record = AccessRecord {
            collecting,
            request_id,
            app,
            route,
            method,
            path,
            status: response.status().as_u16(),
            started,
            bytes_in,
            // Streaming (wasi:http) bodies have no size yet.
            bytes_out: hyper::body::Body::size_hint(response.body()).exact(),
        };
        match stats {
            // A wasi:http guest is still writing its body: its line comes
            // when it has finished.
            Some(Stats::Later(later)) => {
                tokio::spawn(
                    async move {
                        let stats = later.wait().await;
                        record.emit(stats);
                    }
                    .instrument(span),
                );
            }
            Some(Stats::Proxied(end)) => {
                let mut record = record;
                tokio::spawn(
                    async move {
                        if let Ok(bytes) = end.await {
                            record.bytes_out = Some(bytes);
                        }
                        record.emit(None);
                    }
                    .instrument(span),
                );
            }
            Some(Stats::Known(stats)) => record.emit(Some(stats)),
            Some(Stats::Published) => record.emit(None),
            None => record.emit(None),
        }
        response
    }

    /// Routes the request, checks its declared size, admits it and runs
    /// it in its app's world.
    async fn route_and_run<B: RequestBody>(
        &self,
        table: &Table,
        request: Request<B>,
        request_id: &Arc<str>,
        peer: Option<SocketAddr>,
    ) -> Result<Served, Refused> {
        if let Some(hosts) = wrong_host_count(&request) {
            let version = request.version();
            tracing::info!(
                request_id = &**request_id,
                "refused: an {version:?} request with {hosts} Host headers"
            );
            return Err(Refused::early(Refusal::BadHost {
                http_1_1: version == http::Version::HTTP_11,
            }));
        }
        let found = match table
            .routes
            .lookup(request.method().as_str(), request.uri().path())
        {
            Lookup::Found(found) => found,
            Lookup::NotFound => return Err(Refused::early(Refusal::NotFound)),
            Lookup::MethodNotAllowed(allowed) => {
                return Err(Refused::early(Refusal::MethodNotAllowed(
                    allowed.to_allow_header(),
                )));
            }
            Lookup::BadPath => return Err(Refused::early(Refusal::BadPath)),
        };
        let name = found.value.name().clone();
        let refused = |refusal| Refused {
            refusal,
            app: Some(name.clone()),
        };
        let limit = match found.value {
            Target::App(app) => app.max_request_body(),
            Target::Service(proxy) => proxy.max_request_body(),
            Target::Publish(publisher) => publisher.max_request_body(),
        };
        if declared_length(request.headers()).is_some_and(|length| length > limit) {
            log_too_large(&name, request_id, limit);
            return Err(refused(Refusal::TooLarge));
        }
        let app = match found.value {
            Target::App(app) => app.clone(),
            Target::Publish(publisher) => {
                let publisher = publisher.clone();
                return publisher
                    .publish(request, found, request_id)
                    .await
                    .map_err(refused);
            }
            Target::Service(proxy) => {
                let proxy = proxy.clone();
                // No instance runs: only the route's own cap applies.
                let Some(_admitted) = self.admit(table, &name, request_id, false).await else {
                    return Err(refused(Refusal::Busy));
                };
                return proxy
                    .forward(request, found, request_id, peer)
                    .await
                    .map_err(refused);
            }
        };
        match app.kind() {
            AppKind::Component(World::Handler) | AppKind::Legacy => {
                // The whole body is read before the request takes a slot,
                // under the app's timeout and within the host-wide budget
                // of bodies being read: a client that trickles or stalls
                // its upload holds only its own connection and what it
                // sent.
                let (parts, body) = request.into_parts();
                let body = handler::read_body(&app, body, request_id, &self.pending_bodies)
                    .await
                    .map_err(refused)?;
                let Some(admitted) = self.admit(table, &name, request_id, true).await else {
                    return Err(refused(Refusal::Busy));
                };
                let _running = self.metrics.in_flight();
                let body = body.into_bytes();
                handler::run_handler(&app, parts, body, found, request_id, admitted)
                    .await
                    .map_err(refused)
            }
            AppKind::Component(World::WasiHttp) => {
                // The body streams to the guest, whose deadline covers its
                // reads as every other host call.
                let Some(admitted) = self.admit(table, &name, request_id, true).await else {
                    return Err(refused(Refusal::Busy));
                };
                let _running = self.metrics.in_flight();
                wasi_http::run_wasi_http(&app, request, found, request_id, admitted)
                    .await
                    .map_err(refused)
            }
            // Routes are loaded as handlers; a subscription handler is
            // never one, and would be a host bug.
            AppKind::Subscriber => {
                tracing::error!(request_id = %request_id, app = %name, "a route leads to a subscription handler");
                Err(refused(Refusal::HandlerFailed(
                    serverless_runtime::FailureKind::WrongWorld,
                )))
            }
        }
    }

    /// Admits a request of app `name` through its gate and, when it runs
    /// an `instance`, the global one.
    async fn admit(
        &self,
        table: &Table,
        name: &Arc<str>,
        request_id: &str,
        instance: bool,
    ) -> Option<Admitted> {
        let mut gates: Vec<&Gate> = Vec::with_capacity(2);
        gates.extend(
            table
                .per_app
                .get(name)
                .and_then(|per_app| per_app.gate.as_deref()),
        );
        if instance {
            gates.push(&self.global);
        }
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

/// The body length a message's `Content-Length` declares, if it declares
/// one the host can read.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// How many `Host` headers a request has, when that is wrong (RFC 9112
/// 3.2: the server answers `400`): more than one whatever the version, or
/// none in HTTP/1.1. HTTP/1.0 requests may go without.
fn wrong_host_count<B>(request: &Request<B>) -> Option<usize> {
    let hosts = request.headers().get_all(HOST).iter().count();
    let missing = hosts == 0 && request.version() == http::Version::HTTP_11;
    (missing || hosts > 1).then_some(hosts)
}

/// What the dispatcher keeps for each app of `routes`: a gate for each
/// cap (an app's gate from `previous` when its cap is unchanged) and its
/// series (from `previous` when it had some).
fn per_app(
    routes: &Routes,
    previous: &HashMap<Arc<str>, PerApp>,
    metrics: &Metrics,
) -> HashMap<Arc<str>, PerApp> {
    routes
        .routes()
        .map(|(_, _, app)| {
            let kept = previous.get(app.name());
            let gate = app.max_concurrency().map(|cap| {
                kept.and_then(|kept| kept.gate.clone())
                    .filter(|gate| gate.cap() == cap)
                    .unwrap_or_else(|| Arc::new(Gate::new(cap)))
            });
            let series = kept.map_or_else(
                || Arc::new(metrics.series(Some(app.name()))),
                |kept| kept.series.clone(),
            );
            (app.name().clone(), PerApp { gate, series })
        })
        .collect()
}
