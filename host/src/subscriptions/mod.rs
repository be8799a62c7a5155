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
//! (or whose topic changed) stops taking messages at once (publishes pass
//! it by), finishes the ones it holds in the background, and the ones
//! still queued are logged and counted as dropped.
//!
//! Shutdown: after the HTTP listener has drained, the subscriptions go
//! on until all of them are idle at once (so a message one handler sends
//! another is delivered too), for up to the drain timeout; what is left
//! then is logged and counted as dropped.

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
    /// Take no more: finish the deliveries in hand, count what is still
    /// queued as dropped, and end.
    Stop,
}

struct Running {
    topic: TopicPattern,
    current: watch::Sender<Arc<Prepared>>,
    concurrency: Arc<Semaphore>,
    max_concurrency: u32,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
    /// The deliveries it has taken and not finished.
    in_hand: InHand,
}

/// The deliveries a subscription has taken and not finished.
type InHand = Arc<std::sync::Mutex<Vec<Delivery>>>;

impl Running {
    /// Tells the loop to stop; its task ends once the deliveries in hand
    /// have.
    fn stop(&self) {
        let _ = self.mode.send(Mode::Stop);
        // A pending lowering of the concurrency gives up.
        self.concurrency.close();
    }

    /// Whether no delivery runs.
    fn idle(&self) -> bool {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }
}

/// How often a shutdown looks whether every subscription is idle.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The running subscriptions.
pub(crate) struct Subscriptions {
    broker: Broker,
    running: tokio::sync::Mutex<BTreeMap<Arc<str>, Running>>,
    counts: Arc<PerTopic<DeliveryCounts>>,
    /// Set when the host starts shutting down: reloads change nothing.
    stopping: std::sync::atomic::AtomicBool,
    /// Subscriptions a reload stopped, still finishing their deliveries:
    /// a shutdown waits for them too.
    stopped: std::sync::Mutex<Vec<(Arc<str>, tokio::task::JoinHandle<()>)>>,
}

impl Subscriptions {
    /// No subscriptions yet, on `broker`.
    pub(crate) fn new(broker: Broker) -> Subscriptions {
        Subscriptions {
            broker,
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            counts: Arc::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            stopped: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// What the handlers did, per topic, for the metrics.
    pub(crate) fn counts(&self) -> Arc<PerTopic<DeliveryCounts>> {
        self.counts.clone()
    }

    /// Runs `loaded` in place of what runs now; returns what changed, for
    /// the log. It does not wait for the subscriptions it stops: they end
    /// in the background once their deliveries in hand have.
    pub(crate) async fn apply(&self, loaded: Loaded) -> String {
        let mut running = self.running.lock().await;
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return "subscriptions: unchanged, the host is shutting down".to_owned();
        }
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
                run.stop();
                ending.push((name, run.task));
                stopped += 1;
            }
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
        drop(running);
        let mut stopped_runs = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stopped_runs.retain(|(_, task)| !task.is_finished());
        stopped_runs.extend(ending);
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
        let in_hand = InHand::default();
        let task = tokio::spawn(run(
            Leftovers {
                name: prepared_name(&current_rx),
                counts: self.counts.clone(),
                in_hand: in_hand.clone(),
                queue,
            },
            current_rx,
            mode_rx,
            concurrency.clone(),
            self.broker.clone(),
        ));
        Running {
            topic,
            current,
            concurrency,
            max_concurrency,
            mode,
            task,
            in_hand,
        }
    }

    /// At shutdown: every subscription goes on taking messages until all
    /// of them are idle at once (queues empty, no delivery running), so
    /// that a message one handler sends to another is delivered too, or
    /// until `grace` has passed; then they stop, and what is left is
    /// logged and counted as dropped.
    pub(crate) async fn drain(&self, grace: Duration) {
        let mut running = self.running.lock().await;
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        let idle = |running: &BTreeMap<Arc<str>, Running>| {
            let depths: BTreeMap<String, usize> = self.broker.depths().into_iter().collect();
            running
                .iter()
                .all(|(name, run)| run.idle() && depths.get(&**name).copied().unwrap_or(0) == 0)
        };
        // Idle twice in a row: a message between a handler's send and its
        // queue is not missed.
        let mut quiet = 0;
        while quiet < 2 && tokio::time::Instant::now() < deadline {
            quiet = if idle(&running) { quiet + 1 } else { 0 };
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let runs = std::mem::take(&mut *running);
        for run in runs.values() {
            run.stop();
        }
        let stopped_before = std::mem::take(
            &mut *self
                .stopped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let tasks = runs
            .into_iter()
            .map(|(name, run)| (name, run.task))
            .chain(stopped_before);
        for (name, mut task) in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                // Aborted: what it held is counted as it goes.
                task.abort();
                let _ = task.await;
                tracing::warn!(
                    subscription = &*name,
                    "the subscription did not finish its deliveries within {grace:?} (--drain-timeout)"
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
            // Fails once the subscription stops (the semaphore closes).
            if let Ok(permits) = semaphore.acquire_many_owned(from - to).await {
                permits.forget();
            }
        });
    }
}

/// One subscription's loop: takes a message when a delivery slot is free,
/// and runs it with the subscription's current settings.
///
/// `accounting` is counted as dropped, whatever is in it, when the loop
/// ends or is aborted: the deliveries not finished and what is still
/// queued.
async fn run(
    mut accounting: Leftovers,
    current: watch::Receiver<Arc<Prepared>>,
    mut mode: watch::Receiver<Mode>,
    concurrency: Arc<Semaphore>,
    broker: Broker,
) {
    let counts = accounting.counts.clone();
    let mut in_flight = JoinSet::new();
    loop {
        if *mode.borrow() == Mode::Stop {
            break;
        }
        let permit = tokio::select! {
            permit = concurrency.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            changed = mode.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        };
        let delivery = tokio::select! {
            delivery = accounting.queue.next() => delivery,
            changed = mode.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        };
        let Some(delivery) = delivery else { break };
        accounting.hold(&delivery);
        let prepared = current.borrow().clone();
        let (broker, counts, in_hand) =
            (broker.clone(), counts.clone(), accounting.in_hand.clone());
        in_flight.spawn(async move {
            let id = delivery.id;
            delivery::deliver(prepared, delivery, broker, counts).await;
            // Done (delivered, dead-lettered or dropped, and counted):
            // before the slot is free, so that a drain sees it idle only
            // then.
            release(&in_hand, id);
            drop(permit);
        });
        // Finished tasks leave the set.
        while in_flight.try_join_next().is_some() {}
    }
    // Publishes pass it by from now on; what is in hand finishes.
    accounting.queue.close();
    while in_flight.join_next().await.is_some() {}
}

/// The name of the subscription `current` holds.
fn prepared_name(current: &watch::Receiver<Arc<Prepared>>) -> Arc<str> {
    current.borrow().name.clone()
}

/// Forgets a finished delivery.
fn release(in_hand: &std::sync::Mutex<Vec<Delivery>>, id: serverless_messaging::MessageId) {
    in_hand
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|held| held.id != id);
}

/// The messages a subscription's loop took and has not finished, and its
/// queue: counted as dropped, with a log line, when the loop ends (or is
/// aborted) with any of them left.
struct Leftovers {
    name: Arc<str>,
    counts: Arc<PerTopic<DeliveryCounts>>,
    in_hand: InHand,
    /// The subscription's queue, unsubscribed when this goes.
    queue: Subscription,
}

impl Leftovers {
    fn hold(&self, delivery: &Delivery) {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(delivery.clone());
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        // Nothing more comes in: a publisher that had a place already
        // sent into it, so what is left is all here.
        self.queue.close();
        let mut left = std::mem::take(
            &mut *self
                .in_hand
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        while let Some(queued) = self.queue.try_next() {
            left.push(queued);
        }
        if left.is_empty() {
            return;
        }
        for delivery in &left {
            self.counts
                .count(&delivery.message.topic, |c| c.dropped += 1);
        }
        let ids: Vec<String> = left.iter().map(|d| d.id.to_string()).collect();
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
