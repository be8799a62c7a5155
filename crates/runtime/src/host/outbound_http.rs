//! `wasi:http/outgoing-handler`: outbound HTTP requests from wasi:http
//! components, denied unless the operator's `--allow-http` rules allow the
//! destination.
//!
//! Each app has one pooled client, so connections are reused across its
//! requests. The client's connector resolves names itself and connects
//! only to addresses the app's policy allows (the same engine, special
//! ranges and normalisation as outbound TCP), over TLS for `https`.

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

use crate::guest_log::LogTags;
use crate::lanes::SlowLane;
use crate::resolve::{self, Refusal};

/// How long a response may take to start when the guest sets no limit.
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// resolving plus connecting plus the TLS handshake.
    pub fn new(
        rules: HttpAllowlist,
        connect_timeout: Duration,
        slow_lane: Arc<SlowLane>,
    ) -> HttpClient {
        let policy = Arc::new(SchemePolicy {
            http: rules.for_scheme(false),
            https: rules.for_scheme(true),
        });
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = PolicyConnector {
            policy: policy.clone(),
            connect_timeout,
            tls: TlsConnector::from(Arc::new(tls)),
        };
        let client = Client::builder(ConnectionExecutor(slow_lane))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        HttpClient {
            rules,
            policy,
            client,
        }
    }

    /// The rules, for messages.
    pub fn rules(&self) -> &HttpAllowlist {
        &self.rules
    }
}

/// One request's outbound HTTP: the app's client and the log tags.
pub(crate) struct OutboundHttp {
    pub(crate) client: Arc<HttpClient>,
    pub(crate) tags: LogTags,
}

/// The destination of a request URI: its host and port (default by
/// scheme), normalised like any outbound destination.
fn destination(uri: &Uri) -> Option<Destination> {
    let host = uri.host()?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    format!("{host}:{port}").parse().ok()
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let tags = self.tags.clone();
        let client = self.client.clone();
        let shown = request.uri().to_string();
        let refuse = move |why: &str| {
            crate::denials::DeniedVia::OutboundHttp.count();
            tags.emit(
                Level::WARN,
                "outbound-http",
                &format!("refused outbound HTTP request to {shown}: {why}"),
            );
            Error::HttpRequestDenied
        };
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
        Box::new(async move {
            let Some(target) = destination(request.uri()) else {
                return Err(Error::HttpRequestUriInvalid);
            };
            if client.rules.is_empty() {
                return Err(refuse("no --allow-http rule allows any request"));
            }
            // Check before queueing on the pool, so that a refused request
            // is logged with its request id; the connector checks again
            // for every connection it opens.
            let allowlist = client.policy.for_uri(request.uri());
            if let Err(refusal) = resolve::allowed_addresses(allowlist, &target).await {
                return Err(match refusal {
                    Refusal::NotAllowed(why) => refuse(&why),
                    Refusal::Dns(message) => Error::DnsError {
                        rcode: Some(message),
                        info_code: None,
                    },
                });
            }
            let response =
                match tokio::time::timeout(first_byte, client.client.request(request)).await {
                    Err(_) => return Err(Error::ConnectionReadTimeout),
                    Ok(Ok(response)) => response,
                    Ok(Err(error)) => return Err(client_error(error, &refuse)),
                };
            let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
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
            };
        }
        if let Some(error) = cause.downcast_ref::<hyper::Error>() {
            return Error::InternalError(Some(error.to_string()));
        }
        source = cause.source();
    }
    Error::InternalError(Some(error.to_string()))
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
}

/// Opens connections for the pooled client: resolves, checks every
/// address against the policy, connects, and adds TLS for `https`.
#[derive(Clone)]
struct PolicyConnector {
    policy: Arc<SchemePolicy>,
    connect_timeout: Duration,
    tls: TlsConnector,
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
        Box::pin(async move {
            let target = destination(&uri).ok_or(ConnectFailure::BadUri)?;
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let allowlist = connector.policy.for_uri(&uri);
            let attempt = async {
                let addresses = resolve::allowed_addresses(allowlist, &target)
                    .await
                    .map_err(ConnectFailure::Refused)?;
                let stream = connect_any(&addresses).await?;
                let _ = stream.set_nodelay(true);
                if !https {
                    return Ok(MaybeTls::Plain(stream));
                }
                let host = uri.host().ok_or(ConnectFailure::BadUri)?;
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|_| ConnectFailure::BadUri)?;
                let tls = connector
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(ConnectFailure::Tls)?;
                Ok(MaybeTls::Tls(Box::new(tls)))
            };
            match tokio::time::timeout(connector.connect_timeout, attempt).await {
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

/// A pooled connection, plain or TLS.
enum MaybeTls {
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
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_flush(cx),
            MaybeTls::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            MaybeTls::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
