//! The serverless-wasm runtime: turns configured apps into ready-to-run
//! components and runs one fresh instance per request.
//!
//! * [`Runtime`] owns the one [`wasmtime::Engine`] (pooling allocator,
//!   copy-on-write memory images) and the linker with every host interface.
//! * [`Runtime::loader`] compiles each component once and
//!   pre-instantiates it, checking that it fits the handler world.
//! * [`App::handle`] runs one request in a new `Store` and instance.
//! * `host/` holds one file per WIT interface of the handler world;
//!   `sockets.rs` applies the same outbound policy to `wasi:sockets`.
//! * `lanes.rs` moves long-running guests to low-priority threads, so
//!   that short requests go first.

mod app;
mod bindings;
mod cache;
mod denials;
mod engine;
mod failure;
mod guest_log;
mod handles;
mod host;
mod lanes;
mod legacy;
mod limits;
mod load;
mod request;
mod resolve;
mod response;
mod service;
mod sockets;
mod state;
mod stdio;

pub use app::{App, AppKind, HandleError, LaterStats};
pub use cache::{CacheError, CacheOutcome, CompileCache, Compiled};
pub use denials::{Denials, DeniedVia};
pub use engine::{Runtime, RuntimeCounters, RuntimeError, RuntimeSettings};
pub use failure::FailureKind;
pub use guest_log::Secrets;
pub use handles::{
    HandleRefusal, HostHandles, MAX_HANDLES_PER_REQUEST, ReserveError, raise_open_file_limit,
};
pub use host::outbound_tcp::TcpSettings;
pub use legacy::{LegacyProblem, code as legacy_codes};
pub use limits::{DeadlineExceeded, MemoryLimitExceeded, deadline_after, trap_kind};
pub use load::{LoadError, LoadProblem, Loader, OperatorRules};
pub use request::IncomingRequest;
pub use response::{GuestResponse, InvocationStats};
pub use serverless_config::World;
pub use service::{RunEnd, Service, ServiceSettings};
/// Errors of streamed bodies.
pub use wasmtime_wasi_http::Error as BodyError;
/// The body of a response from a `wasi:http` component, streamed.
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody as ResponseBody;
