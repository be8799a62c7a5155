//! The HTTP/1.1 listener: accepts connections up to a cap, serves each on
//! its own task with keep-alive, closes idle ones, and drains in-flight
//! requests on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::dispatch::Dispatcher;

/// How large the request line and headers may be together; larger get
/// `431`. (Hyper also refuses more than 100 headers with `431`.)
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the listener treats its connections.
pub(crate) struct Settings {
    /// Connections open at once. Past it the listener stops accepting, so
    /// new connections wait in the kernel's listen backlog (or are refused
    /// by it when that is full) until one closes.
    pub(crate) max_connections: u32,
    /// How long a connection may go without a whole request head, counted
    /// from its opening or from its last response: the keep-alive idle
    /// timeout, which also bounds how long a client takes to send headers.
    pub(crate) idle_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub(crate) drain_timeout: Duration,
}

/// Serves until `shutdown` resolves, then stops accepting and waits up to
/// the drain timeout for in-flight requests to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher>,
    shutdown: impl Future<Output = ()>,
    settings: Settings,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // Hyper's head timer runs from the moment the connection waits for a
    // request head: after connecting and after each response. It is the
    // idle timeout.
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let open = Arc::new(Semaphore::new(
        usize::try_from(settings.max_connections).unwrap_or(usize::MAX),
    ));
    tokio::pin!(shutdown);

    loop {
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::warn!(
                    "{} connections open (--max-connections): new ones wait in the listen backlog until one closes",
                    settings.max_connections
                );
                tokio::select! {
                    permit = open.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // Never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors is temporary: wait a
                    // moment instead of spinning.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {error}");
        }
        let dispatcher = dispatcher.clone();
        let service = service_fn(move |request| {
            let dispatcher = dispatcher.clone();
            async move { Ok::<_, Infallible>(dispatcher.dispatch(request, Some(peer)).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {error}");
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(
        "stopped accepting connections; draining in-flight requests for up to {:?}",
        settings.drain_timeout
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed; exiting"),
        () = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!("drain timeout elapsed with requests still in flight; exiting");
        }
    }
}
