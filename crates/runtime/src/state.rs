//! What one request's `Store` holds.

use std::sync::Arc;

use serverless_outbound::TcpAllowlist;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::denials::Denials;
use crate::handles::RequestHandles;
use crate::host::outbound_http::OutboundHttp;
use crate::host::outbound_tcp::OutboundTcp;
use crate::host::response_body::ResponseBodyState;
use crate::legacy::LegacyState;
use crate::limits::{InstanceLimiter, Running};
use crate::request::IncomingRequest;
use crate::response::GuestResponse;
use crate::sockets;
use crate::stdio::GuestOutput;

/// The store data of one instance, which serves one request: WASI and
/// wasi:http state, limits, and for handler-world components the request
/// and the response being built. Flat, so that each host interface borrows
/// only the field it needs.
pub(crate) struct InstanceState {
    pub(crate) table: ResourceTable,
    /// Built on the guest's first WASI call (clocks, streams and the
    /// wasi:http body streams included): a handler that only uses the
    /// platform's interfaces never needs it, and building it is a good
    /// share of a small request's set-up.
    pub(crate) wasi: Option<WasiCtx>,
    pub(crate) wasi_recipe: WasiRecipe,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_outbound: OutboundHttp,
    /// Whether a wasi:http guest finished its response body.
    pub(crate) response_body: ResponseBodyState,
    pub(crate) limits: InstanceLimiter,
    /// The guest's log lines, stdout and stderr, and the host's lines
    /// about what it did, under one budget.
    pub(crate) output: GuestOutput,
    pub(crate) tcp: OutboundTcp,
    /// The OS handles this request holds, against its and the host's
    /// budgets.
    pub(crate) handles: RequestHandles,
    /// The request and response of a handler-world call; `None` when the
    /// component serves `wasi:http/incoming-handler` instead.
    pub(crate) call: Option<HandlerCall>,
    /// What a core module of the serverless-wasm ABI keeps besides `call`.
    pub(crate) legacy: LegacyState,
    /// Its `wasi:messaging` exchange, rules and held messages.
    pub(crate) messaging: crate::host::messaging::MessagingCtx,
    /// Counts this instance as running while the store lives.
    pub(crate) _running: Running,
}

/// What a request's WASI context is built from when the guest first
/// needs it; cheap to make, since it only shares the app's settings.
pub(crate) struct WasiRecipe {
    pub(crate) env: Arc<[(String, String)]>,
    pub(crate) output: GuestOutput,
    pub(crate) tcp_allowlist: Arc<TcpAllowlist>,
    pub(crate) denials: Arc<Denials>,
}

impl WasiRecipe {
    /// The guest's environment, its stdout and stderr going to the log,
    /// and TCP sockets checked against the app's allowlist (UDP and name
    /// lookup stay off). Mounted folders are not part of it: they are
    /// opened before the instance starts, so that a missing folder fails
    /// the request up front.
    pub(crate) fn builder(&self) -> wasmtime_wasi::WasiCtxBuilder {
        let mut builder = WasiCtx::builder();
        builder
            .envs(&self.env)
            .stdout(self.output.stdout())
            .stderr(self.output.stderr())
            .allow_tcp(true)
            .socket_addr_check(sockets::address_check(
                self.tcp_allowlist.clone(),
                None,
                self.output.clone(),
                self.denials.clone(),
            ));
        builder
    }

    /// The same for a service, which may also bind and listen where
    /// `listen` allows.
    pub(crate) fn builder_listening(
        &self,
        listen: Arc<TcpAllowlist>,
    ) -> wasmtime_wasi::WasiCtxBuilder {
        let mut builder = self.builder();
        builder.socket_addr_check(sockets::address_check(
            self.tcp_allowlist.clone(),
            Some(listen),
            self.output.clone(),
            self.denials.clone(),
        ));
        builder
    }
}

/// A handler-world call in progress.
pub(crate) struct HandlerCall {
    pub(crate) request: IncomingRequest,
    pub(crate) response: GuestResponse,
    /// The app's response size limit.
    pub(crate) max_response_body: u64,
    /// Set once the guest tried to exceed it, headers and body together:
    /// the client then gets `500`.
    pub(crate) response_too_large: bool,
    /// Set once the guest tried to set more headers, or larger ones, than
    /// the host sends: the client then gets `500`.
    pub(crate) headers_too_large: bool,
}

/// What the platform's interfaces (`log`, `request`, `response`,
/// `outbound-tcp`) see of a request's store: the parts each needs,
/// borrowed, as wasmtime-wasi's `WasiCtxView` is for WASI.
pub(crate) struct PlatformView<'a> {
    /// The handler-world call; `None` for a wasi:http component.
    pub(crate) call: Option<&'a mut HandlerCall>,
    pub(crate) output: &'a GuestOutput,
    pub(crate) tcp: &'a mut OutboundTcp,
    pub(crate) handles: &'a mut RequestHandles,
    pub(crate) table: &'a mut ResourceTable,
}

/// The linker's handle on [`PlatformView`].
pub(crate) struct Platform;

impl HasData for Platform {
    type Data<'a> = PlatformView<'a>;
}

impl InstanceState {
    /// The view the platform's interfaces are implemented on.
    pub(crate) fn platform(&mut self) -> PlatformView<'_> {
        PlatformView {
            call: self.call.as_mut(),
            output: &self.output,
            tcp: &mut self.tcp,
            handles: &mut self.handles,
            table: &mut self.table,
        }
    }
}

impl PlatformView<'_> {
    /// The handler-world call, or a trap for a `wasi:http` component that
    /// imports the handler world's request or response interface.
    pub(crate) fn call(&mut self) -> wasmtime::Result<&mut HandlerCall> {
        self.call.as_deref_mut().ok_or_else(|| {
            wasmtime::Error::msg(
                "the serverless-wasm request and response interfaces serve components that export `handle`; \
                 a wasi:http component reads its request through wasi:http/types",
            )
        })
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let recipe = &self.wasi_recipe;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| recipe.builder().build()),
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

/// Opens `mount`'s host folder as a preopened directory of `wasi`, read-only
/// unless the mount is writable.
pub(crate) fn mount(
    wasi: &mut wasmtime_wasi::WasiCtxBuilder,
    mount: &serverless_config::Mount,
) -> wasmtime::Result<()> {
    let perms = if mount.writable {
        wasmtime_wasi::FsPerms::ReadWrite
    } else {
        wasmtime_wasi::FsPerms::ReadOnly
    };
    wasi.preopened_dir(&mount.host_path, &mount.guest_path, perms)
        .map(|_| ())
        .map_err(|error| {
            error.context(format!(
                "cannot open the mounted folder {}",
                mount.host_path.display()
            ))
        })
}
