//! Running one process in the sandbox: spawn it in its own session, cgroup, network
//! namespace and uid with rlimits and exactly the spec's environment; feed stdin while
//! reading both outputs (capped, decoded, optionally streamed); when the main process
//! exits or the wall-clock timeout fires, kill every process of the execution, drain the
//! pipes, reap, and report. Dropping the future kills everything as well.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::background;
use super::cgroup::{Cgroups, ExecCgroup, Limits};
use super::janitor;
use super::output::{CappedText, OutputChunk, Stream};
use super::private_tmp::TmpNs;
use super::sandbox::Sandbox;
use super::spawn::{
    reap_blocking, reap_with_cpu_time, resolve_program, resolve_program_in, spawn, ChildSetup,
    SpawnError, Stdio, Step,
};
use super::uid_pool::UidLease;
use super::ExecError;

/// Default per-stream output cap.
pub const DEFAULT_OUTPUT_CAP: usize = 1 << 20;

/// How long we keep killing an execution's group before giving up on it.
const KILL_DEADLINE: Duration = Duration::from_secs(5);
/// How long after the kill we wait for the pipes to reach end-of-file. With cgroups or a
/// dedicated uid every writer is dead by then and EOF comes as soon as what is buffered
/// has been read (and, with a sink, consumed); without them a process that escaped the
/// process group could hold the pipes forever.
const DRAIN_GRACE_ALL_KILLED: Duration = Duration::from_secs(10);
const DRAIN_GRACE_ESCAPABLE: Duration = Duration::from_millis(500);
const READ_CHUNK: usize = 64 * 1024;
/// Without a sink nobody reads the output before the program ends, so the output pipes
/// are made this big and left alone until the main process exits (or [`OUTPUT_DEFER`]
/// has passed): a short program's writes then wake nobody. Each wake-up of the sidecar
/// while the program runs lands on the program's CPU, where it preempts the program
/// (5 times for a Python hello world, once per line for an unbuffered chatty program;
/// 10 clients running one that prints 2000 lines: 114 -> 141 executions/s).
const DEFERRED_PIPE_CAPACITY: usize = 1 << 20;
/// The same for a sidecar that is not root: its pipes count against its user's pipe
/// quota (`fs.pipe-user-pages-soft`, 64 MiB by default), shared with the code it runs
/// (as the same user), whose new pipes shrink to 8 KiB once the quota is reached.
const DEFERRED_PIPE_CAPACITY_UNPRIVILEGED: usize = 256 << 10;
/// How long output may wait in the pipes before they are read as it comes: a program
/// that fills a pipe before then waits this long once.
const OUTPUT_DEFER: Duration = Duration::from_millis(50);
/// Bytes read from a pipe before its reader first yields (a writer on another CPU can
/// keep a pipe from ever running dry).
const EAGER_READ_LIMIT: usize = DEFERRED_PIPE_CAPACITY;

/// What to run and within which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program and arguments; the program is looked up through the spec's own `PATH`.
    pub argv: Vec<String>,
    /// Exactly the child's environment: nothing is inherited.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Written to the child's stdin, which is then closed; `None`: `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Wall clock, from spawn to the main process's exit.
    pub timeout: Duration,
    /// RLIMIT_CPU (rounded up to whole seconds).
    pub cpu_time: Option<Duration>,
    /// Bytes: the cgroup memory limit, and RLIMIT_AS if `use_rlimit_as`.
    pub memory_limit: Option<u64>,
    /// Also limit the address space (breaks the JVM and others that reserve a lot).
    pub use_rlimit_as: bool,
    /// Drop to this uid and gid (only when the sidecar runs as root).
    pub uid_gid: Option<(u32, u32)>,
    /// Allow network access; otherwise join the sandbox's empty network namespace.
    pub network: bool,
    /// Per stream, in bytes of UTF-8.
    pub output_cap: usize,
    /// cgroup pids.max (or RLIMIT_NPROC with a dedicated uid).
    pub pids_limit: Option<u64>,
    /// RLIMIT_FSIZE in bytes: writing past it raises SIGXFSZ.
    pub file_size_limit: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files_limit: Option<u64>,
    /// Join this mount namespace, with a private /tmp, /var/tmp and /dev/shm (held until
    /// every process of the execution is dead).
    pub private_tmp: Option<TmpNs>,
}

impl ProcessSpec {
    /// A spec with the default limits: 60 s, 1 MiB per stream, 512 processes, 1 GiB
    /// files, 1024 descriptors, no network, no memory limit, no uid change.
    pub fn new(argv: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            argv,
            env: Vec::new(),
            cwd: cwd.into(),
            stdin: None,
            timeout: Duration::from_secs(60),
            cpu_time: None,
            memory_limit: None,
            use_rlimit_as: false,
            uid_gid: None,
            network: false,
            output_cap: DEFAULT_OUTPUT_CAP,
            pids_limit: Some(512),
            file_size_limit: Some(1 << 30),
            open_files_limit: Some(1024),
            private_tmp: None,
        }
    }
}

/// How the execution ended and what it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessOutcome {
    pub stdout: String,
    pub stderr: String,
    /// The main process's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that killed the main process, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// The kernel OOM-killed a process of the execution (memory cgroup).
    pub oom_killed: bool,
    /// From spawn to the main process's exit (or the timeout).
    pub duration: Duration,
    /// CPU time (user and system) of the main process and of the descendants it waited
    /// for; `None` when it could not be reaped.
    pub cpu_time: Option<Duration>,
    /// The most memory the execution's processes had charged at once (its memory
    /// cgroup's high-water mark), in bytes; `None` without a memory cgroup.
    pub memory_peak: Option<u64>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Bytes the process wrote, kept or not.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The program was found but could not be started (permission denied, bad
    /// interpreter, exec format error...): nothing ran.
    pub spawn_error: Option<String>,
}

/// Runs one process to completion (see the module doc). `sink` receives the decoded
/// output as it arrives, within the caps.
pub async fn run(
    sandbox: &Sandbox,
    spec: ProcessSpec,
    sink: Option<mpsc::Sender<OutputChunk>>,
) -> Result<ProcessOutcome, ExecError> {
    let program = prepare(&spec)?;
    let is_root = sandbox.is_root();
    let can_raise = sandbox.can_raise_limits();

    // Without cgroups, a dedicated uid is what lets us find every process afterwards.
    let lease = match (spec.uid_gid, &sandbox.uid_pool, is_root) {
        (Some(_), Some(pool), true) => {
            let lease = pool.lease();
            if lease.is_none() {
                tracing::warn!("no dedicated uid left: this execution shares its uid");
            }
            lease
        }
        _ => None,
    };
    let run_as = match (is_root, &lease, spec.uid_gid) {
        (true, Some(lease), Some((_, gid))) => Some((lease.uid, gid)),
        (true, _, ids) => ids,
        (false, _, _) => None,
    };

    let cgroups = sandbox.cgroups.clone();
    let cgroup = match &cgroups {
        Some(c) => Some(
            c.create(Limits {
                memory: spec.memory_limit,
                pids: spec.pids_limit,
            })
            .map_err(|e| ExecError::Sandbox(format!("creating the execution cgroup: {e}")))?,
        ),
        None => None,
    };

    let mut setup = ChildSetup {
        mntns: spec.private_tmp.as_ref().map(TmpNs::fd),
        cgroup_procs: cgroup.iter().flat_map(ExecCgroup::join_fds).collect(),
        cgroup_dir: cgroup.as_ref().and_then(ExecCgroup::v2_dir_fd),
        netns: if spec.network {
            None
        } else {
            sandbox.netns_fd()
        },
        umask: lease.is_some().then_some(0o002),
        run_as,
        scope: sandbox.scope_ruleset(),
        ..ChildSetup::default()
    };
    setup.limit_core(can_raise);
    if let Some(n) = spec.open_files_limit {
        setup.limit_open_files(n, can_raise);
    }
    if let Some(bytes) = spec.file_size_limit {
        setup.limit_file_size(bytes, can_raise);
    }
    if let Some(t) = spec.cpu_time {
        let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
        setup.limit_cpu(secs.max(1), can_raise);
    }
    if let (true, Some(bytes)) = (spec.use_rlimit_as, spec.memory_limit) {
        setup.limit_address_space(bytes, can_raise);
    }
    if let (Some(_), Some(n)) = (&lease, spec.pids_limit) {
        setup.limit_processes(n, can_raise);
    }

    // The pipes. Stdin's is registered with the reactor before the child exists (see
    // `Stdio`); the outputs' only if a first read finds them still open (see `drain`),
    // and with no sink that first read waits for the exit or OUTPUT_DEFER.
    let deferred = sink.is_none();
    let Stdio {
        child: child_stdio,
        stdin,
        stdout,
        stderr,
    } = Stdio::new(
        spec.stdin.is_some(),
        deferred.then_some(if is_root {
            DEFERRED_PIPE_CAPACITY
        } else {
            DEFERRED_PIPE_CAPACITY_UNPRIVILEGED
        }),
    )?;
    // (Pipes made non-blocking by `Stdio::new`: the checked constructors would ask the
    // kernel again what they are, three system calls per pipe.)
    let stdin = stdin
        .map(pipe::Sender::from_owned_fd_unchecked)
        .transpose()?;
    let start = Instant::now();
    let spawned = spawn(
        &program,
        &spec.argv,
        &spec.env,
        &spec.cwd,
        &child_stdio,
        &setup,
    );
    drop(child_stdio);
    drop(setup);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            // The child (if it got as far as joining the group) is gone already.
            if let Some(group) = cgroup {
                let _ = group.remove();
            }
            let message = match e {
                SpawnError::Child {
                    step: Step::Exec,
                    error,
                } => format!("cannot execute {}: {error}", spec.argv[0]),
                SpawnError::Child {
                    step: Step::Chdir,
                    error,
                } => format!(
                    "cannot enter the working directory {}: {error}",
                    spec.cwd.display()
                ),
                // User code stopped it (a process of its uid): the execution's
                // failure, as the program's own would be.
                stopped @ SpawnError::Stopped(_) => {
                    format!("cannot start {}: {stopped}", spec.argv[0])
                }
                // Not the program's fault but the sidecar's (its protections could
                // not be applied): an error, not an outcome.
                other => {
                    return Err(ExecError::Sandbox(format!(
                        "cannot start {}: {other}",
                        spec.argv[0]
                    )))
                }
            };
            return Ok(ProcessOutcome {
                spawn_error: Some(message),
                duration: start.elapsed(),
                ..ProcessOutcome::default()
            });
        }
    };
    let mut guard = Guard {
        pid,
        unreaped: true,
        cgroup,
        cgroups,
        lease,
        tmp: spec.private_tmp.clone(),
        armed: true,
    };
    let exit = ExitWatch::new(pid);

    let mut out = CappedText::new(spec.output_cap);
    let mut err = CappedText::new(spec.output_cap);
    let timed_out;
    let duration;
    {
        let deadline = tokio::time::Instant::from_std(start + spec.timeout);
        let feed = feed(stdin, spec.stdin);
        tokio::pin!(feed);
        let mut feed_done = false;
        let mut exited = false;
        if deferred {
            let until = deadline.min(tokio::time::Instant::from_std(start + OUTPUT_DEFER));
            let alarm = Alarm::at(until);
            loop {
                tokio::select! {
                    biased;
                    _ = exit.wait() => {
                        exited = true;
                        break;
                    }
                    _ = &mut feed, if !feed_done => feed_done = true,
                    _ = alarm.rings() => break,
                }
            }
            alarm.release();
        }
        let io = async {
            tokio::join!(
                async {
                    if !feed_done {
                        feed.as_mut().await
                    }
                },
                drain(stdout, Stream::Stdout, &mut out, sink.clone()),
                drain(stderr, Stream::Stderr, &mut err, sink),
            )
        };
        tokio::pin!(io);
        let mut io_done = false;
        timed_out = !exited
            && loop {
                tokio::select! {
                    biased;
                    _ = exit.wait() => break false,
                    _ = &mut io, if !io_done => io_done = true,
                    _ = tokio::time::sleep_until(deadline) => break true,
                }
            };
        duration = start.elapsed();
        guard.kill_all(!timed_out).await;
        let grace = if guard.cgroup.is_some() || guard.lease.is_some() {
            DRAIN_GRACE_ALL_KILLED
        } else {
            DRAIN_GRACE_ESCAPABLE
        };
        if !io_done && tokio::time::timeout(grace, &mut io).await.is_err() {
            tracing::warn!(
                pid,
                "output pipes still open after the kill: a process escaped"
            );
        }
    }

    // Reap the main process (dead or dying from SIGKILL by now).
    let status = tokio::time::timeout(KILL_DEADLINE, async {
        exit.wait().await;
        loop {
            match reap_with_cpu_time(pid, libc::WNOHANG) {
                Ok(Some(reaped)) => return Some(reaped),
                Ok(None) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    if status.is_none() {
        tracing::error!(pid, "the main process did not exit after SIGKILL");
        // The guard's drop finishes the job in the background.
        return Ok(outcome(out, err, None, timed_out, false, duration));
    }
    guard.unreaped = false;
    exit.release();

    let oom_killed = guard.cgroup.as_ref().is_some_and(ExecCgroup::oom_killed);
    let memory_peak = guard.cgroup.as_ref().and_then(ExecCgroup::memory_peak);
    guard.release();
    Ok(ProcessOutcome {
        memory_peak,
        ..outcome(out, err, status, timed_out, oom_killed, duration)
    })
}

/// The end of the output deferral, on a timer of the kernel's. A tokio sleep of
/// [`OUTPUT_DEFER`] usually lands in the second level of tokio's timer wheel, whose
/// driver then wakes once before the deadline to move it down a level: a wake-up of
/// the sidecar at a random moment of the program's run (up to 64 ms after its start),
/// on the program's vCPU: `perf sched` saw it in 1 or 2 of 40 Python hello worlds, and
/// a longer program meets it more often. A timerfd wakes no one until it fires.
enum Alarm {
    Timerfd(AsyncFd<OwnedFd>, tokio::time::Instant),
    /// Where no timerfd could be made.
    Sleep(tokio::time::Instant),
}

impl Alarm {
    fn at(when: tokio::time::Instant) -> Alarm {
        Self::timerfd(when).unwrap_or(Alarm::Sleep(when))
    }

    fn timerfd(when: tokio::time::Instant) -> Option<Alarm> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // (A zero it_value would disarm it.)
        let after = when
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_nanos(1));
        // SAFETY: plain system call; the descriptor is ours.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and itimerspec; no old value asked for.
        let set = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if set != 0 {
            return None;
        }
        // SAFETY: the AsyncFd owns the descriptor, which stays open as long as it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()?;
        Some(Alarm::Timerfd(fd, when))
    }

    /// Drops the alarm; its descriptor is closed later where a request holds its
    /// clean-up (see [`background::drop_later`]).
    fn release(self) {
        if let Alarm::Timerfd(fd, _) = self {
            background::drop_later(fd.into_inner());
        }
    }

    /// Resolves once the time has come.
    async fn rings(&self) {
        match self {
            Alarm::Timerfd(fd, when) => {
                if fd.readable().await.is_err() {
                    tokio::time::sleep_until(*when).await
                }
            }
            Alarm::Sleep(when) => tokio::time::sleep_until(*when).await,
        }
    }
}

/// Validates the spec and resolves the program.
fn prepare(spec: &ProcessSpec) -> Result<PathBuf, ExecError> {
    let Some(program) = spec.argv.first() else {
        return Err(ExecError::InvalidSpec("empty argv".into()));
    };
    let has_nul = |s: &str| s.contains('\0');
    if spec.argv.iter().any(|a| has_nul(a))
        || spec.env.iter().any(|(k, v)| has_nul(k) || has_nul(v))
    {
        return Err(ExecError::InvalidSpec("NUL byte in argv or env".into()));
    }
    if spec
        .env
        .iter()
        .any(|(k, _)| k.is_empty() || k.contains('='))
    {
        return Err(ExecError::InvalidSpec(
            "bad environment variable name".into(),
        ));
    }
    // The child may see its own scratch dir and /tmp there (a private namespace).
    let host_view = |path: &std::path::Path| match &spec.private_tmp {
        Some(tmp) => tmp.host_view(path),
        None => path.to_path_buf(),
    };
    // (A dir held open, `/proc/self/fd/N`, was opened as one: the child enters it by
    // its descriptor.)
    if super::spawn::held_open(&spec.cwd).is_none() && !host_view(&spec.cwd).is_dir() {
        return Err(ExecError::InvalidSpec(format!(
            "working directory {} does not exist",
            spec.cwd.display()
        )));
    }
    resolve_program_in(program, &spec.env, &spec.cwd, host_view).ok_or_else(|| {
        // Found where the sidecar looks, not where the execution does: say so, rather
        // than that the toolchain is not installed.
        match (
            &spec.private_tmp,
            resolve_program(program, &spec.env, &spec.cwd),
        ) {
            (Some(_), Some(path)) => ExecError::Hidden {
                program: program.clone(),
                path,
            },
            _ => ExecError::NotFound(program.clone()),
        }
    })
}

fn outcome(
    mut out: CappedText,
    mut err: CappedText,
    reaped: Option<(std::process::ExitStatus, Duration)>,
    timed_out: bool,
    oom_killed: bool,
    duration: Duration,
) -> ProcessOutcome {
    let status = reaped.map(|(status, _)| status);
    // The readers finished their streams unless the drain was cut short.
    out.finish();
    err.finish();
    ProcessOutcome {
        stdout_truncated: out.truncated(),
        stderr_truncated: err.truncated(),
        stdout_bytes: out.total_bytes(),
        stderr_bytes: err.total_bytes(),
        stdout: out.into_text(),
        stderr: err.into_text(),
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        oom_killed,
        duration,
        cpu_time: reaped.map(|(_, cpu)| cpu),
        memory_peak: None,
        spawn_error: None,
    }
}

/// Writes `data` to the child's stdin, then closes it. A child that stops reading just
/// makes the write fail (EPIPE) once it is dead.
async fn feed(pipe: Option<pipe::Sender>, data: Option<Vec<u8>>) {
    let (Some(mut sender), Some(data)) = (pipe, data) else {
        return;
    };
    let _ = sender.write_all(&data).await;
}

/// Reads one output pipe to its end into `text`, streaming what is kept to `sink`.
/// What the pipe already holds is read without the reactor (after the main process's
/// exit that is usually everything up to end-of-file, and the pipe is never registered);
/// the rest as it comes.
async fn drain(
    fd: OwnedFd,
    stream: Stream,
    text: &mut CappedText,
    mut sink: Option<mpsc::Sender<OutputChunk>>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut file = std::fs::File::from(fd);
    let mut eager = 0;
    let ended = loop {
        if eager >= EAGER_READ_LIMIT {
            break false;
        }
        match file.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                eager += n;
                keep(text, &buf[..n], stream, &mut sink).await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break true,
        }
    };
    let fd = if ended {
        Some(OwnedFd::from(file))
    } else {
        // Non-blocking since `Stdio::new`.
        match pipe::Receiver::from_owned_fd_unchecked(file.into()) {
            Ok(mut receiver) => {
                loop {
                    let n = match receiver.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    keep(text, &buf[..n], stream, &mut sink).await;
                }
                receiver.into_nonblocking_fd().ok()
            }
            Err(_) => None,
        }
    };
    // (A pipe's close frees its buffers: after the response, where a request holds its
    // clean-up.)
    background::drop_later(fd);
    let tail = text.finish();
    if let (false, Some(s)) = (tail.is_empty(), &sink) {
        let _ = s
            .send(OutputChunk {
                stream,
                data: tail.to_string(),
            })
            .await;
    }
}

/// Adds `bytes` to `text` and sends what was kept to `sink` (dropped once its receiver
/// is gone).
async fn keep(
    text: &mut CappedText,
    bytes: &[u8],
    stream: Stream,
    sink: &mut Option<mpsc::Sender<OutputChunk>>,
) {
    let kept = text.push(bytes);
    if let (false, Some(s)) = (kept.is_empty(), &*sink) {
        let chunk = OutputChunk {
            stream,
            data: kept.to_string(),
        };
        if s.send(chunk).await.is_err() {
            *sink = None;
        }
    }
}

/// Waits for the main process to exit without reaping it, so that its process group
/// stays valid for the kill.
enum ExitWatch {
    Pidfd(AsyncFd<OwnedFd>, libc::pid_t),
    Poll(libc::pid_t),
}

impl ExitWatch {
    fn new(pid: libc::pid_t) -> Self {
        // SAFETY: pidfd_open(2) on our own unreaped child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            // SAFETY: the AsyncFd owns the descriptor, which stays open as long as it.
            if let Ok(fd) = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                return ExitWatch::Pidfd(fd, pid);
            }
        }
        ExitWatch::Poll(pid)
    }

    /// Ends the watch; the pidfd is closed later where a request holds its clean-up
    /// (see [`background::drop_later`]).
    fn release(self) {
        if let ExitWatch::Pidfd(fd, _) = self {
            background::drop_later(fd.into_inner());
        }
    }

    /// Resolves once the process has exited (it stays a zombie until reaped).
    async fn wait(&self) {
        match self {
            ExitWatch::Pidfd(fd, pid) => {
                if fd.readable().await.is_ok() {
                    return;
                }
                Self::poll(*pid).await
            }
            ExitWatch::Poll(pid) => Self::poll(*pid).await,
        }
    }

    async fn poll(pid: libc::pid_t) {
        while !has_exited(pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Whether our child `pid` has exited (without reaping it); true on error.
pub(super) fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: waitid(2) with WNOWAIT into a local; leaves the child unreaped.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: reading the pid field the kernel filled in.
    r != 0 || unsafe { info.si_pid() } != 0
}

/// Owns an execution's processes until they are all dead and reaped: dropping it early
/// (the `run` future was dropped) kills synchronously and reaps in a background thread.
struct Guard {
    pid: libc::pid_t,
    /// The main process is still ours to reap (its pid cannot have been reused).
    unreaped: bool,
    cgroup: Option<ExecCgroup>,
    cgroups: Option<Arc<Cgroups>>,
    lease: Option<UidLease>,
    /// Emptied and reused once the last process of the execution is dead.
    tmp: Option<TmpNs>,
    armed: bool,
}

impl Guard {
    /// Kills every process of the execution: its process group, then everything of its
    /// dedicated uid (when it has one), then its cgroup until empty. The main process is
    /// not reaped yet, so its pid (= process group id) cannot have been reused.
    ///
    /// `main_exited`: the main process is a zombie (all its threads gone). Then a pids
    /// group that counts one task holds only it (every process of the execution is in
    /// the group, and a zombie starts none), and there is nothing to kill: the common
    /// end of an execution costs one read, not a signal and a listing of the members.
    async fn kill_all(&self, main_exited: bool) {
        let only_main_left = || self.cgroup.as_ref().and_then(ExecCgroup::tasks) == Some(1);
        if main_exited && self.lease.is_none() && only_main_left() {
            return;
        }
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        if let Some(lease) = &self.lease {
            // Before the output is drained: a daemon that left the process group holds
            // the pipes until it dies (the drain would wait its whole grace for EOF).
            let uid = lease.uid;
            let swept = tokio::task::spawn_blocking(move || janitor::sweep_uid(uid))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(format!("panicked: {e}"))));
            lease.record_sweep(swept);
        }
        let Some(group) = &self.cgroup else { return };
        if main_exited && only_main_left() {
            return;
        }
        let deadline = Instant::now() + KILL_DEADLINE;
        loop {
            match group.kill_round() {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(pid = self.pid, "killing the execution cgroup: {e}");
                    return;
                }
            }
            if Instant::now() > deadline {
                tracing::error!(
                    pid = self.pid,
                    "execution cgroup still not empty after {KILL_DEADLINE:?}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Normal end: everything is dead and reaped. Recycles or removes the cgroup (and
    /// refills the pool) on the clean-up thread, off the caller's critical path.
    fn release(&mut self) {
        self.armed = false;
        let group = self.cgroup.take();
        let cgroups = self.cgroups.take();
        drop(self.lease.take());
        drop(self.tmp.take());
        if group.is_none() {
            return;
        }
        let cleanup = move || match (group, cgroups) {
            (Some(group), Some(c)) => {
                c.recycle(group);
                c.refill();
            }
            (Some(group), None) => {
                if let Err(e) = group.remove() {
                    tracing::warn!("removing an execution cgroup: {e}");
                }
            }
            _ => {}
        };
        background::defer(cleanup);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Synchronously: no process of the execution may run on. (Once the main
        // process is reaped its pid may be reused: then only the cgroup is killed.)
        if self.unreaped {
            // SAFETY: signalling our own unreaped child's process group.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
        if let Some(group) = &self.cgroup {
            let _ = group.kill_round();
        }
        let pid = self.pid;
        let unreaped = std::mem::take(&mut self.unreaped);
        let group = self.cgroup.take();
        let cgroups = self.cgroups.take();
        let lease = self.lease.take();
        let tmp = self.tmp.take();
        let finish = move || {
            if let Some(group) = &group {
                let deadline = Instant::now() + KILL_DEADLINE;
                while !matches!(group.kill_round(), Ok(true) | Err(_)) && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            if unreaped {
                reap_blocking(pid);
            }
            if let Some(lease) = &lease {
                lease.record_sweep(janitor::sweep_uid(lease.uid));
            }
            if let Some(group) = group {
                let _ = group.remove();
            }
            if let Some(c) = cgroups {
                c.refill();
            }
            drop(lease);
            drop(tmp);
        };
        let spawned = std::thread::Builder::new()
            .name("exec-reaper".into())
            .spawn(finish);
        if let Err(e) = spawned {
            tracing::error!(pid, "cannot start a reaper thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_alarm_rings_at_its_time_and_not_before() {
        let start = tokio::time::Instant::now();
        let alarm = Alarm::at(start + Duration::from_millis(30));
        assert!(matches!(alarm, Alarm::Timerfd(..)), "no timerfd");
        alarm.rings().await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        // One that is already due rings at once.
        let due = Alarm::at(start);
        tokio::time::timeout(Duration::from_secs(1), due.rings())
            .await
            .expect("a due alarm rings");
    }
}
