//! `wasi:messaging/request-reply`.
//!
//! `request` subscribes a private inbox (`_inbox.` and 32 random hex
//! digits, a host topic no guest can name), publishes the message with
//! that inbox as its reply topic, and collects replies: it returns once
//! the expected number came (1 unless the options say), or when the
//! options' timeout passes, with the replies so far or, when there are
//! none, `timeout`. Without a timeout in the options it waits up to
//! [`DEFAULT_REQUEST_TIMEOUT`] (a handler's own `timeout` may end it
//! first). The request needs a `publish` rule for its topic; replies need
//! none. Each reply counts against what the instance may hold as it
//! arrives.
//!
//! `reply` publishes on the reply topic of the message it answers (the
//! requester's inbox); a message that came without one gets `other`.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use serverless_messaging::{SendKind, Topic, TopicPattern};
use wasmtime::component::Resource;

use super::{Client, GuestMessage, MessagingView, RequestOptions};
use crate::bindings::request_reply::{Host, HostRequestOptions};
use crate::bindings::types::Error;

/// The most replies one request collects.
const MOST_REPLIES: u32 = 1000;

/// How long a request waits for replies when its options set no timeout.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh inbox topic: 128 random bits, so that hosts sharing a NATS
/// server never pick the same one.
fn new_inbox() -> Topic {
    let random = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos()),
        );
        hasher.finish()
    };
    let name = format!("_inbox.{:016x}{:016x}", random(), random());
    Topic::new(&name).unwrap_or_else(|_| unreachable!("hex digits make a valid topic"))
}

impl Host for MessagingView<'_> {
    async fn request(
        &mut self,
        client: Resource<Client>,
        topic: String,
        message: Resource<GuestMessage>,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<Result<Vec<Resource<GuestMessage>>, Error>> {
        let options = match options {
            Some(options) => self.table.delete(options)?,
            None => RequestOptions::default(),
        };
        if let Err(error) = self.open_client(&client)? {
            return Ok(Err(error));
        }
        let request = self.table.get(&message)?.clone();
        let size = request.size();
        let topic = match self.check(SendKind::Request, &topic, size) {
            Ok(topic) => topic,
            Err(error) => return Ok(Err(error)),
        };
        let broker = match self.broker() {
            Ok(broker) => broker,
            Err(error) => return Ok(Err(error)),
        };
        let inbox = new_inbox();
        let pattern = TopicPattern::new(inbox.as_str())
            .unwrap_or_else(|_| unreachable!("a topic is a pattern"));
        let mut replies_in =
            broker.subscribe(&format!("request:{}", self.ctx.policy.app()), pattern);
        let mut outgoing = request.outgoing(topic);
        outgoing.reply_to = Some(inbox);
        if let Err(error) = self.publish(outgoing).await {
            return Ok(Err(error));
        }
        let wanted = options.expected_replies.unwrap_or(1).clamp(1, MOST_REPLIES);
        let deadline =
            tokio::time::Instant::now() + options.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut handles = Vec::new();
        while handles.len() < wanted as usize {
            let Ok(Some(delivery)) = tokio::time::timeout_at(deadline, replies_in.next()).await
            else {
                break;
            };
            let reply = GuestMessage::received(&delivery.message);
            // Counted as it comes, so that replies cannot pile up in the
            // host past what the instance may hold.
            self.hold(0, reply.held())?;
            handles.push(self.table.push(reply)?);
        }
        if handles.is_empty() {
            return Ok(Err(Error::Timeout));
        }
        Ok(Ok(handles))
    }

    async fn reply(
        &mut self,
        reply_to: Resource<GuestMessage>,
        message: Resource<GuestMessage>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let answer = self.table.delete(message)?;
        self.hold(answer.held(), 0)?;
        let Some(inbox) = self.table.get(&reply_to)?.reply_to.clone() else {
            return Ok(Err(Error::Other(
                "the message has no reply topic: only a message sent with `request` can be answered"
                    .to_owned(),
            )));
        };
        let size = answer.size();
        let topic = match self.check(SendKind::Reply, inbox.as_str(), size) {
            Ok(topic) => topic,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self.publish(answer.outgoing(topic)).await)
    }
}

impl HostRequestOptions for MessagingView<'_> {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(
        &mut self,
        options: Resource<RequestOptions>,
        timeout_ms: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.timeout = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    async fn set_expected_replies(
        &mut self,
        options: Resource<RequestOptions>,
        expected_replies: u32,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&options)?.expected_replies = Some(expected_replies);
        Ok(())
    }

    async fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}
