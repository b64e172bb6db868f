//! The uid sweep, for running without cgroups: when an execution had a uid of its own,
//! a forked helper becomes that uid and sends SIGKILL to every process it may signal
//! (`kill(-1, …)`), again and again until none is left. This also gets daemons that
//! called `setsid` and fork bombs (their forks fail once a SIGKILL is pending).

use std::io;
use std::time::Duration;

/// Rounds of `kill(-1, SIGKILL)` before giving up (zombies waiting for their reaper
/// still count as signalled processes).
const ROUNDS: u32 = 2000;
const PAUSE: Duration = Duration::from_micros(500);

/// Kills every process running as `uid`. Returns true when none is left. Blocks (for a
/// fork, the sweep and a wait): call it from a blocking thread.
pub(crate) fn sweep_uid(uid: u32) -> io::Result<bool> {
    // SAFETY: plain getter.
    let own = unsafe { libc::geteuid() };
    if uid == 0 || uid == own {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to sweep uid {uid}: not a dedicated uid"),
        ));
    }
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: PAUSE.as_nanos() as libc::c_long,
    };
    // SAFETY: between fork and _exit the child calls only async-signal-safe functions
    // (setgroups, setgid, setuid, kill, nanosleep, _exit) on memory prepared before.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setuid(uid) != 0 {
                libc::_exit(2);
            }
            for _ in 0..ROUNDS {
                if libc::kill(-1, libc::SIGKILL) != 0
                    && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                {
                    libc::_exit(0);
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
            libc::_exit(1);
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
        (true, 0) => Ok(true),
        (true, 1) => Ok(false),
        _ => Err(io::Error::other(format!(
            "uid sweep helper failed (status {status:#x})"
        ))),
    }
}
