//! End-to-end tests of `host serve`: the real binary on 127.0.0.1:0,
//! spoken to over real HTTP.

mod support;

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use support::{ConfigDir, Host, client, get, probe_config, raw_exchange, send};

#[tokio::test]
async fn bundled_samples_answer_their_routes() {
    let host = Host::start(None, &[]);
    let stdout = host.stdout();
    for route in [
        "GET     /hello",
        "GET     /hello/:name",
        "ANY     /echo",
        "ANY     /echo/*",
        "GET     /env",
        "GET     /counter",
        "POST    /tcp-echo",
        "GET     /http-hello/:name",
        "GET     /static/*",
        "GET     /legacy/hello",
        "GET     /legacy/bonjour",
    ] {
        assert!(
            stdout.contains(route),
            "route {route} missing from the banner:\n{stdout}"
        );
    }

    let hello = get(&host.url("/hello")).await;
    assert_eq!(
        (hello.status, hello.text().as_str()),
        (200, "Hello, world!\n")
    );
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let named = get(&host.url("/hello/J%C3%BCrgen")).await;
    assert_eq!(named.text(), "Hello, Jürgen!\n");

    // One core module of the original serverless-wasm ABI, two routes.
    let legacy = get(&host.url("/legacy/bonjour")).await;
    assert_eq!(
        (legacy.status, legacy.text().as_str()),
        (200, "Bonjour, le monde !\n")
    );
    assert_eq!(
        get(&host.url("/legacy/hello")).await.text(),
        "Hello, world!\n"
    );

    let env = get(&host.url("/env")).await;
    assert_eq!(
        env.text(),
        "APP_MODE=sample\nGREETING=Hello from the env table\n"
    );

    let echo = send(
        &client(),
        "PUT",
        &host.url("/echo?x=1&y=two%20words"),
        &[("content-type", b"text/plain"), ("x-custom", b"value")],
        "ping",
    )
    .await;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.text(), "ping");
    assert_eq!(echo.header("x-echo-method"), Some("PUT"));
    assert_eq!(echo.header("x-echo-path"), Some("/echo"));
    assert_eq!(echo.header("x-echo-query"), Some("x=1&y=two%20words"));
    assert_eq!(echo.header("x-echo-route"), Some("/echo"));
    assert_eq!(echo.header("x-echo-header-x-custom"), Some("value"));
    assert_eq!(echo.header("content-type"), Some("text/plain"));

    let http_hello = get(&host.url("/http-hello/Grace")).await;
    assert_eq!(http_hello.text(), "Hello from wasi:http, Grace!\n");
    let page = get(&host.url("/static/")).await;
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("Served by a WebAssembly handler"));
    assert_eq!(
        get(&host.url("/static/hello.txt")).await.text(),
        "Hello from a mounted file.\n"
    );
    assert_eq!(get(&host.url("/static/nope")).await.status, 404);

    let rest = get(&host.url("/echo/a%20b/c")).await;
    assert_eq!(rest.header("x-echo-route"), Some("/echo/*"));
    assert_eq!(rest.header("x-echo-params"), Some("*=a%20b%2Fc"));
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_get_405_with_allow() {
    let host = Host::start(None, &[]);
    let missing = get(&host.url("/nothing/here")).await;
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "not found\n")
    );

    let wrong = send(&client(), "DELETE", &host.url("/hello"), &[], Bytes::new()).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));

    let head = send(&client(), "HEAD", &host.url("/hello"), &[], Bytes::new()).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("14"));

    let bad = get(&host.url("/hello/%FF")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn every_response_has_a_unique_request_id_that_tags_guest_logs() {
    let host = Host::start(None, &[]);
    let mut ids = HashSet::new();
    for path in ["/hello", "/nothing", "/env"] {
        let reply = get(&host.url(path)).await;
        let id = reply
            .header("x-request-id")
            .expect("an x-request-id")
            .to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert!(ids.insert(id));
    }
    let reply = get(&host.url("/hello/Ada")).await;
    let id = reply.header("x-request-id").unwrap();
    let line = host.wait_for_log(&["greeting Ada", id]);
    assert!(line.contains("app=\"hello-name\""), "{line}");
}

#[tokio::test]
async fn binary_bodies_and_non_ascii_headers_round_trip() {
    let host = Host::start(None, &[]);
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let reply = send(
        &client(),
        "POST",
        &host.url("/echo"),
        &[
            ("content-type", b"application/octet-stream"),
            ("x-latin1", b"caf\xe9"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_ref(), body.as_slice());
    assert_eq!(
        reply
            .headers
            .get("x-echo-header-x-latin1")
            .unwrap()
            .as_bytes(),
        b"caf\xe9"
    );
}

#[tokio::test]
async fn apps_from_a_config_file_get_their_env_and_route_parameters() {
    let config = ConfigDir::new(&format!(
        r#"listen_address = "127.0.0.1:9"

[[applications]]
name = "settings"
file_path = {env:?}
method = "GET"
url_path = "/settings"
env = {{ DATABASE = "orders", "WITH SPACE" = "a b=c" }}

[[applications]]
file_path = {probe:?}
method = ["GET", "POST"]
url_path = "/users/:id/files/*"
"#,
        env = guest_artifacts::ENV_PATH,
        probe = guest_artifacts::TEST_PROBE_PATH,
    ));
    let host = Host::start(Some(&config.path()), &[]);
    let settings = get(&host.url("/settings")).await;
    assert_eq!(settings.text(), "DATABASE=orders\nWITH SPACE=a b=c\n");

    // The probe reads its action from `:action`, absent here, so it answers
    // 400 naming the action it got; `params` comes through the route.
    let reply = get(&host.url("/users/42/files/a/b.txt")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text(), "unknown probe action ``\n");
    let stdout = host.stdout();
    assert!(
        stdout.contains("-> test_probe ("),
        "default name is the file stem:\n{stdout}"
    );
}

#[tokio::test]
async fn route_parameters_reach_the_guest_decoded() {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/:action/:user/*\"\n",
        guest_artifacts::TEST_PROBE_PATH
    ));
    let host = Host::start(Some(&config.path()), &[]);
    let reply = get(&host.url("/params/J%C3%BCrgen/x%2Fy/z?ignored=1")).await;
    assert_eq!(reply.text(), "action=params\nuser=Jürgen\n*=x/y/z\n");
}

#[tokio::test]
async fn the_seed_config_format_works_with_paths_relative_to_the_file() {
    let config = ConfigDir::new(
        r#"listen_address = "127.0.0.1:8080"
[[applications]]
file_path = "./samples/testfunc.wasm"
method = "GET"
url_path = "/hello"
"#,
    );
    let samples = config.dir.path().join("samples");
    std::fs::create_dir(&samples).unwrap();
    std::fs::copy(guest_artifacts::HELLO_PATH, samples.join("testfunc.wasm")).unwrap();
    let host = Host::start(Some(&config.path()), &[]);
    let reply = get(&host.url("/hello")).await;
    assert_eq!(reply.text(), "Hello, world!\n");
    assert!(host.stdout().contains("-> testfunc ("));
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let host = Host::start(
        Some(&probe_config("max_request_body = \"1 KiB\"").path()),
        &[],
    );
    let client = client();
    let fits = send(
        &client,
        "POST",
        &host.url("/probe/params"),
        &[],
        vec![b'x'; 1024],
    )
    .await;
    assert_eq!(fits.status, 200);
    let too_big = send(
        &client,
        "POST",
        &host.url("/probe/params"),
        &[],
        vec![b'x'; 1025],
    )
    .await;
    assert_eq!(
        (too_big.status, too_big.text().as_str()),
        (413, "request body too large\n")
    );

    // Without a content-length the limit applies while reading.
    let chunked = raw_exchange(
        host.address,
        b"POST /probe/params HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          400\r\n".iter().copied().chain([b'y'; 1024]).chain(*b"\r\n1\r\nz\r\n0\r\n\r\n").collect::<Vec<u8>>().as_slice(),
        Duration::from_secs(10),
    );
    assert!(chunked.starts_with("HTTP/1.1 413 "), "{chunked}");
}

#[tokio::test]
async fn traps_and_panics_give_a_generic_500_and_are_logged_with_details() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let trap = get(&host.url("/probe/trap")).await;
    assert_eq!(
        (trap.status, trap.text().as_str()),
        (500, "internal server error\n")
    );
    let id = trap.header("x-request-id").unwrap();
    let line = host.wait_for_log(&["request failed", id]);
    // The trap's kind and message, and the guest's backtrace frame by
    // frame, innermost first.
    let message = line
        .split_once("request failed: ")
        .and_then(|(_, rest)| rest.split_once(" app=\"probe\""))
        .map(|(message, _)| message);
    assert_eq!(
        message,
        Some(
            "the handler trapped (unreachable): wasm trap: wasm `unreachable` instruction executed; \
             backtrace: test_probe.wasm!<test_probe::Probe as serverless_wasm_sdk::bindings::Guest>::handle \
             <- test_probe.wasm!handle"
        ),
        "{line}"
    );
    assert!(line.ends_with(" kind=\"unreachable\""), "{line}");

    let panic = get(&host.url("/probe/panic")).await;
    assert_eq!(panic.status, 500);
    assert!(
        !panic.text().contains("panicked"),
        "internals stay out of the response"
    );
    let id = panic.header("x-request-id").unwrap();
    host.wait_for_log(&["the probe panicked on purpose", id, "stderr"]);

    // The host keeps serving.
    let after = get(&host.url("/probe/params")).await;
    assert_eq!(
        (after.status, after.text().as_str()),
        (200, "action=params\n")
    );
}

#[tokio::test]
async fn guest_stdout_and_stderr_reach_the_log_tagged_with_app_and_request_id() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let reply = get(&host.url("/probe/output")).await;
    let id = reply.header("x-request-id").unwrap();
    let out = host.wait_for_log(&["probe line on stdout", id]);
    assert!(
        out.contains("INFO") && out.contains("app=\"probe\"") && out.contains("source=\"stdout\""),
        "{out}"
    );
    let err = host.wait_for_log(&["probe line on stderr", id]);
    assert!(
        err.contains("WARN") && err.contains("source=\"stderr\""),
        "{err}"
    );
}

#[tokio::test]
async fn outbound_tcp_sockets_and_files_are_denied_by_default() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    backend.set_nonblocking(true).unwrap();
    let target = backend.local_addr().unwrap();
    let host = Host::start(Some(&probe_config("").path()), &[]);

    let reply = get(&host.url(&format!("/probe/tcp?addr={target}"))).await;
    assert_eq!(reply.text(), format!("Error::NotAllowed(\"{target}\")"));
    host.wait_for_log(&[
        "refused outbound TCP connection",
        &target.to_string(),
        reply.header("x-request-id").unwrap(),
    ]);

    let malformed = get(&host.url("/probe/tcp?addr=no-port")).await;
    assert!(
        malformed.text().starts_with("Error::InvalidAddress("),
        "{}",
        malformed.text()
    );

    let std_net = get(&host.url(&format!("/probe/std-tcp?addr={target}"))).await;
    assert!(
        std_net.text().starts_with("error: "),
        "wasi:sockets must refuse: {}",
        std_net.text()
    );

    assert!(
        backend.accept().is_err(),
        "no connection may reach the backend"
    );

    let files = get(&host.url("/probe/files")).await;
    assert!(
        files.text().starts_with("error: "),
        "no filesystem: {}",
        files.text()
    );
}

#[tokio::test]
async fn handlers_set_status_lines_and_headers_within_the_rules() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let raw = raw_exchange(
        host.address,
        b"GET /probe/status?code=418&reason=Short+and+stout HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(raw.starts_with("HTTP/1.1 418 Short and stout\r\n"), "{raw}");

    let refused = get(&host.url("/probe/status?code=99")).await;
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (200, "Err(ResponseError::InvalidStatus(99))")
    );
    let reserved = get(&host.url("/probe/header?name=content-length&value=1")).await;
    assert_eq!(
        reserved.text(),
        "Err(ResponseError::ReservedHeader(\"content-length\"))"
    );
    let split = get(&host.url("/probe/header?name=x-a&value=a%0D%0Ab")).await;
    assert!(
        split
            .text()
            .starts_with("Err(ResponseError::InvalidHeaderValue("),
        "{}",
        split.text()
    );
}

#[tokio::test]
async fn each_request_gets_a_fresh_instance_and_an_untouched_response_is_200_empty() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    for _ in 0..3 {
        let reply = get(&host.url("/probe/counter")).await;
        assert_eq!(reply.text(), "1", "a global survived between requests");
    }
    let nothing = get(&host.url("/probe/nothing")).await;
    assert_eq!(nothing.status, 200);
    assert!(nothing.body.is_empty());
    assert_eq!(nothing.header("content-type"), None);
}

#[tokio::test]
async fn guests_read_the_wall_clock_and_random_numbers() {
    let host = Host::start(Some(&probe_config("").path()), &[]);
    let first = get(&host.url("/probe/clock-random")).await.text();
    let second = get(&host.url("/probe/clock-random")).await.text();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (seconds, random) = first.split_once(' ').unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    assert!(
        now.abs_diff(seconds) < 60,
        "guest clock {seconds} vs host {now}"
    );
    assert_ne!(
        random,
        second.split_once(' ').unwrap().1,
        "two instances drew the same random seed"
    );
}

#[test]
fn connections_are_kept_alive() {
    let host = Host::start(None, &[]);
    let raw = raw_exchange(
        host.address,
        b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\nGET /hello/again HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert!(
        raw.contains("Hello, world!\n") && raw.contains("Hello, again!\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_are_all_answered_correctly() {
    let host = Host::start(None, &[]);
    let client = client();
    let mut tasks = Vec::new();
    for index in 0..200 {
        let client = client.clone();
        let url = host.url(&format!("/hello/caller-{index}"));
        tasks.push(tokio::spawn(async move {
            (index, send(&client, "GET", &url, &[], Bytes::new()).await)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let (index, reply) = task.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("Hello, caller-{index}!\n"));
        assert!(ids.insert(reply.header("x-request-id").unwrap().to_owned()));
    }
}

// Multi-threaded: the request runs on a task while this test blocks on
// the host's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_then_exits() {
    drains_the_request_in_flight_then_exits(libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_the_request_in_flight_then_exits() {
    drains_the_request_in_flight_then_exits(libc::SIGINT).await;
}

async fn drains_the_request_in_flight_then_exits(signal: i32) {
    let mut host = Host::start(Some(&probe_config("").path()), &["--drain-timeout", "20"]);
    let url = host.url("/probe/sleep?ms=1500");
    let in_flight = tokio::spawn(async move { get(&url).await });
    host.wait_for_log(&["sleeping 1500 ms"]);

    host.signal(signal);
    host.wait_for_log(&["stopped accepting connections"]);
    assert!(
        std::net::TcpStream::connect(host.address).is_err(),
        "new connections are refused while draining"
    );

    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
    let status = host.wait(Duration::from_secs(20));
    assert!(status.success(), "the host exits cleanly: {status}");
}

#[test]
fn startup_errors_name_the_problem_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "text.wasm",
            b"this is not wasm",
            "not a WebAssembly component",
        ),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "the core module exports no `handle` function to call; it exports no functions",
        ),
        (
            "unknown-import.wasm",
            guest_artifacts::TEST_UNKNOWN_IMPORT,
            "example:unknown/kv",
        ),
        (
            "missing-export.wasm",
            guest_artifacts::TEST_MISSING_EXPORT,
            "the component exports `run`, but a route needs a component that exports `handle`",
        ),
    ];
    for (file, bytes, expected) in cases {
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let config = dir.path().join("serverless.toml");
        std::fs::write(
            &config,
            format!("[[applications]]\nname = \"broken\"\nfile_path = \"{file}\"\nmethod = \"GET\"\nurl_path = \"/x\"\n"),
        )
        .unwrap();
        let output = support::host_command()
            .args(["serve", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{file}: {stderr}");
        // Log lines about components compiled before the failure come
        // first; the error is one line.
        let first = stderr
            .lines()
            .find(|line| line.starts_with("error: "))
            .unwrap_or_default();
        assert!(first.starts_with("error: "), "{file}: {stderr}");
        assert!(
            first.contains(":3:13: app `broken`"),
            "names the entry: {first}"
        );
        assert!(
            first.contains(expected),
            "{file}: expected {expected:?} in {first}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn a_well_formed_incoming_request_id_is_kept_and_others_are_replaced() {
    let host = Host::start(None, &[]);
    let kept = send(
        &client(),
        "GET",
        &host.url("/hello/Kept"),
        &[("x-request-id", b"trace-42:abc")],
        Bytes::new(),
    )
    .await;
    assert_eq!(kept.header("x-request-id"), Some("trace-42:abc"));
    host.wait_for_log(&["greeting Kept", "trace-42:abc"]);

    let replaced = send(
        &client(),
        "GET",
        &host.url("/hello/Other"),
        &[("x-request-id", b"no spaces allowed")],
        Bytes::new(),
    )
    .await;
    let id = replaced.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request_fields() {
    let host = Host::start(None, &["--log-format", "json"]);
    let reply = get(&host.url("/hello/Json")).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    let line = host.wait_for_log(&["greeting Json"]);
    let object: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(object["message"], "greeting Json", "{line}");
    assert_eq!(object["request_id"], id.as_str(), "{line}");
    assert_eq!(object["app"], "hello-name", "{line}");
    assert_eq!(object["level"], "INFO", "{line}");
    let access = host.wait_for_log(&["\"target\":\"access\"", &id]);
    let access: serde_json::Value = serde_json::from_str(&access).expect("JSON");
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["app"], "hello-name", "{access}");
    assert_eq!(access["route"], "/hello/:name", "{access}");
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["bytes_in"], 0, "{access}");
    assert_eq!(access["bytes_out"], "Hello, Json!\n".len(), "{access}");
    assert!(access["instantiate_us"].as_u64().is_some(), "{access}");
    assert!(access["execute_us"].as_u64().is_some(), "{access}");
    assert!(access["peak_memory"].as_u64().unwrap() > 0, "{access}");
    assert_eq!(access["tcp_connections"], 0, "{access}");
    assert_eq!(access["tcp_denied"], 0, "{access}");
    for line in host.stderr().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
    }
}

#[test]
fn a_wasi_http_guest_cannot_answer_with_an_informational_status() {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"http-probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\n",
        guest_artifacts::TEST_HTTP_PROBE_PATH
    ));
    let host = Host::start(Some(&config.path()), &[]);
    for code in [101, 100, 199] {
        let answer = raw_exchange(
            host.address,
            format!("GET /http-probe/status?code={code} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        );
        assert!(
            answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n")
                && answer.ends_with("\r\n\r\ninternal server error\n"),
            "{code}: {answer}"
        );
        let id = answer
            .lines()
            .find_map(|line| line.strip_prefix("x-request-id: "))
            .expect("a request id");
        host.wait_for_log(&[
            id,
            &format!(
                "request failed: the guest answered {code}, an informational status, as its final response"
            ),
        ]);
    }
    let answer = raw_exchange(
        host.address,
        b"GET /http-probe/status?code=202 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        answer.starts_with("HTTP/1.1 202 Accepted\r\n")
            && answer.contains("\r\n\r\nB\r\nstatus 202\n\r\n0\r\n\r\n"),
        "{answer}"
    );
}

#[test]
fn time_flags_take_durations_and_name_the_flag_when_bad() {
    for (flag, bad, forms) in [
        (
            "--drain-timeout",
            "soon",
            "250ms, 5s, 2m, 1h, or a number of seconds",
        ),
        (
            "--queue-timeout",
            "-5",
            "250ms, 5s, 2m, 1h, or a number of milliseconds",
        ),
        (
            "--idle-timeout",
            "30",
            "a whole number with a unit: 250ms, 5s, 2m or 1h",
        ),
    ] {
        let output = support::host_command()
            .args(["serve", &format!("{flag}={bad}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert_eq!(
            text.lines().next().unwrap_or_default(),
            format!(
                "error: invalid value '{bad}' for '{flag} <DURATION>': \"{bad}\" is not a duration; write {forms}"
            )
        );
    }
    // The new forms and the old bare numbers start a host.
    let host = Host::start(
        Some(&probe_config("").path()),
        &[
            "--drain-timeout",
            "2s",
            "--queue-timeout",
            "250ms",
            "--idle-timeout",
            "1m",
        ],
    );
    host.wait_for_log(&["one idle for 60s is closed (--idle-timeout)"]);
    drop(host);
    Host::start(
        Some(&probe_config("").path()),
        &["--drain-timeout", "20", "--queue-timeout", "200"],
    );
}

#[tokio::test]
async fn huge_timeouts_serve_instead_of_panicking() {
    let handler = probe_config("timeout = \"18446744073709551615s\"");
    let host = Host::start(
        Some(&handler.path()),
        &["--queue-timeout", "18446744073709551615"],
    );
    let reply = get(&host.url("/probe/params")).await;
    assert_eq!(reply.status, 200, "{}{}", reply.text(), host.stderr());
    drop(host);
    let wasi_http = ConfigDir::new(&format!(
        "[[applications]]\nname = \"http-probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\ntimeout = 9223372036854775807\n",
        guest_artifacts::TEST_HTTP_PROBE_PATH
    ));
    let host = Host::start(Some(&wasi_http.path()), &[]);
    let reply = get(&host.url("/http-probe/meta")).await;
    assert_eq!(reply.status, 200, "{}{}", reply.text(), host.stderr());
    assert!(!host.stderr().contains("panicked"), "{}", host.stderr());
}
