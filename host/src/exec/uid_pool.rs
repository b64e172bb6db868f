//! Dedicated uids, for running without cgroups: each execution leases a uid no other
//! execution uses, so that afterwards the uid sweep ([`super::janitor`]) can find and
//! kill everything it left, and `RLIMIT_NPROC` bounds its processes.
//!
//! Uids are handed out round-robin: one given back goes to the end of the queue, so the
//! zombies of an execution that left processes (orphans wait for PID 1 to reap them, and
//! still count against the uid's `RLIMIT_NPROC` until then) are gone long before the
//! uid comes round again. A uid whose sweep had to kill anything is marked, and is
//! leased again only once /proc shows no process of it at all.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::janitor::{self, Swept};

/// Uids reserved for one execution at a time (see
/// [`super::SandboxSettings::uid_pool`]).
#[derive(Debug)]
pub(crate) struct UidPool {
    first: u32,
    count: u32,
    queue: Mutex<VecDeque<Slot>>,
}

#[derive(Debug)]
struct Slot {
    uid: u32,
    /// The last sweep of this uid killed something (or failed): check before reuse.
    tainted: bool,
}

impl UidPool {
    pub fn new(first: u32, count: u32) -> Self {
        let queue = (first..first.saturating_add(count))
            .map(|uid| Slot {
                uid,
                tainted: false,
            })
            .collect();
        Self {
            first,
            count,
            queue: Mutex::new(queue),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "uids {}..{}",
            self.first,
            self.first.saturating_add(self.count)
        )
    }

    /// The uid given back longest ago that has no process left, if any.
    ///
    /// Only a tainted uid costs a look at /proc, and only when it comes round.
    pub fn lease(self: &Arc<Self>) -> Option<UidLease> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..queue.len() {
            let slot = queue.pop_front()?;
            if !slot.tainted || !janitor::has_processes(slot.uid) {
                return Some(UidLease {
                    uid: slot.uid,
                    tainted: AtomicBool::new(false),
                    pool: Arc::clone(self),
                });
            }
            queue.push_back(slot);
        }
        None
    }

    fn give_back(&self, uid: u32, tainted: bool) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Slot { uid, tainted });
    }
}

/// A dedicated uid; goes back to the end of the pool's queue on drop (after its
/// processes were swept).
#[derive(Debug)]
pub(crate) struct UidLease {
    pub uid: u32,
    tainted: AtomicBool,
    pool: Arc<UidPool>,
}

impl UidLease {
    /// Takes note of what the sweep of this uid found: when it had to kill anything
    /// (or could not), the uid's next lease waits until /proc shows no process of it,
    /// zombies included. Logs what went wrong.
    pub fn record_sweep(&self, swept: io::Result<Swept>) {
        let uid = self.uid;
        match swept {
            Ok(Swept::Nothing) => return,
            Ok(Swept::Killed) => {}
            Ok(Swept::Survivors) => {
                tracing::warn!(uid, "processes of the dedicated uid survived the sweep")
            }
            Err(e) => tracing::warn!(uid, "uid sweep failed: {e}"),
        }
        self.tainted.store(true, Ordering::Relaxed);
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        self.pool
            .give_back(self.uid, self.tainted.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_leased_round_robin() {
        let pool = Arc::new(UidPool::new(1_000_000, 3));
        let a = pool.lease().unwrap();
        assert_eq!(a.uid, 1_000_000);
        drop(a);
        // Given back, it waits behind the two never leased.
        let order: Vec<u32> = (0..3)
            .map(|_| {
                let l = pool.lease().unwrap();
                let uid = l.uid;
                std::mem::forget(l);
                uid
            })
            .collect();
        assert_eq!(order, [1_000_001, 1_000_002, 1_000_000]);
        assert!(pool.lease().is_none());
    }

    #[test]
    fn a_tainted_uid_is_leased_again_only_once_no_process_has_it() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to make a process of another uid");
            return;
        }
        let pool = Arc::new(UidPool::new(1_000_100, 1));
        let lease = pool.lease().unwrap();
        let uid = lease.uid;
        // A zombie of that uid, as an orphan of a killed fork bomb is until reaped: it
        // still counts against the uid's RLIMIT_NPROC.
        // SAFETY: the child only calls async-signal-safe functions before _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setuid(uid) != 0 {
                    libc::_exit(1);
                }
                libc::_exit(0);
            }
        }
        // Wait until it is a zombie, without reaping it.
        while !super::super::process::has_exited(pid) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            janitor::has_processes(uid),
            "no zombie of uid {uid}: the child could not become it"
        );
        lease.record_sweep(Ok(Swept::Killed));
        drop(lease);
        assert!(pool.lease().is_none(), "leased while a zombie has the uid");

        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(pool.lease().map(|l| l.uid), Some(uid));
    }
}
