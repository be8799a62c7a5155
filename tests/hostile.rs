//! Hostile guests: every one is contained with the right status and a log
//! line naming the cause, and a thousand of them leave the host with the
//! same fds, free instance slots and memory.

mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::backends::{EchoServer, SilentServer};
use support::{ConfigDir, Host, client, get, send};

/// The hostile app with `timeout`, 32 MiB of memory, a 4 MiB response
/// limit and 8 TCP connections; a `key = value` line of `extra` replaces
/// the default of that key, other lines are added.
fn hostile_config(timeout: &str, extra: &str) -> ConfigDir {
    let defaults = [
        ("max_memory", "\"32 MiB\""),
        ("max_response_body", "\"4 MiB\""),
        ("max_tcp_connections", "8"),
        ("tcp_io_timeout", "\"60s\""),
    ];
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let mut settings: Vec<String> = defaults
        .iter()
        .filter(|(name, _)| !extra.lines().any(|line| key(line) == *name))
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    settings.extend(extra.lines().map(str::to_owned));
    ConfigDir::new(&format!(
        r#"[[applications]]
name = "hostile"
file_path = {hostile:?}
method = "ANY"
url_path = "/hostile/:action"
timeout = "{timeout}"
{settings}
"#,
        hostile = guest_artifacts::TEST_HOSTILE_PATH,
        settings = settings.join("\n"),
    ))
}

/// Sends `path`, checks the status, and waits for the failure's log line
/// carrying the request id and `needle`.
async fn expect(host: &Host, path: &str, status: u16, needle: &str) -> String {
    let reply = get(&host.url(path)).await;
    assert_eq!(
        reply.status,
        status,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let id = reply.header("x-request-id").unwrap().to_owned();
    if !needle.is_empty() {
        host.wait_for_log(&[&id, needle]);
    }
    id
}

/// Waits until `/metrics` shows `count` requests being handled by an
/// instance: the readiness signal that a request has reached its guest.
async fn wait_in_flight(host: &Host, count: u32) {
    let url = format!(
        "http://{}/metrics",
        host.admin.expect("admin endpoints are on")
    );
    let wanted = format!("\nserverless_instances_in_flight {count}\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = get(&url).await.text();
        if metrics.contains(&wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {count} in flight:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_guest_is_contained_with_the_right_status_and_cause() {
    let silent = SilentServer::start();
    let backend = EchoServer::start();
    let host = Host::start(
        Some(&hostile_config("1s", "").path()),
        &[
            "--allow-tcp",
            &silent.address.to_string(),
            "--allow-tcp",
            &backend.address.to_string(),
        ],
    );
    let started = Instant::now();
    expect(&host, "/hostile/spin", 504, "kind=\"deadline\"").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline stopped the loop"
    );
    expect(&host, "/hostile/spin-host", 504, "kind=\"deadline\"").await;
    expect(
        &host,
        &format!("/hostile/wait-host?addr={}", silent.address),
        504,
        "kind=\"deadline\"",
    )
    .await;
    expect(&host, "/hostile/sleep", 504, "kind=\"deadline\"").await;
    let id = expect(&host, "/hostile/memory", 500, "kind=\"memory\"").await;
    host.wait_for_log(&[
        &id,
        "memory limit: the guest asked for",
        "the app's limit is 33554432",
    ]);
    expect(&host, "/hostile/recurse", 500, "kind=\"stack overflow\"").await;
    let id = expect(&host, "/hostile/panic", 500, "kind=\"unreachable\"").await;
    host.wait_for_log(&[
        &id,
        "request failed",
        "guest stderr:",
        "hostile guest panicked on purpose",
    ]);
    expect(&host, "/hostile/huge", 500, "kind=\"response too large\"").await;
    expect(&host, "/hostile/resources", 500, "kind=\"host error\"").await;
    let nothing = get(&host.url("/hostile/nothing")).await;
    assert_eq!((nothing.status, nothing.body.len()), (200, 0));
    let connect = get(&host.url(&format!("/hostile/connect?addr={}", backend.address))).await;
    assert_eq!(connect.text(), "opened 8 then Error::LimitReached");
    // The client never sees internals.
    for path in ["/hostile/panic", "/hostile/memory"] {
        let reply = get(&host.url(path)).await;
        assert_eq!(reply.text(), "internal server error\n");
    }
    assert_eq!(get(&host.url("/hostile/ok")).await.text(), "fine");
}

#[tokio::test]
async fn a_fuel_budget_stops_a_spinning_guest_deterministically() {
    let host = Host::start(Some(&hostile_config("30s", "fuel = 5000000").path()), &[]);
    let started = Instant::now();
    expect(&host, "/hostile/spin", 500, "kind=\"fuel\"").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        get(&host.url("/hostile/ok")).await.text(),
        "fine",
        "fuel is per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_cap_requests_wait_briefly_then_get_503() {
    let host = Host::start(
        Some(&hostile_config("2s", "max_concurrency = 1").path()),
        &["--queue-timeout", "200"],
    );
    let url = host.url("/hostile/sleep");
    let busy = tokio::spawn(async move { get(&url).await.status });
    wait_in_flight(&host, 1).await;
    let refused = get(&host.url("/hostile/ok")).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    host.wait_for_log(&[
        "too many requests in flight",
        refused.header("x-request-id").unwrap(),
    ]);
    assert_eq!(busy.await.unwrap(), 504);
    assert_eq!(
        get(&host.url("/hostile/ok")).await.text(),
        "fine",
        "the slot is free again"
    );
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let host = Host::start(Some(&hostile_config("1s", "").path()), &[]);
    let many: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| (format!("x-h{i}"), b"v".to_vec()))
        .collect();
    let headers: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let reply = send(
        &client(),
        "GET",
        &host.url("/hostile/ok"),
        &headers,
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 431);
    let big = vec![b'a'; 100 * 1024];
    let reply = send(
        &client(),
        "GET",
        &host.url("/hostile/ok"),
        &[("x-big", &big)],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 431);
    assert_eq!(get(&host.url("/hostile/ok")).await.text(), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_hostile_requests_leave_no_trace() {
    let backend = EchoServer::start();
    let config = hostile_config("200ms", "");
    // The probe holds an instance slot for as long as it is told to sleep.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(config.path())
        .unwrap();
    write!(
        file,
        "\n[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/probe/:action\"\n",
        guest_artifacts::TEST_PROBE_PATH
    )
    .unwrap();
    drop(file);
    // No queue: a request that finds no free slot gets 503 at once, so
    // a slot leaked by the hostile traffic cannot hide behind another
    // request's finishing within the queue timeout.
    let host = Host::start(
        Some(&config.path()),
        &[
            "--allow-tcp",
            &backend.address.to_string(),
            "--max-instances",
            "16",
            "--queue-timeout",
            "0",
        ],
    );
    let actions = [
        "memory".to_owned(),
        "recurse".to_owned(),
        "panic".to_owned(),
        "huge".to_owned(),
        "resources".to_owned(),
        "nothing".to_owned(),
        format!("connect?addr={}", backend.address),
        "spin".to_owned(),
    ];
    // Warm up with every action so that pools, threads and caches exist.
    for action in &actions {
        get(&host.url(&format!("/hostile/{action}"))).await;
    }
    let fds = host.open_fds();
    let rss = host.memory("VmRSS");
    let client = client();
    for round in 0..125 {
        let mut tasks = Vec::new();
        for action in &actions {
            let client = client.clone();
            let url = host.url(&format!("/hostile/{action}"));
            tasks.push(tokio::spawn(async move {
                send(&client, "GET", &url, &[], Bytes::new()).await.status
            }));
        }
        for task in tasks {
            let status = task.await.unwrap();
            assert!(
                matches!(status, 200 | 500 | 504),
                "round {round}: status {status}"
            );
        }
    }
    drop(client);
    // All 16 instance slots are free: 16 requests that each hold a slot
    // until all 16 are running are all admitted.
    let mut sleepers = Vec::new();
    for _ in 0..16 {
        let url = host.url("/probe/sleep?ms=3000");
        sleepers.push(tokio::spawn(async move { get(&url).await }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.stderr().matches("sleeping 3000 ms").count() < 16
        && !sleepers.iter().any(|task| task.is_finished())
    {
        assert!(Instant::now() < deadline, "the 16 requests did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The cap is exactly 16: with all of them held, the next is refused.
    if !sleepers.iter().any(|task| task.is_finished()) {
        assert_eq!(get(&host.url("/hostile/ok")).await.status, 503);
    }
    for (i, task) in sleepers.into_iter().enumerate() {
        let reply = task.await.unwrap();
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, "slept"),
            "request {i} of 16 found no free slot"
        );
    }
    let metrics = get(&format!(
        "http://{}/metrics",
        host.admin.expect("admin endpoints are on")
    ))
    .await
    .text();
    assert!(
        metrics.contains("\nserverless_instances_in_flight 0\n"),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.open_fds() > fds + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        host.open_fds() <= fds + 2,
        "fds grew from {fds} to {}",
        host.open_fds()
    );
    let growth = host.memory("VmRSS").saturating_sub(rss);
    eprintln!(
        "RSS grew by {} KiB over 1000 hostile requests",
        growth / 1024
    );
    assert!(
        growth < 48 * 1024 * 1024,
        "RSS grew by {} MiB",
        growth >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_requests_and_refuses_new_ones() {
    let config = ConfigDir::new(&format!(
        "[[applications]]\nname = \"probe\"\nfile_path = {:?}\nmethod = \"ANY\"\nurl_path = \"/probe/:action\"\n",
        guest_artifacts::TEST_PROBE_PATH
    ));
    let mut host = Host::start(Some(&config.path()), &["--drain-timeout", "20"]);
    let mut in_flight = Vec::new();
    for _ in 0..24 {
        let url = host.url("/probe/sleep?ms=800");
        in_flight.push(tokio::spawn(async move { get(&url).await }));
    }
    // Wait until every request is running in a guest.
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.stderr().matches("sleeping 800 ms").count() < 24 {
        assert!(Instant::now() < deadline, "the requests did not all start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    host.signal(libc::SIGTERM);
    host.wait_for_log(&["stopped accepting connections"]);
    assert!(
        std::net::TcpStream::connect(host.address).is_err(),
        "new connections are refused"
    );
    for request in in_flight {
        let reply = request.await.unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
    }
    let status = host.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_request_does_not_hold_the_exit_past_the_drain_timeout() {
    let mut host = Host::start(
        Some(&hostile_config("1h", "").path()),
        &["--drain-timeout", "1"],
    );
    let url = host.url("/hostile/spin");
    let stuck = tokio::spawn(async move {
        let _ = client()
            .request(
                http::Request::get(url)
                    .body(http_body_util::Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
    });
    wait_in_flight(&host, 1).await;
    let signalled = Instant::now();
    host.signal(libc::SIGTERM);
    let status = host.wait(Duration::from_secs(10));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        signalled.elapsed()
    );
    assert!(status.success(), "{status}");
    host.wait_for_log(&["drain timeout elapsed"]);
    stuck.abort();
}

/// CPU time the process has used, in clock ticks (user plus system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn an_idle_host_sleeps_and_still_stops_the_next_spinning_guest() {
    let host = Host::start(Some(&hostile_config("1s", "").path()), &[]);
    assert_eq!(get(&host.url("/hostile/ok")).await.status, 200);
    // The epoch ticker stops ticking after a second without instances.
    // These sleeps are what is tested (the host stays idle for them), not
    // a wait for something to happen: it logs nothing when it stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = cpu_ticks(host.pid());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = cpu_ticks(host.pid()) - before;
    // Ticking every millisecond for nobody cost about six ticks (10 ms
    // each) in four seconds; idle is zero or one.
    assert!(used <= 2, "the idle host used {used} clock ticks in 4 s");
    // The first instance wakes the ticker: its deadline still holds.
    let started = Instant::now();
    expect(&host, "/hostile/spin", 504, "kind=\"deadline\"").await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_request_moved_to_the_slow_lane_still_answers_while_short_ones_are_served() {
    let host = Host::start(Some(&hostile_config("5s", "").path()), &[]);
    // Computing for 300 ms is far past the few slices after which a
    // request moves to the low-priority threads; it must still come back
    // whole.
    let long = tokio::spawn({
        let url = host.url("/hostile/busy?ms=300");
        async move { get(&url).await }
    });
    for _ in 0..20 {
        let reply = get(&host.url("/hostile/ok")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "fine");
    }
    let long = long.await.unwrap();
    assert_eq!(long.status, 200, "{}", long.text());
    assert_eq!(long.text(), "done after 300 ms");
    let metrics = get(&format!(
        "http://{}/metrics",
        host.admin.expect("admin endpoints are on")
    ))
    .await
    .text();
    let moves: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("serverless_slow_lane_moves_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no slow-lane metric in {metrics}"));
    assert!(moves >= 1, "the long request moved to the slow lane");
}

/// Every log line of the request `id`.
fn lines_of(host: &Host, id: &str) -> Vec<String> {
    host.stderr()
        .lines()
        .filter(|line| line.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Waits for the line saying how much of request `id`'s output was dropped
/// (written once the guest has finished) and returns the request's lines.
fn lines_after_drop(host: &Host, id: &str, dropped: &str) -> Vec<String> {
    host.wait_for_log(&[
        id,
        &format!(
            "dropped {dropped} of guest output (log, stdout and stderr) past the budget of 1048576 bytes or 10000 lines per request"
        ),
    ]);
    lines_of(host, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_headers_are_capped_and_count_into_the_response_limit() {
    // Fails before the cap: 30,000 headers overflowed the header map and
    // the worker panicked, so the client saw its connection dropped.
    let host = Host::start(Some(&hostile_config("5s", "").path()), &[]);
    let id = expect(
        &host,
        "/hostile/headers-flood",
        500,
        "request failed: response headers too large: the handler tried to set more than 90 headers or more than 65536 bytes of reason phrase and headers",
    )
    .await;
    host.wait_for_log(&[&id, "request failed", "kind=\"response too large\""]);
    host.wait_for_log(&[
        &id,
        "header 91 refused: ResponseError::HeadersTooLarge",
        "source=\"log\"",
    ]);
    // 90 are allowed.
    let fine = get(&host.url("/hostile/headers-flood?count=90")).await;
    assert_eq!((fine.status, fine.text().as_str()), (200, "flooded"));
    assert_eq!(fine.headers.get_all("x-flood").iter().count(), 90);

    // 64 KiB of headers at most: the fourth of 16 KiB is refused.
    let id = expect(
        &host,
        "/hostile/header-bytes?count=8&size=16384",
        500,
        "response headers too large",
    )
    .await;
    host.wait_for_log(&[&id, "header 4 refused: ResponseError::HeadersTooLarge"]);

    // Header bytes count into max_response_body: behind a 1 KiB limit, a
    // body of 1000 bytes leaves no room for a header of 100.
    let small = hostile_config("5s", "max_response_body = \"1 KiB\"");
    let host = Host::start(Some(&small.path()), &[]);
    let id = expect(
        &host,
        "/hostile/header-bytes?body=1000&size=100",
        500,
        "request failed: response too large: the handler tried to send more than the app's limit of 1024 bytes",
    )
    .await;
    host.wait_for_log(&[&id, "header 1 refused: ResponseError::TooLarge(1024)"]);
    // The body fits alone, and with a small header.
    let fine = get(&host.url("/hostile/header-bytes?body=900&size=10")).await;
    assert_eq!((fine.status, fine.body.len()), (200, 900));
    assert_eq!(fine.header("x-big-0"), Some("vvvvvvvvvv"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_log_message_costs_the_host_neither_memory_nor_log() {
    // Fails before the budget: the 100 MB message was formatted and
    // captured whole, raising the host's RSS by about 490 MiB and writing
    // 100 MB to its log.
    let config = hostile_config("30s", "max_memory = \"256 MiB\"");
    let host = Host::start(Some(&config.path()), &[]);
    assert_eq!(get(&host.url("/hostile/ok")).await.text(), "fine");
    let rss = host.memory("VmRSS");
    let log_before = host.stderr().len();
    let reply = get(&host.url("/hostile/log-huge")).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "logged"));
    let id = reply.header("x-request-id").unwrap().to_owned();
    // 64 pieces of 16 KiB fill the 1 MiB budget; the rest of the message
    // and the short one after it are dropped.
    let after = "after the huge message".len();
    let dropped = 100_000_000 - (1 << 20) + after;
    let lines = lines_after_drop(&host, &id, &format!("{dropped} bytes in 6041 lines"));
    let piece = format!(" {} ", "x".repeat(16 * 1024));
    let pieces = lines
        .iter()
        .filter(|line| line.contains("source=\"log\""))
        .collect::<Vec<_>>();
    assert_eq!(pieces.len(), 64);
    assert!(pieces.iter().all(|line| line.contains(&piece)));
    assert!(!host.stderr().contains("after the huge message"));
    let logged = host.stderr().len() - log_before;
    assert!(logged < (1 << 20) + 64 * 1024, "{logged} bytes of log");
    // The instance's 100 MB of linear memory is given back once its pool
    // slot is reset, which happens after the response has gone out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let growth = loop {
        let growth = host.memory("VmRSS").saturating_sub(rss);
        if growth < 64 << 20 || Instant::now() > deadline {
            break growth;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "RSS grew by {} KiB after a 100 MB log message",
        growth >> 10
    );
    assert!(growth < 64 << 20, "RSS grew by {} MiB", growth >> 20);
    assert_eq!(get(&host.url("/hostile/ok")).await.text(), "fine");
}

#[tokio::test]
async fn log_and_stdout_share_one_output_budget_per_request() {
    // Fails before the budget: all 2 MB reached the log.
    let host = Host::start(Some(&hostile_config("30s", "").path()), &[]);
    let reply = get(&host.url("/hostile/output-flood?lines=2000&width=1000")).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "flooded"));
    let id = reply.header("x-request-id").unwrap().to_owned();
    // 1048 lines of 1000 bytes fit in 1 MiB; the 952 after them do not.
    let lines = lines_after_drop(&host, &id, "952000 bytes in 952 lines");
    let count = |source: &str| {
        lines
            .iter()
            .filter(|line| line.contains(&format!("source=\"{source}\"")))
            .count()
    };
    assert_eq!((count("log"), count("stdout")), (524, 524));
    // Blank lines count too: 20,000 of them cost the log 10,000 records.
    let reply = get(&host.url("/hostile/output-flood?lines=20000&width=0")).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    let lines = lines_after_drop(&host, &id, "0 bytes in 10000 lines");
    assert_eq!(
        lines.iter().filter(|line| line.contains("source=")).count(),
        10_000
    );
    // The next request has a budget of its own.
    let reply = get(&host.url("/hostile/output-flood?lines=10&width=10")).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    // The dropped line comes before the access line.
    host.wait_for_log(&[&id, "access: request"]);
    assert!(
        !lines_of(&host, &id)
            .iter()
            .any(|line| line.contains("dropped"))
    );
}

#[tokio::test]
async fn a_line_written_in_pieces_is_one_log_line_and_blank_lines_stay() {
    // Fails before one buffer per stream: each of the five handles logged
    // its piece as a line of its own, and the blank line was dropped.
    let host = Host::start(Some(&hostile_config("5s", "").path()), &[]);
    let reply = get(&host.url("/hostile/stdout-pieces")).await;
    assert_eq!(reply.text(), "written");
    let id = reply.header("x-request-id").unwrap().to_owned();
    host.wait_for_log(&[&id, "after the blank line"]);
    let lines: Vec<String> = lines_of(&host, &id)
        .into_iter()
        .filter(|line| line.contains("source=\"stdout\""))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].contains(" one line in five pieces "),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("guest:  app=\"hostile\""), "{}", lines[1]);
    assert!(lines[2].contains(" after the blank line "), "{}", lines[2]);
}
