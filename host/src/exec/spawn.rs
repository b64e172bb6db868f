//! Starting the child: resolving the program through the spec's `PATH`, and what the
//! child does between `fork` and `exec`. That part runs in a copy of a multi-threaded
//! process, so it only makes async-signal-safe system calls on data prepared before the
//! fork (no allocation, no locks).

use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `PATH` when the spec's environment has none (glibc's default for `execvp`, plus the
/// usual local directories).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// Resolves `program` like `execvp` would with the spec's `PATH`, relative entries and
/// paths with a slash taken relative to `cwd`. `None` when nothing executable is there.
pub(crate) fn resolve_program(
    program: &str,
    env: &[(String, String)],
    cwd: &Path,
) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let path = cwd.join(program);
        return is_executable(&path).then_some(path);
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    path_var.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cwd.join(dir).join(program);
        is_executable(&candidate).then_some(candidate)
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Everything the child applies to itself before `exec`, in this order: own session,
/// join the execution cgroup(s), join the network namespace, rlimits, umask, mark
/// inherited descriptors close-on-exec, drop groups, gid and uid.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    pub cgroup_procs: Vec<RawFd>,
    pub netns: Option<RawFd>,
    pub rlimits: Vec<(Resource, libc::rlimit)>,
    pub umask: Option<libc::mode_t>,
    pub run_as: Option<(u32, u32)>,
}

impl ChildSetup {
    /// Adds an rlimit with soft limit `soft` and hard limit `hard`, clamped to the hard
    /// limit this process has now when we cannot raise it.
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64, can_raise: bool) {
        let mut hard = hard;
        if !can_raise {
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain getter into a local.
            if unsafe { libc::getrlimit(resource, &mut current) } == 0 {
                hard = hard.min(current.rlim_max);
            }
        }
        self.rlimits.push((
            resource,
            libc::rlimit {
                rlim_cur: soft.min(hard),
                rlim_max: hard,
            },
        ));
    }

    pub fn limit_core(&mut self, can_raise: bool) {
        self.rlimit(libc::RLIMIT_CORE, 0, 0, can_raise);
    }

    pub fn limit_cpu(&mut self, secs: u64, can_raise: bool) {
        // Soft: SIGXCPU; one second later, hard: SIGKILL.
        self.rlimit(libc::RLIMIT_CPU, secs, secs + 1, can_raise);
    }

    pub fn limit_open_files(&mut self, n: u64, can_raise: bool) {
        self.rlimit(libc::RLIMIT_NOFILE, n, n, can_raise);
    }

    pub fn limit_file_size(&mut self, bytes: u64, can_raise: bool) {
        self.rlimit(libc::RLIMIT_FSIZE, bytes, bytes, can_raise);
    }

    pub fn limit_address_space(&mut self, bytes: u64, can_raise: bool) {
        self.rlimit(libc::RLIMIT_AS, bytes, bytes, can_raise);
    }

    pub fn limit_processes(&mut self, n: u64, can_raise: bool) {
        self.rlimit(libc::RLIMIT_NPROC, n, n, can_raise);
    }

    /// Runs in the child after `fork`. Async-signal-safe: system calls only.
    pub fn apply(&self) -> io::Result<()> {
        // SAFETY: each call is a plain system call on values prepared before the fork.
        unsafe {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &self.cgroup_procs {
                // "0" moves the writing process.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(fd) = self.netns {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (resource, limit) in &self.rlimits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(mask) = self.umask {
                libc::umask(mask);
            }
            mark_inherited_fds_cloexec();
            if let Some((uid, gid)) = self.run_as {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Every descriptor above stderr gets close-on-exec (closing them outright would also
/// close the pipe through which the standard library reports a failed `exec`).
///
/// # Safety
/// Async-signal-safe; meant for the child between fork and exec.
unsafe fn mark_inherited_fds_cloexec() {
    let r = libc::syscall(
        libc::SYS_close_range,
        3 as libc::c_uint,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
    );
    if r == 0 {
        return;
    }
    // Kernels before 5.11: one fcntl per possible descriptor.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
        limit.rlim_cur.min(65536) as RawFd
    } else {
        1024
    };
    for fd in 3..max {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_spec_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/bin:/usr/bin".to_string())];
        let sh = resolve_program("sh", &env, Path::new("/")).expect("sh");
        assert!(sh.ends_with("sh"));
        assert!(resolve_program("definitely-not-a-program-xyz", &env, Path::new("/")).is_none());
        // A PATH without the program's directory does not find it.
        let env = vec![("PATH".to_string(), "/nonexistent".to_string())];
        assert!(resolve_program("sh", &env, Path::new("/")).is_none());
        // Paths with a slash are used as they are.
        assert_eq!(
            resolve_program("/bin/sh", &env, Path::new("/")),
            Some(PathBuf::from("/bin/sh"))
        );
        assert!(resolve_program("/etc/passwd", &env, Path::new("/")).is_none());
        assert!(resolve_program("", &env, Path::new("/")).is_none());
    }
}
