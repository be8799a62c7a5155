//! The embedded broker: in-process, nothing leaves it.
//!
//! Each subscription has one bounded queue ([`BrokerSettings::queue_capacity`]
//! messages). A publish finds every subscription whose pattern matches the
//! topic and reserves a place in each queue; a full queue makes the
//! publisher wait up to [`BrokerSettings::publish_timeout`], then the
//! publish fails with [`PublishError::Full`] naming the subscription, and
//! no queue gets the message (all or nothing). A topic no subscription
//! matches takes the message and delivers it nowhere (counted as
//! unrouted).
//!
//! Order: within one subscription, messages arrive in the order their
//! publishes reserved a place, so one publisher's messages arrive in the
//! order it sent them.
//!
//! Bridged to NATS ([`Broker::attach_nats`]), the broker publishes on the
//! NATS server instead of its own queues, and each subscription is fed
//! from a NATS subscription of its pattern, so that several hosts share
//! topics. A publish then fails at once while NATS is down
//! ([`PublishError::Unavailable`]), and does not wait for subscribers:
//! NATS delivers at most once, and drops for a consumer that does not
//! keep up.
//!
//! A lossy subscription ([`Broker::subscribe_lossy`], for debugging taps
//! such as `host subscribe`) never holds a publisher: a message that
//! finds its queue full is dropped for it alone and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::{Message, MessageId, TopicPattern};

/// How the embedded broker queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerSettings {
    /// The messages one subscription's queue holds.
    pub queue_capacity: usize,
    /// How long a publisher waits for room before its publish fails.
    pub publish_timeout: Duration,
}

impl Default for BrokerSettings {
    /// 1024 messages a subscription; publishers wait up to 1 s.
    fn default() -> Self {
        BrokerSettings {
            queue_capacity: 1024,
            publish_timeout: Duration::from_secs(1),
        }
    }
}

/// A message on its way to one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message's id.
    pub id: MessageId,
    /// The message, shared by every subscription it went to.
    pub message: Arc<Message>,
}

/// Why a publish failed; no subscription got the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// A subscription's queue stayed full for the whole wait.
    #[error(
        "subscription `{subscription}` has {capacity} messages queued and took none within {} ms; the message was not published",
        waited.as_millis()
    )]
    Full {
        /// The subscription whose queue is full.
        subscription: String,
        /// Its queue's size.
        capacity: usize,
        /// How long the publisher waited.
        waited: Duration,
    },
    /// The NATS server the broker is bridged to is not reachable now.
    #[error("{0}")]
    Unavailable(String),
    /// Larger than the NATS server takes.
    #[error("{0}")]
    TooLarge(String),
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's id.
    pub id: MessageId,
    /// How many subscriptions it was queued for (0: unrouted); `None` on
    /// NATS, which does not say.
    pub subscriptions: Option<usize>,
}

struct Entry {
    id: u64,
    name: String,
    pattern: TopicPattern,
    sender: mpsc::Sender<Delivery>,
    /// Drops what does not fit instead of holding publishers.
    lossy: Option<Arc<AtomicU64>>,
}

/// How many messages one topic saw, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    /// Publishes accepted (routed or not).
    pub published: u64,
    /// Of those, the ones no subscription matched.
    pub unrouted: u64,
    /// Publishes refused because a queue stayed full.
    pub refused: u64,
}

pub use crate::per_topic::{MOST_COUNTED_TOPICS, OTHER_TOPICS};

struct Inner {
    settings: BrokerSettings,
    entries: RwLock<Vec<Entry>>,
    counts: crate::per_topic::PerTopic<TopicCounts>,
    /// The NATS connection, once the broker is bridged.
    nats: std::sync::OnceLock<crate::nats::NatsClient>,
    next_message: AtomicU64,
    next_subscription: AtomicU64,
}

/// The embedded broker. Cloning it shares it.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// One subscription's queue. Dropping it unsubscribes.
pub struct Subscription {
    name: String,
    id: u64,
    receiver: mpsc::Receiver<Delivery>,
    broker: Weak<Inner>,
}

impl Broker {
    /// A broker with no subscriptions.
    pub fn new(settings: BrokerSettings) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                settings: BrokerSettings {
                    queue_capacity: settings.queue_capacity.max(1),
                    ..settings
                },
                entries: RwLock::new(Vec::new()),
                counts: crate::per_topic::PerTopic::default(),
                nats: std::sync::OnceLock::new(),
                next_message: AtomicU64::new(1),
                next_subscription: AtomicU64::new(1),
            }),
        }
    }

    /// Bridges the broker to NATS from now on (subscriptions made later
    /// are fed from NATS). Call it once, before subscribing.
    pub fn attach_nats(&self, client: crate::nats::NatsClient) {
        let _ = self.inner.nats.set(client);
    }

    /// Whether it is bridged to NATS.
    pub fn is_bridged(&self) -> bool {
        self.inner.nats.get().is_some()
    }

    /// Its settings.
    pub fn settings(&self) -> BrokerSettings {
        self.inner.settings
    }

    /// Subscribes `name` (for errors and metrics) to the topics `pattern`
    /// matches, from the next publish on.
    pub fn subscribe(&self, name: &str, pattern: TopicPattern) -> Subscription {
        self.add(name, pattern, self.inner.settings.queue_capacity, None)
    }

    /// Like [`Broker::subscribe`], but a message that finds the queue
    /// full is dropped for this subscription and counted in `dropped`,
    /// and the publisher goes on.
    pub fn subscribe_lossy(
        &self,
        name: &str,
        pattern: TopicPattern,
        capacity: usize,
        dropped: Arc<AtomicU64>,
    ) -> Subscription {
        self.add(name, pattern, capacity, Some(dropped))
    }

    fn add(
        &self,
        name: &str,
        pattern: TopicPattern,
        capacity: usize,
        lossy: Option<Arc<AtomicU64>>,
    ) -> Subscription {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let id = self.inner.next_subscription.fetch_add(1, Ordering::Relaxed);
        if let Some(nats) = self.inner.nats.get() {
            self.feed_from_nats(nats, &pattern, capacity, sender.clone(), lossy.clone());
        }
        self.inner
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Entry {
                id,
                name: name.to_owned(),
                pattern,
                sender,
                lossy,
            });
        Subscription {
            name: name.to_owned(),
            id,
            receiver,
            broker: Arc::downgrade(&self.inner),
        }
    }

    /// Publishes `message` to every matching subscription, waiting for
    /// room as the module doc says.
    pub async fn publish(&self, message: Message) -> Result<Published, PublishError> {
        if let Some(nats) = self.inner.nats.get() {
            let id = MessageId(self.inner.next_message.fetch_add(1, Ordering::Relaxed));
            return match nats.publish(&message) {
                Ok(()) => {
                    self.count(&message.topic, |counts| counts.published += 1);
                    Ok(Published {
                        id,
                        subscriptions: None,
                    })
                }
                Err(error) => {
                    self.count(&message.topic, |counts| counts.refused += 1);
                    Err(match error {
                        crate::nats::NatsError::TooLarge { .. } => {
                            PublishError::TooLarge(error.to_string())
                        }
                        _ => PublishError::Unavailable(error.to_string()),
                    })
                }
            };
        }
        type Target = (String, mpsc::Sender<Delivery>, Option<Arc<AtomicU64>>);
        let targets: Vec<Target> = self
            .inner
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|entry| entry.pattern.matches(&message.topic))
            .map(|entry| {
                (
                    entry.name.clone(),
                    entry.sender.clone(),
                    entry.lossy.clone(),
                )
            })
            .collect();
        let id = MessageId(self.inner.next_message.fetch_add(1, Ordering::Relaxed));
        let timeout = self.inner.settings.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // Places are taken only when every queue has one: a publisher
        // that waits for a full queue holds no place in the others.
        let permits = 'reserve: loop {
            let mut permits = Vec::with_capacity(targets.len());
            let mut blocked = None;
            for (index, (_, sender, lossy)) in targets.iter().enumerate() {
                if lossy.is_some() {
                    continue;
                }
                match sender.try_reserve() {
                    Ok(permit) => permits.push(permit),
                    Err(mpsc::error::TrySendError::Full(())) => {
                        blocked = Some(index);
                        break;
                    }
                    // Unsubscribed meanwhile: it gets nothing.
                    Err(mpsc::error::TrySendError::Closed(())) => {}
                }
            }
            let Some(blocked) = blocked else {
                break 'reserve permits;
            };
            drop(permits);
            let (name, sender, _) = &targets[blocked];
            match tokio::time::timeout_at(deadline, sender.reserve()).await {
                // Room: give it back and take every place again.
                Ok(Ok(permit)) => drop(permit),
                Ok(Err(_closed)) => {}
                Err(_elapsed) => {
                    self.count(&message.topic, |counts| counts.refused += 1);
                    return Err(PublishError::Full {
                        subscription: name.clone(),
                        capacity: self.inner.settings.queue_capacity,
                        waited: timeout,
                    });
                }
            }
        };
        let mut permits = permits;
        // Lossy taps last: they take what fits and count the rest.
        for (_, sender, lossy) in &targets {
            let Some(dropped) = lossy else {
                continue;
            };
            match sender.try_reserve() {
                Ok(permit) => permits.push(permit),
                Err(mpsc::error::TrySendError::Full(())) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(())) => {}
            }
        }
        let subscriptions = permits.len();
        self.count(&message.topic, |counts| {
            counts.published += 1;
            if subscriptions == 0 {
                counts.unrouted += 1;
            }
        });
        let message = Arc::new(message);
        for permit in permits {
            permit.send(Delivery {
                id,
                message: message.clone(),
            });
        }
        Ok(Published {
            id,
            subscriptions: Some(subscriptions),
        })
    }

    /// Forwards what NATS delivers for `pattern` into one subscription's
    /// queue, until the subscription is dropped.
    fn feed_from_nats(
        &self,
        nats: &crate::nats::NatsClient,
        pattern: &TopicPattern,
        capacity: usize,
        sender: mpsc::Sender<Delivery>,
        lossy: Option<Arc<AtomicU64>>,
    ) {
        let mut from_nats = nats.subscribe(pattern.clone(), capacity);
        let pattern = pattern.clone();
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = sender.closed() => {
                        // What NATS delivered that the closed queue will
                        // never take: counted, not lost silently.
                        from_nats.discard();
                        return;
                    }
                    message = from_nats.recv() => message,
                };
                let Some(message) = message else {
                    return;
                };
                // The server's `>` reaches the host's own topics too.
                if !pattern.matches(&message.topic) {
                    continue;
                }
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let id = MessageId(inner.next_message.fetch_add(1, Ordering::Relaxed));
                let delivery = Delivery {
                    id,
                    message: Arc::new(message),
                };
                match &lossy {
                    Some(dropped) => {
                        if sender.try_send(delivery).is_err() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        if let Err(refused) = sender.send(delivery).await {
                            from_nats.count_lost(&refused.0.message.topic);
                            from_nats.discard();
                            return;
                        }
                    }
                }
            }
        });
    }

    fn count(&self, topic: &crate::Topic, change: impl FnOnce(&mut TopicCounts)) {
        self.inner.counts.count(topic, change);
    }

    /// Bridged to NATS: the messages NATS delivered that found a
    /// subscription's queue full and were dropped, by topic.
    pub fn overflowed(&self) -> Vec<(String, u64)> {
        self.inner
            .nats
            .get()
            .map(crate::nats::NatsClient::overflowed)
            .unwrap_or_default()
    }

    /// What each topic saw so far, by name.
    pub fn topic_counts(&self) -> Vec<(String, TopicCounts)> {
        self.inner.counts.snapshot()
    }

    /// Each subscription's name and how many messages wait in its queue,
    /// for the queue-depth gauge.
    pub fn depths(&self) -> Vec<(String, usize)> {
        self.inner
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|entry| {
                (
                    entry.name.clone(),
                    entry
                        .sender
                        .max_capacity()
                        .saturating_sub(entry.sender.capacity()),
                )
            })
            .collect()
    }
}

impl Subscription {
    /// The next message, or `None` once the broker is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.receiver.recv().await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.receiver.try_recv().ok()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages wait in its queue.
    pub fn depth(&self) -> usize {
        self.receiver.len()
    }
}

impl Subscription {
    /// Stops taking messages: publishes from now on pass it by, and what
    /// is queued (or already on its way in) can still be taken with
    /// [`Subscription::next`] until it answers `None`.
    pub fn close(&mut self) {
        self.unsubscribe();
        self.receiver.close();
    }

    fn unsubscribe(&self) {
        if let Some(inner) = self.broker.upgrade() {
            inner
                .entries
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|entry| entry.id != self.id);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topic;

    fn message(topic: &str, data: &str) -> Message {
        Message::new(Topic::new(topic).unwrap(), data.to_owned())
    }

    fn pattern(text: &str) -> TopicPattern {
        TopicPattern::new(text).unwrap()
    }

    fn broker(capacity: usize) -> Broker {
        Broker::new(BrokerSettings {
            queue_capacity: capacity,
            publish_timeout: Duration::from_millis(250),
        })
    }

    async fn data(subscription: &mut Subscription) -> String {
        let delivery = subscription.next().await.unwrap();
        String::from_utf8(delivery.message.data.to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn every_matching_subscription_gets_each_message_in_order() {
        let broker = broker(8);
        let mut all = broker.subscribe("all", pattern("sensors.*"));
        let mut kitchen = broker.subscribe("kitchen", pattern("sensors.kitchen"));
        for (topic, text) in [
            ("sensors.kitchen", "1"),
            ("sensors.hall", "2"),
            ("sensors.kitchen", "3"),
        ] {
            broker.publish(message(topic, text)).await.unwrap();
        }
        let unrouted = broker.publish(message("other", "4")).await.unwrap();
        assert_eq!(unrouted.subscriptions, Some(0));
        assert_eq!(
            [
                data(&mut all).await,
                data(&mut all).await,
                data(&mut all).await
            ],
            ["1", "2", "3"]
        );
        assert_eq!(
            [data(&mut kitchen).await, data(&mut kitchen).await],
            ["1", "3"]
        );
        assert_eq!((all.depth(), kitchen.depth()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_holds_the_publisher_then_refuses_and_no_queue_gets_the_message() {
        let broker = broker(2);
        let mut slow = broker.subscribe("slow", pattern("telemetry"));
        let mut fast = broker.subscribe("fast", pattern("telemetry"));
        broker.publish(message("telemetry", "1")).await.unwrap();
        broker.publish(message("telemetry", "2")).await.unwrap();
        // The fast one keeps up; the slow one does not.
        assert_eq!([data(&mut fast).await, data(&mut fast).await], ["1", "2"]);
        let started = tokio::time::Instant::now();
        let refused = broker.publish(message("telemetry", "3")).await.unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(250),
            "it waited the whole timeout"
        );
        assert_eq!(
            refused.to_string(),
            "subscription `slow` has 2 messages queued and took none within 250 ms; the message was not published"
        );
        assert_eq!(
            fast.depth(),
            0,
            "all or nothing: the fast queue did not get it"
        );
        assert_eq!(
            broker.topic_counts(),
            [(
                "telemetry".to_owned(),
                TopicCounts {
                    published: 2,
                    unrouted: 0,
                    refused: 1
                }
            )]
        );
        assert_eq!(
            broker.depths(),
            [("slow".to_owned(), 2), ("fast".to_owned(), 0)]
        );
        // A waiting publisher goes through as soon as there is room.
        let publisher = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.publish(message("telemetry", "4")).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(data(&mut slow).await, "1");
        assert_eq!(publisher.await.unwrap().unwrap().subscriptions, Some(2));
        assert_eq!([data(&mut slow).await, data(&mut slow).await], ["2", "4"]);
        assert_eq!(data(&mut fast).await, "4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_waiting_on_a_full_queue_holds_no_place_in_the_others() {
        let broker = broker(1);
        // `healthy` comes first: a publisher to both reaches it first.
        let mut healthy = broker.subscribe("healthy", pattern("*.x"));
        let _stuck = broker.subscribe("stuck", pattern("a.>"));
        broker.publish(message("a.x", "fills stuck")).await.unwrap();
        assert_eq!(data(&mut healthy).await, "fills stuck");
        // A publisher to both waits on `stuck`...
        let waiting = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.publish(message("a.x", "waits")).await })
        };
        tokio::task::yield_now().await;
        // ...and meanwhile another publisher still finds room in `healthy`.
        let other = broker.publish(message("b.x", "goes through")).await;
        assert_eq!(other.map(|p| p.subscriptions), Ok(Some(1)));
        assert_eq!(data(&mut healthy).await, "goes through");
        assert!(matches!(
            waiting.await.unwrap(),
            Err(PublishError::Full { ref subscription, .. }) if subscription == "stuck"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lossy_subscription_drops_what_does_not_fit_and_holds_no_one() {
        let broker = broker(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut tap = broker.subscribe_lossy("tap", pattern(">"), 1, dropped.clone());
        let started = tokio::time::Instant::now();
        for text in ["1", "2", "3"] {
            assert_eq!(
                broker
                    .publish(message("t", text))
                    .await
                    .unwrap()
                    .subscriptions,
                Some(usize::from(text == "1"))
            );
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "no publisher waited");
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert_eq!(data(&mut tap).await, "1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscription_dropped_while_a_publisher_waits_for_it_lets_the_publisher_go() {
        let broker = broker(1);
        let full = broker.subscribe("full", pattern("t"));
        broker.publish(message("t", "fills it")).await.unwrap();
        let waiting = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.publish(message("t", "waits")).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = tokio::time::Instant::now();
        drop(full);
        let published = waiting.await.unwrap().unwrap();
        assert_eq!(published.subscriptions, Some(0), "the only queue went away");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "it did not wait out the timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_subscription_gets_nothing_more() {
        let broker = broker(1);
        let gone = broker.subscribe("gone", pattern(">"));
        drop(gone);
        let published = broker.publish(message("anything", "x")).await.unwrap();
        assert_eq!(published.subscriptions, Some(0));
        assert!(broker.depths().is_empty());
    }
}
