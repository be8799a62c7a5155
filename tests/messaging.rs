//! wasi:messaging against the real binary: handlers publish and make
//! requests under their `publish` rules, `[[subscriptions]]` run a fresh
//! instance per message, failures are retried and dead-lettered, slow
//! consumers push back, shutdown finishes what was accepted, and two hosts
//! share topics over NATS, across a NATS restart.

mod support;

use std::time::{Duration, Instant};

use support::backends::{NatsServer, RecordingSink};
use support::{ConfigDir, Host};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `POST /pub?QUERY` with `body`, through the test publisher.
fn publish(host: &Host, route: &str, query: &str, body: &str) -> support::Reply {
    runtime().block_on(support::send(
        &support::client(),
        "POST",
        &host.url(&format!("{route}?{query}")),
        &[],
        body.to_owned(),
    ))
}

/// The host's `/metrics` text.
fn metrics(host: &Host) -> String {
    runtime()
        .block_on(support::send(
            &support::client(),
            "GET",
            &format!("http://{}/metrics", host.admin.unwrap()),
            &[],
            "",
        ))
        .text()
}

/// Waits until `/metrics` has every one of `lines`.
fn wait_for_metrics(host: &Host, lines: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(host);
        if lines.iter().all(|line| text.lines().any(|l| l == *line)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "missing some of {lines:?} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An `[[applications]]` entry of the test publisher at `route`.
fn publisher(name: &str, route: &str, extra: &str) -> String {
    format!(
        "[[applications]]\nname = \"{name}\"\nfile_path = {:?}\nmethod = \"POST\"\nurl_path = \"{route}\"\n{extra}\n",
        guest_artifacts::TEST_PUBLISHER_PATH
    )
}

/// A `[[subscriptions]]` entry of the test subscriber posting to `sink`.
fn subscription(name: &str, topic: &str, sink: &RecordingSink, extra: &str) -> String {
    format!(
        "[[subscriptions]]\nname = \"{name}\"\ntopic = \"{topic}\"\nfile_path = {:?}\nenv = {{ SINK_URL = \"{}\" }}\n{extra}\n",
        guest_artifacts::TEST_SUBSCRIBER_PATH,
        sink.url(&format!("/{name}"))
    )
}

#[test]
fn a_handler_publishes_and_a_subscription_forwards_each_message_to_an_allowed_sink() {
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}{}",
        publisher("pub", "/pub", "publish = [\"sensors.*\"]"),
        subscription("gateway", "sensors.>", &sink, "")
    ));
    let host = Host::start(Some(&config.path()), &["--allow-http", &sink.rule()]);
    let reply = publish(&host, "/pub", "topic=sensors.kitchen", "21.5");
    assert_eq!((reply.status, reply.text()), (202, "sent\n".to_owned()));
    assert_eq!(
        sink.next(),
        support::backends::Posted {
            path: "/gateway".to_owned(),
            topic: Some("sensors.kitchen".to_owned()),
            body: "21.5".to_owned(),
        }
    );
    let access = host.wait_for_log(&["access", "message", "subscription=\"gateway\""]);
    assert!(
        access.contains("topic=\"sensors.kitchen\"")
            && access.contains("attempt=1")
            && access.contains("outcome=\"delivered\""),
        "{access}"
    );
    wait_for_metrics(
        &host,
        &[
            "serverless_messages_published_total{topic=\"sensors.kitchen\"} 1",
            "serverless_messages_delivered_total{topic=\"sensors.kitchen\"} 1",
            "serverless_messages_failed_total{topic=\"sensors.kitchen\"} 0",
        ],
    );
    // A request gets the subscription's reply.
    let reply = publish(
        &host,
        "/pub",
        "topic=sensors.ask&request=5000",
        "ask:how warm",
    );
    assert_eq!((reply.status, reply.text()), (200, "HOW WARM\n".to_owned()));
}

#[test]
fn topics_outside_the_publish_rules_get_the_wit_error_and_a_log_line() {
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}{}{}",
        publisher("open", "/open", "publish = [\"in\"]"),
        publisher("closed", "/closed", ""),
        subscription("relay", "in", &sink, "")
    ));
    let host = Host::start(Some(&config.path()), &["--allow-http", &sink.rule()]);
    let reply = publish(&host, "/closed", "topic=in", "x");
    assert_eq!(
        (reply.status, reply.text()),
        (
            403,
            "app `closed` may not send on topic `in`: its entry has no `publish` rules; add `publish = [\"in\"]` to it\n".to_owned()
        )
    );
    let line = host.wait_for_log(&["source=\"messaging\"", "app=\"closed\""]);
    assert!(
        line.contains("refused: app `closed` may not send on topic `in`"),
        "{line}"
    );
    let reply = publish(&host, "/open", "topic=_inbox.abc", "x");
    assert_eq!(
        (reply.status, reply.text()),
        (
            403,
            "topic `_inbox.abc` belongs to the host (topics starting with `_` carry replies); answer a request with `reply`\n".to_owned()
        )
    );
    // A subscription handler has no publish rules either.
    let reply = publish(&host, "/open", "topic=in", "forward:out:data");
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(
        sink.next().body,
        "forward out: Error::PermissionDenied(\"app `relay` may not send on topic `out`: its entry has no `publish` rules; add `publish = [\\\"out\\\"]` to it\")"
    );
    wait_for_metrics(
        &host,
        &["serverless_outbound_denied_total{via=\"messaging\"} 3"],
    );
}

#[test]
fn the_size_and_rate_caps_refuse_with_the_wit_error() {
    let config = ConfigDir::new(&publisher(
        "capped",
        "/capped",
        "publish = [\"t\"]\nmax_message_size = 8\nmax_publish_rate = 1",
    ));
    let host = Host::start(Some(&config.path()), &[]);
    let reply = publish(&host, "/capped", "topic=t", "123456789");
    assert_eq!(
        (reply.status, reply.text()),
        (
            500,
            "app `capped` sent a message of 9 bytes on topic `t`, over its max_message_size of 8 bytes\n".to_owned()
        )
    );
    // One a second: of two at once, the second is refused (an empty
    // bucket takes a second to refill, far longer than two requests).
    let first = publish(&host, "/capped", "topic=t", "a");
    let second = publish(&host, "/capped", "topic=t", "b");
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(
        (second.status, second.text()),
        (
            500,
            "app `capped` is over its max_publish_rate of 1 messages a second; the message on topic `t` was not sent\n".to_owned()
        )
    );
    host.wait_for_log(&[
        "source=\"messaging\"",
        "refused: app `capped` is over its max_publish_rate",
    ]);
}

#[test]
fn a_failing_handler_is_retried_with_backoff_then_dead_lettered_or_dropped() {
    let sink = RecordingSink::start();
    // The gateway sample posts whatever it gets.
    let morgue = format!(
        "[[subscriptions]]\nname = \"morgue\"\ntopic = \"jobs-failed\"\nfile_path = {:?}\nenv = {{ SINK_URL = \"{}\" }}\n",
        guest_artifacts::GATEWAY_PATH,
        sink.url("/morgue")
    );
    let config = ConfigDir::new(&format!(
        "{}{}{morgue}{}",
        publisher("pub", "/pub", "publish = [\"jobs\", \"chores\"]"),
        subscription(
            "worker",
            "jobs",
            &sink,
            "max_attempts = 3\nretry_backoff = \"50ms\"\ndead_letter = \"jobs-failed\"",
        ),
        subscription(
            "lazy",
            "chores",
            &sink,
            "max_attempts = 2\nretry_backoff = \"10ms\""
        ),
    ));
    let host = Host::start(Some(&config.path()), &["--allow-http", &sink.rule()]);
    assert_eq!(publish(&host, "/pub", "topic=jobs", "trap").status, 202);
    // The morgue gets it after three failed deliveries.
    assert_eq!(
        sink.next(),
        support::backends::Posted {
            path: "/morgue".to_owned(),
            topic: Some("jobs-failed".to_owned()),
            body: "trap".to_owned(),
        }
    );
    host.wait_for_log(&[
        "delivery 3 of 3 failed (unreachable)",
        "the message went to the dead-letter topic `jobs-failed`",
    ]);
    for attempt in 1..=3 {
        host.wait_for_log(&[
            "subscription=\"worker\"",
            &format!("attempt={attempt} "),
            "outcome=\"failed\"",
        ]);
    }
    host.wait_for_log(&[
        "delivery 1 of 3 failed (unreachable)",
        "trying again in 50ms",
    ]);
    host.wait_for_log(&[
        "delivery 2 of 3 failed (unreachable)",
        "trying again in 100ms",
    ]);
    // A message that fails with no dead-letter topic is dropped, logged
    // with its id, and counted.
    assert_eq!(
        publish(&host, "/pub", "topic=chores", "fail:not today").status,
        202
    );
    let dropped = host.wait_for_log(&[
        "delivery 2 of 2 failed (message error): the handler returned the error other(\"not today\"); the subscription has no dead_letter topic, so the message was dropped",
    ]);
    assert!(dropped.contains("message_id=msg-"), "{dropped}");
    wait_for_metrics(
        &host,
        &[
            "serverless_messages_failed_total{topic=\"jobs\"} 3",
            "serverless_messages_retried_total{topic=\"jobs\"} 2",
            "serverless_messages_dead_lettered_total{topic=\"jobs\"} 1",
            "serverless_messages_dropped_total{topic=\"jobs\"} 0",
            "serverless_messages_failed_total{topic=\"chores\"} 2",
            "serverless_messages_retried_total{topic=\"chores\"} 1",
            "serverless_messages_dropped_total{topic=\"chores\"} 1",
        ],
    );
    // The sink saw nothing else: every attempt trapped or failed.
    assert_eq!(sink.next_within(Duration::from_millis(200)), None);
}

#[test]
fn one_at_a_time_keeps_the_order_and_a_slow_consumer_pushes_back() {
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}{}",
        publisher("pub", "/pub", "publish = [\"ordered\"]"),
        subscription("slow", "ordered", &sink, ""),
    ));
    let host = Host::start(
        Some(&config.path()),
        &[
            "--allow-http",
            &sink.rule(),
            "--messaging-queue",
            "2",
            "--messaging-wait",
            "200ms",
        ],
    );
    // The first is taken at once and holds the handler; two more fill the
    // queue; the fourth waits 200 ms and is refused.
    let depth =
        |n: usize| format!("serverless_subscription_queue_depth{{subscription=\"slow\"}} {n}");
    assert_eq!(
        publish(&host, "/pub", "topic=ordered", "sleep:5000").status,
        202
    );
    wait_for_metrics(&host, &[&depth(0)]);
    for body in ["second", "third"] {
        assert_eq!(publish(&host, "/pub", "topic=ordered", body).status, 202);
    }
    wait_for_metrics(&host, &[&depth(2)]);
    let refused = publish(&host, "/pub", "topic=ordered", "fourth");
    assert_eq!(
        (refused.status, refused.text()),
        (504, "timeout\n".to_owned())
    );
    host.wait_for_log(&[
        "a message on topic `ordered` was not sent: subscription `slow` has 2 messages queued and took none within 200 ms",
    ]);
    let bodies: Vec<String> = (0..3).map(|_| sink.next().body).collect();
    assert_eq!(bodies, ["sleep:5000", "second", "third"]);
    wait_for_metrics(
        &host,
        &["serverless_messages_refused_total{topic=\"ordered\"} 1"],
    );
}

#[test]
fn graceful_shutdown_delivers_what_was_queued() {
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}{}",
        publisher("pub", "/pub", "publish = [\"late\"]"),
        subscription("tail", "late", &sink, ""),
    ));
    let mut host = Host::start(Some(&config.path()), &["--allow-http", &sink.rule()]);
    for index in 0..4 {
        let reply = publish(&host, "/pub", "topic=late", &format!("sleep:300 #{index}"));
        assert_eq!(reply.status, 202, "{}", reply.text());
    }
    // The first is in the handler, three wait in the queue.
    wait_for_metrics(
        &host,
        &["serverless_subscription_queue_depth{subscription=\"tail\"} 3"],
    );
    host.signal(libc::SIGTERM);
    let bodies: Vec<String> = (0..4).map(|_| sink.next().body).collect();
    assert_eq!(
        bodies,
        [
            "sleep:300 #0",
            "sleep:300 #1",
            "sleep:300 #2",
            "sleep:300 #3"
        ]
    );
    assert!(host.wait(Duration::from_secs(20)).success());
    assert!(
        !host.stderr().contains("were dropped") && !host.stdout().contains("were dropped"),
        "{}",
        host.stderr()
    );
}

#[test]
fn two_hosts_share_topics_over_nats_and_resume_after_it_restarts() {
    let nats = NatsServer::start();
    let port = nats.port;
    let url = nats.url();
    let sink = RecordingSink::start();
    let messaging = [
        "--messaging",
        url.as_str(),
        "--messaging-prefix",
        "pipeline",
    ];
    let producer_config = ConfigDir::new(&publisher(
        "pub",
        "/pub",
        "publish = [\"readings\", \"questions\"]",
    ));
    let consumer_config = ConfigDir::new(&format!(
        "{}{}",
        subscription("gateway", "readings", &sink, ""),
        subscription("answers", "questions", &sink, "")
    ));
    let producer = Host::start(Some(&producer_config.path()), &messaging);
    let rule = sink.rule();
    let consumer = Host::start(
        Some(&consumer_config.path()),
        &[messaging.as_slice(), &["--allow-http", rule.as_str()]].concat(),
    );
    // Publishes until the consumer's subscription has reached the server.
    let deliver = |body: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "{body:?} never arrived");
            let reply = publish(&producer, "/pub", "topic=readings", body);
            if reply.status == 202
                && let Some(posted) = sink.next_within(Duration::from_millis(300))
            {
                assert_eq!(posted.topic.as_deref(), Some("readings"));
                return posted.body;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(deliver("before"), "before");
    // A request from one host is answered by the other's subscription,
    // through a reply inbox on NATS.
    let reply = publish(
        &producer,
        "/pub",
        "topic=questions&request=5000",
        "ask:across hosts",
    );
    assert_eq!(
        (reply.status, reply.text()),
        (200, "ACROSS HOSTS\n".to_owned())
    );

    // NATS stops: the publisher's guest gets `connection`.
    drop(nats);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        let reply = publish(&producer, "/pub", "topic=readings", "during");
        if reply.status == 503 {
            assert!(reply.text().contains("127.0.0.1"), "{}", reply.text());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // It comes back on the same port: both hosts reconnect by themselves,
    // and the subscription delivers again.
    let _nats = NatsServer::start_on(port);
    // Whatever the outage let through (nothing, or "during" from before it
    // was noticed) comes before the new message.
    let mut seen = deliver("after");
    while seen != "after" {
        seen = sink.next().body;
    }
    consumer.wait_for_log(&["NATS connected"]);
}

#[test]
fn the_messaging_pipeline_sample_serves_the_latest_reading() {
    // guests/rust/messaging-pipeline.toml as documented, with the test's
    // artifacts, a free port and a shorter interval.
    let cache = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../guests/rust/messaging-pipeline.toml"),
    )
    .unwrap();
    for (written, built) in [
        ("telemetry.wasm", guest_artifacts::TELEMETRY_PATH),
        (
            "telemetry_cache.wasm",
            guest_artifacts::TELEMETRY_CACHE_PATH,
        ),
        ("gateway.wasm", guest_artifacts::GATEWAY_PATH),
        ("http_fetch.wasm", guest_artifacts::HTTP_FETCH_PATH),
    ] {
        let written = format!("\"../../target/wasm32-wasip1/release/{written}\"");
        assert!(text.contains(&written), "{written} is not in the sample");
        text = text.replace(&written, &format!("{built:?}"));
    }
    let text = text
        .replace("127.0.0.1:9001", &cache)
        .replace("\"1000\"", "\"50\"");
    let config = ConfigDir::new(&text);
    let allow_http = format!("http://{cache}");
    let host = Host::start(
        Some(&config.path()),
        &["--allow-listen", &cache, "--allow-http", &allow_http],
    );
    host.wait_for_log(&["publishing to telemetry with wasi:messaging every 50ms"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let latest = loop {
        assert!(Instant::now() < deadline, "no reading reached the cache");
        let reply = runtime().block_on(support::send(
            &support::client(),
            "GET",
            &host.url("/telemetry/latest"),
            &[],
            "",
        ));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let latest: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        if latest["sensor-1"]["seq"]
            .as_u64()
            .is_some_and(|seq| seq >= 3)
        {
            break latest;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let celsius = latest["sensor-1"]["celsius"].as_f64().unwrap();
    assert!((15.0..=30.0).contains(&celsius), "{latest}");
    let delivered = host.wait_for_log(&[
        "access",
        "subscription=\"gateway\"",
        "outcome=\"delivered\"",
    ]);
    assert!(delivered.contains("topic=\"telemetry\""), "{delivered}");
    drop(host);

    // The same file split across two hosts on one NATS server: the
    // telemetry service on one, the gateway, cache and route on the other.
    let nats = NatsServer::start();
    let url = nats.url();
    let (telemetry, rest) = text
        .split_once("\n[[services]]\nname = \"cache\"")
        .expect("the cache follows the telemetry service");
    let telemetry = telemetry
        .split_once("[[services]]")
        .map(|(_, entry)| format!("[[services]]{entry}"))
        .expect("the telemetry entry");
    let rest = format!("[[services]]\nname = \"cache\"{rest}");
    let messaging = [
        "--messaging",
        url.as_str(),
        "--messaging-prefix",
        "pipeline",
    ];
    let sensors_config = ConfigDir::new(&telemetry);
    let gateway_config = ConfigDir::new(&rest);
    let gateway = Host::start(
        Some(&gateway_config.path()),
        &[
            messaging.as_slice(),
            &["--allow-listen", &cache, "--allow-http", &allow_http],
        ]
        .concat(),
    );
    let sensors = Host::start(Some(&sensors_config.path()), &messaging);
    sensors.wait_for_log(&["publishing to telemetry with wasi:messaging every 50ms"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no reading crossed to the other host"
        );
        let reply = runtime().block_on(support::send(
            &support::client(),
            "GET",
            &gateway.url("/telemetry/latest"),
            &[],
            "",
        ));
        let latest: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        if latest["sensor-1"]["seq"].as_u64().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample another toolchain built, from `tests/run`'s guest builds.
fn built_sample(language: &str, sample: &str) -> std::path::PathBuf {
    let path = std::env::var_os("SERVERLESS_WASM_GUESTS_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests")
        })
        .join(language)
        .join(format!("{sample}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing; build it with `just guests-{language}` (or `guests/tools/install {language} && guests/{language}/build`), or run the whole suite with `tests/run`",
        path.display()
    );
    path
}

#[test]
fn a_python_subscription_built_by_componentize_py_replies_and_forwards() {
    let relay = built_sample("python", "relay");
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}[[subscriptions]]\nname = \"relay\"\ntopic = \"py.in\"\nfile_path = {:?}\nenv = {{ FORWARD_TOPIC = \"py.out\" }}\npublish = [\"py.out\"]\n\n{}",
        publisher("pub", "/pub", "publish = [\"py.in\"]"),
        relay.display().to_string(),
        subscription("sink", "py.out", &sink, ""),
    ));
    let host = Host::start(Some(&config.path()), &["--allow-http", &sink.rule()]);
    let reply = publish(&host, "/pub", "topic=py.in&request=10000", "ask:hello");
    assert_eq!(
        (reply.status, reply.text()),
        (200, "python saw: hello\n".to_owned())
    );
    assert_eq!(publish(&host, "/pub", "topic=py.in", "reading").status, 202);
    assert_eq!(
        sink.next(),
        support::backends::Posted {
            path: "/sink".to_owned(),
            topic: Some("py.out".to_owned()),
            body: "READING".to_owned(),
        }
    );
    host.wait_for_log(&["forwarding 7 bytes from py.in to py.out", "app=\"relay\""]);
}

/// The value of the metric line that starts with `series`, if present.
fn metric_value(host: &Host, series: &str) -> Option<u64> {
    metrics(host)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn on_nats_a_message_that_finds_the_queue_full_is_dropped_and_counted() {
    let nats = NatsServer::start();
    let url = nats.url();
    let sink = RecordingSink::start();
    let config = ConfigDir::new(&format!(
        "{}{}",
        publisher("pub", "/pub", "publish = [\"burst\"]"),
        subscription("slow", "burst", &sink, ""),
    ));
    let host = Host::start(
        Some(&config.path()),
        &[
            "--messaging",
            &url,
            "--allow-http",
            &sink.rule(),
            "--messaging-queue",
            "1",
        ],
    );
    // Until the subscription is on the server: one message arrives.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the subscription never got a message"
        );
        assert_eq!(publish(&host, "/pub", "topic=burst", "first").status, 202);
        if sink.next_within(Duration::from_millis(200)).is_some() {
            break;
        }
    }
    // The handler holds one, the queue one, the NATS side one: of eight
    // at once, some find no room.
    for _ in 0..8 {
        assert_eq!(
            publish(&host, "/pub", "topic=burst", "sleep:1000").status,
            202
        );
    }
    let series = "serverless_messages_overflowed_total{topic=\"burst\"} ";
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric_value(&host, series).is_none_or(|dropped| dropped == 0) {
        assert!(Instant::now() < deadline, "no overflow was counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    host.wait_for_log(&["NATS: a subscriber is not keeping up; a message was dropped"]);
}
