//! Host bindings for the `serverless-wasm:platform/handler` world in `wit/`
//! and for `wasi:messaging` (`wit/deps/messaging`): one `bindgen!` each,
//! kept private, and re-exports of what the host files use. The platform's
//! interfaces are implemented on [`crate::state::PlatformView`], the
//! messaging ones on [`crate::host::messaging::MessagingView`]: borrowed
//! views of the request's store.

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

mod messaging_generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wasi:messaging/messaging-request-reply@0.2.0-draft",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:messaging/types.client": crate::host::messaging::Client,
            "wasi:messaging/types.message": crate::host::messaging::GuestMessage,
            "wasi:messaging/request-reply.request-options": crate::host::messaging::RequestOptions,
        },
        require_store_data_send: true,
    });
}

pub(crate) use messaging_generated::wasi::messaging::{producer, request_reply, types};
pub(crate) use messaging_generated::{MessagingRequestReply, MessagingRequestReplyPre};
