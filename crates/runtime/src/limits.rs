//! What bounds one request: the deadline, linear memory and tables, and
//! optionally fuel; and how a trap caused by any of them is named.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crate::failure::FailureKind;
use wasmtime::{ResourceLimiter, Trap};

/// How often the engine's epoch advances. A running guest yields to the
/// async runtime at every tick, so a spinning guest never holds a worker
/// thread for longer (which keeps other requests' latency low: see
/// bench/fairness.md), and its deadline is checked at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How far ahead a deadline is set when the timeout is too long to add to
/// the current time (about 30 years, as tokio's own "far future").
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The instant `timeout` from now, or a far-future one when `timeout` is
/// so long (`--timeout 10000000000000000000`) that adding it overflows.
pub fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// After this many slices in a row without waiting a request counts as
/// long-running (`crate::lanes`).
pub(crate) const LONG_RUNNING_SLICES: u32 = 4;

/// How many instances are running, shared by all of them, to tell when the
/// CPU is contended, and to let the epoch ticker sleep while none is.
pub(crate) struct Contention {
    running: AtomicUsize,
    cores: usize,
    /// The epoch ticker's thread, woken when an instance starts while it
    /// waits.
    ticker: OnceLock<Thread>,
    /// Set while the ticker waits for an instance to start.
    ticker_waiting: AtomicBool,
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
            ticker: OnceLock::new(),
            ticker_waiting: AtomicBool::new(false),
        })
    }

    /// Counts an instance as running until the guard is dropped, waking
    /// the epoch ticker if it waits.
    pub(crate) fn enter(self: &Arc<Self>) -> Running {
        // Sequentially consistent with `wait_while_idle`: either this sees
        // the ticker waiting and wakes it, or the ticker sees this
        // instance and does not wait.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.ticker_waiting.load(Ordering::SeqCst)
            && let Some(ticker) = self.ticker.get()
        {
            ticker.unpark();
        }
        Running(self.clone())
    }

    /// Whether no instance is running.
    pub(crate) fn is_idle(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// Called on the epoch ticker's thread: waits until an instance starts,
    /// or `at_most`, instead of ticking for nobody.
    pub(crate) fn wait_while_idle(&self, at_most: Duration) {
        let me = std::thread::current();
        let ticker = self.ticker.get_or_init(|| me.clone());
        if ticker.id() != me.id() {
            return;
        }
        self.ticker_waiting.store(true, Ordering::SeqCst);
        if self.is_idle() {
            std::thread::park_timeout(at_most);
        }
        self.ticker_waiting.store(false, Ordering::SeqCst);
    }

    /// How a guest pauses at the end of its `slices`-th slice. Normally it
    /// goes to the back of the run queue. When more instances run than
    /// there are cores, a guest that has already used several slices (in
    /// all, however often it waited in between) also sleeps for one tick,
    /// so that short requests are served before long ones and a spinning
    /// guest, or one that spins between short waits and so stays on the
    /// host's workers, cannot take a core's worth of time from them.
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

/// Why a guest was stopped, for logs and metrics: the deadline, a
/// memory limit, fuel, a kind of trap, or a host error.
pub fn trap_kind(error: &wasmtime::Error) -> FailureKind {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return FailureKind::Deadline;
    }
    if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return FailureKind::Memory;
    }
    if error.downcast_ref::<crate::legacy::AbiMisuse>().is_some() {
        return FailureKind::AbiMisuse;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => FailureKind::Fuel,
        Some(Trap::UnreachableCodeReached) => FailureKind::Unreachable,
        Some(Trap::MemoryOutOfBounds) if overflowed_shadow_stack(error) => {
            FailureKind::StackOverflow
        }
        Some(Trap::MemoryOutOfBounds | Trap::HeapMisaligned | Trap::TableOutOfBounds) => {
            FailureKind::OutOfBounds
        }
        Some(Trap::StackOverflow) => FailureKind::StackOverflow,
        Some(
            Trap::IntegerDivisionByZero | Trap::IntegerOverflow | Trap::BadConversionToInteger,
        ) => FailureKind::Arithmetic,
        Some(Trap::IndirectCallToNull | Trap::BadSignature) => FailureKind::BadCall,
        Some(Trap::Interrupt) => FailureKind::Deadline,
        Some(_) => FailureKind::Trap,
        None => FailureKind::HostError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Far longer than any wake-up takes, far shorter than the wait: a
    /// ticker that was not woken would still be waiting.
    const WAIT: Duration = Duration::from_secs(120);
    const WOKEN_WITHIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_deadline_too_far_to_add_is_the_far_future() {
        let before = tokio::time::Instant::now();
        let soon = deadline_after(Duration::from_secs(5));
        assert!(soon >= before + Duration::from_secs(5));
        assert!(soon <= tokio::time::Instant::now() + Duration::from_secs(5));
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            assert!(deadline_after(huge) >= before + FAR_FUTURE);
        }
    }

    #[test]
    fn an_instance_starting_wakes_the_waiting_ticker() {
        let contention = Contention::new();
        let ticker = {
            let contention = contention.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                contention.wait_while_idle(WAIT);
                started.elapsed()
            })
        };
        while !contention.ticker_waiting.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _running = contention.enter();
        let waited = ticker.join().expect("the ticker thread");
        assert!(waited < WOKEN_WITHIN, "the ticker slept {waited:?}");
        assert!(!contention.ticker_waiting.load(Ordering::SeqCst));
    }

    #[test]
    fn the_ticker_does_not_wait_while_an_instance_runs() {
        let contention = Contention::new();
        let running = contention.enter();
        let started = Instant::now();
        contention.wait_while_idle(WAIT);
        assert!(started.elapsed() < WOKEN_WITHIN);
        drop(running);
        assert!(contention.is_idle());
    }
}
