//! The NATS client against a real `nats-server` on a free loopback port
//! (tests/run installs it): prefixes keep deployments apart, and a
//! server restart is survived with the subscriptions intact.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serverless_messaging::nats::{NatsClient, NatsError, NatsOptions};
use serverless_messaging::{Message, Topic, TopicPattern};

/// A running nats-server, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts one on `port` and waits for its "ready" line.
    fn start(port: u16) -> Server {
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("nats-server is installed (tests/run installs it from Debian)");
        let stderr = child.stderr.take().unwrap();
        let (ready, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Server is ready") {
                    let _ = ready.send(());
                }
            }
        });
        wait.recv_timeout(Duration::from_secs(20))
            .expect("nats-server printed its ready line");
        Server { child, port }
    }
}

fn client(port: u16, prefix: &str) -> NatsClient {
    NatsClient::start(NatsOptions {
        address: format!("127.0.0.1:{port}"),
        prefix: Topic::new(prefix).unwrap(),
        user: None,
        token: None,
        max_payload: 1 << 20,
    })
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn message(topic: &str, data: &str) -> Message {
    Message::new(Topic::new(topic).unwrap(), data.to_owned())
}

#[tokio::test]
async fn prefixes_keep_deployments_apart_and_a_restart_is_survived() {
    let server = Server::start(free_port());
    let port = server.port;
    let consumer = client(port, "prod");
    let producer = client(port, "prod");
    let other = client(port, "staging");
    until("all three are connected", || {
        consumer.is_up() && producer.is_up() && other.is_up()
    })
    .await;
    let mut sensors = consumer.subscribe(TopicPattern::new("sensors.*").unwrap(), 16);
    let mut staging = other.subscribe(TopicPattern::new("sensors.*").unwrap(), 16);
    let mut reading = message("sensors.kitchen", "21.5");
    reading.content_type = Some("text/plain".into());
    reading.metadata.push(("request-id".into(), "r-1".into()));
    // Published until the new subscription has reached the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "prod's subscription never got prod's reading"
        );
        producer.publish(&reading).unwrap();
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(200), sensors.recv()).await
        {
            assert_eq!(
                got.topic.as_str(),
                "sensors.kitchen",
                "the prefix is not shown"
            );
            assert_eq!(got.data.as_ref(), b"21.5");
            assert_eq!(got.content_type.as_deref(), Some("text/plain"));
            assert_eq!(got.metadata, [("request-id".to_owned(), "r-1".to_owned())]);
            break;
        }
    }
    // The staging deployment saw none of it: its first message is its own.
    loop {
        assert!(
            Instant::now() < deadline,
            "staging never got its own message"
        );
        other
            .publish(&message("sensors.hall", "staging's"))
            .unwrap();
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(200), staging.recv()).await
        {
            assert_eq!(got.data.as_ref(), b"staging's");
            break;
        }
    }
    while let Ok(extra) = sensors.try_recv() {
        assert_eq!(
            extra.data.as_ref(),
            b"21.5",
            "only prod's own messages reach prod"
        );
    }

    // The server goes away: publishes fail at once.
    drop(server);
    until("the clients see the outage", || {
        !producer.is_up() && !consumer.is_up()
    })
    .await;
    assert_eq!(
        producer
            .publish(&message("sensors.kitchen", "lost"))
            .unwrap_err(),
        NatsError::Down(format!("127.0.0.1:{port}"))
    );
    // It comes back on the same port: the clients reconnect, and the
    // subscription made before the outage delivers again.
    let _server = Server::start(port);
    until("the clients are back", || {
        producer.is_up() && consumer.is_up()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the subscription did not come back"
        );
        producer
            .publish(&message("sensors.kitchen", "after"))
            .unwrap();
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(200), sensors.recv()).await
            && got.data.as_ref() == b"after"
        {
            break;
        }
    }
}
