//! `loadgen messaging`: messages per second and publish-to-handler latency
//! of `[[subscriptions]]`, on the embedded broker and on NATS, next to a
//! native Rust consumer on the same NATS.
//!
//! Every setup has the same two ends: clients publish through the host's
//! `publish_to` route (`POST /ingest`, topic `bench`), and a loopback HTTP
//! sink here receives each message. In between, either the gateway sample
//! (a wasm subscription handler, one fresh instance per message, posting
//! to the sink over wasi:http) on the host's embedded broker or on NATS, or
//! a native consumer in this process that subscribes to the same NATS
//! subject and posts to the sink with hyper. A message carries its publish
//! time; the sink subtracts it from the time it arrives.
//!
//! Latency is measured one message at a time (the next is published once
//! the sink has the previous one), so it has no queueing in it; throughput
//! with several publishers at once, from the first publish to the last
//! arrival.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Mutex, Notify};

use crate::host::RunningHost;

/// How many deliveries a subscription (or the native consumer) runs at
/// once in the throughput runs.
const CONCURRENCY: usize = 8;

/// Publishers at once in the throughput runs.
const PUBLISHERS: usize = 8;

/// The `--messaging-prefix` of every NATS run.
const PREFIX: &str = "bench";

/// Each subscription's queue (`--messaging-queue`), and the native
/// consumer's: room for a whole throughput run, so that NATS, which drops
/// what finds a queue full, delivers every message and the setups compare
/// on the same work.
const QUEUE: &str = "65536";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What the sink has received.
#[derive(Default)]
struct Received {
    /// Publish-to-arrival time of each message, in arrival order.
    latencies: Vec<Duration>,
    /// When the last one came.
    last: Option<Instant>,
}

/// The HTTP endpoint every setup delivers to.
struct Sink {
    address: SocketAddr,
    received: Arc<Mutex<Received>>,
    arrived: Arc<Notify>,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

impl Sink {
    async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received::default()));
        let arrived = Arc::new(Notify::new());
        let (store, notify) = (received.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (store, notify) = (store.clone(), notify.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (store, notify) = (store.clone(), notify.clone());
                            async move {
                                let body = request.into_body().collect().await?.to_bytes();
                                let sent: Option<u128> = std::str::from_utf8(&body)
                                    .ok()
                                    .and_then(|text| text.split(' ').nth(1))
                                    .and_then(|nanos| nanos.trim().parse().ok());
                                if let Some(sent) = sent {
                                    let latency = Duration::from_nanos(
                                        u64::try_from(now_nanos().saturating_sub(sent))
                                            .unwrap_or(u64::MAX),
                                    );
                                    let mut received = store.lock().await;
                                    received.latencies.push(latency);
                                    received.last = Some(Instant::now());
                                    notify.notify_waiters();
                                }
                                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Sink {
            address,
            received,
            arrived,
        })
    }

    async fn count(&self) -> usize {
        self.received.lock().await.latencies.len()
    }

    /// Waits until `count` messages have arrived, for at most `limit`.
    async fn wait_for(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            if self.count().await >= count {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "only {} of {count} messages reached the sink within {limit:?}",
                    self.count().await
                );
            }
        }
    }

    async fn reset(&self) {
        *self.received.lock().await = Received::default();
    }
}

/// A `nats-server` on a free loopback port, stopped when dropped.
struct Nats {
    child: std::process::Child,
    port: u16,
}

impl Nats {
    fn start() -> anyhow::Result<Nats> {
        use std::io::BufRead as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start nats-server (Debian's nats-server package; `just bench-messaging` installs it)")?;
        let stderr = child.stderr.take().context("no stderr")?;
        for line in std::io::BufReader::new(stderr).lines() {
            if line?.contains("Server is ready") {
                return Ok(Nats { child, port });
            }
        }
        bail!("nats-server exited before it was ready")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's configuration: the publish route, and the gateway
/// subscription unless the native consumer takes the messages.
fn config(sink: &Sink, with_subscription: bool) -> String {
    let mut text = "[[applications]]\nname = \"ingest\"\nmethod = \"POST\"\nurl_path = \"/ingest\"\npublish_to = \"bench\"\n".to_owned();
    if with_subscription {
        let _ = write!(
            text,
            "\n[[subscriptions]]\nname = \"gateway\"\ntopic = \"bench\"\nfile_path = {:?}\nenv = {{ SINK_URL = \"http://{}/sink\" }}\nmax_concurrency = {CONCURRENCY}\n",
            guest_artifacts::GATEWAY_PATH,
            sink.address
        );
    }
    text
}

/// Publishes message `seq` through `url`, retrying while the host says
/// the queue or NATS is busy; returns how many attempts were refused.
async fn publish(client: &HttpClient, url: &str, seq: usize) -> anyhow::Result<u64> {
    let mut refused = 0;
    loop {
        let body = format!("{seq} {}", now_nanos());
        let request = http::Request::post(url)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))?;
        let response = client.request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        match status.as_u16() {
            202 => return Ok(refused),
            503 => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => bail!("publishing answered {other}"),
        }
    }
}

/// One setup's figures.
struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    refused: u64,
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// [`measure_once`], with the host's message counts in the error when a
/// run fails.
async fn measure(
    host: &RunningHost,
    sink: &Sink,
    latency_messages: usize,
    throughput_messages: usize,
) -> anyhow::Result<Measured> {
    measure_once(host.address, sink, latency_messages, throughput_messages)
        .await
        .map_err(|error| {
            let counts: Vec<String> = host
                .admin_get("/metrics")
                .unwrap_or_default()
                .lines()
                .filter(|line| {
                    line.starts_with("serverless_messages_") || line.contains("queue_depth")
                })
                .map(str::to_owned)
                .collect();
            error.context(format!("the host counted:\n{}", counts.join("\n")))
        })
}

/// Latency one at a time, then throughput with several publishers.
async fn measure_once(
    address: SocketAddr,
    sink: &Sink,
    latency_messages: usize,
    throughput_messages: usize,
) -> anyhow::Result<Measured> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{address}/ingest");
    // Warm-up: the first deliveries pay for connections and caches, and
    // a NATS subscription may not have reached the server yet (what is
    // published before it is lost, so a lost one is sent again).
    let deadline = Instant::now() + Duration::from_secs(60);
    for seq in 0..20 {
        loop {
            let before = sink.count().await;
            publish(&client, &url, seq).await?;
            if sink
                .wait_for(before + 1, Duration::from_secs(1))
                .await
                .is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the warm-up messages did not reach the sink within 60 s");
            }
        }
    }
    sink.reset().await;
    for seq in 0..latency_messages {
        publish(&client, &url, seq).await?;
        sink.wait_for(seq + 1, Duration::from_secs(30)).await?;
    }
    let mut latencies = sink.received.lock().await.latencies.clone();
    latencies.sort();
    sink.reset().await;

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..PUBLISHERS {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        publishers.spawn(async move {
            let mut refused = 0;
            loop {
                let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seq >= throughput_messages {
                    return Ok::<u64, anyhow::Error>(refused);
                }
                refused += publish(&client, &url, seq).await?;
            }
        });
    }
    let mut refused = 0;
    while let Some(done) = publishers.join_next().await {
        refused += done??;
    }
    sink.wait_for(throughput_messages, Duration::from_secs(300))
        .await?;
    let last = sink.received.lock().await.last.unwrap_or_else(Instant::now);
    let elapsed = last.duration_since(started);
    Ok(Measured {
        per_second: throughput_messages as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        refused,
    })
}

/// The native consumer: a NATS subscription in this process that posts
/// every message to the sink, `CONCURRENCY` at once.
fn native_consumer(nats: &Nats, sink: &Sink) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use serverless_messaging::nats::{NatsClient, NatsOptions};
    let client = NatsClient::start(NatsOptions {
        address: format!("127.0.0.1:{}", nats.port),
        prefix: serverless_messaging::Topic::new(PREFIX)?,
        user: None,
        token: None,
        max_payload: 1 << 20,
        ping_interval: serverless_messaging::nats::client::DEFAULT_PING_INTERVAL,
    });
    let mut messages = client.subscribe(
        serverless_messaging::TopicPattern::new("bench")?,
        QUEUE.parse()?,
    );
    let sink_url = format!("http://{}/sink", sink.address);
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    Ok(tokio::spawn(async move {
        // The client lives as long as the consumer.
        let _client = client;
        while let Some(message) = messages.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (http, url) = (http.clone(), sink_url.clone());
            tokio::spawn(async move {
                let request = http::Request::post(&url)
                    .header("content-type", "text/plain")
                    .body(Full::new(message.data.clone()));
                if let Ok(request) = request
                    && let Ok(response) = http.request(request).await
                {
                    let _ = response.into_body().collect().await;
                }
                drop(slot);
            });
        }
    }))
}

/// Runs the three setups and writes the report.
pub(crate) async fn messaging(
    host: &Path,
    latency_messages: usize,
    throughput_messages: usize,
    out: &Path,
) -> anyhow::Result<()> {
    crate::host::pin_this_process_to_first_core();
    let sink = Sink::start().await?;
    let mut rows = Vec::new();

    let embedded = RunningHost::start_with_admin(
        host,
        &config(&sink, true),
        &[
            "--allow-http",
            &format!("http://{}", sink.address),
            "--messaging-queue",
            QUEUE,
        ],
    )?;
    rows.push((
        "wasm subscription, embedded broker",
        measure(&embedded, &sink, latency_messages, throughput_messages).await?,
    ));
    drop(embedded);
    sink.reset().await;

    let nats = Nats::start()?;
    let url = nats.url();
    let allow = format!("http://{}", sink.address);
    let nats_flags = [
        "--messaging",
        url.as_str(),
        "--messaging-prefix",
        PREFIX,
        "--messaging-queue",
        QUEUE,
    ];
    let on_nats = RunningHost::start_with_admin(
        host,
        &config(&sink, true),
        &[nats_flags.as_slice(), &["--allow-http", allow.as_str()]].concat(),
    )?;
    wait_for_nats(on_nats.address).await?;
    rows.push((
        "wasm subscription, NATS",
        measure(&on_nats, &sink, latency_messages, throughput_messages).await?,
    ));
    drop(on_nats);
    sink.reset().await;

    let publisher = RunningHost::start_with_admin(host, &config(&sink, false), &nats_flags)?;
    wait_for_nats(publisher.address).await?;
    let consumer = native_consumer(&nats, &sink)?;
    rows.push((
        "native Rust consumer, NATS (baseline)",
        measure(&publisher, &sink, latency_messages, throughput_messages).await?,
    ));
    consumer.abort();
    drop(publisher);

    let mut text = format!(
        "# Messaging: publish to handler\n\n{}- {latency_messages} messages one at a time for latency, {throughput_messages} from {PUBLISHERS} publishers at once for throughput; deliveries {CONCURRENCY} at a time\n- `just bench-messaging` wrote this; the methodology is in crates/loadgen/src/messaging.rs\n\n",
        crate::report::machine()
    );
    text.push_str("| setup | messages/s | p50 publish-to-handler | p99 | publishes refused (retried) |\n|---|---|---|---|---|\n");
    for (name, measured) in &rows {
        let _ = writeln!(
            text,
            "| {name} | {:.0} | {} | {} | {} |",
            measured.per_second,
            crate::report::micros(measured.p50),
            crate::report::micros(measured.p99),
            measured.refused
        );
    }
    text.push_str("\nEach wasm delivery is a fresh instance of the gateway sample (`guests/rust/gateway`) that posts the message to the sink through wasi:http; the native consumer does the same post with hyper from a NATS subscription made with the host's own NATS client.\n");
    crate::report::write_keeping_findings(out, text)
}

/// Waits until the host's publishes reach NATS (it connects in the
/// background).
async fn wait_for_nats(address: SocketAddr) -> anyhow::Result<()> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = http::Request::post(format!("http://{address}/ingest"))
            .body(Full::new(Bytes::from_static(b"warm-up")))?;
        let response = client.request(request).await?;
        if response.status() == 202 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the host did not reach NATS within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
