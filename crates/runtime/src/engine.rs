//! The one engine and linker shared by every app.

use wasmtime::component::Linker;
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::Handler;
use crate::cache::CompileCache;
use crate::denials::{Denials, DeniedVia};
use crate::handles::{HostHandles, ReserveError, raise_open_file_limit};
use crate::lanes::SlowLane;
use crate::limits::{Contention, EPOCH_TICK};
use crate::state::{InstanceState, Platform};
use std::sync::Arc;

/// Sizes of the instance pool, fixed when the host starts.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeSettings {
    /// How many instances may exist at once across all apps; requests past
    /// this fail to instantiate instead of exhausting memory.
    pub max_instances: u32,
    /// The most linear memory one instance may grow to, in bytes: the
    /// largest of the apps' `max_memory`.
    pub max_memory_bytes: usize,
    /// Whether some app has a fuel budget; fuel metering then applies to
    /// every instance (the others get an unlimited budget).
    pub fuel: bool,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            max_instances: 1000,
            max_memory_bytes: 128 << 20,
            fuel: false,
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be created, for example because the instance
    /// pool could not reserve its address space.
    #[error("cannot create the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    /// A host interface could not be added to the linker.
    #[error("cannot set up the host interfaces: {0:#}")]
    Linker(wasmtime::Error),
    /// The threads that run long requests could not be started.
    #[error("cannot start the threads for long-running requests: {0}")]
    Threads(std::io::Error),
}

/// The engine and linker shared by every app and request.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<InstanceState>,
    /// The core linker with the serverless-wasm ABI's `env` functions,
    /// for legacy modules.
    pub(crate) legacy_linker: Arc<wasmtime::Linker<InstanceState>>,
    pub(crate) settings: RuntimeSettings,
    pub(crate) contention: Arc<Contention>,
    pub(crate) slow_lane: Arc<SlowLane>,
    pub(crate) cache: Option<CompileCache>,
    /// The OS handles all guests may hold together.
    pub(crate) handles: Arc<HostHandles>,
    /// How the open-file limit was found and raised, for the log.
    open_files: (Option<(u64, u64)>, u64),
    /// The descriptors the server reserved for itself, if it did
    /// ([`Runtime::reserve_descriptors`]), for the log.
    /// Zero when it did not.
    reserved: std::sync::atomic::AtomicUsize,
    /// Set once the limits have been logged.
    limits_logged: std::sync::Once,
    /// Outbound attempts the policy refused.
    pub(crate) denials: Arc<Denials>,
    /// The exchange `wasi:messaging` guests send on; `None` until the host
    /// attaches one ([`Runtime::attach_broker`]).
    pub(crate) broker: Option<serverless_messaging::Broker>,
}

/// What the runtime counts for the host's metrics: its own state, shared
/// with whoever reports it (cheap to clone).
#[derive(Clone)]
pub struct RuntimeCounters {
    denials: Arc<Denials>,
    slow_lane: Arc<SlowLane>,
}

impl RuntimeCounters {
    /// Outbound attempts the policy refused, by door.
    pub fn denied(&self, via: DeniedVia) -> u64 {
        self.denials.total(via)
    }

    /// Requests moved to the slow lane.
    pub fn slow_lane_moves(&self) -> u64 {
        self.slow_lane.moves()
    }
}

/// The open-file limit as found and as raised, and the guests' share of
/// it.
struct HandleBudget {
    raised: Option<(u64, u64)>,
    limit: u64,
    handles: Arc<HostHandles>,
}

/// Raises the process's open-file limit to its maximum and sizes the
/// guests' share of it. Logged once the first routes have loaded (see
/// [`Runtime::log_limits`]), so that a configuration error is reported
/// alone.
fn guest_handle_budget() -> HandleBudget {
    let (raised, limit) = match raise_open_file_limit() {
        Ok((before, now)) => ((now > before).then_some((before, now)), now),
        Err(error) => {
            // Assume the common default rather than fail: the budget is
            // then conservative.
            tracing::warn!("cannot read or raise the open-file limit ({error}); assuming 1024");
            (None, 1024)
        }
    };
    HandleBudget {
        raised,
        limit,
        handles: HostHandles::for_open_file_limit(usize::try_from(limit).unwrap_or(usize::MAX)),
    }
}

/// After this many ticks with no instance running, the ticker waits for
/// one to start instead of waking a thousand times a second for nothing.
const IDLE_TICKS_BEFORE_WAITING: u32 = 1000;

/// The longest the idle ticker waits before checking that the engine still
/// exists.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own,
/// so that the tick comes even when every async worker is busy. When no
/// instance has run for a second it sleeps until one starts, so an idle
/// host costs no CPU. The thread ends with the engine.
fn start_epoch_ticker(engine: &Engine, contention: Arc<Contention>) -> wasmtime::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".to_owned())
        .spawn(move || {
            let mut idle_ticks = 0u32;
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
                idle_ticks = if contention.is_idle() {
                    idle_ticks.saturating_add(1)
                } else {
                    0
                };
                // Still idle after a wait: wait again after one tick.
                if idle_ticks >= IDLE_TICKS_BEFORE_WAITING {
                    contention.wait_while_idle(IDLE_WAIT);
                }
            }
        })?;
    Ok(())
}

/// How many core instances and memories one component instance may use. A
/// component built by a language toolchain is a few core modules (the
/// program, adapters, shims), each with at most one memory of its own.
const CORE_INSTANCES_PER_COMPONENT: u32 = 20;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 20;

/// How much of a slot's linear memory, tables and async stack may stay
/// resident between instances (only pages an instance actually dirtied do).
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLES: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 256 << 10;

impl Runtime {
    /// Creates the engine with the pooling allocator and copy-on-write
    /// memory images, and a linker with WASI p2 and the handler world.
    pub fn new(settings: RuntimeSettings) -> Result<Runtime, RuntimeError> {
        let instances = settings.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_stacks(instances)
            .max_memory_size(settings.max_memory_bytes)
            // Resetting a slot by unmapping what the instance touched costs
            // a page fault per page on the next request, plus a TLB flush:
            // about half the host's time for a small handler. With
            // PAGEMAP_SCAN (Linux 6.7+) wasmtime finds exactly the pages an
            // instance dirtied and restores them in place, keeping up to
            // these sizes resident per slot; older kernels fall back to
            // unmapping.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLES)
            .async_stack_keep_resident(KEEP_RESIDENT_STACK);

        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .memory_init_cow(true)
            .epoch_interruption(true)
            .consume_fuel(settings.fuel)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(RuntimeError::Engine)?;
        let contention = Contention::new();
        start_epoch_ticker(&engine, contention.clone()).map_err(RuntimeError::Engine)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError::Linker)?;
        crate::host::filesystem::add_symlink_check(&mut linker).map_err(RuntimeError::Linker)?;
        crate::host::os_handles::add_handle_budget(&mut linker).map_err(RuntimeError::Linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(RuntimeError::Linker)?;
        crate::host::response_body::add_body_check(&mut linker).map_err(RuntimeError::Linker)?;
        Handler::add_to_linker::<_, Platform>(&mut linker, InstanceState::platform)
            .map_err(RuntimeError::Linker)?;
        crate::host::messaging::add_to_linker(&mut linker).map_err(RuntimeError::Linker)?;
        let mut legacy_linker = wasmtime::Linker::new(&engine);
        crate::legacy::add_to_linker(&mut legacy_linker).map_err(RuntimeError::Linker)?;
        let budget = guest_handle_budget();
        Ok(Runtime {
            engine,
            linker,
            legacy_linker: Arc::new(legacy_linker),
            settings,
            contention,
            slow_lane: SlowLane::new().map_err(RuntimeError::Threads)?,
            cache: None,
            handles: budget.handles,
            open_files: (budget.raised, budget.limit),
            reserved: std::sync::atomic::AtomicUsize::new(0),
            limits_logged: std::sync::Once::new(),
            denials: Arc::default(),
            broker: None,
        })
    }

    /// Gives `wasi:messaging` guests `broker` to send on: apps and services
    /// loaded afterwards get it. Without one their sends fail with
    /// `connection`.
    pub fn attach_broker(&mut self, broker: serverless_messaging::Broker) {
        self.broker = Some(broker);
    }

    /// Logs, once, the open-file limit and the guests' share of it, and
    /// the interface addresses the outbound policy treats as loopback.
    pub(crate) fn log_limits(&self) {
        self.limits_logged.call_once(|| {
            let (raised, limit) = self.open_files;
            if let Some((before, now)) = raised {
                tracing::info!("raised the open-file limit (RLIMIT_NOFILE) from {before} to {now}");
            }
            let guests = self.handles.limit();
            let per_request = crate::handles::MAX_HANDLES_PER_REQUEST;
            match self.reserved.load(std::sync::atomic::Ordering::Acquire) {
                0 => tracing::info!(
                    "guests may hold {guests} OS handles (files, sockets, connections) together, {per_request} per request; the rest of the {limit} open files is kept for the host"
                ),
                reserved => tracing::info!(
                    "guests may hold {guests} OS handles (files, sockets, connections) together, {per_request} per request; the rest of the {limit} open files, {reserved}, is kept for the host: its client connections (--max-connections), listeners, pooled connections and compile cache"
                ),
            }
            tracing::info!(
                "local interface addresses, treated as loopback by the outbound policy: {}",
                serverless_outbound::LocalInterfaces::system().describe()
            );
        });
    }

    /// The runtime's counters, for the host's metrics.
    pub fn counters(&self) -> RuntimeCounters {
        RuntimeCounters {
            denials: self.denials.clone(),
            slow_lane: self.slow_lane.clone(),
        }
    }

    /// The process's open-file limit (`RLIMIT_NOFILE`), as raised at
    /// startup.
    pub fn open_file_limit(&self) -> usize {
        usize::try_from(self.open_files.1).unwrap_or(usize::MAX)
    }

    /// Keeps `count` descriptors of the open-file limit for the host (its
    /// client connections, listeners, pooled connections and compile
    /// cache): the guests' budget becomes what is left, which is
    /// returned. Refused, changing nothing, when the guests would keep
    /// less than a quarter of the limit or less than one request's budget
    /// (see [`HostHandles::most_reservable`]). Call it before the routes
    /// load, which logs the budget.
    pub fn reserve_descriptors(&self, count: usize) -> Result<usize, ReserveError> {
        let left = self
            .handles
            .reserve_for_host(self.open_file_limit(), count)?;
        self.reserved
            .store(count, std::sync::atomic::Ordering::Release);
        Ok(left)
    }

    /// The OS handles all guests may hold together.
    pub fn handle_budget(&self) -> &Arc<HostHandles> {
        &self.handles
    }

    /// The virtual address space the instance pool reserves up front,
    /// for the startup message: each memory slot spans its maximum size
    /// (at least 4 GiB on 64-bit hosts, so bounds checks can be elided)
    /// plus a 32 MiB guard, and each instance has a 2 MiB async stack.
    pub fn reserved_address_space(&self) -> u64 {
        let instances = u64::from(self.settings.max_instances.max(1));
        let slot = (4u64 << 30).max(self.settings.max_memory_bytes as u64) + (32 << 20);
        instances * u64::from(MEMORIES_PER_COMPONENT) * slot + instances * (2 << 20)
    }

    /// Keeps compiled components in `cache`, so that later starts load
    /// them instead of compiling.
    pub fn use_compile_cache(&mut self, cache: CompileCache) {
        self.cache = Some(cache);
    }

    /// The settings the pool was sized with.
    pub fn settings(&self) -> RuntimeSettings {
        self.settings
    }
}
