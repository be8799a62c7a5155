//! `wasi:http/outgoing-handler`: outbound HTTP requests from wasi:http
//! components, denied unless the operator allows the destination.

use http::Request;
use tracing::Level;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::guest_log::LogTags;

/// The future a `send_request` hook returns.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// One request's outbound HTTP: the policy and the log tags.
pub(crate) struct OutboundHttp {
    pub(crate) tags: LogTags,
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        self.tags.emit(
            Level::WARN,
            "outbound-http",
            &format!(
                "refused outbound HTTP request to {}: no --allow-http rule allows it",
                request.uri()
            ),
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
