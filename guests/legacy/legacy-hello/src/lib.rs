//! Legacy-ABI sample: a core module (exported memory, the default) with
//! three entry points, so that routes can pick one with `function`:
//! `hello` and `handle` greet in English, `bonjour` in French.
//!
//! It sets `Content-length` itself, as the original samples did, to show
//! what the host does with a length the module computed.
#![cfg(target_arch = "wasm32")]

use serverless_wasm_legacy::{log, set_body, set_header, set_status};

/// Logs `message`, then answers 200 with a plain-text `body`.
fn greet(message: &str, body: &str) {
    log(message);
    set_status(200, "OK");
    set_header("Content-Type", "text/plain");
    set_header("Content-length", &body.len().to_string());
    set_body(body.as_bytes());
}

/// Answers `Hello, world!`.
#[unsafe(no_mangle)]
pub extern "C" fn hello() {
    greet("hello called", "Hello, world!\n");
}

/// Answers `Bonjour, le monde !`.
#[unsafe(no_mangle)]
pub extern "C" fn bonjour() {
    greet("bonjour called", "Bonjour, le monde !\n");
}

/// The default entry point: the same as [`hello`].
#[unsafe(no_mangle)]
pub extern "C" fn handle() {
    hello();
}
