//! `wasi:http/outgoing-handler`: outbound HTTP requests from wasi:http
//! components, denied unless the operator's `--allow-http` rules allow the
//! destination.
//!
//! Each app has one pooled client, so connections are reused across its
//! requests. The client's connector resolves names itself and connects
//! only to addresses the app's policy allows (the same engine, special
//! ranges and normalisation as outbound TCP), over TLS for `https`.
//!
//! Timeouts: connecting (resolve, connect, TLS) is bounded by the smaller
//! of the guest's `connect-timeout` and the app's `tcp_connect_timeout`;
//! the wait for the response head by the guest's `first-byte-timeout`
//! (60 s by default); each wait between body frames by the smaller of the
//! guest's `between-bytes-timeout` and the app's `tcp_io_timeout`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use serverless_outbound::{Destination, HttpAllowlist, TcpAllowlist};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tracing::Level;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::denials::{Denials, DeniedVia};
use crate::handles::{HostHandle, HostHandles};
use crate::lanes::SlowLane;
use crate::resolve::{self, Refusal};
use crate::stdio::GuestOutput;

/// How long a response may take to start when the guest sets no limit.
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many idle connections to one backend the pool keeps; each is an
/// OS handle of the host-wide budget.
const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The future a `send_request` hook returns.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// One app's outbound HTTP: its rules per scheme and its pooled client.
pub struct HttpClient {
    rules: HttpAllowlist,
    policy: Arc<SchemePolicy>,
    client: Client<PolicyConnector, WasiBody>,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// The host-wide handle budget, for messages.
    handles_limit: usize,
}

tokio::task_local! {
    /// The connect timeout of the request on whose behalf the pooled
    /// client is opening a connection: the connector is shared by the
    /// app's requests and only sees the URI.
    static CONNECT_TIMEOUT: Duration;
}

/// The app's rules split by scheme, as TCP allowlists.
struct SchemePolicy {
    http: TcpAllowlist,
    https: TcpAllowlist,
}

impl SchemePolicy {
    fn for_uri(&self, uri: &Uri) -> &TcpAllowlist {
        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            &self.https
        } else {
            &self.http
        }
    }
}

/// Runs the client's connection tasks at normal priority on the host's
/// runtime, even when a request moved to the slow lane opened the
/// connection: pooled connections serve later requests too.
#[derive(Clone)]
struct ConnectionExecutor(Arc<SlowLane>);

impl<F> hyper::rt::Executor<F> for ConnectionExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        self.0.spawn_at_normal_priority(task);
    }
}

impl HttpClient {
    /// A client for one app with these rules; `connect_timeout` bounds
    /// resolving plus connecting plus the TLS handshake, `io_timeout` each
    /// wait between response body frames (a guest may ask for less).
    pub fn new(
        rules: HttpAllowlist,
        (connect_timeout, io_timeout): (Duration, Duration),
        slow_lane: Arc<SlowLane>,
        handles: Arc<HostHandles>,
    ) -> HttpClient {
        let policy = Arc::new(SchemePolicy {
            http: rules.for_scheme(false),
            https: rules.for_scheme(true),
        });
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let handles_limit = handles.limit();
        let connector = PolicyConnector {
            policy: policy.clone(),
            connect_timeout,
            tls: TlsConnector::from(Arc::new(tls)),
            handles,
        };
        let client = Client::builder(ConnectionExecutor(slow_lane))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(connector);
        HttpClient {
            rules,
            policy,
            client,
            connect_timeout,
            io_timeout,
            handles_limit,
        }
    }

    /// The rules, for messages.
    pub fn rules(&self) -> &HttpAllowlist {
        &self.rules
    }
}

/// One request's outbound HTTP: the app's client and where its log lines
/// go.
pub(crate) struct OutboundHttp {
    pub(crate) client: Arc<HttpClient>,
    pub(crate) output: GuestOutput,
    /// Where refusals are counted.
    pub(crate) denials: Arc<Denials>,
    /// The request's outbound HTTP requests in flight, at most the app's
    /// `max_tcp_connections`: each may hold a connection until its
    /// response body is done.
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
}

/// The destination of a request URI: its host and port (default by
/// scheme), normalised like any outbound destination. A port that is not
/// a number from 1 to 65535 makes the URI invalid; it never falls back to
/// the scheme's default.
fn destination(uri: &Uri) -> Result<Destination, Error> {
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    // `Uri::port` is `None` both without a port and with one that is not
    // a `u16`: read what the authority says after the host.
    let authority = uri.authority().map_or("", |a| a.as_str());
    // Userinfo (`user:password@`) comes before the host.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_and_port)| host_and_port);
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    let written = after_host
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty());
    let port = match written {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or(Error::HttpRequestUriInvalid)?,
        None => match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        },
    };
    format!("{host}:{port}")
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)
}

/// The smaller of the guest's limit, if it set one, and the app's.
fn smaller(guest: Option<Duration>, app: Duration) -> Duration {
    guest.map_or(app, |guest| guest.min(app))
}

/// How many writes to an outgoing body (a response's, or an outbound
/// request's) are buffered before the guest waits for the connection to
/// take them. wasmtime-wasi-http's default of one makes a guest that writes
/// 4 KiB at a time (the most `blocking-write-and-flush` takes) wait, and
/// wake the connection's task, at nearly every write.
const OUTGOING_BODY_BUFFER_CHUNKS: usize = 16;

/// The most one write to an outgoing body may hold. With
/// [`OUTGOING_BODY_BUFFER_CHUNKS`] it bounds what one body buffers:
/// 17 x 64 KiB, about half of wasmtime-wasi-http's default of two 1 MiB
/// writes.
const OUTGOING_BODY_CHUNK_SIZE: usize = 64 * 1024;

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_BODY_CHUNK_SIZE
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let output = self.output.clone();
        let client = self.client.clone();
        let denials = self.denials.clone();
        let shown = request.uri().to_string();
        let refuse = move |why: &str| {
            denials.count(DeniedVia::OutboundHttp);
            output.host_note(
                Level::WARN,
                "outbound-http",
                &format!("refused outbound HTTP request to {shown}: {why}"),
            );
            Error::HttpRequestDenied
        };
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
        let connect = smaller(
            options.and_then(|o| o.connect_timeout),
            client.connect_timeout,
        );
        let between_bytes = smaller(
            options.and_then(|o| o.between_bytes_timeout),
            client.io_timeout,
        );
        // Taken now, when the guest sends the request, and held until the
        // response body is done.
        let permit = self.in_flight.clone().try_acquire_owned();
        let note = self.output.clone();
        Box::new(async move {
            let Ok(permit) = permit else {
                note.host_note(
                    Level::WARN,
                    "outbound-http",
                    "refused an outbound HTTP request: this request already has as many in flight as the app's max_tcp_connections",
                );
                return Err(Error::ConnectionLimitReached);
            };
            let target = destination(request.uri())?;
            if client.rules.is_empty() {
                return Err(refuse("no --allow-http rule allows any request"));
            }
            // Check before queueing on the pool, so that a refused request
            // is logged with its request id; this needs no DNS, and the
            // connector checks every address of every connection it opens.
            let allowlist = client.policy.for_uri(request.uri());
            if let Err(Refusal::NotAllowed(why) | Refusal::Dns(why)) =
                resolve::precheck(allowlist, &target)
            {
                return Err(refuse(&why));
            }
            let sent = CONNECT_TIMEOUT.scope(connect, client.client.request(request));
            let response = match tokio::time::timeout(first_byte, sent).await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    let error = client_error(error, &refuse);
                    if let Error::ConnectionLimitReached = error {
                        note.host_note(
                            Level::WARN,
                            "outbound-http",
                            &format!("refused an outbound HTTP connection: the host's guests already hold {} OS handles, the host-wide limit kept below its open-file limit", client.handles_limit),
                        );
                    }
                    return Err(error);
                }
            };
            let response =
                response.map(|body| BetweenBytes::new(body, between_bytes, permit).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// A response body that fails with `connection-read-timeout` when the next
/// frame takes longer than the limit.
struct BetweenBytes {
    body: hyper::body::Incoming,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The request's in-flight slot, given back with the body.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl BetweenBytes {
    fn new(
        body: hyper::body::Incoming,
        limit: Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> BetweenBytes {
        BetweenBytes {
            body,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            _permit: permit,
        }
    }
}

impl hyper::body::Body for BetweenBytes {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.limit;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|frame| frame.map_err(|error| hyper_error(&error))))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The I/O error under `error`, if any.
fn io_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// The wasi:http error for an I/O error on an established connection.
fn io_error(error: &io::Error) -> Error {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Error::ConnectionTerminated,
        io::ErrorKind::TimedOut => Error::ConnectionReadTimeout,
        _ => Error::HttpProtocolError,
    }
}

/// Maps a pooled-client error to the wasi:http error the guest sees.
fn client_error(error: hyper_util::client::legacy::Error, refuse: &dyn Fn(&str) -> Error) -> Error {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(failure) = cause.downcast_ref::<ConnectFailure>() {
            return match failure {
                ConnectFailure::Refused(Refusal::NotAllowed(why)) => refuse(why),
                ConnectFailure::Refused(Refusal::Dns(message)) => Error::DnsError {
                    rcode: Some(message.clone()),
                    info_code: None,
                },
                ConnectFailure::TimedOut => Error::ConnectionTimeout,
                ConnectFailure::Io(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    Error::ConnectionRefused
                }
                ConnectFailure::Io(error) => {
                    Error::Connect(io::Error::new(error.kind(), error.to_string()))
                }
                ConnectFailure::Tls(error) => {
                    Error::Tls(io::Error::new(error.kind(), error.to_string()))
                }
                ConnectFailure::BadUri => Error::HttpRequestUriInvalid,
                ConnectFailure::HandleBudget(_) => Error::ConnectionLimitReached,
            };
        }
        if let Some(error) = cause.downcast_ref::<hyper::Error>() {
            return hyper_error(error);
        }
        source = cause.source();
    }
    Error::InternalError(Some(error.to_string()))
}

/// The wasi:http error for a hyper error: by what went wrong, as
/// wasmtime's own client maps them, never a bare `internal-error`.
fn hyper_error(error: &hyper::Error) -> Error {
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else if error.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if error.is_parse_too_large() {
        Error::HttpResponseHeaderSectionSize(None)
    } else if error.is_parse() || error.is_parse_status() {
        Error::HttpProtocolError
    } else if error.is_closed() || error.is_canceled() {
        Error::ConnectionTerminated
    } else if let Some(io) = io_cause(error) {
        io_error(io)
    } else {
        Error::HttpProtocolError
    }
}

/// Why the connector opened no connection.
#[derive(Debug, thiserror::Error)]
enum ConnectFailure {
    #[error("{0}")]
    Refused(Refusal),
    #[error("connecting timed out")]
    TimedOut,
    #[error("{0}")]
    Io(io::Error),
    #[error("TLS: {0}")]
    Tls(io::Error),
    #[error("the URI has no usable host")]
    BadUri,
    #[error(
        "the host's guests already hold {0} OS handles, the host-wide limit kept below its open-file limit"
    )]
    HandleBudget(usize),
}

/// Opens connections for the pooled client: resolves, checks every
/// address against the policy, connects, and adds TLS for `https`.
#[derive(Clone)]
struct PolicyConnector {
    policy: Arc<SchemePolicy>,
    connect_timeout: Duration,
    tls: TlsConnector,
    /// Every connection the pool opens holds one handle of the host-wide
    /// budget until it closes.
    handles: Arc<HostHandles>,
}

impl tower_service::Service<Uri> for PolicyConnector {
    type Response = TokioIo<MaybeTls>;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectFailure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        // Read now, while the requesting task polls the client: the
        // connection may go on in a task of its own.
        let timeout = CONNECT_TIMEOUT
            .try_with(|timeout| *timeout)
            .map_or(connector.connect_timeout, |asked| {
                asked.min(connector.connect_timeout)
            });
        Box::pin(async move {
            let target = destination(&uri).map_err(|_| ConnectFailure::BadUri)?;
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let allowlist = connector.policy.for_uri(&uri);
            let attempt = async {
                let addresses = resolve::allowed_addresses(allowlist, &target)
                    .await
                    .map_err(ConnectFailure::Refused)?;
                let handle = connector
                    .handles
                    .acquire()
                    .ok_or(ConnectFailure::HandleBudget(connector.handles.limit()))?;
                let stream = connect_any(&addresses).await?;
                let _ = stream.set_nodelay(true);
                if !https {
                    return Ok(MaybeTls {
                        io: Io::Plain(stream),
                        _handle: handle,
                    });
                }
                let host = uri.host().ok_or(ConnectFailure::BadUri)?;
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|_| ConnectFailure::BadUri)?;
                let tls = connector
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(ConnectFailure::Tls)?;
                Ok(MaybeTls {
                    io: Io::Tls(Box::new(tls)),
                    _handle: handle,
                })
            };
            match tokio::time::timeout(timeout, attempt).await {
                Ok(result) => result.map(TokioIo::new),
                Err(_) => Err(ConnectFailure::TimedOut),
            }
        })
    }
}

/// Connects to the first address that answers.
async fn connect_any(addresses: &[SocketAddr]) -> Result<TcpStream, ConnectFailure> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(ConnectFailure::Io(last))
}

/// A pooled connection, plain or TLS, with its handle of the host-wide
/// budget.
struct MaybeTls {
    io: Io,
    _handle: HostHandle,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for MaybeTls {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<String, String> {
        destination(&uri.parse::<Uri>().unwrap())
            .map(|destination| destination.to_string())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_port_is_read_from_the_authority_or_defaults_by_scheme() {
        assert_eq!(target("http://example.com/x").unwrap(), "example.com:80");
        assert_eq!(target("https://example.com/x").unwrap(), "example.com:443");
        assert_eq!(
            target("http://example.com:8080/").unwrap(),
            "example.com:8080"
        );
        assert_eq!(target("http://[::1]:7000/").unwrap(), "[::1]:7000");
        assert_eq!(target("http://[::1]/").unwrap(), "[::1]:80");
        // Userinfo is not part of the host and port.
        assert_eq!(
            target("http://user:pw@example.com/").unwrap(),
            "example.com:80"
        );
        assert_eq!(
            target("http://user:pw@example.com:81/").unwrap(),
            "example.com:81"
        );
        for bad in ["http://example.com:99999/", "http://example.com:0/"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
