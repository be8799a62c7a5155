//! The admin listener: liveness, readiness, Prometheus metrics and the live
//! route table. It has an address of its own (loopback by default), so it
//! is never exposed along with the apps.
//!
//! - `GET /healthz`: `200` while the process serves at all.
//! - `GET /readyz`: `200` once every app is loaded and the listener is up,
//!   and while every service that restarts is running; `503` before that,
//!   while one is down, and while draining.
//! - `GET /services`: each service's state, runs and last end, as JSON.
//! - `GET /metrics`: the OpenMetrics text format.
//! - `GET /routes`: the route table as JSON.
//! - `GET /logs/APP`: the app's last invocations with their log lines, as
//!   JSON; with `?follow`, then every new one as it finishes, as
//!   server-sent events.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serverless_runtime::{DeniedVia, FailureKind, RuntimeCounters};

use crate::invocations::Invocations;
use crate::routes::{Routes, Target};
use tokio::net::TcpListener;

/// Labels of the per-request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: String,
    status: u16,
}

/// Labels of per-app series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

/// Labels of the trap counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrapLabels {
    app: String,
    kind: String,
}

/// Labels of per-service series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// Labels of per-topic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// Labels of per-subscription series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    subscription: String,
}

/// Labels of the outbound refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabels {
    via: String,
}

/// What the host counts; the dispatcher records into it.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<AppLabels, Histogram>,
    traps: Family<TrapLabels, Counter>,
    in_flight: Gauge,
    /// Refusals are counted by the runtime; brought up to its totals at
    /// each scrape.
    outbound_denied: Family<DeniedLabels, Counter>,
    /// Each service's state, restarts and uptime, set at each scrape.
    service_up: Family<ServiceLabels, Gauge>,
    service_restarts: Family<ServiceLabels, Counter>,
    service_uptime: Family<ServiceLabels, Gauge>,
    /// The services that have series, to drop those a reload removed.
    services_shown: Mutex<Vec<String>>,
    /// Counted by the runtime too; brought up to date at each scrape.
    slow_lane_moves: Counter,
    /// Counted by the log writer; brought up to date at each scrape.
    log_lines_dropped: Counter,
    /// The runtime's own counts, copied into the series above.
    runtime: RuntimeCounters,
    /// The broker's counts per topic and queue depths, copied at each
    /// scrape.
    broker: Option<serverless_messaging::Broker>,
    messages_published: Family<TopicLabels, Counter>,
    messages_unrouted: Family<TopicLabels, Counter>,
    messages_refused: Family<TopicLabels, Counter>,
    queue_depth: Family<SubscriptionLabels, Gauge>,
    /// What the subscription handlers did per topic, copied at each
    /// scrape, once the subscriptions run.
    deliveries: OnceLock<Arc<serverless_messaging::PerTopic<serverless_messaging::DeliveryCounts>>>,
    /// `delivered`, `failed`, `retried`, `dead_lettered`, `dropped`.
    delivery_series: [Family<TopicLabels, Counter>; 5],
    /// Messages from NATS that found a subscription's queue full.
    messages_overflowed: Family<TopicLabels, Counter>,
    /// Serialises bringing the copies up to date, so that two scrapes at
    /// once do not both add the same difference.
    copying: Mutex<()>,
}

/// One app's request series, resolved from their families once.
/// Handles share their series, so an app's copies from before and after a
/// reload count in the same place.
pub(crate) struct AppSeries {
    app: String,
    latency: OnceLock<Histogram>,
    /// One counter per status the app has answered with: a handful.
    by_status: Mutex<Vec<(u16, Counter)>>,
}

/// Raises `counter` to the runtime's `total`, which only grows.
fn catch_up(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl Metrics {
    /// Empty series, with the pool sized for `max_instances`; the counts
    /// the runtime keeps itself are read from `runtime`.
    pub(crate) fn new(
        max_instances: u32,
        runtime: RuntimeCounters,
        broker: Option<serverless_messaging::Broker>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("serverless");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by app (\"-\" when no route matched) and status",
            requests.clone(),
        );
        let latency = Family::<AppLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 27 s.
            Histogram::new(exponential_buckets(0.00005, 2.0, 20))
        });
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head, by app",
            latency.clone(),
        );
        let traps = Family::<TrapLabels, Counter>::default();
        registry.register(
            "guest_failures",
            "Requests whose guest failed, by app and kind (deadline, memory limit, unreachable, ...)",
            traps.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "instances_in_flight",
            "Requests being handled by an instance now",
            in_flight.clone(),
        );
        let pool_capacity: Gauge = Gauge::default();
        pool_capacity.set(i64::from(max_instances));
        registry.register(
            "pool_capacity_instances",
            "How many instances the pool holds (--max-instances)",
            pool_capacity.clone(),
        );
        let outbound_denied = Family::<DeniedLabels, Counter>::default();
        registry.register(
            "outbound_denied",
            "Outbound attempts the policy refused since the host started, by interface",
            outbound_denied.clone(),
        );
        let slow_lane_moves = Counter::default();
        registry.register(
            "slow_lane_moves",
            "Requests whose guest ran past four epoch slices without waiting and moved to the low-priority slow lane, since the host started",
            slow_lane_moves.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped since the host started because the log writer could not keep up",
            log_lines_dropped.clone(),
        );
        let service_up = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "service_up",
            "Whether each service is running now (1) or down (0)",
            service_up.clone(),
        );
        let service_restarts = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "service_restarts",
            "How often each service was started again since the host started",
            service_restarts.clone(),
        );
        let service_uptime = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "service_uptime_seconds",
            "How long each service's current run has been running, in whole seconds",
            service_uptime.clone(),
        );
        let messages_published = Family::<TopicLabels, Counter>::default();
        registry.register(
            "messages_published",
            "Messages published on each topic of the embedded broker (delivered to its subscriptions, or to none)",
            messages_published.clone(),
        );
        let messages_unrouted = Family::<TopicLabels, Counter>::default();
        registry.register(
            "messages_unrouted",
            "Messages published on each topic that no subscription matched",
            messages_unrouted.clone(),
        );
        let messages_refused = Family::<TopicLabels, Counter>::default();
        registry.register(
            "messages_refused",
            "Publishes on each topic refused because a subscription's queue stayed full",
            messages_refused.clone(),
        );
        let queue_depth = Family::<SubscriptionLabels, Gauge>::default();
        registry.register(
            "subscription_queue_depth",
            "Messages waiting in each subscription's queue",
            queue_depth.clone(),
        );
        let delivery_series: [Family<TopicLabels, Counter>; 5] = Default::default();
        for (series, (name, help)) in delivery_series.iter().zip([
            (
                "messages_delivered",
                "Deliveries of each topic's messages that a subscription handler finished",
            ),
            (
                "messages_failed",
                "Deliveries of each topic's messages that failed (a trap, a timeout or an error returned)",
            ),
            (
                "messages_retried",
                "Failed deliveries of each topic's messages that were tried again",
            ),
            (
                "messages_dead_lettered",
                "Messages of each topic sent to a dead-letter topic after their last attempt failed",
            ),
            (
                "messages_dropped",
                "Messages of each topic given up on: the last attempt failed with no dead-letter topic, or the host stopped first",
            ),
        ]) {
            registry.register(name, help, series.clone());
        }
        let messages_overflowed = Family::<TopicLabels, Counter>::default();
        registry.register(
            "messages_overflowed",
            "Messages of each topic that NATS delivered while a subscription's queue was full, dropped (NATS delivers at most once)",
            messages_overflowed.clone(),
        );
        Metrics {
            broker,
            messages_overflowed,
            deliveries: OnceLock::new(),
            delivery_series,
            messages_published,
            messages_unrouted,
            messages_refused,
            queue_depth,
            service_up,
            service_restarts,
            service_uptime,
            services_shown: Mutex::new(Vec::new()),
            registry,
            requests,
            latency,
            traps,
            in_flight,
            outbound_denied,
            slow_lane_moves,
            log_lines_dropped,
            runtime,
            copying: Mutex::new(()),
        }
    }

    /// Reports what the subscription handlers do, from `counts`.
    pub(crate) fn count_deliveries(
        &self,
        counts: Arc<serverless_messaging::PerTopic<serverless_messaging::DeliveryCounts>>,
    ) {
        let _ = self.deliveries.set(counts);
    }

    /// The series of `app` (`None`: requests that matched no route), to be
    /// kept with the app and passed to [`Metrics::record`]. They join the
    /// scrape only once a request has counted in them.
    pub(crate) fn series(&self, app: Option<&str>) -> AppSeries {
        AppSeries {
            app: app.unwrap_or("-").to_owned(),
            latency: OnceLock::new(),
            by_status: Mutex::new(Vec::new()),
        }
    }

    /// Counts an answered request in `series`. The families are searched
    /// only the first time the app answers with each status, so a request
    /// neither hashes labels nor allocates.
    pub(crate) fn record(&self, series: &AppSeries, status: u16, took: Duration) {
        let counter = {
            let mut by_status = series
                .by_status
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match by_status.iter().find(|(seen, _)| *seen == status) {
                Some((_, counter)) => counter.clone(),
                None => {
                    let counter = self
                        .requests
                        .get_or_create(&RequestLabels {
                            app: series.app.clone(),
                            status,
                        })
                        .clone();
                    by_status.push((status, counter.clone()));
                    counter
                }
            }
        };
        counter.inc();
        series
            .latency
            .get_or_init(|| {
                self.latency
                    .get_or_create(&AppLabels {
                        app: series.app.clone(),
                    })
                    .clone()
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a guest failure of `kind`.
    pub(crate) fn record_failure(&self, app: &str, kind: FailureKind) {
        self.traps
            .get_or_create(&TrapLabels {
                app: app.to_owned(),
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    /// Marks a request as running until the guard drops.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Brings the service series up to `statuses`: a service that a
    /// reload removed loses its series.
    fn catch_up_services(&self, statuses: &[crate::services::Status]) {
        let mut shown = self
            .services_shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shown.retain(|name| {
            let listed = statuses.iter().any(|status| &*status.name == name);
            if !listed {
                let labels = ServiceLabels {
                    service: name.clone(),
                };
                self.service_up.remove(&labels);
                self.service_restarts.remove(&labels);
                self.service_uptime.remove(&labels);
            }
            listed
        });
        for status in statuses {
            if !shown.iter().any(|name| *name == *status.name) {
                shown.push(status.name.to_string());
            }
            let labels = ServiceLabels {
                service: status.name.to_string(),
            };
            self.service_up
                .get_or_create(&labels)
                .set(i64::from(status.running_since.is_some()));
            // A service removed and added again between two scrapes counts
            // from zero: its counter starts over, as a restarted process's.
            if self.service_restarts.get_or_create(&labels).get() > status.restarts() {
                self.service_restarts.remove(&labels);
            }
            catch_up(
                &self.service_restarts.get_or_create(&labels),
                status.restarts(),
            );
            let uptime = status
                .running_since
                .map_or(0, |since| since.elapsed().as_secs());
            self.service_uptime
                .get_or_create(&labels)
                .set(i64::try_from(uptime).unwrap_or(i64::MAX));
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        {
            let _copying = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
            for via in DeniedVia::ALL {
                let counter = self.outbound_denied.get_or_create(&DeniedLabels {
                    via: via.name().to_owned(),
                });
                catch_up(&counter, self.runtime.denied(via));
            }
            catch_up(&self.slow_lane_moves, self.runtime.slow_lane_moves());
            catch_up(&self.log_lines_dropped, crate::logging::dropped());
            if let Some(broker) = &self.broker {
                for (topic, counts) in broker.topic_counts() {
                    let labels = TopicLabels { topic };
                    catch_up(
                        &self.messages_published.get_or_create(&labels),
                        counts.published,
                    );
                    catch_up(
                        &self.messages_unrouted.get_or_create(&labels),
                        counts.unrouted,
                    );
                    catch_up(
                        &self.messages_refused.get_or_create(&labels),
                        counts.refused,
                    );
                }
                for (topic, total) in broker.overflowed() {
                    catch_up(
                        &self
                            .messages_overflowed
                            .get_or_create(&TopicLabels { topic }),
                        total,
                    );
                }
                if let Some(deliveries) = self.deliveries.get() {
                    for (topic, counts) in deliveries.snapshot() {
                        let labels = TopicLabels { topic };
                        for (series, total) in self.delivery_series.iter().zip([
                            counts.delivered,
                            counts.failed,
                            counts.retried,
                            counts.dead_lettered,
                            counts.dropped,
                        ]) {
                            catch_up(&series.get_or_create(&labels), total);
                        }
                    }
                }
                // Subscriptions come and go: the gauge shows those there now.
                self.queue_depth.clear();
                for (subscription, depth) in broker.depths() {
                    self.queue_depth
                        .get_or_create(&SubscriptionLabels { subscription })
                        .set(i64::try_from(depth).unwrap_or(i64::MAX));
                }
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The body of an admin response: whole, or an endless event stream.
pub(crate) type AdminBody = BoxBody<Bytes, Infallible>;

/// A body fed by a channel, for `/logs/APP?follow`.
pub(crate) struct ChannelBody(pub(crate) tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// The kept invocations of `app`, then each new one, as server-sent
/// events. The stream ends when the client goes away.
pub(crate) fn follow_logs(invocations: &Invocations, app: String) -> AdminBody {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let mut finished = invocations.subscribe();
    let kept = invocations.recent(&app);
    tokio::spawn(async move {
        let event = |invocation: &crate::invocations::Invocation| {
            Bytes::from(format!("data: {}\n\n", invocation.to_json()))
        };
        // A comment first, so the client knows it is following.
        if sender
            .send(Bytes::from_static(b": following\n\n"))
            .await
            .is_err()
        {
            return;
        }
        for invocation in &kept {
            if sender.send(event(invocation)).await.is_err() {
                return;
            }
        }
        loop {
            match finished.recv().await {
                Ok(invocation) if invocation.app() == app => {
                    if sender.send(event(&invocation)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let note = format!(": {missed} invocations were missed\n\n");
                    if sender.send(Bytes::from(note)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    ChannelBody(receiver).boxed()
}

/// Decrements the in-flight gauge when the request ends.
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The state the admin endpoints read.
pub(crate) struct Admin {
    ready: AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
    routes: std::sync::RwLock<String>,
    /// The server's invocation store, which `/logs/APP` reads.
    invocations: Arc<Invocations>,
    /// The services' states.
    services: Arc<crate::services::Statuses>,
    /// The broker that `/publish` and `/subscribe` reach.
    broker: Option<serverless_messaging::Broker>,
}

/// The services as the JSON `/services` serves.
fn services_json(statuses: &[crate::services::Status]) -> String {
    let entries: Vec<serde_json::Value> = statuses
        .iter()
        .map(|status| {
            serde_json::json!({
                "name": &*status.name,
                "state": if status.running_since.is_some() { "running" } else { "down" },
                "restart": match status.restart {
                    serverless_config::Restart::Always => "always",
                    serverless_config::Restart::OnFailure => "on-failure",
                    serverless_config::Restart::Never => "never",
                },
                "runs": status.runs,
                "restarts": status.restarts(),
                "uptime_seconds": status.running_since.map(|since| since.elapsed().as_secs()),
                "last_end": status.last_end,
            })
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

/// The route table as the JSON `/routes` serves.
fn routes_json(routes: &Routes) -> String {
    let entries: Vec<serde_json::Value> = routes
        .routes()
        .map(|(pattern, methods, target)| {
            let mut entry = serde_json::json!({
                "path": pattern.as_str(),
                "methods": methods.to_string(),
                "app": &**target.name(),
                "world": target.kind(),
            });
            match target {
                Target::App(app) => entry["component"] = app.component().into(),
                Target::Service(proxy) => {
                    entry["service"] = proxy.service().into();
                    entry["address"] = proxy.address().to_string().into();
                }
                Target::Publish(publisher) => {
                    entry["topic"] = publisher.topic().as_str().into();
                }
            }
            entry
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

impl Admin {
    /// Not ready until [`Admin::set_ready`]; `/logs/APP` reads
    /// `invocations`, `/publish` and `/subscribe` reach `broker`.
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        routes: &Routes,
        invocations: Arc<Invocations>,
        services: Arc<crate::services::Statuses>,
        broker: Option<serverless_messaging::Broker>,
    ) -> Admin {
        Admin {
            ready: AtomicBool::new(false),
            metrics,
            routes: std::sync::RwLock::new(routes_json(routes)),
            invocations,
            services,
            broker,
        }
    }

    /// Shows `routes` at `/routes` from now on (after a reload).
    pub(crate) fn set_routes(&self, routes: &Routes) {
        *self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = routes_json(routes);
    }

    /// The metrics, the services' series brought up to date.
    fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        self.metrics.catch_up_services(&self.services.snapshot());
        self.metrics.encode()
    }

    /// Whether `/readyz` answers `200`.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    fn answer(&self, request: &Request<hyper::body::Incoming>) -> Response<AdminBody> {
        let text = |status: StatusCode, content_type: &'static str, body: String| {
            let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        };
        const PLAIN: &str = "text/plain; charset=utf-8";
        if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN,
                "GET only\n".to_owned(),
            );
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".to_owned()),
            "/readyz" if self.ready.load(Ordering::SeqCst) && self.services.all_up() => {
                text(StatusCode::OK, PLAIN, "ready\n".to_owned())
            }
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                "not ready\n".to_owned(),
            ),
            "/services" => text(
                StatusCode::OK,
                "application/json",
                services_json(&self.services.snapshot()),
            ),
            "/metrics" => match self.metrics_text() {
                Ok(body) => text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(error) => {
                    tracing::error!("cannot encode the metrics: {error}");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        PLAIN,
                        "internal server error\n".to_owned(),
                    )
                }
            },
            path if path.starts_with("/logs/") => {
                let app = &path["/logs/".len()..];
                let follow = request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == "follow" || p == "follow=1"));
                if follow {
                    let mut response =
                        Response::new(follow_logs(&self.invocations, app.to_owned()));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                    return response;
                }
                let kept: Vec<serde_json::Value> = self
                    .invocations
                    .recent(app)
                    .iter()
                    .map(|invocation| invocation.to_json())
                    .collect();
                text(
                    StatusCode::OK,
                    "application/json",
                    serde_json::Value::Array(kept).to_string(),
                )
            }
            "/routes" => text(
                StatusCode::OK,
                "application/json",
                self.routes
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                PLAIN,
                "not found; try /healthz, /readyz, /metrics, /routes, /services, /logs/APP, /subscribe/PATTERN or POST /publish/TOPIC\n"
                    .to_owned(),
            ),
        }
    }

    /// Serves the admin endpoints on `listener` until the process exits.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("admin listener: cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admin = self.clone();
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move {
                    let response = match &admin.broker {
                        Some(broker) => match crate::taps::answer_tap(broker, request).await {
                            Ok(response) => response,
                            Err(request) => admin.answer(&request),
                        },
                        None => admin.answer(&request),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
