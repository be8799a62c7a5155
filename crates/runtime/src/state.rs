//! What one request's `Store` holds.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::guest_log::LogTags;
use crate::host::outbound_tcp::OutboundTcp;
use crate::request::IncomingRequest;
use crate::response::GuestResponse;

/// The store data of one request: WASI state, limits, the request being
/// handled and the response being built. Flat, so that each host interface
/// borrows only the field it needs.
pub(crate) struct HandlerState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) limits: StoreLimits,
    pub(crate) tags: LogTags,
    pub(crate) request: IncomingRequest,
    pub(crate) response: GuestResponse,
    pub(crate) tcp: OutboundTcp,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
