//! `native-hello [ADDR] [--busy-us N]`: the native baseline of `just
//! bench`. It answers every request with `Hello, NAME!` like the hello
//! handler, using the same hyper and tokio set-up as `host serve` but no
//! WebAssembly, so the difference between the two is the cost of the
//! platform.
//!
//! With `--busy-us N` it first keeps its core busy for N µs per request.
//! The benchmark uses this to measure how much work per request a server
//! can add and still reach a given share of native throughput: the budget
//! that a fresh WebAssembly instance per request has to fit in.
//!
//! For the streaming benchmark it also serves `/stream`: `POST` echoes the
//! body back as it arrives, `GET /stream?bytes=N` sends N bytes (default
//! 1 MiB) in 64 KiB chunks, like guests/rust/http-stream.
//!
//! Prints `listening on http://ADDR` once bound, like `host serve`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The largest chunk of a download.
const CHUNK: usize = 64 * 1024;

/// What a download sends when the query does not say.
const DEFAULT_BYTES: u64 = 1 << 20;

/// A body of `left` bytes of `x`, in chunks sliced from one buffer.
struct Repeat {
    chunk: Bytes,
    left: u64,
}

impl Repeat {
    fn new(total: u64) -> Repeat {
        Repeat {
            chunk: Bytes::from(vec![b'x'; CHUNK]),
            left: total,
        }
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let take = usize::try_from(self.left).unwrap_or(CHUNK).min(CHUNK);
        self.left -= take as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The response bodies: a greeting, an echoed request body or a download.
type Reply = Either<Full<Bytes>, Either<Incoming, Repeat>>;

/// `bytes=N` from a query, if it has one that parses.
fn requested_bytes(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("bytes="))
        .and_then(|value| value.parse().ok())
}

/// Routes `/stream` to the echo or the download, anything else to the
/// greeting.
async fn respond(
    request: Request<Incoming>,
    busy: Duration,
) -> Result<Response<Reply>, Infallible> {
    if request.uri().path() != "/stream" {
        return Ok(hello(&request, busy).map(Either::Left));
    }
    let mut response = if request.method() == hyper::Method::POST {
        Response::new(Either::Right(Either::Left(request.into_body())))
    } else {
        let total = requested_bytes(request.uri().query()).unwrap_or(DEFAULT_BYTES);
        Response::new(Either::Right(Either::Right(Repeat::new(total))))
    };
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// The greeting for `/hello/NAME` (or `world`), as the hello sample writes
/// it, after `busy` of work on this thread.
fn hello(request: &Request<Incoming>, busy: Duration) -> Response<Full<Bytes>> {
    if !busy.is_zero() {
        busy_for(busy);
    }
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
    response
}

/// Keeps the CPU busy, without sleeping or yielding, for `busy`.
fn busy_for(busy: Duration) {
    let start = Instant::now();
    while start.elapsed() < busy {
        std::hint::spin_loop();
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Options {
    address: SocketAddr,
    busy: Duration,
}

/// `[ADDR] [--busy-us N]`, in either order.
fn parse_options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let (mut address, mut busy) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--busy-us" {
            let value = args
                .next()
                .context("--busy-us needs a number of microseconds, such as --busy-us 5")?;
            let micros: u64 = value.parse().with_context(|| {
                format!("--busy-us {value}: expected a whole number of microseconds, such as 5")
            })?;
            if busy.replace(Duration::from_micros(micros)).is_some() {
                bail!("--busy-us is given twice; give it once");
            }
        } else if arg.starts_with('-') {
            bail!("unknown option {arg}; usage: native-hello [ADDR] [--busy-us N]");
        } else {
            let parsed: SocketAddr = arg.parse().with_context(|| {
                format!("{arg}: expected the address to listen on, such as 127.0.0.1:8080")
            })?;
            if address.replace(parsed).is_some() {
                bail!("{arg}: only one address to listen on may be given");
            }
        }
    }
    Ok(Options {
        address: address.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        busy: busy.unwrap_or(Duration::ZERO),
    })
}

fn main() -> anyhow::Result<()> {
    let Options { address, busy } = parse_options(std::env::args().skip(1))?;
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
                let connection = http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| respond(request, busy)),
                );
                if let Err(error) = connection.await {
                    eprintln!("connection error: {error}");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Options> {
        parse_options(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn address_and_busy_time_in_either_order() {
        let expected = Options {
            address: "127.0.0.1:8080".parse().unwrap(),
            busy: Duration::from_micros(7),
        };
        assert_eq!(
            parse(&["127.0.0.1:8080", "--busy-us", "7"]).unwrap(),
            expected
        );
        assert_eq!(
            parse(&["--busy-us", "7", "127.0.0.1:8080"]).unwrap(),
            expected
        );
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.address.port(), 0);
        assert_eq!(defaults.busy, Duration::ZERO);
    }

    #[test]
    fn bad_arguments_say_what_was_expected() {
        let error = format!("{:#}", parse(&["--busy-us"]).unwrap_err());
        assert!(error.contains("needs a number of microseconds"), "{error}");
        let error = format!("{:#}", parse(&["--busy-us", "2.5"]).unwrap_err());
        assert!(
            error.contains("--busy-us 2.5: expected a whole number"),
            "{error}"
        );
        let error = format!("{:#}", parse(&["--fast"]).unwrap_err());
        assert!(error.contains("unknown option --fast"), "{error}");
        let error = format!("{:#}", parse(&["localhost"]).unwrap_err());
        assert!(error.contains("localhost: expected the address"), "{error}");
        let error = format!(
            "{:#}",
            parse(&["--busy-us", "1", "--busy-us", "2"]).unwrap_err()
        );
        assert!(error.contains("--busy-us is given twice"), "{error}");
        let error = format!("{:#}", parse(&["127.0.0.1:1", "127.0.0.1:2"]).unwrap_err());
        assert!(error.contains("127.0.0.1:2: only one address"), "{error}");
    }

    #[test]
    fn a_download_sends_exactly_what_was_asked_in_chunks() {
        use http_body_util::BodyExt as _;
        assert_eq!(requested_bytes(Some("bytes=1073741824")), Some(1 << 30));
        assert_eq!(requested_bytes(Some("x=1&bytes=7")), Some(7));
        assert_eq!(requested_bytes(Some("bytes=lots")), None);
        assert_eq!(requested_bytes(None), None);
        let body = Repeat::new(CHUNK as u64 * 2 + 5);
        assert_eq!(body.size_hint().exact(), Some(CHUNK as u64 * 2 + 5));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let collected = runtime.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(collected.len(), CHUNK * 2 + 5);
        assert!(collected.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn busy_work_lasts_at_least_as_asked() {
        let start = Instant::now();
        busy_for(Duration::from_millis(3));
        assert!(start.elapsed() >= Duration::from_millis(3));
    }
}
