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
        Server::start_with(port, &[])
    }

    /// Starts one on `port` with extra flags (`--user`, `--auth`).
    fn start_with(port: u16, flags: &[&str]) -> Server {
        let mut child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(flags)
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
    client_as(port, prefix, None, None)
}

fn client_as(
    port: u16,
    prefix: &str,
    user: Option<(&str, &str)>,
    token: Option<&str>,
) -> NatsClient {
    NatsClient::start(NatsOptions {
        address: format!("127.0.0.1:{port}"),
        prefix: Topic::new(prefix).unwrap(),
        user: user.map(|(user, pass)| (user.to_owned(), pass.to_owned())),
        token: token.map(str::to_owned),
        max_payload: 1 << 20,
        ping_interval: serverless_messaging::nats::client::DEFAULT_PING_INTERVAL,
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
    while let Some(extra) = sensors.try_recv() {
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

#[tokio::test]
async fn a_server_that_requires_credentials_takes_the_right_ones_only() {
    let server = Server::start_with(free_port(), &["--user", "svc", "--pass", "s3cret-pass"]);
    let right = client_as(server.port, "prod", Some(("svc", "s3cret-pass")), None);
    let wrong = client_as(server.port, "prod", Some(("svc", "nope")), None);
    let none = client(server.port, "prod");
    until("the client with the right password is up", || right.is_up()).await;
    // The others are refused at CONNECT and keep trying, never up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!wrong.is_up() && !none.is_up());
    assert_eq!(
        wrong.publish(&message("a", "x")),
        Err(NatsError::Down(format!("127.0.0.1:{}", server.port)))
    );
    drop(server);

    let server = Server::start_with(free_port(), &["--auth", "t0ken-value"]);
    let right = client_as(server.port, "prod", None, Some("t0ken-value"));
    let wrong = client_as(server.port, "prod", None, Some("other"));
    until("the client with the token is up", || right.is_up()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!wrong.is_up());
}

/// A fake server: sends INFO (of `info_size` bytes), answers pings until
/// `answer` pings have been answered, then stays silent with the
/// connection open.
async fn fake_server(info_size: usize, answer: usize) -> u16 {
    fake_server_saying(info_size, answer, "").await
}

/// [`fake_server`] with `extra` JSON members in its INFO.
async fn fake_server_saying(info_size: usize, answer: usize, extra: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let padding = "x".repeat(info_size.saturating_sub(40));
        stream
            .write_all(
                format!("INFO {{\"server_id\":\"fake\",{extra}\"pad\":\"{padding}\"}}\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut answered = 0;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream.read(&mut chunk).await.unwrap_or(0);
            if read == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..read]);
            while let Some(at) = buffer.windows(6).position(|w| w == b"PING\r\n") {
                buffer.drain(..at + 6);
                if answered < answer {
                    answered += 1;
                    stream.write_all(b"PONG\r\n").await.unwrap();
                }
            }
        }
    });
    port
}

#[tokio::test]
async fn a_large_info_is_taken_and_a_silent_server_is_found_by_its_pings() {
    // An INFO well past 4 KiB, as a server in a cluster sends.
    let port = fake_server(20 * 1024, 1).await;
    let client = NatsClient::start(NatsOptions {
        address: format!("127.0.0.1:{port}"),
        prefix: Topic::new("prod").unwrap(),
        user: None,
        token: None,
        max_payload: 1 << 20,
        ping_interval: Duration::from_millis(100),
    });
    until("the client is up", || client.is_up()).await;
    // The server answered the PING after CONNECT only: two more go
    // unanswered and the connection is given up.
    // Without pings the connection would stay up: it is open.
    until("the silent server is noticed", || !client.is_up()).await;
}

/// The server's subscription count, from its monitoring port.
fn server_subscriptions(monitor: u16) -> u64 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", monitor)).unwrap();
    stream
        .write_all(b"GET /subsz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let at = answer
        .find("\"num_subscriptions\":")
        .unwrap_or_else(|| panic!("no count in {answer}"));
    answer[at + "\"num_subscriptions\":".len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_dropped_subscription_is_unsubscribed_on_the_server_at_once() {
    let monitor = free_port();
    let server = Server::start_with(free_port(), &["-m", &monitor.to_string()]);
    let client = client(server.port, "prod");
    until("the client is up", || client.is_up()).await;
    let before = server_subscriptions(monitor);
    // As a request's reply inbox: used once, then dropped.
    let inboxes: Vec<_> = (0..5)
        .map(|n| client.subscribe(TopicPattern::new(&format!("_inbox.{n}")).unwrap(), 1))
        .collect();
    until("the server has the five", || {
        server_subscriptions(monitor) == before + 5
    })
    .await;
    drop(inboxes);
    until("the server has none of them", || {
        server_subscriptions(monitor) == before
    })
    .await;
}

#[tokio::test]
async fn a_message_over_the_server_s_max_payload_is_refused_before_it_is_sent() {
    let port = fake_server_saying(100, 100, "\"max_payload\":64,").await;
    let client = client(port, "prod");
    until("the client is up", || client.is_up()).await;
    client
        .publish(&message("t", &"x".repeat(64)))
        .expect("at the limit");
    assert_eq!(
        client.publish(&message("t", &"x".repeat(65))),
        Err(NatsError::TooLarge {
            size: 65,
            limit: 64
        })
    );
    // Headers count as HPUB writes them: `NATS/1.0`, the line, the end
    // (12 + 26 bytes for this content type).
    let mut typed = message("t", &"x".repeat(26));
    typed.content_type = Some("text/plain".into());
    client.publish(&typed).expect("26 bytes and 38 of headers");
    typed.data = "x".repeat(27).into();
    assert_eq!(
        client.publish(&typed),
        Err(NatsError::TooLarge {
            size: 65,
            limit: 64
        })
    );
}
