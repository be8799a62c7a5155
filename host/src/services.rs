//! Supervision of the `[[services]]`: each runs from startup, and one that
//! ends is started again as its `restart` says, after a backoff that
//! doubles from 100 ms to 30 s and starts over after a minute of healthy
//! running. Every start and end is a log line (with the exit status, or the
//! trap and its backtrace); the guest's own lines carry the service's name
//! and the run's number. On shutdown, after the HTTP drain, every service
//! is stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serverless_config::{Location, Restart, ServiceConfig, TcpRule};
use serverless_outbound::TcpAllowlist;
use serverless_runtime::{OperatorRules, RunEnd, Runtime, Service, ServiceSettings, TcpSettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first pause before a restart.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before a restart.
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(60);

/// What each service is doing, for `/services`, `/readyz` and `/metrics`.
pub(crate) struct Statuses {
    services: std::sync::Mutex<Vec<Status>>,
}

/// One service's state.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) name: Arc<str>,
    pub(crate) restart: Restart,
    /// Since when the current run has been running; `None` while it is
    /// down (waiting to restart, or ended for good).
    pub(crate) running_since: Option<std::time::Instant>,
    /// Runs started so far.
    pub(crate) runs: u64,
    /// How the last run ended, if one has.
    pub(crate) last_end: Option<String>,
    /// Set once it will not be started again.
    pub(crate) finished: bool,
}

impl Status {
    /// Runs after the first.
    pub(crate) fn restarts(&self) -> u64 {
        self.runs.saturating_sub(1)
    }

    /// Whether the host counts as not ready while this service is down:
    /// every service that will be started again (not one that runs once,
    /// nor an `on-failure` one that ended well).
    pub(crate) fn needed(&self) -> bool {
        !self.finished
    }
}

impl Statuses {
    /// Every service not yet started.
    pub(crate) fn new(services: &[(Arc<Service>, Restart)]) -> Arc<Statuses> {
        Arc::new(Statuses {
            services: std::sync::Mutex::new(
                services
                    .iter()
                    .map(|(service, restart)| Status {
                        name: service.name().clone(),
                        restart: *restart,
                        running_since: None,
                        runs: 0,
                        last_end: None,
                        finished: *restart == Restart::Never,
                    })
                    .collect(),
            ),
        })
    }

    /// A copy of every service's state.
    pub(crate) fn snapshot(&self) -> Vec<Status> {
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether every service that must run is running.
    pub(crate) fn all_up(&self) -> bool {
        self.snapshot()
            .iter()
            .all(|status| !status.needed() || status.running_since.is_some())
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Status)) {
        let mut services = self
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(status) = services.get_mut(index) {
            change(status);
        }
    }
}

/// The running services, stopped together.
pub(crate) struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts every service under its restart rule.
    /// Starts every service under its restart rule, reporting into
    /// `statuses` (made from the same list).
    pub(crate) fn start(
        services: Vec<(Arc<Service>, Restart)>,
        statuses: Arc<Statuses>,
    ) -> Supervisor {
        let (stop, stopped) = watch::channel(false);
        let tasks = services
            .into_iter()
            .enumerate()
            .map(|(index, (service, restart))| {
                let status = Reporter {
                    statuses: statuses.clone(),
                    index,
                };
                tokio::spawn(supervise(service, restart, stopped.clone(), status))
            })
            .collect();
        Supervisor { stop, tasks }
    }

    /// Stops every service and waits for them to end.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Makes each configured service ready to run. Its `listen` entries must
/// each lie within an `--allow-listen` rule, and its `allowed_tcp` and
/// `allowed_http` within the operator's rules, or the host does not start.
pub(crate) fn load(
    runtime: &Runtime,
    services: Vec<ServiceConfig>,
    operator: &OperatorRules,
    listen: &TcpAllowlist,
) -> anyhow::Result<Vec<(Arc<Service>, Restart)>> {
    services
        .into_iter()
        .map(|config| {
            let who = format!("service `{}` ({})", config.name, config.component);
            let at = |location: Option<&Location>| {
                location
                    .or(config.location.as_ref())
                    .map(|location| format!("{location}: "))
                    .unwrap_or_default()
            };
            let owner = format!("{}{who}", at(None));
            let listen = narrowed(listen, config.listen.as_deref(), "listen", "--allow-listen")
                .map_err(|(location, message)| anyhow::anyhow!("{}{who}: {message}", at(location)))?;
            let tcp = narrowed(
                &operator.tcp,
                config.outbound.allowed_tcp.as_deref(),
                "allowed_tcp",
                "--allow-tcp",
            )
            .map_err(|(location, message)| anyhow::anyhow!("{}{who}: {message}", at(location)))?;
            let http = match &config.outbound.allowed_http {
                None => operator.http.clone(),
                Some(entries) => operator
                    .http
                    .narrow(entries.iter().map(|(rule, _)| rule.clone()).collect())
                    .map_err(|uncovered| {
                        anyhow::anyhow!(
                            "{owner}: allowed_http entry `{uncovered}` is not covered by the operator's --allow-http rules; a service may only narrow them"
                        )
                    })?,
            };
            let settings = ServiceSettings {
                name: config.name.clone(),
                args: config.args,
                env: config.env,
                listen,
                tcp: TcpSettings {
                    allowlist: Arc::new(tcp),
                    connect_timeout: config.outbound.connect_timeout,
                    io_timeout: config.outbound.io_timeout,
                    max_connections: config.outbound.max_connections,
                },
                max_memory: config.max_memory,
                max_runtime: config.max_runtime,
                secrets: config.secrets,
            };
            let service = runtime
                .load_service(&config.component, settings, http)
                .map_err(|problem| anyhow::anyhow!("{owner}: {problem}"))
                .context("cannot load the services")?;
            Ok((Arc::new(service), config.restart))
        })
        .collect()
}

/// `operator`'s rules narrowed by a service's `entries` for `key`, or
/// where the uncovered entry is written and the error naming it, the flag
/// and the operator's rules.
fn narrowed<'a>(
    operator: &TcpAllowlist,
    entries: Option<&'a [(TcpRule, Location)]>,
    key: &str,
    flag: &str,
) -> Result<TcpAllowlist, (Option<&'a Location>, String)> {
    let Some(entries) = entries else {
        return Ok(operator.clone());
    };
    operator
        .narrow(entries.iter().map(|(rule, _)| rule.clone()).collect())
        .map_err(|uncovered| {
            let given = if operator.rules().is_empty() {
                format!("no {flag} rules were given")
            } else {
                let rules: Vec<String> = operator.rules().iter().map(ToString::to_string).collect();
                format!("the operator's {flag} rules are {}", rules.join(", "))
            };
            let location = entries
                .iter()
                .find(|(rule, _)| *rule == uncovered)
                .map(|(_, location)| location);
            (
                location,
                format!(
                    "{key} entry `{uncovered}` is not covered by {flag} ({given}); a service may only narrow the operator's rules, so remove the entry or ask the operator to allow it"
                ),
            )
        })
}

/// Whether a run that ended so is followed by another.
fn restarts(restart: Restart, end: &RunEnd) -> bool {
    match (restart, end) {
        (_, RunEnd::Stopped) => false,
        (Restart::Always, _) => true,
        (Restart::OnFailure, end) => end.failed(),
        (Restart::Never, _) => false,
    }
}

/// The pause before the next run, after `failures` short runs in a row.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(MOST_BACKOFF)
}

/// Where one service's supervisor reports.
struct Reporter {
    statuses: Arc<Statuses>,
    index: usize,
}

/// Runs `service` until it should not run again or the host stops.
async fn supervise(
    service: Arc<Service>,
    restart: Restart,
    mut stop: watch::Receiver<bool>,
    status: Reporter,
) {
    let name = service.name().clone();
    let mut short_runs = 0u32;
    for run in 1u64.. {
        tracing::info!(service = &*name, run, "service started");
        let started = tokio::time::Instant::now();
        status.statuses.update(status.index, |status| {
            status.runs = run;
            status.running_since = Some(std::time::Instant::now());
        });
        let end = service.run(run, stop.clone()).await;
        let lasted = started.elapsed();
        status.statuses.update(status.index, |status| {
            status.running_since = None;
            status.last_end = Some(end.to_string());
        });
        match &end {
            RunEnd::Stopped => tracing::info!(service = &*name, run, "service {end}"),
            end if end.failed() => {
                tracing::warn!(service = &*name, run, "service {end} after {lasted:?}")
            }
            end => tracing::info!(service = &*name, run, "service {end} after {lasted:?}"),
        }
        if !restarts(restart, &end) {
            status
                .statuses
                .update(status.index, |status| status.finished = true);
            return;
        }
        short_runs = if lasted >= HEALTHY {
            0
        } else {
            short_runs.saturating_add(1)
        };
        let pause = backoff(short_runs.saturating_sub(1));
        tracing::info!(service = &*name, run, "restarting the service in {pause:?}");
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(9), Duration::from_secs(30));
        assert_eq!(backoff(100), Duration::from_secs(30));
    }

    #[test]
    fn each_rule_restarts_what_it_says() {
        let failed = RunEnd::Exited(3);
        let clean = RunEnd::Exited(0);
        let trapped = RunEnd::Trapped("unreachable".into());
        assert!(restarts(Restart::Always, &clean));
        assert!(restarts(Restart::OnFailure, &failed));
        assert!(restarts(Restart::OnFailure, &trapped));
        assert!(!restarts(Restart::OnFailure, &clean));
        assert!(!restarts(Restart::Never, &failed));
        assert!(!restarts(Restart::Always, &RunEnd::Stopped));
    }
}
