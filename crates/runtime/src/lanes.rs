//! Where guests run: every request starts on the host's async workers, and
//! one that keeps running past a few epoch slices moves to the slow lane,
//! a runtime whose threads have the lowest CPU priority (`SCHED_IDLE` on
//! Linux). The kernel then runs short requests first: a spinning or
//! memory-hungry guest gets whatever CPU the healthy routes leave, instead
//! of delaying each of them by a slice. Its deadline still applies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

/// Set by a request's epoch callback once the guest has run long enough to
/// be moved to the slow lane.
#[derive(Clone, Default)]
pub(crate) struct LongRunning(Arc<AtomicBool>);

impl LongRunning {
    /// Marks the request as long-running.
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a request moved to the slow lane did not finish there.
#[derive(Debug, thiserror::Error)]
#[error("the request's task on the slow lane failed: {0}")]
pub(crate) struct LaneError(#[from] tokio::task::JoinError);

/// The slow lane: as many low-priority threads as there are cores.
pub(crate) struct SlowLane {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
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
            .on_thread_start(lowest_cpu_priority)
            // Guests moved here keep their timers and connections, and may
            // open new ones.
            .enable_all()
            .build()?;
        Ok(Arc::new(SlowLane {
            runtime: Some(runtime),
        }))
    }

    /// Runs `request` on the calling task until `long_running` is marked,
    /// then on the slow lane until it ends. Dropping the returned future
    /// (the client went away) cancels the request wherever it runs.
    pub(crate) async fn run<F>(
        &self,
        long_running: LongRunning,
        request: F,
    ) -> Result<F::Output, LaneError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut request = Box::pin(request);
        let moved = std::future::poll_fn(|context| match request.as_mut().poll(context) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending if long_running.is_marked() => Poll::Ready(Err(())),
            Poll::Pending => Poll::Pending,
        })
        .await;
        match moved {
            Ok(output) => Ok(output),
            Err(()) => match &self.runtime {
                Some(runtime) => Ok(AbortOnDrop(runtime.spawn(request)).await?),
                None => Ok(request.await),
            },
        }
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
struct AbortOnDrop<T>(JoinHandle<T>);

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

    #[tokio::test]
    async fn a_short_request_stays_on_the_calling_task() {
        let lane = SlowLane::new().unwrap();
        let ran_on = lane
            .run(LongRunning::default(), async {
                tokio::task::yield_now().await;
                thread_name()
            })
            .await
            .unwrap();
        assert_ne!(ran_on, "slow-lane");
    }

    #[tokio::test]
    async fn a_long_running_request_finishes_on_the_slow_lane_at_the_lowest_priority() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let (ran_on, policy) = lane
            .run(long_running, async move {
                marker.mark();
                tokio::task::yield_now().await;
                // SAFETY: reads the calling thread's scheduling policy.
                let policy = unsafe { libc::sched_getscheduler(0) };
                (thread_name(), policy)
            })
            .await
            .unwrap();
        assert_eq!(ran_on, "slow-lane");
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    #[tokio::test]
    async fn dropping_a_moved_request_cancels_it() {
        let lane = SlowLane::new().unwrap();
        let long_running = LongRunning::default();
        let marker = long_running.clone();
        let (dropped_sender, dropped) = tokio::sync::oneshot::channel::<()>();
        let request = lane.run(long_running, async move {
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
