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
