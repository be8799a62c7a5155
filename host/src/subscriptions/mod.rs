//! `[[subscriptions]]`: each entry is a queue on the broker and a loop
//! that hands its messages to a fresh instance of the entry's component
//! (`delivery.rs` runs one message with its retries).
//!
//! Concurrency and order: a subscription runs at most `max_concurrency`
//! deliveries at once (1 by default). With 1, messages are handled one
//! after the other in the order the broker queued them, and a message
//! being retried holds the next back, so each topic's order is kept even
//! across failures. With more, messages start in queue order but may
//! finish in any order.
//!
//! Back-pressure: the queue holds the broker's `queue_capacity` messages;
//! when the handler falls behind and the queue is full, publishers wait,
//! then get an error (see the broker).
//!
//! Reloads: an entry whose name and topic stay keeps its queue, and the
//! messages in it go to the new component and settings; an entry removed
//! (or whose topic changed) stops taking messages, finishes the ones it
//! holds, and the ones still queued are logged and counted as dropped.
//!
//! Shutdown: after the HTTP listener has drained, every subscription
//! handles what is queued, until the drain timeout; what is left then is
//! logged and counted as dropped.

mod delivery;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serverless_config::SubscriptionConfig;
use serverless_messaging::{
    Broker, Delivery, DeliveryCounts, PerTopic, RetryPolicy, Subscription, TopicPattern,
};
use serverless_runtime::{App, OperatorRules, Runtime};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// A subscription loaded: its component pre-instantiated, ready to take
/// messages.
pub(crate) struct Prepared {
    pub(crate) name: Arc<str>,
    pub(crate) topic: TopicPattern,
    pub(crate) app: Arc<App>,
    pub(crate) max_concurrency: u32,
    pub(crate) retry: RetryPolicy,
}

/// The subscriptions of one configuration, loaded.
pub(crate) struct Loaded(Vec<Arc<Prepared>>);

/// Compiles and pre-instantiates the subscriptions of a configuration.
pub(crate) fn load(
    runtime: &Runtime,
    configs: Vec<SubscriptionConfig>,
    operator: &OperatorRules,
) -> anyhow::Result<Loaded> {
    let mut loader = runtime.loader(operator);
    let mut loaded = Vec::with_capacity(configs.len());
    for config in configs {
        let name: Arc<str> = config.app.name.as_str().into();
        let app = loader.load_subscriber(config.app).map_err(|error| {
            anyhow::anyhow!(
                "{}subscription `{}` ({}): {}",
                error
                    .location
                    .as_ref()
                    .map(|l| format!("{l}: "))
                    .unwrap_or_default(),
                error.app,
                error.component,
                error.problem
            )
        })?;
        loaded.push(Arc::new(Prepared {
            name,
            topic: config.topic,
            app,
            max_concurrency: config.max_concurrency,
            retry: config.retry,
        }));
    }
    Ok(Loaded(loaded))
}

/// What a running subscription's loop is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Take messages as they come.
    Run,
    /// Handle what is queued, then end (shutdown).
    Drain,
    /// End after the deliveries in hand (removed by a reload).
    Stop,
}

struct Running {
    topic: TopicPattern,
    current: watch::Sender<Arc<Prepared>>,
    concurrency: Arc<Semaphore>,
    max_concurrency: u32,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

/// The running subscriptions.
pub(crate) struct Subscriptions {
    broker: Broker,
    running: tokio::sync::Mutex<BTreeMap<Arc<str>, Running>>,
    counts: Arc<PerTopic<DeliveryCounts>>,
}

impl Subscriptions {
    /// No subscriptions yet, on `broker`.
    pub(crate) fn new(broker: Broker) -> Subscriptions {
        Subscriptions {
            broker,
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            counts: Arc::default(),
        }
    }

    /// What the handlers did, per topic, for the metrics.
    pub(crate) fn counts(&self) -> Arc<PerTopic<DeliveryCounts>> {
        self.counts.clone()
    }

    /// Runs `loaded` in place of what runs now; returns what changed, for
    /// the log.
    pub(crate) async fn apply(&self, loaded: Loaded) -> String {
        let mut running = self.running.lock().await;
        let wanted: BTreeMap<Arc<str>, Arc<Prepared>> = loaded
            .0
            .into_iter()
            .map(|prepared| (prepared.name.clone(), prepared))
            .collect();
        let (mut started, mut kept, mut stopped) = (0, 0, 0);
        let gone: Vec<Arc<str>> = running
            .iter()
            .filter(|(name, run)| {
                wanted
                    .get(*name)
                    .is_none_or(|prepared| prepared.topic != run.topic)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut ending = Vec::new();
        for name in gone {
            if let Some(run) = running.remove(&name) {
                let _ = run.mode.send(Mode::Stop);
                ending.push(run.task);
                stopped += 1;
            }
        }
        // Stopped first, so that a subscription whose topic changed does
        // not get the same message twice.
        for task in ending {
            let _ = task.await;
        }
        for (name, prepared) in wanted {
            match running.get_mut(&name) {
                Some(run) => {
                    resize(
                        &run.concurrency,
                        run.max_concurrency,
                        prepared.max_concurrency,
                    );
                    run.max_concurrency = prepared.max_concurrency;
                    run.current.send_replace(prepared);
                    kept += 1;
                }
                None => {
                    running.insert(name, self.start(prepared));
                    started += 1;
                }
            }
        }
        format!("subscriptions: {started} started, {kept} kept, {stopped} stopped")
    }

    fn start(&self, prepared: Arc<Prepared>) -> Running {
        let queue = self
            .broker
            .subscribe(&prepared.name, prepared.topic.clone());
        let max_concurrency = prepared.max_concurrency;
        let concurrency = Arc::new(Semaphore::new(max_concurrency as usize));
        let topic = prepared.topic.clone();
        let (current, current_rx) = watch::channel(prepared);
        let (mode, mode_rx) = watch::channel(Mode::Run);
        let task = tokio::spawn(run(
            queue,
            current_rx,
            mode_rx,
            concurrency.clone(),
            self.broker.clone(),
            self.counts.clone(),
        ));
        Running {
            topic,
            current,
            concurrency,
            max_concurrency,
            mode,
            task,
        }
    }

    /// Handles what every queue holds, for up to `grace`; what is left
    /// after it is logged and counted as dropped.
    pub(crate) async fn drain(&self, grace: Duration) {
        let mut running = self.running.lock().await;
        let runs: Vec<(Arc<str>, Running)> = std::mem::take(&mut *running).into_iter().collect();
        for (_, run) in &runs {
            let _ = run.mode.send(Mode::Drain);
        }
        let deadline = tokio::time::Instant::now() + grace;
        for (name, run) in runs {
            let mut task = run.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                // The loop ends at once on Stop, counting what it drops.
                let _ = run.mode.send(Mode::Stop);
                task.abort();
                let _ = task.await;
                tracing::warn!(
                    subscription = &*name,
                    "the subscription did not finish its queue within {grace:?} (--drain-timeout); the messages left were dropped"
                );
            }
        }
    }
}

/// Changes a subscription's concurrency from `from` to `to` permits.
fn resize(semaphore: &Arc<Semaphore>, from: u32, to: u32) {
    if to > from {
        semaphore.add_permits((to - from) as usize);
    } else if from > to {
        let semaphore = semaphore.clone();
        tokio::spawn(async move {
            if let Ok(permits) = semaphore.acquire_many_owned(from - to).await {
                permits.forget();
            }
        });
    }
}

/// One subscription's loop: takes a message when a delivery slot is free,
/// and runs it with the subscription's current settings.
async fn run(
    queue: Subscription,
    current: watch::Receiver<Arc<Prepared>>,
    mut mode: watch::Receiver<Mode>,
    concurrency: Arc<Semaphore>,
    broker: Broker,
    counts: Arc<PerTopic<DeliveryCounts>>,
) {
    let mut in_flight = JoinSet::new();
    // Dropped when the loop is aborted at the end of a drain: whatever
    // is still queued or in hand is counted then.
    let mut accounting = Leftovers {
        name: current.borrow().name.clone(),
        counts: counts.clone(),
        in_hand: Vec::new(),
        queue,
    };
    loop {
        let now = *mode.borrow();
        let permit = match now {
            Mode::Stop => break,
            Mode::Run | Mode::Drain => tokio::select! {
                permit = concurrency.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                changed = mode.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
            },
        };
        let delivery: Option<Delivery> = match now {
            Mode::Drain => match accounting.queue.try_next() {
                Some(delivery) => Some(delivery),
                None => break,
            },
            _ => tokio::select! {
                delivery = accounting.queue.next() => delivery,
                changed = mode.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
            },
        };
        let Some(delivery) = delivery else { break };
        accounting.in_hand.push(delivery.clone());
        let prepared = current.borrow().clone();
        let (broker, counts) = (broker.clone(), counts.clone());
        in_flight.spawn(async move {
            let id = delivery.id;
            delivery::deliver(prepared, delivery, broker, counts).await;
            drop(permit);
            id
        });
        // Finished ones leave the list of what is in hand.
        accounting.forget_finished(&mut in_flight);
    }
    // What is in hand finishes; what is still queued is dropped, counted
    // as `accounting` goes.
    while let Some(finished) = in_flight.join_next().await {
        if let Ok(id) = finished {
            accounting.in_hand.retain(|d| d.id != id);
        }
    }
}

/// The messages a subscription's loop took or could still take: counted
/// as dropped, with a log line, if the loop ends (or is aborted) with any
/// of them not delivered.
struct Leftovers {
    name: Arc<str>,
    counts: Arc<PerTopic<DeliveryCounts>>,
    in_hand: Vec<Delivery>,
    /// The subscription's queue, unsubscribed when this goes.
    queue: Subscription,
}

impl Leftovers {
    fn forget_finished(&mut self, in_flight: &mut JoinSet<serverless_messaging::MessageId>) {
        while let Some(finished) = in_flight.try_join_next() {
            if let Ok(id) = finished {
                self.in_hand.retain(|d| d.id != id);
            }
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        while let Some(left) = self.queue.try_next() {
            self.in_hand.push(left);
        }
        if self.in_hand.is_empty() {
            return;
        }
        for delivery in &self.in_hand {
            self.counts
                .count(&delivery.message.topic, |c| c.dropped += 1);
        }
        let ids: Vec<String> = self.in_hand.iter().map(|d| d.id.to_string()).collect();
        tracing::warn!(
            subscription = &*self.name,
            "{} messages were not delivered before the subscription stopped, and were dropped: {}",
            ids.len(),
            ids.join(", ")
        );
    }
}

/// The subscriptions' part of a configuration check: memory and fuel
/// fixed at startup.
pub(crate) fn check_limits(
    configs: &[SubscriptionConfig],
    settings: &serverless_runtime::RuntimeSettings,
) -> anyhow::Result<()> {
    for config in configs {
        let app = &config.app;
        if usize::try_from(app.limits.max_memory).unwrap_or(usize::MAX) > settings.max_memory_bytes
        {
            anyhow::bail!(
                "subscription `{}`: max_memory {} bytes is more than the {} bytes the instance pool was sized for at startup; restart the host to raise it",
                app.name,
                app.limits.max_memory,
                settings.max_memory_bytes
            );
        }
        if app.limits.fuel.is_some() && !settings.fuel {
            anyhow::bail!(
                "subscription `{}`: fuel needs fuel metering, which is chosen at startup; restart the host to turn it on",
                app.name
            );
        }
    }
    Ok(())
}

/// Loads the subscriptions with the context an error needs.
pub(crate) fn load_checked(
    runtime: &Runtime,
    configs: Vec<SubscriptionConfig>,
    operator: &OperatorRules,
) -> anyhow::Result<Loaded> {
    check_limits(&configs, &runtime.settings())?;
    load(runtime, configs, operator)
}
