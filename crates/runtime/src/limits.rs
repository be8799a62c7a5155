//! What bounds one request: the deadline, linear memory and tables, and
//! optionally fuel; and how a trap caused by any of them is named.

use std::time::Duration;

use wasmtime::{ResourceLimiter, Trap};

/// How often the engine's epoch advances. A running guest yields to the
/// async runtime at every tick, so a spinning guest never holds a worker
/// thread for longer (which keeps other requests' latency low: see
/// bench/fairness.md), and its deadline is checked at every tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

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
