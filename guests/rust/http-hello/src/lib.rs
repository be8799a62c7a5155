//! `GET /http-hello` and `GET /http-hello/:name`: a greeting from a plain
//! `wasi:http/proxy` component. It knows nothing of serverless-wasm: it is
//! built with the standard `wasip2` bindings and runs unchanged on any
//! wasi:http host. On serverless-wasm it finds its route parameters in the
//! `x-serverless-params` header.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HttpHello;

/// The `name` route parameter, from the form-encoded parameters header.
fn name_param(request: &IncomingRequest) -> Option<String> {
    let values = request.headers().get("x-serverless-params");
    let encoded = String::from_utf8(values.into_iter().next()?).ok()?;
    encoded.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "name").then(|| decode(value))
    })
}

/// Decodes `application/x-www-form-urlencoded` text.
fn decode(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: Vec<u8> = input.by_ref().take(2).collect();
                match std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(value) => bytes.push(value),
                    None => bytes.extend_from_slice(&hex),
                }
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl wasip2::exports::http::incoming_handler::Guest for HttpHello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let name = name_param(&request).unwrap_or_else(|| "world".to_owned());
        let headers = Fields::from_list(&[(
            "content-type".to_owned(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the body stream");
        stream
            .blocking_write_and_flush(format!("Hello from wasi:http, {name}!\n").as_bytes())
            .expect("the client takes the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body finishes");
    }
}

wasip2::http::proxy::export!(HttpHello);
