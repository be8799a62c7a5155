//! What bounds one request: the deadline, linear memory and tables, and
//! optionally fuel; and how a trap caused by any of them is named.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::{ResourceLimiter, Trap};

/// How often the engine's epoch advances. A running guest yields to the
/// async runtime at every tick, so a spinning guest never holds a worker
/// thread for longer (which keeps other requests' latency low: see
/// bench/fairness.md), and its deadline is checked at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// After this many slices of CPU a request counts as long-running.
const LONG_RUNNING_SLICES: u32 = 4;

/// How many instances are running, shared by all of them, to tell when the
/// CPU is contended.
pub(crate) struct Contention {
    running: AtomicUsize,
    cores: usize,
}

/// One running instance; dropping it (with the store) ends it.
pub(crate) struct Running(Arc<Contention>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Contention {
    pub(crate) fn new() -> Arc<Contention> {
        Arc::new(Contention {
            running: AtomicUsize::new(0),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// Counts an instance as running until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self.clone())
    }

    /// How a guest pauses at the end of its `slices`-th slice. Normally it
    /// goes to the back of the run queue. When more instances run than
    /// there are cores, a guest that has already used several slices also
    /// sleeps for one tick, so that short requests are served before long
    /// ones and a spinning guest cannot take a core's worth of time from
    /// them.
    pub(crate) fn pause(&self, slices: u32) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let contended = self.running.load(Ordering::Relaxed) > self.cores;
        if contended && slices > LONG_RUNNING_SLICES {
            Box::pin(tokio::time::sleep(EPOCH_TICK))
        } else {
            // tokio's own yield puts the task at the back of the run queue;
            // a plain self-wake would run it again at once.
            Box::pin(tokio::task::yield_now())
        }
    }
}

/// The most table elements one table may grow to.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The request ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("deadline: the request ran longer than the app's timeout of {0:?}")]
pub struct DeadlineExceeded(pub Duration);

/// The guest tried to grow a memory or table past the app's limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit: the guest asked for {desired} bytes of {what}, the app's limit is {limit}")]
pub struct MemoryLimitExceeded {
    what: &'static str,
    desired: usize,
    limit: usize,
}

/// Refuses memory and table growth past the app's limits with a trap that
/// says so, instead of a failed `memory.grow` the guest may misreport.
pub(crate) struct InstanceLimiter {
    pub(crate) max_memory: usize,
    /// The largest linear memory any of the instance's memories grew to.
    pub(crate) peak_memory: usize,
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(MemoryLimitExceeded {
                what: "linear memory",
                desired,
                limit: self.max_memory,
            }
            .into());
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(MemoryLimitExceeded {
                what: "table elements",
                desired,
                limit: MAX_TABLE_ELEMENTS,
            }
            .into());
        }
        Ok(true)
    }
}

/// Whether an out-of-bounds access came from runaway recursion: languages
/// such as Rust and C keep a stack in linear memory, and when it overflows
/// the access falls below address 0. The backtrace then is one function
/// over and over, as deep as it is kept.
fn overflowed_shadow_stack(error: &wasmtime::Error) -> bool {
    let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = backtrace.frames();
    if frames.len() < 16 {
        return false;
    }
    // The innermost frames may be a helper (a memset, say); the rest repeat.
    let repeated = frames[frames.len() / 2].func_index();
    let same = frames
        .iter()
        .filter(|frame| frame.func_index() == repeated)
        .count();
    same * 4 >= frames.len() * 3
}

/// A short name for why a guest was stopped, for logs and metrics:
/// `deadline`, `memory`, `fuel`, `unreachable`, `out of bounds`,
/// `stack overflow`, another trap's name, or `host error`.
pub fn trap_kind(error: &wasmtime::Error) -> &'static str {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return "deadline";
    }
    if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return "memory";
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => "fuel",
        Some(Trap::UnreachableCodeReached) => "unreachable",
        Some(Trap::MemoryOutOfBounds) if overflowed_shadow_stack(error) => "stack overflow",
        Some(Trap::MemoryOutOfBounds | Trap::HeapMisaligned | Trap::TableOutOfBounds) => {
            "out of bounds"
        }
        Some(Trap::StackOverflow) => "stack overflow",
        Some(
            Trap::IntegerDivisionByZero | Trap::IntegerOverflow | Trap::BadConversionToInteger,
        ) => "arithmetic",
        Some(Trap::IndirectCallToNull | Trap::BadSignature) => "bad call",
        Some(Trap::Interrupt) => "deadline",
        Some(_) => "trap",
        None => "host error",
    }
}
