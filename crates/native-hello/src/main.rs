//! `native-hello [ADDR]`: the native baseline of `just bench`. It answers
//! every request with `Hello, NAME!` like the hello handler, using the same
//! hyper and tokio set-up as `host serve` but no WebAssembly, so the
//! difference between the two is the cost of the platform.
//!
//! Prints `listening on http://ADDR` once bound, like `host serve`.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The greeting for `/hello/NAME` (or `world`), as the hello sample writes it.
async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = request
        .uri()
        .path()
        .strip_prefix("/hello/")
        .filter(|name| !name.is_empty())
        .unwrap_or("world");
    let body = format!("Hello, {name}!\n");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()
        .context("the argument is the address to listen on, such as 127.0.0.1:8080")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        println!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    eprintln!("accept failed: {error}");
                    continue;
                }
            };
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello));
                if let Err(error) = connection.await {
                    eprintln!("connection error: {error}");
                }
            });
        }
    })
}
