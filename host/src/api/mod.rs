//! The management API (`host serve --api-listen`): HTTP and JSON on a
//! listener of its own, to deploy, version, promote, roll back and delete
//! the catalog's apps, read their logs, and manage tokens and namespaces.
//!
//! - [`auth`]: bearer tokens, scopes, namespaces and the lockout of
//!   clients that keep failing.
//! - [`apps`]: `/v1/apps`, `/v1/components`: the apps' lifecycle.
//! - [`admin`]: `/v1/whoami`, `/v1/tokens`, `/v1/namespaces`, `/v1/audit`.
//! - [`tls`]: the certificate and key, required off loopback.
//! - [`reply`]: JSON answers and bounded request bodies.
//!
//! Every change is written with an audit record naming the token's id and
//! the client's address. Token secrets and `from_env` values are never
//! answered, logged or audited.

mod admin;
mod apps;
pub(crate) mod auth;
mod reply;
pub(crate) mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serverless_catalog::audit::Actor;
use tokio::net::TcpListener;

use crate::admin::AdminBody;
use crate::catalog::Catalog;
use crate::invocations::Invocations;
use crate::reload::Reloader;
use auth::Authenticator;
use reply::{ApiError, error};

/// What the API's calls share.
pub(crate) struct Api {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) invocations: Arc<Invocations>,
    /// The largest component upload (`--api-max-upload`).
    pub(crate) max_upload: u64,
    /// Previews whose versions a change removed are dropped.
    pub(crate) previews: Arc<crate::catalog::previews::Previews>,
}

/// How many API connections may be open at once.
const MAX_CONNECTIONS: usize = 256;

/// How long a call's head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest JSON body a call takes.
const MAX_JSON: u64 = 1024 * 1024;

/// One call's caller.
struct Caller {
    token: serverless_catalog::TokenInfo,
    actor: Actor,
}

impl Api {
    /// Serves the API on `listener`, over TLS when `tls` is set, until
    /// the process exits.
    pub(crate) async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            // Past the cap, new connections wait in the listen backlog.
            let Ok(permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("management API: cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let api = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = service_fn(move |request| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.answer(request, peer).await) }
                });
                let mut builder = http1::Builder::new();
                // A client that trickles its request's head is cut off.
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT);
                match tls {
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                            Ok(Err(error)) => tracing::info!(
                                %peer,
                                "management API: TLS handshake failed: {error}"
                            ),
                            Err(_) => tracing::info!(
                                %peer,
                                "management API: TLS handshake timed out"
                            ),
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    }

    /// Answers one call.
    async fn answer(
        self: Arc<Self>,
        request: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Response<AdminBody> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let result = self.route(request, peer).await;
        match result {
            Ok(response) => {
                tracing::info!(%peer, "management API: {method} {path} {}", response.status().as_u16());
                response
            }
            Err(mut refused) => {
                // The client learns digests, never where the state
                // directory is.
                refused.message = self.catalog.blobs().redact(&refused.message);
                tracing::info!(
                    %peer,
                    "management API: {method} {path} {}: {}",
                    refused.status.as_u16(),
                    refused.message
                );
                error(&refused)
            }
        }
    }

    async fn route(
        &self,
        request: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<AdminBody>, ApiError> {
        let token = self
            .auth
            .authenticate(auth::bearer(request.headers()), peer.ip())
            .await?;
        let caller = Caller {
            actor: Actor {
                who: format!("token:{}", token.id),
                origin: peer.to_string(),
            },
            token,
        };
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path
            .strip_prefix("/v1/")
            .map(|rest| rest.split('/').collect())
            .unwrap_or_default();
        let method = request.method().clone();
        use http::Method as M;
        match (method.clone(), segments.as_slice()) {
            (M::GET, ["whoami"]) => self.whoami(&caller).await,
            (M::GET, ["tokens"]) => self.list_tokens(&caller).await,
            (M::POST, ["tokens"]) => self.create_token(&caller, request).await,
            (M::DELETE, ["tokens", id]) => self.revoke_token(&caller, id).await,
            (M::GET, ["namespaces"]) => self.list_namespaces(&caller).await,
            (M::GET, ["audit"]) => self.audit(&caller, request.uri().query()).await,
            (M::PUT, ["namespaces", name]) => self.set_namespace(&caller, name, request).await,
            (M::PUT, ["components"]) => self.upload(&caller, request).await,
            (M::GET, ["apps"]) => self.list_apps(&caller).await,
            (M::GET, ["apps", name]) => self.show_app(&caller, name).await,
            (M::DELETE, ["apps", name]) => self.delete_app(&caller, name).await,
            (M::POST, ["apps", name, "versions"]) => self.deploy(&caller, name, request).await,
            (M::POST, ["apps", name, "promote"]) => self.promote(&caller, name, request).await,
            (M::POST, ["apps", name, "rollback"]) => self.rollback(&caller, name, request).await,
            (M::GET, ["apps", name, "logs"]) => {
                let follow = request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == "follow" || p == "follow=true"));
                self.logs(&caller, name, follow).await
            }
            (_, []) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not found; the API's calls are under /v1/ (the README lists them)",
            )),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no call is {method} {path}; the README lists the API's calls"),
            )),
        }
    }

    /// Runs `work` on the state directory off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut serverless_catalog::StateDir) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || work(&mut catalog.lock()))
            .await
            .map_err(ApiError::internal)?
    }
}
