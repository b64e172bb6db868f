//! Per-execution control groups, cgroup v2 or v1: detection at start-up, one fresh group
//! per execution (memory and pids limits), joining it from the child before `exec` (v2:
//! the child is made in it where the kernel can, see exec/spawn.rs),
//! killing everything in it (v2 `cgroup.kill`; v1 freeze, SIGKILL, thaw, until empty),
//! OOM detection, and recycling or removal.
//!
//! A group whose execution ended on its own (nothing had to be killed) and left little
//! memory charged goes back to the pool for a later execution: creating and removing
//! a memory cgroup costs ~0.2 ms of CPU per execution and holds the kernel's cgroup
//! lock that every join takes. Its OOM counter is read when it comes back, so the next
//! execution reports only its own OOM kills.
//!
//! Execution groups live under a parent group of our own, `sidecar.<pid>.<n>`, created
//! inside the cgroup this process already belongs to (so the host's limits still apply
//! to everything we start). Parents left behind by a dead sidecar are cleaned up at
//! start-up.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Which hierarchy and controllers execution groups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// cgroup v2: one directory; `kill` is true when `cgroup.kill` exists.
    V2 {
        parent: PathBuf,
        memory: bool,
        pids: bool,
        kill: bool,
    },
    /// cgroup v1: one parent per hierarchy that works.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        freezer: Option<PathBuf>,
    },
}

/// Limits applied to one execution group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
}

/// The cgroup side of the sandbox: creates execution groups.
#[derive(Debug)]
pub(crate) struct Cgroups {
    layout: Layout,
    next: AtomicU64,
    /// Fresh groups created ahead of time, so that `mkdir` is off the critical path of
    /// an execution; with the limits of the last execution already written (writing
    /// them costs ~20 µs, and most executions ask for the same).
    pool: Mutex<Vec<ExecCgroup>>,
    /// How many groups [`Cgroups::refill`] keeps made ahead. Recycling may hold up to
    /// twice as many: back to back, the next execution takes a group and the pool is
    /// refilled before the previous execution's group comes back, and a full pool would
    /// then remove it (measured: a quarter of all executions made and removed a group).
    pool_size: usize,
    last_limits: Mutex<Option<Limits>>,
}

/// A sidecar process may build several sandboxes (tests do): each gets its own parent.
static PARENT_SEQ: AtomicU64 = AtomicU64::new(0);

const PARENT_PREFIX: &str = "sidecar.";

impl Cgroups {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn has_memory(&self) -> bool {
        match &self.layout {
            Layout::V2 { memory, .. } => *memory,
            Layout::V1 { memory, .. } => memory.is_some(),
        }
    }

    pub fn has_pids(&self) -> bool {
        match &self.layout {
            Layout::V2 { pids, .. } => *pids,
            Layout::V1 { pids, .. } => pids.is_some(),
        }
    }

    /// A human description of how everything in a group gets killed.
    pub fn kill_method(&self) -> &'static str {
        match &self.layout {
            Layout::V2 { kill: true, .. } => "cgroup v2 cgroup.kill",
            Layout::V2 { kill: false, .. } => "cgroup v2: SIGSTOP then SIGKILL every member",
            Layout::V1 {
                freezer: Some(_), ..
            } => "cgroup v1: freeze, SIGKILL every member, thaw",
            Layout::V1 { .. } => "cgroup v1: SIGSTOP then SIGKILL every member",
        }
    }

    /// Probes cgroup v2 in `base` (a directory of a mounted cgroup2 hierarchy that we may
    /// write to). `require_controllers`: fail unless memory and pids both work.
    pub fn try_v2(
        base: &Path,
        require_controllers: bool,
        pool_size: usize,
    ) -> Result<Self, String> {
        let available = read_to_string(&base.join("cgroup.controllers"))
            .map_err(|e| format!("{}: {e}", base.display()))?;
        let available: HashSet<&str> = available.split_whitespace().collect();
        let wanted: Vec<&str> = ["memory", "pids"]
            .into_iter()
            .filter(|c| available.contains(c))
            .collect();
        if require_controllers && wanted.len() < 2 {
            return Err(format!(
                "{} lacks the memory and pids controllers (has: {})",
                base.display(),
                if available.is_empty() {
                    "none".to_string()
                } else {
                    sorted(&available)
                }
            ));
        }
        let enable = wanted
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if !enable.is_empty() {
            enable_v2_controllers(base, &enable)?;
        }
        cleanup_stale_parents(base);
        let parent = new_parent_path(base);
        fs::create_dir(&parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
        let result = (|| {
            if !enable.is_empty() {
                write_file(&parent.join("cgroup.subtree_control"), enable.as_bytes())
                    .map_err(|e| format!("enable {enable} in {}: {e}", parent.display()))?;
            }
            let probe = parent.join("probe");
            fs::create_dir(&probe).map_err(|e| format!("mkdir {}: {e}", probe.display()))?;
            let joined = probe_join(&[&probe]);
            let kill = probe.join("cgroup.kill").exists();
            let memory = probe.join("memory.max").exists();
            let pids = probe.join("pids.max").exists();
            let _ = fs::remove_dir(&probe);
            joined.map_err(|e| format!("joining {}: {e}", probe.display()))?;
            if require_controllers && !(memory && pids) {
                return Err(format!(
                    "{}: memory/pids controllers not delegated",
                    parent.display()
                ));
            }
            Ok(Layout::V2 {
                parent: parent.clone(),
                memory,
                pids,
                kill,
            })
        })();
        match result {
            Ok(layout) => Ok(Self::new(layout, pool_size)),
            Err(e) => {
                let _ = fs::remove_dir(&parent);
                Err(e)
            }
        }
    }

    /// Probes the cgroup v1 memory, pids and freezer hierarchies.
    pub fn try_v1(pool_size: usize) -> Result<Self, String> {
        let mounts =
            read_to_string(Path::new("/proc/self/mountinfo")).map_err(|e| e.to_string())?;
        let own = read_to_string(Path::new("/proc/self/cgroup")).map_err(|e| e.to_string())?;
        let mut found: [Option<PathBuf>; 3] = [None, None, None];
        let mut why = Vec::new();
        for (i, controller) in ["memory", "pids", "freezer"].into_iter().enumerate() {
            let Some(base) = v1_own_dir(&mounts, &own, controller) else {
                why.push(format!("{controller}: not mounted"));
                continue;
            };
            cleanup_stale_parents(&base);
            let parent = new_parent_path(&base);
            if let Err(e) = fs::create_dir(&parent) {
                why.push(format!("{controller}: mkdir {}: {e}", parent.display()));
                continue;
            }
            let probe = parent.join("probe");
            let ok = fs::create_dir(&probe)
                .and_then(|_| probe_join(&[&probe]))
                .map_err(|e| format!("{controller}: probe in {}: {e}", parent.display()));
            let _ = fs::remove_dir(&probe);
            match ok {
                Ok(()) => found[i] = Some(parent),
                Err(e) => {
                    let _ = fs::remove_dir(&parent);
                    why.push(e);
                }
            }
        }
        let [memory, pids, freezer] = found;
        if memory.is_none() && pids.is_none() && freezer.is_none() {
            return Err(format!("cgroup v1 unusable ({})", why.join("; ")));
        }
        Ok(Self::new(
            Layout::V1 {
                memory,
                pids,
                freezer,
            },
            pool_size,
        ))
    }

    fn new(layout: Layout, pool_size: usize) -> Self {
        let cgroups = Self {
            layout,
            next: AtomicU64::new(0),
            pool: Mutex::new(Vec::new()),
            pool_size,
            last_limits: Mutex::new(None),
        };
        cgroups.refill();
        cgroups
    }

    /// Creates groups until the pool is full (call off the critical path).
    pub fn refill(&self) {
        loop {
            let missing = {
                let pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                self.pool_size.saturating_sub(pool.len())
            };
            if missing == 0 {
                return;
            }
            let limits = *self.last_limits.lock().unwrap_or_else(|e| e.into_inner());
            let made = self.make().and_then(|mut group| match limits {
                Some(limits) => match group.apply(limits) {
                    Ok(()) => Ok(group),
                    Err(e) => {
                        let _ = group.remove();
                        Err(e)
                    }
                },
                None => Ok(group),
            });
            match made {
                Ok(group) => self
                    .pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(group),
                Err(e) => {
                    tracing::warn!("pre-creating an execution cgroup failed: {e}");
                    return;
                }
            }
        }
    }

    /// A fresh execution group with `limits` applied.
    pub fn create(&self, limits: Limits) -> io::Result<ExecCgroup> {
        *self.last_limits.lock().unwrap_or_else(|e| e.into_inner()) = Some(limits);
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut group = match pooled {
            Some(g) if g.applied == Some(limits) => return Ok(g),
            Some(g) => g,
            None => self.make()?,
        };
        match group.apply(limits) {
            Ok(()) => Ok(group),
            Err(e) => {
                let _ = group.remove();
                Err(e)
            }
        }
    }

    /// Puts a used group back in the pool when it can serve another execution as if
    /// fresh: empty, never frozen or killed into (so nothing is left half-stopped), and
    /// with at most [`RECYCLE_MAX_CHARGE`] of memory still charged (page cache of files
    /// the execution wrote, which would otherwise count against the next one). Removes
    /// it otherwise. Call off the critical path.
    pub fn recycle(&self, mut group: ExecCgroup) {
        let reusable = !group.killed.load(Ordering::Relaxed)
            && group.is_empty()
            && group
                .charged()
                .is_some_and(|bytes| bytes <= RECYCLE_MAX_CHARGE);
        if let Some(count) = reusable.then(|| group.oom_count()).flatten() {
            group.oom_base = count;
            group.reset_peak();
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < 2 * self.pool_size {
                pool.push(group);
                return;
            }
        }
        if let Err(e) = group.remove() {
            tracing::warn!("removing an execution cgroup: {e}");
        }
    }

    fn make(&self) -> io::Result<ExecCgroup> {
        let name = format!("e{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut group = ExecCgroup {
            v2: matches!(self.layout, Layout::V2 { .. }),
            dirs: Vec::new(),
            procs_dir: PathBuf::new(),
            freezer: None,
            kill_file: None,
            memory: None,
            pids: None,
            join: Vec::new(),
            v1_memory_join: None,
            memory_limited: false,
            applied: None,
            memory_written: None,
            oom_base: 0,
            oom_file: None,
            pids_current: None,
            v2_dir: None,
            peak_file: None,
            usage_file: None,
            peak_is_own: true,
            peak_base: 0,
            killed: AtomicBool::new(false),
        };
        let made = (|| {
            match &self.layout {
                Layout::V2 {
                    parent,
                    memory,
                    pids,
                    kill,
                } => {
                    let dir = parent.join(&name);
                    fs::create_dir(&dir)?;
                    group.dirs.push(dir.clone());
                    group.procs_dir = dir.clone();
                    group.kill_file = kill.then(|| dir.join("cgroup.kill"));
                    group.memory = memory.then(|| dir.clone());
                    group.pids = pids.then(|| dir.clone());
                }
                Layout::V1 {
                    memory,
                    pids,
                    freezer,
                } => {
                    // Memory first so the group reading procs prefers freezer/pids.
                    for (kind, parent) in [(0, memory), (1, pids), (2, freezer)] {
                        let Some(parent) = parent else { continue };
                        let dir = parent.join(&name);
                        fs::create_dir(&dir)?;
                        group.dirs.push(dir.clone());
                        group.procs_dir = dir.clone();
                        match kind {
                            0 => group.memory = Some(dir),
                            1 => group.pids = Some(dir),
                            _ => group.freezer = Some(dir),
                        }
                    }
                }
            }
            for dir in &group.dirs {
                // (Unless it is the only group: then it is what tracks the members.)
                if !group.v2 && group.dirs.len() > 1 && group.memory.as_ref() == Some(dir) {
                    group.v1_memory_join = Some(group.join.len());
                }
                // v1: the child writes "0" into `tasks`, moving only itself (it is
                // single-threaded between fork and exec, so that moves the process).
                // Writing `cgroup.procs` takes the kernel's global threadgroup rwsem for
                // writing, which waits for an RCU grace period (5-17 ms) whenever no
                // migration happened in the last few milliseconds: spaced requests, as
                // an agent makes them, paid it every time. A `tasks` write of "0" skips
                // that lock.
                let join_file = if group.v2 { "cgroup.procs" } else { "tasks" };
                group
                    .join
                    .push(OpenOptions::new().write(true).open(dir.join(join_file))?);
            }
            if let Some(dir) = &group.memory {
                let events = if group.v2 {
                    "memory.events"
                } else {
                    "memory.oom_control"
                };
                group.oom_file = File::open(dir.join(events)).ok();
                let peak = if group.v2 {
                    "memory.peak"
                } else {
                    "memory.max_usage_in_bytes"
                };
                group.peak_file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(dir.join(peak))
                    .or_else(|_| File::open(dir.join(peak)))
                    .ok();
                let usage = if group.v2 {
                    "memory.current"
                } else {
                    "memory.usage_in_bytes"
                };
                group.usage_file = File::open(dir.join(usage)).ok();
            }
            if let Some(dir) = &group.pids {
                group.pids_current = File::open(dir.join("pids.current")).ok();
            }
            if group.v2 {
                group.v2_dir = File::open(&group.procs_dir).ok();
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(group),
            Err(e) => {
                let _ = group.remove();
                Err(e)
            }
        }
    }

    /// Removes pooled groups and our parent directories (best effort).
    fn teardown(&self) {
        let pooled = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        for group in pooled {
            let _ = group.remove();
        }
        let parents: Vec<&PathBuf> = match &self.layout {
            Layout::V2 { parent, .. } => vec![parent],
            Layout::V1 {
                memory,
                pids,
                freezer,
            } => [memory, pids, freezer].into_iter().flatten().collect(),
        };
        for parent in parents {
            remove_tree(parent);
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One execution's group (in each hierarchy, for v1).
#[derive(Debug)]
pub(crate) struct ExecCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    /// The directory whose `cgroup.procs` lists the members.
    procs_dir: PathBuf,
    freezer: Option<PathBuf>,
    kill_file: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    /// `cgroup.procs` (v2) or `tasks` (v1) of every directory, open for the child to
    /// write "0" into.
    join: Vec<File>,
    /// Index in `join` of the v1 memory group: joined only when a memory limit is set
    /// (each v1 hierarchy joined costs a migration on the spawn path).
    v1_memory_join: Option<usize>,
    memory_limited: bool,
    /// The limits written to this group.
    applied: Option<Limits>,
    /// The memory limit the kernel holds for this group (v1), `None` while it is the
    /// default (unlimited). Not the same as `applied`: an execution without a memory
    /// limit leaves the last one in place (it does not join the memory group).
    memory_written: Option<u64>,
    /// The OOM-kill counter when this group was handed out (non-zero when recycled).
    oom_base: u64,
    /// The memory group's `memory.oom_control` (v1) or `memory.events` (v2), open for
    /// the whole life of the group: read after every execution, and a kept descriptor
    /// spares a walk of the long cgroupfs path each time.
    oom_file: Option<File>,
    /// The pids group's `pids.current`, open likewise: how many tasks the group holds,
    /// zombies included (see [`ExecCgroup::tasks`]).
    pids_current: Option<File>,
    /// v2: the group's directory, for children made in it (`CLONE_INTO_CGROUP`).
    v2_dir: Option<File>,
    /// The memory group's high-water mark, `memory.max_usage_in_bytes` (v1) or
    /// `memory.peak` (v2), open for reading and for resetting (v2 resets per open file,
    /// so the same descriptor must do both).
    peak_file: Option<File>,
    /// The memory group's `memory.usage_in_bytes` (v1) or `memory.current` (v2), kept
    /// open: read twice each time the group is recycled.
    usage_file: Option<File>,
    /// The high-water mark counts this execution only: the group is fresh, or it was
    /// reset when it came back (a v2 kernel before 6.12 cannot reset it).
    peak_is_own: bool,
    /// Bytes the last execution left charged when the mark was reset (page cache of
    /// files it wrote), not counted as this execution's.
    peak_base: u64,
    /// A kill round found members: the group is removed, not recycled.
    killed: AtomicBool,
}

/// Memory still charged to a used group above which it is removed, not recycled.
const RECYCLE_MAX_CHARGE: u64 = 16 << 20;

impl ExecCgroup {
    fn apply(&mut self, limits: Limits) -> io::Result<()> {
        self.applied = None;
        self.memory_limited = limits.memory.is_some() && self.memory.is_some();
        if let (Some(dir), Some(bytes)) = (&self.memory, limits.memory) {
            let value = bytes.to_string();
            if self.v2 {
                write_file(&dir.join("memory.max"), value.as_bytes())?;
                // No swap: the limit must mean memory.
                let _ = write_file(&dir.join("memory.swap.max"), b"0");
            } else {
                // memsw (only where the kernel accounts swap) may never be below the
                // limit: raised first when the limit goes up (a pooled group holds the
                // last limit written to it), after it otherwise.
                let memsw =
                    || match write_file(&dir.join("memory.memsw.limit_in_bytes"), value.as_bytes())
                    {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                        other => other,
                    };
                let raising = self.memory_written.is_some_and(|old| bytes > old);
                // Unknown from here on if a write fails (the group is then removed).
                self.memory_written = None;
                if raising {
                    memsw()?;
                }
                write_file(&dir.join("memory.limit_in_bytes"), value.as_bytes())?;
                if !raising {
                    memsw()?;
                }
                self.memory_written = Some(bytes);
            }
        }
        // v2 has one group for everything, joined even without a memory limit: a
        // recycled one must not keep the last execution's.
        if let (true, Some(dir), None) = (self.v2, &self.memory, limits.memory) {
            write_file(&dir.join("memory.max"), b"max")?;
        }
        if let Some(dir) = &self.pids {
            let value = limits
                .pids
                .map_or_else(|| "max".to_string(), |n| n.to_string());
            write_file(&dir.join("pids.max"), value.as_bytes())?;
        }
        self.applied = Some(limits);
        Ok(())
    }

    /// v2: a descriptor of the group's directory, to make the child in it.
    pub fn v2_dir_fd(&self) -> Option<RawFd> {
        self.v2_dir.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// File descriptors of the `cgroup.procs` (v2) or `tasks` (v1) files to write "0"
    /// into, in the child.
    pub fn join_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        let skip = if self.memory_limited {
            None
        } else {
            self.v1_memory_join
        };
        self.join
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != skip)
            .map(|(_, f)| f.as_raw_fd())
    }

    /// The members' pids.
    pub fn members(&self) -> io::Result<Vec<libc::pid_t>> {
        let text = read_to_string(&self.procs_dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// How many tasks the pids group holds: every thread of every member, and members
    /// that exited but are not reaped yet (the kernel uncharges a task when it is
    /// reaped). `None` without a pids group. One read of a kept descriptor, where
    /// listing `cgroup.procs` opens a long path and (v1) builds a pid list that the
    /// kernel frees later from a worker.
    pub fn tasks(&self) -> Option<u64> {
        read_whole(self.pids_current.as_ref()?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the group holds no process (all of them reaped).
    fn is_empty(&self) -> bool {
        match self.tasks() {
            Some(n) => n == 0,
            None => self.members().is_ok_and(|m| m.is_empty()),
        }
    }

    /// One round of killing: returns true when the group was already empty.
    pub fn kill_round(&self) -> io::Result<bool> {
        let members = self.members()?;
        if members.is_empty() {
            return Ok(true);
        }
        self.killed.store(true, Ordering::Relaxed);
        if let Some(kill) = &self.kill_file {
            write_file(kill, b"1")?;
        } else if let Some(freezer) = &self.freezer {
            let state = freezer.join("freezer.state");
            let _ = write_file(&state, b"FROZEN");
            signal_all(&members, libc::SIGKILL);
            // Members forked between the read and the freeze.
            signal_all(&self.members()?, libc::SIGKILL);
            // Thawing lets the pending SIGKILLs take effect; a failure here is retried
            // by the next round.
            let _ = write_file(&state, b"THAWED");
        } else {
            // A stopped process cannot fork; then kill the stopped ones and newcomers.
            signal_all(&members, libc::SIGSTOP);
            signal_all(&self.members()?, libc::SIGKILL);
            signal_all(&members, libc::SIGKILL);
        }
        Ok(false)
    }

    /// Whether the kernel OOM-killed a member of this group during this execution.
    pub fn oom_killed(&self) -> bool {
        self.memory_limited && self.oom_count().is_some_and(|n| n > self.oom_base)
    }

    /// The group's OOM-kill counter (v1 kernels without one: how often the limit was
    /// hit, a strong hint); `Some(0)` without a memory group.
    fn oom_count(&self) -> Option<u64> {
        let Some(dir) = &self.memory else {
            return Some(0);
        };
        let text = read_whole(self.oom_file.as_ref()?).ok()?;
        let key = "oom_kill";
        let counter = text.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next() == Some(key)).then(|| parts.next().and_then(|n| n.parse::<u64>().ok()))
        });
        match counter {
            Some(n) => n,
            None if !self.v2 => read_to_string(&dir.join("memory.failcnt"))
                .ok()
                .and_then(|t| t.trim().parse().ok()),
            None => None,
        }
    }

    /// The most memory the group's processes had charged at once during this
    /// execution (their pages, page cache they brought in, kernel memory), in bytes:
    /// `None` when the execution did not join the memory group (no memory limit) or
    /// the mark also counts an earlier execution.
    pub fn memory_peak(&self) -> Option<u64> {
        if !self.memory_limited || !self.peak_is_own {
            return None;
        }
        let peak: u64 = read_whole(self.peak_file.as_ref()?)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(peak.saturating_sub(self.peak_base))
    }

    /// Makes the high-water mark count from now on, for the group's next execution,
    /// above what the last one left charged (the group is empty; reclaiming that
    /// instead would drain per-CPU caches with work on every CPU, the next program's
    /// too). Call off the critical path.
    fn reset_peak(&mut self) {
        self.peak_is_own = self
            .peak_file
            .as_ref()
            .is_some_and(|mut f| f.write_all(b"0").is_ok());
        self.peak_base = self.charged().unwrap_or(0);
    }

    /// Bytes of memory charged to the group; `Some(0)` without a memory group, `None`
    /// when its usage cannot be read.
    fn charged(&self) -> Option<u64> {
        if self.memory.is_none() {
            return Some(0);
        }
        read_whole(self.usage_file.as_ref()?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes the group's directories (the group must be empty).
    pub fn remove(mut self) -> io::Result<()> {
        self.join.clear();
        self.oom_file = None;
        self.pids_current = None;
        self.v2_dir = None;
        self.peak_file = None;
        self.usage_file = None;
        let mut result = Ok(());
        for dir in std::mem::take(&mut self.dirs).iter().rev() {
            let mut attempt = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // A member that just died may still be leaving the group.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 50 => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        result
    }
}

impl Drop for ExecCgroup {
    /// A group dropped without [`ExecCgroup::remove`] (an early return): remove what
    /// can be removed right away.
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn signal_all(pids: &[libc::pid_t], signal: libc::c_int) {
    for &pid in pids {
        if pid > 1 {
            // SAFETY: plain syscall; the pid was listed as a member of our group.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.write_all(data)
}

fn read_to_string(path: &Path) -> io::Result<String> {
    read_whole(&File::open(path)?)
}

/// Reads a cgroupfs file from its start (again, for a kept descriptor: the kernel
/// regenerates its text at offset 0). Plain reads: std's `read_to_string` first asks
/// for the size and the offset, two system calls that cgroupfs answers with nothing.
/// The kernel makes a cgroupfs file's text whole at the first read and fills the
/// buffer from it, so a read that leaves room in the buffer got all of it: the usual
/// one-line file takes one system call, not a second one to see the end.
fn read_whole(file: &File) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read_at(&mut buf, text.len() as u64) {
            Ok(0) => break,
            Ok(n) => {
                text.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn sorted(set: &HashSet<&str>) -> String {
    let mut v: Vec<&str> = set.iter().copied().collect();
    v.sort();
    v.join(",")
}

fn new_parent_path(base: &Path) -> PathBuf {
    let seq = PARENT_SEQ.fetch_add(1, Ordering::Relaxed);
    base.join(format!("{PARENT_PREFIX}{}.{seq}", std::process::id()))
}

/// Enables controllers for our children in `base`. cgroup v2 forbids that while
/// processes live in `base` itself (unless it is the root), so move the processes living
/// there (this sidecar, and e.g. the container's init) into a leaf
/// `base/sidecar-supervisor` first, as container entrypoints that nest cgroups do.
fn enable_v2_controllers(base: &Path, enable: &str) -> Result<(), String> {
    let control = base.join("cgroup.subtree_control");
    match write_file(&control, enable.as_bytes()) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(format!("enable {enable} in {}: {e}", base.display())),
    }
    let leaf = base.join("sidecar-supervisor");
    if let Err(e) = fs::create_dir(&leaf) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(format!("mkdir {}: {e}", leaf.display()));
        }
    }
    let procs = leaf.join("cgroup.procs");
    write_file(&procs, std::process::id().to_string().as_bytes())
        .map_err(|e| format!("moving the sidecar into {}: {e}", leaf.display()))?;
    let others = read_to_string(&base.join("cgroup.procs")).unwrap_or_default();
    for pid in others.lines() {
        // Processes may exit meanwhile; what cannot move is reported below.
        let _ = write_file(&procs, pid.trim().as_bytes());
    }
    write_file(&control, enable.as_bytes()).map_err(|e| {
        format!(
            "enable {enable} in {}: {e} (processes that cannot be moved live there: \
             give the sidecar a cgroup of its own)",
            base.display()
        )
    })
}

/// `base` of the v1 hierarchy carrying `controller`, in which this process lives.
fn v1_own_dir(mountinfo: &str, own: &str, controller: &str) -> Option<PathBuf> {
    let (root, mountpoint) = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != "cgroup" {
            return None;
        }
        let options = right.nth(1)?;
        if !options.split(',').any(|o| o == controller) {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        Some((unescape(fields.get(3)?), unescape(fields.get(4)?)))
    })?;
    let path = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })?;
    let relative = path.strip_prefix(root.as_str()).unwrap_or(path);
    let dir = Path::new(&mountpoint).join(relative.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// The cgroup2 mount point (if any) and this process's directory in it.
pub(crate) fn v2_own_dir() -> Option<(PathBuf, PathBuf)> {
    let mounts = read_to_string(Path::new("/proc/self/mountinfo")).ok()?;
    let own = read_to_string(Path::new("/proc/self/cgroup")).ok()?;
    let mut candidates: Vec<(String, String)> = mounts
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = left.split_whitespace().collect();
            Some((unescape(fields.get(3)?), unescape(fields.get(4)?)))
        })
        .collect();
    // Prefer the canonical location.
    candidates.sort_by_key(|(_, mp)| mp != "/sys/fs/cgroup");
    let (root, mountpoint) = candidates.into_iter().next()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let relative = path.strip_prefix(root.as_str()).unwrap_or(path);
    let dir = Path::new(&mountpoint).join(relative.trim_start_matches('/'));
    dir.is_dir().then(|| (PathBuf::from(mountpoint), dir))
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = |b: &u8| (b'0'..=b'7').contains(b);
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1] <= b'3'
            && bytes[i + 1..i + 4].iter().all(octal)
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Forks a child that writes "0" into each group's `cgroup.procs` and exits: proves we
/// can move processes there.
fn probe_join(dirs: &[&Path]) -> io::Result<()> {
    let files: Vec<File> = dirs
        .iter()
        .map(|d| OpenOptions::new().write(true).open(d.join("cgroup.procs")))
        .collect::<io::Result<_>>()?;
    let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the child only calls write(2) on memory prepared before the fork.
    let code = unsafe {
        super::spawn::probe_in_child(|| {
            let moved = fds
                .iter()
                .all(|&fd| libc::write(fd, b"0".as_ptr().cast(), 1) == 1);
            libc::c_int::from(!moved)
        })
    }?;
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "cannot move a process into the group",
        ))
    }
}

/// Removes `sidecar.<pid>.<n>` parents in `base` whose sidecar is gone, killing anything
/// still inside.
fn cleanup_stale_parents(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PARENT_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split('.')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks existence.
        let alive = pid == std::process::id() as libc::pid_t
            || unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            tracing::info!("removing stale cgroup {}", entry.path().display());
            remove_tree(&entry.path());
        }
    }
}

/// Kills everything in a group tree and removes it, children first (best effort).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&entry.path());
            }
        }
    }
    let freezer = dir.join("freezer.state");
    for _ in 0..100 {
        let members: Vec<libc::pid_t> = read_to_string(&dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        if members.is_empty() {
            break;
        }
        if dir.join("cgroup.kill").exists() {
            let _ = write_file(&dir.join("cgroup.kill"), b"1");
        } else {
            if freezer.exists() {
                let _ = write_file(&freezer, b"FROZEN");
            }
            signal_all(&members, libc::SIGKILL);
            if freezer.exists() {
                let _ = write_file(&freezer, b"THAWED");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if let Err(e) = fs::remove_dir(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::debug!("cannot remove cgroup {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_dirs() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
                         31 25 0:27 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids\n";
        let own = "8:pids:/\n4:memory:/a/b\n0::/\n";
        // The directories don't exist on every machine: check the computation only
        // where they do.
        if Path::new("/sys/fs/cgroup/memory").is_dir()
            && Path::new("/sys/fs/cgroup/memory/a/b").is_dir()
        {
            assert_eq!(
                v1_own_dir(mountinfo, own, "memory"),
                Some(PathBuf::from("/sys/fs/cgroup/memory/a/b"))
            );
        }
        assert_eq!(v1_own_dir(mountinfo, own, "freezer"), None);
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
