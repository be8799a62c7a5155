//! One message through a subscription handler: delivered, retried after a
//! failure with the subscription's backoff, then sent to its dead-letter
//! topic or dropped. Every attempt writes an access line (target
//! `access`, message `message`) with the topic, app, attempt, duration
//! and outcome; every failure is logged with the message id; every
//! outcome is counted per topic.

use std::sync::Arc;

use serverless_messaging::{AfterFailure, Delivery, DeliveryCounts, Message, PerTopic};
use tokio::time::Instant;

use super::Prepared;

/// How a delivery attempt ended, in access lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
        }
    }
}

/// The metadata a dead-lettered message gains: which subscription gave up
/// on it, after how many attempts, and the last failure.
pub(crate) const DEAD_LETTER_SUBSCRIPTION: &str = "serverless-subscription";
/// See [`DEAD_LETTER_SUBSCRIPTION`].
pub(crate) const DEAD_LETTER_ATTEMPTS: &str = "serverless-attempts";
/// See [`DEAD_LETTER_SUBSCRIPTION`].
pub(crate) const DEAD_LETTER_ERROR: &str = "serverless-error";

/// The longest failure text a dead-lettered message carries.
const MOST_ERROR_TEXT: usize = 512;

/// Runs `delivery` through `prepared`'s handler until it is delivered, or
/// given up on as its retry policy says.
pub(crate) async fn deliver(
    prepared: Arc<Prepared>,
    delivery: Delivery,
    broker: serverless_messaging::Broker,
    counts: Arc<PerTopic<DeliveryCounts>>,
) {
    let message = &delivery.message;
    let topic = &message.topic;
    let mut attempt: u32 = 1;
    loop {
        let started = Instant::now();
        let delivery_id: Arc<str> = format!("{}.{attempt}", delivery.id).into();
        let result = prepared.app.deliver(delivery_id, message).await;
        let stats = result.as_ref().ok().copied();
        let outcome = if result.is_ok() {
            Outcome::Delivered
        } else {
            Outcome::Failed
        };
        tracing::info!(
            target: "access",
            message_id = %delivery.id,
            subscription = &*prepared.name,
            app = &**prepared.app.name(),
            topic = topic.as_str(),
            attempt,
            outcome = outcome.as_str(),
            micros = started.elapsed().as_micros() as u64,
            bytes_in = message.data.len() as u64,
            instantiate_us = stats.map(|s| s.instantiate.as_micros() as u64),
            execute_us = stats.map(|s| s.execute.as_micros() as u64),
            peak_memory = stats.map(|s| s.peak_memory),
            "message"
        );
        let error = match result {
            Ok(_) => {
                counts.count(topic, |c| c.delivered += 1);
                return;
            }
            Err(error) => error,
        };
        counts.count(topic, |c| c.failed += 1);
        let why = prepared.app.redact(&error.to_string()).into_owned();
        match prepared.retry.after_failure(attempt) {
            AfterFailure::Retry(wait) => {
                tracing::warn!(
                    subscription = &*prepared.name,
                    message_id = %delivery.id,
                    topic = topic.as_str(),
                    "delivery {attempt} of {} failed ({}): {why}; trying again in {wait:?}",
                    prepared.retry.attempts,
                    error.kind(),
                );
                counts.count(topic, |c| c.retried += 1);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            AfterFailure::DeadLetter(dead) => {
                let mut failed = Message::clone(message);
                failed.topic = dead.clone();
                failed.reply_to = None;
                // The host's own keys replace any the publisher set.
                failed.metadata.retain(|(key, _)| {
                    ![
                        DEAD_LETTER_SUBSCRIPTION,
                        DEAD_LETTER_ATTEMPTS,
                        DEAD_LETTER_ERROR,
                    ]
                    .iter()
                    .any(|ours| key.eq_ignore_ascii_case(ours))
                });
                failed.metadata.push((
                    DEAD_LETTER_SUBSCRIPTION.to_owned(),
                    prepared.name.to_string(),
                ));
                failed
                    .metadata
                    .push((DEAD_LETTER_ATTEMPTS.to_owned(), attempt.to_string()));
                failed.metadata.push((
                    DEAD_LETTER_ERROR.to_owned(),
                    why[..why.floor_char_boundary(MOST_ERROR_TEXT)].replace(['\r', '\n'], " "),
                ));
                match broker.publish(failed).await {
                    Ok(_) => {
                        tracing::error!(
                            subscription = &*prepared.name,
                            message_id = %delivery.id,
                            topic = topic.as_str(),
                            "delivery {attempt} of {attempt} failed ({}): {why}; the message went to the dead-letter topic `{dead}`",
                            error.kind(),
                        );
                        counts.count(topic, |c| c.dead_lettered += 1);
                    }
                    Err(refused) => {
                        tracing::error!(
                            subscription = &*prepared.name,
                            message_id = %delivery.id,
                            topic = topic.as_str(),
                            "delivery {attempt} of {attempt} failed ({}): {why}; the dead-letter topic `{dead}` refused the message ({refused}), so it was dropped",
                            error.kind(),
                        );
                        counts.count(topic, |c| c.dropped += 1);
                    }
                }
                return;
            }
            AfterFailure::Drop => {
                tracing::error!(
                    subscription = &*prepared.name,
                    message_id = %delivery.id,
                    topic = topic.as_str(),
                    "delivery {attempt} of {attempt} failed ({}): {why}; the subscription has no dead_letter topic, so the message was dropped",
                    error.kind(),
                );
                counts.count(topic, |c| c.dropped += 1);
                return;
            }
        }
    }
}
