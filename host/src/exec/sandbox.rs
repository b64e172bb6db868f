//! The sandbox: probes once, at start-up, which protections work on this machine
//! (per-execution cgroups, a shared empty network namespace, private temporary dirs,
//! dropping to an unprivileged uid, dedicated uids for the kill sweep when there are no
//! cgroups, rlimits), keeps the resources they need, and reports what is active and why
//! the rest is not.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cgroup::{self, Cgroups, Layout};
use super::gid_pool::{GidLease, GidPool};
use super::private_tmp::{PrivateTmp, TmpNs};
use super::process::ProcessSpec;
use super::spawn::{landlock_abi, scope_ruleset, LANDLOCK_ABI_SCOPED};
use super::uid_pool::UidPool;

/// What the sandbox should try to use. Anything that does not work here is skipped and
/// reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Per-execution cgroups (memory and pids limits, kill-all).
    pub cgroups: bool,
    /// A delegated cgroup v2 directory to create execution groups under, instead of
    /// detecting one (e.g. a systemd unit's cgroup with `Delegate=yes`).
    pub cgroup_v2_root: Option<PathBuf>,
    /// Execution cgroups created ahead of time, to keep `mkdir` off the critical path.
    pub cgroup_pool: usize,
    /// Run executions that don't ask for the network in an empty network namespace.
    pub network_isolation: bool,
    /// The uid and gid executions run as when the sidecar runs as root.
    pub run_as: Option<(u32, u32)>,
    /// Without cgroups, the only way to find every process of an execution (a daemon
    /// that called `setsid` included) is to give the execution a uid of its own and kill
    /// everything running as that uid afterwards. `(first, count)` uids are reserved for
    /// that; files get mode 0664/0775 (umask 002) so that the shared gid can still
    /// modify them. Used only as root and only when cgroups are unavailable. Two
    /// sidecars in one PID namespace (not the case for pods) need disjoint ranges
    /// (`SIDECAR_UID_POOL`): a sweep kills every process of its uid.
    pub uid_pool: Option<(u32, u32)>,
    /// With cgroups (as root), executions keep the language's uid but each gets a gid of
    /// its own from `(first, count)`: then none can trace or look into another's
    /// processes (see exec/gid_pool.rs).
    pub gid_pool: Option<(u32, u32)>,
    /// Put each process the sandbox starts in a Landlock domain of its own that scopes
    /// signals and abstract unix sockets (Linux >= 6.12 with Landlock enabled).
    pub scoped_signals: bool,
    /// Give each execution that asks its own empty /tmp, /var/tmp and /dev/shm (a pool
    /// of mount namespaces; needs root).
    pub private_tmp: bool,
    /// Paths under those directories that executions must still reach (the workspace
    /// and scratch roots; made if missing).
    pub visible: Vec<PathBuf>,
    /// The scratch root: with private temporary dirs, each execution's scratch dir is a
    /// tmpfs of its own mounted there (out of other executions' sight); else its dirs
    /// are made in it. A directory of its own: what else lies under it is hidden.
    pub scratch: Option<PathBuf>,
    /// Bytes each private tmpfs may hold.
    pub private_tmp_size: u64,
    /// The workspace root: with private temporary dirs, files written there are
    /// attributed to the execution that wrote them (so that an execution's `files`
    /// leaves out what others running beside it wrote).
    pub workspace: Option<PathBuf>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            cgroups: true,
            cgroup_v2_root: None,
            cgroup_pool: 4,
            network_isolation: true,
            run_as: Some((65532, 65532)),
            uid_pool: Some((200_000, 512)),
            gid_pool: Some((200_000, 512)),
            scoped_signals: true,
            private_tmp: true,
            visible: Vec::new(),
            scratch: None,
            private_tmp_size: 256 << 20,
            workspace: None,
        }
    }
}

/// One protection and whether it is active, for the start-up log and `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protection {
    pub name: String,
    pub active: bool,
    pub detail: String,
}

/// The protections available to executions. Create once with [`Sandbox::detect`] and
/// share (it is `Send + Sync`).
#[derive(Debug)]
pub struct Sandbox {
    settings: SandboxSettings,
    pub(crate) cgroups: Option<Arc<Cgroups>>,
    netns: Option<OwnedFd>,
    is_root: bool,
    can_raise_limits: bool,
    pub(crate) uid_pool: Option<Arc<UidPool>>,
    gid_pool: Option<Arc<GidPool>>,
    /// The Landlock ruleset children restrict themselves to, where scopes work.
    scope: Option<OwnedFd>,
    private_tmp: Option<Arc<PrivateTmp>>,
    report: Vec<Protection>,
}

impl Sandbox {
    /// Probes what works here. Never fails: what does not work is reported inactive.
    pub fn detect(settings: SandboxSettings) -> Sandbox {
        // SAFETY: plain getter.
        let euid = unsafe { libc::geteuid() };
        let is_root = euid == 0;
        let mut report = Vec::new();

        // Per-execution cgroups.
        let (cgroups, cgroup_why) = if settings.cgroups {
            detect_cgroups(&settings)
        } else {
            (None, "disabled by settings".to_string())
        };
        let cgroups = cgroups.map(Arc::new);
        match &cgroups {
            Some(c) => report.push(protection("cgroups", true, describe_layout(c.layout()))),
            None => report.push(protection("cgroups", false, cgroup_why)),
        }

        // Dedicated uids, only as a fallback for kill-all.
        let uid_pool = match (&cgroups, settings.uid_pool, is_root) {
            (None, Some((first, count)), true) if count > 0 => {
                Some(Arc::new(UidPool::new(first, count)))
            }
            _ => None,
        };

        let memory_detail = match &cgroups {
            Some(c) if c.has_memory() => MEMORY_CGROUP,
            _ => MEMORY_NONE,
        };
        report.push(protection(
            "memory_limit",
            cgroups.as_ref().is_some_and(|c| c.has_memory()),
            memory_detail.to_string(),
        ));

        let (pids_active, pids_detail) = match (&cgroups, &uid_pool) {
            (Some(c), _) if c.has_pids() => (true, "cgroup pids.max".to_string()),
            (_, Some(pool)) => (
                true,
                format!("RLIMIT_NPROC on a dedicated uid ({})", pool.describe()),
            ),
            _ => (
                false,
                "no pids cgroup and no dedicated uids: fork bombs are bounded by the timeout only"
                    .to_string(),
            ),
        };
        report.push(protection("pids_limit", pids_active, pids_detail));

        let (kill_active, kill_detail) = match (&cgroups, &uid_pool) {
            (Some(c), _) => (true, c.kill_method().to_string()),
            (None, Some(pool)) => (
                true,
                format!(
                    "SIGKILL sweep of a dedicated uid per execution ({})",
                    pool.describe()
                ),
            ),
            (None, None) => (
                false,
                "process group only: a process that calls setsid can outlive its execution"
                    .to_string(),
            ),
        };
        report.push(protection("kill_all", kill_active, kill_detail));

        // The shared empty network namespace.
        let netns = if settings.network_isolation {
            match create_netns() {
                Ok(fd) => {
                    report.push(protection("network_isolation", true, NETNS_DETAIL.into()));
                    Some(fd)
                }
                Err(e) => {
                    report.push(protection(
                        "network_isolation",
                        false,
                        format!("cannot create a network namespace: {e}"),
                    ));
                    None
                }
            }
        } else {
            report.push(protection(
                "network_isolation",
                false,
                "disabled by settings".into(),
            ));
            None
        };

        let private_tmp = if !settings.private_tmp {
            report.push(protection(
                "private_tmp",
                false,
                "disabled by settings".into(),
            ));
            None
        } else {
            match PrivateTmp::new(
                &settings.visible,
                settings.scratch.as_deref(),
                settings.workspace.as_deref(),
                settings.private_tmp_size,
            ) {
                Ok(pool) => {
                    report.push(protection("private_tmp", true, pool.describe()));
                    Some(pool)
                }
                Err(e) => {
                    report.push(protection(
                        "private_tmp",
                        false,
                        format!(
                            "cannot make a mount namespace ({e}): executions of a uid share \
                             /tmp, /var/tmp and /dev/shm"
                        ),
                    ));
                    None
                }
            }
        };

        // A gid per execution, where executions share the language's uid.
        let runs_as = is_root && settings.run_as.is_some_and(|(uid, _)| uid != 0);
        let (gid_pool, why) = match (runs_as, &uid_pool, settings.gid_pool) {
            (false, _, _) => (
                None,
                "user code does not run as another uid (see uid_drop)".into(),
            ),
            (true, Some(pool), _) => (
                None,
                format!("each execution has a uid of its own ({})", pool.describe()),
            ),
            (true, None, None) => (None, "disabled by settings".to_string()),
            (true, None, Some((first, count))) => match GidPool::new(first, count) {
                Ok(pool) => {
                    let why = format!(
                        "each execution runs with a gid of its own ({}): none can trace another's \
                         processes or look into them through /proc (root, cwd, fd, mem)",
                        pool.describe()
                    );
                    (Some(Arc::new(pool)), why)
                }
                Err(e) => (
                    None,
                    format!("{e}: executions of a language can trace each other's processes"),
                ),
            },
        };
        report.push(protection(
            "private_processes",
            gid_pool.is_some() || uid_pool.is_some() && runs_as,
            why,
        ));

        // Signals kept within each execution.
        let (scope, why) = match (settings.scoped_signals, landlock_abi()) {
            (false, _) => (None, "disabled by settings".to_string()),
            (true, Ok(abi)) if abi >= LANDLOCK_ABI_SCOPED => match scope_ruleset() {
                Ok(fd) => (
                    Some(fd),
                    format!(
                        "Landlock (ABI {abi}): an execution's processes can send signals to, \
                         and connect to abstract unix sockets of, only processes of the same \
                         execution"
                    ),
                ),
                Err(e) => (None, format!("cannot make a Landlock ruleset: {e}")),
            },
            (true, Ok(abi)) => (
                None,
                format!(
                    "Landlock ABI {abi} has no scopes (Linux 6.12 and later): an execution \
                     can signal the processes of another running as the same uid"
                ),
            ),
            (true, Err(e)) => (
                None,
                format!(
                    "no Landlock ({e}; it must be in the kernel's `lsm=` list): an execution \
                     can signal the processes of another running as the same uid"
                ),
            ),
        };
        report.push(protection("scoped_signals", scope.is_some(), why));

        match (is_root, settings.run_as) {
            (true, Some((uid, gid))) if uid != 0 => report.push(protection(
                "uid_drop",
                true,
                match &uid_pool {
                    Some(pool) => format!(
                        "runs as a dedicated uid ({}) with gid {gid}, no supplementary groups",
                        pool.describe()
                    ),
                    None if gid_pool.is_some() => format!(
                        "runs as uid {uid} with the execution's own gid (see private_processes), \
                         no supplementary groups"
                    ),
                    None => format!("runs as {uid}:{gid}, no supplementary groups"),
                },
            )),
            (true, _) => report.push(protection(
                "uid_drop",
                false,
                "disabled by settings: code runs as root".into(),
            )),
            (false, _) => report.push(protection(
                "uid_drop",
                false,
                format!("not running as root (euid {euid}): code runs as the sidecar's own user"),
            )),
        }

        report.push(protection("rlimits", true, RLIMITS_DETAIL.into()));
        report.push(protection(
            "no_new_privs",
            true,
            "setuid and file-capability programs run without raising privileges".into(),
        ));
        report.push(protection(
            "environment",
            true,
            "cleared: only the variables of the spec; inherited descriptors closed".into(),
        ));

        Sandbox {
            settings,
            cgroups,
            netns,
            is_root,
            can_raise_limits: is_root && has_effective_capability(CAP_SYS_RESOURCE),
            uid_pool,
            gid_pool,
            scope,
            private_tmp,
            report,
        }
    }

    /// What is active and why the rest is not.
    pub fn report(&self) -> Vec<Protection> {
        self.report.clone()
    }

    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        self.report
            .iter()
            .map(|p| format!("{}={}", p.name, if p.active { "on" } else { "off" }))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// Whether the protection called `name` (as in [`Sandbox::report`]) is active.
    pub fn is_active(&self, name: &str) -> bool {
        self.report.iter().any(|p| p.name == name && p.active)
    }

    /// The uid and gid executions should run as: `settings.run_as` when we are root.
    pub fn run_as(&self) -> Option<(u32, u32)> {
        if self.is_root {
            self.settings.run_as.filter(|(uid, _)| *uid != 0)
        } else {
            None
        }
    }

    /// A gid of its own for one execution (see exec/gid_pool.rs), where that protection
    /// is active and one is free; put it in every [`ProcessSpec`] of the execution, and
    /// keep it until the execution's processes are dead.
    pub fn gid_lease(&self) -> Option<GidLease> {
        let lease = self.gid_pool.as_ref()?.lease();
        if lease.is_none() {
            tracing::warn!("no free execution gid: this execution shares the language's gid");
        }
        lease
    }

    /// The Landlock ruleset each process started restricts itself to (a domain of its
    /// own that scopes its signals), where that protection is active.
    pub(crate) fn scope_ruleset(&self) -> Option<RawFd> {
        self.scope.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// A spec with the default limits and this sandbox's uid.
    pub fn spec(&self, argv: Vec<String>, cwd: impl Into<PathBuf>) -> ProcessSpec {
        let mut spec = ProcessSpec::new(argv, cwd);
        spec.uid_gid = self.run_as();
        spec
    }

    pub(crate) fn is_root(&self) -> bool {
        self.is_root
    }

    /// Whether rlimits may be raised above the sidecar's own hard limits: root with
    /// CAP_SYS_RESOURCE (a container's root may lack it; the limits are then clamped).
    pub(crate) fn can_raise_limits(&self) -> bool {
        self.can_raise_limits
    }

    /// A private /tmp, /var/tmp and /dev/shm for one execution, where that protection is
    /// active; put it in every [`ProcessSpec`] of the execution.
    pub fn private_tmp(&self) -> Result<Option<TmpNs>, super::ExecError> {
        self.private_tmp
            .as_ref()
            .map(|pool| pool.lease())
            .transpose()
            .map_err(|e| super::ExecError::Sandbox(format!("preparing a private /tmp: {e}")))
    }

    pub(crate) fn netns_fd(&self) -> Option<std::os::fd::RawFd> {
        self.netns.as_ref().map(AsRawFd::as_raw_fd)
    }
}

const NETNS_DETAIL: &str =
    "one shared, empty network namespace (no interfaces, loopback down) joined by each execution";
/// `CAP_SYS_RESOURCE` (linux/capability.h).
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether capability `cap` is in this process's effective set (`CapEff` in
/// /proc/self/status); false when that cannot be read.
fn has_effective_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

const RLIMITS_DETAIL: &str =
    "CORE=0; NOFILE, FSIZE, CPU per execution; NPROC with dedicated uids; AS when a spec asks";
const MEMORY_CGROUP: &str =
    "cgroup memory limit (swap capped too where the kernel accounts it); OOM kills reported";
const MEMORY_NONE: &str =
    "no memory cgroup: a memory limit applies only as RLIMIT_AS, when a spec asks for it";

fn protection(name: &str, active: bool, detail: String) -> Protection {
    Protection {
        name: name.to_string(),
        active,
        detail,
    }
}

fn describe_layout(layout: &Layout) -> String {
    match layout {
        Layout::V2 {
            parent,
            memory,
            pids,
            kill,
        } => {
            let mut controllers = Vec::new();
            if *memory {
                controllers.push("memory");
            }
            if *pids {
                controllers.push("pids");
            }
            if *kill {
                controllers.push("cgroup.kill");
            }
            format!("v2 under {} ({})", parent.display(), controllers.join(", "))
        }
        Layout::V1 {
            memory,
            pids,
            freezer,
        } => {
            let parts: Vec<String> = [("memory", memory), ("pids", pids), ("freezer", freezer)]
                .into_iter()
                .map(|(name, dir)| match dir {
                    Some(d) => format!("{name} under {}", d.display()),
                    None => format!("no {name}"),
                })
                .collect();
            format!("v1: {}", parts.join(", "))
        }
    }
}

/// cgroup v2 with memory and pids when the system is pure v2, else v1, else whatever v2
/// gives (kill-all only, e.g. the empty hybrid `unified` hierarchy).
fn detect_cgroups(settings: &SandboxSettings) -> (Option<Cgroups>, String) {
    let pool = settings.cgroup_pool;
    if let Some(root) = &settings.cgroup_v2_root {
        return match Cgroups::try_v2(root, false, pool) {
            Ok(c) => (Some(c), String::new()),
            Err(e) => (None, format!("cgroup v2 at {}: {e}", root.display())),
        };
    }
    let mut why = Vec::new();
    let v2 = cgroup::v2_own_dir();
    if let Some((mountpoint, dir)) = &v2 {
        if mountpoint == Path::new("/sys/fs/cgroup") {
            match Cgroups::try_v2(dir, true, pool) {
                Ok(c) => return (Some(c), String::new()),
                Err(e) => why.push(format!("v2: {e}")),
            }
        }
    }
    match Cgroups::try_v1(pool) {
        Ok(c) => return (Some(c), String::new()),
        Err(e) => why.push(format!("v1: {e}")),
    }
    if let Some((_, dir)) = &v2 {
        match Cgroups::try_v2(dir, false, pool) {
            Ok(c) => return (Some(c), String::new()),
            Err(e) => why.push(format!("v2 (kill only): {e}")),
        }
    } else {
        why.push("no cgroup2 mount".into());
    }
    (None, why.join("; "))
}

/// Creates an empty network namespace in a throwaway thread and keeps a descriptor of
/// it; checks that a child can join it.
fn create_netns() -> io::Result<OwnedFd> {
    let fd = std::thread::spawn(|| -> io::Result<OwnedFd> {
        // SAFETY: affects only this thread, which ends right after.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(File::open("/proc/thread-self/ns/net")?.into())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))??;
    let raw = fd.as_raw_fd();
    // SAFETY: the child only calls setns(2).
    let code = unsafe { super::spawn::probe_in_child(|| libc::setns(raw, libc::CLONE_NEWNET)) }?;
    if code == 0 {
        Ok(fd)
    } else {
        Err(io::Error::other(
            "a child cannot join the namespace (setns failed)",
        ))
    }
}
