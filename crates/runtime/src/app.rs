//! One configured app, ready to serve: a pre-instantiated component plus
//! the settings each of its requests gets.

use std::sync::Arc;

use serverless_config::{AppConfig, Mount, World};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap, WasmBacktrace};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::bindings::HandlerPre;
use crate::guest_log::{LogTags, Secrets};
use crate::host::outbound_http::{HttpClient, OutboundHttp};
use crate::host::outbound_tcp::{OutboundTcp, TcpSettings};
use crate::request::IncomingRequest;
use crate::response::GuestResponse;
use crate::sockets;
use crate::state::{HandlerCall, InstanceState};
use crate::stdio::GuestOutput;

/// The pre-instantiated component, by world.
pub(crate) enum Entry {
    Handler(HandlerPre<InstanceState>),
    WasiHttp(ProxyPre<InstanceState>),
}

/// A configured app whose component is compiled and pre-instantiated.
pub struct App {
    name: Arc<str>,
    component: String,
    env: Vec<(String, String)>,
    secrets: Arc<Secrets>,
    files: Vec<Mount>,
    max_request_body: u64,
    tcp: TcpSettings,
    http: Arc<HttpClient>,
    entry: Entry,
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
    /// A wasi:http guest answered with an error code instead of a response.
    #[error("the handler answered with the error {0:?}")]
    ErrorCode(ErrorCode),
    /// A wasi:http guest returned without setting its response.
    #[error("the handler returned without setting a response")]
    NoResponse,
    /// The request was handed to an app of the other world.
    #[error("the app serves the {0} world, not this kind of request")]
    WrongWorld(World),
}

/// A one-line description of a trap: its cause chain and, when available,
/// the guest's backtrace as `frame <- frame <- ...`.
fn describe_trap(error: &wasmtime::Error) -> String {
    // The backtrace is attached as context; it is rendered below, one
    // line, instead of in its multi-line form.
    let mut text = match error.downcast_ref::<Trap>() {
        Some(trap) => format!("{trap}"),
        None => {
            let skip = usize::from(error.downcast_ref::<WasmBacktrace>().is_some());
            error
                .chain()
                .skip(skip)
                .map(|cause| cause.to_string())
                .collect::<Vec<_>>()
                .join(": ")
        }
    };
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames: Vec<String> = backtrace
            .frames()
            .iter()
            .map(|frame| {
                let module = frame.module().name().unwrap_or("<module>");
                match frame.func_name() {
                    Some(name) => format!("{module}!{:#}", rustc_demangle::demangle(name)),
                    None => format!("{module}!<unnamed>"),
                }
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
    pub(crate) fn new(
        config: AppConfig,
        tcp: TcpSettings,
        http: Arc<HttpClient>,
        entry: Entry,
    ) -> App {
        App {
            name: config.name.into(),
            component: config.component.to_string(),
            env: config.env,
            secrets: Arc::new(Secrets::new(&config.secrets)),
            files: config.files,
            max_request_body: config.max_request_body,
            tcp,
            http,
            entry,
        }
    }

    /// The app's name, for logs.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The component file or built-in component the app runs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The world the app's component implements.
    pub fn world(&self) -> World {
        match self.entry {
            Entry::Handler(_) => World::Handler,
            Entry::WasiHttp(_) => World::WasiHttp,
        }
    }

    /// The largest request body this app accepts, in bytes.
    pub fn max_request_body(&self) -> u64 {
        self.max_request_body
    }

    /// The outbound HTTP rules this app runs with.
    pub fn http_allowlist(&self) -> &serverless_outbound::HttpAllowlist {
        self.http.rules()
    }

    /// The outbound TCP rules this app runs with.
    pub fn tcp_allowlist(&self) -> &serverless_outbound::TcpAllowlist {
        &self.tcp.allowlist
    }

    /// `text` with the app's secrets replaced, for log lines about the app
    /// that the host writes itself.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.secrets.redact(text)
    }

    /// A fresh store for one request. Nothing in it outlives the request.
    fn new_store(
        &self,
        request_id: Arc<str>,
        call: Option<HandlerCall>,
    ) -> Result<Store<InstanceState>, HandleError> {
        let tags = LogTags {
            app: self.name.clone(),
            request_id,
            secrets: self.secrets.clone(),
        };
        let mut wasi = WasiCtx::builder();
        for mount in &self.files {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&mount.host_path, &mount.guest_path, perms)
                .map_err(|error| {
                    HandleError::Instantiate(error.context(format!(
                        "cannot open the mounted folder {}",
                        mount.host_path.display()
                    )))
                })?;
        }
        let wasi = wasi
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
        let state = InstanceState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            http_outbound: OutboundHttp {
                client: self.http.clone(),
                tags: tags.clone(),
            },
            limits: StoreLimitsBuilder::new().trap_on_grow_failure(true).build(),
            tags,
            tcp: OutboundTcp::new(self.tcp.clone()),
            call,
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limits);
        Ok(store)
    }

    fn engine(&self) -> &wasmtime::Engine {
        match &self.entry {
            Entry::Handler(pre) => pre.engine(),
            Entry::WasiHttp(pre) => pre.engine(),
        }
    }

    /// Runs one handler-world request in a fresh store and instance and
    /// returns what the handler built.
    pub async fn handle(&self, request: IncomingRequest) -> Result<GuestResponse, HandleError> {
        let Entry::Handler(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.world()));
        };
        let call = HandlerCall {
            request,
            response: GuestResponse::default(),
        };
        let mut store = self.new_store(call.request.request_id.clone(), Some(call))?;
        let handler = pre
            .instantiate_async(&mut store)
            .await
            .map_err(HandleError::Instantiate)?;
        handler
            .call_handle(&mut store)
            .await
            .map_err(HandleError::Trap)?;
        let call = store.into_data().call;
        Ok(call.map(|c| c.response).unwrap_or_default())
    }

    /// Runs one request through a `wasi:http` component. Both bodies
    /// stream: the response is returned as soon as the guest sets it, and
    /// the guest keeps running on its own task while it writes the body.
    pub async fn serve_http<B>(
        &self,
        request_id: Arc<str>,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, HandleError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Entry::WasiHttp(pre) = &self.entry else {
            return Err(HandleError::WrongWorld(self.world()));
        };
        let mut store = self.new_store(request_id.clone(), None)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .map_err(HandleError::Instantiate)?;
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(HandleError::Instantiate)?;
        let pre = pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre
                .instantiate_async(&mut store)
                .await
                .map_err(HandleError::Instantiate)?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
                .map_err(HandleError::Trap)
        });
        match receiver.await {
            Ok(Ok(response)) => {
                // The guest may still fail while it streams the body; the
                // client then sees the connection cut, the log says why.
                let (app, id, secrets) = (self.name.clone(), request_id, self.secrets.clone());
                tokio::spawn(async move {
                    if let Ok(Err(error)) = task.await {
                        let message = secrets.redact(&error.to_string()).into_owned();
                        tracing::error!(
                            app = &*app,
                            request_id = &*id,
                            "request failed after its response started: {message}"
                        );
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => Err(HandleError::ErrorCode(code)),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(HandleError::NoResponse),
                Ok(Err(error)) => Err(error),
                Err(join) => Err(HandleError::Instantiate(wasmtime::Error::msg(format!(
                    "the request task failed: {join}"
                )))),
            },
        }
    }
}
