//! One configured app, ready to serve: a pre-instantiated component plus
//! the settings each of its requests gets.

use std::sync::Arc;

use serverless_config::AppConfig;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap, WasmBacktrace};
use wasmtime_wasi::WasiCtx;

use crate::bindings::HandlerPre;
use crate::guest_log::LogTags;
use crate::host::outbound_tcp::{OutboundTcp, TcpSettings};
use crate::request::IncomingRequest;
use crate::response::GuestResponse;
use crate::sockets;
use crate::state::HandlerState;
use crate::stdio::GuestOutput;

/// A configured app whose component is compiled and pre-instantiated.
pub struct App {
    name: Arc<str>,
    component: String,
    env: Vec<(String, String)>,
    max_request_body: u64,
    tcp: TcpSettings,
    pre: HandlerPre<HandlerState>,
}

/// Why a request could not produce a response. The details are for the
/// server log; the client only sees a generic error.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// No instance could be created (for example the pool is exhausted).
    #[error("cannot instantiate the component: {0:#}")]
    Instantiate(wasmtime::Error),
    /// The guest trapped while handling the request.
    #[error("the handler trapped: {}", describe_trap(.0))]
    Trap(wasmtime::Error),
}

/// A one-line description of a trap: its cause chain and, when available,
/// the guest's backtrace as `frame; frame; ...`.
fn describe_trap(error: &wasmtime::Error) -> String {
    let mut text = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("{trap}"),
        None => format!("{error:#}"),
    };
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames: Vec<String> = backtrace
            .frames()
            .iter()
            .map(|frame| {
                let module = frame.module().name().unwrap_or("<module>");
                let function = frame.func_name().unwrap_or("<unnamed>");
                format!("{module}!{function}")
            })
            .collect();
        if !frames.is_empty() {
            text.push_str("; backtrace: ");
            text.push_str(&frames.join(" <- "));
        }
    }
    text
}

impl App {
    pub(crate) fn new(config: AppConfig, tcp: TcpSettings, pre: HandlerPre<HandlerState>) -> App {
        App {
            name: config.name.into(),
            component: config.component.to_string(),
            env: config.env,
            max_request_body: config.max_request_body,
            tcp,
            pre,
        }
    }

    /// The outbound TCP rules this app runs with.
    pub fn tcp_allowlist(&self) -> &serverless_outbound::TcpAllowlist {
        &self.tcp.allowlist
    }

    /// The app's name, for logs.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The component file or built-in component the app runs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The largest request body this app accepts, in bytes.
    pub fn max_request_body(&self) -> u64 {
        self.max_request_body
    }

    /// Runs one request in a fresh store and instance and returns what the
    /// handler built. Nothing from this request outlives the call.
    pub async fn handle(&self, request: IncomingRequest) -> Result<GuestResponse, HandleError> {
        let tags = LogTags {
            app: self.name.clone(),
            request_id: request.request_id.clone(),
        };
        let wasi = WasiCtx::builder()
            .envs(&self.env)
            .stdout(GuestOutput::stdout(tags.clone()))
            .stderr(GuestOutput::stderr(tags.clone()))
            // TCP sockets are created, then every address is checked by the
            // same allowlist as `outbound-tcp`; UDP and name lookup stay off.
            .allow_tcp(true)
            .socket_addr_check(sockets::address_check(
                self.tcp.allowlist.clone(),
                tags.clone(),
            ))
            .build();
        let state = HandlerState {
            table: ResourceTable::new(),
            wasi,
            limits: StoreLimitsBuilder::new().trap_on_grow_failure(true).build(),
            tags,
            request,
            response: GuestResponse::default(),
            tcp: OutboundTcp::new(self.tcp.clone()),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let handler = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(HandleError::Instantiate)?;
        handler
            .call_handle(&mut store)
            .await
            .map_err(HandleError::Trap)?;
        Ok(store.into_data().response)
    }
}
