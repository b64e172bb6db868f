//! The uid sweep, for running without cgroups: when an execution had a uid of its own,
//! a forked helper becomes that uid and sends SIGKILL to every process it may signal
//! (`kill(-1, …)`), again and again until none is left. This also gets daemons that
//! called `setsid` and fork bombs (their forks fail once a SIGKILL is pending).

use std::io;
use std::time::Duration;

/// Rounds of (a forked helper's `kill(-1, SIGKILL)` bursts, then a look at /proc)
/// before giving up.
const ROUNDS: u32 = 200;
/// `kill(-1, SIGKILL)` calls per helper: a fork bomb's children forked between two calls
/// are caught by the next.
const BURST: u32 = 4;
const PAUSE: Duration = Duration::from_micros(500);

/// What a sweep found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swept {
    /// No live process ran as the uid: nothing was killed.
    Nothing,
    /// Processes were killed and none is left alive (their zombies may still wait
    /// for a parent, or PID 1, to reap them).
    Killed,
    /// Processes were still alive after every round.
    Survivors,
}

/// Kills every process running as `uid`. Blocks (for a few forks, the sweeps and
/// waits): call it from a blocking thread.
///
/// Whether processes are left is read from /proc (zombies do not count: they are dead
/// and only wait for their parent): `kill(-1)` itself cannot tell, as it succeeds
/// whenever it finds any process at all.
pub(crate) fn sweep_uid(uid: u32) -> io::Result<Swept> {
    // SAFETY: plain getter.
    let own = unsafe { libc::geteuid() };
    if uid == 0 || uid == own {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to sweep uid {uid}: not a dedicated uid"),
        ));
    }
    if !has_live_processes(uid) {
        return Ok(Swept::Nothing);
    }
    for _ in 0..ROUNDS {
        kill_burst(uid)?;
        if !has_live_processes(uid) {
            return Ok(Swept::Killed);
        }
    }
    Ok(Swept::Survivors)
}

/// Forks a helper that becomes `uid` and sends SIGKILL to everything it may signal,
/// [`BURST`] times.
fn kill_burst(uid: u32) -> io::Result<()> {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: PAUSE.as_nanos() as libc::c_long,
    };
    // SAFETY: between fork and _exit the child calls only async-signal-safe functions
    // (setgroups, setuid, kill, nanosleep, _exit) on memory prepared before.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setuid(uid) != 0 {
                libc::_exit(2);
            }
            for _ in 0..BURST {
                libc::kill(-1, libc::SIGKILL);
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: reaping our own helper.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        _ => Err(io::Error::other(format!(
            "uid sweep helper failed (status {status:#x})"
        ))),
    }
}

/// Whether a process that is not a zombie runs as `uid` (real uid), per /proc.
fn has_live_processes(uid: u32) -> bool {
    find_process(uid, false)
}

/// Whether any process runs as `uid` (real uid), zombies included (they count against
/// the uid's `RLIMIT_NPROC` until reaped), per /proc.
pub(crate) fn has_processes(uid: u32) -> bool {
    find_process(uid, true)
}

fn find_process(uid: u32, zombies_count: bool) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            return false;
        };
        let mut live = true;
        let mut matches = false;
        for line in status.lines() {
            if let Some(state) = line.strip_prefix("State:") {
                live = !state.trim_start().starts_with('Z');
            } else if let Some(uids) = line.strip_prefix("Uid:") {
                matches = uids.split_whitespace().next() == Some(&uid.to_string());
                break;
            }
        }
        (live || zombies_count) && matches
    })
}
