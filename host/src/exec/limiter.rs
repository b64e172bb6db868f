//! A limit on simultaneous executions with a bounded, first-come-first-served queue:
//! past the queue's size a request is refused at once with [`ExecError::Busy`] (the API
//! answers 503 with Retry-After). A waiter that gives up (its future is dropped) leaves
//! the queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ExecError;

/// Default waiting requests.
pub const DEFAULT_QUEUE: usize = 64;

#[derive(Debug)]
pub struct Limiter {
    slots: Arc<Semaphore>,
    max_running: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

/// A running slot; freed on drop.
#[derive(Debug)]
pub struct Permit {
    _permit: OwnedSemaphorePermit,
}

impl Limiter {
    /// At most `max_running` at once (at least 1), `max_queued` more waiting.
    pub fn new(max_running: usize, max_queued: usize) -> Self {
        let max_running = max_running.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max_running)),
            max_running,
            max_queued,
            queued: AtomicUsize::new(0),
        }
    }

    /// Twice the number of cores running, [`DEFAULT_QUEUE`] waiting.
    pub fn with_defaults() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(2 * cores, DEFAULT_QUEUE)
    }

    /// A slot now, or a place in the queue, or `Busy` at once when the queue is full.
    pub async fn acquire(&self) -> Result<Permit, ExecError> {
        // The semaphore is fair: a permit is only free when nobody is waiting.
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Permit { _permit: permit });
        }
        if self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max_queued).then_some(q + 1)
            })
            .is_err()
        {
            return Err(ExecError::Busy);
        }
        let _place = QueuePlace(&self.queued);
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| ExecError::Busy)?;
        Ok(Permit { _permit: permit })
    }

    pub fn max_running(&self) -> usize {
        self.max_running
    }

    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    pub fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// Leaves the queue when the waiter gets its slot or gives up.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn busy_when_queue_full_and_fifo() {
        let limiter = Arc::new(Limiter::new(1, 2));
        let first = limiter.acquire().await.unwrap();
        assert_eq!(limiter.running(), 1);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for i in 0..2 {
            let l = Arc::clone(&limiter);
            let tx = tx.clone();
            waiters.push(tokio::spawn(async move {
                let permit = l.acquire().await.unwrap();
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(permit);
            }));
            // Let it enqueue before the next one.
            while limiter.queued() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(limiter.queued(), 2);
        assert!(matches!(limiter.acquire().await, Err(ExecError::Busy)));

        drop(first);
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.recv().await, Some(1));
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(limiter.queued(), 0);
        assert_eq!(limiter.running(), 0);
    }

    #[tokio::test]
    async fn cancelled_waiter_frees_its_place() {
        let limiter = Arc::new(Limiter::new(1, 1));
        let held = limiter.acquire().await.unwrap();
        let waiter = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.map(|_| ()) })
        };
        while limiter.queued() < 1 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(limiter.acquire().await, Err(ExecError::Busy)));
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(limiter.queued(), 0);
        // The freed place can be taken again, and gets the slot when it frees.
        let next = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.map(|_| ()) })
        };
        while limiter.queued() < 1 {
            tokio::task::yield_now().await;
        }
        drop(held);
        next.await.unwrap().unwrap();
    }
}
