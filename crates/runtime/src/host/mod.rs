//! The host side of the interfaces a component imports, one file per
//! interface: the handler world's four, outbound `wasi:http`, and the one
//! `wasi:filesystem` function the host wraps (`symlink-at`), and the WASI
//! functions that open OS handles, wrapped to count them (`os_handles`).

pub(crate) mod filesystem;
pub(crate) mod log;
pub(crate) mod messaging;
pub(crate) mod os_handles;
pub(crate) mod outbound_http;
pub mod outbound_tcp;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod response_body;

use wasmtime::component::Linker;

use crate::state::InstanceState;

/// Runs `define`, whose functions replace wasmtime-wasi's (or
/// wasmtime-wasi-http's) own of the same names, which `linker` must already
/// hold: the linker lets a later definition shadow an earlier one only
/// while shadowing is allowed, and it is allowed for this call alone.
pub(crate) fn shadowing(
    linker: &mut Linker<InstanceState>,
    define: impl FnOnce(&mut Linker<InstanceState>) -> wasmtime::Result<()>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = define(linker);
    linker.allow_shadowing(false);
    defined
}
