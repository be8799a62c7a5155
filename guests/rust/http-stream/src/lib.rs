//! A plain `wasi:http/proxy` component for the streaming benchmark (`just
//! bench-streaming`), built with the standard `wasip2` bindings so that it
//! runs unchanged on `wasmtime serve` too.
//!
//! - A request with a body (`POST`, `PUT`): the body comes back as it
//!   arrives, chunk by chunk, never held whole (an echo).
//! - Any other request: `?bytes=N` bytes of `x` (default 1 MiB), written
//!   in chunks of up to 64 KiB with a `content-length` (a download).
//!
//! Every write waits for the stream's permit (`check-write`), as a guest
//! that streams at the wire's pace must, rather than asking the host to
//! buffer everything.

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

struct HttpStream;

/// The largest chunk read or written at once.
const CHUNK: u64 = 64 * 1024;

/// What a download sends when the query does not say.
const DEFAULT_BYTES: u64 = 1 << 20;

/// `bytes=N` from a path's query, if it has one that parses.
fn requested_bytes(path_with_query: &str) -> Option<u64> {
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("bytes="))
        .and_then(|value| value.parse().ok())
}

/// Writes all of `data`, waiting for the stream's permit before each
/// piece. `Err` when the client went away.
fn write_all(out: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let permit = out.check_write()?;
        if permit == 0 {
            out.subscribe().block();
            continue;
        }
        let take = data
            .len()
            .min(usize::try_from(permit).unwrap_or(usize::MAX));
        out.write(&data[..take])?;
        data = &data[take..];
    }
    Ok(())
}

/// Copies `input` to `out` until the input ends.
fn echo(input: &InputStream, out: &OutputStream) -> Result<(), StreamError> {
    loop {
        match input.blocking_read(CHUNK) {
            Ok(chunk) => write_all(out, &chunk)?,
            Err(StreamError::Closed) => return out.blocking_flush(),
            Err(error) => return Err(error),
        }
    }
}

/// Writes `total` bytes of `x` to `out`.
fn download(total: u64, out: &OutputStream) -> Result<(), StreamError> {
    let chunk = vec![b'x'; CHUNK as usize];
    let mut left = total;
    while left > 0 {
        let take = left.min(CHUNK);
        write_all(out, &chunk[..take as usize])?;
        left -= take;
    }
    out.blocking_flush()
}

impl wasip2::exports::http::incoming_handler::Guest for HttpStream {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let has_body = matches!(request.method(), Method::Post | Method::Put);
        let mut headers = vec![(
            "content-type".to_owned(),
            b"application/octet-stream".to_vec(),
        )];
        let total = (!has_body).then(|| {
            request
                .path_with_query()
                .as_deref()
                .and_then(requested_bytes)
                .unwrap_or(DEFAULT_BYTES)
        });
        if let Some(total) = total {
            headers.push(("content-length".to_owned(), total.to_string().into_bytes()));
        }
        let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid headers"));
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body stream");
        let sent = match total {
            Some(total) => download(total, &stream),
            None => {
                let incoming = request.consume().expect("the request body");
                let input = incoming.stream().expect("the request body stream");
                let copied = echo(&input, &stream);
                drop(input);
                drop(IncomingBody::finish(incoming));
                copied
            }
        };
        drop(stream);
        // A client that went away ends the body with an error; nothing to
        // finish then.
        if sent.is_ok() {
            OutgoingBody::finish(body, None).expect("the body finishes");
        }
    }
}

wasip2::http::proxy::export!(HttpStream);
