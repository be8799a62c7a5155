//! Hostile clients at the HTTP front door: slow or stalled uploads,
//! connections held open, malformed request heads. Each must cost the
//! attacker its own connection and nothing that other clients need.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{ConfigDir, Host, client, get, probe_config, send};

/// Reads from `stream` until what arrived contains `needle`, the peer
/// closes, or `timeout` passes; returns what arrived.
fn read_until(stream: &mut TcpStream, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Reads one response with a `content-length` body, or what arrived
/// before the peer closed or `timeout` passed.
fn read_response(stream: &mut TcpStream, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return text;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        // A byte at a time, so that nothing of a next response is taken.
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return text,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads until the peer closes the connection; `None` if it is still open
/// after `timeout`.
fn read_to_close(stream: &mut TcpStream, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // A reset is a close too.
            Err(_) => return Some(String::from_utf8_lossy(&received).into_owned()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_get_408_in_time_and_hold_no_slot() {
    let config = probe_config("max_concurrency = 2\ntimeout = \"1s\"");
    let host = Host::start(
        Some(&config.path()),
        &["--max-instances", "2", "--queue-timeout", "100"],
    );
    // Twice the app's and the host's cap of uploads that announce 100
    // bytes, send a few and stall. `Expect: 100-continue` makes the host
    // say when it starts reading each body.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(host.address).unwrap();
        stream
            .write_all(
                b"POST /probe/params HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
            )
            .unwrap();
        let interim = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5));
        assert_eq!(
            interim, "HTTP/1.1 100 Continue\r\n\r\n",
            "the host reads every stalled body at once"
        );
        stream.write_all(b"only a part").unwrap();
        stalled.push((stream, Instant::now()));
    }
    // And one that stalls without asking.
    let mut plain = TcpStream::connect(host.address).unwrap();
    plain
        .write_all(
            b"POST /probe/params HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\npart",
        )
        .unwrap();
    stalled.push((plain, Instant::now()));

    let reply = send(&client(), "POST", &host.url("/probe/params"), &[], "whole").await;
    assert_eq!(
        reply.status,
        200,
        "a normal request is served while uploads stall: {}",
        reply.text()
    );

    for (mut stream, started) in stalled {
        let answer = read_to_close(&mut stream, Duration::from_secs(5))
            .expect("the host closes a stalled upload's connection");
        let waited = started.elapsed();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\nrequest timeout: the body did not arrive in time\n"),
            "{answer}"
        );
        assert!(
            waited < Duration::from_millis(2500),
            "408 within the app's timeout of 1s (and some slack), took {waited:?}"
        );
    }
    host.wait_for_log(&["the request body did not arrive within the app's timeout of 1s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_http_guest_blocked_on_a_stalled_body_is_stopped_at_its_deadline() {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"http-probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\nmax_concurrency = 1\ntimeout = \"1s\"\n",
        guest_artifacts::TEST_HTTP_PROBE_PATH
    ));
    // Long enough a queue that the next request waits for the slot.
    let host = Host::start(Some(&config.path()), &["--queue-timeout", "5000"]);
    let mut stream = TcpStream::connect(host.address).unwrap();
    stream
        .write_all(
            b"POST /http-probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\npart",
        )
        .unwrap();
    let started = Instant::now();
    // The echo guest answers first, then reads: the head says it runs.
    let head = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a request id")
        .to_owned();

    let queued = Instant::now();
    let reply = get(&host.url("/http-probe/meta")).await;
    assert_eq!(reply.status, 200, "the slot is freed at the deadline");
    assert!(
        queued.elapsed() < Duration::from_secs(3),
        "waited {:?} for the slot",
        queued.elapsed()
    );
    read_to_close(&mut stream, Duration::from_secs(5))
        .expect("the stalled exchange is closed at the deadline");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "closed within the app's timeout of 1s, took {:?}",
        started.elapsed()
    );
    host.wait_for_log(&[
        &id,
        "request failed after the guest set its response or its client left: deadline",
    ]);
}

const SIMPLE_GET: &[u8] = b"GET /probe/params HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let host = Host::start(Some(&probe_config("").path()), &["--max-connections", "2"]);
    // Two keep-alive connections, each served once and left open.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(host.address).unwrap();
        stream.write_all(SIMPLE_GET).unwrap();
        let head = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        open.push(stream);
    }
    host.wait_for_log(&[
        "2 connections open (--max-connections): new ones wait in the listen backlog until one closes",
    ]);
    // The kernel completes the handshake; the host does not accept it.
    let mut third = TcpStream::connect(host.address).unwrap();
    third.write_all(SIMPLE_GET).unwrap();
    assert_eq!(
        read_until(&mut third, "\r\n\r\n", Duration::from_millis(500)),
        "",
        "not served while two connections are open"
    );
    drop(open.pop());
    let head = read_until(&mut third, "\r\n\r\n", Duration::from_secs(5));
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n"),
        "served once one closed: {head:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let host = Host::start(Some(&probe_config("").path()), &["--idle-timeout", "400ms"]);
    let mut stream = TcpStream::connect(host.address).unwrap();
    for _ in 0..2 {
        stream.write_all(SIMPLE_GET).unwrap();
        let response = read_response(&mut stream, Duration::from_secs(5));
        assert!(
            response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("action=params\n"),
            "kept alive for the next request: {response:?}"
        );
    }
    let answered = Instant::now();
    let rest = read_to_close(&mut stream, Duration::from_secs(5))
        .expect("the host closes the idle connection");
    assert_eq!(rest, "", "nothing more was sent");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(300) && idle < Duration::from_secs(3),
        "closed after about 400ms idle, not {idle:?}"
    );
}

#[test]
fn an_http_1_1_request_without_exactly_one_host_header_gets_400() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let refusal = "bad request: an HTTP/1.1 request needs exactly one Host header\n";
    for (what, head) in [
        (
            "no Host",
            "GET /probe/params HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Hosts",
            "GET /probe/params HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let answer = support::raw_exchange(host.address, head.as_bytes(), Duration::from_secs(5));
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n") && answer.ends_with(refusal),
            "{what}: {answer}"
        );
    }
    host.wait_for_log(&["refused: an HTTP/1.1 request with 0 Host headers"]);
    host.wait_for_log(&["refused: an HTTP/1.1 request with 2 Host headers"]);
    for (what, head, status) in [
        (
            "one Host",
            "GET /probe/params HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\n",
        ),
        (
            "HTTP/1.0 without Host",
            "GET /probe/params HTTP/1.0\r\n\r\n",
            "HTTP/1.0 200 OK\r\n",
        ),
    ] {
        let answer = support::raw_exchange(host.address, head.as_bytes(), Duration::from_secs(5));
        assert!(
            answer.starts_with(status) && answer.ends_with("action=params\n"),
            "{what}: {answer}"
        );
    }
}

#[test]
fn an_http_1_0_request_with_two_host_headers_gets_400() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let answer = support::raw_exchange(
        host.address,
        b"GET /probe/params HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request\r\n")
            && answer.ends_with("bad request: a request may have at most one Host header\n"),
        "{answer}"
    );
    host.wait_for_log(&["refused: an HTTP/1.0 request with 2 Host headers"]);
}

#[test]
fn request_bodies_read_before_admission_share_a_host_wide_budget() {
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--max-pending-body-bytes", "64 KiB"],
    );
    let head = b"POST /probe/params HTTP/1.1\r\nHost: localhost\r\nContent-Length: 61440\r\n\r\n";
    let chunk = [b'x'; 4096];
    // Each chunk is followed by a short read, which paces the trickle and
    // sees an early answer.
    let trickle = |stream: &mut TcpStream, chunks: usize| -> String {
        for _ in 0..chunks {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            let answer = read_until(stream, "\r\n\r\n", Duration::from_millis(20));
            if !answer.is_empty() {
                return answer;
            }
        }
        String::new()
    };
    let mut first = TcpStream::connect(host.address).unwrap();
    first.write_all(head).unwrap();
    assert_eq!(trickle(&mut first, 12), "", "48 KiB of the first body fit");
    // The second gets 16 KiB in, then no more fits.
    let mut second = TcpStream::connect(host.address).unwrap();
    second.write_all(head).unwrap();
    let mut answer = trickle(&mut second, 12);
    answer.push_str(&read_response(&mut second, Duration::from_secs(5)));
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && answer.contains("\r\nretry-after: 1\r\n")
            && answer.ends_with("busy: too many request bodies being received, retry shortly\n"),
        "{answer}"
    );
    host.wait_for_log(&[
        "refused: the request bodies being read before admission hold the host's budget of 65536 bytes (--max-pending-body-bytes)",
    ]);
    // The second's share came back: the first completes.
    for _ in 0..3 {
        first.write_all(&chunk).unwrap();
    }
    let answer = read_response(&mut first, Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("action=params\n"),
        "{answer}"
    );
    // And so does a small request.
    let answer = support::raw_exchange(
        host.address,
        b"POST /probe/params HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsmall",
        Duration::from_secs(5),
    );
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("action=params\n"),
        "{answer}"
    );
}
