//! A connection's task polled again at once when it wakes itself while it runs.
//!
//! hyper hands a request body from its dispatcher to the handler through a channel
//! whose two ends are polled by the same task (the connection's), and each hand-over
//! wakes the other end: every request with a body wakes its own task while that task
//! runs. Tokio takes such a task for one that yielded: once it returns `Pending` it is
//! queued again, an idle worker is woken to steal it (a futex wake, an interrupt to a
//! sleeping vCPU), and it is polled once more for nothing. For `/execute` that happened
//! right after the spawn, beside the program that had just started.
//!
//! [`Repoll`] polls the connection again itself when it was woken during its own poll,
//! up to [`MAX_REPOLLS`] times in a row (then the wake is passed on, so that a
//! connection that keeps waking itself still lets other tasks run). A wake from
//! anywhere else goes to the task's waker as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Polls in a row before a self-wake is passed on to the scheduler.
const MAX_REPOLLS: usize = 8;

/// Wraps a connection's future (see the module doc).
pub struct Repoll<F> {
    inner: Pin<Box<F>>,
    state: Arc<State>,
    waker: Waker,
}

struct State {
    /// The task's own waker, as of its last poll.
    task: AtomicWaker,
    /// A poll of the inner future is under way.
    polling: AtomicBool,
    /// The inner future was woken while it was being polled.
    woken: AtomicBool,
}

impl Wake for State {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Either the poll sees `woken` once it has cleared `polling` and goes round
        // again, or this sees `polling` cleared and wakes the task: no wake is lost.
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }
}

impl<F: Future> Repoll<F> {
    pub fn new(inner: F) -> Self {
        let state = Arc::new(State {
            task: AtomicWaker::new(),
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        });
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(state.clone()),
            state,
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.state.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_REPOLLS {
            this.state.woken.store(false, SeqCst);
            this.state.polling.store(true, SeqCst);
            let poll = this.inner.as_mut().poll(&mut inner_cx);
            this.state.polling.store(false, SeqCst);
            if poll.is_ready() {
                return poll;
            }
            if !this.state.woken.load(SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wakes itself on its first `n` polls, then is ready.
    struct SelfWaking(usize);

    impl Future for SelfWaking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 == 0 {
                return Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Counts the wakes it gets.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_self_wake_is_a_poll_at_once_and_no_wake_of_the_task() {
        let count = Arc::new(Counter(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = Repoll::new(SelfWaking(3));
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(count.0.load(SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_passed_on_to_the_scheduler() {
        let count = Arc::new(Counter(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = Repoll::new(SelfWaking(MAX_REPOLLS + 1));
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(SeqCst), 1, "the task is woken to run again");
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_wake_from_elsewhere_reaches_the_task() {
        let count = Arc::new(Counter(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (pending, abort) = futures_util::future::abortable(std::future::pending::<()>());
        let mut f = Repoll::new(pending);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(SeqCst), 0);
        std::thread::spawn(move || abort.abort()).join().unwrap();
        assert_eq!(count.0.load(SeqCst), 1);
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
    }
}
