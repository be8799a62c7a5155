//! Where guests run: every request starts on the host's async workers, and
//! one whose guest keeps running past a few epoch slices in a row moves to
//! the slow lane, a runtime whose threads have the lowest CPU priority
//! (`SCHED_IDLE` on Linux). The kernel then runs short requests first: a
//! spinning or memory-hungry guest gets whatever CPU the healthy routes
//! leave, instead of delaying each of them by a slice.
//!
//! The rule: each slice the guest runs through without waiting counts
//! one, each slice in which it waited (however often) takes one back, and
//! the request moves once the count passes [`LONG_RUNNING_SLICES`]. A wait
//! is anything the request is pending on but its own yield at the end of a
//! slice: a body read or write, an outbound call, a timer. So a guest that
//! streams a large body, however long it takes, stays on the workers as
//! long as it keeps waiting on its client or its backends, and its writes
//! never cross threads (on the slow lane each one would be a hand-off to
//! the connection's task on the host's runtime); the odd slice that a busy
//! machine stretches past a tick is taken back by the next wait. A guest
//! that computes through more slices than it waits in moves, however it
//! waits between its stretches: a spin of 3 ms between 1 ms sleeps moves
//! within five of them. One that spins at most about as long as it waits
//! stays; like every guest it yields at the end of every slice, and when
//! the CPU is contended one that has run several slices in all also
//! sleeps a slice at each yield (see `Contention::pause`), so short
//! requests are served before it.
//!
//! The price of moving: under full load a moved request progresses slowly
//! (a `SCHED_IDLE` thread keeps a small share of the CPU, against every
//! other thread of the machine). Its deadline is therefore also enforced
//! from the host's side, and what it leaves behind (its store and pool
//! slot, pooled outbound connections) is handed back to the host's
//! workers.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::limits::LONG_RUNNING_SLICES;

/// How long past its deadline the host waits for a moved request to stop
/// by itself (its own deadline check needs the slow lane to get the CPU)
/// before answering for it.
const DEADLINE_GRACE: Duration = Duration::from_millis(50);

thread_local! {
    /// Whether this thread is one of the slow lane's.
    static ON_SLOW_LANE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread belongs to the slow lane.
pub(crate) fn on_slow_lane() -> bool {
    ON_SLOW_LANE.with(Cell::get)
}

/// How much a request's guest has run without waiting, shared by its
/// epoch callback (which sees each slice end) and [`SlowLane::run`]
/// (which sees it wait): a request whose guest has run through more than
/// [`LONG_RUNNING_SLICES`] whole slices without waiting is marked
/// long-running.
#[derive(Clone, Default)]
pub(crate) struct LongRunning(Arc<Slices>);

#[derive(Default)]
struct Slices {
    /// Set once the guest has run long enough to move; never cleared.
    marked: AtomicBool,
    /// Slices the guest ran through without waiting, less one for each
    /// slice in which it waited.
    unbroken: AtomicU32,
    /// Whether the request waited since the last slice ended.
    waited: AtomicBool,
    /// Slices the guest has run in all.
    total: AtomicU32,
    /// Set from the end of a slice until the pause after it is over: a
    /// request pending meanwhile is yielding, not waiting.
    pausing: AtomicBool,
}

impl LongRunning {
    /// Marks the request as long-running.
    #[cfg(test)]
    pub(crate) fn mark(&self) {
        self.0.marked.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.marked.load(Ordering::Relaxed)
    }

    /// Called by the epoch callback when a slice ends while the guest
    /// runs: counts the slice when the request did not wait during it,
    /// marks the request once more than [`LONG_RUNNING_SLICES`] have
    /// counted, and returns how many slices it has run in all (which
    /// decides its pause). Until [`LongRunning::paused`], the request's
    /// pending is its yield, not a wait.
    pub(crate) fn slice_ran(&self) -> u32 {
        if self.0.waited.swap(false, Ordering::Relaxed) {
            // A slice with a wait earns one unbroken slice back (however
            // many waits it had).
            let _ = self
                .0
                .unbroken
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        } else {
            let unbroken = self
                .0
                .unbroken
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if unbroken > LONG_RUNNING_SLICES {
                self.0.marked.store(true, Ordering::Relaxed);
            }
        }
        self.0.pausing.store(true, Ordering::Relaxed);
        self.0
            .total
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// Called when the pause after a slice is over and the guest runs on.
    pub(crate) fn paused(&self) {
        self.0.pausing.store(false, Ordering::Relaxed);
    }

    /// Called each time the request is pending: unless it is pausing after
    /// a slice, it is waiting, and the slice it is in does not count.
    fn pending(&self) {
        if !self.0.pausing.load(Ordering::Relaxed) {
            self.0.waited.store(true, Ordering::Relaxed);
        }
    }
}

/// Why a request moved to the slow lane did not finish there.
#[derive(Debug)]
pub(crate) enum LaneError {
    /// It was still running past its deadline (and the grace period); it
    /// has been cancelled.
    Deadline,
    /// The slow lane shut down under it: the host is exiting.
    Cancelled,
}

/// The slow lane: as many low-priority threads as there are cores.
pub(crate) struct SlowLane {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// The host's own runtime, learnt from the first request that moves:
    /// tasks that must not run at low priority are spawned there.
    home: OnceLock<Handle>,
    /// Requests moved here since the lane started, for the metrics.
    moved: AtomicU64,
}

impl SlowLane {
    /// Starts the slow lane's threads; they sleep until a request moves
    /// there.
    pub(crate) fn new() -> std::io::Result<Arc<SlowLane>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads)
            .thread_name("slow-lane")
            .on_thread_start(|| {
                ON_SLOW_LANE.with(|on| on.set(true));
                lowest_cpu_priority();
            })
            // Guests moved here keep their timers and connections, and may
            // open new ones.
            .enable_all()
            .build()?;
        Ok(Arc::new(SlowLane {
            runtime: Some(runtime),
            home: OnceLock::new(),
            moved: AtomicU64::new(0),
        }))
    }

    /// How many requests have moved here since the lane started.
    pub(crate) fn moves(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// Spawns `task` on the host's runtime, even when called from the slow
    /// lane (for example a pooled outbound connection that a moved request
    /// opened, and which later requests share).
    pub(crate) fn spawn_at_normal_priority<F>(&self, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.home.get() {
            Some(home) if on_slow_lane() => drop(home.spawn(task)),
            _ => drop(tokio::spawn(task)),
        }
    }

    /// Runs `request` on the calling task until `long_running` is marked,
    /// then on the slow lane until it ends or `deadline` (plus a grace
    /// period) passes. Dropping the returned future (the client went away)
    /// cancels the request wherever it runs. A panic on the slow lane is
    /// resumed here.
    pub(crate) async fn run<F>(
        &self,
        long_running: LongRunning,
        deadline: Instant,
        request: F,
    ) -> Result<F::Output, LaneError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut request = Box::pin(request);
        let moved = std::future::poll_fn(|context| match request.as_mut().poll(context) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending => {
                long_running.pending();
                if long_running.is_marked() {
                    Poll::Ready(Err(()))
                } else {
                    Poll::Pending
                }
            }
        })
        .await;
        if let Ok(output) = moved {
            return Ok(output);
        }
        let Some(runtime) = &self.runtime else {
            return Ok(request.await);
        };
        self.home.get_or_init(Handle::current);
        self.moved.fetch_add(1, Ordering::Relaxed);
        // The request keeps its span (its lines are keyed by it) there.
        let task = AbortOnDrop(runtime.spawn(request.in_current_span()));
        match tokio::time::timeout_at(deadline + DEADLINE_GRACE, task).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(failed)) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Ok(Err(_)) => Err(LaneError::Cancelled),
            // The task is aborted as it drops.
            Err(_) => Err(LaneError::Deadline),
        }
    }
}

impl SlowLane {
    /// Runs `life` (a service's run) on the slow lane from its start; the
    /// returned handle cancels it when dropped.
    pub(crate) fn spawn_service<F>(&self, life: F) -> AbortOnDrop<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = match &self.runtime {
            Some(runtime) => runtime.spawn(life.in_current_span()),
            None => tokio::spawn(life.in_current_span()),
        };
        AbortOnDrop(task)
    }
}

impl Drop for SlowLane {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A task that is cancelled when its handle is dropped.
pub(crate) struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Asks the task to stop at its next await; awaiting the handle then
    /// says when it has (and dropped what it held).
    pub(crate) fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(context)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Gives the calling thread the lowest CPU priority: on Linux
/// `SCHED_IDLE`, which any ordinary thread preempts as soon as it wakes.
/// Elsewhere, or if the kernel refuses, the thread keeps its priority and
/// the slow lane only separates long requests from short ones.
fn lowest_cpu_priority() {
    #[cfg(target_os = "linux")]
    {
        let parameters = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` on the calling thread (pid 0) with a
        // valid parameter block; lowering one's own priority needs no
        // privilege.
        let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters) };
        if result != 0 {
            tracing::debug!(
                "cannot lower the slow lane's CPU priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    fn far_away() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// The calling thread's scheduling policy, where there is one to read.
    fn scheduling_policy() -> Option<i32> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: reads the calling thread's scheduling policy.
            Some(unsafe { libc::sched_getscheduler(0) })
        }
        #[cfg(not(target_os = "linux"))]
        None
    }

    #[tokio::test]
    async fn a_short_request_stays_on_the_calling_task() {
        let lane = SlowLane::new().unwrap();
        let ran_on = lane
            .run(LongRunning::default(), far_away(), async {
                tokio::task::yield_now().await;
                thread_name()
            })
            .await
            .unwrap();
        assert_ne!(ran_on, "slow-lane");
    }

    /// What a guest's epoch callback and the pause after it do at the end
    /// of a slice.
    async fn run_a_slice(long_running: &LongRunning) {
        long_running.slice_ran();
        tokio::task::yield_now().await;
        long_running.paused();
    }

    #[tokio::test]
    async fn a_request_that_waits_within_every_slice_stays_on_the_calling_task() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let counter = long_running.clone();
        let (ran_on, marked) = lane
            .run(long_running, far_away(), async move {
                // Far more slices in all than may run unbroken, with a wait
                // (here on a timer) in each, and now and then one without
                // (a busy machine stretching a short run past a tick).
                for round in 0..10 * LONG_RUNNING_SLICES {
                    tokio::time::sleep(Duration::from_micros(1)).await;
                    run_a_slice(&counter).await;
                    if round % 3 == 0 {
                        run_a_slice(&counter).await;
                    }
                }
                (thread_name(), counter.is_marked())
            })
            .await
            .unwrap();
        assert_ne!(ran_on, "slow-lane");
        assert!(!marked);
        assert_eq!(lane.moves(), 0);
    }

    /// Runs `guest`, given its request's slice counter, through `lane`,
    /// and says which thread it finished on.
    async fn finishes_on<F, G>(lane: &SlowLane, guest: F) -> String
    where
        F: FnOnce(LongRunning) -> G,
        G: Future<Output = ()> + Send + 'static,
    {
        let long_running = LongRunning::default();
        let request = guest(long_running.clone());
        lane.run(long_running, far_away(), async move {
            request.await;
            // A mark takes effect at the request's next pending.
            tokio::task::yield_now().await;
            thread_name()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_request_that_computes_through_slices_between_waits_moves() {
        // A guest that spins three slices, sleeps, and spins again (the
        // slice with the sleep takes one back): it stayed on the workers
        // for good when a wait restarted the count.
        let lane = SlowLane::new().unwrap();
        let ran_on = finishes_on(&lane, |counter| async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_micros(1)).await;
                for _ in 0..3 {
                    run_a_slice(&counter).await;
                }
            }
        })
        .await;
        assert_eq!(ran_on, "slow-lane");
        assert_eq!(lane.moves(), 1);
    }

    #[tokio::test]
    async fn a_request_that_runs_past_the_slices_in_a_row_moves() {
        let lane = SlowLane::new().unwrap();
        let ran_on = finishes_on(&lane, |counter| async move {
            for _ in 0..=LONG_RUNNING_SLICES {
                run_a_slice(&counter).await;
            }
        })
        .await;
        assert_eq!(ran_on, "slow-lane");
        assert_eq!(lane.moves(), 1);
    }

    #[tokio::test]
    async fn a_long_running_request_finishes_on_the_slow_lane_at_the_lowest_priority() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let moved_before = lane.moves();
        let (ran_on, on_lane, policy) = lane
            .run(long_running, far_away(), async move {
                marker.mark();
                tokio::task::yield_now().await;
                (thread_name(), on_slow_lane(), scheduling_policy())
            })
            .await
            .unwrap();
        assert_eq!(ran_on, "slow-lane");
        assert!(on_lane);
        assert_eq!(lane.moves(), moved_before + 1);
        #[cfg(target_os = "linux")]
        assert_eq!(policy, Some(libc::SCHED_IDLE));
        #[cfg(not(target_os = "linux"))]
        let _ = policy;
    }

    #[tokio::test]
    async fn a_moved_request_past_its_deadline_is_answered_for_and_cancelled() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let (dropped_sender, dropped) = tokio::sync::oneshot::channel::<()>();
        let deadline = Instant::now() + Duration::from_millis(100);
        let outcome = lane
            .run(long_running, deadline, async move {
                let _tell_when_dropped = dropped_sender;
                marker.mark();
                // Ignores its deadline, as a starved request would.
                std::future::pending::<()>().await;
            })
            .await;
        assert!(matches!(outcome, Err(LaneError::Deadline)));
        assert!(dropped.await.is_err(), "the request was cancelled");
    }

    #[tokio::test]
    async fn a_panic_on_the_slow_lane_reaches_the_caller() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let caller = tokio::spawn(async move {
            lane.run(long_running, far_away(), async move {
                marker.mark();
                tokio::task::yield_now().await;
                panic!("a host function panicked");
            })
            .await
        });
        let failed = caller.await.unwrap_err();
        assert!(failed.is_panic());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn tasks_spawned_from_the_slow_lane_at_normal_priority_run_on_the_host() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let spawner = lane.clone();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        lane.run(long_running, far_away(), async move {
            marker.mark();
            tokio::task::yield_now().await;
            assert!(on_slow_lane());
            spawner.spawn_at_normal_priority(async move {
                let _ = sender.send(on_slow_lane());
            });
        })
        .await
        .unwrap();
        assert!(!receiver.await.unwrap(), "it ran on a slow-lane thread");
    }

    #[tokio::test]
    async fn dropping_a_moved_request_cancels_it() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let (dropped_sender, dropped) = tokio::sync::oneshot::channel::<()>();
        let request = lane.run(long_running, far_away(), async move {
            let _tell_when_dropped = dropped_sender;
            marker.mark();
            std::future::pending::<()>().await;
        });
        // Poll until it has moved, then give up on it.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), request).await;
        assert!(
            dropped.await.is_err(),
            "the request was dropped, not completed"
        );
    }
}
