//! Where a deploy goes: the catalog of apps deployed through the
//! management API (`host serve --state-dir`), beside the configuration's
//! apps.
//!
//! - [`spec`]: what a deploy says about an app (routes, env, limits,
//!   outbound rules) and its translation into the configuration's
//!   validated [`serverless_config::AppConfig`], through the same parser.
//! - [`table`]: the configuration's routes and the catalog's active
//!   versions in one route table, conflicts refused with the
//!   configuration's message.
//! - [`previews`]: versions that are not active, tried with an
//!   authenticated header before they are promoted.
//!
//! Changes are applied by `reload.rs`, which validates and compiles the
//! new table before the catalog's transaction commits and swaps it after.

pub(crate) mod previews;
pub(crate) mod spec;
pub(crate) mod table;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use serverless_catalog::StateDir;
use serverless_catalog::namespaces::DEFAULT_NAMESPACE;

/// The open state directory of a running host.
pub(crate) struct Catalog {
    state: Mutex<StateDir>,
    /// The stored components, reachable without the lock.
    blobs: serverless_catalog::blobs::Blobs,
    path: PathBuf,
    /// How many versions of each app are kept (`--keep-versions`).
    pub(crate) keep: u32,
}

impl Catalog {
    /// Opens (or creates) the state directory at `path`.
    pub(crate) fn open(path: &Path, keep: u32) -> anyhow::Result<Arc<Catalog>> {
        let state = StateDir::open(path)
            .with_context(|| format!("cannot open the state directory {}", path.display()))?;
        Ok(Arc::new(Catalog {
            blobs: state.blobs().clone(),
            state: Mutex::new(state),
            path: path.to_owned(),
            keep,
        }))
    }

    /// The state directory, for one blocking operation at a time. Callers
    /// on the async runtime use `spawn_blocking`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, StateDir> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stored components, for uploads, which hash and write without
    /// holding the lock.
    pub(crate) fn blobs(&self) -> &serverless_catalog::blobs::Blobs {
        &self.blobs
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The name an app of the catalog has in the host's logs, metrics and
/// `host logs`: its own in the operator's `default` namespace, else
/// `NAMESPACE/APP` (no configuration name holds a `/`).
pub(crate) fn runtime_name(namespace: &str, app: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        app.to_owned()
    } else {
        format!("{namespace}/{app}")
    }
}

/// A change to the catalog's active versions that a table is loaded with
/// before the change is committed.
pub(crate) enum Proposal {
    /// None: the table as the catalog has it.
    Nothing,
    /// The app serves `version` (new, or one it has).
    Activate {
        namespace: String,
        app: String,
        version: serverless_catalog::apps::Version,
    },
    /// The app serves nothing.
    Remove { namespace: String, app: String },
}

/// Why a proposed table cannot be served; nothing was changed.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Its routes or name collide with others': `409`.
    Conflict(String),
    /// Its specification or component cannot be served: `422`.
    Invalid(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Conflict(message) | Refused::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Refused {}

impl Catalog {
    /// The routes of every active version, with `proposal` applied. A
    /// stored app that no longer loads (its component corrupted, say) is
    /// left out with an error in the log; the proposed one is refused.
    pub(crate) fn active_routes(
        &self,
        proposal: &Proposal,
    ) -> Result<Vec<table::CatalogRoutes>, Refused> {
        let state = self.lock();
        let mut apps: Vec<(String, String, serverless_catalog::apps::Version)> = state
            .active_apps()
            .map_err(|error| Refused::Invalid(error.to_string()))?
            .into_iter()
            .filter_map(|app| {
                let version = app.versions.into_iter().next()?;
                Some((app.namespace, app.name, version))
            })
            .collect();
        let proposed = match proposal {
            Proposal::Nothing => None,
            Proposal::Activate { namespace, app, .. } | Proposal::Remove { namespace, app } => {
                Some((namespace.as_str(), app.as_str()))
            }
        };
        apps.retain(|(namespace, app, _)| Some((namespace.as_str(), app.as_str())) != proposed);
        if let Proposal::Activate {
            namespace,
            app,
            version,
        } = proposal
        {
            apps.push((namespace.clone(), app.clone(), version.clone()));
        }
        let mut routes = Vec::with_capacity(apps.len());
        for (namespace, app, version) in apps {
            let is_proposed = Some((namespace.as_str(), app.as_str())) == proposed;
            let loaded = state
                .blobs()
                .checked_path(&version.digest)
                .map_err(|error| error.to_string())
                .and_then(|path| {
                    spec::AppSpec::from_json(&version.spec)?.routes(&namespace, &app, &path)
                });
            match loaded {
                Ok(spec_routes) => routes.push(table::CatalogRoutes {
                    name: runtime_name(&namespace, &app),
                    version: version.number,
                    routes: spec_routes,
                }),
                Err(error) if is_proposed => return Err(Refused::Invalid(error)),
                Err(error) => tracing::error!(
                    "catalog: app `{}` version {} is not served: {error}",
                    runtime_name(&namespace, &app),
                    version.number
                ),
            }
        }
        Ok(routes)
    }
}

/// `config` with the catalog's active versions (and `proposal`) added to
/// its routes.
pub(crate) fn with_catalog(
    mut config: serverless_config::Config,
    catalog: &Catalog,
    proposal: &Proposal,
) -> Result<serverless_config::Config, Refused> {
    let apps = catalog.active_routes(proposal)?;
    let services: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    let routes = std::mem::take(&mut config.routes);
    // Where the configuration's entries are written is the operator's
    // business: a tenant's refusal names the app only.
    let reveal = match proposal {
        Proposal::Nothing => true,
        Proposal::Activate { namespace, .. } | Proposal::Remove { namespace, .. } => {
            namespace == DEFAULT_NAMESPACE
        }
    };
    config.routes = table::merge(routes, &services, apps, reveal).map_err(Refused::Conflict)?;
    Ok(config)
}
