//! Which topics a guest may send on, and how much: one decision function,
//! [`MessagingPolicy::check_send`], for `producer.send`, `request` and
//! `reply` alike.
//!
//! Evaluation order, first refusal wins:
//!
//! 1. the topic must be a valid topic name ([`crate::Topic`]);
//! 2. a topic whose first token starts with `_` belongs to the host
//!    (reply inboxes, `_inbox.*`): a guest reaches one only through
//!    `reply`, which answers the message it was given, never by naming it;
//!    and a reply goes only to an inbox, whatever reply topic the message
//!    came with (a NATS client elsewhere could name any subject);
//! 3. one of the entry's `publish` patterns must match the topic (deny by
//!    default: an entry without `publish` sends nothing);
//! 4. the message's size (bytes, content type and metadata keys and
//!    values) must be within the entry's `max_message_size`;
//! 5. the entry's `max_publish_rate` must have room: a token bucket that
//!    holds one second's worth and refills continuously.
//!
//! A refusal says which of these failed in words that name the app, the
//! topic and the rule to add; the host logs it and hands it to the guest
//! as the WIT error.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Topic, TopicPattern};

/// The default `max_message_size`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// What a send is for, in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// `producer.send`.
    Send,
    /// `request-reply.request`.
    Request,
    /// `request-reply.reply`, to the inbox of the message answered.
    Reply,
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a topic name.
    #[error("{0}")]
    BadTopic(String),
    /// A host topic, named by a guest.
    #[error(
        "topic `{topic}` belongs to the host (topics starting with `_` carry replies); answer a request with `reply`"
    )]
    Reserved {
        /// The topic.
        topic: String,
    },
    /// A reply to a message whose reply topic is not a reply inbox.
    #[error(
        "the message asks for replies on `{topic}`, which is not a reply inbox (`_inbox.*`); a reply goes only to the inbox of a request"
    )]
    NotAnInbox {
        /// The reply topic.
        topic: String,
    },
    /// No `publish` pattern matches.
    #[error("app `{app}` may not send on topic `{topic}`: {}", no_rule_hint(.rules, .topic))]
    NotAllowed {
        /// The app.
        app: String,
        /// The topic.
        topic: String,
        /// Its `publish` patterns.
        rules: Vec<String>,
    },
    /// Larger than `max_message_size`.
    #[error(
        "app `{app}` sent a message of {size} bytes on topic `{topic}`, over its max_message_size of {limit} bytes"
    )]
    TooLarge {
        /// The app.
        app: String,
        /// The topic.
        topic: String,
        /// The message's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Over `max_publish_rate`.
    #[error(
        "app `{app}` is over its max_publish_rate of {rate} messages a second; the message on topic `{topic}` was not sent"
    )]
    RateLimited {
        /// The app.
        app: String,
        /// The topic.
        topic: String,
        /// The rate.
        rate: u32,
    },
}

impl Refusal {
    /// Whether the app's rules refused it (`permission-denied` in the WIT),
    /// as opposed to its limits (`other`).
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            Refusal::Reserved { .. } | Refusal::NotAllowed { .. } | Refusal::NotAnInbox { .. }
        )
    }
}

fn no_rule_hint(rules: &[String], topic: &str) -> String {
    if rules.is_empty() {
        format!("its entry has no `publish` rules; add `publish = [\"{topic}\"]` to it")
    } else {
        format!(
            "no `publish` rule matches it (the rules are {}); add `\"{topic}\"` or a pattern that covers it",
            rules
                .iter()
                .map(|rule| format!("`{rule}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// One entry's messaging rules and limits.
#[derive(Debug)]
pub struct MessagingPolicy {
    app: String,
    publish: Vec<TopicPattern>,
    max_message_size: u64,
    rate: Option<RateLimit>,
}

#[derive(Debug)]
struct RateLimit {
    per_second: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl MessagingPolicy {
    /// The rules of app `app`: it may send on topics that `publish`
    /// matches, messages of at most `max_message_size` bytes, at most
    /// `max_publish_rate` a second when set.
    pub fn new(
        app: &str,
        publish: Vec<TopicPattern>,
        max_message_size: u64,
        max_publish_rate: Option<u32>,
    ) -> MessagingPolicy {
        MessagingPolicy {
            app: app.to_owned(),
            publish,
            max_message_size,
            rate: max_publish_rate.map(|per_second| RateLimit {
                per_second,
                bucket: Mutex::new(Bucket {
                    tokens: f64::from(per_second),
                    at: Instant::now(),
                }),
            }),
        }
    }

    /// An entry with no rules: it may send nothing.
    pub fn deny_all(app: &str) -> MessagingPolicy {
        MessagingPolicy::new(app, Vec::new(), DEFAULT_MAX_MESSAGE_SIZE, None)
    }

    /// The app the rules are for.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The largest message the app may send, in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.max_message_size
    }

    /// Decides whether a message of `size` bytes may go on `topic`; see
    /// the module's documentation for the order. A reply is sent to the
    /// inbox of the message it answers, which the guest did not name:
    /// steps 2 and 3 do not apply to it.
    pub fn check_send(&self, kind: SendKind, topic: &str, size: u64) -> Result<Topic, Refusal> {
        let checked = Topic::new(topic).map_err(|error| Refusal::BadTopic(error.to_string()))?;
        if kind == SendKind::Reply && !checked.is_inbox() {
            return Err(Refusal::NotAnInbox {
                topic: topic.to_owned(),
            });
        }
        if kind != SendKind::Reply {
            if topic.starts_with('_') {
                return Err(Refusal::Reserved {
                    topic: topic.to_owned(),
                });
            }
            if !self.publish.iter().any(|rule| rule.matches(&checked)) {
                return Err(Refusal::NotAllowed {
                    app: self.app.clone(),
                    topic: topic.to_owned(),
                    rules: self.publish.iter().map(|r| r.as_str().to_owned()).collect(),
                });
            }
        }
        if size > self.max_message_size {
            return Err(Refusal::TooLarge {
                app: self.app.clone(),
                topic: topic.to_owned(),
                size,
                limit: self.max_message_size,
            });
        }
        if let Some(rate) = &self.rate
            && !rate.take()
        {
            return Err(Refusal::RateLimited {
                app: self.app.clone(),
                topic: topic.to_owned(),
                rate: rate.per_second,
            });
        }
        Ok(checked)
    }
}

impl RateLimit {
    /// Takes one token if there is one.
    fn take(&self) -> bool {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed: Duration = now.saturating_duration_since(bucket.at);
        let full = f64::from(self.per_second);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * full).min(full);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(publish: &[&str], size: u64, rate: Option<u32>) -> MessagingPolicy {
        MessagingPolicy::new(
            "gateway",
            publish
                .iter()
                .map(|p| TopicPattern::new(p).expect("pattern"))
                .collect(),
            size,
            rate,
        )
    }

    #[test]
    fn deny_by_default_names_the_rule_to_add() {
        let refusal = MessagingPolicy::deny_all("gateway")
            .check_send(SendKind::Send, "telemetry", 3)
            .expect_err("no rules");
        assert!(refusal.is_permission());
        assert_eq!(
            refusal.to_string(),
            "app `gateway` may not send on topic `telemetry`: its entry has no `publish` rules; add `publish = [\"telemetry\"]` to it"
        );
    }

    #[test]
    fn patterns_allow_and_the_rest_is_refused_with_the_rules_listed() {
        let rules = policy(&["sensors.*", "alerts"], 100, None);
        assert_eq!(
            rules
                .check_send(SendKind::Send, "sensors.kitchen", 1)
                .expect("allowed")
                .as_str(),
            "sensors.kitchen"
        );
        assert_eq!(
            rules
                .check_send(SendKind::Request, "sensors.a.b", 1)
                .expect_err("one token only")
                .to_string(),
            "app `gateway` may not send on topic `sensors.a.b`: no `publish` rule matches it (the rules are `sensors.*`, `alerts`); add `\"sensors.a.b\"` or a pattern that covers it"
        );
    }

    #[test]
    fn host_topics_are_reached_only_by_reply() {
        let rules = policy(&[">"], 100, None);
        let refusal = rules
            .check_send(SendKind::Send, "_inbox.7", 1)
            .expect_err("reserved");
        assert!(refusal.is_permission());
        assert_eq!(
            refusal.to_string(),
            "topic `_inbox.7` belongs to the host (topics starting with `_` carry replies); answer a request with `reply`"
        );
        let none = MessagingPolicy::deny_all("gateway");
        none.check_send(SendKind::Reply, "_inbox.7", 1)
            .expect("a reply needs no publish rule");
        // A reply topic named by a NATS client elsewhere is not an inbox.
        let refusal = none
            .check_send(SendKind::Reply, "orders.paid", 1)
            .expect_err("not an inbox");
        assert!(refusal.is_permission());
        assert_eq!(
            refusal.to_string(),
            "the message asks for replies on `orders.paid`, which is not a reply inbox (`_inbox.*`); a reply goes only to the inbox of a request"
        );
    }

    #[test]
    fn bad_topics_and_large_messages_are_refused() {
        let rules = policy(&[">"], 10, None);
        assert!(matches!(
            rules.check_send(SendKind::Send, "a..b", 1),
            Err(Refusal::BadTopic(_))
        ));
        let refusal = rules
            .check_send(SendKind::Reply, "_inbox.1", 11)
            .expect_err("too large");
        assert!(!refusal.is_permission());
        assert_eq!(
            refusal.to_string(),
            "app `gateway` sent a message of 11 bytes on topic `_inbox.1`, over its max_message_size of 10 bytes"
        );
        rules
            .check_send(SendKind::Send, "a", 10)
            .expect("at the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_allows_a_second_s_worth_then_refills() {
        let rules = policy(&["t"], 100, Some(2));
        rules.check_send(SendKind::Send, "t", 1).expect("first");
        rules.check_send(SendKind::Send, "t", 1).expect("second");
        assert_eq!(
            rules
                .check_send(SendKind::Send, "t", 1)
                .expect_err("third")
                .to_string(),
            "app `gateway` is over its max_publish_rate of 2 messages a second; the message on topic `t` was not sent"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        rules
            .check_send(SendKind::Send, "t", 1)
            .expect("half a second refills one");
        assert!(rules.check_send(SendKind::Send, "t", 1).is_err());
    }
}
