//! Messaging for serverless-wasm: what `wasi:messaging` guests publish and
//! what triggers subscription handlers.
//!
//! - [`topic`]: topic names (`telemetry`, `sensors.kitchen`) and the
//!   patterns of `subscribe`, `publish` and `[[subscriptions]]`
//!   (`sensors.*`, `sensors.>`), with errors that say how to fix them.
//! - [`message`]: a message as the host carries it.
//! - [`broker`]: the embedded broker: in-process, one bounded queue per
//!   subscription, back-pressure to publishers when a queue is full.
//! - [`policy`]: which topics a guest may send on, and how much.
//! - [`retry`]: what happens after a handler fails a message: retries
//!   with backoff, then a dead-letter topic or a counted drop.
//! - [`nats`]: the NATS client protocol, for a broker shared by several
//!   hosts.
//!
//! Topics follow NATS subject syntax, so that the same names work on the
//! embedded broker and on a NATS server shared by several hosts.

pub mod broker;
pub mod message;
pub mod nats;
pub mod per_topic;
pub mod policy;
pub mod retry;
pub mod topic;

pub use broker::{Broker, BrokerSettings, Delivery, PublishError, Subscription, TopicCounts};
pub use message::{Message, MessageId};
pub use per_topic::{DeliveryCounts, PerTopic};
pub use policy::{MessagingPolicy, Refusal, SendKind};
pub use retry::{AfterFailure, RetryPolicy};
pub use topic::{Topic, TopicError, TopicPattern};
