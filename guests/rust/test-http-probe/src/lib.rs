//! Test-only wasi:http component: `ANY /http-probe/:action` does what
//! `action` says, so that the host's tests can check streaming, request
//! metadata and outbound HTTP. Never route it in production.
//!
//! * `echo`: streams the request body back as the response body.
//! * `bytes` (`n`): answers `n` bytes of `x`, written 64 KiB at a time.
//! * `meta`: answers the method, path and the headers the host adds.
//! * `fetch` (`url`, optional `connect_ms`, `between_ms`): GETs `url` with
//!   those request options and answers its status and body, or the error
//!   code (of the request, or of the body stream).
//! * `fetch-many` (`url`, `count`): sends `count` GETs at once and keeps
//!   every response; answers how many were answered and the errors.
//! * `read` (`path`): reads a file through `std::fs` (`wasi:filesystem`).
//! * `status` (`code`): answers with status `code`, even one a final
//!   response must not have (`101`).
//! * `trap`: executes `unreachable` before answering.
//! * `cut` (`then`): starts a chunked body, writes `partial `, then
//!   executes `unreachable` (`then=trap`) or drops the body without
//!   finishing it (`then=drop`).
//! * `error-then-trap`: answers with an error code, then executes
//!   `unreachable`.
//! * `silent`: returns without setting a response.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Probe;

const CHUNK: usize = 64 * 1024;

/// Writes all of `bytes`, in pieces no larger than a blocking write takes.
fn write_all(stream: &wasip2::io::streams::OutputStream, bytes: &[u8]) {
    for piece in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(piece)
            .expect("the client takes the body");
    }
}

fn query(request: &IncomingRequest, name: &str) -> String {
    let path = request.path_with_query().unwrap_or_default();
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("")
        .to_owned()
}

fn header(request: &IncomingRequest, name: &str) -> String {
    let values = request.headers().get(name);
    values
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// Sets a 200 response and returns its body for writing.
fn respond(out: ResponseOutparam, status: u16) -> OutgoingBody {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body of a new response");
    ResponseOutparam::set(out, Ok(response));
    body
}

fn answer(out: ResponseOutparam, status: u16, text: &str) {
    let body = respond(out, status);
    let stream = body.write().expect("the body stream");
    write_all(&stream, text.as_bytes());
    drop(stream);
    OutgoingBody::finish(body, None).expect("the body finishes");
}

/// Percent-decodes a query value.
fn decode(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let hex: Vec<u8> = input.by_ref().take(2).collect();
            if let Some(value) = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                bytes.push(value);
            }
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The request options a `fetch` asks for, in milliseconds.
#[derive(Default)]
struct FetchOptions {
    connect_ms: Option<u64>,
    between_ms: Option<u64>,
}

/// A GET of `url`, not yet sent.
fn get_request(url: &str) -> Result<OutgoingRequest, String> {
    let (scheme, rest) = url.split_once("://").ok_or("the url has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    Ok(request)
}

/// Starts a GET of `url`, without waiting for it.
fn start_get(url: &str) -> Result<wasip2::http::types::FutureIncomingResponse, String> {
    outgoing_handler::handle(get_request(url)?, None).map_err(|e| format!("{e:?}"))
}

fn fetch(url: &str, options: &FetchOptions) -> Result<(u16, Vec<u8>), String> {
    let request = get_request(url)?;
    let request_options = wasip2::http::types::RequestOptions::new();
    let millis = |ms: u64| ms * 1_000_000;
    if let Some(ms) = options.connect_ms {
        request_options
            .set_connect_timeout(Some(millis(ms)))
            .map_err(|()| "connect-timeout")?;
    }
    if let Some(ms) = options.between_ms {
        request_options
            .set_between_bytes_timeout(Some(millis(ms)))
            .map_err(|()| "between-bytes-timeout")?;
    }
    let pending =
        outgoing_handler::handle(request, Some(request_options)).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(CHUNK as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(error)) => {
                // The error code when the host gives one, else the first
                // line of its description (without a host backtrace).
                return Err(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => format!("body: {code:?}"),
                    None => format!(
                        "body: {}",
                        error.to_debug_string().lines().next().unwrap_or_default()
                    ),
                });
            }
        }
    }
    Ok((status, bytes))
}

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let action = path
            .split('?')
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        match action.as_str() {
            "echo" => {
                let incoming = request.consume().expect("the request body");
                let input = incoming.stream().expect("the request body stream");
                let body = respond(out, 200);
                let output = body.write().expect("the body stream");
                loop {
                    match input.blocking_read(CHUNK as u64) {
                        Ok(chunk) => write_all(&output, &chunk),
                        Err(wasip2::io::streams::StreamError::Closed) => break,
                        Err(error) => panic!("reading the request body: {error:?}"),
                    }
                }
                drop(output);
                OutgoingBody::finish(body, None).expect("the body finishes");
            }
            "bytes" => {
                let total: usize = query(&request, "n").parse().unwrap_or(0);
                let body = respond(out, 200);
                let output = body.write().expect("the body stream");
                let chunk = vec![b'x'; CHUNK];
                let mut left = total;
                while left > 0 {
                    let size = left.min(CHUNK);
                    write_all(&output, &chunk[..size]);
                    left -= size;
                }
                drop(output);
                OutgoingBody::finish(body, None).expect("the body finishes");
            }
            "cut" => {
                // Part of a body, then `then`: `trap`, or `drop` (the body
                // without `finish`).
                let body = respond(out, 200);
                let output = body.write().expect("the body stream");
                write_all(&output, b"partial ");
                drop(output);
                if query(&request, "then") == "trap" {
                    core::arch::wasm32::unreachable();
                }
                drop(body);
            }
            "meta" => {
                let text = format!(
                    "method={:?}\npath={}\nrequest-id={}\nroute={}\nparams={}\n",
                    request.method(),
                    path,
                    header(&request, "x-request-id"),
                    header(&request, "x-serverless-route"),
                    header(&request, "x-serverless-params"),
                );
                answer(out, 200, &text);
            }
            "fetch" => match fetch(
                &decode(&query(&request, "url")),
                &FetchOptions {
                    connect_ms: query(&request, "connect_ms").parse().ok(),
                    between_ms: query(&request, "between_ms").parse().ok(),
                },
            ) {
                Ok((status, body)) => answer(
                    out,
                    200,
                    &format!("{status} {}", String::from_utf8_lossy(&body)),
                ),
                Err(error) => answer(out, 200, &format!("error: {error}")),
            },
            "fetch-many" => {
                // Sends `count` GETs of `url` at once and keeps every
                // response (and so its connection) until all are in.
                let url = decode(&query(&request, "url"));
                let count: usize = query(&request, "count").parse().unwrap_or(1);
                let mut pending = Vec::new();
                for _ in 0..count {
                    match start_get(&url) {
                        Ok(future) => pending.push(future),
                        Err(error) => return answer(out, 200, &format!("error: {error}")),
                    }
                }
                let mut kept = Vec::new();
                let mut failed: Vec<String> = Vec::new();
                for future in pending {
                    future.subscribe().block();
                    match future.get() {
                        Some(Ok(Ok(response))) => kept.push(response),
                        Some(Ok(Err(code))) => failed.push(format!("{code:?}")),
                        _ => failed.push("no response".to_owned()),
                    }
                }
                failed.dedup();
                answer(
                    out,
                    200,
                    &format!("{} answered, failed: {}", kept.len(), failed.join(", ")),
                );
            }
            "read" => match std::fs::read_to_string(decode(&query(&request, "path"))) {
                Ok(text) => answer(out, 200, &text),
                Err(error) => answer(out, 200, &format!("error: {:?}", error.kind())),
            },
            "status" => {
                let code: u16 = query(&request, "code").parse().unwrap_or(200);
                answer(out, code, &format!("status {code}\n"));
            }
            "trap" => core::arch::wasm32::unreachable(),
            "error-then-trap" => {
                ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some("probe".into()))));
                core::arch::wasm32::unreachable()
            }
            "silent" => {}
            other => answer(out, 400, &format!("unknown probe action `{other}`\n")),
        }
    }
}

wasip2::http::proxy::export!(Probe);
