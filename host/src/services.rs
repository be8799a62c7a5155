//! Supervision of the `[[services]]`: each runs from startup, and one that
//! ends is started again as its `restart` says, after a backoff that
//! doubles from 100 ms to 30 s and starts over after a minute of healthy
//! running. Every start and end is a log line (with the exit status, or the
//! trap and its backtrace); the guest's own lines carry the service's name
//! and the run's number. On shutdown, after the HTTP drain, every service
//! is stopped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use serverless_config::{Location, Restart, ServiceConfig, TcpRule};
use serverless_outbound::{Decision, TcpAllowlist};
use serverless_runtime::{OperatorRules, RunEnd, Runtime, Service, ServiceSettings, TcpSettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first pause before a restart.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before a restart.
const MOST_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(60);

/// What each service is doing, for `/services`, `/readyz` and `/metrics`,
/// in the configuration's order.
pub(crate) struct Statuses {
    services: Mutex<Vec<Arc<Tracked>>>,
}

/// One service's state, kept by its supervisor task.
pub(crate) struct Tracked {
    status: Mutex<Status>,
    /// Whether a run is going, for the proxy of the routes to it, which
    /// reads it on every request without taking the lock.
    up: Arc<AtomicBool>,
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

impl Tracked {
    /// A service not yet started.
    fn new(name: Arc<str>, restart: Restart) -> Arc<Tracked> {
        Arc::new(Tracked {
            status: Mutex::new(Status {
                name,
                restart,
                running_since: None,
                runs: 0,
                last_end: None,
                finished: restart == Restart::Never,
            }),
            up: Arc::new(AtomicBool::new(false)),
        })
    }

    fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Status)) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut status);
        self.up
            .store(status.running_since.is_some(), Ordering::Release);
    }
}

impl Statuses {
    /// No services yet.
    pub(crate) fn new() -> Arc<Statuses> {
        Arc::new(Statuses {
            services: Mutex::new(Vec::new()),
        })
    }

    /// A copy of every service's state.
    pub(crate) fn snapshot(&self) -> Vec<Status> {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|tracked| tracked.status())
            .collect()
    }

    /// Whether every service that must run is running.
    pub(crate) fn all_up(&self) -> bool {
        self.snapshot()
            .iter()
            .all(|status| !status.needed() || status.running_since.is_some())
    }

    fn set(&self, services: Vec<Arc<Tracked>>) {
        *self.services.lock().unwrap_or_else(PoisonError::into_inner) = services;
    }
}

/// Whether each service is running, by name, for the routes to it.
pub(crate) type UpFlags = HashMap<String, Arc<AtomicBool>>;

/// A service loaded and ready to start.
pub(crate) struct Loaded {
    service: Arc<Service>,
    config: ServiceConfig,
    /// The SHA-256 of its component's bytes.
    digest: Digest,
    tracked: Arc<Tracked>,
}

/// A component's SHA-256.
type Digest = [u8; 32];

/// The up flags of `services`.
pub(crate) fn up_flags(services: &[Loaded]) -> UpFlags {
    services
        .iter()
        .map(|loaded| (loaded.config.name.clone(), loaded.tracked.up.clone()))
        .collect()
}

/// The running services, each stopped on its own (a reload) or all
/// together (shutdown).
///
/// Reloads are planned and applied one at a time: the host's one reload
/// task calls [`Supervisor::plan`] and then [`Supervisor::apply`], and
/// nothing else does; `plan` reads the services as the last `apply` left
/// them.
pub(crate) struct Supervisor {
    statuses: Arc<Statuses>,
    /// Set when the host starts shutting down: from then on a reload
    /// changes nothing.
    stopping: AtomicBool,
    running: tokio::sync::Mutex<Crew>,
    /// What a reload compares with: each running service's entry and
    /// digest. A copy of `running`'s, readable without the async lock.
    known: Mutex<Vec<(ServiceConfig, Digest, Arc<Tracked>)>>,
}

/// The services under supervision, and whether the host is stopping them
/// for good (after which a reload starts none).
struct Crew {
    services: Vec<Running>,
    stopped: bool,
}

/// One service under supervision.
struct Running {
    name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a reload does to the services: the new list, in order, each
/// kept as it runs or started afresh, and the up flags of the new list.
pub(crate) struct Plan {
    next: Vec<Next>,
    flags: UpFlags,
}

impl Plan {
    /// Whether each service of the new list is running, by name.
    pub(crate) fn flags(&self) -> &UpFlags {
        &self.flags
    }
}

enum Next {
    /// Unchanged: it keeps running.
    Keep(String),
    /// New or changed: started afresh (after the old one stops).
    Start(Box<Loaded>),
}

impl Supervisor {
    /// Starts every service under its restart rule, reporting into
    /// `statuses`.
    pub(crate) fn start(services: Vec<Loaded>, statuses: Arc<Statuses>) -> Arc<Supervisor> {
        let (running, known) = services.into_iter().map(launch).unzip();
        let supervisor = Arc::new(Supervisor {
            statuses,
            stopping: AtomicBool::new(false),
            running: tokio::sync::Mutex::new(Crew {
                services: running,
                stopped: false,
            }),
            known: Mutex::new(known),
        });
        supervisor.publish();
        supervisor
    }

    /// Shows the known services, in order, at the admin endpoints.
    fn publish(&self) {
        let tracked = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, _, tracked)| tracked.clone())
            .collect();
        self.statuses.set(tracked);
    }

    /// What a reload to `configs` would do: keeps each service whose
    /// entry runs alike and whose component has the same bytes, and loads
    /// the others (new or changed). Nothing changes yet; an error leaves
    /// every service as it is.
    pub(crate) fn plan(
        &self,
        runtime: &Runtime,
        configs: Vec<ServiceConfig>,
        operator: &OperatorRules,
        listen: &TcpAllowlist,
    ) -> anyhow::Result<Plan> {
        let known: Vec<(ServiceConfig, Digest, Arc<Tracked>)> = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut next = Vec::with_capacity(configs.len());
        let mut flags = UpFlags::new();
        for config in configs {
            let digest = runtime
                .component_digest(&config.component)
                .map_err(|problem| {
                    anyhow::anyhow!(
                        "{}service `{}` ({}): {problem}",
                        config
                            .location
                            .as_ref()
                            .map(|l| format!("{l}: "))
                            .unwrap_or_default(),
                        config.name,
                        config.component
                    )
                })?;
            let same = known.iter().find(|(running, running_digest, _)| {
                running.runs_like(&config) && *running_digest == digest
            });
            match same {
                Some((_, _, tracked)) => {
                    flags.insert(config.name.clone(), tracked.up.clone());
                    next.push(Next::Keep(config.name));
                }
                None => {
                    let mut loaded = load(runtime, vec![config], operator, listen)?;
                    let loaded = loaded.remove(0);
                    flags.insert(loaded.config.name.clone(), loaded.tracked.up.clone());
                    next.push(Next::Start(Box::new(loaded)));
                }
            }
        }
        Ok(Plan { next, flags })
    }

    /// Carries out a reload's plan: stops the services it does not keep
    /// (removed or changed) and waits for them to end, then starts the
    /// new and changed ones. Returns what it did, for the reload's line.
    pub(crate) async fn apply(&self, plan: Plan) -> String {
        let mut crew = self.running.lock().await;
        if crew.stopped || self.is_stopping() {
            return "services left alone: the host is stopping".to_owned();
        }
        let running = &mut crew.services;
        let kept: HashSet<&str> = plan
            .next
            .iter()
            .filter_map(|next| match next {
                Next::Keep(name) => Some(name.as_str()),
                Next::Start(_) => None,
            })
            .collect();
        let (mut staying, leaving): (Vec<Running>, Vec<Running>) = running
            .drain(..)
            .partition(|service| kept.contains(service.name.as_str()));
        // All stopped at once, then awaited: each may take its grace.
        for service in &leaving {
            let _ = service.stop.send(true);
        }
        let mut stopped = Vec::new();
        for service in leaving {
            let _ = service.task.await;
            stopped.push(service.name);
        }
        let mut known: Vec<(ServiceConfig, Digest, Arc<Tracked>)> =
            std::mem::take(&mut *self.known.lock().unwrap_or_else(PoisonError::into_inner));
        let (mut kept_names, mut started) = (Vec::new(), Vec::new());
        for next in plan.next {
            match next {
                Next::Keep(name) => {
                    if let Some(at) = staying.iter().position(|service| service.name == name) {
                        running.push(staying.swap_remove(at));
                    }
                    if let Some(at) = known.iter().position(|(config, _, _)| config.name == name) {
                        self.known
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(known.swap_remove(at));
                    }
                    kept_names.push(name);
                }
                Next::Start(loaded) => {
                    started.push(loaded.config.name.clone());
                    // A restarted service goes on counting its runs, so that
                    // its restarts (a reload's among them) only grow.
                    if let Some((_, _, old)) = known
                        .iter()
                        .find(|(config, _, _)| config.name == loaded.config.name)
                    {
                        let runs = old.status().runs;
                        loaded.tracked.update(|status| status.runs = runs);
                    }
                    let (service, entry) = launch(*loaded);
                    running.push(service);
                    self.known
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(entry);
                }
            }
        }
        self.publish();
        let restarted: Vec<&String> = started
            .iter()
            .filter(|name| stopped.contains(*name))
            .collect();
        let list = |names: Vec<&String>| {
            names
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        for (what, names) in [
            ("kept", kept_names.iter().collect::<Vec<_>>()),
            ("restarted", restarted.clone()),
            (
                "started",
                started
                    .iter()
                    .filter(|name| !restarted.contains(name))
                    .collect(),
            ),
            (
                "stopped",
                stopped
                    .iter()
                    .filter(|name| !started.contains(*name))
                    .collect(),
            ),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", list(names)));
            }
        }
        if parts.is_empty() {
            "no services".to_owned()
        } else {
            format!("services: {}", parts.join("; "))
        }
    }

    /// The host has begun to shut down: reloads change nothing from now on.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether the host is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops every service and waits for them to end; a reload after it
    /// starts none.
    pub(crate) async fn stop(&self) {
        let mut crew = self.running.lock().await;
        crew.stopped = true;
        for service in &crew.services {
            let _ = service.stop.send(true);
        }
        for service in crew.services.drain(..) {
            let _ = service.task.await;
        }
    }
}

/// Starts one service's supervisor task: the handle that stops it, and
/// what a reload compares with.
fn launch(loaded: Loaded) -> (Running, (ServiceConfig, Digest, Arc<Tracked>)) {
    let Loaded {
        service,
        config,
        digest,
        tracked,
    } = loaded;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(supervise(service, config.restart, stopped, tracked.clone()));
    let name = config.name.clone();
    (Running { name, stop, task }, (config, digest, tracked))
}

/// Makes each configured service ready to run. Its `listen` entries must
/// each lie within an `--allow-listen` rule, and its `allowed_tcp` and
/// `allowed_http` within the operator's rules, or the host does not start.
pub(crate) fn load(
    runtime: &Runtime,
    services: Vec<ServiceConfig>,
    operator: &OperatorRules,
    listen: &TcpAllowlist,
) -> anyhow::Result<Vec<Loaded>> {
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
            if let Some((address, location)) = &config.http
                && let Decision::Denied(_) = listen.decide(address.ip(), address.port(), None)
            {
                let rules = if listen.is_empty() {
                    "it may listen nowhere: no --allow-listen rules were given".to_owned()
                } else {
                    format!("it may listen on {}", listen.describe())
                };
                anyhow::bail!(
                    "{}{who}: http address {address} is outside the addresses the service may listen on ({rules}); the service could never answer there, so allow it with --allow-listen (and in `listen`, if the entry has one) or change `http`",
                    at(Some(location))
                );
            }
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
                args: config.args.clone(),
                env: config.env.clone(),
                listen,
                tcp: TcpSettings {
                    allowlist: Arc::new(tcp),
                    connect_timeout: config.outbound.connect_timeout,
                    io_timeout: config.outbound.io_timeout,
                    max_connections: config.outbound.max_connections,
                },
                max_memory: config.max_memory,
                max_runtime: config.max_runtime,
                secrets: config.secrets.clone(),
                files: config.files.clone(),
                messaging: config.messaging.clone(),
            };
            let service = runtime
                .load_service(&config.component, settings, http)
                .map_err(|problem| anyhow::anyhow!("{owner}: {problem}"))
                .context("cannot load the services")?;
            Ok(Loaded {
                digest: service.digest(),
                service: Arc::new(service),
                tracked: Tracked::new(config.name.as_str().into(), config.restart),
                config,
            })
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

/// Runs `service` until it should not run again or the host stops.
async fn supervise(
    service: Arc<Service>,
    restart: Restart,
    mut stop: watch::Receiver<bool>,
    tracked: Arc<Tracked>,
) {
    let name = service.name().clone();
    let mut short_runs = 0u32;
    let first = tracked.status().runs + 1;
    for run in first.. {
        tracing::info!(service = &*name, run, "service started");
        let started = tokio::time::Instant::now();
        tracked.update(|status| {
            status.runs = run;
            status.running_since = Some(std::time::Instant::now());
        });
        let end = service.run(run, stop.clone()).await;
        let lasted = started.elapsed();
        tracked.update(|status| {
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
            tracked.update(|status| status.finished = true);
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
