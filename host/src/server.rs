//! The HTTP/1.1 listener: accepts connections, serves each on its own task
//! with keep-alive, and drains in-flight requests on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::dispatch::Dispatcher;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How large the request line and headers may be together; larger get
/// `431`. (Hyper also refuses more than 100 headers with `431`.)
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves until `shutdown` resolves, then stops accepting and waits up to
/// `drain_timeout` for in-flight requests to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    dispatcher: Arc<Dispatcher>,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);

    loop {
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
            async move { Ok::<_, Infallible>(dispatcher.dispatch(request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {error}");
            }
        });
    }

    drop(listener);
    tracing::info!(
        "stopped accepting connections; draining in-flight requests for up to {}s",
        drain_timeout.as_secs()
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed; exiting"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain timeout elapsed with requests still in flight; exiting");
        }
    }
}
