//! The epoch ticker: advances the engine's epoch every [`TICK`] while a plugin call is
//! in progress (a call yields to its worker at every tick and traps past its deadline),
//! and costs nothing while none is.
//!
//! A kernel timer does the counting. The first call to start arms a POSIX timer that
//! signals the ticker thread every tick; the last to end disarms it. Both are a system
//! call on the caller's CPU, and a call shorter than a tick (every well-behaved one)
//! wakes no thread at all. The thread used to sleep between calls and be unparked by
//! the first call after a pause (a wake-up on the other CPU: 10-17 µs on the caller's
//! path on a 2-vCPU guest), and then woke once more a tick after the last call, on
//! whichever CPU the program that call had planned was running by then. Where the
//! timer cannot be made, it still works that way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances during a call: a running plugin yields, and its
/// deadline is checked, at every tick.
pub const TICK: Duration = Duration::from_millis(5);

/// Keeps the epoch advancing while any [`Ticking`] guard lives.
pub(crate) struct Ticker {
    /// Calls in progress; arming and disarming happen under this lock.
    active: Mutex<usize>,
    timer: Option<Timer>,
    stop: AtomicBool,
    /// Epoch increments so far.
    ticks: AtomicU64,
    thread: std::thread::Thread,
    tid: libc::pid_t,
}

impl Ticker {
    /// Starts the ticker thread (named `wasm-epoch`).
    pub fn start(engine: Engine) -> std::io::Result<Arc<Ticker>> {
        Self::start_with(engine, true)
    }

    /// `with_timer: false`: the sleeping thread (what a failed timer falls back to).
    fn start_with(engine: Engine, with_timer: bool) -> std::io::Result<Arc<Ticker>> {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel::<libc::pid_t>();
        let (ticker_tx, ticker_rx) = std::sync::mpsc::channel::<Arc<Ticker>>();
        let handle = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                // Blocked here, the timer's signal waits for `sigwaitinfo` below: no
                // handler, and no other thread ever sees it (it is sent to this one).
                let signals = tick_signal_set();
                // SAFETY: changing this thread's own signal mask.
                unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };
                // SAFETY: gettid(2) has no failure mode.
                let _ = tid_tx.send(unsafe { libc::gettid() });
                let Ok(ticker) = ticker_rx.recv() else { return };
                ticker.run(&engine, &signals);
            })?;
        let tid = tid_rx.recv().map_err(std::io::Error::other)?;
        let timer = match with_timer.then(|| Timer::new(tid)).transpose() {
            Ok(timer) => timer,
            Err(e) => {
                tracing::warn!("no POSIX timer for the wasm epoch ({e}); a thread sleeps instead");
                None
            }
        };
        let ticker = Arc::new(Ticker {
            active: Mutex::new(0),
            timer,
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            thread: handle.thread().clone(),
            tid,
        });
        let _ = ticker_tx.send(Arc::clone(&ticker));
        Ok(ticker)
    }

    /// Keeps the epoch advancing until the guard is dropped.
    pub fn ticking(&self) -> Ticking<'_> {
        let mut active = self.lock();
        *active += 1;
        if *active == 1 {
            match &self.timer {
                Some(timer) => timer.set(TICK),
                None => self.thread.unpark(),
            }
        }
        Ticking(self)
    }

    /// Epoch increments so far.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Ends the thread (it deletes the timer on its way out).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        match &self.timer {
            // SAFETY: tgkill(2) to our own thread, whose mask holds the signal for it.
            Some(_) => unsafe {
                libc::syscall(libc::SYS_tgkill, libc::getpid(), self.tid, tick_signal());
            },
            None => self.thread.unpark(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tick(&self, engine: &Engine) {
        engine.increment_epoch();
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    fn run(&self, engine: &Engine, signals: &libc::sigset_t) {
        let stopped = || self.stop.load(Ordering::Acquire);
        match &self.timer {
            Some(timer) => {
                while !stopped() {
                    // SAFETY: waiting for a signal this thread blocks; no info wanted.
                    let signal = unsafe { libc::sigwaitinfo(signals, std::ptr::null_mut()) };
                    if signal == tick_signal() && !stopped() {
                        self.tick(engine);
                    }
                }
                timer.delete();
            }
            None => {
                while !stopped() {
                    if *self.lock() == 0 {
                        // Woken by the first call (an unpark before this park makes
                        // it return at once) or by the stop.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(TICK);
                    self.tick(engine);
                }
            }
        }
    }
}

/// A call in progress (see [`Ticker::ticking`]).
pub(crate) struct Ticking<'a>(&'a Ticker);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        let mut active = self.0.lock();
        *active -= 1;
        if let (0, Some(timer)) = (*active, &self.0.timer) {
            timer.set(Duration::ZERO);
        }
    }
}

/// The real-time signal the timer sends (glibc keeps the first two for itself and
/// moves SIGRTMIN past them; nothing else in the sidecar uses real-time signals).
fn tick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

fn tick_signal_set() -> libc::sigset_t {
    // SAFETY: initialising a local sigset_t with the libc calls made for it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, tick_signal());
        set
    }
}

/// A CLOCK_MONOTONIC POSIX timer whose expirations signal one thread.
struct Timer(libc::timer_t);

// SAFETY: a timer_t is a kernel timer id; timer_settime and timer_delete may be called
// from any thread of the process.
unsafe impl Send for Timer {}
unsafe impl Sync for Timer {}

impl Timer {
    fn new(tid: libc::pid_t) -> std::io::Result<Timer> {
        // SAFETY: a zeroed sigevent filled in for SIGEV_THREAD_ID; the kernel writes
        // the new timer's id into a local.
        unsafe {
            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = tick_signal();
            event.sigev_notify_thread_id = tid;
            let mut id: libc::timer_t = std::mem::zeroed();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut id) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Timer(id))
        }
    }

    /// Fires every `period` from now on; a zero period disarms it.
    fn set(&self, period: Duration) {
        let every = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: every,
            it_value: every,
        };
        // SAFETY: timer_settime(2) on our live timer with a local spec.
        if unsafe { libc::timer_settime(self.0, 0, &spec, std::ptr::null_mut()) } != 0 {
            // Only bad arguments make it fail; say so rather than let a plugin call run
            // without its deadline unnoticed.
            let e = std::io::Error::last_os_error();
            tracing::error!("cannot set the wasm epoch timer: {e}");
        }
    }

    fn delete(&self) {
        // SAFETY: deleting our timer once, as the ticker thread ends.
        unsafe { libc::timer_delete(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    fn ticks_only_while_a_call_is_in_progress(with_timer: bool) {
        let ticker = Ticker::start_with(engine(), with_timer).unwrap();
        assert_eq!(ticker.timer.is_some(), with_timer);
        std::thread::sleep(TICK * 4);
        assert_eq!(ticker.ticks(), 0, "idle: no ticks");
        {
            let _call = ticker.ticking();
            let _overlapping = ticker.ticking();
            std::thread::sleep(TICK * 10);
        }
        let during = ticker.ticks();
        assert!(during >= 1, "no tick in ten periods");
        // At most one tick already on its way as the last call ended.
        std::thread::sleep(TICK * 6);
        assert!(ticker.ticks() <= during + 1, "ticking after the calls");
        ticker.stop();
    }

    #[test]
    fn the_timer_ticks_only_while_a_call_is_in_progress() {
        ticks_only_while_a_call_is_in_progress(true);
    }

    #[test]
    fn the_sleeping_thread_ticks_only_while_a_call_is_in_progress() {
        ticks_only_while_a_call_is_in_progress(false);
    }

    #[test]
    fn a_call_after_a_pause_ticks_again() {
        for with_timer in [true, false] {
            let ticker = Ticker::start_with(engine(), with_timer).unwrap();
            for round in 1..=3 {
                let before = ticker.ticks();
                {
                    let _call = ticker.ticking();
                    std::thread::sleep(TICK * 6);
                }
                assert!(ticker.ticks() > before, "round {round}: no tick");
                std::thread::sleep(TICK * 3);
            }
            ticker.stop();
        }
    }

    #[test]
    fn stop_ends_the_thread() {
        for with_timer in [true, false] {
            let ticker = Ticker::start_with(engine(), with_timer).unwrap();
            let weak = Arc::downgrade(&ticker);
            ticker.stop();
            drop(ticker);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(weak.strong_count(), 0, "the thread still holds the ticker");
        }
    }
}
