//! Private temporary directories: each execution sees its own empty `/tmp`, `/var/tmp`
//! and `/dev/shm`, so that nothing one execution leaves there reaches the next (the
//! peers' hostile suites plant files there for the next run), while the paths the
//! executions need that lie under them (the workspace, the scratch root) stay where
//! they are.
//!
//! A mount namespace made per execution would cost milliseconds on the request path,
//! and its teardown waits for an RCU grace period. So namespaces are made ahead and
//! reused: each is a copy of the sidecar's mounts (receiving later mounts from the host,
//! sending none back) with a small tmpfs on each of those directories and the needed
//! paths bound back in place. A child joins one with `setns` before it enters its
//! working directory, a few microseconds. Once every process of the execution is dead,
//! the clean-up thread empties the tmpfs, through descriptors kept on their roots, and
//! the namespace goes back to the pool. A namespace that cannot be emptied is dropped.
//! Each namespace also watches its copy of the workspace's mount, to tell apart the
//! files its execution wrote (exec/writers.rs).
//!
//! The scratch root gets a tmpfs of its own in each namespace, which is the scratch dir
//! of the execution that holds the namespace: its sources and build outputs are then
//! out of sight of every other execution (which see their own there), at the same path
//! every time (so compiler messages and tracebacks name the same file for the same
//! code), and emptied with the rest. The sidecar reaches it through a descriptor on its
//! root ([`TmpNs::host_view`]).

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::background;
use super::writers::{FileId, Ledger, Watch};

/// The directories every execution gets its own copy of (those that exist here).
const COVERED: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// The least room a scratch tmpfs gets, whatever the size of the others.
const SCRATCH_MIN_SIZE: u64 = 1 << 30;

/// Namespaces kept ready beyond those in use, so that the next execution does not wait
/// for the one just finished to be emptied.
const SPARE: usize = 1;

/// A pool of mount namespaces with private temporary directories.
pub(crate) struct PrivateTmp {
    /// The directories covered, canonical.
    covered: Vec<PathBuf>,
    /// Paths under them bound back in every namespace, canonical, none under another.
    visible: Vec<PathBuf>,
    /// Bytes each tmpfs may hold.
    size: u64,
    /// The scratch root, canonical: in each namespace a tmpfs of its own, the scratch
    /// dir of the execution that holds it. `None`: scratch dirs are the host's.
    scratch: Option<PathBuf>,
    /// The workspace root, whose writes are attributed to executions.
    workspace: Option<PathBuf>,
    /// Whether the first namespace could watch the workspace.
    watching: bool,
    ledger: Ledger,
    free: Mutex<Vec<Slot>>,
    /// A namespace is being made ahead: one at a time, so that a burst of executions
    /// that found the pool empty does not queue one each (every namespace is kept, and
    /// holds a fanotify group, of which a user may have 128).
    refilling: AtomicBool,
}

/// One prepared namespace.
struct Slot {
    ns: OwnedFd,
    /// The root of each private tmpfs, with the directories made in it to bind the
    /// visible paths back (kept when it is emptied).
    roots: Vec<(OwnedFd, Node)>,
    /// Files closed after writing on this namespace's mount of the workspace, and the
    /// workspace root opened through that mount.
    watch: Option<(Arc<Watch>, OwnedFd)>,
    /// The root of the scratch tmpfs (see [`PrivateTmp::scratch`]).
    scratch: Option<OwnedFd>,
}

/// What of a tmpfs the sidecar made: a directory leading to bound-back paths, or one of
/// those paths (the real one, never touched).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir(BTreeMap<OsString, Node>),
    BoundBack,
}

impl PrivateTmp {
    /// Prepares the first namespace and checks that a child can join it and reach every
    /// path of `visible` (made if missing). Fails where mount namespaces cannot be made
    /// (not root, or a seccomp profile that forbids them). Writes in `workspace` are
    /// attributed to executions where fanotify can watch it. `scratch` (made if
    /// missing) becomes private to each namespace unless another path that must stay
    /// visible lies under it; it is then one of those.
    pub fn new(
        visible: &[PathBuf],
        scratch: Option<&Path>,
        workspace: Option<&Path>,
        size: u64,
    ) -> io::Result<Arc<PrivateTmp>> {
        let mut canonical = Vec::new();
        for path in visible.iter().map(PathBuf::as_path).chain(scratch) {
            make_dirs(path)?;
            canonical.push(fs::canonicalize(path).map_err(|e| annotate(e, "resolving", path))?);
        }
        let workspace = workspace.map(fs::canonicalize).transpose()?;
        // The scratch root, canonical, is the last of them. Its own tmpfs would hide
        // what lies under it.
        let scratch = match scratch.and_then(|_| canonical.pop()) {
            Some(root)
                if canonical
                    .iter()
                    .chain(workspace.iter())
                    .any(|v| v.starts_with(&root)) =>
            {
                canonical.push(root);
                None
            }
            root => root,
        };
        // A path under another is reached through it.
        canonical.sort();
        let mut visible: Vec<PathBuf> = Vec::new();
        for path in canonical {
            if !visible.iter().any(|v| path.starts_with(v)) {
                visible.push(path);
            }
        }
        let mut covered: Vec<PathBuf> = Vec::new();
        for dir in COVERED {
            let Ok(dir) = fs::canonicalize(dir) else {
                continue;
            };
            // A covered dir inside a visible path (scratch root `/`?) stays as it is.
            if dir.is_dir()
                && !covered.contains(&dir)
                && !visible.iter().any(|v| dir.starts_with(v))
                && !scratch.as_ref().is_some_and(|s| dir.starts_with(s))
            {
                covered.push(dir);
            }
        }
        if covered.is_empty() {
            return Err(io::Error::other(
                "none of /tmp, /var/tmp, /dev/shm exists outside the workspace and scratch roots",
            ));
        }
        let mut pool = PrivateTmp {
            covered,
            visible,
            size,
            scratch,
            workspace,
            watching: false,
            ledger: Ledger::default(),
            free: Mutex::new(Vec::new()),
            refilling: AtomicBool::new(false),
        };
        let slot = pool.make_slot()?;
        pool.check_join(&slot)?;
        pool.watching = slot.watch.is_some();
        pool.lock().push(slot);
        Ok(Arc::new(pool))
    }

    /// For the report: what is covered and how big each tmpfs may grow.
    pub fn describe(&self) -> String {
        let list = |paths: &mut dyn Iterator<Item = &PathBuf>| {
            paths
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bound_back = list(
            &mut self
                .visible
                .iter()
                .filter(|v| self.covered.iter().any(|c| v.starts_with(c))),
        );
        format!(
            "own empty {} per execution (tmpfs of {} MiB each, from a pool of mount \
             namespaces; {} bound back); {}; /bash shares the sidecar's; {}",
            list(&mut self.covered.iter()),
            self.size >> 20,
            if bound_back.is_empty() {
                "nothing".to_string()
            } else {
                bound_back
            },
            match &self.scratch {
                Some(dir) => format!(
                    "own scratch dir at {} (tmpfs of {} MiB)",
                    dir.display(),
                    self.scratch_size() >> 20
                ),
                None => "scratch dirs in the host's scratch root".to_string(),
            },
            if self.watching {
                "workspace writes attributed to their execution (fanotify)"
            } else {
                "workspace writes not attributed (no fanotify)"
            }
        )
    }

    /// A namespace for one execution: a ready one, else made now. It goes back to the
    /// pool, emptied, when the last clone of the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> io::Result<TmpNs> {
        let (slot, spare) = {
            let mut free = self.lock();
            let slot = free.pop();
            (slot, free.len())
        };
        let slot = match slot {
            Some(slot) => slot,
            None => self.make_slot()?,
        };
        if spare < SPARE && !self.refilling.swap(true, Ordering::AcqRel) {
            let pool = Arc::clone(self);
            background::ahead(move || {
                match pool.make_slot() {
                    Ok(slot) => pool.lock().push(slot),
                    Err(e) => tracing::warn!("preparing a private /tmp ahead: {e}"),
                }
                pool.refilling.store(false, Ordering::Release);
            });
        }
        let writer = slot
            .watch
            .as_ref()
            .map(|(watch, _)| self.ledger.open(Arc::clone(watch)));
        Ok(TmpNs(Arc::new(Lease {
            slot: Some(slot),
            pool: Arc::clone(self),
            writer,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a namespace in a throwaway thread (its own file-system context, so that
    /// neither the namespace nor the mounts reach the sidecar's other threads).
    fn make_slot(&self) -> io::Result<Slot> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("private-tmp".into())
                .spawn_scoped(scope, || self.make_slot_here())?
                .join()
                .map_err(|_| io::Error::other("the private /tmp thread panicked"))?
        })
    }

    /// Runs in a thread of its own, which it moves into the new namespace.
    fn make_slot_here(&self) -> io::Result<Slot> {
        // SAFETY: CLONE_FS gives this thread its own root, cwd and umask first, which
        // a thread must have to change its mount namespace; nothing else is shared.
        if unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) } != 0 {
            return Err(last_error("unshare(CLONE_NEWNS)"));
        }
        // Mounts made here stay here; mounts the host makes later still arrive.
        mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REC | libc::MS_SLAVE,
            None,
        )?;
        let mut roots = Vec::new();
        for dir in &self.covered {
            // Opened before the tmpfs hides them.
            let inside: Vec<(PathBuf, File)> = self
                .visible
                .iter()
                .filter(|v| v.starts_with(dir) && *v != dir)
                .map(|v| {
                    let fd = fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                        .open(v)
                        .map_err(|e| annotate(e, "opening", v))?;
                    Ok((v.strip_prefix(dir).unwrap_or(v).to_path_buf(), fd))
                })
                .collect::<io::Result<_>>()?;
            mount_tmpfs(dir, 0o1777, self.size)?;
            let mut tree = Node::Dir(BTreeMap::new());
            for (relative, fd) in inside {
                let target = dir.join(&relative);
                make_dirs(&target)?;
                let source = fd_path(&fd);
                mount(
                    Some(&source),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )?;
                tree.insert(&relative);
            }
            // The scratch tmpfs's mount point, kept like a bound-back path.
            if let Some(relative) = self.scratch.as_ref().and_then(|s| s.strip_prefix(dir).ok()) {
                make_dirs(&dir.join(relative))?;
                tree.insert(relative);
            }
            roots.push((open_dir(dir)?, tree));
        }
        let watch = self.workspace.as_ref().and_then(|path| {
            let watched = Watch::new(path).and_then(|watch| {
                let root = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY)
                    .open(path)?;
                Ok((Arc::new(watch), OwnedFd::from(root)))
            });
            watched
                .map_err(|e| tracing::debug!("cannot watch {} for writes: {e}", path.display()))
                .ok()
        });
        let scratch = match &self.scratch {
            Some(dir) => {
                // Owned by the sidecar and closed to others until it is handed out.
                mount_tmpfs(dir, 0o700, self.scratch_size())?;
                Some(open_dir(dir)?)
            }
            None => None,
        };
        let ns = File::open("/proc/thread-self/ns/mnt")?.into();
        Ok(Slot {
            ns,
            roots,
            watch,
            scratch,
        })
    }

    /// Bytes a scratch tmpfs may hold: builds need more room than temporary files (it
    /// is a ceiling, not a reservation; the memory cgroup still bounds what is written).
    fn scratch_size(&self) -> u64 {
        self.size.max(SCRATCH_MIN_SIZE)
    }

    /// Checks in a forked child that joining the namespace works and leaves every
    /// visible path reachable.
    fn check_join(&self, slot: &Slot) -> io::Result<()> {
        let paths = self
            .visible
            .iter()
            .chain(self.scratch.iter())
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| io::Error::other("NUL byte in a path"))?;
        let ns = slot.ns.as_raw_fd();
        // SAFETY: the child only makes system calls on data prepared before the fork.
        let code = unsafe {
            super::spawn::probe_in_child(|| {
                if libc::setns(ns, libc::CLONE_NEWNS) != 0 {
                    return 1;
                }
                let reached = paths.iter().all(|path| libc::chdir(path.as_ptr()) == 0);
                if reached {
                    0
                } else {
                    2
                }
            })
        }?;
        match code {
            0 => Ok(()),
            1 => Err(io::Error::other("a child cannot join the namespace")),
            _ => Err(io::Error::other(
                "a child in the namespace cannot reach the workspace or scratch root",
            )),
        }
    }

    /// Empties a slot's tmpfs (and its event queue) and puts it back; drops it if
    /// that fails.
    fn give_back(&self, slot: Slot) {
        if let Some((watch, _)) = &slot.watch {
            watch.drain(&mut std::collections::HashSet::new());
        }
        for (root, tree) in &slot.roots {
            // Most executions leave /tmp, /var/tmp and /dev/shm untouched: one system
            // call says so, where the walk takes five a directory.
            if holds_only(root, tree) {
                continue;
            }
            if let Err(e) = empty(&fd_path(root), tree) {
                tracing::warn!("emptying a private /tmp failed, dropping it: {e}");
                return;
            }
        }
        if let Some(root) = &slot.scratch {
            let emptied = empty(&fd_path(root), &Node::Dir(BTreeMap::new())).and_then(|()| {
                // Back to the sidecar, closed, until the next hand-over.
                // SAFETY: plain getters.
                let me = unsafe { (libc::geteuid(), libc::getegid()) };
                hand_over(root, Some(me), Some(0o700))
            });
            if let Err(e) = emptied {
                tracing::warn!("emptying a private scratch dir failed, dropping it: {e}");
                return;
            }
        }
        self.lock().push(slot);
    }
}

impl fmt::Debug for PrivateTmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateTmp")
            .field("covered", &self.covered)
            .field("visible", &self.visible)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// How many files the sidecar made below this node (a bound-back path is one: the
    /// mount point).
    fn made(&self) -> u64 {
        match self {
            Node::Dir(children) => children.values().map(|c| 1 + c.made()).sum(),
            Node::BoundBack => 0,
        }
    }

    /// Records the directories leading to `relative` and `relative` itself.
    fn insert(&mut self, relative: &Path) {
        let mut node = self;
        let parts: Vec<_> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                _ => None,
            })
            .collect();
        for (i, name) in parts.iter().enumerate() {
            let Node::Dir(children) = node else { return };
            let last = i + 1 == parts.len();
            node = children.entry(name.clone()).or_insert_with(|| {
                if last {
                    Node::BoundBack
                } else {
                    Node::Dir(BTreeMap::new())
                }
            });
        }
    }
}

/// Whether the tmpfs whose root is `root` holds nothing but that root and what `tree`
/// says the sidecar made in it (its inode count says so: a file, dir or link of any
/// kind takes one, as does a file removed while a process still holds it open). False
/// when the tmpfs does not count inodes.
fn holds_only(root: &OwnedFd, tree: &Node) -> bool {
    rustix::fs::fstatfs(root)
        .is_ok_and(|s| s.f_files > 0 && s.f_files - s.f_ffree == 1 + tree.made())
}

/// Removes everything in `dir` but what `tree` says the sidecar made. Never follows a
/// symbolic link, and never enters a bound-back path.
fn empty(dir: &Path, tree: &Node) -> io::Result<()> {
    let Node::Dir(made) = tree else {
        return Ok(());
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        match made.get(&entry.file_name()) {
            Some(inner) => empty(&entry.path(), inner)?,
            None => super::tree::remove_tree(&entry.path())?,
        }
    }
    Ok(())
}

/// A leased namespace; clones share it. Its descriptor is what the child joins.
#[derive(Clone)]
pub struct TmpNs(Arc<Lease>);

struct Lease {
    slot: Option<Slot>,
    pool: Arc<PrivateTmp>,
    /// Its id in the pool's ledger, when its namespace watches the workspace.
    writer: Option<u64>,
}

impl TmpNs {
    pub(crate) fn fd(&self) -> RawFd {
        self.0.slot.as_ref().map_or(-1, |slot| slot.ns.as_raw_fd())
    }

    /// The directory open at `dir` (in the workspace), opened again through this
    /// namespace's mount of the workspace: writes below it are attributed to this
    /// execution only when its processes use that mount. Walked from the workspace root
    /// without following any symlink, and checked to be the same directory; `None` when
    /// the namespace does not watch the workspace or `dir` is not found that way.
    /// `path`: where the caller opened `dir`; the kernel is asked only when that is not
    /// below the workspace (the check at the end holds either way).
    pub fn reopen(&self, dir: std::os::fd::BorrowedFd<'_>, path: &Path) -> Option<OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let (_, root) = self.0.slot.as_ref()?.watch.as_ref()?;
        let workspace = self.0.pool.workspace.as_ref()?;
        let asked;
        let relative = match path.strip_prefix(workspace) {
            Ok(relative) => relative,
            Err(_) => {
                asked = fs::read_link(fd_path(&dir)).ok()?;
                asked.strip_prefix(workspace).ok()?
            }
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut here = rustix::fs::openat(root, ".", flags, Mode::empty()).ok()?;
        for part in relative.components() {
            let Component::Normal(name) = part else {
                return None;
            };
            here = rustix::fs::openat(&here, name, flags, Mode::empty()).ok()?;
        }
        let (a, b) = (rustix::fs::fstat(&here).ok()?, rustix::fs::fstat(dir).ok()?);
        (a.st_dev == b.st_dev && a.st_ino == b.st_ino).then_some(here)
    }

    /// This execution's scratch dir, as its processes see it, handed to `owner` (and
    /// to its group, for dedicated uids that share one): `None` where scratch dirs are
    /// the host's. The sidecar reaches it through [`TmpNs::host_view`].
    pub fn take_scratch(
        &self,
        owner: Option<(u32, u32)>,
        group_writable: bool,
    ) -> io::Result<Option<PathBuf>> {
        let (Some(slot), Some(path)) = (self.0.slot.as_ref(), self.0.pool.scratch.as_ref()) else {
            return Ok(None);
        };
        let Some(root) = &slot.scratch else {
            return Ok(None);
        };
        hand_over(root, owner, group_writable.then_some(0o770))?;
        Ok(Some(path.clone()))
    }

    /// The root of the scratch dir's tmpfs (see [`TmpNs::take_scratch`]), if it has one.
    pub fn scratch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.slot.as_ref()?.scratch.as_ref().map(|fd| fd.as_fd())
    }

    /// Where the sidecar reaches `path` as this namespace's processes see it: inside
    /// the scratch dir or a private tmpfs, through the descriptor on its root; anywhere
    /// else (the workspace, paths bound back), `path` itself.
    pub fn host_view(&self, path: &Path) -> PathBuf {
        let Some(slot) = self.0.slot.as_ref() else {
            return path.to_path_buf();
        };
        let pool = &self.0.pool;
        if let (Some(dir), Some(root)) = (&pool.scratch, &slot.scratch) {
            if let Ok(rest) = path.strip_prefix(dir) {
                return fd_path(root).join(rest);
            }
        }
        if pool.visible.iter().any(|v| path.starts_with(v)) {
            return path.to_path_buf();
        }
        for (dir, (root, _)) in pool.covered.iter().zip(&slot.roots) {
            if let Ok(rest) = path.strip_prefix(dir) {
                return fd_path(root).join(rest);
            }
        }
        path.to_path_buf()
    }

    /// Files of the workspace that other executions wrote while this one ran and this
    /// one did not (see exec/writers.rs).
    pub fn foreign_writes(&self) -> std::collections::HashSet<FileId> {
        match self.0.writer {
            Some(id) => self.0.pool.ledger.foreign(id),
            None => Default::default(),
        }
    }
}

impl Drop for Lease {
    /// The last user is gone (every process of the execution is dead): its writes
    /// recorded for the executions still running, then emptied and given back, on the
    /// clean-up thread (off the response's path).
    fn drop(&mut self) {
        let writer = self.writer;
        let slot = self.slot.take();
        let pool = Arc::clone(&self.pool);
        background::defer(move || {
            if let Some(id) = writer {
                pool.ledger.close(id);
            }
            if let Some(slot) = slot {
                pool.give_back(slot);
            }
        });
    }
}

impl PartialEq for TmpNs {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TmpNs {}

impl fmt::Debug for TmpNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TmpNs").field(&self.fd()).finish()
    }
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &[u8]| CString::new(s).map_err(|_| io::Error::other("NUL byte in a mount"));
    let source = source.map(|s| c(s.as_os_str().as_bytes())).transpose()?;
    let target_c = c(target.as_os_str().as_bytes())?;
    let fstype = fstype.map(|s| c(s.as_bytes())).transpose()?;
    let data = data.map(|s| c(s.as_bytes())).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: valid C strings (or null where mount(2) allows it).
    let r = unsafe {
        libc::mount(
            ptr(&source),
            target_c.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if r != 0 {
        return Err(last_error(&format!("mount on {}", target.display())));
    }
    Ok(())
}

/// Mounts a tmpfs of at most `size` bytes on `dir`, its root with `mode`.
fn mount_tmpfs(dir: &Path, mode: u32, size: u64) -> io::Result<()> {
    let options = format!("mode={mode:o},size={size}");
    mount(
        Some(Path::new("tmpfs")),
        dir,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&options),
    )
}

/// Makes `dir` and the directories leading to it (mode 0755).
fn make_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| annotate(e, "creating", dir))
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let dir_file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| annotate(e, "opening", dir))?;
    Ok(dir_file.into())
}

/// Gives the directory open at `dir` its mode, then its owner (either left as it is
/// when `None`).
fn hand_over(dir: &OwnedFd, owner: Option<(u32, u32)>, mode: Option<u32>) -> io::Result<()> {
    if let Some(mode) = mode {
        rustix::fs::fchmod(dir, rustix::fs::Mode::from_raw_mode(mode))?;
    }
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(
            dir,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    Ok(())
}

/// A path that reaches what `fd` is open on, for the calls that take paths.
fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst that finds the pool empty makes what it needs and at most two more
    /// ahead, not one more per execution (which kept about twice the burst).
    ///
    /// Two, not one: a lease that found the pool empty while the one refill was under
    /// way makes its own, and the refill then lands unused; the last lease starts one
    /// more. Which of these happens depends on the clean-up thread's timing.
    #[test]
    fn a_burst_of_leases_refills_the_pool_by_at_most_two() {
        if !is_root() {
            return;
        }
        const BURST: usize = 8;
        let pool = PrivateTmp::new(&[], None, None, 1 << 20).unwrap();
        let burst: Vec<TmpNs> = (0..BURST).map(|_| pool.lease().unwrap()).collect();
        drop(burst);
        background::flush(std::time::Duration::from_secs(10));
        let kept = pool.lock().len();
        assert!(
            (BURST..=BURST + 2).contains(&kept),
            "{kept} namespaces kept"
        );
    }

    fn is_root() -> bool {
        // SAFETY: plain getter.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipped: mount namespaces need root");
        }
        root
    }

    /// Each namespace has its own scratch dir at the scratch root's path, which the
    /// sidecar reaches through [`TmpNs::host_view`] (as it does the private /tmp); a
    /// namespace comes back to the pool with it emptied.
    #[test]
    fn the_scratch_root_is_private_to_each_namespace() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = PrivateTmp::new(&[], Some(&dir.path().join("scratch")), None, 1 << 20).unwrap();
        let scratch = fs::canonicalize(dir.path().join("scratch")).unwrap();
        assert!(
            pool.describe().contains("own scratch dir at"),
            "{}",
            pool.describe()
        );
        let (a, b) = (pool.lease().unwrap(), pool.lease().unwrap());
        let in_a = a
            .take_scratch(Some((65532, 65532)), false)
            .unwrap()
            .unwrap();
        let in_b = b.take_scratch(None, false).unwrap().unwrap();
        assert_eq!((&in_a, &in_b), (&scratch, &scratch));
        fs::write(a.host_view(&in_a.join("code")), "a").unwrap();
        assert_eq!(
            fs::read_to_string(a.host_view(&in_a.join("code"))).unwrap(),
            "a"
        );
        assert!(!b.host_view(&in_b.join("code")).exists());
        assert!(!scratch.join("code").exists());
        use std::os::unix::fs::MetadataExt;
        let owner = fs::metadata(a.host_view(&in_a)).unwrap();
        assert_eq!((owner.uid(), owner.mode() & 0o777), (65532, 0o700));
        // The private /tmp too.
        let tmp = PathBuf::from(format!("/tmp/sidecar-test-{}", std::process::id()));
        assert!(a.host_view(&tmp).starts_with("/proc/self/fd"));
        // A tmpfs holds only what the sidecar made in it until something is written.
        let untouched = |lease: &TmpNs| {
            let slot = lease.0.slot.as_ref().unwrap();
            slot.roots
                .iter()
                .map(|(root, tree)| holds_only(root, tree))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            untouched(&a),
            [true, true, true],
            "/tmp, /var/tmp, /dev/shm"
        );
        fs::write(a.host_view(Path::new("/dev/shm/x")), "x").unwrap();
        assert_eq!(untouched(&a), [true, true, false]);
        fs::write(a.host_view(&tmp), "t").unwrap();
        assert_eq!(untouched(&a), [false, true, false]);
        assert!(!tmp.exists());
        drop((a, b));
        background::flush(std::time::Duration::from_secs(10));
        let c = pool.lease().unwrap();
        let in_c = c.take_scratch(None, false).unwrap().unwrap();
        let owner = fs::metadata(c.host_view(&in_c)).unwrap();
        assert_eq!(owner.uid(), 0);
        assert_eq!(fs::read_dir(c.host_view(&in_c)).unwrap().count(), 0);
        assert!(!c.host_view(&tmp).exists());
        assert!(!c.host_view(Path::new("/dev/shm/x")).exists());
    }

    /// A tmpfs on a scratch root with the workspace under it would hide the workspace:
    /// then scratch dirs stay the host's.
    #[test]
    fn a_scratch_root_above_the_workspace_stays_the_hosts() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let ws = scratch.join("ws");
        let visible = std::slice::from_ref(&ws);
        let pool = PrivateTmp::new(visible, Some(&scratch), Some(&ws), 1 << 20).unwrap();
        assert!(
            pool.describe()
                .contains("scratch dirs in the host's scratch root"),
            "{}",
            pool.describe()
        );
        let lease = pool.lease().unwrap();
        assert_eq!(lease.take_scratch(None, false).unwrap(), None);
        assert_eq!(lease.host_view(&ws), ws.canonicalize().unwrap());
    }

    #[test]
    fn the_tree_keeps_the_dirs_leading_to_bound_back_paths() {
        let mut tree = Node::Dir(BTreeMap::new());
        tree.insert(Path::new("a/b"));
        tree.insert(Path::new("c"));
        let Node::Dir(top) = &tree else {
            panic!("not a dir")
        };
        assert_eq!(top.get(OsStr::new("c")), Some(&Node::BoundBack));
        let Some(Node::Dir(a)) = top.get(OsStr::new("a")) else {
            panic!("no a")
        };
        assert_eq!(a.get(OsStr::new("b")), Some(&Node::BoundBack));
    }

    #[test]
    fn emptying_keeps_what_the_sidecar_made_and_does_not_follow_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), "x").unwrap();
        let dir = root.path();
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("a/b/kept"), "x").unwrap();
        fs::write(dir.join("a/planted"), "x").unwrap();
        fs::create_dir_all(dir.join("junk/deep")).unwrap();
        fs::write(dir.join("junk/deep/f"), "x").unwrap();
        fs::write(dir.join("top"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.join("link")).unwrap();
        let mut tree = Node::Dir(BTreeMap::new());
        tree.insert(Path::new("a/b"));
        empty(dir, &tree).unwrap();
        let mut left: Vec<_> = walk(dir);
        left.sort();
        assert_eq!(left, ["a", "a/b", "a/b/kept"]);
        assert!(outside.path().join("precious").exists());
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            out.push(entry.file_name().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                for inner in walk(&entry.path()) {
                    out.push(format!("{}/{inner}", entry.file_name().to_string_lossy()));
                }
            }
        }
        out
    }

    use std::ffi::OsStr;
}
