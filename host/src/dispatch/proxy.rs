//! A route to a service: the request goes over loopback to the address
//! where the service answers HTTP (its `http` key), and the answer comes
//! back, under the route's limits. What the host adds to every request
//! stays the host's: the request id (sent on as `x-request-id`), the
//! access line, the metrics and the route's concurrency cap.
//!
//! - The host is the edge: the client's own forwarding headers
//!   (`forwarded`, `x-forwarded-*`) and the host's headers
//!   (`x-request-id`, `x-serverless-route`, `x-serverless-params`) are
//!   replaced by the host's values; hop-by-hop headers are not forwarded
//!   either way.
//! - A service that is not running, or not accepting connections, gives
//!   `503` with `Retry-After`; one that breaks the exchange or answers with
//!   something that is not a final HTTP response, `502`; one that has not
//!   started its answer (its response head) within the route's `timeout`,
//!   `504`. The body then streams without a deadline, held to
//!   `max_response_body`: a declared length past it is a `502`, a body that
//!   grows past it is cut off and logged.
//! - The access line is written once the body has gone out (or the client
//!   has gone), with the bytes sent.
//! - Connections to the service are kept open and reused (up to
//!   [`IDLE_PER_SERVICE`] idle ones, each closed after [`IDLE_TIMEOUT`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CONNECTION, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serverless_config::ServiceRoute;
use serverless_router::RouteMatch;
use serverless_runtime::{BodyError, ResponseBody};

use super::identity::REQUEST_ID_HEADER;
use super::refusal::Refusal;
use super::wasi_http::{PARAMS_HEADER, ROUTE_HEADER};
use super::{RequestBody, Served, Stats};
use crate::routes::Target;

/// How many idle connections to one service the host keeps for reuse.
pub(crate) const IDLE_PER_SERVICE: usize = 32;

/// How long an idle connection to a service is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A request body on its way to a service.
type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The forwarding headers a client might send, which the host replaces.
const FORWARDING: [&str; 4] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// The connections to one service, kept for reuse.
pub(crate) type ProxyClient = Client<HttpConnector, ProxyBody>;

/// A client for one service's connections.
pub(crate) fn client() -> ProxyClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // On loopback a connection is made or refused at once; one that waits
    // is a service whose backlog is full: unavailable.
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(IDLE_PER_SERVICE)
        .build(connector)
}

/// One route to a service, with its connections.
pub(crate) struct ServiceProxy {
    route: ServiceRoute,
    name: Arc<str>,
    service: Arc<str>,
    /// Whether the service is running (its supervisor keeps it).
    up: Arc<AtomicBool>,
    client: ProxyClient,
}

impl ServiceProxy {
    /// The proxy for `route`; `up` says whether its service runs.
    /// The proxy for `route`; `up` says whether its service runs, and
    /// `client` holds the connections to it, shared by every route to the
    /// same service.
    pub(crate) fn new(
        route: ServiceRoute,
        up: Arc<AtomicBool>,
        client: ProxyClient,
    ) -> ServiceProxy {
        ServiceProxy {
            name: route.name.as_str().into(),
            service: route.service.as_str().into(),
            route,
            up,
            client,
        }
    }

    /// The route's app name.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The service's name.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Where the service answers HTTP.
    pub(crate) fn address(&self) -> SocketAddr {
        self.route.address
    }

    /// The route's own concurrency cap.
    pub(crate) fn max_concurrency(&self) -> Option<u32> {
        self.route.max_concurrency
    }

    /// The largest request body the route accepts.
    pub(crate) fn max_request_body(&self) -> u64 {
        self.route.max_request_body
    }

    /// Whether the service is running now.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Sends the request to the service and returns its answer, or the
    /// refusal the client gets instead (the reason is logged here).
    pub(super) async fn forward<B: RequestBody>(
        &self,
        request: Request<B>,
        found: RouteMatch<'_, Target>,
        request_id: &Arc<str>,
        peer: Option<SocketAddr>,
    ) -> Result<Served, Refusal> {
        let route: Arc<str> = found.pattern.as_str().into();
        let log = |what: &str| {
            tracing::warn!(
                app = &*self.name,
                service = &*self.service,
                request_id = &**request_id,
                "{what}"
            );
        };
        if !self.is_up() {
            log(&format!(
                "refused: service `{}` is not running",
                self.service
            ));
            return Err(Refusal::ServiceDown);
        }
        let request = self.outgoing(request, &found, request_id, peer)?;
        let answer = tokio::time::timeout(self.route.timeout, self.client.request(request)).await;
        let response = match answer {
            Err(_) => {
                log(&format!(
                    "request failed: service `{}` did not start its answer within the route's timeout of {:?}",
                    self.service, self.route.timeout
                ));
                return Err(Refusal::TimedOut);
            }
            Ok(Err(error)) => return Err(self.refusal(&error, request_id)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_informational() {
            log(&format!(
                "request failed: service `{}` answered {}, which the host does not pass on",
                self.service,
                response.status().as_u16()
            ));
            return Err(Refusal::BadGateway);
        }
        let limit = self.route.max_response_body;
        let declared = super::declared_length(response.headers());
        if declared.is_some_and(|length| length > limit) {
            log(&format!(
                "request failed: service `{}` declared a body longer than the route's max_response_body of {limit} bytes",
                self.service
            ));
            return Err(Refusal::BadGateway);
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let (name, service, id) = (self.name.clone(), self.service.clone(), request_id.clone());
        let (ended, end) = tokio::sync::oneshot::channel();
        let body: ResponseBody = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .map_err(move |error| {
                if error.is::<LengthLimitError>() {
                    tracing::error!(
                        app = &*name,
                        service = &*service,
                        request_id = &*id,
                        "response cut off: the service's body grew past the route's max_response_body of {limit} bytes"
                    );
                    BodyError::HttpResponseBodySize(Some(limit))
                } else {
                    match error.downcast::<hyper::Error>() {
                        Ok(error) => BodyError::Hyper(*error),
                        Err(other) => BodyError::InternalError(Some(other.to_string())),
                    }
                }
            })
            .boxed_unsync();
        let body = Watched {
            inner: body,
            bytes: 0,
            ended: Some(ended),
        }
        .boxed_unsync();
        Ok(Served {
            response: Response::from_parts(parts, body),
            app: self.name.clone(),
            route,
            bytes_in: None,
            stats: Stats::Proxied(end),
        })
    }

    /// The request as the service gets it: its URI on the service's
    /// address, the host's headers set, its body held to the route's limit.
    fn outgoing<B: RequestBody>(
        &self,
        request: Request<B>,
        found: &RouteMatch<'_, Target>,
        request_id: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Request<ProxyBody>, Refusal> {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        parts.uri =
            Uri::try_from(format!("http://{}{path}", self.route.address)).map_err(|error| {
                tracing::warn!(
                    app = &*self.name,
                    request_id,
                    "refused: the request's path does not make a URI for the service: {error}"
                );
                Refusal::BadPath
            })?;
        parts.version = http::Version::HTTP_11;
        let headers = &mut parts.headers;
        let host = headers.get(HOST).cloned();
        strip_hop_by_hop(headers);
        // The host answered any `Expect: 100-continue` itself.
        headers.remove(EXPECT);
        for name in FORWARDING
            .into_iter()
            .chain([REQUEST_ID_HEADER, ROUTE_HEADER, PARAMS_HEADER])
        {
            headers.remove(name);
        }
        let params = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&found.params)
            .finish();
        let forwarded_for = peer.map(|peer| peer.ip().to_string());
        for (name, value) in [
            (REQUEST_ID_HEADER, Some(request_id)),
            (ROUTE_HEADER, Some(found.pattern.as_str())),
            (PARAMS_HEADER, Some(params.as_str())),
            ("x-forwarded-for", forwarded_for.as_deref()),
            ("x-forwarded-proto", Some("http")),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        if let Some(host) = host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host);
        }
        let limit = self.route.max_request_body;
        let body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }

    /// The refusal for a failed exchange, logged with its cause.
    fn refusal(&self, error: &hyper_util::client::legacy::Error, request_id: &str) -> Refusal {
        let cause = causes(error);
        if has_source::<LengthLimitError>(error) {
            tracing::info!(
                app = &*self.name,
                request_id,
                limit = self.route.max_request_body,
                "request body is larger than the app's limit"
            );
            return Refusal::TooLarge;
        }
        if error.is_connect() {
            tracing::warn!(
                app = &*self.name,
                service = &*self.service,
                request_id,
                "refused: service `{}` is not accepting connections at {}: {cause}",
                self.service,
                self.route.address
            );
            return Refusal::ServiceDown;
        }
        tracing::error!(
            app = &*self.name,
            service = &*self.service,
            request_id,
            "request failed: service `{}` gave no valid HTTP response: {cause}",
            self.service
        );
        Refusal::BadGateway
    }
}

/// How many bytes of a service's response body went out, once it has
/// ended (or been dropped, when the client went away first).
pub(super) type BodyEnd = tokio::sync::oneshot::Receiver<u64>;

/// A service's response body on its way to the client, counting its bytes
/// for the access line, which is written when it ends.
struct Watched {
    inner: ResponseBody,
    bytes: u64,
    ended: Option<tokio::sync::oneshot::Sender<u64>>,
}

impl Watched {
    fn end(&mut self) {
        if let Some(ended) = self.ended.take() {
            let _ = ended.send(self.bytes);
        }
    }
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            std::task::Poll::Ready(Some(Err(_)) | None) => self.end(),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.end();
    }
}

/// Whether `error` or one of its sources is an `E`.
fn has_source<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// `error` and its sources, `: `-separated.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// Removes the headers that describe one connection, not the message
/// (RFC 9110 7.6.1): those `Connection` names, and the standard ones.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
            ("content-type", "text/plain"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept", "content-type"]);
    }

    #[test]
    fn causes_name_every_source() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(causes(&error), "client error (Connect): connection refused");
        assert!(has_source::<std::io::Error>(&error));
        assert!(!has_source::<LengthLimitError>(&error));
    }
}
