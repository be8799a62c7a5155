//! What each route leads to once loaded: an app, compiled and
//! pre-instantiated, whose requests each run in a fresh instance; or a
//! service's HTTP server, which requests reach through the proxy in
//! `dispatch/proxy.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use serverless_config::{RouteTable, RouteTarget};
use serverless_runtime::{App, OperatorRules, Runtime};

use crate::dispatch::{ProxyClient, Publisher, ServiceProxy};
use crate::services::UpFlags;

/// A loaded route's target.
pub(crate) enum Target {
    App(Arc<App>),
    Service(Arc<ServiceProxy>),
    Publish(Arc<Publisher>),
}

/// The loaded route table.
pub(crate) type Routes = RouteTable<Target>;

impl Target {
    /// The route's app name, for logs and metrics.
    pub(crate) fn name(&self) -> &Arc<str> {
        match self {
            Target::App(app) => app.name(),
            Target::Service(proxy) => proxy.name(),
            Target::Publish(publisher) => publisher.name(),
        }
    }

    /// What the route runs, for the banner, `/routes` and reload lines:
    /// the component file, or the service and its address.
    pub(crate) fn source(&self) -> String {
        match self {
            Target::App(app) => app.component().to_owned(),
            Target::Service(proxy) => {
                format!("service {} at {}", proxy.service(), proxy.address())
            }
            Target::Publish(publisher) => format!("topic {}", publisher.topic()),
        }
    }

    /// The kind, as `/routes` shows it: the world, `legacy` or `service`.
    pub(crate) fn kind(&self) -> String {
        match self {
            Target::App(app) => app.kind().to_string(),
            Target::Service(_) => "service".to_owned(),
            Target::Publish(_) => "publish".to_owned(),
        }
    }

    /// How many of its requests may run at once, if it has a cap of its
    /// own.
    pub(crate) fn max_concurrency(&self) -> Option<u32> {
        match self {
            Target::App(app) => app.limits().max_concurrency,
            Target::Service(proxy) => proxy.max_concurrency(),
            Target::Publish(_) => None,
        }
    }
}

/// Loads every route: compiles and pre-instantiates the apps, and points
/// the routes to services at their services' `up` flags, which tell the
/// proxy whether each is running.
pub(crate) fn load(
    runtime: &Runtime,
    routes: RouteTable<RouteTarget>,
    operator: &OperatorRules,
    up: &UpFlags,
    broker: &serverless_messaging::Broker,
) -> anyhow::Result<Routes> {
    let mut loader = runtime.loader(operator);
    // One pool of connections per service, whatever routes lead to it.
    let mut clients: HashMap<String, ProxyClient> = HashMap::new();
    let loaded = routes.try_map(|target| match target {
        RouteTarget::App(app) => loader
            .load(*app)
            .map(Target::App)
            .map_err(anyhow::Error::from),
        RouteTarget::Publish(route) => Ok(Target::Publish(Arc::new(Publisher::new(
            route,
            broker.clone(),
        )))),
        RouteTarget::Service(route) => {
            let up = up.get(&route.service).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}app `{}`: service `{}` is not loaded",
                    route
                        .location
                        .as_ref()
                        .map(|l| format!("{l}: "))
                        .unwrap_or_default(),
                    route.name,
                    route.service
                )
            })?;
            let client = clients
                .entry(route.service.clone())
                .or_insert_with(crate::dispatch::proxy_client)
                .clone();
            Ok(Target::Service(Arc::new(ServiceProxy::new(
                route, up, client,
            ))))
        }
    })?;
    loader.finish();
    Ok(loaded)
}
