//! A group id of its own for each execution. Executions of a language all run as its
//! uid; the kernel lets a process trace, or look into through /proc (`root`, `cwd`,
//! `fd`, `mem`, `environ`), another process only when their uids *and* gids all match
//! (or with CAP_SYS_PTRACE, which user code never has). With a gid of its own, an
//! execution keeps the language's uid (its files in the work dir stay the session's
//! to share) but can no longer reach another execution's private scratch dir and /tmp
//! through `/proc/<pid>/root`, nor read its memory.
//!
//! Gids are handed out round-robin, so that one comes round again long after the
//! processes of its last execution were killed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Gids reserved for one execution at a time.
#[derive(Debug)]
pub(crate) struct GidPool {
    first: u32,
    count: u32,
    queue: Mutex<VecDeque<u32>>,
}

impl GidPool {
    /// The gids `first..first + count`, if this user namespace maps them all (else why
    /// not).
    pub fn new(first: u32, count: u32) -> Result<GidPool, String> {
        let end = first
            .checked_add(count)
            .ok_or_else(|| format!("gids {first} + {count} overflow"))?;
        match std::fs::read_to_string("/proc/self/gid_map") {
            Ok(map) if !maps_all(&map, first, end) => {
                return Err(format!(
                    "gids {first}..{end} are not mapped in this user namespace (/proc/self/gid_map)"
                ))
            }
            _ => {}
        }
        Ok(GidPool {
            first,
            count,
            queue: Mutex::new((first..end).collect()),
        })
    }

    pub fn describe(&self) -> String {
        format!("gids {}..{}", self.first, self.first + self.count)
    }

    /// The gid given back longest ago, if any is free.
    pub fn lease(self: &Arc<Self>) -> Option<GidLease> {
        let gid = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()?;
        Some(GidLease {
            gid,
            pool: Arc::clone(self),
        })
    }
}

/// Whether one line of a `gid_map` (`inside outside count`) covers `first..end`.
fn maps_all(map: &str, first: u32, end: u32) -> bool {
    map.lines().any(|line| {
        let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        match (f.next().flatten(), f.next().flatten(), f.next().flatten()) {
            (Some(inside), Some(_), Some(count)) => {
                inside <= u64::from(first) && u64::from(end) <= inside + count
            }
            _ => false,
        }
    })
}

/// A gid of one execution; back to the end of the queue on drop.
#[derive(Debug)]
pub struct GidLease {
    pub gid: u32,
    pool: Arc<GidPool>,
}

impl Drop for GidLease {
    fn drop(&mut self) {
        self.pool
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(self.gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_are_leased_round_robin_and_never_twice_at_once() {
        let pool = Arc::new(GidPool::new(200_000, 3).unwrap());
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        let c = pool.lease().unwrap();
        assert_eq!([a.gid, b.gid, c.gid], [200_000, 200_001, 200_002]);
        assert!(pool.lease().is_none(), "every gid is in use");
        drop(b);
        drop(a);
        assert_eq!(pool.lease().unwrap().gid, 200_001);
    }

    #[test]
    fn a_range_the_user_namespace_does_not_map_is_refused() {
        let map = "         0     100000      65536\n";
        assert!(maps_all(map, 1000, 2000));
        assert!(!maps_all(map, 200_000, 200_512));
        assert!(
            !maps_all(map, 65_000, 66_000),
            "past the end of the mapping"
        );
        assert!(maps_all("0 0 4294967295\n", 200_000, 200_512));
    }
}
