//! Admission: how many requests may run at once, globally and per app, and
//! what happens to the rest. A request past a cap waits in a short queue,
//! bounded in length and in time; when the queue is full or the wait runs
//! out, the client gets `503` with `Retry-After`. The time is one deadline
//! across every gate a request passes, so that it never waits longer than
//! the queue timeout in all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// One cap on running requests, with its bounded queue.
pub(crate) struct Gate {
    cap: u32,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Proof of admission; the slot frees when it is dropped.
pub(crate) struct Admitted {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Gate {
    /// A cap of `running` requests, with as many allowed to queue.
    pub(crate) fn new(cap: u32) -> Gate {
        let running = usize::try_from(cap.max(1)).unwrap_or(usize::MAX);
        Gate {
            cap,
            permits: Arc::new(Semaphore::new(running)),
            waiting: AtomicUsize::new(0),
            max_waiting: running,
        }
    }

    /// How many requests may run at once.
    pub(crate) fn cap(&self) -> u32 {
        self.cap
    }

    /// A slot, waiting until `deadline` at most; `None` when the queue is
    /// full or the wait runs out.
    async fn enter(&self, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.ok().and_then(Result::ok)
    }
}

/// Admits a request through every gate that applies to it, app first so
/// that a busy app does not hold global slots while it waits; `patience`
/// is for all the gates together.
pub(crate) async fn admit(gates: &[&Gate], patience: Duration) -> Option<Admitted> {
    let deadline = serverless_runtime::deadline_after(patience);
    let mut permits = Vec::with_capacity(gates.len());
    for gate in gates {
        permits.push(gate.enter(deadline).await?);
    }
    Some(Admitted { _permits: permits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_past_the_cap_queue_briefly_then_are_refused() {
        let gate = Gate::new(1);
        let first = admit(&[&gate], Duration::from_millis(10)).await;
        assert!(first.is_some());
        // One may wait; it times out because the slot stays taken.
        assert!(admit(&[&gate], Duration::from_millis(20)).await.is_none());
        drop(first);
        assert!(admit(&[&gate], Duration::from_millis(10)).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_timeout_is_one_deadline_across_the_gates() {
        let (app, global) = (Arc::new(Gate::new(1)), Arc::new(Gate::new(1)));
        let app_holder = admit(&[&app], Duration::ZERO).await.unwrap();
        let _global_holder = admit(&[&global], Duration::ZERO).await.unwrap();
        let started = Instant::now();
        let waiter = {
            let (app, global) = (app.clone(), global.clone());
            tokio::spawn(async move {
                let admitted = admit(&[&app, &global], Duration::from_secs(1)).await;
                (admitted.is_some(), started.elapsed())
            })
        };
        // The app's slot frees after 600 ms; the global one never does.
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(app_holder);
        let (admitted, waited) = waiter.await.unwrap();
        assert!(!admitted);
        assert_eq!(waited, Duration::from_secs(1), "not 600 ms + 1 s");
        // Refused, it holds no app slot either.
        assert!(admit(&[&app], Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(Gate::new(1));
        let _running = admit(&[&gate], Duration::from_millis(10)).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { admit(&[&gate], Duration::from_secs(5)).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert!(admit(&[&gate], Duration::from_secs(5)).await.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused without waiting"
        );
        drop(_running);
        assert!(
            waiter.await.unwrap(),
            "the queued request gets the freed slot"
        );
    }
}
