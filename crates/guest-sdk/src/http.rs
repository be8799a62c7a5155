//! Outgoing HTTP requests through `wasi:http/outgoing-handler`, for
//! handlers and subscription handlers alike. The operator allows
//! destinations with `--allow-http`; anything else fails with the host's
//! `HttpRequestDenied`.
//!
//! ```no_run
//! let status = serverless_wasm_sdk::http::post(
//!     "http://127.0.0.1:9000/readings",
//!     Some("application/json"),
//!     &[],
//!     br#"{"celsius":21.5}"#,
//! )
//! .expect("posted");
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, whole.
    pub body: Vec<u8>,
}

/// Sends `body` to `url` with `POST` and returns the status; `headers`
/// are added as given.
pub fn post(
    url: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<u16, String> {
    send(Method::Post, url, content_type, headers, body).map(|response| response.status)
}

/// Sends a `GET` to `url`.
pub fn get(url: &str) -> Result<Response, String> {
    send(Method::Get, url, None, &[], &[])
}

fn send(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` has no scheme; write http://HOST/PATH"))?;
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, "/"),
    };
    let mut fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
    if let Some(content_type) = content_type {
        fields.push(("content-type".to_owned(), content_type.as_bytes().to_vec()));
    }
    // A known length, so that the request is not chunked.
    if !matches!(method, Method::Get) {
        fields.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    let fields = Fields::from_list(&fields).map_err(|error| format!("bad header: {error:?}"))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method)
        .map_err(|()| "cannot set the method")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "cannot set the scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority `{authority}`"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("invalid path `{path}`"))?;
    let outgoing = request.body().map_err(|()| "no request body")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|()| "no request body stream")?;
        for piece in body.chunks(4096) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|error| format!("sending the body: {error:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "the response was taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no response body")?;
    let stream = incoming.stream().map_err(|()| "no response body stream")?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(error) => return Err(format!("reading the response body: {error:?}")),
        }
    }
    Ok(Response { status, body })
}
