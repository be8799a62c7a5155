//! The NATS client protocol, for the broker that several hosts share
//! (`host serve --messaging nats://...`, issue 22): the operations a
//! client sends and a server answers with, encoded and decoded here, with
//! no I/O. The connection, reconnects, subject prefixes and credentials
//! are built on it.
//!
//! - [`codec`]: encoding client operations and decoding server ones from
//!   a byte stream that arrives in pieces.
//! - [`client`]: a lasting connection: subscriptions kept across
//!   reconnects, publishes refused while it is down.
//!
//! NATS's own client crate is not used: its dependency tree would bring
//! second versions of crates this workspace already has (rand, getrandom).

pub mod client;
pub mod codec;

pub use client::{NatsClient, NatsError, NatsOptions, NatsSubscription};
