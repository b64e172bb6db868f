//! Starting the child: resolving the program through the spec's `PATH`, and the spawn
//! itself, which is what `posix_spawn` does with the setup `posix_spawn` cannot do.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK)`: it runs on a stack of its
//! own in the sidecar's memory, and the calling thread sleeps until it has called
//! `execve` (or died). Nothing of the sidecar's address space is copied, so the cost does
//! not grow with the sidecar's memory as a `fork` does (it was most of the overhead of a
//! short execution). The price is discipline in the child: between `clone` and `execve`
//! it only makes system calls on data prepared before the clone. No allocation, no locks,
//! no glibc wrapper that touches process-wide state (the uid and gid changes are raw
//! system calls: glibc's `setuid` would signal the sidecar's threads), and every signal
//! handler is reset before any signal is let through. A failure comes back through
//! that shared memory: the step that failed and its errno.
//!
//! On cgroup v2 (x86_64), the child is made with `clone3(CLONE_INTO_CGROUP)` instead and
//! is born in its execution group: joining it by writing `cgroup.procs` takes the
//! kernel's `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period
//! (5-17 ms, measured) whenever no other migration happened in the last few ms, so
//! every spaced execution paid it. (On v1 the child writes its `tasks` files instead,
//! which skips that lock; see exec/cgroup.rs.) A kernel without `clone3` or
//! `CLONE_INTO_CGROUP` (before 5.7) gets the join by write.
//!
//! `clone3` (x86_64, Linux >= 5.5) also gives the child `CLONE_CLEAR_SIGHAND`: it is
//! born with every handled signal back at its default, so it only has to reset the
//! signals the sidecar ignores (a few, known after the first spawn), where a child of
//! `clone` asks for every signal's action (~70 system calls, ~18 µs measured here). A
//! working directory given as `/proc/self/fd/N` (a directory the caller holds open) is
//! entered with `fchdir(N)`: the same directory, without a lookup through procfs in
//! the child (~15 µs).
//!
//! The parent's side counts system calls too (each costs 3-6 µs after a program has
//! run, on cold caches): the sidecar's hard limits are read once, `/dev/null` is kept
//! open for every child without stdin, and a program found along `PATH` is
//! remembered for a few seconds and checked with one `stat`.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    resolve_program_in(program, env, cwd, |p| p.to_path_buf())
}

/// [`resolve_program`] for a child that will see the file system differently (its
/// own mount namespace): each candidate is looked at where `host_view` says the
/// sidecar reaches it, and returned as the child will see it.
pub(crate) fn resolve_program_in(
    program: &str,
    env: &[(String, String)],
    cwd: &Path,
    host_view: impl Fn(&Path) -> PathBuf,
) -> Option<PathBuf> {
    let is_executable = |path: &Path| is_executable(&host_view(path));
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
    // A PATH of absolute dirs gives the same answer from any cwd: remembered.
    let key = path_var
        .split(':')
        .all(|dir| dir.starts_with('/'))
        .then(|| (program.to_string(), path_var.to_string()));
    if let Some(found) = key.as_ref().and_then(|k| FOUND.lookup(k)) {
        if is_executable(&found) {
            return Some(found);
        }
    }
    let found = path_var.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cwd.join(dir).join(program);
        is_executable(&candidate).then_some(candidate)
    });
    if let (Some(key), Some(path)) = (key, &found) {
        FOUND.remember(key, path.clone());
    }
    found
}

/// Programs found along a PATH lately, by name and PATH: a lookup checks the program
/// is still there (one `stat`) instead of trying every dir before it (`python3` is in
/// the fourth dir of the default PATH). An answer is used for [`FoundPrograms::FOR`]
/// only, so a program installed into an earlier dir meanwhile is found soon after;
/// programs not found are never remembered.
struct FoundPrograms(Mutex<HashMap<(String, String), (PathBuf, Instant)>>);

static FOUND: std::sync::LazyLock<FoundPrograms> =
    std::sync::LazyLock::new(|| FoundPrograms(Mutex::new(HashMap::new())));

impl FoundPrograms {
    const FOR: Duration = Duration::from_secs(10);
    /// More names than any languages.toml runs: past it, all are forgotten.
    const MAX: usize = 256;

    fn lookup(&self, key: &(String, String)) -> Option<PathBuf> {
        let found = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (path, when) = found.get(key)?;
        (when.elapsed() < Self::FOR).then(|| path.clone())
    }

    fn remember(&self, key: (String, String), path: PathBuf) {
        let mut found = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if found.len() >= Self::MAX {
            found.clear();
        }
        found.insert(key, (path, Instant::now()));
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Everything the child applies to itself before `exec`: the mount namespace (before it
/// enters its working directory, since joining one moves it to the namespace's root),
/// then in this order: own session, join the execution cgroup(s), join the network
/// namespace, rlimits, umask, mark inherited descriptors close-on-exec, drop groups, gid
/// and uid.
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    /// A mount namespace with the execution's private /tmp (see exec/private_tmp.rs).
    pub mntns: Option<RawFd>,
    pub cgroup_procs: Vec<RawFd>,
    /// The v2 execution group's directory: the child is made in it (`clone3` with
    /// `CLONE_INTO_CGROUP`) where the kernel can, and then skips `cgroup_procs`.
    pub cgroup_dir: Option<RawFd>,
    pub netns: Option<RawFd>,
    pub rlimits: Vec<(Resource, libc::rlimit)>,
    pub umask: Option<libc::mode_t>,
    pub run_as: Option<(u32, u32)>,
    /// A Landlock ruleset that scopes signals and abstract unix sockets (made once, see
    /// [`scope_ruleset`]): the child restricts itself to it, a domain of its own.
    pub scope: Option<RawFd>,
}

/// `struct landlock_ruleset_attr` (Linux >= 6.12 reads `scoped`).
#[repr(C)]
struct LandlockRulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const LANDLOCK_SCOPE_SIGNAL: u64 = 1 << 1;
/// The first Landlock ABI with `scoped` (Linux 6.12).
pub(crate) const LANDLOCK_ABI_SCOPED: i64 = 6;

/// The ruleset every child restricts itself to: only scopes (signals and abstract unix
/// sockets), no file system or network rules. One for the sidecar's life: each
/// `landlock_restrict_self` with it makes a new domain all the same.
pub(crate) fn scope_ruleset() -> io::Result<OwnedFd> {
    let attr = LandlockRulesetAttr {
        handled_access_fs: 0,
        handled_access_net: 0,
        scoped: LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
    };
    // SAFETY: a valid attribute of the size we pass; the kernel returns a new
    // descriptor (close-on-exec) or an error.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const LandlockRulesetAttr,
            std::mem::size_of::<LandlockRulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd) })
}

/// The Landlock ABI version the kernel offers, or why there is none.
pub(crate) fn landlock_abi() -> io::Result<i64> {
    // SAFETY: the version query reads no attribute.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<LandlockRulesetAttr>(),
            0 as libc::size_t,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl ChildSetup {
    /// Adds an rlimit with soft limit `soft` and hard limit `hard`, clamped to the hard
    /// limit this process has now when we cannot raise it.
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64, can_raise: bool) {
        let mut hard = hard;
        if !can_raise {
            if let Some(own) = own_hard_limit(resource) {
                hard = hard.min(own);
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

    /// Runs in the child between `clone` and `execve`: system calls only.
    ///
    /// # Safety
    /// Only in the child of [`spawn`], on a setup prepared before the clone.
    unsafe fn apply(&self, born_in_cgroup: bool) -> io::Result<()> {
        unsafe {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            let joins: &[RawFd] = if born_in_cgroup {
                &[]
            } else {
                &self.cgroup_procs
            };
            for &fd in joins {
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
            // Before the rlimits: without close_range, the sidecar's own limit on open
            // files bounds the descriptors to mark, not the child's.
            mark_inherited_fds_cloexec();
            for (resource, limit) in &self.rlimits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(mask) = self.umask {
                libc::umask(mask);
            }
            if let Some((uid, gid)) = self.run_as {
                // Raw system calls: the glibc wrappers would change the credentials of
                // every thread of the sidecar, whose memory this child shares.
                let (uid, gid) = (uid as libc::c_long, gid as libc::c_long);
                if libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, 0 as libc::c_long) != 0
                    || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                    || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // A setuid-root program (su, mount, passwd) or one with file capabilities
            // runs without raising anything: user code cannot climb back to root
            // through one of them.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A domain of its own (no_new_privs first: the kernel asks for it): its
            // processes can signal, and connect to abstract unix sockets of, only
            // processes of the domain, so not another execution running as the same
            // uid, nor (when it runs as that uid too) the sidecar. Landlock also keeps
            // them from tracing or looking into processes outside the domain.
            if let Some(fd) = self.scope {
                if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0 as libc::c_uint) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// Every descriptor above stderr gets close-on-exec.
///
/// # Safety
/// Meant for the child between clone and exec (its descriptor table is its own).
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

/// A child's standard streams, made before it is: the child's ends (given to
/// [`spawn`], then dropped) and the parent's. What the caller must do with its ends
/// (register them with the reactor) it does before the spawn, so that once the child
/// runs the caller only has to wait (work done after the spawn delays the child, which
/// starts on the caller's CPU).
#[derive(Debug)]
pub(crate) struct Stdio {
    pub child: ChildStdio,
    /// `None` when the child's stdin is `/dev/null`.
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The child's ends of its standard streams.
#[derive(Debug)]
pub(crate) struct ChildStdio {
    /// `None`: `/dev/null`, open once for every child (see [`dev_null`]).
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

impl ChildStdio {
    fn raw(&self) -> io::Result<[RawFd; 3]> {
        let stdin = match &self.stdin {
            Some(fd) => fd.as_raw_fd(),
            None => dev_null()?,
        };
        Ok([stdin, self.stdout.as_raw_fd(), self.stderr.as_raw_fd()])
    }
}

impl Stdio {
    /// Pipes for stdout and stderr, and for stdin when `stdin` (else `/dev/null`). The
    /// sidecar's ends are non-blocking (the child's are not: programs expect blocking
    /// standard streams).
    /// `output_capacity`: ask the kernel for output pipes of this many bytes (best
    /// effort: past the per-user pipe quota they keep the default 64 KiB).
    pub fn new(stdin: bool, output_capacity: Option<usize>) -> io::Result<Stdio> {
        let (stdin_child, stdin_parent) = if stdin {
            let (r, w) = pipe()?;
            (Some(r), Some(nonblocking(w)?))
        } else {
            (None, None)
        };
        let (stdout, stdout_child) = pipe()?;
        let (stderr, stderr_child) = pipe()?;
        let (stdout, stderr) = (nonblocking(stdout)?, nonblocking(stderr)?);
        if let Some(bytes) = output_capacity {
            for fd in [&stdout, &stderr] {
                // SAFETY: fcntl(2) on a pipe we own; failure leaves it as it was.
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) };
            }
        }
        Ok(Stdio {
            child: ChildStdio {
                stdin: stdin_child,
                stdout: stdout_child,
                stderr: stderr_child,
            },
            stdin: stdin_parent,
            stdout,
            stderr,
        })
    }
}

/// The sidecar's own hard limit on `resource`, read at the first ask. Without
/// CAP_SYS_RESOURCE a process can only lower its hard limits, and the sidecar never
/// does (it raises its soft limit on open files to the hard one at start-up), so the
/// value stays true; reading it for every child cost four system calls a spawn.
fn own_hard_limit(resource: Resource) -> Option<u64> {
    static HARD: std::sync::OnceLock<Vec<Option<u64>>> = std::sync::OnceLock::new();
    let hard = HARD.get_or_init(|| {
        (0..=libc::RLIMIT_RTTIME)
            .map(|r| {
                let mut current = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: plain getter into a local.
                (unsafe { libc::getrlimit(r as Resource, &mut current) } == 0)
                    .then_some(current.rlim_max)
            })
            .collect()
    });
    hard.get(resource as usize).copied().flatten()
}

/// Size of the stack the child runs on until `execve` (it needs a few KiB).
const CHILD_STACK: usize = 64 * 1024;

/// Everything the child reads, prepared before the clone.
struct ChildArgs<'a> {
    program: &'a CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: &'a CStr,
    /// Becomes the child's stdin, stdout and stderr.
    stdio: [RawFd; 3],
    setup: &'a ChildSetup,
    /// The errno of the step that failed, written by the child before it exits.
    error: AtomicI32,
    /// Which step failed (a [`Step`] as u8).
    step: AtomicU8,
    /// Made by `clone3` straight into `setup.cgroup_dir`.
    born_in_cgroup: bool,
    /// Made by `clone3` with `CLONE_CLEAR_SIGHAND`: only `ignored` needs a reset.
    handlers_cleared: bool,
    /// The signals the sidecar ignores (see [`ignored_signals`]).
    ignored: &'a [libc::c_int],
    /// Entered with `fchdir` instead of `cwd` (see [`held_open`]).
    cwd_fd: Option<RawFd>,
}

/// The child's steps before `execve`, to say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Stdio = 1,
    Chdir = 2,
    Sandbox = 3,
    Exec = 4,
}

impl Step {
    fn from_u8(n: u8) -> Step {
        match n {
            1 => Step::Stdio,
            2 => Step::Chdir,
            3 => Step::Sandbox,
            _ => Step::Exec,
        }
    }
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    /// The clone itself, or preparing its arguments.
    #[error("{0}")]
    Parent(#[from] io::Error),
    /// A step of the child before `execve`, or `execve` itself.
    #[error("{}: {error}", match step {
        Step::Stdio => "cannot set up the standard streams",
        Step::Chdir => "cannot enter the working directory",
        Step::Sandbox => "cannot apply the sandbox (namespaces, cgroup, rlimits or uid)",
        Step::Exec => "cannot execute the program",
    })]
    Child { step: Step, error: io::Error },
    /// The child was stopped before its `execve` (SIGSTOP from a process of its uid:
    /// user code of another execution) and killed by the watchdog.
    #[error(
        "the child was stopped before it could exec (by a process of its uid) and killed after {0:?}"
    )]
    Stopped(std::time::Duration),
}

/// Starts `program` with `argv` (`argv[0]` as given), exactly `env`, in `cwd`, after
/// `setup`, with `stdio` (the child's ends of [`Stdio`]) as its standard streams;
/// returns its pid. An error means nothing runs: the child, if one was made, is reaped.
pub(crate) fn spawn(
    program: &Path,
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    stdio: &ChildStdio,
    setup: &ChildSetup,
) -> Result<libc::pid_t, SpawnError> {
    let invalid = |_| {
        SpawnError::Parent(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL byte in argv or env",
        ))
    };
    let program = CString::new(program.as_os_str().as_bytes()).map_err(invalid)?;
    let cwd_fd = held_open(cwd);
    let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(invalid)?;
    let argv = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let envp = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&envp);

    let mut args = ChildArgs {
        program: &program,
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        cwd: &cwd,
        stdio: stdio.raw()?,
        setup,
        error: AtomicI32::new(0),
        step: AtomicU8::new(0),
        born_in_cgroup: false,
        handlers_cleared: false,
        ignored: ignored_signals(),
        cwd_fd,
    };
    let mut stack = Vec::<u8>::with_capacity(CHILD_STACK);
    // The stack grows down from its 16-byte aligned top.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut libc::c_void;

    if setup.run_as.is_some() {
        stay_undumpable();
    }
    // SAFETY: the child only reads `args` (alive until `clone` returns, which with
    // CLONE_VFORK is after the child's `execve` or exit) and runs on `stack`; signals
    // are blocked around the clone so that no handler of the sidecar runs in the child
    // before it has reset them.
    let watched = watchdog::watch();
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        // (The child reads these two flags: set before the clone, undone if it failed.)
        args.born_in_cgroup = setup.cgroup_dir.is_some();
        args.handlers_cleared = true;
        let mut pid = -1;
        if !plain_clone() {
            pid = clone3(
                &mut args,
                setup.cgroup_dir,
                stack.as_mut_ptr(),
                top as usize - stack.as_mut_ptr() as usize,
                watched.tid.as_ptr(),
            );
        }
        if pid < 0 {
            args.born_in_cgroup = false;
            args.handlers_cleared = false;
            pid = libc::clone(
                child_main,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT_SETTID | libc::SIGCHLD,
                std::ptr::addr_of!(args).cast_mut().cast(),
                // The kernel writes the child's pid here before the child runs.
                watched.tid.as_ptr(),
            );
        }
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            watched.done();
            return Err(clone_error.into());
        }
        pid
    };
    drop(stack);
    if watched.done() {
        reap_blocking(pid);
        return Err(SpawnError::Stopped(watchdog::STUCK));
    }
    let error = args.error.load(Ordering::Acquire);
    if error != 0 {
        reap_blocking(pid);
        return Err(SpawnError::Child {
            step: Step::from_u8(args.step.load(Ordering::Acquire)),
            error: io::Error::from_raw_os_error(error),
        });
    }
    Ok(pid)
}

/// Runs `child` in a forked child and returns the code it gives (its exit status), for
/// the probes at start-up: can a child join this cgroup, this namespace? An error means
/// the fork failed or the child did not exit normally.
///
/// # Safety
/// `child` runs in a fork of a multi-threaded process: only async-signal-safe calls (raw
/// system calls) on data prepared before, no allocation, no locks.
pub(crate) unsafe fn probe_in_child(
    child: impl FnOnce() -> libc::c_int,
) -> io::Result<libc::c_int> {
    // SAFETY: the caller's promise about `child`; the child ends with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(io::Error::other("the probing child did not exit normally"))
    }
}

/// Children stuck before `execve`. The spawning thread sleeps in `clone` until its
/// child has exec'd (CLONE_VFORK), and after the child's uid drop a process of user code
/// (same uid) may send it SIGSTOP, which cannot be blocked: the thread, a tokio worker,
/// would then sleep forever. A watchdog thread SIGKILLs a child still short of exec after
/// [`STUCK`], which wakes the spawning thread with an error.
///
/// The watchdog wakes only when a spawn it watches could be stuck: it sleeps until the
/// oldest one's deadline, or [`STUCK`] when none is in flight, and after [`IDLE_ROUNDS`]
/// such empty rounds it parks until the next spawn unparks it. An idle sidecar has no
/// thread waking up, and none lands on a program while it runs.
mod watchdog {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    /// A child this long before exec is stuck (a normal set-up takes well under 20 ms).
    pub const STUCK: Duration = Duration::from_secs(2);
    /// Rounds of [`STUCK`] with nothing in flight before the watchdog parks.
    const IDLE_ROUNDS: u32 = 3;

    struct Entry {
        id: u64,
        since: Instant,
        tid: Arc<AtomicI32>,
        killed: Arc<AtomicBool>,
    }

    static IN_FLIGHT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    static NEXT: AtomicU64 = AtomicU64::new(0);
    /// The watchdog thread, once started.
    static THREAD: OnceLock<Option<Thread>> = OnceLock::new();
    /// Set, under the `IN_FLIGHT` lock, by the watchdog about to park; cleared by the
    /// spawn that unparks it.
    static PARKED: AtomicBool = AtomicBool::new(false);

    /// One spawn under watch, until [`Watched::done`].
    pub struct Watched {
        id: u64,
        /// Where the kernel puts the child's pid (CLONE_PARENT_SETTID).
        pub tid: Arc<AtomicI32>,
        killed: Arc<AtomicBool>,
    }

    impl Watched {
        /// Ends the watch; true when the watchdog killed the child.
        pub fn done(&self) -> bool {
            let mut list = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|e| e.id != self.id);
            self.killed.load(Ordering::Acquire)
        }
    }

    pub fn watch() -> Watched {
        let thread = THREAD.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("spawn-watchdog".into())
                .spawn(run);
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(e) => {
                    tracing::warn!("cannot start the spawn watchdog: {e}");
                    None
                }
            }
        });
        let watched = Watched {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            tid: Arc::new(AtomicI32::new(0)),
            killed: Arc::new(AtomicBool::new(false)),
        };
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                id: watched.id,
                since: Instant::now(),
                tid: Arc::clone(&watched.tid),
                killed: Arc::clone(&watched.killed),
            });
        // The watchdog sets PARKED under the lock taken above, after finding the list
        // empty: either it saw this entry, or this sees its flag. An unpark that comes
        // before its park makes the park return at once.
        if PARKED.swap(false, Ordering::AcqRel) {
            if let Some(thread) = thread {
                thread.unpark();
            }
        }
        watched
    }

    fn run() {
        let mut idle = 0;
        loop {
            let next = {
                let list = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                for e in list.iter().filter(|e| now - e.since >= STUCK) {
                    let tid = e.tid.load(Ordering::Acquire);
                    if tid > 0 && !e.killed.swap(true, Ordering::AcqRel) {
                        tracing::warn!(pid = tid, "a child stuck before exec: killed");
                        // SAFETY: our own unreaped child (its spawner is still in
                        // `clone`, and the entry is removed, under this lock, before it
                        // reaps).
                        unsafe { libc::kill(tid, libc::SIGKILL) };
                    }
                }
                // Entries already killed wait for their spawner to remove them: look
                // again a round later.
                let oldest = list
                    .iter()
                    .filter(|e| !e.killed.load(Ordering::Acquire))
                    .map(|e| e.since)
                    .min();
                if list.is_empty() {
                    idle += 1;
                    if idle > IDLE_ROUNDS {
                        PARKED.store(true, Ordering::Release);
                    }
                } else {
                    idle = 0;
                }
                match oldest {
                    Some(since) => Some((since + STUCK).saturating_duration_since(now)),
                    None if idle > IDLE_ROUNDS => None,
                    None => Some(STUCK),
                }
            };
            match next {
                Some(wait) => std::thread::sleep(wait.max(Duration::from_millis(1))),
                None => {
                    // Spurious returns, or an unpark from before, only mean one more round.
                    std::thread::park();
                    idle = 0;
                }
            }
        }
    }
}

/// Makes the sidecar non-dumpable, for good, before its first child drops to a uid.
///
/// Between its uid drop and `execve` the child runs with the uid of user code in the
/// sidecar's memory. Were that memory dumpable, a process of user code (same uid; Yama
/// may allow any same-uid ptrace) could attach to the child in that window and own
/// the sidecar. The kernel marks the shared mm non-dumpable on the child's uid change
/// anyway; doing it first, and never undoing it, closes the window for every spawn,
/// including concurrent ones. The cost: no core dumps of the sidecar, and its /proc
/// files belong to root (it runs as root when it drops uids).
fn stay_undumpable() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        // SAFETY: sets a flag of this process.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong) } != 0 {
            tracing::warn!(
                "cannot make the sidecar non-dumpable: {}",
                io::Error::last_os_error()
            );
        }
    });
}

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (Linux 5.7).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// Set once the kernel refused `clone3` itself or one of its flags (see [`clone3`]):
/// every later child is made by `clone`.
static CLONE3_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Makes the child as [`spawn`]'s `clone` does, but with its signal handlers cleared
/// and, given `cgroup`, inside the cgroup open there. Returns its pid, or -1 when the
/// kernel cannot (nothing was made; use `clone`).
///
/// # Safety
/// As for `clone` in [`spawn`]: signals blocked, `args` alive until this returns, and
/// `stack` (`size` bytes, 16-byte aligned end) unused by anything else.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3(
    args: &mut ChildArgs,
    cgroup: Option<RawFd>,
    stack: *mut u8,
    size: usize,
    parent_tid: *mut libc::pid_t,
) -> libc::pid_t {
    if CLONE3_UNAVAILABLE.load(Ordering::Relaxed) {
        return -1;
    }
    let clone_args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT_SETTID) as u64
            | CLONE_CLEAR_SIGHAND
            | if cgroup.is_some() {
                CLONE_INTO_CGROUP
            } else {
                0
            },
        pidfd: 0,
        child_tid: 0,
        parent_tid: parent_tid as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: size as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.unwrap_or(0) as u64,
    };
    let arg: *mut libc::c_void = std::ptr::addr_of_mut!(*args).cast();
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = child_main;
    let ret: i64;
    // SAFETY: the raw system call returns twice. The parent gets the pid (or -errno)
    // and goes on as after any system call. The child starts on its own stack with the
    // parent's registers: it calls `child_main(arg)` at once, which never returns
    // (it execs or exits), and never touches the parent's stack frame.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") std::ptr::addr_of!(clone_args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    if ret < 0 {
        let errno = -ret as i32;
        // Too old a kernel (no clone3; 5.3-5.6, which refuse the larger struct that
        // carries the cgroup; or before 5.5, without CLONE_CLEAR_SIGHAND): not again.
        // Other errors (the cgroup's) fall back this once.
        if matches!(errno, libc::ENOSYS | libc::E2BIG)
            || (errno == libc::EINVAL && cgroup.is_none())
        {
            CLONE3_UNAVAILABLE.store(true, Ordering::Relaxed);
        }
        return -1;
    }
    ret as libc::pid_t
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3(
    _: &mut ChildArgs,
    _: Option<RawFd>,
    _: *mut u8,
    _: usize,
    _: *mut libc::pid_t,
) -> libc::pid_t {
    -1
}

/// The child, on its own stack in the sidecar's memory: only system calls from here.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` of `spawn`, alive while the parent waits.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: we are that child.
    let (step, error) = unsafe { child_exec(args) };
    args.step.store(step as u8, Ordering::Release);
    args.error.store(error.max(1), Ordering::Release);
    // SAFETY: ends this process (not the sidecar: it is a process of its own).
    unsafe { libc::_exit(127) }
}

/// Sets the child up and calls `execve`; returns the step that failed and its errno.
///
/// # Safety
/// Only in the child of [`spawn`].
unsafe fn child_exec(args: &ChildArgs) -> (Step, i32) {
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    unsafe {
        reset_signal_handlers(args.handlers_cleared.then_some(args.ignored));
        for (target, &fd) in args.stdio.iter().enumerate() {
            // The sources are all above stderr (see `above_stdio`), so none is overwritten.
            if libc::dup2(fd, target as libc::c_int) < 0 {
                return (Step::Stdio, errno());
            }
        }
        if let Some(fd) = args.setup.mntns {
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                return (Step::Sandbox, errno());
            }
        }
        let entered = match args.cwd_fd {
            Some(fd) => libc::fchdir(fd),
            None => libc::chdir(args.cwd.as_ptr()),
        };
        if entered != 0 {
            return (Step::Chdir, errno());
        }
        if let Err(e) = args.setup.apply(args.born_in_cgroup) {
            return (Step::Sandbox, e.raw_os_error().unwrap_or(libc::EIO));
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(args.program.as_ptr(), args.argv, args.envp);
        (Step::Exec, errno())
    }
}

/// Every signal goes back to its default action: the handlers the sidecar installed,
/// SIGPIPE (which Rust programs ignore), and whatever the sidecar's own parent made it
/// ignore (a shell's `cmd &` ignores SIGINT and SIGQUIT), which `execve` would pass on
/// to user code. `cleared`: the child was born with its handlers at their default
/// (`CLONE_CLEAR_SIGHAND`), and only these ignored signals are left to reset; else
/// every signal's action is asked for.
///
/// # Safety
/// Only in the child of [`spawn`], with every signal blocked.
unsafe fn reset_signal_handlers(cleared: Option<&[libc::c_int]>) {
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        if let Some(ignored) = cleared {
            for &signal in ignored {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
            return;
        }
        for signal in 1..libc::SIGRTMAX() + 1 {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            if current.sa_sigaction != libc::SIG_DFL {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

/// The signals this process ignores (`SIG_IGN`), which `execve` would pass on to user
/// code: SIGPIPE (Rust programs ignore it) and whatever the sidecar's parent made it
/// ignore. Read at the first spawn; the sidecar ignores no signal after start-up.
fn ignored_signals() -> &'static [libc::c_int] {
    static IGNORED: std::sync::OnceLock<Vec<libc::c_int>> = std::sync::OnceLock::new();
    IGNORED.get_or_init(|| {
        (1..libc::SIGRTMAX() + 1)
            .filter(|&signal| {
                // SAFETY: only asks for the signal's action.
                let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
                let asked = unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) };
                asked == 0 && current.sa_sigaction == libc::SIG_IGN
            })
            .collect()
    })
}

/// The descriptor a working directory given as `/proc/self/fd/N` names (a directory
/// the caller holds open, as the runner passes its pinned work dir): the child, whose
/// descriptor table is a copy of the sidecar's, enters it with `fchdir(N)`.
pub(crate) fn held_open(cwd: &Path) -> Option<RawFd> {
    let n = cwd.as_os_str().as_bytes().strip_prefix(b"/proc/self/fd/")?;
    if n.is_empty() || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A close-on-exec pipe: (read end, write end), both above stderr.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// Sets `O_NONBLOCK` on a pipe end we just made (its other flags are known: none).
fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(2) on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `/dev/null`, opened at the first ask and kept: a child without stdin gets it
/// (opening it for each cost two system calls a spawn).
fn dev_null() -> io::Result<RawFd> {
    static DEV_NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    let fd = above_stdio(file.into())?;
    Ok(DEV_NULL.get_or_init(|| fd).as_raw_fd())
}

/// A descriptor numbered 3 or above (a sidecar started with a standard stream closed
/// gets its pipes there, and the child's `dup2` onto 0-2 would then overwrite them).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a fresh descriptor we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Reaps the child `pid`, waiting for it to exit; its wait status, or `None` when it
/// is not our child (any more).
pub(crate) fn reap_blocking(pid: libc::pid_t) -> Option<std::process::ExitStatus> {
    loop {
        match reap(pid, 0) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(status) => return status,
            Err(_) => return None,
        }
    }
}

/// `waitpid(pid, flags)`: `Ok(None)` when `WNOHANG` found it still running.
pub(crate) fn reap(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<std::process::ExitStatus>> {
    reap_with_cpu_time(pid, flags).map(|r| r.map(|(status, _)| status))
}

/// `wait4(pid, flags)`: the wait status and the CPU time (user and system) of the
/// process and of the descendants it waited for; `Ok(None)` when `WNOHANG` found it
/// still running. (Not `ru_maxrss`: a child that `execve`s counts the memory its parent
/// had, the sidecar's, as its own.)
pub(crate) fn reap_with_cpu_time(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<(std::process::ExitStatus, std::time::Duration)>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    // SAFETY: zeroed plain C struct, filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4(2) on our own child into locals.
    match unsafe { libc::wait4(pid, &mut status, flags, &mut usage) } {
        0 => Ok(None),
        r if r < 0 => Err(io::Error::last_os_error()),
        _ => {
            let time = |t: libc::timeval| {
                std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
                    + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
            };
            let cpu = time(usage.ru_utime) + time(usage.ru_stime);
            Ok(Some((std::process::ExitStatus::from_raw(status), cpu)))
        }
    }
}

/// Whether this thread's spawns skip `clone3`: never, but tests ask for it, as where
/// the kernel or a seccomp filter refuses it (Docker's default profile does).
#[cfg(not(test))]
fn plain_clone() -> bool {
    false
}

#[cfg(test)]
fn plain_clone() -> bool {
    tests::PLAIN_CLONE.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        pub static PLAIN_CLONE: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs `argv` in `cwd` and returns its stdout.
    fn output_of(argv: &[&str], cwd: &str) -> String {
        use std::io::Read;
        let stdio = Stdio::new(false, None).unwrap();
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let pid = spawn(
            Path::new(&argv[0]),
            &argv,
            &[],
            Path::new(cwd),
            &stdio.child,
            &ChildSetup::default(),
        )
        .unwrap();
        drop(stdio.child);
        let mut out = String::new();
        let mut reader = std::fs::File::from(stdio.stdout);
        // The parent's end is non-blocking: wait for the exit first.
        reap_blocking(pid).unwrap();
        reader.read_to_string(&mut out).unwrap();
        out
    }

    /// A child made by plain `clone` (no `CLONE_CLEAR_SIGHAND`) asks for every signal's
    /// action and passes on none the sidecar ignores: here SIGPIPE, which Rust ignores
    /// in this test process too. (Handled ones `execve` resets itself.)
    #[test]
    fn a_child_of_plain_clone_resets_every_ignored_signal() {
        // SAFETY: only asks for SIGPIPE's action.
        let ignored = unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current);
            current.sa_sigaction == libc::SIG_IGN
        };
        assert!(ignored, "the test process should ignore SIGPIPE");
        PLAIN_CLONE.with(|p| p.set(true));
        let status = output_of(&["/bin/cat", "/proc/self/status"], "/");
        PLAIN_CLONE.with(|p| p.set(false));
        let line = status.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        // Signals 32 and 33 belong to glibc; the rest must be clear.
        assert_eq!(mask & !(0b11 << 31), 0, "{status}");
    }

    /// A program found along PATH is remembered, but never past its removal.
    #[test]
    fn a_remembered_program_is_looked_at_again() {
        let dirs = tempfile::tempdir().unwrap();
        let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let env = [(
            "PATH".to_string(),
            format!("{}:{}", a.display(), b.display()),
        )];
        let program = b.join("tool");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cwd = Path::new("/");
        assert_eq!(resolve_program("tool", &env, cwd), Some(program.clone()));
        assert_eq!(resolve_program("tool", &env, cwd), Some(program.clone()));
        // Gone: not found, although it was just remembered.
        std::fs::remove_file(&program).unwrap();
        assert_eq!(resolve_program("tool", &env, cwd), None);
        // No longer executable: not found either.
        std::fs::write(a.join("tool"), "x").unwrap();
        assert_eq!(resolve_program("tool", &env, cwd), None);
        std::fs::set_permissions(a.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve_program("tool", &env, cwd), Some(a.join("tool")));
    }

    /// A working directory given as `/proc/self/fd/N` is the directory open there.
    #[test]
    fn a_held_open_directory_is_entered_by_its_descriptor() {
        assert_eq!(held_open(Path::new("/proc/self/fd/12")), Some(12));
        for not in [
            "/proc/self/fd/",
            "/proc/self/fd/1a",
            "/tmp",
            "/proc/self/fd/3/x",
        ] {
            assert_eq!(held_open(Path::new(not)), None, "{not}");
        }
        let dir = tempfile::tempdir().unwrap();
        let held = std::fs::File::open(dir.path()).unwrap();
        let cwd = format!("/proc/self/fd/{}", held.as_raw_fd());
        let shown = output_of(&["/bin/pwd", "-P"], &cwd);
        let real = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(shown.trim(), real.to_str().unwrap());
    }

    fn failed_step(cwd: &str, program: &str, setup: &ChildSetup) -> (Step, io::ErrorKind) {
        let stdio = Stdio::new(false, None).unwrap();
        let env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
        match spawn(
            Path::new(program),
            &[program.to_string()],
            &env,
            Path::new(cwd),
            &stdio.child,
            setup,
        ) {
            Err(SpawnError::Child { step, error }) => (step, error.kind()),
            Err(e) => panic!("failed in the parent: {e}"),
            Ok(pid) => panic!("{program} in {cwd} started (pid {pid})"),
        }
    }

    /// A failed start says which step failed, and the child is reaped.
    #[test]
    fn a_failed_start_names_its_step() {
        let ok = ChildSetup::default();
        assert_eq!(
            failed_step("/nonexistent-dir", "/bin/true", &ok),
            (Step::Chdir, io::ErrorKind::NotFound)
        );
        assert_eq!(
            failed_step("/", "/etc/passwd", &ok).0,
            Step::Exec,
            "a file that is not executable"
        );
        // setns on a descriptor that is not a namespace.
        let not_a_namespace = ChildSetup {
            netns: Some(0),
            ..ChildSetup::default()
        };
        assert_eq!(
            failed_step("/", "/bin/true", &not_a_namespace).0,
            Step::Sandbox
        );
        let message = SpawnError::Child {
            step: Step::Sandbox,
            error: io::Error::from_raw_os_error(libc::EPERM),
        }
        .to_string();
        assert!(message.starts_with("cannot apply the sandbox"), "{message}");
    }

    /// On cgroup v2 the child is born in its group (`clone3` with `CLONE_INTO_CGROUP`):
    /// here with no `cgroup.procs` to write, so only that can put it there. Uses the
    /// hybrid hierarchy's cgroup2 mount where there is one (skipped otherwise).
    #[test]
    fn a_child_is_made_inside_its_v2_group() {
        let unified = Path::new("/sys/fs/cgroup/unified");
        // SAFETY: plain getter.
        if !cfg!(target_arch = "x86_64")
            || unsafe { libc::geteuid() } != 0
            || !unified.join("cgroup.procs").exists()
        {
            eprintln!("skipped: needs root, x86_64 and a cgroup2 mount at {unified:?}");
            return;
        }
        let dir = unified.join(format!("spawn-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let group = std::fs::File::open(&dir).unwrap();
        let setup = ChildSetup {
            cgroup_dir: Some(group.as_raw_fd()),
            ..ChildSetup::default()
        };
        let stdio = Stdio::new(false, None).unwrap();
        let pid = spawn(
            Path::new("/bin/cat"),
            &["cat".to_string(), "/proc/self/cgroup".to_string()],
            &[],
            Path::new("/"),
            &stdio.child,
            &setup,
        )
        .unwrap();
        drop(stdio.child);
        reap_blocking(pid);
        // Blocking: a child of a concurrent test may hold the write end until its exec.
        // SAFETY: fcntl(2) on a descriptor we own.
        unsafe { libc::fcntl(stdio.stdout.as_raw_fd(), libc::F_SETFL, 0) };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(stdio.stdout), &mut text).unwrap();
        let _ = std::fs::remove_dir(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            text.lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&name)),
            "not in {name}: {text}"
        );
    }

    /// A child that never reaches exec (here: blocked writing into a full pipe where
    /// its cgroup's file would be; in the wild: SIGSTOPped by user code after its uid
    /// drop) is killed by the watchdog, and the spawn fails instead of hanging.
    #[test]
    fn a_child_stuck_before_exec_is_killed_and_reported() {
        let (_reader, full) = pipe().unwrap();
        // SAFETY: fcntl on a descriptor we own; writes into a local buffer's pipe.
        unsafe {
            let flags = libc::fcntl(full.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(full.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            let chunk = [0u8; 4096];
            while libc::write(full.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) > 0 {}
            libc::fcntl(full.as_raw_fd(), libc::F_SETFL, flags);
        }
        let stuck = ChildSetup {
            cgroup_procs: vec![full.as_raw_fd()],
            ..ChildSetup::default()
        };
        let stdio = Stdio::new(false, None).unwrap();
        let started = std::time::Instant::now();
        let result = spawn(
            Path::new("/bin/true"),
            &["true".to_string()],
            &[],
            Path::new("/"),
            &stdio.child,
            &stuck,
        );
        let took = started.elapsed();
        let message = result
            .expect_err("a stuck child must fail the spawn")
            .to_string();
        assert!(
            message.contains("stopped before it could exec"),
            "{message}"
        );
        assert!(
            took >= watchdog::STUCK && took < watchdog::STUCK * 3,
            "{took:?}"
        );
    }

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
