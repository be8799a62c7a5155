//! Write serverless-wasm HTTP handlers in Rust.
//!
//! A handler is a type implementing [`Handler`], exported with
//! [`export_handler!`]. The host creates a fresh instance for every request
//! and calls [`Handler::handle`] once; the handler reads the request through
//! [`request`] and builds the answer through [`response`].
//!
//! ```no_run
//! use serverless_wasm_sdk::{Handler, request, response};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle() {
//!         let name = request::param("name").unwrap_or_else(|| "world".into());
//!         response::text(200, &format!("Hello, {name}!\n"));
//!     }
//! }
//!
//! serverless_wasm_sdk::export_handler!(Hello);
//! ```
//!
//! Standard library facilities work too: `std::env::var` reads the app's
//! `env` table and `println!`/`eprintln!` go to the host log, tagged with
//! the app and the request id.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "serverless-wasm:platform/handler",
        pub_export_macro: true,
        export_macro_name: "export_handler",
        default_bindings_module: "serverless_wasm_sdk::bindings",
    });
}

pub mod http;
pub mod messaging;
mod tcp;

pub use bindings::Guest as Handler;
/// Exports a [`Handler`] implementation as the component's `handle` function.
pub use bindings::export_handler;
/// Exports a [`messaging::Subscriber`] as the component's
/// `wasi:messaging/incoming-handler`.
pub use messaging::export_subscriber;

/// The incoming request: method, path, query, headers, body and route
/// parameters.
pub mod request {
    pub use crate::bindings::serverless_wasm::platform::request::*;

    /// The first value of query parameter `name`, decoded.
    pub fn query_param(name: &str) -> Option<String> {
        query_params()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// Building the response: status, headers and body.
pub mod response {
    pub use crate::bindings::serverless_wasm::platform::response::*;

    /// Answers with `status` and a UTF-8 text body, setting
    /// `content-type: text/plain; charset=utf-8`.
    pub fn text(status: u16, body: &str) {
        set_status(status).unwrap_or_else(|error| panic!("invalid status {status}: {error}"));
        set_header("content-type", "text/plain; charset=utf-8")
            .unwrap_or_else(|error| panic!("cannot set content-type: {error}"));
        set_body(body.as_bytes()).unwrap_or_else(|error| panic!("cannot set the body: {error}"));
    }
}

/// Outbound TCP connections to backends the operator allows. The
/// connection implements [`std::io::Read`] and [`std::io::Write`].
pub mod outbound_tcp {
    pub use crate::bindings::serverless_wasm::platform::outbound_tcp::*;
}

/// Log lines in the host log, tagged with the app and the request id. The
/// macros [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] take
/// `format!` arguments.
pub mod log {
    pub use crate::bindings::serverless_wasm::platform::log::*;
}

/// Logs a formatted line at the given [`log::Level`].
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        $crate::log::log($level, &::std::format!($($arg)*))
    };
}

/// Logs a formatted line at `trace` level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Trace, $($arg)*) };
}

/// Logs a formatted line at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $($arg)*) };
}

/// Logs a formatted line at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $($arg)*) };
}

/// Logs a formatted line at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warn, $($arg)*) };
}

/// Logs a formatted line at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $($arg)*) };
}
