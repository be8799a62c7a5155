//! `wasi:messaging/producer`: `send`, under the entry's `publish` rules.
//! A send waits while a subscriber's queue is full, up to the broker's
//! publish timeout, and then fails with `timeout`; on NATS it fails at
//! once with `connection` while the server is unreachable.

use wasmtime::component::Resource;

use super::{Client, GuestMessage, MessagingView};
use crate::bindings::producer::Host;
use crate::bindings::types::Error;

impl Host for MessagingView<'_> {
    async fn send(
        &mut self,
        client: Resource<Client>,
        topic: String,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Result<(), Error>> {
        // The message is the host's now, sent or not.
        let message = self.table.delete(message)?;
        self.hold(message.held(), 0)?;
        if let Err(error) = self.open_client(&client)? {
            return Ok(Err(error));
        }
        let size = message.size();
        let topic = match self.check(serverless_messaging::SendKind::Send, &topic, size) {
            Ok(topic) => topic,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.publish(message.outgoing(topic)).await)
    }
}
