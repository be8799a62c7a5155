//! The guest's linear memory as the `env` functions see it: every pointer
//! and size a module passes is checked against the memory's length, and a
//! bad one traps the instance (the client gets `500`), never the host.

use std::ops::Range;

use wasmtime::{Caller, Extern, Memory, Trap};

use crate::state::InstanceState;

/// The module's memory: the one it exports as `memory`, or the one the
/// host made for its `env.memory` import.
pub(super) fn of(caller: &mut Caller<'_, InstanceState>) -> wasmtime::Result<Memory> {
    if let Some(memory) = caller.data().legacy.memory {
        return Ok(memory);
    }
    // A start function runs before the instance's exports are known.
    if let Some(Extern::Memory(memory)) = caller.get_export("memory") {
        return Ok(memory);
    }
    Err(super::abi::refused(
        "env",
        "the module has no memory the host can read (export it as `memory` or import `env.memory`)"
            .to_owned(),
    ))
}

/// `ptr .. ptr + size` in a memory of `len` bytes, or the trap for
/// `function`'s `what` argument.
pub(super) fn range(
    len: usize,
    ptr: i32,
    size: i64,
    function: &str,
    what: &str,
) -> wasmtime::Result<Range<usize>> {
    // Pointers are the guest's `u32`, sizes its `u64`.
    let start = ptr as u32 as u64;
    let size = size as u64;
    match start.checked_add(size) {
        Some(end) if end <= len as u64 => Ok(start as usize..end as usize),
        _ => Err(wasmtime::Error::from(Trap::MemoryOutOfBounds).context(format!(
            "{function}: the {what} at {start:#x} of {size} bytes lies outside the module's {len}-byte memory"
        ))),
    }
}

/// A copy of the guest's bytes at `ptr`, `size` long.
pub(super) fn read(
    caller: &mut Caller<'_, InstanceState>,
    ptr: i32,
    size: i64,
    function: &str,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    let memory = of(caller)?;
    let data = memory.data(&*caller);
    let range = range(data.len(), ptr, size, function, what)?;
    Ok(data[range].to_vec())
}

/// Writes `bytes` into the guest's memory at `ptr`, which must have room.
pub(super) fn write(
    caller: &mut Caller<'_, InstanceState>,
    ptr: i32,
    bytes: &[u8],
    function: &str,
    what: &str,
) -> wasmtime::Result<()> {
    let memory = of(caller)?;
    let data = memory.data_mut(&mut *caller);
    let range = range(data.len(), ptr, bytes.len() as i64, function, what)?;
    data[range].copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_inside_the_memory_pass_and_the_rest_trap() {
        assert_eq!(range(100, 10, 90, "log", "message").unwrap(), 10..100);
        assert_eq!(range(100, 100, 0, "log", "message").unwrap(), 100..100);
        let error = range(100, 10, 91, "log", "message").unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "log: the message at 0xa of 91 bytes lies outside the module's 100-byte memory: wasm trap: out of bounds memory access"
        );
        assert_eq!(error.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
        // A negative pointer is a high address, a negative size a huge one.
        assert!(range(100, -1, 1, "log", "message").is_err());
        assert!(range(100, 0, -1, "log", "message").is_err());
        // The end would overflow.
        assert!(range(usize::MAX, -1, -1, "log", "message").is_err());
    }
}
