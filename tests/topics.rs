//! Topics from outside: a `publish_to` route feeds the host's broker,
//! `host publish` does too, and `host subscribe` follows it, through the
//! admin listener.

mod support;

use std::io::BufRead as _;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use support::{ConfigDir, Host, host_command};

/// A running `host subscribe`, killed however the test ends.
struct Subscriber {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subscriber {
    fn start(host: &Host, pattern: &str) -> Subscriber {
        let mut child = host_command()
            .args(["subscribe", pattern, "--admin"])
            .arg(host.admin.unwrap().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = sender.send(line);
                }
            });
        }
        let subscriber = Subscriber { child, lines };
        subscriber.wait_for(&format!("subscribed to {pattern}"));
        subscriber
    }

    /// The next line that contains `needle`, and the line after it.
    fn wait_for(&self, needle: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the subscriber printed no line with {needle:?}"));
            if line.contains(needle) {
                let next = self
                    .lines
                    .recv_timeout(Duration::from_millis(200))
                    .unwrap_or_default();
                return (line, next);
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_publish_to_route_and_host_publish_feed_a_topic_that_host_subscribe_follows() {
    let config = ConfigDir::new(
        "[[applications]]\nmethod = \"POST\"\nurl_path = \"/ingest\"\npublish_to = \"telemetry\"\nmax_request_body = \"1 KiB\"\n",
    );
    let host = Host::start(Some(&config.path()), &[]);
    assert!(
        host.stdout()
            .contains("  POST    /ingest  -> publish-telemetry (topic telemetry)\n"),
        "{}",
        host.stdout()
    );
    let subscriber = Subscriber::start(&host, "telemetry");

    let reply = runtime().block_on(support::send(
        &support::client(),
        "POST",
        &host.url("/ingest"),
        &[
            ("content-type", b"application/json"),
            ("x-request-id", b"ingest-1"),
        ],
        "{\"celsius\": 21.5}",
    ));
    assert_eq!(reply.status, 202, "{}", reply.text());
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (answer["topic"].as_str(), answer["subscriptions"].as_u64()),
        (Some("telemetry"), Some(1))
    );
    let id = answer["id"].as_str().unwrap().to_owned();
    let (head, data) = subscriber.wait_for(&format!("== telemetry {id} (application/json)"));
    assert_eq!(head, format!("== telemetry {id} (application/json)"));
    assert_eq!(data, "{\"celsius\": 21.5}");
    let access = host.wait_for_log(&["access", "request_id=\"ingest-1\""]);
    assert!(
        access.contains("app=\"publish-telemetry\"") && access.contains("status=202"),
        "{access}"
    );

    // Past the route's body limit: 413, and nothing is published.
    let big = runtime().block_on(support::send(
        &support::client(),
        "POST",
        &host.url("/ingest"),
        &[],
        "x".repeat(2048),
    ));
    assert_eq!(big.status, 413);
    // And a chunked body, whose size no header declares, is cut off as it
    // streams.
    let mut chunked = b"POST /ingest HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n".to_vec();
    chunked.extend(std::iter::repeat_n(b'x', 2048));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = support::raw_exchange(host.address, &chunked, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // `host publish` goes through the admin listener.
    let published = host_command()
        .args(["publish", "telemetry", "--data", "by hand", "--admin"])
        .arg(host.admin.unwrap().to_string())
        .output()
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let line = String::from_utf8(published.stdout).unwrap();
    assert!(
        line.starts_with("published msg-") && line.ends_with(" on telemetry to 1 subscriptions\n"),
        "{line}"
    );
    let (_, data) = subscriber.wait_for("== telemetry msg-");
    assert_eq!(
        data, "by hand",
        "the large body never came: the next message is this one"
    );

    // A topic that is not one is refused with the reason.
    let refused = host_command()
        .args(["publish", "no spaces", "--data", "x", "--admin"])
        .arg(host.admin.unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: topic `no spaces` holds ' ', which a topic may not; write tokens of letters, digits, `_` or `-` separated by `.`, such as `telemetry` or `sensors.kitchen`\n"
    );

    // The broker's counts and queues on /metrics: two publishes on
    // `telemetry` (the route's and `host publish`'s), and the tap.
    let metrics = runtime()
        .block_on(support::get(&format!(
            "http://{}/metrics",
            host.admin.unwrap()
        )))
        .text();
    for line in [
        "serverless_messages_published_total{topic=\"telemetry\"} 2",
        "serverless_messages_unrouted_total{topic=\"telemetry\"} 0",
        "serverless_messages_refused_total{topic=\"telemetry\"} 0",
        "serverless_subscription_queue_depth{subscription=\"admin tap telemetry\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }

    // The admin doors themselves: a bad topic is 400 with the reason, a
    // web page (an `Origin` header) is refused, a wrong method is 405.
    let admin = format!("http://{}", host.admin.unwrap());
    let send = |method: &str, path: &str, headers: &[(&str, &[u8])]| {
        runtime().block_on(support::send(
            &support::client(),
            method,
            &format!("{admin}{path}"),
            headers,
            "x",
        ))
    };
    let bad = send("POST", "/publish/a..b", &[]);
    assert_eq!(
        (bad.status, bad.text()),
        (400, "topic `a..b` has an empty token (a leading, trailing or doubled `.`); write tokens of letters, digits, `_` or `-` separated by `.`, such as `telemetry` or `sensors.kitchen`\n".to_owned())
    );
    let page = send(
        "POST",
        "/publish/telemetry",
        &[("origin", b"https://evil.example")],
    );
    assert_eq!(
        (page.status, page.text()),
        (403, "requests from web pages (with an `Origin` header) may not publish or subscribe; use `host publish` or `host subscribe`\n".to_owned())
    );
    let wrong = send("GET", "/publish/telemetry", &[]);
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    let wrong = send("POST", "/subscribe/telemetry", &[]);
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET")));
}

#[test]
fn two_hosts_on_one_nats_server_share_topics_and_an_outage_is_a_503() {
    let nats = support::backends::NatsServer::start();
    let url = nats.url();
    let config = ConfigDir::new(
        "[[applications]]\nmethod = \"POST\"\nurl_path = \"/ingest\"\npublish_to = \"telemetry\"\n",
    );
    let messaging = ["--messaging", url.as_str(), "--messaging-prefix", "shared"];
    let publisher = Host::start(Some(&config.path()), &messaging);
    let consumer = Host::start(Some(&config.path()), &messaging);
    assert!(
        publisher.stdout().contains(&format!(
            "messaging: NATS at {url}, subjects under `shared.`\n"
        )),
        "{}",
        publisher.stdout()
    );
    // A third host under another prefix shares the server, not the topics.
    let elsewhere = Host::start(
        Some(&config.path()),
        &["--messaging", url.as_str(), "--messaging-prefix", "other"],
    );
    let subscriber = Subscriber::start(&consumer, "telemetry");
    let stranger = Subscriber::start(&elsewhere, "telemetry");
    let post = |host: &Host, body: &str| {
        runtime().block_on(support::send(
            &support::client(),
            "POST",
            &host.url("/ingest"),
            &[],
            body.to_owned(),
        ))
    };
    // The consumer's NATS subscription is made as its tap opens: published
    // until it has reached the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the second host never got the message"
        );
        let reply = post(&publisher, "from the first host");
        if reply.status != 202 {
            // Not connected to NATS yet.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            answer["subscriptions"],
            serde_json::Value::Null,
            "NATS does not say"
        );
        if let Ok(line) = subscriber.lines.recv_timeout(Duration::from_millis(200)) {
            assert!(line.starts_with("== telemetry msg-"), "{line}");
            let data = subscriber
                .lines
                .recv_timeout(Duration::from_secs(5))
                .unwrap();
            assert_eq!(data, "from the first host");
            break;
        }
    }
    // The other prefix saw none of it: its first message is its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the other deployment never got its own message"
        );
        let _ = post(&elsewhere, "the other deployment's");
        if let Ok(line) = stranger.lines.recv_timeout(Duration::from_millis(200)) {
            assert!(line.starts_with("== telemetry msg-"), "{line}");
            let data = stranger.lines.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(data, "the other deployment's");
            break;
        }
    }

    // NATS goes away: a publish is a 503 that says why.
    drop(nats);
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        let reply = post(&publisher, "during the outage");
        if reply.status == 503 {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        refused.text(),
        "service unavailable: the message broker is not reachable, retry shortly\n"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    publisher.wait_for_log(&["NATS connection lost"]);
}

#[test]
fn a_bad_credentials_file_is_refused_without_showing_what_it_holds() {
    let config = ConfigDir::new(
        "[[applications]]\nmethod = \"POST\"\nurl_path = \"/ingest\"\npublish_to = \"telemetry\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("nats.toml");
    std::fs::write(&credentials, "tokn = \"s3cret-value\"\n").unwrap();
    let output = host_command()
        .arg("serve")
        .arg(config.path())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args([
            "--messaging",
            "nats://127.0.0.1:1",
            "--messaging-credentials",
        ])
        .arg(&credentials)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("s3cret-value"), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "error: --messaging-credentials {}: not a credentials file at line 1; write `token = \"...\"`, or `user = \"...\"` and `password = \"...\"`",
                credentials.display()
            )
            .as_str()
        )
    );
}
