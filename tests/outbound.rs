//! End-to-end tests of outbound TCP: the allowlist flags, address
//! normalisation, special-use addresses, timeouts, limits, and the sample
//! handlers against a real echo backend and a real Redis.

mod support;

use std::time::{Duration, Instant};

use support::backends::{BlackHole, EchoServer, RedisServer, SilentServer};
use support::{ConfigDir, Host, client, get, probe_config, send};

fn app_config(name: &str, wasm: &str, method: &str, path: &str, extra: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        "[[applications]]\nname = \"{name}\"\nfile_path = {wasm:?}\nmethod = \"{method}\"\nurl_path = \"{path}\"\n{extra}\n"
    ))
}

async fn probe(host: &Host, action: &str, address: &str) -> String {
    get(&host.url(&format!("/probe/{action}?addr={address}")))
        .await
        .text()
}

#[tokio::test]
async fn the_echo_sample_round_trips_through_an_allowed_backend() {
    let echo = EchoServer::start();
    let config = app_config(
        "tcp-echo",
        guest_artifacts::TCP_ECHO_PATH,
        "POST",
        "/tcp-echo",
        &format!("env = {{ ECHO_ADDRESS = \"{}\" }}", echo.address),
    );
    let rule = echo.address.to_string();
    let host = Host::start(Some(&config.path()), &["--allow-tcp", &rule]);
    assert!(
        host.stdout()
            .contains(&format!("outbound TCP allowed to: {rule}"))
    );
    let body: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
    let reply = send(&client(), "POST", &host.url("/tcp-echo"), &[], body.clone()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.body.as_ref(), body.as_slice());
    let id = reply.header("x-request-id").unwrap();
    let access = host.wait_for_log(&["access", id]);
    assert!(
        access.contains("tcp_connections=1") && access.contains("bytes_in=20000"),
        "{access}"
    );
}

#[tokio::test]
async fn without_a_flag_the_guest_gets_not_allowed_and_the_refusal_is_logged() {
    let echo = EchoServer::start();
    let config = app_config(
        "tcp-echo",
        guest_artifacts::TCP_ECHO_PATH,
        "POST",
        "/tcp-echo",
        &format!("env = {{ ECHO_ADDRESS = \"{}\" }}", echo.address),
    );
    let host = Host::start(Some(&config.path()), &[]);
    assert!(
        host.stdout()
            .contains("outbound TCP: denied (no --allow-tcp rules)")
    );
    let reply = send(&client(), "POST", &host.url("/tcp-echo"), &[], "hello").await;
    assert_eq!(reply.status, 502);
    assert!(reply.text().contains("NotAllowed"), "{}", reply.text());
    let id = reply.header("x-request-id").unwrap();
    let line = host.wait_for_log(&[
        "refused outbound TCP connection",
        &echo.address.to_string(),
        id,
    ]);
    assert!(line.contains("app=\"tcp-echo\""), "{line}");
    assert!(
        line.contains("only a rule naming it allows"),
        "the log names the missing rule: {line}"
    );
    let access = host.wait_for_log(&["access", id]);
    assert!(
        access.contains("tcp_connections=0") && access.contains("tcp_denied=1"),
        "the access line counts the refusal: {access}"
    );
    assert_eq!(echo.accepted(), 0);
}

#[tokio::test]
async fn the_redis_counter_counts_up_across_requests() {
    let redis = RedisServer::start();
    let config = app_config(
        "counter",
        guest_artifacts::REDIS_COUNTER_PATH,
        "GET",
        "/counter/*",
        &format!(
            "env = {{ REDIS_HOST = \"127.0.0.1\", REDIS_PORT = \"{}\" }}",
            redis.port
        ),
    );
    let rule = format!("127.0.0.1:{}", redis.port);
    let host = Host::start(Some(&config.path()), &["--allow-tcp", &rule]);
    for expected in ["1\n", "2\n", "3\n"] {
        assert_eq!(get(&host.url("/counter/visits")).await.text(), expected);
    }
    assert_eq!(get(&host.url("/counter/other")).await.text(), "1\n");

    // The same handler without the flag is refused, and says so.
    let denied = Host::start(Some(&config.path()), &[]);
    let reply = get(&denied.url("/counter/visits")).await;
    assert_eq!(reply.status, 502);
    assert!(reply.text().contains("NotAllowed"), "{}", reply.text());
}

#[tokio::test]
async fn every_spelling_of_loopback_is_refused_without_an_explicit_ip_rule() {
    let backend = EchoServer::start();
    let port = backend.address.port();
    let host = Host::start(
        Some(&probe_config("").path()),
        &[
            "--allow-tcp",
            &format!("localhost:{port}"),
            "--allow-tcp",
            &format!("0.0.0.0/0:{port}"),
            "--allow-tcp",
            &format!("[::/0]:{port}"),
        ],
    );
    for spelling in [
        "localhost",
        "LOCALHOST.",
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "169.254.169.254",
        "[fd00:ec2::254]",
    ] {
        let answer = probe(&host, "tcp", &format!("{spelling}:{port}")).await;
        assert!(
            answer.starts_with("Error::NotAllowed("),
            "{spelling}: {answer}"
        );
    }
    let side_door = probe(&host, "std-tcp", &format!("127.0.0.1:{port}")).await;
    assert!(
        side_door.starts_with("error: "),
        "wasi:sockets: {side_door}"
    );
    host.wait_for_log(&["wasi-sockets", "refused TCP connection to 127.0.0.1"]);
    assert_eq!(backend.accepted(), 0, "no attempt may reach the backend");
}

#[tokio::test]
async fn normalised_spellings_reach_an_explicitly_allowed_loopback_port() {
    let backend = EchoServer::start();
    let port = backend.address.port();
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--allow-tcp", &format!("127.0.0.1:{port}")],
    );
    for spelling in ["127.0.0.1", "127.1", "2130706433", "[::ffff:127.0.0.1]"] {
        assert_eq!(
            probe(&host, "tcp", &format!("{spelling}:{port}")).await,
            "connected",
            "{spelling}"
        );
    }
    assert_eq!(
        probe(&host, "std-tcp", &format!("127.0.0.1:{port}")).await,
        "connected"
    );
    let other_port = probe(
        &host,
        "tcp",
        &format!("127.0.0.1:{}", port.wrapping_add(1).max(1)),
    )
    .await;
    assert!(other_port.starts_with("Error::NotAllowed("), "{other_port}");
    for address in ["127.0.0.1:0", "0.0.0.0:0", "[::]:0"] {
        let bind = probe(&host, "std-bind", address).await;
        assert!(
            bind.starts_with("error: "),
            "binding {address} must be refused: {bind}"
        );
    }
    host.wait_for_log(&["wasi-sockets", "refused TcpBind on 127.0.0.1:0"]);
    host.wait_for_log(&["wasi-sockets", "refused TcpListen on 0.0.0.0:"]);
}

#[tokio::test]
async fn cidr_port_range_and_ipv6_rules_match() {
    let first = EchoServer::start();
    let second = EchoServer::start();
    let low = first.address.port().min(second.address.port());
    let high = first.address.port().max(second.address.port());
    // An IPv6 backend on a port outside the IPv4 range, so that the IPv4
    // rule cannot be what refuses or allows it.
    let v6 = (0..100)
        .map(|_| EchoServer::start_on("[::1]:0"))
        .find(|server| !(low..=high).contains(&server.address.port()))
        .expect("a port outside the range");
    let v6_port = v6.address.port();
    let host = Host::start(
        Some(&probe_config("").path()),
        &[
            "--allow-tcp",
            &format!("127.0.0.0/8:{low}-{high}"),
            "--allow-tcp",
            &format!("[::1]:{v6_port}"),
        ],
    );
    assert_eq!(
        probe(&host, "tcp", &format!("127.0.0.1:{low}")).await,
        "connected"
    );
    assert_eq!(
        probe(&host, "tcp", &format!("127.0.0.1:{high}")).await,
        "connected"
    );
    assert_eq!(
        probe(&host, "tcp", &format!("127.0.0.1:{}", low - 1)).await,
        format!("Error::NotAllowed(\"127.0.0.1:{}\")", low - 1)
    );
    assert_eq!(
        probe(&host, "tcp", &format!("[::1]:{v6_port}")).await,
        "connected"
    );
    assert_eq!(
        probe(&host, "tcp", &format!("[0:0:0:0:0:0:0:1]:{v6_port}")).await,
        "connected"
    );
    // The IPv6 rule does not allow IPv4 loopback on its port.
    assert_eq!(
        probe(&host, "tcp", &format!("127.0.0.1:{v6_port}")).await,
        format!("Error::NotAllowed(\"127.0.0.1:{v6_port}\")")
    );
}

#[tokio::test]
async fn app_entries_narrow_the_operator_flags() {
    let first = EchoServer::start();
    let second = EchoServer::start();
    let config = probe_config(&format!(
        "allowed_tcp = [\"127.0.0.1:{}\"]",
        first.address.port()
    ));
    let host = Host::start(Some(&config.path()), &["--allow-tcp", "127.0.0.0/8:*"]);
    assert!(host.stdout().contains(&format!(
        "app probe narrows TCP to: 127.0.0.1:{}",
        first.address.port()
    )));
    assert_eq!(
        probe(&host, "tcp", &first.address.to_string()).await,
        "connected"
    );
    let refused = probe(&host, "tcp", &second.address.to_string()).await;
    assert!(refused.starts_with("Error::NotAllowed("), "{refused}");
    assert_eq!(second.accepted(), 0);
}

#[test]
fn app_entries_beyond_the_flags_stop_startup_naming_both() {
    let config = probe_config("allowed_tcp = [\"10.0.0.0/8:5432\"]");
    let output = support::host_command()
        .args([
            "serve",
            config.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--allow-tcp",
            "127.0.0.1:6379",
            "--allow-tcp",
            "*.db.example.com:5432",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            ":6:16: app `probe` (" 
        ) && stderr.contains(
            "allowed_tcp entry `10.0.0.0/8:5432` is not covered by the operator's rules (the operator's --allow-tcp rules are 127.0.0.1:6379, *.db.example.com:5432)"
        ),
        "{stderr}"
    );
}

#[test]
fn malformed_flags_are_rejected_before_binding() {
    for (flag, reason) in [
        ("redis.internal", "the rule has no port"),
        ("127.1:80", "write all four parts in decimal"),
        ("10.0.0.1/8:80", "write the network as `10.0.0.0/8`"),
        ("*:80", "`*` alone would allow every host"),
    ] {
        let output = support::host_command()
            .args(["serve", "--listen", "127.0.0.1:0", "--allow-tcp", flag])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--allow-tcp") && stderr.contains(reason),
            "{flag}: {stderr}"
        );
        assert!(
            stderr.contains("accepted forms: `redis.internal:6379`"),
            "{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "nothing may start: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[tokio::test]
async fn a_black_hole_times_out_within_the_connect_timeout() {
    let hole = BlackHole::start();
    let host = Host::start(
        Some(&probe_config("tcp_connect_timeout = \"400ms\"").path()),
        &["--allow-tcp", &hole.address.to_string()],
    );
    let started = Instant::now();
    let answer = probe(&host, "tcp", &hole.address.to_string()).await;
    let elapsed = started.elapsed();
    assert_eq!(answer, "Error::TimedOut");
    assert!(
        elapsed >= Duration::from_millis(400),
        "gave up too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the timeout was not applied: {elapsed:?}"
    );
}

#[tokio::test]
async fn refused_connections_and_closed_peers_reach_the_guest_as_such() {
    let closed = support::backends::ClosedPort::reserve();
    let closed_port = closed.port;
    let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_address = closing.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in closing.incoming() {
            drop(stream);
        }
    });
    let host = Host::start(
        Some(&probe_config("").path()),
        &[
            "--allow-tcp",
            &format!("127.0.0.1:{closed_port}"),
            "--allow-tcp",
            &closing_address.to_string(),
        ],
    );
    let refused = probe(&host, "tcp", &format!("127.0.0.1:{closed_port}")).await;
    assert_eq!(refused, "Error::ConnectionRefused");
    let eof = probe(&host, "tcp-read", &closing_address.to_string()).await;
    assert_eq!(eof, "Ok([])", "a closed peer reads as end of stream");
}

#[tokio::test]
async fn a_silent_backend_times_out_reads() {
    let silent = SilentServer::start();
    let host = Host::start(
        Some(&probe_config("tcp_io_timeout = \"300ms\"").path()),
        &["--allow-tcp", &silent.address.to_string()],
    );
    assert_eq!(
        probe(&host, "tcp-read", &silent.address.to_string()).await,
        "Err(Error::TimedOut)"
    );
}

#[tokio::test]
async fn each_request_may_open_only_its_connection_limit() {
    let backend = EchoServer::start();
    let host = Host::start(
        Some(&probe_config("max_tcp_connections = 3").path()),
        &["--allow-tcp", &backend.address.to_string()],
    );
    for _ in 0..2 {
        let answer = get(&host.url(&format!("/probe/tcp-hold?count=5&addr={}", backend.address)))
            .await
            .text();
        assert_eq!(answer, "opened 3 then Error::LimitReached");
    }
    host.wait_for_log(&["this request already opened 3 connections"]);
}

#[tokio::test]
async fn sockets_a_guest_never_closes_are_closed_when_its_request_ends() {
    let backend = EchoServer::start();
    let host = Host::start(
        Some(&probe_config("").path()),
        &["--allow-tcp", &backend.address.to_string()],
    );
    // Warm up: the first requests create the runtime's threads and pools.
    let url = host.url(&format!("/probe/tcp-hold?count=4&addr={}", backend.address));
    assert_eq!(get(&url).await.text(), "opened 4");
    let before = host.open_fds();
    for _ in 0..40 {
        assert_eq!(get(&url).await.text(), "opened 4");
    }
    // The backend counts connections as its accept loop gets to them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.accepted() < 164 || backend.open() > 0 || host.open_fds() > before + 2 {
        assert!(
            Instant::now() < deadline,
            "leak: backend accepted {} of 164 and still has {} open, host has {} fds (was {before})",
            backend.accepted(),
            backend.open(),
            host.open_fds()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend.accepted(), 164);
}

#[tokio::test]
async fn name_rules_reach_what_the_name_resolves_to_and_nothing_else() {
    let network = support::netns::TestNetwork::create();
    let backend = network.echo_server();
    let port = backend.address.port();
    let loopback = EchoServer::start();
    let loopback_port = loopback.address.port();
    let resolution = support::netns::Resolution::new(&format!(
        "{address} echo.backend.test db.wild.test\n127.0.0.1 loop.backend.test\n",
        address = network.address
    ));
    let host = Host::start_with(
        resolution.command(support::HOST_BIN),
        Some(&probe_config("").path()),
        &[
            "--allow-tcp",
            &format!("echo.backend.test:{port}"),
            "--allow-tcp",
            &format!("*.wild.test:{port}"),
            "--allow-tcp",
            &format!("loop.backend.test:{loopback_port}"),
        ],
    );
    assert_eq!(
        probe(&host, "tcp", &format!("echo.backend.test:{port}")).await,
        "connected"
    );
    assert_eq!(
        probe(&host, "tcp", &format!("db.wild.test:{port}")).await,
        "connected"
    );
    for refused in [
        format!("wild.test:{port}"),
        format!("echo.backend.test:{}", port.wrapping_add(1).max(1)),
        format!("{}:{port}", network.address),
        format!("loop.backend.test:{loopback_port}"),
    ] {
        let answer = probe(&host, "tcp", &refused).await;
        assert!(
            answer.starts_with("Error::NotAllowed("),
            "{refused}: {answer}"
        );
    }
    let unknown = probe(&host, "tcp", &format!("missing.wild.test:{port}")).await;
    assert!(
        unknown.starts_with("Error::DnsFailure(\"missing.wild.test:"),
        "{unknown}"
    );
    let side_door = probe(&host, "std-tcp", &format!("{}:{port}", network.address)).await;
    assert!(
        side_door.starts_with("error: "),
        "name rules do not open wasi:sockets: {side_door}"
    );
    host.wait_for_log(&[
        "refused outbound TCP connection to loop.backend.test",
        "is a loopback address",
    ]);
    assert_eq!(backend.wait_accepted(2), 2);
    assert_eq!(loopback.accepted(), 0);
}

#[tokio::test]
async fn names_are_looked_up_only_when_a_name_rule_allows_them() {
    let network = support::netns::TestNetwork::create();
    let backend = network.echo_server();
    let port = backend.address.port();
    let resolution =
        support::netns::Resolution::new(&format!("{} made-up.test\n", network.address));
    let host = Host::start_with(
        resolution.command(support::HOST_BIN),
        Some(&probe_config("").path()),
        &["--allow-tcp", &format!("{}:{port}", network.address)],
    );
    assert_eq!(
        probe(&host, "tcp", &format!("{}:{port}", network.address)).await,
        "connected"
    );
    // A network rule on the port is no reason to resolve a name the guest
    // chose: before the fix this name was looked up and connected.
    assert_eq!(
        probe(&host, "tcp", &format!("made-up.test:{port}")).await,
        format!("Error::NotAllowed(\"made-up.test:{port}\")")
    );
    host.wait_for_log(&[
        &format!("refused outbound TCP connection to made-up.test:{port}: no name rule allows made-up.test:{port}; the host looks up only names that a name rule allows"),
    ]);
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn the_hosts_own_interface_addresses_are_treated_as_loopback() {
    // Services bound to every interface, as a database on 0.0.0.0 is.
    let tcp_service = EchoServer::start_on("0.0.0.0:0");
    let tcp_port = tcp_service.address.port();
    let http_service = support::backends::HttpBackend::start_on("0.0.0.0:0");
    let http_port = http_service.address.port();
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/probe/:action\"\n\n[[applications]]\nname = \"http-probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/http-probe/:action\"\n",
        guest_artifacts::TEST_PROBE_PATH,
        guest_artifacts::TEST_HTTP_PROBE_PATH,
    ));
    let host = Host::start(
        Some(&config.path()),
        &[
            "--allow-tcp",
            "0.0.0.0/0:*",
            "--allow-http",
            "http://0.0.0.0/0:*",
        ],
    );
    host.wait_for_log(&["local interface addresses, treated as loopback by the outbound policy"]);
    // An interface address that appears while the host runs: this
    // machine's end of a test network.
    let network = support::netns::TestNetwork::create();
    let local = network.local;
    host.wait_for_log(&[
        "local interface addresses changed: added",
        &local.to_string(),
    ]);
    assert_eq!(
        probe(&host, "tcp", &format!("{local}:{tcp_port}")).await,
        format!("Error::NotAllowed(\"{local}:{tcp_port}\")")
    );
    host.wait_for_log(&[&format!(
        "refused outbound TCP connection to {local}:{tcp_port}: {local} is an address of this host's own interfaces, which only a rule naming it allows, such as `--allow-tcp {local}:{tcp_port}`"
    )]);
    assert_eq!(
        probe(&host, "std-tcp", &format!("{local}:{tcp_port}")).await,
        "error: PermissionDenied"
    );
    let url: String =
        form_urlencoded::byte_serialize(format!("http://{local}:{http_port}/").as_bytes())
            .collect();
    assert_eq!(
        get(&host.url(&format!("/http-probe/fetch?url={url}")))
            .await
            .text(),
        "error: ErrorCode::HttpRequestDenied"
    );
    // The test host behind the link is an ordinary destination.
    let remote = network.echo_server();
    assert_eq!(
        probe(
            &host,
            "tcp",
            &format!("{}:{}", network.address, remote.address.port())
        )
        .await,
        "connected"
    );
    assert_eq!(tcp_service.accepted(), 0);
    assert_eq!(http_service.connections(), 0);
}

#[tokio::test]
async fn ipv6_forms_that_embed_ipv4_need_an_explicit_rule() {
    let host = Host::start(Some(&probe_config("").path()), &["--allow-tcp", "[::/0]:*"]);
    for (target, what) in [
        ("[2002:7f00:1::]:80", "a 6to4 address"),
        ("[64:ff9b:1::7f00:1]:80", "a local-use NAT64 address"),
        ("[::ffff:0:7f00:1]:80", "an IPv4-translated address"),
        ("[2001:0:7f00:1::1]:80", "a Teredo address"),
    ] {
        assert_eq!(
            probe(&host, "tcp", target).await,
            format!("Error::NotAllowed(\"{target}\")"),
            "{target}"
        );
        host.wait_for_log(&[
            &format!("refused outbound TCP connection to {target}"),
            what,
        ]);
    }
}
