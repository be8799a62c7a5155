//! Hot reload: on SIGHUP, or when the configuration or a component file
//! changes (`--watch`), load and compile the new configuration in the
//! background, then swap the route table in one step. Requests already
//! running finish on their old instances; new ones go to the new table. A
//! configuration or component that does not load leaves the old table in
//! service. Every attempt is logged with what changed.
//!
//! The management API's changes (deploy, promote, rollback, delete) go
//! through [`Reloader::change`]: the table with the change is loaded and
//! compiled first, the catalog's transaction commits only when it loaded,
//! and the table is swapped after. One change or reload runs at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use serverless_config::{ComponentSource, Config};
use serverless_outbound::TcpAllowlist;
use serverless_runtime::{OperatorRules, Runtime};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::admin::Admin;
use crate::catalog::{Catalog, Proposal, Refused, with_catalog};
use crate::dispatch::Dispatcher;
use crate::routes::Routes;
use crate::services::{Plan, Supervisor};

/// How long an uploaded component no version uses is kept, waiting for
/// its deploy.
const GARBAGE_GRACE: Duration = Duration::from_secs(3600);

/// How often `--watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Where the configuration comes from.
pub(crate) enum Base {
    /// A file, read again by every reload; a catalog change takes the
    /// text that last loaded, so that an edit in progress does not fail
    /// a tenant's deploy.
    File(PathBuf),
    /// The bundled samples, whose site is in this folder.
    Samples(PathBuf),
}

/// A configuration loaded and compiled, not yet in service: its routes,
/// its services' plan and its subscriptions.
type Prepared = (Routes, Plan, crate::subscriptions::Loaded);

/// Everything a reload needs.
pub(crate) struct Reloader {
    pub(crate) base: Base,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) operator: OperatorRules,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) admin: Arc<Admin>,
    pub(crate) listen_address: std::net::SocketAddr,
    /// The services, restarted when their entry or component changes.
    pub(crate) supervisor: Arc<Supervisor>,
    /// The operator's `--allow-listen` rules.
    pub(crate) listen_rules: TcpAllowlist,
    /// The catalog of deployed apps, with `--state-dir`.
    pub(crate) catalog: Option<Arc<Catalog>>,
    /// The embedded broker, which `publish_to` routes publish on.
    pub(crate) broker: serverless_messaging::Broker,
    /// The `[[subscriptions]]` running now.
    pub(crate) subscriptions: Arc<crate::subscriptions::Subscriptions>,
    /// The routes being served, as `describe` has them; held by the
    /// reload or change in progress.
    pub(crate) current: tokio::sync::Mutex<BTreeMap<String, String>>,
    /// The configuration text that last loaded.
    pub(crate) last_good: std::sync::Mutex<Option<String>>,
}

/// A catalog change that could not be made; nothing was changed.
#[derive(Debug)]
pub(crate) enum ChangeError {
    /// The proposed table cannot be served.
    Refused(Refused),
    /// The catalog refused or failed the write.
    Catalog(serverless_catalog::CatalogError),
    /// The host failed.
    Internal(anyhow::Error),
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::Refused(refused) => refused.fmt(f),
            ChangeError::Catalog(error) => error.fmt(f),
            ChangeError::Internal(error) => write!(f, "{error:#}"),
        }
    }
}

/// One line per route: `METHOD PATH` to `app (component)`.
pub(crate) fn describe(routes: &Routes) -> BTreeMap<String, String> {
    routes
        .routes()
        .map(|(pattern, methods, target)| {
            (
                format!("{methods} {}", pattern.as_str()),
                format!("{} ({})", target.name(), target.source()),
            )
        })
        .collect()
}

/// What differs between two route tables, for the log.
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (route, app) in after {
        match before.get(route) {
            None => parts.push(format!("added {route} -> {app}")),
            Some(old) if old != app => parts.push(format!("changed {route}: {old} -> {app}")),
            Some(_) => {}
        }
    }
    for (route, app) in before {
        if !after.contains_key(route) {
            parts.push(format!("removed {route} -> {app}"));
        }
    }
    if parts.is_empty() {
        "same routes; components loaded afresh".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The files whose change `--watch` reloads on: the configuration and the
/// component files its apps and services name, each once however many
/// share it (read again only after a reload).
fn watched_files(config_path: &Path) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_owned()];
    if let Ok(config) = Config::load(config_path) {
        let mut named = HashSet::new();
        let components = config
            .apps()
            .map(|app| &app.component)
            .chain(config.services.iter().map(|service| &service.component))
            .chain(
                config
                    .subscriptions
                    .iter()
                    .map(|entry| &entry.app.component),
            );
        for component in components {
            if let ComponentSource::File(path) = component
                && named.insert(path)
            {
                files.push(path.clone());
            }
        }
    }
    files
}

/// The modification time of each file (`None` when it is missing).
fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

impl Reloader {
    /// Loads the configuration and compiles its components: everything
    /// that can fail happens here, before anything is swapped.
    fn load(&self) -> anyhow::Result<Prepared> {
        let (config, text) = match &self.base {
            Base::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    serverless_config::ConfigError::Read {
                        path: path.clone(),
                        error,
                    }
                })?;
                (Config::parse(&text, path)?, Some(text))
            }
            Base::Samples(site) => (crate::default_config::sample_config(site)?, None),
        };
        crate::commands::common::log_warnings(&config);
        let config = match &self.catalog {
            Some(catalog) => with_catalog(config, catalog, &Proposal::Nothing)?,
            None => config,
        };
        let loaded = self.prepare(config)?;
        if let Some(text) = text {
            *self
                .last_good
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
        }
        Ok(loaded)
    }

    /// The configuration that last loaded, with `proposal` applied to the
    /// catalog's versions, loaded and compiled.
    fn load_proposal(
        &self,
        catalog: &Catalog,
        proposal: &Proposal,
    ) -> Result<Prepared, ChangeError> {
        let config = match &self.base {
            Base::File(path) => {
                let text = self
                    .last_good
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                match text {
                    Some(text) => Config::parse(&text, path),
                    None => Config::load(path),
                }
                .map_err(|error| ChangeError::Internal(error.into()))?
            }
            Base::Samples(site) => {
                crate::default_config::sample_config(site).map_err(ChangeError::Internal)?
            }
        };
        let config = with_catalog(config, catalog, proposal).map_err(ChangeError::Refused)?;
        self.prepare(config)
            .map_err(|error| ChangeError::Refused(Refused::Invalid(format!("{error:#}"))))
    }

    /// Checks a configuration against what was fixed at startup, plans
    /// its services and loads its routes.
    fn prepare(&self, config: Config) -> anyhow::Result<Prepared> {
        let settings = self.runtime.settings();
        for app in config.apps() {
            if usize::try_from(app.limits.max_memory).unwrap_or(usize::MAX)
                > settings.max_memory_bytes
            {
                bail!(
                    "app `{}`: max_memory {} bytes is more than the {} bytes the instance pool was sized for at startup; restart the host to raise it",
                    app.name,
                    app.limits.max_memory,
                    settings.max_memory_bytes
                );
            }
            if app.limits.fuel.is_some() && !settings.fuel {
                bail!(
                    "app `{}`: fuel needs fuel metering, which is chosen at startup; restart the host to turn it on",
                    app.name
                );
            }
        }
        for service in &config.services {
            if usize::try_from(service.max_memory).unwrap_or(usize::MAX) > settings.max_memory_bytes
            {
                bail!(
                    "{}service `{}`: max_memory {} bytes is more than the {} bytes the instance pool was sized for at startup; restart the host to raise it",
                    service
                        .location
                        .as_ref()
                        .map(|l| format!("{l}: "))
                        .unwrap_or_default(),
                    service.name,
                    service.max_memory,
                    settings.max_memory_bytes
                );
            }
        }
        if config.listen_address != self.listen_address {
            tracing::warn!(
                "reload: listen_address changed to {}; the host keeps listening on {} until it restarts",
                config.listen_address,
                self.listen_address
            );
        }
        let subscriptions = crate::subscriptions::load_checked(
            &self.runtime,
            config.subscriptions,
            &self.operator,
        )?;
        let plan = self.supervisor.plan(
            &self.runtime,
            config.services,
            &self.operator,
            &self.listen_rules,
        )?;
        let routes = crate::routes::load(
            &self.runtime,
            config.routes,
            &self.operator,
            plan.flags(),
            &self.broker,
        )?;
        Ok((routes, plan, subscriptions))
    }

    /// What the base is, for the log.
    fn base_name(&self) -> String {
        match &self.base {
            Base::File(path) => path.display().to_string(),
            Base::Samples(_) => "the bundled samples".to_owned(),
        }
    }

    /// Applies a change to the catalog: loads the table with `proposal`,
    /// then (only if it loaded) runs `commit` on the catalog, then, when
    /// `swap`, serves the new table. `why` names the change in the log.
    pub(crate) async fn change<T: Send + 'static>(
        self: &Arc<Self>,
        why: String,
        proposal: Proposal,
        swap: bool,
        commit: impl FnOnce(
            &mut serverless_catalog::StateDir,
        ) -> Result<T, serverless_catalog::CatalogError>
        + Send
        + 'static,
    ) -> Result<T, ChangeError> {
        let Some(catalog) = self.catalog.clone() else {
            return Err(ChangeError::Internal(anyhow::anyhow!(
                "the host has no state directory"
            )));
        };
        let mut current = self.current.lock().await;
        tracing::info!("{why}: loading");
        if self.supervisor.is_stopping() {
            return Err(ChangeError::Internal(anyhow::anyhow!(
                "the host is shutting down"
            )));
        }
        let this = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let (routes, plan, subscriptions) = this.load_proposal(&catalog, &proposal)?;
            let mut state = catalog.lock();
            let value = commit(&mut state).map_err(ChangeError::Catalog)?;
            // Components no version uses any more, and partial uploads.
            match state.collect_garbage(GARBAGE_GRACE) {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!("catalog: removed {removed} unused stored components")
                }
                Err(error) => tracing::warn!("catalog: cannot remove unused components: {error}"),
            }
            drop(state);
            Ok::<_, ChangeError>((routes, plan, subscriptions, value))
        })
        .await
        .map_err(|error| ChangeError::Internal(error.into()))
        .and_then(|result| result);
        let (routes, plan, subscriptions, value) = match done {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!("{why} refused; nothing changed: {error}");
                return Err(error);
            }
        };
        if swap {
            let done = self
                .serve(&mut current, (routes, plan, subscriptions))
                .await;
            tracing::info!("{why}: {done}");
        } else {
            tracing::info!("{why}: done; the routes stay as they are");
        }
        Ok(value)
    }

    /// Applies the services' plan, then serves `routes` in place of
    /// `current`; returns what changed, for the log line.
    async fn serve(
        &self,
        current: &mut BTreeMap<String, String>,
        (routes, plan, subscriptions): Prepared,
    ) -> String {
        // Services first: a route to a new service finds it starting.
        let services = self.supervisor.apply(plan).await;
        let after = describe(&routes);
        let summary = changes(current, &after);
        self.admin.set_routes(&routes);
        self.dispatcher.replace_routes(routes);
        let subscriptions = self.subscriptions.apply(subscriptions).await;
        let done = format!(
            "now serving {} routes; {summary}; {services}; {subscriptions}",
            after.len()
        );
        *current = after;
        done
    }

    /// One reload attempt; `why` says what asked for it.
    async fn reload(self: &Arc<Self>, why: &str) {
        let mut current = self.current.lock().await;
        tracing::info!("reload ({why}): loading {}", self.base_name());
        let this = self.clone();
        let loaded = tokio::task::spawn_blocking(move || this.load())
            .await
            .context("the reload task failed")
            .and_then(|result| result);
        match loaded {
            Ok(_) if self.supervisor.is_stopping() => tracing::info!(
                "reload ({why}) dropped: the host is shutting down; the routes and services stay as they are"
            ),
            Ok(prepared) => {
                let done = self.serve(&mut current, prepared).await;
                tracing::info!("reload ({why}): {done}");
            }
            Err(error) => tracing::error!(
                "reload ({why}) failed; the previous routes stay in service: {error:#}"
            ),
        }
    }

    /// Reloads on SIGHUP, and on file changes when `watch` is set, until
    /// the process exits.
    pub(crate) async fn run(self: Arc<Self>, mut hangup: Signal, watch: bool) {
        // Without `--watch` no file is watched: the configuration is not
        // read a second time at startup.
        let watched = |base: &Base| match base {
            Base::File(path) if watch => watched_files(path),
            _ => Vec::new(),
        };
        let mut files = watched(&self.base);
        let mut seen = modified(&files);
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    self.reload("SIGHUP").await;
                }
                _ = ticks.tick(), if watch => {
                    if modified(&files) == seen {
                        continue;
                    }
                    self.reload("a watched file changed").await;
                }
            }
            files = watched(&self.base);
            seen = modified(&files);
        }
    }
}

/// SIGHUP, caught from before the host reports that it listens, so that a
/// reload asked for at once does not end the process.
pub(crate) fn hangups() -> anyhow::Result<Signal> {
    signal(SignalKind::hangup()).context("cannot listen for SIGHUP")
}

/// For the bundled samples, which have no file to reload: SIGHUP is
/// logged instead of ending the process.
pub(crate) async fn ignore_hangups(mut hangup: Signal) {
    while hangup.recv().await.is_some() {
        tracing::warn!("SIGHUP: the bundled samples have no configuration file to reload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_component_shared_by_apps_is_watched_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join("b.wasm"), b"\0asm").unwrap();
        let config = dir.path().join("app.toml");
        let mut text = String::new();
        for (index, file) in ["a.wasm", "b.wasm", "a.wasm", "a.wasm"].iter().enumerate() {
            text.push_str(&format!(
                "[[applications]]\nfile_path = \"{file}\"\nmethod = \"GET\"\nurl_path = \"/{index}\"\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
        assert_eq!(
            watched_files(&config),
            [
                config.clone(),
                dir.path().join("a.wasm"),
                dir.path().join("b.wasm")
            ]
        );
    }

    #[test]
    fn changes_name_added_changed_and_removed_routes() {
        let before = table(&[("GET /a", "a (a.wasm)"), ("GET /b", "b (b.wasm)")]);
        let after = table(&[("GET /a", "a (echo.wasm)"), ("GET /c", "c (c.wasm)")]);
        let summary = changes(&before, &after);
        assert!(
            summary.contains("changed GET /a: a (a.wasm) -> a (echo.wasm)"),
            "{summary}"
        );
        assert!(summary.contains("added GET /c -> c (c.wasm)"), "{summary}");
        assert!(
            summary.contains("removed GET /b -> b (b.wasm)"),
            "{summary}"
        );
        assert_eq!(
            changes(&before, &before),
            "same routes; components loaded afresh"
        );
    }
}
