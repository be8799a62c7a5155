//! A NATS connection that lasts: it connects, says who it is, keeps
//! the subscriptions, answers the server's pings, and after an outage
//! connects again (backing off from 100 ms to 5 s) and subscribes again.
//! While it is down, publishes fail at once with [`NatsError::Down`]:
//! nothing is queued out of sight. While it is up, at most
//! [`MAX_QUEUED_BYTES`] of publishes wait to be written; past that a
//! publish fails with [`NatsError::Busy`]. The client pings the server
//! every [`NatsOptions::ping_interval`] and takes two pings without an
//! answer as a dead connection, so a link that died without a word is
//! found within three intervals.
//!
//! Every subject is prefixed with the deployment's prefix (`prod.`), so
//! that two deployments on one NATS server do not mix; messages arrive
//! with their topic as the deployment named it, without the prefix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::codec::{ClientOp, Decoder, ServerOp, encode};
use crate::{Message, Topic, TopicPattern};

/// How the client reaches and names itself to the server.
#[derive(Clone)]
pub struct NatsOptions {
    /// `HOST:PORT` of the server.
    pub address: String,
    /// Put before every subject, with a `.`: one per deployment.
    pub prefix: Topic,
    /// A user and password, when the server wants them.
    pub user: Option<(String, String)>,
    /// A token, when the server wants one.
    pub token: Option<String>,
    /// The largest payload the client takes from the server.
    pub max_payload: usize,
    /// How often the client pings the server to learn that the
    /// connection still works.
    pub ping_interval: Duration,
}

/// The ping interval of a host: 20 s, as NATS clients commonly use.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);

/// The most publish bytes (payloads and headers) waiting to be written.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Why a publish or subscribe did not reach the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    /// The connection is down; the client is connecting again.
    #[error("the NATS server at {0} is not reachable now; the host is reconnecting")]
    Down(String),
    /// More than [`MAX_QUEUED_BYTES`] wait to be written to the server.
    #[error("the connection to the NATS server at {0} is not keeping up: {mib} MiB of messages wait to be written", mib = MAX_QUEUED_BYTES >> 20)]
    Busy(String),
    /// Larger than the server's `max_payload`, which would close the
    /// connection.
    #[error(
        "the message is {size} bytes, more than the {limit} bytes the NATS server takes (its max_payload)"
    )]
    TooLarge {
        /// The message's payload and headers.
        size: usize,
        /// The server's limit.
        limit: usize,
    },
}

struct Shared {
    options: NatsOptions,
    up: AtomicBool,
    /// Operations to write, in order.
    outgoing: mpsc::UnboundedSender<ClientOp>,
    subscriptions: Mutex<HashMap<u64, (TopicPattern, mpsc::Sender<Message>)>>,
    next_sid: AtomicU64,
    /// Bytes of the publishes in `outgoing`.
    queued: std::sync::atomic::AtomicUsize,
    /// The largest message the server takes (its INFO's `max_payload`):
    /// a larger one would make it close the connection.
    server_max_payload: std::sync::atomic::AtomicUsize,
    /// Messages the server delivered that found their subscription's
    /// queue full, by topic.
    overflowed: crate::per_topic::PerTopic<u64>,
}

/// The bytes a publish holds while it waits to be written: its payload
/// and, as HPUB writes them, its headers (`NATS/1.0`, a line per header,
/// an empty line), which the server's `max_payload` counts too.
fn queued_size(op: &ClientOp) -> usize {
    match op {
        ClientOp::Publish {
            headers, payload, ..
        } => {
            let block = if headers.is_empty() {
                0
            } else {
                "NATS/1.0\r\n\r\n".len()
                    + headers
                        .iter()
                        .map(|(name, value)| name.len() + ": ".len() + value.len() + "\r\n".len())
                        .sum::<usize>()
            };
            payload.len() + block
        }
        _ => 0,
    }
}

/// A lasting connection. Cloning it shares it.
#[derive(Clone)]
pub struct NatsClient {
    shared: Arc<Shared>,
}

fn prefixed(prefix: &Topic, name: &str) -> String {
    format!("{prefix}.{name}")
}

impl NatsClient {
    /// Starts connecting in the background; [`NatsClient::is_up`] tells
    /// when it is.
    pub fn start(options: NatsOptions) -> NatsClient {
        let (outgoing, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            options,
            up: AtomicBool::new(false),
            outgoing,
            subscriptions: Mutex::new(HashMap::new()),
            next_sid: AtomicU64::new(1),
            queued: std::sync::atomic::AtomicUsize::new(0),
            // NATS's default, until the server says.
            server_max_payload: std::sync::atomic::AtomicUsize::new(1 << 20),
            overflowed: crate::per_topic::PerTopic::default(),
        });
        tokio::spawn(run(shared.clone(), receiver));
        NatsClient { shared }
    }

    /// Messages the server delivered that found their subscription's
    /// queue full and were dropped (NATS delivers at most once), by topic.
    pub fn overflowed(&self) -> Vec<(String, u64)> {
        self.shared.overflowed.snapshot()
    }

    /// Whether the connection is up now.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Sends `message` on its topic (prefixed).
    pub fn publish(&self, message: &Message) -> Result<(), NatsError> {
        if !self.is_up() {
            return Err(NatsError::Down(self.shared.options.address.clone()));
        }
        let mut headers = message.metadata.clone();
        if let Some(content_type) = &message.content_type {
            headers.push(("content-type".to_owned(), content_type.clone()));
        }
        let op = ClientOp::Publish {
            subject: prefixed(&self.shared.options.prefix, message.topic.as_str()),
            reply_to: message
                .reply_to
                .as_ref()
                .map(|topic| prefixed(&self.shared.options.prefix, topic.as_str())),
            headers,
            payload: message.data.clone(),
        };
        let size = queued_size(&op);
        let limit = self.shared.server_max_payload.load(Ordering::SeqCst);
        if size > limit {
            return Err(NatsError::TooLarge { size, limit });
        }
        let before = self.shared.queued.fetch_add(size, Ordering::SeqCst);
        if before + size > MAX_QUEUED_BYTES {
            self.shared.queued.fetch_sub(size, Ordering::SeqCst);
            return Err(NatsError::Busy(self.shared.options.address.clone()));
        }
        self.shared.outgoing.send(op).map_err(|_| {
            self.shared.queued.fetch_sub(size, Ordering::SeqCst);
            NatsError::Down(self.shared.options.address.clone())
        })
    }

    /// Subscribes to `pattern` (prefixed), now and after every reconnect;
    /// messages arrive on the receiver, `capacity` at most waiting (more
    /// are dropped, as NATS drops for a slow consumer).
    pub fn subscribe(&self, pattern: TopicPattern, capacity: usize) -> NatsSubscription {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let sid = self.shared.next_sid.fetch_add(1, Ordering::Relaxed);
        let subject = prefixed(&self.shared.options.prefix, pattern.as_str());
        // Under the lock that a connection takes to copy the list and
        // go up: a subscription is either in its copy or sent now.
        let mut subscriptions = self
            .shared
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscriptions.insert(sid, (pattern, sender));
        if self.is_up() {
            let _ = self
                .shared
                .outgoing
                .send(ClientOp::Subscribe { subject, sid });
        }
        drop(subscriptions);
        NatsSubscription {
            receiver,
            sid,
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// One subscription's messages. Dropping it unsubscribes at once (a
/// request's reply inbox is used once), on the server too.
pub struct NatsSubscription {
    receiver: mpsc::Receiver<Message>,
    sid: u64,
    shared: std::sync::Weak<Shared>,
}

impl NatsSubscription {
    /// The next message; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }

    /// A message that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.receiver.try_recv().ok()
    }

    /// Counts a message of `topic` that arrived but that its subscriber
    /// will never take, as an overflow of the client.
    pub fn count_lost(&self, topic: &Topic) {
        if let Some(shared) = self.shared.upgrade() {
            shared.overflowed.count(topic, |lost| *lost += 1);
        }
    }

    /// Takes the messages that have arrived and nobody will take (the
    /// subscriber is going), counting and logging them.
    pub fn discard(&mut self) {
        self.receiver.close();
        let mut lost = 0;
        while let Ok(message) = self.receiver.try_recv() {
            self.count_lost(&message.topic);
            lost += 1;
        }
        if lost > 0 {
            tracing::warn!(
                "NATS: {lost} messages that had arrived for a subscription that stopped were dropped"
            );
        }
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let removed = shared
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.sid);
        // A connection that comes up later does not know it; one that is
        // up now is told.
        if removed.is_some() && shared.up.load(Ordering::SeqCst) {
            let _ = shared
                .outgoing
                .send(ClientOp::Unsubscribe { sid: self.sid });
        }
    }
}

/// The `max_payload` an INFO line announces, if it says.
fn announced_max_payload(info: &str) -> Option<usize> {
    let at = info.find("\"max_payload\"")? + "\"max_payload\"".len();
    let rest = info[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The options the client says at CONNECT, as JSON (written here, so
/// that the crate needs no JSON library).
fn connect_json(options: &NatsOptions) -> String {
    fn quoted(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    let mut json = String::from(
        "{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":false,\"lang\":\"rust\",\"name\":\"serverless-wasm\"",
    );
    if let Some((user, pass)) = &options.user {
        json.push_str(&format!(
            ",\"user\":{},\"pass\":{}",
            quoted(user),
            quoted(pass)
        ));
    }
    if let Some(token) = &options.token {
        json.push_str(&format!(",\"auth_token\":{}", quoted(token)));
    }
    json.push('}');
    json
}

/// Connects, serves the connection until it breaks, and starts again.
async fn run(shared: Arc<Shared>, mut outgoing: mpsc::UnboundedReceiver<ClientOp>) {
    let first = Duration::from_millis(100);
    let mut backoff = first;
    loop {
        match serve(&shared, &mut outgoing).await {
            Ok(()) => return,
            Err(reason) => {
                if shared.up.swap(false, Ordering::SeqCst) {
                    // It was up: the next outage starts its backoff anew.
                    backoff = first;
                    tracing::warn!(server = %shared.options.address, "NATS connection lost: {reason}; reconnecting");
                } else {
                    tracing::debug!(server = %shared.options.address, "NATS connect failed: {reason}");
                }
            }
        }
        // What was queued for the broken connection is dropped: its
        // publishers were told the send went out, and NATS itself is
        // at-most-once.
        while let Ok(op) = outgoing.try_recv() {
            shared.queued.fetch_sub(queued_size(&op), Ordering::SeqCst);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life; `Ok` when the client was dropped.
async fn serve(
    shared: &Arc<Shared>,
    outgoing: &mut mpsc::UnboundedReceiver<ClientOp>,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(&shared.options.address)
        .await
        .map_err(|error| error.to_string())?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    let decoder = Decoder::new(shared.options.max_payload);
    let mut input = BytesMut::with_capacity(16 * 1024);
    // The server speaks first.
    loop {
        if let Some(op) = decoder.decode(&mut input).map_err(|e| e.to_string())? {
            match op {
                ServerOp::Info(info) => {
                    if let Some(limit) = announced_max_payload(&info) {
                        shared.server_max_payload.store(limit, Ordering::SeqCst);
                    }
                    break;
                }
                other => return Err(format!("the server began with {other:?}, not INFO")),
            }
        }
        if stream
            .read_buf(&mut input)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("the server closed the connection".to_owned());
        }
    }
    let mut out = BytesMut::new();
    encode(&ClientOp::Connect(connect_json(&shared.options)), &mut out);
    // A PING after CONNECT: its PONG (or an -ERR) says whether the
    // server took us.
    encode(&ClientOp::Ping, &mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut accepted = false;
    // Pings sent that the server has not answered yet.
    let mut unanswered: u32 = 0;
    let mut pings = tokio::time::interval(shared.options.ping_interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once; the CONNECT's own PING stands for it.
    pings.tick().await;
    loop {
        tokio::select! {
            _ = pings.tick() => {
                if unanswered >= 2 {
                    return Err(format!(
                        "the server answered none of the last {unanswered} pings ({:?} apart)",
                        shared.options.ping_interval
                    ));
                }
                unanswered += 1;
                let mut ping = BytesMut::new();
                encode(&ClientOp::Ping, &mut ping);
                write_within(&mut stream, &ping, shared.options.ping_interval).await?;
            }
            read = stream.read_buf(&mut input) => {
                if read.map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed the connection".to_owned());
                }
                while let Some(op) = decoder.decode(&mut input).map_err(|e| e.to_string())? {
                    match op {
                        ServerOp::Ping => {
                            let mut pong = BytesMut::new();
                            encode(&ClientOp::Pong, &mut pong);
                            stream.write_all(&pong).await.map_err(|e| e.to_string())?;
                        }
                        ServerOp::Pong if !accepted => {
                            accepted = true;
                            // The subscriptions, copied and sent under the
                            // lock that `subscribe` takes, then up: none
                            // is missed, none sent twice.
                            let mut subscribe = BytesMut::new();
                            {
                                let subscriptions = shared
                                    .subscriptions
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                for (sid, (pattern, _)) in subscriptions.iter() {
                                    let subject = prefixed(&shared.options.prefix, pattern.as_str());
                                    encode(&ClientOp::Subscribe { subject, sid: *sid }, &mut subscribe);
                                }
                                shared.up.store(true, Ordering::SeqCst);
                            }
                            stream.write_all(&subscribe).await.map_err(|e| e.to_string())?;
                            tracing::info!(server = %shared.options.address, prefix = %shared.options.prefix, "NATS connected");
                        }
                        // A permission refused on one subject leaves the
                        // connection as it is; any other error ends it.
                        ServerOp::Err(message) if message.to_ascii_lowercase().starts_with("permissions violation") => {
                            tracing::warn!(server = %shared.options.address, "NATS refused: {message}");
                        }
                        ServerOp::Err(message) => return Err(format!("the server said: {message}")),
                        ServerOp::Message { subject, sid, reply_to, headers, payload } => {
                            deliver(shared, &subject, sid, reply_to.as_deref(), headers, payload);
                        }
                        ServerOp::Pong => unanswered = 0,
                        ServerOp::Ok | ServerOp::Info(_) => {}
                    }
                }
            }
            op = outgoing.recv() => {
                let Some(op) = op else { return Ok(()) };
                let mut buffer = BytesMut::new();
                let mut written = queued_size(&op);
                encode(&op, &mut buffer);
                // Whatever else is queued goes in the same write.
                while let Ok(op) = outgoing.try_recv() {
                    written += queued_size(&op);
                    encode(&op, &mut buffer);
                }
                shared.queued.fetch_sub(written, Ordering::SeqCst);
                write_within(&mut stream, &buffer, shared.options.ping_interval).await?;
            }
        }
    }
}

/// Writes `bytes`, giving the connection up when the server takes none
/// of them for two ping intervals (a peer gone without a word, its
/// socket buffer full), which pings alone would not notice while the
/// write waits.
async fn write_within(
    stream: &mut TcpStream,
    bytes: &[u8],
    ping_interval: Duration,
) -> Result<(), String> {
    let limit = ping_interval.saturating_mul(2);
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(written) => written.map_err(|error| error.to_string()),
        Err(_) => Err(format!("the server took no data for {limit:?}")),
    }
}

/// Hands a message to its subscription, without the prefix.
fn deliver(
    shared: &Shared,
    subject: &str,
    sid: u64,
    reply_to: Option<&str>,
    mut headers: Vec<(String, String)>,
    payload: bytes::Bytes,
) {
    let subscriptions = shared
        .subscriptions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some((pattern, sender)) = subscriptions.get(&sid) else {
        return;
    };
    if sender.is_closed() {
        // Its subscriber is gone: tell the server, and forget it.
        drop(subscriptions);
        shared
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&sid);
        let _ = shared.outgoing.send(ClientOp::Unsubscribe { sid });
        return;
    }
    let unprefixed = |subject: &str| {
        subject
            .strip_prefix(shared.options.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|name| Topic::new(name).ok())
    };
    let Some(topic) = unprefixed(subject) else {
        tracing::warn!(
            subject,
            "NATS: a message on a subject outside this deployment's prefix was dropped"
        );
        return;
    };
    let content_type = headers
        .iter()
        .position(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|index| headers.remove(index).1);
    let mut message = Message::new(topic, payload);
    message.content_type = content_type;
    message.metadata = headers;
    // A reply topic outside the prefix is not this deployment's: the
    // message arrives, without a way to answer it.
    message.reply_to = reply_to.and_then(unprefixed);
    let topic = message.topic.clone();
    // The server's `>` reaches the host's reply inboxes too; the pattern,
    // as the host reads it, does not.
    if !pattern.matches(&topic) {
        return;
    }
    if sender.try_send(message).is_err() {
        shared.overflowed.count(&topic, |dropped| *dropped += 1);
        tracing::warn!(
            subject,
            "NATS: a subscriber is not keeping up; a message was dropped"
        );
    }
}
