//! Clean-up taken off a request's critical path: removing an execution's scratch dir
//! and cgroup once it is over. One long-lived thread at the lowest CPU priority (nice
//! 19) does it in order.
//!
//! Why not tokio's blocking pool: waking a pool thread from a request made the kernel
//! run it at once on the request's CPU (the removal preempted the response), which cost
//! 70-120 µs per execution on two cores. A thread at nice 19 does not preempt the
//! request's thread; it runs when a CPU is free, and still gets its share under load.
//!
//! A request can hold its jobs back until its response is out ([`holding`]): an
//! execution hands over two or three jobs as it ends, and each hand-over could wake
//! the thread, a wake-up of the other vCPU while the response is still being made.
//! Held, they go over as one job, one wake-up, after the response.

use std::cell::RefCell;
use std::future::Future;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();

tokio::task_local! {
    /// The jobs held back by the request this task is running, if it holds them.
    static HELD: RefCell<Held>;
}

/// Jobs deferred while a request held them. They are handed to the clean-up thread, as
/// one job, when this is dropped: once the response is out, or whenever the request
/// ends (a dropped request loses none).
#[derive(Default)]
pub struct Held(Vec<Job>);

impl Held {
    /// Whether no job was deferred.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let jobs = std::mem::take(&mut self.0);
        if !jobs.is_empty() {
            send(Box::new(move || jobs.into_iter().for_each(|job| job())));
        }
    }
}

/// Runs `request` with the jobs it defers held back, and returns them with its output.
/// (Code that `request` spawns onto other tasks defers as usual.)
pub async fn holding<F: Future>(request: F) -> (F::Output, Held) {
    HELD.scope(RefCell::new(Held::default()), async {
        let output = request.await;
        (output, HELD.with(|held| held.take()))
    })
    .await
}

/// Runs `job` later on the clean-up thread (at once, here, if it cannot be started).
/// Inside [`holding`], the job waits until the request lets its jobs go.
pub(crate) fn defer(job: impl FnOnce() + Send + 'static) {
    if let Some(job) = hold(Box::new(job)) {
        send(job);
    }
}

/// Runs `job` on the clean-up thread now, even inside [`holding`]: work that prepares
/// for the next executions (a private /tmp made ahead), which a burst of requests may
/// need before this request's response is out.
pub(crate) fn ahead(job: impl FnOnce() + Send + 'static) {
    send(Box::new(job));
}

/// Drops `value` (closes descriptors, say) after the response when a request holds its
/// jobs (see [`holding`]), on the clean-up thread; at once otherwise, where a wake-up of
/// that thread would cost more than the drop.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    if let Some(job) = hold(Box::new(move || drop(value))) {
        job();
    }
}

/// Adds `job` to the jobs the running request holds; gives it back when there is none.
fn hold(job: Job) -> Option<Job> {
    let mut job = Some(job);
    let _ = HELD.try_with(|held| held.borrow_mut().0.extend(job.take()));
    job
}

/// Hands `job` to the clean-up thread now.
fn send(job: Job) {
    let queue = QUEUE.get_or_init(start);
    let rejected = match queue {
        Some(sender) => match sender.lock().unwrap_or_else(|e| e.into_inner()).send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    rejected();
}

/// Waits (at most `limit`) until every job deferred so far has run: for shutdown.
pub fn flush(limit: Duration) {
    if QUEUE.get().is_none() {
        return;
    }
    let (done, finished) = mpsc::channel();
    send(Box::new(move || {
        let _ = done.send(());
    }));
    let _ = finished.recv_timeout(limit);
}

fn start() -> Option<Mutex<Sender<Job>>> {
    let (sender, jobs) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("exec-cleanup".into())
        .spawn(move || {
            // SAFETY: lowers this thread's own priority (Linux: per thread).
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
            for job in jobs {
                job();
            }
        });
    match spawned {
        Ok(_) => Some(Mutex::new(sender)),
        Err(e) => {
            tracing::warn!("cannot start the clean-up thread ({e}): cleaning up inline");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn deferred_jobs_run_in_order_and_flush_waits_for_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let seen = Arc::clone(&seen);
            let count = Arc::clone(&count);
            defer(move || {
                seen.lock().unwrap().push(i);
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
        flush(Duration::from_secs(10));
        assert_eq!(count.load(Ordering::SeqCst), 100);
        let seen = seen.lock().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "out of order: {seen:?}"
        );
    }

    /// Runs `f` on the clean-up thread and waits for it: what it sees has run there.
    fn on_the_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        send(Box::new(move || {
            let _ = tx.send(f());
        }));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the clean-up thread")
    }

    #[tokio::test]
    async fn held_jobs_wait_for_the_request_and_then_run_together() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (value, held) = holding(async {
            for _ in 0..3 {
                let ran = Arc::clone(&ran);
                defer(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                });
            }
            7
        })
        .await;
        assert_eq!(value, 7);
        assert!(!held.is_empty());
        let seen = Arc::clone(&ran);
        assert_eq!(on_the_thread(move || seen.load(Ordering::SeqCst)), 0);
        drop(held);
        flush(Duration::from_secs(10));
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_dropped_midway_loses_none_of_its_jobs() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let request = holding(async move {
            defer(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            std::future::pending::<()>().await
        });
        let timed_out = tokio::time::timeout(Duration::from_millis(20), request).await;
        assert!(timed_out.is_err());
        flush(Duration::from_secs(10));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn outside_a_request_jobs_go_at_once() {
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        defer(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        flush(Duration::from_secs(10));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    /// Counts its drops.
    struct Dropped(Arc<AtomicUsize>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_held_value_is_dropped_after_the_request_and_others_at_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        drop_later(Dropped(Arc::clone(&drops)));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let ((), held) = holding(async { drop_later(Dropped(Arc::clone(&drops))) }).await;
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(held);
        flush(Duration::from_secs(10));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
