//! What happens after a subscription handler fails a message (a trap, a
//! timeout, or an `error` it returned): it is delivered again after a
//! backoff that doubles from `backoff` up to `max_backoff`, up to
//! `attempts` deliveries in all; then it goes to the subscription's
//! dead-letter topic when it has one, and is otherwise dropped. A drop is
//! logged with the message id and counted: nothing is lost silently.

use std::time::Duration;

use crate::Topic;

/// A subscription's retry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second delivery.
    pub backoff: Duration,
    /// The longest wait between deliveries.
    pub max_backoff: Duration,
    /// Where a message goes once every attempt failed.
    pub dead_letter: Option<Topic>,
}

impl Default for RetryPolicy {
    /// Three deliveries, 100 ms then 200 ms apart, then a drop.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            dead_letter: None,
        }
    }
}

/// What to do with a message whose delivery number `attempt` (from 1)
/// just failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Deliver it again after this wait.
    Retry(Duration),
    /// Publish it on the dead-letter topic.
    DeadLetter(Topic),
    /// Drop it (logged and counted).
    Drop,
}

impl RetryPolicy {
    /// The decision after delivery `attempt` (from 1) failed.
    pub fn after_failure(&self, attempt: u32) -> AfterFailure {
        if attempt < self.attempts.max(1) {
            let doublings = attempt.saturating_sub(1).min(31);
            let wait = self
                .backoff
                .saturating_mul(1u32 << doublings)
                .min(self.max_backoff);
            return AfterFailure::Retry(wait);
        }
        match &self.dead_letter {
            Some(topic) => AfterFailure::DeadLetter(topic.clone()),
            None => AfterFailure::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_then_go_to_the_dead_letter_topic_or_are_dropped() {
        let mut policy = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            dead_letter: None,
        };
        let waits: Vec<AfterFailure> = (1..=5).map(|n| policy.after_failure(n)).collect();
        assert_eq!(
            waits,
            [
                AfterFailure::Retry(Duration::from_millis(100)),
                AfterFailure::Retry(Duration::from_millis(200)),
                AfterFailure::Retry(Duration::from_millis(300)),
                AfterFailure::Retry(Duration::from_millis(300)),
                AfterFailure::Drop,
            ]
        );
        policy.dead_letter = Some(Topic::new("telemetry.failed").unwrap());
        assert_eq!(
            policy.after_failure(5),
            AfterFailure::DeadLetter(Topic::new("telemetry.failed").unwrap())
        );
        policy.attempts = 0;
        assert_eq!(
            policy.after_failure(1),
            AfterFailure::DeadLetter(Topic::new("telemetry.failed").unwrap()),
            "zero attempts means one"
        );
    }
}
