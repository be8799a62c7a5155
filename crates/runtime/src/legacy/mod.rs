//! The original serverless-wasm ABI (2018): core WebAssembly modules, not
//! components, that import a handful of functions from module `env` and
//! export one function taking and returning nothing, which the host calls
//! once per request in a fresh instance.
//!
//! | import | wasm type | what it does |
//! |---|---|---|
//! | `log` | `(i32 ptr, i64 size)` | one INFO line, tagged with app and request id |
//! | `response_set_status_line` | `(i32 status, i32 ptr, i64 size)` | status and reason phrase |
//! | `response_set_header` | `(i32, i64, i32, i64)` | sets a header (the last value wins) |
//! | `response_set_body` | `(i32 ptr, i64 size)` | the body (the last call wins) |
//! | `tcp_connect` | `(i32 ptr, i64 size) -> i32` | a descriptor, or a negative [`code`] |
//! | `tcp_read` | `(i32 fd, i32 ptr, i64 size) -> i64` | bytes read, 0 at the end, or a negative code |
//! | `tcp_write` | `(i32 fd, i32 ptr, i64 size) -> i64` | bytes written, or a negative code |
//! | `db_get` | `(i32, i64, i32, i64) -> i64` | the app's `env` value: its full length, or -1 |
//!
//! - `module.rs`: checking a module against the ABI when it is loaded.
//! - `abi.rs`: the `env` functions, on the core linker.
//! - `memory.rs`: the guest's memory, every range checked.
//!
//! A module has its own memory (exported as `memory`) or imports
//! `env.memory`, which the host then creates for each request within the
//! app's `max_memory`. Everything else a request gets is the handler
//! world's: the same store, limits, deadline, lanes, log budget, TCP policy
//! and response limits.

mod abi;
mod memory;
mod module;

pub(crate) use abi::{AbiMisuse, add_to_linker, check_declared_length};
pub(crate) use module::LegacyPre;
pub use module::LegacyProblem;

/// What the `tcp_*` functions return instead of a descriptor or a length
/// when they fail; documented for guest authors in the README.
pub mod code {
    /// The outbound policy (`--allow-tcp`, the app's `allowed_tcp`) does
    /// not allow the destination.
    pub const DENIED: i64 = -1;
    /// The connection could not be made: refused, unreachable, or the name
    /// did not resolve.
    pub const CONNECT_FAILED: i64 = -2;
    /// A connect, read or write took longer than the app's timeout.
    pub const TIMED_OUT: i64 = -3;
    /// No open connection has this descriptor, or the peer closed it.
    pub const BAD_DESCRIPTOR: i64 = -4;
    /// The request already holds as many connections as it may.
    pub const TOO_MANY_CONNECTIONS: i64 = -5;
    /// Another I/O error.
    pub const IO_ERROR: i64 = -6;
    /// The address is not `host:port` text.
    pub const BAD_ADDRESS: i64 = -7;
    /// `db_get`: the key is not in the app's `env` table.
    pub const ABSENT: i64 = -1;
}

/// What a legacy request keeps in its store besides the handler world's
/// call.
#[derive(Default)]
pub(crate) struct LegacyState {
    /// The module's memory once known: the one the host made for its
    /// `env.memory` import, or, once instantiated, the one it exports.
    pub(crate) memory: Option<wasmtime::Memory>,
    /// The `Content-Length` the module set itself, checked against the
    /// body when it returns.
    pub(crate) declared_length: Option<u64>,
}
