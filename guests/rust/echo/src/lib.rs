//! `ANY /echo` and `ANY /echo/*`: answers with the request.
//!
//! The response body is the request body, byte for byte, with the request's
//! `content-type`. The rest of the request comes back in headers:
//! `x-echo-method`, `x-echo-path`, `x-echo-query`, `x-echo-route`,
//! `x-echo-params` (form-encoded `name=value` pairs) and one
//! `x-echo-header-NAME` per request header.

use serverless_wasm_sdk::{Handler, request, response};

struct Echo;

/// Form-encodes `(name, value)` pairs, so that any parameter value fits in
/// a header.
fn form_encode(pairs: &[(String, String)]) -> String {
    fn encode(text: &str, out: &mut String) {
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => {
                    out.push(char::from(byte))
                }
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode(name, &mut out);
        out.push('=');
        encode(value, &mut out);
    }
    out
}

fn set(name: &str, value: &str) {
    if let Err(error) = response::append_header(name, value) {
        panic!("cannot echo header {name}: {error:?}");
    }
}

impl Handler for Echo {
    fn handle() {
        set("x-echo-method", &request::method());
        set("x-echo-path", &request::path());
        set("x-echo-query", &request::query());
        set("x-echo-route", &request::route());
        set("x-echo-params", &form_encode(&request::params()));
        for (name, value) in request::headers() {
            set(&format!("x-echo-header-{name}"), &value);
        }
        let content_type = request::header("content-type")
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        set("content-type", &content_type);
        if let Err(error) = response::set_body(&request::body()) {
            panic!("cannot echo the body: {error}");
        }
    }
}

serverless_wasm_sdk::export_handler!(Echo);
