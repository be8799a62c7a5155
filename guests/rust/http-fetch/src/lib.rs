//! `GET /http-fetch`: fetches the URL in the `FETCH_URL` environment
//! variable with `wasi:http/outgoing-handler` and relays the answer: its
//! status, content type and body. The operator must allow the destination
//! with `--allow-http`; otherwise the answer is `502` naming the error
//! (`HttpRequestDenied`).

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

struct HttpFetch;

/// What came back from the backend.
struct Fetched {
    status: u16,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn fetch(url: &str) -> Result<Fetched, String> {
    let (scheme, rest) = url.split_once("://").ok_or("FETCH_URL has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "cannot set the method")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "cannot set the scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "invalid authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "invalid path")?;
    let pending = outgoing_handler::handle(request, None).map_err(describe)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "the response was taken twice")?
        .map_err(describe)?;
    let content_type = response.headers().get("content-type").into_iter().next();
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no body")?;
    let stream = incoming.stream().map_err(|()| "no body stream")?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(error) => return Err(format!("reading the body: {error:?}")),
        }
    }
    Ok(Fetched {
        status,
        content_type,
        body,
    })
}

fn describe(error: ErrorCode) -> String {
    format!("{error:?}")
}

fn write_all(stream: &OutputStream, bytes: &[u8]) {
    for piece in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(piece)
            .expect("the client takes the body");
    }
}

fn respond(out: ResponseOutparam, status: u16, content_type: &[u8], body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), content_type.to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body of a new response");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the body stream");
    write_all(&stream, body);
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("the body finishes");
}

impl wasip2::exports::http::incoming_handler::Guest for HttpFetch {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let Ok(url) = std::env::var("FETCH_URL") else {
            respond(
                out,
                500,
                b"text/plain",
                b"FETCH_URL is not set in the app's env\n",
            );
            return;
        };
        match fetch(&url) {
            Ok(fetched) => {
                let content_type = fetched
                    .content_type
                    .unwrap_or_else(|| b"application/octet-stream".to_vec());
                respond(out, fetched.status, &content_type, &fetched.body);
            }
            Err(error) => {
                eprintln!("fetching {url} failed: {error}");
                respond(
                    out,
                    502,
                    b"text/plain",
                    format!("cannot fetch {url}: {error}\n").as_bytes(),
                );
            }
        }
    }
}

wasip2::http::proxy::export!(HttpFetch);
