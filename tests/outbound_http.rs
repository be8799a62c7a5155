//! End-to-end tests of outbound HTTP from wasi:http components: what the
//! guest sees when a destination is malformed, a backend misbehaves or is
//! slow, and how the guest's and the app's timeouts combine.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use support::backends::{BlackHole, HttpBackend};
use support::{ConfigDir, Host, get};

/// The probe component on `/http-probe/:action`, with `extra` keys.
fn probe_config(extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\ntimeout = \"20s\"\n{extra}\n",
        guest_artifacts::TEST_HTTP_PROBE_PATH,
    ))
}

/// What the probe answers for a GET of `url` with `options` (a query
/// string such as `connect_ms=300`).
async fn fetch(host: &Host, url: &str, options: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(url.as_bytes()).collect();
    get(&host.url(&format!("/http-probe/fetch?url={encoded}&{options}")))
        .await
        .text()
}

/// A backend that reads one request and answers `reply`, then holds the
/// connection open without another byte.
fn raw_backend(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(reply);
            held.push(stream);
        }
    });
    address
}

/// Fails unless the answer came well before any limit of the app's (15 s,
/// 20 s, 30 s) or the host's old 5 s default would have ended the wait.
fn within_the_guests_limit(started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unparsable_port_is_an_invalid_uri_not_port_80() {
    let backend = HttpBackend::start_on("127.0.0.1:0");
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--allow-http", "http://127.0.0.1:*"],
    );
    // Before the fix the port fell back to 80.
    assert_eq!(
        fetch(&host, "http://127.0.0.1:99999/x", "").await,
        "error: ErrorCode::HttpRequestUriInvalid"
    );
    assert_eq!(
        fetch(&host, &format!("http://{}/x", backend.address), "").await,
        "200 backend saw /x"
    );
}

#[tokio::test]
async fn a_backend_that_does_not_speak_http_is_a_protocol_error() {
    let garbage = raw_backend(b"this is not HTTP\r\n\r\n");
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--allow-http", &format!("http://{garbage}")],
    );
    assert_eq!(
        fetch(&host, &format!("http://{garbage}/"), "").await,
        "error: ErrorCode::HttpProtocolError"
    );
}

#[tokio::test]
async fn the_guests_connect_timeout_is_honoured_when_smaller_than_the_apps() {
    let hole = BlackHole::start();
    let host = Host::start(
        Some(&probe_config("tcp_connect_timeout = \"15s\"").path()),
        &["--allow-http", &format!("http://{}", hole.address)],
    );
    let started = Instant::now();
    assert_eq!(
        fetch(
            &host,
            &format!("http://{}/", hole.address),
            "connect_ms=300"
        )
        .await,
        "error: ErrorCode::ConnectionTimeout"
    );
    // The app allows 15 s and the host's old default was 5 s.
    within_the_guests_limit(started);
}

#[tokio::test]
async fn an_app_without_allowed_http_keeps_its_own_connect_timeout() {
    let hole = BlackHole::start();
    let host = Host::start(
        Some(&probe_config("tcp_connect_timeout = \"300ms\"").path()),
        &["--allow-http", &format!("http://{}", hole.address)],
    );
    let started = Instant::now();
    assert_eq!(
        fetch(&host, &format!("http://{}/", hole.address), "").await,
        "error: ErrorCode::ConnectionTimeout"
    );
    // Before the fix every such app used the 5 s default.
    within_the_guests_limit(started);
}

// wasmtime 48 gives the guest no error code for a failed response body
// stream (`http-error-code` only recognises its own errors), so the guest
// sees the error's text.
#[tokio::test]
async fn a_stalled_body_times_out_between_bytes_at_the_smaller_limit() {
    let stalled = raw_backend(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc");
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--allow-http", &format!("http://{stalled}")],
    );
    let started = Instant::now();
    assert_eq!(
        fetch(&host, &format!("http://{stalled}/"), "between_ms=300").await,
        "error: body: connection read timeout"
    );
    // The app's tcp_io_timeout is 30 s and its request timeout 20 s.
    within_the_guests_limit(started);

    let host = Host::start(
        Some(&probe_config("tcp_io_timeout = \"300ms\"").path()),
        &["--allow-http", &format!("http://{stalled}")],
    );
    let started = Instant::now();
    assert_eq!(
        fetch(&host, &format!("http://{stalled}/"), "between_ms=10000").await,
        "error: body: connection read timeout"
    );
    within_the_guests_limit(started);
}

#[tokio::test]
async fn a_pooled_connection_is_reused_without_a_dns_lookup() {
    let network = support::netns::TestNetwork::create();
    let backend = HttpBackend::serve(network.listener());
    let port = backend.address.port();
    let resolution =
        support::netns::Resolution::new(&format!("{} backend.test\n", network.address));
    let host = Host::start_with(
        resolution.command(support::HOST_BIN),
        Some(&probe_config("").path()),
        &["--allow-http", &format!("http://backend.test:{port}")],
    );
    let url = |path: &str| format!("http://backend.test:{port}{path}");
    assert_eq!(fetch(&host, &url("/a"), "").await, "200 backend saw /a");
    // The name no longer resolves: a request that needed a lookup would
    // fail with a DNS error.
    resolution.set_hosts("");
    assert_eq!(fetch(&host, &url("/b"), "").await, "200 backend saw /b");
    assert_eq!(backend.connections(), 1);
}

#[tokio::test]
async fn a_request_may_have_only_its_connection_limit_of_outbound_requests_in_flight() {
    let backend = HttpBackend::start();
    let host = Host::start(
        Some(&probe_config("max_tcp_connections = 4").path()),
        &["--allow-http", &format!("http://{}", backend.address)],
    );
    let url: String =
        form_urlencoded::byte_serialize(format!("http://{}/x", backend.address).as_bytes())
            .collect();
    // Each kept response holds its slot; past the app's limit of 4 the
    // guest gets connection-limit-reached. Before the fix all 40 were
    // sent at once, each free to open a connection.
    let reply = get(&host.url(&format!("/http-probe/fetch-many?url={url}&count=40"))).await;
    assert_eq!(
        reply.text(),
        "4 answered, failed: ErrorCode::ConnectionLimitReached"
    );
    // (A finished small body frees its connection for the pool early.)
    assert!(backend.connections() <= 4, "{}", backend.connections());
    host.wait_for_log(&[
        reply.header("x-request-id").unwrap(),
        "refused an outbound HTTP request: this request already has as many in flight as the app's max_tcp_connections",
    ]);
}
