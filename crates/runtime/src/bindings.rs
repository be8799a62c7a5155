//! Host bindings for the `serverless-wasm:platform/handler` world in `wit/`:
//! one `bindgen!`, kept private, and re-exports of what the host files use.
//! Every interface is implemented on [`crate::state::PlatformView`], a
//! borrowed view of the request's store.

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "serverless-wasm:platform/handler",
        imports: {
            "serverless-wasm:platform/outbound-tcp": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "serverless-wasm:platform/outbound-tcp.connection": crate::host::outbound_tcp::Connection,
        },
        // A host function returns the guest's error or a trap in one
        // `Result`, instead of a trap result around the guest's result.
        trappable_error_type: {
            "serverless-wasm:platform/outbound-tcp.error" => crate::host::outbound_tcp::TcpError,
            "serverless-wasm:platform/response.response-error" => crate::host::response::ResponseFailure,
        },
        require_store_data_send: true,
    });
}

pub(crate) use generated::serverless_wasm::platform::{log, outbound_tcp, request, response};
pub(crate) use generated::{Handler, HandlerPre};
