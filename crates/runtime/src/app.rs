//! One configured app, ready to serve: a pre-instantiated component plus
//! the settings each of its requests gets.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serverless_config::{AppConfig, AppLimits, Mount, World};
use std::time::Duration;
use wasmtime::component::ResourceTable;

use tokio::time::Instant;
use tracing::Instrument as _;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::bindings::HandlerPre;
use crate::denials::Denials;
use crate::guest_log::{LogTags, Secrets};
use crate::handles::{HandleRefusal, HostHandles, RequestHandles};
use crate::host::outbound_http::{HttpClient, OutboundHttp};
use crate::host::outbound_tcp::{OutboundTcp, TcpSettings};
use crate::host::response::{MAX_HEAD_BYTES, MAX_HEADERS};
use crate::lanes::{self, LaneError, LongRunning, SlowLane};
use crate::limits::{
    Contention, DeadlineExceeded, InstanceLimiter, LONG_RUNNING_SLICES, trap_kind,
};
use crate::request::IncomingRequest;
use crate::response::{GuestResponse, InvocationStats};
use crate::state::{HandlerCall, InstanceState, WasiRecipe};
use crate::stdio::{GuestOutput, StderrTail};

/// How many host resources (streams, pollables, sockets, ...) one request
/// may hold at once; past it the call that would create one traps.
const MAX_RESOURCES: usize = 10_000;

/// The pre-instantiated component, by world.
pub(crate) enum Entry {
    Handler(HandlerPre<InstanceState>),
    WasiHttp(ProxyPre<InstanceState>),
}

/// A configured app whose component is compiled and pre-instantiated.
pub struct App {
    name: Arc<str>,
    component: String,
    env: Arc<[(String, String)]>,
    secrets: Arc<Secrets>,
    files: Vec<Mount>,
    max_request_body: u64,
    limits: AppLimits,
    fuel_metered: bool,
    contention: Arc<Contention>,
    slow_lane: Arc<SlowLane>,
    tcp: TcpSettings,
    http: Arc<HttpClient>,
    handles: Arc<HostHandles>,
    denials: Arc<Denials>,
    entry: Entry,
}

/// What a wasi:http invocation cost, known once the guest has finished
/// writing its body, after the response has started.
pub struct LaterStats(tokio::sync::oneshot::Receiver<InvocationStats>);

impl LaterStats {
    /// Waits for the guest to finish; `None` if it never reported (the
    /// task was cancelled).
    pub async fn wait(self) -> Option<InvocationStats> {
        self.0.await.ok()
    }
}

/// Why a request could not produce a response. The details are for the
/// server log; the client only sees a generic error.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// No instance could be created (for example the pool is exhausted).
    #[error("cannot instantiate the component: {0:#}")]
    Instantiate(wasmtime::Error),
    /// The guest trapped while handling the request; with the guest's
    /// panic message when its stderr shows one.
    #[error("the handler trapped ({kind}): {}{}", describe_trap(.error), panic.as_ref().map(|p| format!("; guest stderr: {p}")).unwrap_or_default(), kind = trap_kind(.error))]
    Trap {
        /// The trap, with the guest's backtrace.
        error: wasmtime::Error,
        /// What the guest wrote to stderr about its panic.
        panic: Option<String>,
    },
    /// The guest tried to send a larger response than the app allows.
    #[error("response too large: the handler tried to send more than the app's limit of {0} bytes")]
    ResponseTooLarge(u64),
    /// The guest tried to set more response headers, or larger ones, than
    /// the host sends.
    #[error(
        "response headers too large: the handler tried to set more than {headers} headers or more than {bytes} bytes of reason phrase and headers",
        headers = MAX_HEADERS,
        bytes = MAX_HEAD_BYTES
    )]
    ResponseHeadersTooLarge,
    /// The request ran past the app's timeout, in a host call or waiting.
    #[error("deadline: the request ran longer than the app's timeout of {0:?}")]
    Deadline(Duration),
    /// A wasi:http guest answered with an error code instead of a response.
    #[error("the handler answered with the error {0:?}")]
    ErrorCode(ErrorCode),
    /// A wasi:http guest returned without setting its response.
    #[error("the handler returned without setting a response")]
    NoResponse,
    /// The request was handed to an app of the other world.
    #[error("the app serves the {0} world, not this kind of request")]
    WrongWorld(World),
    /// The request's mounted folders would take more OS handles than its
    /// budget or the host's allow.
    #[error("cannot open the mounted folders: {0}")]
    Handles(HandleRefusal),
    /// The request was stopped by the host, which is shutting down.
    #[error("the request was cancelled: the host is shutting down")]
    Cancelled,
}

impl HandleError {
    /// Whether the request ran out of time, which the client sees as `504`.
    pub fn is_deadline(&self) -> bool {
        match self {
            HandleError::Deadline(_) => true,
            HandleError::Trap { error, .. } => trap_kind(error) == "deadline",
            _ => false,
        }
    }

    /// A short name for the failure, for logs: the trap kind, or what else
    /// went wrong.
    pub fn kind(&self) -> &'static str {
        match self {
            HandleError::Instantiate(_) => "instantiate",
            HandleError::Trap { error, .. } => trap_kind(error),
            HandleError::Deadline(_) => "deadline",
            HandleError::ErrorCode(_) => "error code",
            HandleError::NoResponse => "no response",
            HandleError::WrongWorld(_) => "wrong world",
            HandleError::ResponseTooLarge(_) | HandleError::ResponseHeadersTooLarge => {
                "response too large"
            }
            HandleError::Handles(_) => "handles",
            HandleError::Cancelled => "cancelled",
        }
    }
}

/// Runs a guest call until it ends or `deadline` passes, whichever comes
/// first; time spent waiting in host calls counts too.
async fn within(
    deadline: Instant,
    timeout: Duration,
    call: impl Future<Output = Result<(), HandleError>>,
) -> Result<(), HandleError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or(Err(HandleError::Deadline(timeout)))
}

/// Instantiates a fresh instance in `store` and calls into it, both before
/// the deadline, and says what each step cost. Both worlds run their
/// requests through it; only the instance and the call differ.
async fn instantiate_and_call<I>(
    store: &mut Store<InstanceState>,
    (deadline, timeout): (Instant, Duration),
    stderr: &StderrTail,
    instantiate: impl AsyncFnOnce(&mut Store<InstanceState>) -> wasmtime::Result<I>,
    call: impl AsyncFnOnce(I, &mut Store<InstanceState>) -> wasmtime::Result<()>,
) -> (InvocationStats, Result<(), HandleError>) {
    let mut stats = InvocationStats::default();
    let started = Instant::now();
    let outcome = within(deadline, timeout, async {
        let instance = instantiate(&mut *store)
            .await
            .map_err(HandleError::Instantiate)?;
        stats.instantiate = started.elapsed();
        call(instance, &mut *store)
            .await
            .map_err(|error| trapped(error, stderr))
    })
    .await;
    // The guest has finished: what it wrote without a line end, and how
    // much of its output was over budget, go to the log now.
    store.data().output.finish();
    stats.execute = started.elapsed().saturating_sub(stats.instantiate);
    stats.peak_memory = store.data().limits.peak_memory as u64;
    (stats, outcome)
}

/// The error for a request that did not finish on the slow lane.
fn lane_failed(error: LaneError, timeout: Duration) -> HandleError {
    match error {
        LaneError::Deadline => HandleError::Deadline(timeout),
        LaneError::Cancelled => HandleError::Cancelled,
    }
}

/// A trap, with the guest's panic message when its stderr shows one.
fn trapped(error: wasmtime::Error, stderr: &StderrTail) -> HandleError {
    HandleError::Trap {
        error,
        panic: stderr.panic_message(),
    }
}

/// Above this much linear memory, a finished store is dropped on a
/// blocking thread.
const RETIRE_ELSEWHERE_BYTES: usize = 8 << 20;

/// Drops a finished request's store, then `hold` (what the request keeps
/// until its instance is gone, such as the caller's admission slot), after
/// the response has gone out. Resetting a large instance's pool slot
/// (unmapping or zeroing its memory) is system-call work that would stall
/// every request queued on this async worker, so large stores are dropped
/// on a blocking thread. Small ones, the common case, are dropped by a task
/// of their own, which runs once the current task (the one about to write
/// the response) yields: the reset is then off the request's critical path.
fn retire<H: Send + 'static>(store: Store<InstanceState>, hold: H) {
    let large = store.data().limits.peak_memory > RETIRE_ELSEWHERE_BYTES;
    let release = move || {
        drop(store);
        drop(hold);
    };
    // Lines written as the store goes (the guest's last output) stay in
    // the request's span.
    let span = tracing::Span::current();
    if large {
        tokio::task::spawn_blocking(move || span.in_scope(release));
    } else {
        tokio::spawn(async move { release() }.instrument(span));
    }
}

/// A request's store and what must be held until it is gone. However the
/// request ends (finished, failed, or cancelled because its client went
/// away, on whichever thread), the store is handed to [`retire`] on the
/// host's runtime, never reset at the slow lane's low priority, and the
/// hold is released only once the store's pool slot is free again.
struct Retiring<H: Send + 'static> {
    /// Taken only in `drop`.
    store: ManuallyDrop<Store<InstanceState>>,
    hold: ManuallyDrop<H>,
    home: tokio::runtime::Handle,
}

impl<H: Send + 'static> Retiring<H> {
    /// Takes charge of `store` and `hold`; must be called on the host's
    /// runtime.
    fn new(store: Store<InstanceState>, hold: H) -> Retiring<H> {
        Retiring {
            store: ManuallyDrop::new(store),
            hold: ManuallyDrop::new(hold),
            home: tokio::runtime::Handle::current(),
        }
    }
}

impl<H: Send + 'static> Deref for Retiring<H> {
    type Target = Store<InstanceState>;

    fn deref(&self) -> &Store<InstanceState> {
        &self.store
    }
}

impl<H: Send + 'static> DerefMut for Retiring<H> {
    fn deref_mut(&mut self) -> &mut Store<InstanceState> {
        &mut self.store
    }
}

impl<H: Send + 'static> Drop for Retiring<H> {
    fn drop(&mut self) {
        // SAFETY: both are taken exactly once, here, and not used again.
        let (store, hold) = unsafe {
            (
                ManuallyDrop::take(&mut self.store),
                ManuallyDrop::take(&mut self.hold),
            )
        };
        if lanes::on_slow_lane() {
            drop(
                self.home
                    .spawn(async move { retire(store, hold) }.in_current_span()),
            );
        } else {
            retire(store, hold);
        }
    }
}

/// A one-line description of a trap: its cause chain and, when available,
/// the guest's backtrace as `frame <- frame <- ...`.
fn describe_trap(error: &wasmtime::Error) -> String {
    // The backtrace is attached as context; it is rendered below, one
    // line, instead of in its multi-line form.
    let mut text = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("{trap}"),
        None => {
            let skip = usize::from(error.downcast_ref::<WasmBacktrace>().is_some());
            error
                .chain()
                .skip(skip)
                .map(|cause| cause.to_string())
                .collect::<Vec<_>>()
                .join(": ")
        }
    };
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames: Vec<String> = backtrace
            .frames()
            .iter()
            .map(|frame| {
                let module = frame.module().name().unwrap_or("<module>");
                match frame.func_name() {
                    Some(name) => format!("{module}!{:#}", rustc_demangle::demangle(name)),
                    None => format!("{module}!<unnamed>"),
                }
            })
            .collect();
        if !frames.is_empty() {
            text.push_str("; backtrace: ");
            text.push_str(&frames.join(" <- "));
        }
    }
    text
}

/// Where a wasi:http guest's failure goes once nobody waits for it (the
/// guest has set its response, a normal one or an error code, or its client
/// has left): the server log, tagged and redacted like the app's other
/// lines.
#[derive(Clone)]
struct LateFailure {
    app: Arc<str>,
    request_id: Arc<str>,
    secrets: Arc<Secrets>,
}

impl LateFailure {
    fn log(&self, error: &HandleError) {
        let message = self.secrets.redact(&error.to_string()).into_owned();
        tracing::error!(
            app = &*self.app,
            request_id = &*self.request_id,
            kind = error.kind(),
            "request failed after the guest set its response or its client left: {message}"
        );
    }
}

/// What every app of one runtime shares with the others.
pub(crate) struct Shared {
    /// Whether fuel metering is on for every instance.
    pub(crate) fuel_metered: bool,
    pub(crate) contention: Arc<Contention>,
    pub(crate) slow_lane: Arc<SlowLane>,
    /// The OS handles all guests may hold together.
    pub(crate) handles: Arc<HostHandles>,
    /// Where refused outbound attempts are counted.
    pub(crate) denials: Arc<Denials>,
}

impl App {
    pub(crate) fn new(
        config: AppConfig,
        shared: Shared,
        tcp: TcpSettings,
        http: Arc<HttpClient>,
        entry: Entry,
    ) -> App {
        let Shared {
            fuel_metered,
            contention,
            slow_lane,
            handles,
            denials,
        } = shared;
        App {
            name: config.name.into(),
            component: config.component.to_string(),
            env: config.env.into(),
            secrets: Arc::new(Secrets::new(&config.secrets)),
            files: config.files,
            max_request_body: config.max_request_body,
            limits: config.limits,
            fuel_metered,
            contention,
            slow_lane,
            tcp,
            http,
            handles,
            denials,
            entry,
        }
    }

    /// The app's name, for logs.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The component file or built-in component the app runs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The world the app's component implements.
    pub fn world(&self) -> World {
        match self.entry {
            Entry::Handler(_) => World::Handler,
            Entry::WasiHttp(_) => World::WasiHttp,
        }
    }

    /// The largest request body this app accepts, in bytes.
    pub fn max_request_body(&self) -> u64 {
        self.max_request_body
    }

    /// The outbound HTTP rules this app runs with.
    pub fn http_allowlist(&self) -> &serverless_outbound::HttpAllowlist {
        self.http.rules()
    }

    /// The outbound TCP rules this app runs with.
    pub fn tcp_allowlist(&self) -> &serverless_outbound::TcpAllowlist {
        &self.tcp.allowlist
    }

    /// `text` with the app's secrets replaced, for log lines about the app
    /// that the host writes itself.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.secrets.redact(text)
    }

    /// The limits each request of this app runs under.
    pub fn limits(&self) -> &AppLimits {
        &self.limits
    }

    /// A fresh store for one request, stopped at `deadline`, that marks
    /// `long_running` once the guest has used several slices of CPU.
    /// Nothing in it outlives the request.
    fn new_store(
        &self,
        request_id: Arc<str>,
        call: Option<HandlerCall>,
        deadline: Instant,
        stderr: StderrTail,
        long_running: LongRunning,
    ) -> Result<Store<InstanceState>, HandleError> {
        let tags = LogTags {
            app: self.name.clone(),
            request_id,
            secrets: self.secrets.clone(),
        };
        let output = GuestOutput::new(tags.clone(), stderr);
        let wasi_recipe = WasiRecipe {
            env: self.env.clone(),
            tags: tags.clone(),
            output: output.clone(),
            tcp_allowlist: self.tcp.allowlist.clone(),
            denials: self.denials.clone(),
        };
        // Each mounted folder is an open directory for the whole request.
        let handles = RequestHandles::new(self.handles.clone(), self.files.len())
            .map_err(HandleError::Handles)?;
        // Mounted folders are opened now, so that a missing one fails the
        // request before the guest runs; without them the context waits
        // for the guest's first WASI call.
        let wasi = if self.files.is_empty() {
            None
        } else {
            let mut wasi = wasi_recipe.builder();
            for mount in &self.files {
                let perms = if mount.writable {
                    FsPerms::ReadWrite
                } else {
                    FsPerms::ReadOnly
                };
                wasi.preopened_dir(&mount.host_path, &mount.guest_path, perms)
                    .map_err(|error| {
                        HandleError::Instantiate(error.context(format!(
                            "cannot open the mounted folder {}",
                            mount.host_path.display()
                        )))
                    })?;
            }
            Some(wasi.build())
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = InstanceState {
            table,
            wasi,
            wasi_recipe,
            http: WasiHttpCtx::new(),
            http_outbound: OutboundHttp {
                client: self.http.clone(),
                tags: tags.clone(),
                denials: self.denials.clone(),
            },
            limits: InstanceLimiter {
                max_memory: usize::try_from(self.limits.max_memory).unwrap_or(usize::MAX),
                peak_memory: 0,
            },
            tags,
            output,
            tcp: OutboundTcp::new(self.tcp.clone(), self.denials.clone()),
            handles,
            call,
            _running: self.contention.enter(),
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Every epoch tick the guest yields to the async runtime, and past
        // the deadline it traps.
        let timeout = self.limits.timeout;
        store.set_epoch_deadline(1);
        let contention = self.contention.clone();
        let mut slices = 0u32;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(DeadlineExceeded(timeout).into());
            }
            slices = slices.saturating_add(1);
            if slices > LONG_RUNNING_SLICES {
                long_running.mark();
            }
            Ok(UpdateDeadline::YieldCustom(1, contention.pause(slices)))
        });
        if self.fuel_metered {
            store
                .set_fuel(self.limits.fuel.unwrap_or(u64::MAX))
                .map_err(HandleError::Instantiate)?;
        }
        Ok(store)
    }

    fn engine(&self) -> &wasmtime::Engine {
        match &self.entry {
            Entry::Handler(pre) => pre.engine(),
            Entry::WasiHttp(pre) => pre.engine(),
        }
    }

    /// Runs one handler-world request in a fresh store and instance and
    /// returns what the handler built. `hold` is kept until the instance is
    /// gone and its pool slot free: the caller's admission slot, for
    /// example.
    pub async fn handle(
        &self,
        request: IncomingRequest,
        hold: impl Send + 'static,
    ) -> Result<GuestResponse, HandleError> {
        let Entry::Handler(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.world()));
        };
        let call = HandlerCall {
            request,
            response: GuestResponse::default(),
            max_response_body: self.limits.max_response_body,
            response_too_large: false,
            headers_too_large: false,
        };
        let deadline = Instant::now() + self.limits.timeout;
        let timeout = self.limits.timeout;
        let stderr = StderrTail::default();
        let long_running = LongRunning::default();
        let store = self.new_store(
            call.request.request_id.clone(),
            Some(call),
            deadline,
            stderr.clone(),
            long_running.clone(),
        )?;
        let mut retiring = Retiring::new(store, hold);
        let pre = pre.clone();
        let run = async move {
            let (mut stats, outcome) = instantiate_and_call(
                &mut retiring,
                (deadline, timeout),
                &stderr,
                async |store| pre.instantiate_async(store).await,
                async |handler, store| handler.call_handle(store).await,
            )
            .await;
            let state = retiring.data_mut();
            stats.tcp_connections = state.tcp.opened;
            stats.tcp_denied = state.tcp.denied;
            let call = state.call.take();
            (retiring, stats, call, outcome)
        };
        let (retiring, stats, call, outcome) = self
            .slow_lane
            .run(long_running, deadline, run)
            .await
            .map_err(|error| lane_failed(error, timeout))?;
        // Here, on the host's runtime: the slot is reset at normal
        // priority, after the response has gone out.
        drop(retiring);
        outcome?;
        let mut response = match call {
            Some(call) if call.headers_too_large => {
                return Err(HandleError::ResponseHeadersTooLarge);
            }
            Some(call) if call.response_too_large => {
                return Err(HandleError::ResponseTooLarge(call.max_response_body));
            }
            Some(call) => call.response,
            None => GuestResponse::default(),
        };
        response.stats = stats;
        Ok(response)
    }

    /// Runs one request through a `wasi:http` component. Both bodies
    /// stream: the response is returned as soon as the guest sets it, and
    /// the guest keeps running on its own task while it writes the body.
    /// `hold` is kept until the guest has finished, body included: the
    /// caller's admission slot, for example.
    pub async fn serve_http<B>(
        &self,
        request_id: Arc<str>,
        request: hyper::Request<B>,
        hold: impl Send + 'static,
    ) -> Result<(hyper::Response<HyperOutgoingBody>, LaterStats), HandleError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Entry::WasiHttp(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.world()));
        };
        let deadline = Instant::now() + self.limits.timeout;
        let timeout = self.limits.timeout;
        let stderr = StderrTail::default();
        let long_running = LongRunning::default();
        let mut store = self.new_store(
            request_id.clone(),
            None,
            deadline,
            stderr.clone(),
            long_running.clone(),
        )?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(HandleError::Instantiate)?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(HandleError::Instantiate)?;
        let mut retiring = Retiring::new(store, hold);
        let pre = pre.clone();
        let (stats_sender, stats) = tokio::sync::oneshot::channel();
        let slow_lane = self.slow_lane.clone();
        let run = async move {
            let (stats, outcome) = instantiate_and_call(
                &mut retiring,
                (deadline, timeout),
                &stderr,
                async |store| pre.instantiate_async(store).await,
                async |proxy, store| {
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(store, incoming, outparam)
                        .await
                },
            )
            .await;
            (retiring, stats, outcome)
        };
        // How the guest's task reports a failure: to this function while it
        // waits for the guest's answer, or, once the guest has answered (a
        // response or an error code) or the client has left and nobody
        // listens, to the log by the task itself. One task per request,
        // with no second one watching it.
        let (failure_sender, mut failure) = tokio::sync::oneshot::channel::<HandleError>();
        let late = LateFailure {
            app: self.name.clone(),
            request_id,
            secrets: self.secrets.clone(),
        };
        let late_in_task = late.clone();
        let guest = async move {
            let outcome = match slow_lane.run(long_running, deadline, run).await {
                Ok((retiring, stats, outcome)) => {
                    // On the host's runtime; the hold goes once the slot is
                    // free.
                    drop(retiring);
                    // Nobody waiting (the request failed before its
                    // response) is fine.
                    let _ = stats_sender.send(stats);
                    outcome
                }
                Err(error) => Err(lane_failed(error, timeout)),
            };
            if let Err(error) = outcome
                && let Err(error) = failure_sender.send(error)
            {
                late_in_task.log(&error);
            }
        };
        // The guest's lines belong to the caller's span (the host keys its
        // per-invocation log record by it).
        let task = tokio::spawn(guest.in_current_span());
        match receiver.await {
            Ok(answer) => {
                // The guest has set its response, a normal one or an error
                // code, and may still fail: while it streams the body, say
                // (the client then sees the connection cut). Nobody waits
                // for that failure, so the log says why: after `close` the
                // task logs it itself, and one it reported before is logged
                // here.
                failure.close();
                if let Ok(error) = failure.try_recv() {
                    late.log(&error);
                }
                match answer {
                    Ok(response) => Ok((response, LaterStats(stats))),
                    Err(code) => Err(HandleError::ErrorCode(code)),
                }
            }
            // The guest's task has ended without setting a response.
            Err(_) => match task.await {
                Ok(()) => Err(failure.try_recv().unwrap_or(HandleError::NoResponse)),
                Err(join) => Err(HandleError::Instantiate(wasmtime::Error::msg(format!(
                    "the request task failed: {join}"
                )))),
            },
        }
    }
}
