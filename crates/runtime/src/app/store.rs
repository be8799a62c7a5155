//! One request's `Store`: made fresh with the app's limits and deadline,
//! used for one instantiate-and-call, and retired (its pool slot reset)
//! after the response has gone out.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpCtx;

use super::error::trapped;
use super::{App, HandleError};
use crate::guest_log::LogTags;
use crate::handles::RequestHandles;
use crate::host::outbound_http::OutboundHttp;
use crate::host::outbound_tcp::OutboundTcp;
use crate::host::response_body::ResponseBodyState;
use crate::lanes::{self, LongRunning};
use crate::limits::{DeadlineExceeded, InstanceLimiter};
use crate::response::InvocationStats;
use crate::state::{HandlerCall, InstanceState, WasiRecipe};
use crate::stdio::{GuestOutput, StderrTail};

/// How many host resources (streams, pollables, sockets, ...) one request
/// may hold at once; past it the call that would create one traps.
const MAX_RESOURCES: usize = 10_000;

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
pub(super) async fn instantiate_and_call<I>(
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
pub(super) struct Retiring<H: Send + 'static> {
    /// Taken only in `drop`.
    store: ManuallyDrop<Store<InstanceState>>,
    hold: ManuallyDrop<H>,
    home: tokio::runtime::Handle,
}

impl<H: Send + 'static> Retiring<H> {
    /// Takes charge of `store` and `hold`; must be called on the host's
    /// runtime.
    pub(super) fn new(store: Store<InstanceState>, hold: H) -> Retiring<H> {
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

impl App {
    /// A fresh store for one request, stopped at `deadline`, that marks
    /// `long_running` once the guest has used several slices of CPU.
    /// Nothing in it outlives the request.
    pub(super) fn new_store(
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
        let response_body = ResponseBodyState::new(tags.clone());
        let output = GuestOutput::new(tags, stderr);
        let wasi_recipe = WasiRecipe {
            env: self.env.clone(),
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
                crate::state::mount(&mut wasi, mount).map_err(HandleError::Instantiate)?;
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
            response_body,
            http_outbound: OutboundHttp {
                client: self.http.clone(),
                output: output.clone(),
                denials: self.denials.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    usize::try_from(self.tcp.max_connections).unwrap_or(usize::MAX),
                )),
            },
            limits: InstanceLimiter {
                max_memory: usize::try_from(self.limits.max_memory).unwrap_or(usize::MAX),
                peak_memory: 0,
            },
            output,
            tcp: OutboundTcp::new(self.tcp.clone(), self.denials.clone()),
            handles,
            call,
            legacy: crate::legacy::LegacyState::default(),
            messaging: crate::host::messaging::MessagingCtx::new(
                self.broker.clone(),
                self.messaging.clone(),
            ),
            _running: self.contention.enter(),
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Every epoch tick the guest yields to the async runtime, and past
        // the deadline it traps.
        let timeout = self.limits.timeout;
        store.set_epoch_deadline(1);
        let contention = self.contention.clone();
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(DeadlineExceeded(timeout).into());
            }
            let slices = long_running.slice_ran();
            let pause = contention.pause(slices);
            let long_running = long_running.clone();
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(async move {
                    pause.await;
                    long_running.paused();
                }),
            ))
        });
        if self.fuel_metered {
            store
                .set_fuel(self.limits.fuel.unwrap_or(u64::MAX))
                .map_err(HandleError::Instantiate)?;
        }
        Ok(store)
    }
}
