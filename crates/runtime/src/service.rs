//! Long-running services: `wasi:cli` command components that the host
//! runs next to its handlers, for as long as they run. Unlike a handler a
//! service keeps its state (one instance per run), may bind and listen on
//! the addresses the operator allows (`--allow-listen`), and has no
//! deadline. Every run happens on the slow lane, at the lowest CPU
//! priority, so that a service that spins cannot starve the handlers.
//!
//! The supervision (restart, backoff, shutdown) is the host's; this module
//! runs one life of a service and says how it ended.

use std::sync::Arc;

use serverless_outbound::TcpAllowlist;
use tokio::sync::watch;
use wasmtime::Store;
use wasmtime::component::{Component, ResourceTable};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::guest_log::{LogTags, Secrets};
use crate::handles::RequestHandles;
use crate::host::outbound_http::{HttpClient, OutboundHttp};
use crate::host::outbound_tcp::{OutboundTcp, TcpSettings};
use crate::host::response_body::ResponseBodyState;
use crate::legacy::LegacyState;
use crate::limits::InstanceLimiter;
use crate::load::LoadProblem;
use crate::state::{InstanceState, WasiRecipe};
use crate::stdio::{GuestOutput, StderrTail};

/// How long a stopped run may take to let go of its instance.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a service's output budget (that of one request) starts over.
const OUTPUT_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// A service ready to run: its component pre-instantiated for the
/// `wasi:cli` command world, and what each run gets.
pub struct Service {
    name: Arc<str>,
    pre: CommandPre<InstanceState>,
    args: Vec<String>,
    env: Arc<[(String, String)]>,
    /// Where it may bind and listen: the operator's `--allow-listen`
    /// rules, narrowed by its `listen` entries.
    listen: Arc<TcpAllowlist>,
    tcp: TcpSettings,
    http: Arc<HttpClient>,
    max_memory: usize,
    max_runtime: Option<std::time::Duration>,
    /// Its `from_env` values, replaced in every line written for it.
    secrets: Arc<Secrets>,
    /// Host folders opened for each run.
    files: Vec<serverless_config::Mount>,
    /// The SHA-256 of the component's bytes, as compiled.
    digest: [u8; 32],
    /// Its `publish` rules and limits.
    messaging: Arc<serverless_messaging::MessagingPolicy>,
    shared: crate::app::Shared,
}

/// How one run of a service ended.
#[derive(Debug)]
pub enum RunEnd {
    /// `wasi:cli/run` returned, or the program called `exit`.
    Exited(i32),
    /// The guest trapped; the trap with its backtrace.
    Trapped(String),
    /// The host asked it to stop.
    Stopped,
    /// It ran past its `max_runtime`, and the host stopped it.
    OutOfTime(std::time::Duration),
}

impl RunEnd {
    /// Whether the run ended in failure: a trap, or a non-zero status.
    pub fn failed(&self) -> bool {
        match self {
            RunEnd::Trapped(_) => true,
            RunEnd::Exited(code) => *code != 0,
            RunEnd::OutOfTime(_) => true,
            RunEnd::Stopped => false,
        }
    }
}

impl std::fmt::Display for RunEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunEnd::Exited(code) => write!(f, "exited with status {code}"),
            RunEnd::Trapped(trap) => write!(f, "trapped: {trap}"),
            RunEnd::Stopped => f.write_str("stopped by the host"),
            RunEnd::OutOfTime(limit) => {
                write!(f, "stopped: it ran past its max_runtime of {limit:?}")
            }
        }
    }
}

/// What a service is built from, besides its component.
pub struct ServiceSettings {
    /// Its name, unique among apps and services.
    pub name: String,
    /// Its arguments after the program name.
    pub args: Vec<String>,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// Where it may bind and listen.
    pub listen: TcpAllowlist,
    /// Its outbound TCP policy and limits.
    pub tcp: TcpSettings,
    /// How large its memories may grow, in bytes.
    pub max_memory: u64,
    /// How long one run may last.
    pub max_runtime: Option<std::time::Duration>,
    /// Values from the host's environment, kept out of the log.
    pub secrets: Vec<String>,
    /// Host folders it sees as preopened directories.
    pub files: Vec<serverless_config::Mount>,
    /// What it may send through `wasi:messaging`.
    pub messaging: serverless_config::MessagingRules,
}

impl crate::engine::Runtime {
    /// Compiles `source` (through the compile cache) and pre-instantiates
    /// it as a `wasi:cli` command for a service.
    pub fn load_service(
        &self,
        source: &serverless_config::ComponentSource,
        settings: ServiceSettings,
        http: serverless_outbound::HttpAllowlist,
    ) -> Result<Service, LoadProblem> {
        let (component, digest): (Component, [u8; 32]) = self.compile_component(source)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(CommandPre::new)
            .map_err(LoadProblem::NotACommand)?;
        let timeouts = (settings.tcp.connect_timeout, settings.tcp.io_timeout);
        let messaging = Arc::new(settings.messaging.policy(&settings.name));
        Ok(Service {
            name: settings.name.into(),
            pre,
            args: settings.args,
            env: settings.env.into(),
            listen: Arc::new(settings.listen),
            tcp: settings.tcp,
            http: Arc::new(HttpClient::new(
                http,
                timeouts,
                self.slow_lane.clone(),
                self.handles.clone(),
            )),
            max_memory: usize::try_from(settings.max_memory).unwrap_or(usize::MAX),
            max_runtime: settings.max_runtime,
            secrets: Arc::new(Secrets::new(&settings.secrets)),
            files: settings.files,
            digest,
            messaging,
            shared: self.shared(),
        })
    }
}

impl Service {
    /// The service's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The SHA-256 of the component's bytes, as compiled: a reload whose
    /// file has the same digest leaves the service running.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Runs the service once, on the slow lane, until it ends or `stop`
    /// turns true. `run` numbers the life, for its log lines.
    pub async fn run(&self, run: u64, mut stop: watch::Receiver<bool>) -> RunEnd {
        let mut store = match self.store(run) {
            Ok(store) => store,
            Err(error) => return RunEnd::Trapped(format!("{error:#}")),
        };
        let pre = self.pre.clone();
        let output = store.data().output.clone();
        let life = async move {
            let outcome = async {
                let command = pre.instantiate_async(&mut store).await?;
                command.wasi_cli_run().call_run(&mut store).await
            }
            .await;
            store.data().output.finish();
            match outcome {
                Ok(Ok(())) => RunEnd::Exited(0),
                Ok(Err(())) => RunEnd::Exited(1),
                Err(error) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => RunEnd::Exited(exit.0),
                    None => RunEnd::Trapped(crate::app::describe_trap(&error)),
                },
            }
        };
        let mut task = self.shared.slow_lane.spawn_service(life);
        // The output budget is per request for handlers; a service gets a
        // fresh one every period, so that it is heard for its whole life
        // and still cannot flood the log.
        let renew = async {
            let mut period = tokio::time::interval(OUTPUT_PERIOD);
            period.tick().await;
            loop {
                period.tick().await;
                output.renew_budget();
            }
        };
        let out_of_time = async {
            match self.max_runtime {
                Some(limit) => {
                    tokio::time::sleep(limit).await;
                    limit
                }
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            // A panic in the host's side of the run is a failure, not a
            // stop: the supervisor restarts the service.
            ended = &mut task => return ended.unwrap_or_else(|failed| {
                if failed.is_panic() {
                    RunEnd::Trapped("the host's side of the run panicked".to_owned())
                } else {
                    RunEnd::Stopped
                }
            }),
            _ = stop.wait_for(|stop| *stop) => RunEnd::Stopped,
            () = renew => RunEnd::Stopped,
            limit = out_of_time => RunEnd::OutOfTime(limit),
        };
        // The instance stops at its next epoch tick or wait; its store (its
        // listener and connections) is gone once the task has ended, so a
        // next run can bind the same address.
        task.abort();
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!(
                service = &*self.name,
                run,
                "the run did not stop within {STOP_GRACE:?}"
            );
        }
        output.finish();
        end
    }

    /// A fresh store for one run: WASI with its arguments, environment,
    /// output to the log, and sockets under its listen and connect rules.
    fn store(&self, run: u64) -> wasmtime::Result<Store<InstanceState>> {
        let tags = LogTags {
            app: self.name.clone(),
            request_id: format!("run-{run}").into(),
            secrets: self.secrets.clone(),
        };
        let output = GuestOutput::new(tags.clone(), StderrTail::default());
        let recipe = WasiRecipe {
            env: self.env.clone(),
            output: output.clone(),
            tcp_allowlist: self.tcp.allowlist.clone(),
            denials: self.shared.denials.clone(),
        };
        let mut builder = recipe.builder_listening(self.listen.clone());
        let mut argv = vec![self.name.to_string()];
        argv.extend(self.args.iter().cloned());
        builder.args(&argv);
        // Each mounted folder is an open directory for the whole run.
        let handles = RequestHandles::new(self.shared.handles.clone(), self.files.len())?;
        for mount in &self.files {
            crate::state::mount(&mut builder, mount)?;
        }
        let state = InstanceState {
            table: ResourceTable::new(),
            wasi: Some(builder.build()),
            wasi_recipe: recipe,
            http: WasiHttpCtx::new(),
            response_body: ResponseBodyState::new(tags),
            http_outbound: OutboundHttp {
                client: self.http.clone(),
                output: output.clone(),
                denials: self.shared.denials.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    usize::try_from(self.tcp.max_connections).unwrap_or(usize::MAX),
                )),
            },
            limits: InstanceLimiter {
                max_memory: self.max_memory,
                peak_memory: 0,
            },
            output,
            tcp: OutboundTcp::new(self.tcp.clone(), self.shared.denials.clone()),
            handles,
            call: None,
            legacy: LegacyState::default(),
            messaging: crate::host::messaging::MessagingCtx::new(
                self.shared.broker.clone(),
                self.messaging.clone(),
            ),
            _running: self.shared.contention.enter(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        // No deadline: every epoch tick the service yields, so that the
        // slow lane's threads take turns.
        store.epoch_deadline_async_yield_and_update(1);
        if self.shared.fuel_metered {
            store.set_fuel(u64::MAX)?;
        }
        Ok(store)
    }
}
