//! What one request's `Store` holds.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guest_log::LogTags;
use crate::host::outbound_http::OutboundHttp;
use crate::host::outbound_tcp::OutboundTcp;
use crate::limits::{InstanceLimiter, Running};
use crate::request::IncomingRequest;
use crate::response::GuestResponse;

/// The store data of one instance, which serves one request: WASI and
/// wasi:http state, limits, and for handler-world components the request
/// and the response being built. Flat, so that each host interface borrows
/// only the field it needs.
pub(crate) struct InstanceState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_outbound: OutboundHttp,
    pub(crate) limits: InstanceLimiter,
    pub(crate) tags: LogTags,
    pub(crate) tcp: OutboundTcp,
    /// The request and response of a handler-world call; `None` when the
    /// component serves `wasi:http/incoming-handler` instead.
    pub(crate) call: Option<HandlerCall>,
    /// Counts this instance as running while the store lives.
    pub(crate) _running: Running,
}

/// A handler-world call in progress.
pub(crate) struct HandlerCall {
    pub(crate) request: IncomingRequest,
    pub(crate) response: GuestResponse,
    /// The app's response size limit.
    pub(crate) max_response_body: u64,
    /// Set once the guest tried to exceed it: the client then gets `500`.
    pub(crate) response_too_large: bool,
}

impl InstanceState {
    /// The handler-world call, or a trap for a `wasi:http` component that
    /// imports the handler world's request or response interface.
    pub(crate) fn call(&mut self) -> wasmtime::Result<&mut HandlerCall> {
        self.call.as_mut().ok_or_else(|| {
            wasmtime::Error::msg(
                "the serverless-wasm request and response interfaces serve components that export `handle`; \
                 a wasi:http component reads its request through wasi:http/types",
            )
        })
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_outbound,
        }
    }
}
