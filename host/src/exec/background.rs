//! Clean-up taken off a request's critical path: removing an execution's scratch dir
//! and cgroup once it is over. One long-lived thread at the lowest CPU priority (nice
//! 19) does it in order.
//!
//! Why not tokio's blocking pool: waking a pool thread from a request made the kernel
//! run it at once on the request's CPU (the removal preempted the response), which cost
//! 70-120 µs per execution on two cores. A thread at nice 19 does not preempt the
//! request's thread; it runs when a CPU is free, and still gets its share under load.

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();

/// Runs `job` later on the clean-up thread (at once, here, if it cannot be started).
pub(crate) fn defer(job: impl FnOnce() + Send + 'static) {
    let queue = QUEUE.get_or_init(start);
    let job: Job = Box::new(job);
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
    defer(move || {
        let _ = done.send(());
    });
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
}
