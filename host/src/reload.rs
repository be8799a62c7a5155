//! Hot reload: on SIGHUP, or when the configuration or a component file
//! changes (`--watch`), load and compile the new configuration in the
//! background, then swap the route table in one step. Requests already
//! running finish on their old instances; new ones go to the new table. A
//! configuration or component that does not load leaves the old table in
//! service. Every attempt is logged with what changed.

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
use crate::dispatch::Dispatcher;
use crate::routes::Routes;
use crate::services::{Plan, Supervisor};

/// How often `--watch` looks at the files.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Everything a reload needs.
pub(crate) struct Reloader {
    pub(crate) config_path: PathBuf,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) operator: OperatorRules,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) admin: Arc<Admin>,
    pub(crate) listen_address: std::net::SocketAddr,
    /// The services, restarted when their entry or component changes.
    pub(crate) supervisor: Arc<Supervisor>,
    /// The operator's `--allow-listen` rules.
    pub(crate) listen_rules: TcpAllowlist,
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
            .chain(config.services.iter().map(|service| &service.component));
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
    fn load(&self) -> anyhow::Result<(Routes, Plan)> {
        let config = Config::load(&self.config_path)?;
        crate::commands::common::log_warnings(&config);
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
        let plan = self.supervisor.plan(
            &self.runtime,
            config.services,
            &self.operator,
            &self.listen_rules,
        )?;
        let routes =
            crate::routes::load(&self.runtime, config.routes, &self.operator, plan.flags())?;
        Ok((routes, plan))
    }

    /// One reload attempt; `why` says what asked for it.
    async fn reload(self: &Arc<Self>, why: &str, current: &mut BTreeMap<String, String>) {
        tracing::info!("reload ({why}): loading {}", self.config_path.display());
        let this = self.clone();
        let loaded = tokio::task::spawn_blocking(move || this.load())
            .await
            .context("the reload task failed")
            .and_then(|result| result);
        match loaded {
            Ok(_) if self.supervisor.is_stopping() => tracing::info!(
                "reload ({why}) dropped: the host is shutting down; the routes and services stay as they are"
            ),
            Ok((routes, plan)) => {
                // Services first: a route to a new service finds it
                // starting.
                let services = self.supervisor.apply(plan).await;
                let after = describe(&routes);
                let summary = changes(current, &after);
                self.admin.set_routes(&routes);
                self.dispatcher.replace_routes(routes);
                tracing::info!(
                    "reload ({why}): now serving {} routes; {summary}; {services}",
                    after.len()
                );
                *current = after;
            }
            Err(error) => tracing::error!(
                "reload ({why}) failed; the previous routes stay in service: {error:#}"
            ),
        }
    }

    /// Reloads on SIGHUP, and on file changes when `watch` is set, until
    /// the process exits.
    pub(crate) async fn run(
        self: Arc<Self>,
        mut hangup: Signal,
        mut current: BTreeMap<String, String>,
        watch: bool,
    ) {
        // Without `--watch` no file is watched: the configuration is not
        // read a second time at startup.
        let watched = |path: &Path| {
            if watch {
                watched_files(path)
            } else {
                Vec::new()
            }
        };
        let mut files = watched(&self.config_path);
        let mut seen = modified(&files);
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    self.reload("SIGHUP", &mut current).await;
                }
                _ = ticks.tick(), if watch => {
                    if modified(&files) == seen {
                        continue;
                    }
                    self.reload("a watched file changed", &mut current).await;
                }
            }
            files = watched(&self.config_path);
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
