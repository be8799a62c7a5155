//! A small publish/subscribe broker, the hub of the server-side-wasm
//! pipeline: a line protocol on the address given as its first argument.
//!
//! ```text
//! SUB topic            -> OK            then every message on `topic`
//!                                       arrives as `MSG topic payload`
//! PUB topic payload    -> OK            the message goes to every subscriber
//! anything else        -> ERR reason
//! ```
//!
//! One thread serves every client with non-blocking sockets. A subscriber
//! that falls more than [`MAX_BACKLOG`] bytes behind is disconnected
//! rather than let the broker's memory grow.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// How far behind a subscriber may fall before it is disconnected.
const MAX_BACKLOG: usize = 1 << 20;

/// The longest line a client may send.
const MAX_LINE: usize = 64 * 1024;

/// How long the broker sleeps when nothing happened.
const IDLE: Duration = Duration::from_millis(2);

/// One connected client.
struct Client {
    stream: TcpStream,
    /// What it sent that is not a whole line yet.
    unread: Vec<u8>,
    /// What is waiting to be written to it.
    outbox: Vec<u8>,
    topics: Vec<String>,
    /// Set when it has gone (or must go).
    closed: bool,
}

fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = listener.set_nonblocking(true) {
        eprintln!("cannot make the listener non-blocking: {error}");
        std::process::exit(1);
    }
    println!("broker listening on {address}");
    let mut clients: Vec<Client> = Vec::new();
    loop {
        let mut busy = false;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    if let Err(error) = stream.set_nonblocking(true) {
                        eprintln!("dropping a client: {error}");
                        continue;
                    }
                    clients.push(Client {
                        stream,
                        unread: Vec::new(),
                        outbox: Vec::new(),
                        topics: Vec::new(),
                        closed: false,
                    });
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => {
                    eprintln!("accept failed: {error}");
                    break;
                }
            }
        }
        let mut published: Vec<(String, String)> = Vec::new();
        for client in &mut clients {
            busy |= read_commands(client, &mut published);
        }
        for (topic, payload) in published {
            let line = format!("MSG {topic} {payload}\n");
            for client in &mut clients {
                if client.topics.contains(&topic) {
                    client.outbox.extend_from_slice(line.as_bytes());
                }
            }
        }
        for client in &mut clients {
            busy |= write_outbox(client);
        }
        clients.retain(|client| !client.closed);
        if !busy {
            std::thread::sleep(IDLE);
        }
    }
}

/// Reads what `client` sent and answers each whole line; publications are
/// added to `published`. Whether anything was read.
fn read_commands(client: &mut Client, published: &mut Vec<(String, String)>) -> bool {
    let mut buffer = [0u8; 4096];
    let mut read_any = false;
    loop {
        match client.stream.read(&mut buffer) {
            Ok(0) => {
                client.closed = true;
                break;
            }
            Ok(count) => {
                read_any = true;
                client.unread.extend_from_slice(&buffer[..count]);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                client.closed = true;
                break;
            }
        }
    }
    while let Some(end) = client.unread.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = client.unread.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let answer = command(client, line.trim_end_matches(['\r', '\n']), published);
        client.outbox.extend_from_slice(answer.as_bytes());
    }
    if client.unread.len() > MAX_LINE {
        client.outbox.extend_from_slice(b"ERR line too long\n");
        client.closed = true;
    }
    read_any
}

/// The answer to one command line.
fn command(client: &mut Client, line: &str, published: &mut Vec<(String, String)>) -> String {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("SUB"), Some(topic), None) if valid_topic(topic) => {
            if !client.topics.iter().any(|t| t == topic) {
                client.topics.push(topic.to_owned());
            }
            "OK\n".to_owned()
        }
        (Some("PUB"), Some(topic), Some(payload)) if valid_topic(topic) => {
            published.push((topic.to_owned(), payload.to_owned()));
            "OK\n".to_owned()
        }
        (Some("SUB" | "PUB"), _, _) => {
            "ERR a topic is letters, digits, `.`, `_` or `-`\n".to_owned()
        }
        _ => "ERR unknown command; use SUB topic or PUB topic payload\n".to_owned(),
    }
}

/// Whether `topic` is a name the protocol accepts.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Writes what waits for `client`; whether anything was written.
fn write_outbox(client: &mut Client) -> bool {
    if client.outbox.len() > MAX_BACKLOG {
        eprintln!(
            "disconnecting a subscriber that fell {} bytes behind",
            client.outbox.len()
        );
        client.closed = true;
        return false;
    }
    let mut wrote = false;
    while !client.outbox.is_empty() {
        match client.stream.write(&client.outbox) {
            Ok(0) => {
                client.closed = true;
                break;
            }
            Ok(count) => {
                wrote = true;
                client.outbox.drain(..count);
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                client.closed = true;
                break;
            }
        }
    }
    wrote
}
