//! End-to-end tests of `wasi:http/proxy` components on `host serve`: a
//! component built only against the standard WASI bindings, request
//! metadata, streaming with bounded host memory, and failures.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use support::{ConfigDir, Host, client, get, send};

fn http_config(extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"[[applications]]
name = "hello"
file_path = {hello:?}
method = "GET"
url_path = "/http-hello/:name"

[[applications]]
name = "probe"
file_path = {probe:?}
method = "ANY"
url_path = "/http-probe/:action"
{extra}
"#,
        hello = guest_artifacts::HTTP_HELLO_PATH,
        probe = guest_artifacts::TEST_HTTP_PROBE_PATH,
    ))
}

#[tokio::test]
async fn a_plain_wasi_http_component_runs_unchanged() {
    let host = Host::start(Some(&http_config("").path()), &[]);
    let reply = get(&host.url("/http-hello/Ada%20L")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello from wasi:http, Ada L!\n");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn route_and_request_id_reach_the_component_and_cannot_be_forged() {
    let host = Host::start(Some(&http_config("").path()), &[]);
    // A malformed client id is replaced; the route and parameter headers
    // a client sends are never passed on.
    let reply = send(
        &client(),
        "POST",
        &host.url("/http-probe/meta?x=1"),
        &[
            ("x-serverless-route", b"/forged"),
            ("x-serverless-params", b"admin=1"),
            ("x-request-id", b"forged id with spaces"),
        ],
        Bytes::new(),
    )
    .await;
    let id = reply.header("x-request-id").unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "a malformed client id is replaced by a UUID, got {id:?}"
    );
    assert_eq!(
        reply.text(),
        format!(
            "method=Method::Post\npath=/http-probe/meta?x=1\nrequest-id={id}\nroute=/http-probe/:action\nparams=action=meta\n"
        )
    );
    // A well-formed client id is kept, and the component sees that one,
    // not a second copy the client adds.
    let reply = send(
        &client(),
        "POST",
        &host.url("/http-probe/meta"),
        &[("x-request-id", b"trace-1"), ("x-request-id", b"trace-2")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-1"));
    assert_eq!(
        reply.text(),
        "method=Method::Post\npath=/http-probe/meta\nrequest-id=trace-1\nroute=/http-probe/:action\nparams=action=meta\n"
    );
}

/// A request body of `left` bytes of `y`, produced 64 KiB at a time so that
/// the test never holds it whole.
struct Generated {
    left: u64,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        const CHUNK: &[u8] = &[b'y'; 64 * 1024];
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let size = self.left.min(CHUNK.len() as u64);
        self.left -= size;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &CHUNK[..size as usize],
        )))))
    }
}

/// Reads a response body to the end, counting bytes without keeping them.
async fn drain(mut body: hyper::body::Incoming) -> u64 {
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the body streams").into_data() {
            assert!(data.iter().all(|b| *b == b'x' || *b == b'y'));
            total += data.len() as u64;
        }
    }
    total
}

/// Sends a request whose body of `upload` bytes is generated as it goes,
/// and returns the response with its body not yet read.
async fn stream(
    host: &Host,
    method: &str,
    path: &str,
    upload: u64,
) -> hyper::Response<hyper::body::Incoming> {
    let request = http::Request::builder()
        .method(method)
        .uri(host.url(path))
        .body(Generated { left: upload })
        .unwrap();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Generated>()
        .request(request)
        .await
        .unwrap()
}

#[tokio::test]
async fn large_bodies_stream_both_ways_without_growing_host_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let host = Host::start(
        Some(&http_config("max_request_body = \"1 GiB\"\nmax_response_body = \"1 GiB\"").path()),
        &[],
    );
    // Warm up so that pools and threads exist before measuring.
    let warm = stream(&host, "POST", "/http-probe/echo", 1024 * 1024).await;
    assert_eq!(drain(warm.into_body()).await, 1024 * 1024);
    let before = host.memory("VmHWM");

    let upload = stream(&host, "POST", "/http-probe/echo", SIZE).await;
    assert_eq!(upload.status(), 200);
    assert_eq!(
        drain(upload.into_body()).await,
        SIZE,
        "the echo returns every byte"
    );

    let download = stream(&host, "GET", &format!("/http-probe/bytes?n={SIZE}"), 0).await;
    assert_eq!(drain(download.into_body()).await, SIZE);

    let growth = host.memory("VmHWM").saturating_sub(before);
    eprintln!(
        "host peak RSS grew by {} KiB while streaming 2 x 100 MiB",
        growth / 1024
    );
    assert!(
        growth < 32 * 1024 * 1024,
        "the host's peak RSS grew by {} MiB: bodies are being buffered",
        growth / (1024 * 1024)
    );
}

/// A request body sent as the test hands it chunks.
struct Paced(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Paced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(context)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// How many requests have moved to the slow lane since `host` started.
async fn slow_lane_moves(host: &Host) -> u64 {
    let metrics = get(&format!(
        "http://{}/metrics",
        host.admin.expect("admin endpoints are on")
    ))
    .await
    .text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("serverless_slow_lane_moves_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no slow-lane metric in {metrics}"))
}

#[tokio::test]
async fn a_guest_echoing_a_slow_client_stays_on_the_host_workers() {
    // A guest that mostly waits for its client is not the CPU hog the slow
    // lane is for: moving it would make every write cross threads. The
    // client here pauses between chunks for longer than an epoch slice, so
    // the guest waits through many slices in all, but never runs for more
    // than a moment in a row (two writes), even in a debug build on a busy
    // machine.
    const CHUNK: usize = 8 * 1024;
    const ROUNDS: usize = 40;
    let pause = std::time::Duration::from_millis(3);
    let host = Host::start(
        Some(&http_config("max_request_body = \"1 GiB\"\nmax_response_body = \"1 GiB\"").path()),
        &[],
    );

    // The first request of a process may compute for a while (lazy
    // set-up of the pool, say) and, on a busy machine, move: counted apart.
    assert_eq!(get(&host.url("/http-probe/meta")).await.status, 200);
    let moves = slow_lane_moves(&host).await;

    // An echo, one chunk at a time: each comes back before the next goes.
    let (chunks, receiver) = tokio::sync::mpsc::channel(1);
    let request = http::Request::builder()
        .method("POST")
        .uri(host.url("/http-probe/echo"))
        .body(Paced(receiver))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Paced>();
    let responding = tokio::spawn(async move { client.request(request).await.unwrap() });
    chunks.send(Bytes::from(vec![b'y'; CHUNK])).await.unwrap();
    let mut body = responding.await.unwrap().into_body();
    let mut echoed = 0;
    for round in 1..=ROUNDS {
        while echoed < round * CHUNK {
            let frame = body.frame().await.expect("the echo goes on").unwrap();
            echoed += frame.into_data().map_or(0, |data| data.len());
        }
        tokio::time::sleep(pause).await;
        if round < ROUNDS {
            chunks.send(Bytes::from(vec![b'y'; CHUNK])).await.unwrap();
        }
    }
    drop(chunks);
    assert_eq!(echoed + drain(body).await as usize, ROUNDS * CHUNK);
    assert_eq!(
        slow_lane_moves(&host).await,
        moves,
        "an echo waiting on its client moved to the slow lane"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_up_front() {
    let host = Host::start(Some(&http_config("max_request_body = 1000").path()), &[]);
    let reply = send(
        &client(),
        "POST",
        &host.url("/http-probe/echo"),
        &[],
        vec![0u8; 1001],
    )
    .await;
    assert_eq!(reply.status, 413);
    let fits = send(
        &client(),
        "POST",
        &host.url("/http-probe/echo"),
        &[],
        vec![b'y'; 1000],
    )
    .await;
    assert_eq!((fits.status, fits.body.len()), (200, 1000));
}

#[tokio::test]
async fn traps_and_missing_responses_are_500_and_logged() {
    let host = Host::start(Some(&http_config("").path()), &[]);
    let trap = get(&host.url("/http-probe/trap")).await;
    assert_eq!(
        (trap.status, trap.text().as_str()),
        (500, "internal server error\n")
    );
    let line = host.wait_for_log(&["request failed", trap.header("x-request-id").unwrap()]);
    // The guest's backtrace, whose first frame is in the probe component.
    // Its function names depend on how the guest was optimised: with LTO
    // the handler is inlined into the export `incoming-handler#handle`.
    assert!(
        line.contains("unreachable")
            && line.contains("backtrace: test_http_probe.wasm!")
            && line.contains("incoming-handler@0.2.")
            && line.contains("#handle"),
        "{line}"
    );

    // A guest that answers with an error code and then traps: the client
    // gets the 500 for the code, and the trap is logged, not lost.
    let late = get(&host.url("/http-probe/error-then-trap")).await;
    assert_eq!(late.status, 500);
    let id = late.header("x-request-id").unwrap();
    host.wait_for_log(&["request failed:", "kind=\"error code\"", id]);
    host.wait_for_log(&[
        "request failed after the guest set its response",
        "unreachable",
        id,
    ]);

    let silent = get(&host.url("/http-probe/silent")).await;
    assert_eq!(silent.status, 500);
    host.wait_for_log(&[
        "returned without setting a response",
        silent.header("x-request-id").unwrap(),
    ]);
    assert_eq!(get(&host.url("/http-hello/again")).await.status, 200);
}

#[test]
fn components_of_neither_world_or_the_wrong_declared_world_stop_startup() {
    let cases = [
        (
            format!(
                "file_path = {:?}",
                guest_artifacts::TEST_MISSING_EXPORT_PATH
            ),
            "the component exports `run`, but a route needs a component that exports `handle` (the serverless-wasm handler world) or `wasi:http/incoming-handler@0.2.x` (the wasi:http/proxy world)",
        ),
        (
            format!(
                "file_path = {:?}\nworld = \"handler\"",
                guest_artifacts::HTTP_HELLO_PATH
            ),
            "the component does not fit the handler world: no export `handle` found",
        ),
        (
            format!(
                "file_path = {:?}\nworld = \"wasi-http\"",
                guest_artifacts::HELLO_PATH
            ),
            "the component does not fit the wasi-http world",
        ),
    ];
    for (entry, expected) in cases {
        let config = ConfigDir::new(&format!(
            "[[applications]]\nname = \"x\"\n{entry}\nmethod = \"GET\"\nurl_path = \"/x\"\n"
        ));
        let output = support::host_command()
            .args([
                "serve",
                config.path().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
}

fn fetch_config(url: &str, extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"[[applications]]
name = "fetch"
file_path = {fetch:?}
method = "GET"
url_path = "/http-fetch"
env = {{ FETCH_URL = "{url}" }}
{extra}

[[applications]]
name = "probe"
file_path = {probe:?}
method = "ANY"
url_path = "/http-probe/:action"
"#,
        fetch = guest_artifacts::HTTP_FETCH_PATH,
        probe = guest_artifacts::TEST_HTTP_PROBE_PATH,
    ))
}

async fn probe_fetch(host: &Host, url: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
    get(&host.url(&format!("/http-probe/fetch?url={encoded}")))
        .await
        .text()
}

#[tokio::test]
async fn outbound_http_is_denied_without_a_flag() {
    let backend = support::backends::HttpBackend::start();
    let url = format!("http://{}/data", backend.address);
    let host = Host::start(Some(&fetch_config(&url, "").path()), &[]);
    assert!(
        host.stdout()
            .contains("outbound HTTP: denied (no --allow-http rules)")
    );
    let reply = get(&host.url("/http-fetch")).await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains("HttpRequestDenied"),
        "{}",
        reply.text()
    );
    host.wait_for_log(&[
        "refused outbound HTTP request",
        &url,
        reply.header("x-request-id").unwrap(),
    ]);
    assert_eq!(backend.connections(), 0);
}

#[tokio::test]
async fn the_fetch_sample_relays_an_allowed_backend_over_one_pooled_connection() {
    let backend = support::backends::HttpBackend::start();
    let url = format!("http://{}/data", backend.address);
    let rule = format!("http://{}", backend.address);
    let host = Host::start(
        Some(&fetch_config(&url, "").path()),
        &["--allow-http", &rule],
    );
    for _ in 0..5 {
        let reply = get(&host.url("/http-fetch")).await;
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, "backend saw /data")
        );
        assert_eq!(reply.header("content-type"), Some("text/plain"));
    }
    assert_eq!(
        backend.connections(),
        1,
        "requests from separate instances reuse one connection"
    );
}

#[tokio::test]
async fn allow_http_rules_match_scheme_host_and_port() {
    let first = support::backends::HttpBackend::start();
    let second = support::backends::HttpBackend::start();
    let v6 = support::backends::HttpBackend::start_on("[::1]:0");
    let low = first.address.port().min(second.address.port());
    let high = first.address.port().max(second.address.port());
    let host = Host::start(
        Some(&fetch_config("http://unused", "").path()),
        &[
            "--allow-http",
            &format!("http://127.0.0.1:{low}-{high}"),
            "--allow-http",
            &format!("*://[::1]:{}", v6.address.port()),
            "--allow-http",
            &format!("http://localhost:{}", high + 1),
        ],
    );
    for backend in [&first, &second] {
        let url = format!("http://127.0.0.1:{}/x", backend.address.port());
        assert_eq!(probe_fetch(&host, &url).await, "200 backend saw /x");
    }
    assert_eq!(
        probe_fetch(&host, &format!("http://[::1]:{}/v6", v6.address.port())).await,
        "200 backend saw /v6"
    );
    for refused in [
        format!("http://127.0.0.1:{}/", low - 1),
        format!("https://127.0.0.1:{low}/"),
        format!("http://127.1:{}/", low - 1),
        // A name rule alone never reaches loopback.
        format!("http://localhost:{}/", high + 1),
        format!("http://[::ffff:127.0.0.1]:{}/", high + 1),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let answer = probe_fetch(&host, &refused).await;
        assert_eq!(answer, "error: ErrorCode::HttpRequestDenied", "{refused}");
    }
    host.wait_for_log(&[
        "refused outbound HTTP request to http://localhost",
        "is a loopback address",
    ]);
}

#[test]
fn malformed_http_flags_and_uncovered_app_entries_stop_startup() {
    let output = support::host_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-http",
            "example.com:80",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the rule has no scheme")
            && stderr.contains("accepted forms: `http://127.0.0.1:8080`"),
        "{stderr}"
    );

    let config = fetch_config("http://x", "allowed_http = [\"https://api.example.com\"]");
    let output = support::host_command()
        .args([
            "serve",
            config.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--allow-http", "http://127.0.0.1:8080"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(":7:17: app `fetch` (")
            && stderr.contains("allowed_http entry `https://api.example.com` is not covered by the operator's rules (the operator's --allow-http rules are http://127.0.0.1:8080)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn app_entries_narrow_the_http_flags() {
    let first = support::backends::HttpBackend::start();
    let second = support::backends::HttpBackend::start();
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\nallowed_http = [\"http://{}\"]\n",
        guest_artifacts::TEST_HTTP_PROBE_PATH,
        first.address
    ));
    let host = Host::start(
        Some(&config.path()),
        &["--allow-http", "http://127.0.0.0/8:*"],
    );
    assert!(host.stdout().contains(&format!(
        "app probe narrows HTTP to: http://{}",
        first.address
    )));
    assert_eq!(
        probe_fetch(&host, &format!("http://{}/a", first.address)).await,
        "200 backend saw /a"
    );
    assert_eq!(
        probe_fetch(&host, &format!("http://{}/b", second.address)).await,
        "error: ErrorCode::HttpRequestDenied"
    );
    assert_eq!(second.connections(), 0);
}

// Multi-threaded: the body is read on this task while the host drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_streaming_response_finish() {
    const SIZE: u64 = 50 * 1024 * 1024;
    let mut host = Host::start(Some(&http_config("").path()), &["--drain-timeout", "30"]);
    let response = stream(&host, "GET", &format!("/http-probe/bytes?n={SIZE}"), 0).await;
    assert_eq!(response.status(), 200);
    // The guest is now blocked writing a body this test has not read.
    host.signal(libc::SIGTERM);
    host.wait_for_log(&["stopped accepting connections"]);
    assert_eq!(
        drain(response.into_body()).await,
        SIZE,
        "the response completes"
    );
    let status = host.wait(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_streamed_response_past_the_limit_is_cut_off_and_logged() {
    let host = Host::start(
        Some(&http_config("max_response_body = \"1 MiB\"").path()),
        &[],
    );
    let response = stream(&host, "GET", "/http-probe/bytes?n=5000000", 0).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let mut received = 0;
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received += frame.into_data().map_or(0, |d| d.len()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the client sees a broken response");
    assert!(received <= 1024 * 1024, "received {received} bytes");
    host.wait_for_log(&["response cut off", &id, "kind=\"response too large\""]);
    // The guest's write fails once the body is cut, and it panics: the
    // failure comes after the response started, and is logged all the same.
    host.wait_for_log(&["request failed after the guest set its response", &id]);
    assert_eq!(get(&host.url("/http-hello/ok")).await.status, 200);
}

#[tokio::test]
async fn the_access_line_of_a_wasi_http_request_comes_when_the_guest_finishes() {
    let host = Host::start(Some(&http_config("").path()), &[]);
    let reply = get(&host.url("/http-hello/Stats")).await;
    assert_eq!(reply.status, 200);
    let id = reply.header("x-request-id").unwrap();
    let line = host.wait_for_log(&["access", id]);
    assert!(line.contains("route=\"/http-hello/:name\""), "{line}");
    assert!(line.contains("instantiate_us="), "{line}");
    assert!(line.contains("execute_us="), "{line}");
    assert!(!line.contains("peak_memory=0 "), "{line}");
}

#[tokio::test]
async fn a_body_the_guest_does_not_finish_reaches_the_client_as_incomplete() {
    let host = Host::start(Some(&http_config("").path()), &[]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    for then in ["trap", "drop"] {
        let request = http::Request::builder()
            .uri(host.url(&format!("/http-probe/cut?then={then}")))
            .header("x-request-id", format!("cut-{then}"))
            .body(http_body_util::Empty::new())
            .unwrap();
        // The host closes the connection instead of sending the final
        // chunk: the client sees an incomplete message, before the head
        // (when hyper had not flushed it yet) or in the body. Before the
        // fix the body ended with the final chunk, as if whole.
        let incomplete = match client.request(request).await {
            Err(error) => {
                let source = std::error::Error::source(&error)
                    .and_then(|source| source.downcast_ref::<hyper::Error>());
                assert!(
                    source.is_some_and(hyper::Error::is_incomplete_message),
                    "then={then}: {error:?}"
                );
                true
            }
            Ok(response) => {
                assert_eq!(response.status(), 200);
                let mut body = response.into_body();
                let mut received = Vec::new();
                let mut ended = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => received.extend(frame.into_data().unwrap_or_default()),
                        Err(error) => {
                            ended = Some(error);
                            break;
                        }
                    }
                }
                assert!(
                    received.is_empty() || received == b"partial ",
                    "{received:?}"
                );
                // The body fails (the connection closed mid-body) instead
                // of ending.
                ended.is_some()
            }
        };
        assert!(incomplete, "then={then}: the cut response looked complete");
    }
    // A dropped body is aborted by wasmtime-wasi-http itself; a trapped
    // guest's body was ended as if finished, which the host now catches.
    host.wait_for_log(&[
        "cut-trap",
        "response cut off: the guest's response body ended without outgoing-body.finish",
    ]);
}
