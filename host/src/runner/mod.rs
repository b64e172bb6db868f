//! Running code: ask the language's plugin for a plan, then carry it out with the
//! executor: a private scratch dir, the plan's files, the compile commands in order,
//! the run command in the work dir, and the outcome with the files that changed.
//!
//! Used by /execute, /bash (a single command, no plan) and `sidecar run`.

pub mod cli;
pub(crate) mod scratch;
pub mod snapshot;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::ExecArgs;
use crate::exec::background;
use crate::exec::limiter::Limiter;
use crate::exec::process::{self, ProcessOutcome, ProcessSpec};
use crate::exec::sandbox::Sandbox;
use crate::exec::{GidLease, TmpNs};
use crate::plugins::model::FileLocation;
use crate::plugins::{CallError, Language, PlanCommand, PlanRequest, DEFAULT_PATH};
use crate::workspace::sys;
use scratch::{ScratchDir, ScratchDirs};
use snapshot::{ChangedFile, Snapshot};

pub use crate::exec::output::OutputChunk;

/// Outcome of a whole execution.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    CompileError,
    RuntimeError,
    Timeout,
    MemoryLimit,
    Signal,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::CompileError => "compile_error",
            Status::RuntimeError => "runtime_error",
            Status::Timeout => "timeout",
            Status::MemoryLimit => "memory_limit",
            Status::Signal => "signal",
        }
    }
}

/// One stage (compile or run) as reported to clients.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// CPU time (user and system) of the stage's processes that were waited for;
    /// null when the main process could not be reaped.
    pub cpu_time_ms: Option<u64>,
    /// The most memory the stage's processes had at once (their memory cgroup's
    /// high-water mark); null without a memory cgroup.
    pub memory_peak_bytes: Option<u64>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    #[serde(skip)]
    pub oom_killed: bool,
    /// The number of the signal that ended the stage (`signal` names it).
    #[serde(skip)]
    pub signal_number: Option<i32>,
}

impl Stage {
    fn from_outcome(o: ProcessOutcome) -> Stage {
        // A program that was found but could not be started (not executable, a bad
        // interpreter line): said on stderr, with the exit code a shell gives it.
        let (stderr, exit_code) = match o.spawn_error {
            Some(e) => (format!("{}{e}\n", o.stderr), Some(126)),
            None => (o.stderr, o.exit_code),
        };
        Stage {
            stdout: o.stdout,
            stderr,
            exit_code,
            signal: o.signal.map(signal_name),
            signal_number: o.signal,
            timed_out: o.timed_out,
            duration_ms: o.duration.as_millis() as u64,
            cpu_time_ms: o.cpu_time.map(|t| t.as_millis() as u64),
            memory_peak_bytes: o.memory_peak,
            stdout_truncated: o.stdout_truncated,
            stderr_truncated: o.stderr_truncated,
            oom_killed: o.oom_killed,
        }
    }

    /// Appends a later compile command's stage to this one.
    fn append(&mut self, next: Stage) {
        self.stdout.push_str(&next.stdout);
        self.stderr.push_str(&next.stderr);
        self.exit_code = next.exit_code;
        self.signal = next.signal;
        self.signal_number = next.signal_number;
        self.timed_out |= next.timed_out;
        self.duration_ms += next.duration_ms;
        self.cpu_time_ms = match (self.cpu_time_ms, next.cpu_time_ms) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.memory_peak_bytes = self.memory_peak_bytes.max(next.memory_peak_bytes);
        self.stdout_truncated |= next.stdout_truncated;
        self.stderr_truncated |= next.stderr_truncated;
        self.oom_killed |= next.oom_killed;
    }

    fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.oom_killed
    }

    fn status(&self) -> Status {
        if self.timed_out {
            Status::Timeout
        } else if self.oom_killed {
            Status::MemoryLimit
        } else if self.signal.is_some() {
            Status::Signal
        } else if self.exit_code == Some(0) {
            Status::Ok
        } else {
            Status::RuntimeError
        }
    }
}

/// Names a signal the way clients expect (`SIGKILL`).
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        other => return format!("SIG{other}"),
    };
    name.to_string()
}

/// What the caller asked to run.
#[derive(Debug, Default)]
pub struct ExecuteRequest {
    pub code: String,
    /// Files already written into the work dir by the caller's request.
    pub files: Vec<(String, Vec<u8>)>,
    pub stdin: Option<Vec<u8>>,
    pub args: Vec<String>,
    /// Requested run timeout in seconds (before clamping and the multiplier).
    pub timeout: Option<f64>,
    /// The program's current directory.
    pub work_dir: PathBuf,
    /// `work_dir`, opened by the caller through the confined session (preferred: the
    /// runner then never resolves the path again; see [`PinnedDir`]).
    pub work_dir_fd: Option<std::os::fd::OwnedFd>,
}

/// The result of an execution that could be run.
#[derive(Debug, Serialize)]
pub struct ExecuteOutcome {
    pub status: Status,
    pub compile: Option<Stage>,
    pub run: Option<Stage>,
    pub files: Vec<ChangedFile>,
    #[serde(skip)]
    pub plan_duration: Duration,
}

impl ExecuteOutcome {
    /// The outcome as one exit code, the way a shell reports a command: the decisive
    /// stage's (the run, or the compile step that failed), 124 on timeout (as GNU
    /// `timeout` says it), 128 + N for a stage ended by signal N (137 for SIGKILL,
    /// which is also what a memory-limit kill is; 139 for SIGSEGV). `None` only when
    /// the stage's end could not be known.
    pub fn exit_code(&self) -> Option<i32> {
        if self.status == Status::Timeout {
            return Some(124);
        }
        let stage = self.decisive()?;
        stage.exit_code.or(stage.signal_number.map(|n| 128 + n))
    }

    /// The stage that decided the outcome: the run, or the compile step that failed.
    pub fn decisive(&self) -> Option<&Stage> {
        self.run.as_ref().or(self.compile.as_ref())
    }
}

/// Why an execution could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("too many executions in progress; retry shortly")]
    Busy,
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    PluginFailed(String),
    #[error("the toolchain is not installed: `{0}` was not found")]
    MissingProgram(String),
    /// The program exists, under a directory executions get a private copy of.
    #[error("{}, where executions do not see it: each gets a private /tmp, /var/tmp and /dev/shm; install the toolchain elsewhere, or set SIDECAR_SHARED_TMP=1", where_is(program, path))]
    HiddenProgram { program: String, path: PathBuf },
    #[error("{0}")]
    Internal(String),
}

/// "`program` is at path", or "`path` is there" when the program was given as a path.
fn where_is(program: &str, path: &Path) -> String {
    if Path::new(program) == path {
        format!("`{program}` is there")
    } else {
        format!("`{program}` is at {}", path.display())
    }
}

/// Whose limits a process gets: the language's memory factor, the uid and gid it runs
/// as (see [`Executor::ids`]) and network.
struct Who {
    memory_multiplier: f64,
    ids: Option<(u32, u32)>,
    network: bool,
}

/// An execution's scratch dir.
struct Scratch {
    /// Where the execution's processes see it.
    path: PathBuf,
    /// The dir, opened: where the sidecar writes in it (the root of the private
    /// namespace's tmpfs that is the scratch dir there, or the host's dir).
    fd: OwnedFd,
    /// A dir of the host's, removed when dropped.
    _dir: Option<ScratchDir>,
}

/// Runs plans and commands with the sandbox and limits of the server.
pub struct Executor {
    pub sandbox: Arc<Sandbox>,
    pub limiter: Limiter,
    pub settings: ExecArgs,
    scratch_dirs: ScratchDirs,
}

impl Executor {
    pub fn new(settings: ExecArgs, sandbox: Arc<Sandbox>) -> Self {
        let slots = settings.max_concurrent.unwrap_or_else(|| {
            2 * std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Executor {
            sandbox,
            limiter: Limiter::new(slots, settings.max_queue),
            scratch_dirs: ScratchDirs::new(settings.scratch_dir.clone()),
            settings,
        }
    }

    /// The run timeout for a request: requested (or the default), clamped to the
    /// maximum, times the language's multiplier. Zero or less means the maximum, as the
    /// runner's clients expect.
    pub fn run_timeout(&self, requested: Option<f64>, multiplier: f64) -> Duration {
        let max = self.settings.max_timeout as f64;
        let secs = match requested {
            Some(t) if t > 0.0 && t.is_finite() => t.min(max),
            Some(_) => max,
            None => (self.settings.default_timeout as f64).min(max),
        };
        Duration::from_secs_f64(secs * multiplier)
    }

    fn spec(
        &self,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        timeout: Duration,
        who: Who,
    ) -> ProcessSpec {
        let Who {
            memory_multiplier,
            ids,
            network,
        } = who;
        let memory = (self.settings.memory_mb as f64 * memory_multiplier) as u64 * (1 << 20);
        ProcessSpec {
            argv,
            env,
            cwd,
            stdin: None,
            timeout,
            cpu_time: Some(timeout + Duration::from_secs(1)),
            memory_limit: Some(memory),
            use_rlimit_as: false,
            uid_gid: ids,
            network,
            output_cap: self.settings.output_cap,
            pids_limit: Some(self.settings.max_processes),
            file_size_limit: Some(self.settings.max_file_mb << 20),
            open_files_limit: Some(1024),
            private_tmp: None,
        }
    }

    /// The uid/gid user code runs as: the language's when the sidecar is root.
    fn run_as(&self, uid: u32) -> Option<(u32, u32)> {
        (self.sandbox.run_as().is_some() && uid != 0).then_some((uid, uid))
    }

    /// The uid/gid one execution's processes run as: the language's uid, and the
    /// execution's own gid where it has one (see exec/gid_pool.rs).
    fn ids(&self, uid: u32, gid: Option<&GidLease>) -> Option<(u32, u32)> {
        self.run_as(uid)
            .map(|(uid, own)| (uid, gid.map_or(own, |lease| lease.gid)))
    }

    /// The private scratch dir of one execution, for processes running as `ids`.
    fn scratch(&self, ids: Option<(u32, u32)>) -> Result<ScratchDir, ExecuteError> {
        let access = scratch::Access {
            owner: ids,
            group_writable: self.shares_by_group(),
        };
        self.scratch_dirs.take(access).map_err(|e| {
            ExecuteError::Internal(format!(
                "cannot create a scratch dir under {}: {e}",
                self.scratch_dirs.root().display()
            ))
        })
    }

    /// The scratch dir of one execution: its private namespace's, else one of the
    /// host's.
    fn execution_scratch(
        &self,
        ids: Option<(u32, u32)>,
        tmp: Option<&TmpNs>,
    ) -> Result<Scratch, ExecuteError> {
        if let Some(tmp) = tmp {
            let private = tmp.take_scratch(ids, self.shares_by_group()).map_err(|e| {
                ExecuteError::Internal(format!("cannot hand over a private scratch dir: {e}"))
            })?;
            if let (Some(path), Some(fd)) = (private, tmp.scratch_fd()) {
                let fd = fd.try_clone_to_owned().map_err(|e| {
                    ExecuteError::Internal(format!("cannot hand over a private scratch dir: {e}"))
                })?;
                return Ok(Scratch {
                    path,
                    fd,
                    _dir: None,
                });
            }
        }
        let dir = self.scratch(ids)?;
        let fd = sys::open_dir_unconfined(dir.path()).map_err(|e| {
            ExecuteError::Internal(format!(
                "cannot open the scratch dir {}: {e}",
                dir.path().display()
            ))
        })?;
        Ok(Scratch {
            path: dir.path().to_path_buf(),
            fd,
            _dir: Some(dir),
        })
    }

    /// Whether executions run as dedicated uids (no cgroups) that share only the gid:
    /// then what the runner prepares for them must be reachable through the group.
    fn shares_by_group(&self) -> bool {
        self.sandbox.uid_pool.is_some() && self.sandbox.run_as().is_some()
    }

    /// Pins the work dir (see [`PinnedDir`]) and lets the language's uid write in it
    /// (the directory itself; files the caller wrote through the API stay readable).
    fn open_work_dir(
        &self,
        dir: &Path,
        opened: Option<std::os::fd::OwnedFd>,
        uid: u32,
    ) -> PinnedDir {
        let pinned = match opened {
            Some(fd) => PinnedDir::from_fd(fd),
            None => PinnedDir::open(dir),
        };
        if let (Some(fd), Some((uid, gid))) = (pinned.fd(), self.run_as(uid)) {
            if let Ok(st) = crate::workspace::sys::fstat(fd) {
                if st.st_uid != uid {
                    let _ = crate::workspace::sys::fchown(fd, uid, gid);
                }
                if self.shares_by_group() && st.st_mode & 0o070 != 0o070 {
                    let _ = crate::workspace::sys::fchmod(fd, (st.st_mode & 0o7777) | 0o070);
                }
            }
        }
        pinned
    }

    /// Runs code in a language: plan, files, compile, run.
    pub async fn execute(
        &self,
        language: &Arc<Language>,
        mut req: ExecuteRequest,
    ) -> Result<ExecuteOutcome, ExecuteError> {
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|_| ExecuteError::Busy)?;
        let settings = &language.settings;
        // Every command of the execution shares one private /tmp, which also holds its
        // scratch dir and tells which workspace files it wrote.
        let tmp = self
            .sandbox
            .private_tmp()
            .map_err(|e| ExecuteError::Internal(e.to_string()))?;
        // A gid of its own for the execution's processes, held until they are dead.
        let gid = self.sandbox.gid_lease();
        let ids = self.ids(settings.user_id, gid.as_ref());
        let scratch = self.execution_scratch(ids, tmp.as_ref())?;
        let scratch_str = scratch.path.to_string_lossy().into_owned();
        let work_str = req.work_dir.to_string_lossy().into_owned();
        let work = self.open_work_dir(&req.work_dir, req.work_dir_fd.take(), settings.user_id);

        // 1. The plan, from the plugin.
        let plan_started = Instant::now();
        let plan_request = PlanRequest {
            code: req.code,
            files: req.files,
            args: req.args,
            has_stdin: req.stdin.is_some(),
            work_dir: work_str.clone(),
            scratch_dir: scratch_str.clone(),
        };
        // Tens of microseconds, at most the plugin timeout (async: it yields meanwhile).
        let plan = language
            .plugin
            .plan(settings, plan_request)
            .await
            .map_err(|e| match e {
                CallError::Refused(r) => ExecuteError::Rejected(format!(
                    "{} plugin `{}` rejected the code: {r}",
                    settings.name, language.plugin.info.name
                )),
                failed @ CallError::Failed { .. } => ExecuteError::PluginFailed(failed.to_string()),
            })?;
        let plan_duration = plan_started.elapsed();

        // 2. The plan's files, written through descriptors of their dirs.
        let mut own_files = Vec::new();
        // (The work dir by path, where it could not be pinned.)
        let opened;
        let work_fd = match work.fd() {
            Some(fd) => Some(fd),
            None if plan
                .files
                .iter()
                .any(|f| matches!(f.location, FileLocation::WorkDir)) =>
            {
                opened = sys::open_dir_unconfined(&work.path).map_err(|e| {
                    ExecuteError::Internal(format!(
                        "cannot open the work dir {}: {e}",
                        work.path.display()
                    ))
                })?;
                Some(opened.as_fd())
            }
            None => None,
        };
        for f in &plan.files {
            let (base, is_work) = match f.location {
                FileLocation::Scratch => (scratch.fd.as_fd(), false),
                FileLocation::WorkDir => (
                    work_fd
                        .ok_or_else(|| ExecuteError::Internal("the work dir is not open".into()))?,
                    true,
                ),
            };
            write_plan_file(
                base,
                &f.path,
                &f.content,
                f.executable,
                ids,
                self.shares_by_group(),
            )
            .map_err(|e| {
                ExecuteError::Internal(format!("cannot write the plan's file {}: {e}", f.path))
            })?;
            if is_work {
                own_files.push(f.path.clone());
            }
        }
        // Through the namespace's own mount of the workspace, where writes are seen (the
        // snapshot comes after: the execution's writes count from here).
        let reopened = match (&tmp, work.fd()) {
            (Some(tmp), Some(fd)) => tmp.reopen(fd, &req.work_dir),
            _ => None,
        };
        let (mut work, first) = match reopened {
            Some(fd) => (PinnedDir::from_fd(fd), Some(work)),
            None => (work, None),
        };
        let before = work.snapshot();
        let others = || {
            tmp.as_ref()
                .map(crate::exec::TmpNs::foreign_writes)
                .unwrap_or_default()
        };

        // 3. The environment every command shares.
        let base_env = self.base_env(settings, &scratch_str, &work_str);
        let env_for = |cmd: &PlanCommand| {
            let mut env = base_env.clone();
            for (k, v) in &cmd.env {
                upsert(&mut env, k, v);
            }
            env
        };

        // 4. Compile.
        let mut compile: Option<Stage> = None;
        for cmd in &plan.compile {
            let cwd = cmd
                .cwd
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| scratch.path.clone());
            let mut spec = self.spec(
                cmd.argv.clone(),
                env_for(cmd),
                cwd,
                Duration::from_secs(self.settings.compile_timeout),
                Who {
                    memory_multiplier: settings.memory_multiplier.max(1.0) * 2.0,
                    ids,
                    network: false,
                },
            );
            spec.private_tmp = tmp.clone();
            let stage = Stage::from_outcome(run_process(&self.sandbox, spec, None).await?);
            let ok = stage.succeeded();
            match &mut compile {
                Some(c) => c.append(stage),
                None => compile = Some(stage),
            }
            if !ok {
                let c = compile.unwrap();
                let status = match c.status() {
                    Status::Timeout => Status::Timeout,
                    Status::MemoryLimit => Status::MemoryLimit,
                    _ => Status::CompileError,
                };
                let files = before.changes(&work.snapshot(), &own_files, &others());
                // (Descriptors closed after the response, where a request holds its
                // clean-up.)
                background::drop_later((work, first, scratch));
                return Ok(ExecuteOutcome {
                    status,
                    compile: Some(c),
                    run: None,
                    files,
                    plan_duration,
                });
            }
        }

        // 5. Run.
        let cmd = &plan.run;
        let cwd = cmd
            .cwd
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| work.path.clone());
        let mut spec = self.spec(
            cmd.argv.clone(),
            env_for(cmd),
            cwd,
            self.run_timeout(req.timeout, settings.timeout_multiplier),
            Who {
                memory_multiplier: settings.memory_multiplier,
                ids,
                network: settings.network,
            },
        );
        spec.stdin = req.stdin;
        spec.private_tmp = tmp.clone();
        let run = Stage::from_outcome(run_process(&self.sandbox, spec, None).await?);
        let files = before.changes(&work.snapshot(), &own_files, &others());
        background::drop_later((work, first, scratch));
        Ok(ExecuteOutcome {
            status: run.status(),
            compile,
            run: Some(run),
            files,
            plan_duration,
        })
    }

    /// PATH, HOME, TMPDIR and LANG, then the language's environment (with `{tmpdir}`
    /// and `{workdir}` substituted).
    fn base_env(
        &self,
        settings: &crate::plugins::LanguageSettings,
        scratch: &str,
        work: &str,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOME".to_string(), scratch.to_string()),
            ("TMPDIR".to_string(), scratch.to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        for (k, v) in &settings.environment {
            upsert(
                &mut env,
                k,
                &v.replace("{tmpdir}", scratch).replace("{workdir}", work),
            );
        }
        env
    }

    /// Runs a shell command for /bash: `/bin/sh -c` in `dir`, with the same sandbox,
    /// streaming output to `sink`.
    pub async fn shell(
        &self,
        command: String,
        dir: &Path,
        timeout: Duration,
        uid: u32,
        network: bool,
        sink: tokio::sync::mpsc::Sender<OutputChunk>,
    ) -> Result<ProcessOutcome, ExecuteError> {
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|_| ExecuteError::Busy)?;
        let gid = self.sandbox.gid_lease();
        let ids = self.ids(uid, gid.as_ref());
        let scratch = self.scratch(ids)?;
        let work = self.open_work_dir(dir, None, uid);
        let scratch_str = scratch.path().to_string_lossy().into_owned();
        let env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOME".to_string(), scratch_str.clone()),
            ("TMPDIR".to_string(), scratch_str),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("PWD".to_string(), dir.to_string_lossy().into_owned()),
        ];
        let spec = self.spec(
            vec!["/bin/sh".into(), "-c".into(), command],
            env,
            work.path.clone(),
            timeout,
            Who {
                memory_multiplier: 1.0,
                ids,
                network,
            },
        );
        run_process(&self.sandbox, spec, Some(sink)).await
    }
}

/// Runs `f` (short blocking work) on this tokio worker, or through `block_in_place`
/// when `heavy`, so that a long call does not hold up the worker's other tasks (the
/// hand-over costs ~50 µs, a tenth of a short execution's overhead).
pub(crate) fn blocking_if<T>(heavy: bool, f: impl FnOnce() -> T) -> T {
    if heavy {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

async fn run_process(
    sandbox: &Sandbox,
    spec: ProcessSpec,
    sink: Option<tokio::sync::mpsc::Sender<OutputChunk>>,
) -> Result<ProcessOutcome, ExecuteError> {
    process::run(sandbox, spec, sink)
        .await
        .map_err(|e| match e {
            crate::exec::ExecError::NotFound(program) => ExecuteError::MissingProgram(program),
            crate::exec::ExecError::Hidden { program, path } => {
                ExecuteError::HiddenProgram { program, path }
            }
            other => ExecuteError::Internal(other.to_string()),
        })
}

fn upsert(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(pair) => pair.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// Writes one file of a plan under `base` (a directory the host controls or the
/// confined work dir); the path was validated as relative without `..`, and no
/// component may be a symlink.
/// Writes one of the plan's files below `base`, making its parent dirs, never
/// following a symlink (a program of the session may have planted one in the work
/// dir) and never leaving `base`. (Through the descriptor, not a `/proc/self/fd/N`
/// path: the walk through /proc cost ~25 µs per file.)
fn write_plan_file(
    base: BorrowedFd<'_>,
    rel: &str,
    content: &[u8],
    executable: bool,
    owner: Option<(u32, u32)>,
    group_writable_dirs: bool,
) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write};
    let rel = Path::new(rel);
    let mut dir = None::<OwnedFd>;
    let parts: Vec<_> = rel.components().collect();
    let Some((name, parents)) = parts.split_last() else {
        return Err(std::io::Error::other("an empty path"));
    };
    for part in parents {
        let at = dir.as_ref().map_or(base, |d| d.as_fd());
        let part = Path::new(part.as_os_str());
        let mode = if group_writable_dirs { 0o775 } else { 0o755 };
        let made = match sys::mkdirat(at, part, mode) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let opened = sys::openat2(at, part, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
        if made {
            // (The mode without the umask.)
            sys::fchmod(opened.as_fd(), mode)?;
            if let Some((uid, gid)) = owner {
                sys::fchown(opened.as_fd(), uid, gid)?;
            }
        }
        dir = Some(opened);
    }
    let at = dir.as_ref().map_or(base, |d| d.as_fd());
    let name = Path::new(name.as_os_str());
    let mode = if executable { 0o755 } else { 0o644 };
    let create = || {
        sys::openat2(
            at,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            mode,
        )
    };
    // A plan that lists a path twice: the later file replaces the earlier.
    let fd = match create() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            sys::unlinkat(at, name, 0)?;
            create()?
        }
        other => other?,
    };
    if executable {
        sys::fchmod(fd.as_fd(), mode)?;
    }
    if let Some((uid, gid)) = owner {
        sys::fchown(fd.as_fd(), uid, gid)?;
    }
    std::fs::File::from(fd).write_all(content)
}

/// The work dir of one execution, opened once without following any symlink and used
/// through that descriptor (`/proc/self/fd/N`) from then on: chown, plan files,
/// snapshots, the program's current directory. Code of the same session owns the
/// session's directories and may replace the work dir with a symlink to a host
/// directory while this execution waits for a slot; the host, running as root, must
/// then neither give that directory away nor write into it nor run code there.
///
/// When the path cannot be opened that way (a symlink somewhere above the workspace,
/// say), the path is used as it is, and nothing is chowned.
struct PinnedDir {
    /// The descriptor, as a directory stream: the snapshots read the top level from it.
    dir: Option<rustix::fs::Dir>,
    /// The stream was read, and is rewound (one `lseek`) before the next snapshot.
    read: bool,
    /// `/proc/self/fd/N` when pinned, else the path itself.
    path: PathBuf,
}

impl PinnedDir {
    /// The files below the dir now (by its descriptor when pinned).
    fn snapshot(&mut self) -> Snapshot {
        match &mut self.dir {
            Some(dir) => {
                if std::mem::replace(&mut self.read, true) {
                    dir.rewind();
                }
                Snapshot::take_from(dir)
            }
            None => Snapshot::take(&self.path),
        }
    }

    /// The descriptor, when pinned.
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.dir.as_ref().and_then(|d| d.fd().ok())
    }

    fn from_fd(fd: std::os::fd::OwnedFd) -> PinnedDir {
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        match rustix::fs::Dir::new(fd) {
            Ok(dir) => PinnedDir {
                dir: Some(dir),
                read: false,
                path,
            },
            // (Not on Linux: `Dir::new` only wraps the descriptor.)
            Err(e) => unreachable!("wrapping a directory descriptor: {e}"),
        }
    }

    fn open(dir: &Path) -> PinnedDir {
        use std::os::fd::AsFd;
        let opened = std::path::absolute(dir).and_then(|abs| {
            let root = crate::workspace::sys::open_dir_unconfined(Path::new("/"))?;
            let rel = abs.strip_prefix("/").unwrap_or(&abs).to_path_buf();
            crate::workspace::sys::openat2(
                root.as_fd(),
                &rel,
                libc::O_DIRECTORY | libc::O_RDONLY,
                0,
            )
        });
        match opened {
            Ok(fd) => PinnedDir::from_fd(fd),
            Err(e) => {
                tracing::debug!(
                    dir = %dir.display(),
                    "cannot open the work dir without following symlinks ({e}): used by path, not chowned"
                );
                PinnedDir {
                    dir: None,
                    read: false,
                    path: dir.to_path_buf(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(base: &Path, rel: &str, content: &str, executable: bool) -> std::io::Result<()> {
        let fd = sys::open_dir_unconfined(base).unwrap();
        write_plan_file(fd.as_fd(), rel, content.as_bytes(), executable, None, false)
    }

    #[test]
    fn a_plan_file_gets_its_dirs_its_mode_and_replaces_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/b/run.sh", "one", true).unwrap();
        write(dir.path(), "a/b/run.sh", "two", true).unwrap();
        write(dir.path(), "a/data.txt", "three", false).unwrap();
        let run = dir.path().join("a/b/run.sh");
        assert_eq!(std::fs::read_to_string(&run).unwrap(), "two");
        assert_eq!(run.metadata().unwrap().permissions().mode() & 0o777, 0o755);
        let data = dir.path().join("a/data.txt");
        assert_eq!(data.metadata().unwrap().permissions().mode() & 0o777, 0o644);
        let b = dir.path().join("a/b").metadata().unwrap();
        assert_eq!(b.permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn a_plan_file_never_goes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("secret");
        std::fs::write(&target, "kept").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("code.py")).unwrap();
        // A symlinked parent dir: refused, nothing written outside.
        assert!(write(dir.path(), "sub/secret", "written", false).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        // A symlink where the file goes: replaced by the file, its target untouched.
        write(dir.path(), "code.py", "print(1)", false).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        let code = dir.path().join("code.py");
        assert!(code.symlink_metadata().unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&code).unwrap(), "print(1)");
        // A file where a parent dir goes.
        std::fs::write(dir.path().join("plain"), "").unwrap();
        assert!(write(dir.path(), "plain/x", "", false).is_err());
    }
}
