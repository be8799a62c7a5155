//! A message as the host carries it: the topic, the bytes, an optional
//! content type and metadata, an id for the logs and an optional topic
//! for replies.

use bytes::Bytes;

use crate::Topic;

/// A message's id, unique within one host run: it names the message in
/// access lines and in the log of a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "msg-{}", self.0)
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published on.
    pub topic: Topic,
    /// Its bytes.
    pub data: Bytes,
    /// What the bytes are, when the publisher said.
    pub content_type: Option<String>,
    /// Key-value pairs the publisher attached, in its order.
    pub metadata: Vec<(String, String)>,
    /// Where replies go, for request-reply.
    pub reply_to: Option<Topic>,
}

impl Message {
    /// A message with only a topic and bytes.
    pub fn new(topic: Topic, data: impl Into<Bytes>) -> Message {
        Message {
            topic,
            data: data.into(),
            content_type: None,
            metadata: Vec::new(),
            reply_to: None,
        }
    }
}
