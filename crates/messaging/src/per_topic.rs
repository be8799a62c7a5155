//! Counters kept per topic, for the metrics: at most
//! [`MOST_COUNTED_TOPICS`] topics one by one, the rest together under
//! [`OTHER_TOPICS`], so that a stream of made-up names cannot grow the
//! metrics without end.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::Topic;

/// The most topics counted one by one.
pub const MOST_COUNTED_TOPICS: usize = 1024;

/// The name the topics past [`MOST_COUNTED_TOPICS`] are counted under.
pub const OTHER_TOPICS: &str = "(other)";

/// Counters of type `C`, one set per topic.
#[derive(Debug, Default)]
pub struct PerTopic<C>(Mutex<BTreeMap<String, C>>);

impl<C: Default + Copy> PerTopic<C> {
    /// Changes `topic`'s counters (or those of the other topics).
    pub fn count(&self, topic: &Topic, change: impl FnOnce(&mut C)) {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = if counts.contains_key(topic.as_str()) || counts.len() < MOST_COUNTED_TOPICS {
            topic.as_str()
        } else {
            OTHER_TOPICS
        };
        change(counts.entry(name.to_owned()).or_default());
    }

    /// Every topic's counters so far, by name.
    pub fn snapshot(&self) -> Vec<(String, C)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(topic, counts)| (topic.clone(), *counts))
            .collect()
    }
}

/// What the subscription handlers did with each topic's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Deliveries the handler finished.
    pub delivered: u64,
    /// Deliveries that failed (a trap, a timeout, an error returned).
    pub failed: u64,
    /// Failed deliveries that were tried again.
    pub retried: u64,
    /// Messages that went to a dead-letter topic after their last attempt.
    pub dead_lettered: u64,
    /// Messages given up on: their last attempt failed and there was no
    /// dead-letter topic (or it refused them), or the host stopped first.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_past_the_cap_are_counted_together() {
        let counts: PerTopic<DeliveryCounts> = PerTopic::default();
        for index in 0..MOST_COUNTED_TOPICS + 2 {
            let topic = Topic::new(&format!("t{index}")).expect("topic");
            counts.count(&topic, |c| c.delivered += 1);
        }
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.len(), MOST_COUNTED_TOPICS + 1);
        let other = snapshot
            .iter()
            .find(|(name, _)| name == OTHER_TOPICS)
            .expect("the rest");
        assert_eq!(other.1.delivered, 2);
    }
}
