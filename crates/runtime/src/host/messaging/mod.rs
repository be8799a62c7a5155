//! `wasi:messaging` for every component the host runs (handlers,
//! `wasi:http` components, services and subscription handlers), one file
//! per interface: `types.rs` (clients and messages), `producer.rs`
//! (`send`), `request_reply.rs` (`request`, `reply`). The one policy
//! decision is [`serverless_messaging::MessagingPolicy::check_send`];
//! every refusal is logged with the app's tags and counted.

mod producer;
mod request_reply;
mod types;

use std::sync::Arc;
use std::time::Duration;

use serverless_messaging::{Broker, Message, MessagingPolicy, PublishError, Topic};
use wasmtime::component::{HasData, ResourceTable};

use crate::bindings::types::Error;
use crate::denials::{Denials, DeniedVia};
use crate::state::InstanceState;
use crate::stdio::GuestOutput;

/// The most message bytes (data, content type and metadata) one instance
/// may hold in messages it made or received, so that a guest cannot grow
/// the host's memory by making messages it never sends.
pub(crate) const MOST_BYTES_HELD: usize = 64 << 20;

/// A guest's connection to the exchange.
pub struct Client {
    name: String,
    open: bool,
}

/// A message as a guest holds it.
#[derive(Clone)]
pub struct GuestMessage {
    /// The topic it arrived on; `None` for one the guest made.
    topic: Option<Topic>,
    data: Vec<u8>,
    content_type: Option<String>,
    metadata: Vec<(String, String)>,
    /// Where replies to it go, when it came with a request.
    reply_to: Option<Topic>,
}

impl GuestMessage {
    /// A message the host hands to a guest.
    pub(crate) fn received(message: &Message) -> GuestMessage {
        GuestMessage {
            topic: Some(message.topic.clone()),
            data: message.data.to_vec(),
            content_type: message.content_type.clone(),
            metadata: message.metadata.clone(),
            reply_to: message.reply_to.clone(),
        }
    }

    /// The bytes it holds in the host.
    fn held(&self) -> usize {
        self.data.len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self
                .metadata
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>()
    }

    /// Its size as `max_message_size` counts it: the bytes, the content
    /// type and the metadata's keys and values (what it holds).
    fn size(&self) -> usize {
        self.held()
    }

    /// The message to publish on `topic`.
    fn outgoing(&self, topic: Topic) -> Message {
        Message {
            topic,
            data: self.data.clone().into(),
            content_type: self.content_type.clone(),
            metadata: self.metadata.clone(),
            reply_to: None,
        }
    }
}

/// A request's options.
#[derive(Default)]
pub struct RequestOptions {
    timeout: Option<Duration>,
    expected_replies: Option<u32>,
}

/// What one instance's messaging calls share.
pub(crate) struct MessagingCtx {
    /// The exchange; `None` where the host runs without one (`host run`).
    pub(crate) broker: Option<Broker>,
    /// The entry's rules and limits, shared by its instances (the rate is
    /// the app's, not one instance's).
    pub(crate) policy: Arc<MessagingPolicy>,
    /// How many message bytes the instance holds.
    held: usize,
}

impl MessagingCtx {
    /// A context with nothing held.
    pub(crate) fn new(broker: Option<Broker>, policy: Arc<MessagingPolicy>) -> MessagingCtx {
        MessagingCtx {
            broker,
            policy,
            held: 0,
        }
    }
}

/// What the messaging interfaces see of a store.
pub(crate) struct MessagingView<'a> {
    ctx: &'a mut MessagingCtx,
    output: &'a GuestOutput,
    denials: &'a Denials,
    table: &'a mut ResourceTable,
}

/// The linker's handle on [`MessagingView`].
pub(crate) struct Messaging;

impl HasData for Messaging {
    type Data<'a> = MessagingView<'a>;
}

impl InstanceState {
    /// The view the messaging interfaces are implemented on.
    pub(crate) fn messaging(&mut self) -> MessagingView<'_> {
        MessagingView {
            ctx: &mut self.messaging,
            output: &self.output,
            denials: &self.tcp.denials,
            table: &mut self.table,
        }
    }
}

impl InstanceState {
    /// Puts a received message in the table for the guest, counted
    /// against what the instance may hold.
    pub(crate) fn give_message(
        &mut self,
        message: GuestMessage,
    ) -> wasmtime::Result<wasmtime::component::Resource<GuestMessage>> {
        self.messaging().hold(0, message.held())?;
        Ok(self.table.push(message)?)
    }
}

/// Adds `wasi:messaging`'s imports to `linker`.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<InstanceState>,
) -> wasmtime::Result<()> {
    crate::bindings::MessagingRequestReply::add_to_linker::<_, Messaging>(
        linker,
        InstanceState::messaging,
    )
}

impl MessagingView<'_> {
    /// Accounts for `more` bytes held, or traps past [`MOST_BYTES_HELD`].
    fn hold(&mut self, less: usize, more: usize) -> wasmtime::Result<()> {
        let held = self.ctx.held.saturating_sub(less).saturating_add(more);
        if held > MOST_BYTES_HELD {
            return Err(wasmtime::Error::msg(format!(
                "the instance holds more than {} MiB in wasi:messaging messages; send or drop messages before making more",
                MOST_BYTES_HELD >> 20
            )));
        }
        self.ctx.held = held;
        Ok(())
    }

    /// The broker, or the error for a host without one.
    fn broker(&self) -> Result<Broker, Error> {
        self.ctx.broker.clone().ok_or_else(|| {
            Error::Connection(
                "this host runs without a message broker (`host run`); use `host serve`".to_owned(),
            )
        })
    }

    /// Checks a send and logs a refusal; `Ok` holds the checked topic.
    fn check(
        &mut self,
        kind: serverless_messaging::SendKind,
        topic: &str,
        size: usize,
    ) -> Result<Topic, Error> {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.ctx
            .policy
            .check_send(kind, topic, size)
            .map_err(|refusal| {
                let message = refusal.to_string();
                if refusal.is_permission() {
                    self.denials.count(DeniedVia::Messaging);
                }
                self.output.host_note(
                    tracing::Level::WARN,
                    "messaging",
                    &format!("refused: {message}"),
                );
                if refusal.is_permission() {
                    Error::PermissionDenied(message)
                } else {
                    Error::Other(message)
                }
            })
    }

    /// Publishes `message`, logging a failure.
    async fn publish(&mut self, message: Message) -> Result<(), Error> {
        let broker = self.broker()?;
        let topic = message.topic.clone();
        match broker.publish(message).await {
            Ok(_) => Ok(()),
            Err(error) => {
                self.output.host_note(
                    tracing::Level::WARN,
                    "messaging",
                    &format!("a message on topic `{topic}` was not sent: {error}"),
                );
                Err(match error {
                    PublishError::Full { .. } => Error::Timeout,
                    PublishError::Unavailable(why) => Error::Connection(why),
                    PublishError::TooLarge(why) => Error::Other(why),
                })
            }
        }
    }

    /// The client, or the error for one that was disconnected.
    fn open_client(
        &self,
        client: &wasmtime::component::Resource<Client>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let client = self.table.get(client)?;
        Ok(if client.open {
            Ok(())
        } else {
            Err(Error::Connection(format!(
                "client `{}` was disconnected",
                client.name
            )))
        })
    }
}
