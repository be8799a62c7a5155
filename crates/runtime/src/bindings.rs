//! Host bindings for the `serverless-wasm:platform/handler` world in `wit/`.

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
        require_store_data_send: true,
    });
}

pub(crate) use generated::serverless_wasm::platform::{log, outbound_tcp, request, response};
pub(crate) use generated::{Handler, HandlerPre};
