//! Trying a version before it is promoted. A request with
//!
//! ```text
//! serverless-preview: APP@VERSION
//! serverless-preview-token: swt_...
//! ```
//!
//! runs in that version of the token's namespace's app, on its own
//! routes, whatever version is active. The token must be of scope `read`
//! exactly: the app listener may be plain HTTP, and deploy and admin
//! tokens must not travel there. Without a valid one the request is
//! refused (`401`, `403`); an unknown app or version is `404`. Failed
//! tokens lock a client out as on the API, in a count of their own, so
//! that bad previews cannot lock the operator out of the API. Both
//! headers are removed before the app sees any request. A version is
//! loaded on its first preview and kept until the app changes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serverless_catalog::Scope;
use serverless_config::RouteTable;
use serverless_runtime::{OperatorRules, Runtime};

use super::Catalog;
use super::spec::AppSpec;
use crate::api::auth::{Authenticator, allow};
use crate::routes::Routes;

/// Names the app and version to try.
pub(crate) const PREVIEW_HEADER: &str = "serverless-preview";

/// Carries the token that may try it.
pub(crate) const PREVIEW_TOKEN_HEADER: &str = "serverless-preview-token";

/// The most versions kept loaded for previews; past it all are dropped
/// and loaded again when tried.
const MOST_LOADED: usize = 64;

/// The versions loaded for previews.
pub(crate) struct Previews {
    catalog: Arc<Catalog>,
    auth: Arc<Authenticator>,
    runtime: Arc<Runtime>,
    operator: OperatorRules,
    loaded: Mutex<Loaded>,
}

/// The loaded versions, and a count of the changes that dropped some: a
/// load that began before a change does not keep its result.
#[derive(Default)]
struct Loaded {
    routes: HashMap<(String, String, i64), Arc<Routes>>,
    generation: u64,
}

/// A refused preview: status and message.
type Refusal = (StatusCode, String);

impl Previews {
    /// Previews of `catalog`'s versions, compiled by `runtime` under the
    /// operator's rules, with tokens checked by `auth` (not the API's).
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        auth: Arc<Authenticator>,
        runtime: Arc<Runtime>,
        operator: OperatorRules,
    ) -> Previews {
        Previews {
            catalog,
            auth,
            runtime,
            operator,
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// Drops the loaded versions of an app that changed.
    pub(crate) fn forget(&self, namespace: &str, app: &str) {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.generation += 1;
        loaded
            .routes
            .retain(|(n, a, _), _| !(n == namespace && a == app));
    }

    /// The routes of the version a preview request names.
    pub(crate) async fn resolve(
        &self,
        headers: &http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Arc<Routes>, Refusal> {
        let client = peer.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |peer| peer.ip());
        let token = headers
            .get(PREVIEW_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok());
        let token = self
            .auth
            .authenticate(token, client)
            .await
            .map_err(|denied| {
                let status = denied.status();
                let message = match denied {
                    crate::api::auth::Denied::Missing => format!(
                        "a preview needs a token of the app's namespace in the `{PREVIEW_TOKEN_HEADER}` header"
                    ),
                    denied => denied.message(),
                };
                (status, message)
            })?;
        let selector = headers
            .get(PREVIEW_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let Some((app, version)) = selector
            .split_once('@')
            .and_then(|(app, version)| Some((app.to_owned(), version.parse::<i64>().ok()?)))
        else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("`{PREVIEW_HEADER}: {selector}` is not `APP@VERSION`, such as `hello@2`"),
            ));
        };
        let namespace = token.namespace.clone();
        allow(&token, &namespace, Scope::Read)
            .map_err(|denied| (denied.status(), denied.message()))?;
        if token.scope != Scope::Read {
            tracing::warn!(
                token = %token.id,
                "preview refused: a {} token was sent on the app listener; revoke it if that listener is not private",
                token.scope
            );
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "a preview takes a token of scope `read` only, so that {} tokens stay off the app listener; make one with `host tokens create --scope read`",
                    token.scope
                ),
            ));
        }
        let key = (namespace.clone(), app.clone(), version);
        let generation = {
            let loaded = self
                .loaded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(routes) = loaded.routes.get(&key) {
                return Ok(routes.clone());
            }
            loaded.generation
        };
        let (catalog, runtime, operator) = (
            self.catalog.clone(),
            self.runtime.clone(),
            self.operator.clone(),
        );
        let routes = tokio::task::spawn_blocking(move || {
            load(&catalog, &runtime, &operator, &namespace, &app, version)
        })
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the preview could not be loaded".to_owned(),
            )
        })?
        .map_err(|(status, message)| (status, self.catalog.blobs().redact(&message)))?;
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An app that changed while this loaded may no longer have this
        // version as it was: serve it this once, keep nothing.
        if loaded.generation == generation {
            if loaded.routes.len() >= MOST_LOADED {
                loaded.routes.clear();
            }
            loaded.routes.insert(key, routes.clone());
        }
        Ok(routes)
    }
}

/// Loads one version's routes on their own.
fn load(
    catalog: &Catalog,
    runtime: &Runtime,
    operator: &OperatorRules,
    namespace: &str,
    app: &str,
    version: i64,
) -> Result<Arc<Routes>, Refusal> {
    let not_found = |message: String| (StatusCode::NOT_FOUND, message);
    let (spec, path) = {
        let state = catalog.lock();
        let record = state
            .app(namespace, app)
            .map_err(|error| not_found(error.to_string()))?;
        let Some(chosen) = record.versions.iter().find(|v| v.number == version) else {
            let known: Vec<String> = record
                .versions
                .iter()
                .map(|v| v.number.to_string())
                .collect();
            return Err(not_found(format!(
                "app `{app}` has no version {version}; its versions are {}",
                known.join(", ")
            )));
        };
        let path = state
            .blobs()
            .checked_path(&chosen.digest)
            .map_err(|error| (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
        (chosen.spec.clone(), path)
    };
    let unservable = |message: String| (StatusCode::UNPROCESSABLE_ENTITY, message);
    let spec_routes = AppSpec::from_json(&spec)
        .and_then(|spec| spec.routes(namespace, app, &path))
        .map_err(unservable)?;
    let mut table = RouteTable::new();
    for route in spec_routes {
        table
            .insert(
                route.pattern,
                route.methods,
                serverless_config::RouteTarget::App(Box::new(route.app)),
            )
            .map_err(|conflict| unservable(conflict.to_string()))?;
    }
    // Catalog apps run components only (`publish_to` is refused in a
    // deploy), so the broker here is never published on.
    let broker = serverless_messaging::Broker::new(serverless_messaging::BrokerSettings::default());
    crate::routes::load(
        runtime,
        table,
        operator,
        &crate::services::UpFlags::new(),
        &broker,
    )
    .map(Arc::new)
    .map_err(|error| unservable(format!("{error:#}")))
}
