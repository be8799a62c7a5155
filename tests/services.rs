//! `[[services]]` behind the real binary: a guest-hosted HTTP server that
//! keeps its state across requests, only where `--allow-listen` allows its
//! address; a service that exits comes back; services stop at shutdown.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::{ConfigDir, Host, get, send};

/// A loopback address with a free port.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The hello service on `address`.
fn config(address: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        "[[services]]\nname = \"hello\"\nfile_path = {:?}\nargs = [\"{address}\"]\n",
        guest_artifacts::SERVICE_HELLO_PATH
    ))
}

async fn post(url: &str, body: &'static str) -> support::Reply {
    send(&support::client(), "POST", url, &[], body).await
}

#[tokio::test]
async fn a_service_listens_where_allowed_keeps_its_state_and_comes_back() {
    let address = free_address();
    let config = config(&address);
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    host.wait_for_log(&[&format!(
        " INFO guest: listening on {address} app=\"hello\" request_id=\"run-1\" source=\"stdout\""
    )]);
    let base = format!("http://{address}");
    let reply = post(&format!("{base}/hello"), "Bob Morane").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "👋 Hello Bob Morane")
    );
    post(&format!("{base}/hello"), "Ada").await;
    assert_eq!(get(&format!("{base}/count")).await.text(), "2 greetings\n");

    // It exits; the supervisor starts it again, fresh.
    // It answers nothing: the program ends.
    support::raw_exchange(
        address.parse().unwrap(),
        b"POST /exit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(10),
    );
    host.wait_for_log(&[
        "service exited with status 1 after",
        "service=\"hello\" run=1",
    ]);
    host.wait_for_log(&["restarting the service in 100ms service=\"hello\" run=1"]);
    host.wait_for_log(&[&format!(
        "listening on {address} app=\"hello\" request_id=\"run-2\""
    )]);
    assert_eq!(get(&format!("{base}/count")).await.text(), "0 greetings\n");
    // UDP is off in every guest's WASI context.
    let reply = post(&format!("{base}/udp"), "").await;
    assert_eq!(reply.text(), "udp: Permission denied (os error 2)\n");
    // The admin endpoints say so.
    let admin = format!("http://{}", host.admin.expect("admin endpoints are on"));
    let services: serde_json::Value =
        serde_json::from_str(&get(&format!("{admin}/services")).await.text()).unwrap();
    assert_eq!(services[0]["name"], "hello");
    assert_eq!(services[0]["state"], "running");
    assert_eq!(services[0]["restart"], "on-failure");
    assert_eq!(services[0]["runs"], 2);
    assert_eq!(services[0]["restarts"], 1);
    assert_eq!(services[0]["last_end"], "exited with status 1");
    let metrics = get(&format!("{admin}/metrics")).await.text();
    for line in [
        "serverless_service_up{service=\"hello\"} 1\n",
        "serverless_service_restarts_total{service=\"hello\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(get(&format!("{admin}/readyz")).await.status, 200);
    // So does `host services`, for people and for scripts.
    let admin_address = host.admin.expect("admin endpoints are on").to_string();
    let listed = support::host_command()
        .args(["services", "--admin", &admin_address])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8(listed.stdout).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(
        lines[0], "NAME   STATE    RESTART     RUNS  UPTIME  LAST END",
        "{listed}"
    );
    assert!(
        lines[1].starts_with("hello  running  on-failure  2     ")
            && lines[1].ends_with("  exited with status 1"),
        "{listed}"
    );
    let json = support::host_command()
        .args(["services", "--admin", &admin_address, "--output", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json[0]["name"], "hello");
    assert_eq!(json[0]["runs"], 2);

    // SIGTERM stops it after the HTTP drain, and the host exits.
    host.signal(libc::SIGTERM);
    let mut host = host;
    let status = host.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(
        host.stderr()
            .contains("INFO host::services: service stopped by the host service=\"hello\" run=2"),
        "{}",
        host.stderr()
    );
}

#[tokio::test]
async fn without_an_allow_listen_rule_the_bind_is_refused_and_named() {
    let address = free_address();
    let config = config(&address);
    let host = Host::start(Some(&config.path()), &[]);
    let line = host.wait_for_log(&["refused to listen on", &address]);
    assert!(
        line.contains(" WARN guest: refused to listen on "),
        "{line}"
    );
    assert!(
        line.contains("app=\"hello\" request_id=\"run-1\" source=\"wasi-sockets\""),
        "{line}"
    );
    host.wait_for_log(&[&format!("cannot listen on {address}: Permission denied")]);
    host.wait_for_log(&["restarting the service in 100ms service=\"hello\" run=1"]);
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "nothing listens there"
    );
    // While it waits to restart, the host is not ready.
    host.wait_for_log(&["restarting the service in 800ms service=\"hello\" run=4"]);
    let admin = format!("http://{}", host.admin.expect("admin endpoints are on"));
    assert_eq!(get(&format!("{admin}/readyz")).await.status, 503);
}

#[tokio::test]
async fn a_run_past_its_max_runtime_is_stopped_and_restarted() {
    let address = free_address();
    let config = ConfigDir::new(&format!(
        "[[services]]\nname = \"hello\"\nfile_path = {:?}\nargs = [\"{address}\"]\nmax_runtime = \"300ms\"\n",
        guest_artifacts::SERVICE_HELLO_PATH
    ));
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    let line = host.wait_for_log(&["service stopped: it ran past its max_runtime of 300ms"]);
    assert!(line.contains(" WARN host::services: "), "{line}");
    assert!(line.contains("service=\"hello\" run=1"), "{line}");
    // The stopped run let go of its listener: the next one binds it.
    host.wait_for_log(&[&format!(
        "listening on {address} app=\"hello\" request_id=\"run-2\""
    )]);
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_max_memory_and_the_service_restarted() {
    let address = free_address();
    let config = ConfigDir::new(&format!(
        "[[services]]\nname = \"hello\"\nfile_path = {:?}\nargs = [\"{address}\"]\nmax_memory = \"32 MiB\"\n",
        guest_artifacts::SERVICE_HELLO_PATH
    ));
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    host.wait_for_log(&[&format!(
        "listening on {address} app=\"hello\" request_id=\"run-1\""
    )]);
    support::raw_exchange(
        address.parse().unwrap(),
        b"POST /grow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(10),
    );
    let line = host.wait_for_log(&["service trapped: memory limit: the guest asked for"]);
    assert!(line.contains("the app's limit is 33554432"), "{line}");
    assert!(line.contains("service=\"hello\" run=1"), "{line}");
    host.wait_for_log(&[&format!(
        "listening on {address} app=\"hello\" request_id=\"run-2\""
    )]);
    let reply = post(&format!("http://{address}/hello"), "again").await;
    assert_eq!(reply.text(), "👋 Hello again");
}

#[tokio::test]
async fn a_service_s_from_env_values_never_reach_the_log() {
    let address = free_address();
    let config = ConfigDir::new(&format!(
        "[[services]]\nname = \"hello\"\nfile_path = {:?}\nargs = [\"{address}\"]\nenv = {{ TOKEN = {{ from_env = \"SERVICE_TEST_TOKEN\" }} }}\n",
        guest_artifacts::SERVICE_HELLO_PATH
    ));
    let mut command = std::process::Command::new(support::HOST_BIN);
    command.env("SERVICE_TEST_TOKEN", "s3cr3t-token-value");
    let host = Host::start_with(command, Some(&config.path()), &["--allow-listen", &address]);
    let line = host.wait_for_log(&["token ", "request_id=\"run-1\""]);
    assert!(
        line.contains(" INFO guest: token [redacted] app=\"hello\""),
        "{line}"
    );
    assert!(!host.stderr().contains("s3cr3t-token-value"));
}

/// Every connection a service accepts is an OS handle of its budget: a
/// service that keeps them all cannot take the host's descriptors.
#[tokio::test]
async fn accepted_connections_count_against_the_handle_budget() {
    let address = free_address();
    let config = ConfigDir::new(&format!(
        "[[services]]\nname = \"hoard\"\nfile_path = {:?}\nargs = [\"{address}\", \"hoard\"]\n",
        guest_artifacts::SERVICE_HELLO_PATH
    ));
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    host.wait_for_log(&[&format!("listening on {address} app=\"hoard\"")]);
    let mut clients = Vec::new();
    for _ in 0..300 {
        clients.push(std::net::TcpStream::connect(&address).unwrap());
    }
    let line = host.wait_for_log(&["refused to open an accepted TCP connection: "]);
    assert!(
        line.contains("app=\"hoard\" request_id=\"run-1\" source=\"os-handles\""),
        "{line}"
    );
    host.wait_for_log(&["accept failed after 255 connections"]);
    drop(clients);
}

/// Routes to the hello service on `address`, which runs once
/// (`restart = "never"`), so that a test can see it down.
fn routed_config(address: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"[[applications]]
method = "POST"
url_path = "/hello"
service = "hello"
max_request_body = 64

[[applications]]
name = "hello-headers"
method = "GET"
url_path = "/headers"
service = "hello"

[[applications]]
name = "hello-paths"
method = "GET"
url_path = "/path/*"
service = "hello"

[[applications]]
name = "hello-stream"
method = "GET"
url_path = "/stream"
service = "hello"

[[applications]]
name = "hello-exit"
method = "POST"
url_path = "/exit"
service = "hello"

[[services]]
name = "hello"
file_path = {:?}
args = ["{address}"]
http = "{address}"
restart = "never"
"#,
        guest_artifacts::SERVICE_HELLO_PATH
    ))
}

#[tokio::test]
async fn a_route_to_a_service_is_proxied_with_the_host_s_ids_headers_and_limits() {
    let address = free_address();
    let config = routed_config(&address);
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    host.wait_for_log(&[&format!("listening on {address} app=\"hello\"")]);
    let client = support::client();

    // The article's greeting, through the host's router.
    let reply = send(&client, "POST", &host.url("/hello"), &[], "Bob Morane").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "👋 Hello Bob Morane")
    );
    let id = reply
        .header("x-request-id")
        .expect("a request id")
        .to_owned();
    let access = host.wait_for_log(&[&id, "access: request"]);
    assert!(
        access.contains(&format!(
            " INFO access: request request_id=\"{id}\" app=\"hello\" route=\"/hello\" method=\"POST\" path=\"/hello\" status=200 "
        )),
        "{access}"
    );
    // Written once the body has gone out, with its size.
    assert!(
        access.ends_with(&format!(" bytes_out={}", "👋 Hello Bob Morane".len())),
        "{access}"
    );

    // The service sees the host's headers, not the client's forgeries nor
    // the hop-by-hop ones.
    let reply = send(
        &client,
        "GET",
        &host.url("/headers"),
        &[
            ("x-request-id", b"proxy-test-1"),
            ("x-forwarded-for", b"6.6.6.6"),
            ("forwarded", b"for=7.7.7.7"),
            ("x-serverless-route", b"forged"),
            ("connection", b"keep-alive, x-hop"),
            ("x-hop", b"dropped"),
            ("x-kept", b"kept"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some("proxy-test-1"));
    let seen = reply.text();
    let host_header = host.address.to_string();
    for line in [
        format!("host: {host_header}\n"),
        "x-request-id: proxy-test-1\n".to_owned(),
        "x-serverless-route: /headers\n".to_owned(),
        "x-forwarded-for: 127.0.0.1\n".to_owned(),
        "x-forwarded-proto: http\n".to_owned(),
        format!("x-forwarded-host: {host_header}\n"),
        "x-kept: kept\n".to_owned(),
    ] {
        assert!(seen.contains(&line), "{line:?} in {seen}");
    }
    for gone in ["6.6.6.6", "7.7.7.7", "forged", "x-hop", "dropped"] {
        assert!(!seen.contains(gone), "{gone:?} in {seen}");
    }

    // A body of no declared length streams through, and the access line,
    // written when it has gone out, has its size.
    let reply = send(
        &client,
        "GET",
        &host.url("/stream"),
        &[("x-request-id", b"proxy-stream-1")],
        "",
    )
    .await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "one\ntwo\nthree\n")
    );
    let access = host.wait_for_log(&["request_id=\"proxy-stream-1\"", "access: request"]);
    assert!(access.ends_with(" bytes_out=14"), "{access}");

    // The path and query arrive as the client sent them.
    let reply = get(&host.url("/path/a%20b?x=1&y")).await;
    assert_eq!(reply.text(), "/path/a%20b?x=1&y\n");

    // The route's body limit is the host's to enforce.
    let reply = send(&client, "POST", &host.url("/hello"), &[], "x".repeat(100)).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (413, "request body too large\n")
    );

    // A service that drops the exchange is a bad gateway...
    let reply = send(&client, "POST", &host.url("/exit"), &[], "").await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (502, "bad gateway\n")
    );
    host.wait_for_log(&[
        " ERROR host::dispatch::proxy: request failed: service `hello` gave no valid HTTP response: ",
        "app=\"hello-exit\" service=\"hello\"",
    ]);
    // ... and one that is down, unavailable.
    host.wait_for_log(&[
        "service exited with status 1 after",
        "service=\"hello\" run=1",
    ]);
    let reply = send(&client, "POST", &host.url("/hello"), &[], "Ada").await;
    assert_eq!(
        (
            reply.status,
            reply.text().as_str(),
            reply.header("retry-after")
        ),
        (
            503,
            "service unavailable: the service behind this route is not accepting requests, retry shortly\n",
            Some("1")
        )
    );
    host.wait_for_log(&[
        " WARN host::dispatch::proxy: refused: service `hello` is not running app=\"hello\" service=\"hello\"",
    ]);

    // The route table shows where each route goes.
    let admin = format!("http://{}", host.admin.expect("admin endpoints are on"));
    let routes: serde_json::Value =
        serde_json::from_str(&get(&format!("{admin}/routes")).await.text()).unwrap();
    let hello = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["path"] == "/hello")
        .expect("the /hello route");
    assert_eq!(hello["app"], "hello");
    assert_eq!(hello["world"], "service");
    assert_eq!(hello["service"], "hello");
    assert_eq!(hello["address"], address.as_str());
    assert!(
        host.stdout().contains(&format!(
            "  POST    /hello    -> hello (service hello at {address})\n"
        )),
        "{}",
        host.stdout()
    );
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_or_at_all_is_504_or_503() {
    let address = free_address();
    let other = free_address();
    let silent = free_address();
    let config = ConfigDir::new(&format!(
        r#"[[applications]]
method = "ANY"
url_path = "/slow"
service = "hoard"
timeout = "300ms"
max_request_body = 16

[[applications]]
method = "GET"
url_path = "/nobody"
service = "elsewhere"

[[services]]
name = "hoard"
file_path = {path:?}
args = ["{address}", "hoard"]
http = "{address}"

[[services]]
name = "elsewhere"
file_path = {path:?}
args = ["{other}"]
http = "{silent}"
"#,
        path = guest_artifacts::SERVICE_HELLO_PATH
    ));
    let host = Host::start(
        Some(&config.path()),
        &[
            "--allow-listen",
            &address,
            "--allow-listen",
            &other,
            "--allow-listen",
            &silent,
        ],
    );
    host.wait_for_log(&[&format!("listening on {address} app=\"hoard\"")]);
    host.wait_for_log(&[&format!("listening on {other} app=\"elsewhere\"")]);
    // It accepts and never answers.
    let reply = get(&host.url("/slow")).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (504, "gateway timeout\n")
    );
    host.wait_for_log(&[
        " WARN host::dispatch::proxy: request failed: service `hoard` did not start its answer within the route's timeout of 300ms app=\"hoard\" service=\"hoard\"",
    ]);
    // A body that streams past the route's limit, with no length declared,
    // is cut off on its way and refused.
    let answer = support::raw_exchange(
        host.address,
        format!(
            "POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{}\r\n0\r\n\r\n",
            "y".repeat(64)
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    host.wait_for_log(&["request body is larger than the app's limit app=\"hoard\""]);
    // The other runs, but nothing listens on its `http` address.
    let reply = get(&host.url("/nobody")).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (
            503,
            "service unavailable: the service behind this route is not accepting requests, retry shortly\n"
        )
    );
    let line = host.wait_for_log(&[&format!(
        " WARN host::dispatch::proxy: refused: service `elsewhere` is not accepting connections at {silent}: "
    )]);
    assert!(
        line.contains("app=\"elsewhere\" service=\"elsewhere\""),
        "{line}"
    );
}

/// Two services and, when `with_third`, a third behind a route; `second`
/// gets `extra` in its entry.
fn reload_config(addresses: &[String; 3], second_extra: &str, with_third: bool) -> String {
    let path = guest_artifacts::SERVICE_HELLO_PATH;
    let [first, second, third] = addresses;
    // The first runs a copy of its own, which the test changes.
    let mut text = format!(
        "[[services]]\nname = \"first\"\nfile_path = \"first.wasm\"\nargs = [\"{first}\"]\n\n\
         [[services]]\nname = \"second\"\nfile_path = {path:?}\nargs = [\"{second}\"]\n{second_extra}\n"
    );
    if with_third {
        text.push_str(&format!(
            "[[services]]\nname = \"third\"\nfile_path = {path:?}\nargs = [\"{third}\"]\nhttp = \"{third}\"\n\n\
             [[applications]]\nmethod = \"POST\"\nurl_path = \"/hello\"\nservice = \"third\"\n"
        ));
    }
    text
}

#[tokio::test]
async fn a_reload_restarts_only_the_services_that_changed() {
    let addresses = [free_address(), free_address(), free_address()];
    let config = ConfigDir::new(&reload_config(&addresses, "", false));
    let first_copy = config.dir.path().join("first.wasm");
    std::fs::copy(guest_artifacts::SERVICE_HELLO_PATH, &first_copy).unwrap();
    let mut flags = Vec::new();
    for address in &addresses {
        flags.extend(["--allow-listen", address.as_str()]);
    }
    let host = Host::start(Some(&config.path()), &flags);
    let [first, second, third] = &addresses;
    host.wait_for_log(&[&format!(
        "listening on {first} app=\"first\" request_id=\"run-1\""
    )]);
    host.wait_for_log(&[&format!(
        "listening on {second} app=\"second\" request_id=\"run-1\""
    )]);
    // State the reload must not lose.
    post(&format!("http://{first}/hello"), "Ada").await;

    // Moving the first entry down and changing the second's environment
    // restarts the second only; the third and its route are new.
    std::fs::write(
        config.path(),
        format!(
            "# moved\n\n{}",
            reload_config(&addresses, "env = { MODE = \"new\" }", true)
        ),
    )
    .unwrap();
    host.signal(libc::SIGHUP);
    host.wait_for_log(&[
        "reload (SIGHUP): now serving 1 routes; added POST /hello -> third (service third at ",
        "; services: kept `first`; restarted `second`; started `third`",
    ]);
    assert!(
        host.stderr()
            .contains("INFO host::services: service stopped by the host service=\"second\" run=1"),
        "{}",
        host.stderr()
    );
    host.wait_for_log(&[&format!(
        "listening on {third} app=\"third\" request_id=\"run-1\""
    )]);
    assert_eq!(
        get(&format!("http://{first}/count")).await.text(),
        "1 greetings\n",
        "the first kept running"
    );
    let reply = post(&host.url("/hello"), "Bob").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "👋 Hello Bob"));
    let services: serde_json::Value = serde_json::from_str(
        &get(&format!("http://{}/services", host.admin.unwrap()))
            .await
            .text(),
    )
    .unwrap();
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second", "third"]);
    let metrics = get(&format!("http://{}/metrics", host.admin.unwrap()))
        .await
        .text();
    for line in [
        "serverless_service_restarts_total{service=\"first\"} 0\n",
        "serverless_service_restarts_total{service=\"second\"} 1\n",
        "serverless_service_restarts_total{service=\"third\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Removing them stops them, and their series go.
    std::fs::write(
        config.path(),
        "[[services]]\nname = \"first\"\nfile_path = \"first.wasm\"\nargs = [\"ADDRESS\"]\n"
            .replace("ADDRESS", first),
    )
    .unwrap();
    host.signal(libc::SIGHUP);
    host.wait_for_log(&[
        "reload (SIGHUP): now serving 0 routes; removed POST /hello -> third",
        "; services: kept `first`; stopped `second`, `third`",
    ]);
    assert!(
        std::net::TcpStream::connect(third).is_err(),
        "the third is gone"
    );
    let metrics = get(&format!("http://{}/metrics", host.admin.unwrap()))
        .await
        .text();
    assert!(
        metrics.contains("serverless_service_up{service=\"first\"} 1\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("service=\"third\""), "{metrics}");

    // New bytes for the same entry (a custom section appended) restart it.
    let mut bytes = std::fs::read(&first_copy).unwrap();
    bytes.extend_from_slice(&[0x00, 0x03, 0x01, b'x', b'1']);
    std::fs::write(&first_copy, bytes).unwrap();
    host.signal(libc::SIGHUP);
    host.wait_for_log(&["reload (SIGHUP): now serving 0 routes; same routes; components loaded afresh; services: restarted `first`"]);
    host.wait_for_log(&[&format!(
        "listening on {first} app=\"first\" request_id=\"run-2\""
    )]);
    assert_eq!(
        get(&format!("http://{first}/count")).await.text(),
        "0 greetings\n",
        "a fresh run"
    );
}

#[tokio::test]
async fn the_pipeline_sample_publishes_readings_through_its_broker() {
    // guests/rust/pipeline.toml as documented, with the test's artifacts,
    // a free port and a shorter interval.
    let broker = free_address();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/rust/pipeline.toml"),
    )
    .unwrap()
    .replace(
        "../../target/wasm32-wasip1/release/pubsub_broker.wasm",
        guest_artifacts::PUBSUB_BROKER_PATH,
    )
    .replace(
        "../../target/wasm32-wasip1/release/telemetry.wasm",
        guest_artifacts::TELEMETRY_PATH,
    )
    .replace("127.0.0.1:9000", &broker)
    .replace("\"1000\"", "\"50\"");
    let config = ConfigDir::new(&text);
    let host = Host::start(
        Some(&config.path()),
        &["--allow-listen", &broker, "--allow-tcp", &broker],
    );
    host.wait_for_log(&[&format!("broker listening on {broker} app=\"broker\"")]);
    host.wait_for_log(&[&format!(
        "publishing to telemetry on {broker} every 50ms app=\"telemetry\""
    )]);
    let stream = std::net::TcpStream::connect(&broker).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = &stream;
    std::io::Write::write_all(&mut writer, b"SUB telemetry\nSUB bad/topic\nHELLO\n").unwrap();
    let mut reader = std::io::BufReader::new(&stream);
    let mut line = || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        line
    };
    assert_eq!(line(), "OK\n");
    assert_eq!(line(), "ERR a topic is letters, digits, `.`, `_` or `-`\n");
    assert_eq!(
        line(),
        "ERR unknown command; use SUB topic or PUB topic payload\n"
    );
    // Readings arrive in order; the subscription started mid-stream.
    let readings: Vec<serde_json::Value> = (0..3)
        .map(|_| {
            let line = line();
            let payload = line
                .strip_prefix("MSG telemetry ")
                .unwrap_or_else(|| panic!("{line:?}"));
            serde_json::from_str(payload.trim_end()).unwrap()
        })
        .collect();
    let first = readings[0]["seq"].as_u64().unwrap();
    for (offset, reading) in readings.iter().enumerate() {
        assert_eq!(reading["sensor"], "sensor-1");
        assert_eq!(reading["seq"].as_u64(), Some(first + offset as u64));
        let celsius = reading["celsius"].as_f64().unwrap();
        assert!((15.0..=30.0).contains(&celsius), "{reading}");
    }
}

#[tokio::test]
async fn a_service_sees_its_mounted_folders_read_only() {
    let address = free_address();
    let folders = tempfile::tempdir().unwrap();
    let shared = folders.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("motd.txt"), "hello from the host\n").unwrap();
    let config = ConfigDir::new(&format!(
        "[[services]]\nname = \"hello\"\nfile_path = {:?}\nargs = [\"{address}\"]\n\
         files = {{ \"/data\" = {:?} }}\n",
        guest_artifacts::SERVICE_HELLO_PATH,
        shared.display().to_string(),
    ));
    let host = Host::start(Some(&config.path()), &["--allow-listen", &address]);
    host.wait_for_log(&[&format!("listening on {address} app=\"hello\"")]);
    let base = format!("http://{address}");
    let reply = get(&format!("{base}/file/motd.txt")).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "hello from the host\n")
    );
    // Read-only: the write fails in the guest and nothing reaches the host.
    let reply = post(&format!("{base}/file/new.txt"), "x").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(!shared.join("new.txt").exists());
}
