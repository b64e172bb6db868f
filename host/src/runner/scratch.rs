//! Scratch dirs: the private directory of one execution (its sources, build outputs,
//! HOME and TMPDIR), removed after it.
//!
//! Making a directory on a journaling file system costs ~25 µs, a tenth of what the
//! sidecar adds to a short execution; so a few empty dirs are made ahead of time, on
//! the clean-up thread, and handed out on the request path. A dir made ahead belongs to
//! the sidecar (mode 0700, in a root it owns) until it is handed out: only then is it
//! given to the execution's uid. Code of a running execution, which has that same uid,
//! therefore cannot plant files in the dir the next execution will get. A dir handed
//! out is never handed out again.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exec::background;

/// Empty dirs kept ready.
const POOL_SIZE: usize = 2;

/// Free space a tmpfs at /dev/shm needs for [`default_root`] to use it.
const MEMORY_BACKED_MIN_FREE: u64 = 1 << 30;

/// The default root of scratch dirs: `/dev/shm/sidecar` when /dev/shm is a writable
/// tmpfs with at least 1 GiB free (not the 64 MiB a container gets by default, where
/// a build could run out of room), else `/tmp/sidecar`.
pub fn default_root() -> PathBuf {
    if memory_backed_with_room(Path::new("/dev/shm"), MEMORY_BACKED_MIN_FREE) {
        PathBuf::from("/dev/shm/sidecar")
    } else {
        PathBuf::from("/tmp/sidecar")
    }
}

/// Whether `dir` is a tmpfs we may write to with at least `bytes` free.
fn memory_backed_with_room(dir: &Path, bytes: u64) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed out-struct the kernel fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_dir.as_ptr(), &mut st) } != 0 {
        return false;
    }
    // SAFETY: plain syscall on a valid C string.
    let writable = unsafe { libc::access(c_dir.as_ptr(), libc::W_OK) } == 0;
    let free = (st.f_bavail as u64).saturating_mul(st.f_bsize as u64);
    // (The field's type differs between C libraries and architectures.)
    #[allow(clippy::unnecessary_cast)]
    let tmpfs = st.f_type as i64 == libc::TMPFS_MAGIC as i64;
    tmpfs && writable && free >= bytes
}

/// Who a scratch dir is for: its owner (when executions drop to a uid) and whether
/// its group may write (dedicated uids that share a gid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub owner: Option<(u32, u32)>,
    pub group_writable: bool,
}

/// Makes scratch dirs under one root, named `exec-<sidecar pid>-<n>`.
#[derive(Debug)]
pub(crate) struct ScratchDirs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// The root exists and passed [`check_root`]: done once, and again if it vanishes
    /// (once it is ours and closed, only a parent that others may write without the
    /// sticky bit would let it be swapped, and a check per dir would not stop that).
    root_checked: AtomicBool,
    next: AtomicU64,
    /// Blank dirs: empty, mode 0700, owned by the sidecar.
    ready: Mutex<Vec<PathBuf>>,
}

impl ScratchDirs {
    /// Starts making the first dirs ahead (on the clean-up thread).
    pub fn new(root: PathBuf) -> Self {
        let inner = Arc::new(Inner {
            root,
            root_checked: AtomicBool::new(false),
            next: AtomicU64::new(0),
            ready: Mutex::new(Vec::new()),
        });
        let first = Arc::clone(&inner);
        background::defer(move || first.refill());
        ScratchDirs { inner }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// A fresh, empty dir for `access`: a ready one if there is one, else made now.
    /// One more is made ahead when it is given back (see [`ScratchDir`]'s drop).
    pub fn take(&self, access: Access) -> io::Result<ScratchDir> {
        let ready = self.inner.lock().pop();
        let path = match ready {
            // Still there (a cleaner of /tmp may have removed it).
            Some(path) if path.is_dir() => path,
            _ => self.inner.make_blank()?,
        };
        if let Err(e) = hand_over(&path, access) {
            remove(&path);
            return Err(e);
        }
        Ok(ScratchDir {
            path,
            dirs: Arc::clone(&self.inner),
        })
    }
}

/// Gives a blank dir to the execution: the group's bits, then the owner.
fn hand_over(path: &Path, access: Access) -> io::Result<()> {
    if access.group_writable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))?;
    }
    if let Some((uid, gid)) = access.owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// The root must be a real directory of ours that no one else may write: in a shared
/// sticky directory (/tmp, or /dev/shm, which a pod's containers share) someone else
/// could have made it first, then swapped a dir of ours for a symlink. A root of ours
/// that others may write (an emptyDir is 0777) is closed to them, unless it is sticky.
fn check_root(root: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(root)?;
    // SAFETY: plain syscall.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me {
        return Err(io::Error::other(format!(
            "the scratch root {} is not a directory owned by uid {me} (owner: uid {}): \
             remove it or set SIDECAR_SCRATCH_DIR",
            root.display(),
            meta.uid(),
        )));
    }
    // (In a sticky directory such as /tmp itself, others cannot rename or remove what
    // is ours: left as it is.)
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(meta.mode() & 0o755))?;
    }
    Ok(())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new empty dir, mode 0700, owned by the sidecar.
    fn make_blank(&self) -> io::Result<PathBuf> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!("exec-{}-{id}", std::process::id()));
        let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(&path);
        if !self.root_checked.load(Ordering::Acquire) {
            self.prepare_root()?;
        }
        match mkdir() {
            Ok(()) => {}
            // The root was removed under us.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.prepare_root()?;
                mkdir()?;
            }
            // A leftover of an earlier sidecar that had the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                crate::exec::tree::remove_tree(&path)?;
                mkdir()?;
            }
            Err(e) => return Err(e),
        }
        Ok(path)
    }

    /// Creates the root if needed and checks it is ours.
    fn prepare_root(&self) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.root)?;
        check_root(&self.root)?;
        self.root_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes blank dirs until there are enough (on the clean-up thread).
    fn refill(&self) {
        while self.lock().len() < POOL_SIZE {
            match self.make_blank() {
                Ok(path) => self.lock().push(path),
                Err(e) => {
                    tracing::debug!("making a scratch dir ahead failed: {e}");
                    return;
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for path in std::mem::take(&mut *self.lock()) {
            remove(&path);
        }
    }
}

fn remove(path: &Path) {
    match crate::exec::tree::remove_tree(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("removing the scratch dir {}: {e}", path.display());
        }
        _ => {}
    }
}

/// One execution's scratch dir, removed (on the clean-up thread) when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
    dirs: Arc<Inner>,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    /// Removes the dir and makes the next one ahead in one job, once the execution is
    /// over: refilling when a dir was taken woke the clean-up thread at the start of
    /// every execution, to run beside it on the other CPU of a small machine.
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let dirs = Arc::clone(&self.dirs);
        background::defer(move || {
            remove(&path);
            dirs.refill();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    #[test]
    fn dirs_are_fresh_private_and_removed_after_use() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ScratchDirs::new(root.path().join("scratch"));
        let access = Access {
            owner: None,
            group_writable: false,
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let dir = dirs.take(access).unwrap();
            assert!(seen.insert(dir.path().to_path_buf()), "handed out twice");
            let meta = std::fs::metadata(dir.path()).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o700);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            std::fs::write(dir.path().join("f"), "x").unwrap();
            drop(dir);
            background::flush(Duration::from_secs(10));
        }
        for path in &seen {
            assert!(!path.exists(), "{} left behind", path.display());
        }
        // Made ahead: ready dirs exist, and go with the pool.
        let ready: Vec<_> = dirs.inner.lock().clone();
        assert_eq!(ready.len(), POOL_SIZE);
        drop(dirs);
        for path in ready {
            assert!(!path.exists(), "{} left behind", path.display());
        }
    }

    /// Dirs made ahead belong to the sidecar (0700) until handed out; then to the
    /// execution's owner, with the group's bits when asked.
    #[test]
    fn ready_dirs_stay_the_sidecars_until_handed_out() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ScratchDirs::new(root.path().join("scratch"));
        // SAFETY: plain getter.
        let me = unsafe { libc::geteuid() };
        let owner = (me == 0).then_some((65532, 65532));
        let dir = dirs
            .take(Access {
                owner,
                group_writable: false,
            })
            .unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), owner.map_or(me, |(uid, _)| uid));
        // Giving a dir back makes the next ones ahead.
        drop(dir);
        background::flush(Duration::from_secs(10));
        let ready = dirs.inner.lock().clone();
        assert_eq!(ready.len(), POOL_SIZE);
        for path in &ready {
            let meta = std::fs::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o777), (me, 0o700), "{path:?}");
        }
        let shared = dirs
            .take(Access {
                owner: None,
                group_writable: true,
            })
            .unwrap();
        let meta = std::fs::metadata(shared.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o770);
        // A ready dir removed behind our back is replaced, not handed out.
        background::flush(Duration::from_secs(10));
        for path in dirs.inner.lock().iter() {
            std::fs::remove_dir(path).unwrap();
        }
        let again = dirs
            .take(Access {
                owner: None,
                group_writable: false,
            })
            .unwrap();
        assert!(again.path().is_dir());
    }

    /// A dir for executions that keep the sidecar's uid.
    const UNOWNED: Access = Access {
        owner: None,
        group_writable: false,
    };

    #[test]
    fn a_root_someone_else_made_is_refused() {
        let base = tempfile::tempdir().unwrap();
        // A symlink planted where the root goes.
        let root = base.path().join("planted");
        std::os::unix::fs::symlink(base.path(), &root).unwrap();
        let err = ScratchDirs::new(root.clone()).take(UNOWNED).unwrap_err();
        assert!(
            err.to_string().contains("is not a directory owned"),
            "{err}"
        );
        // A root of ours that everyone may write is closed first.
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        ScratchDirs::new(open.clone()).take(UNOWNED).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o755);
        // A sticky one (the operator chose /tmp itself) is left alone.
        let sticky = base.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        ScratchDirs::new(sticky.clone()).take(UNOWNED).unwrap();
        assert_eq!(std::fs::metadata(&sticky).unwrap().mode() & 0o7777, 0o1777);
    }

    /// The default root is memory-backed only on a writable tmpfs with the room asked.
    #[test]
    fn memory_backed_means_a_tmpfs_with_room() {
        // procfs is not a tmpfs; no file system has u64::MAX bytes free.
        assert!(!memory_backed_with_room(Path::new("/proc"), 0));
        assert!(!memory_backed_with_room(Path::new("/dev/shm"), u64::MAX));
        assert!(!memory_backed_with_room(Path::new("/nonexistent"), 0));
        let shm_is_tmpfs = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "))
        });
        if shm_is_tmpfs {
            assert!(memory_backed_with_room(Path::new("/dev/shm"), 0));
        } else {
            eprintln!("/dev/shm is not a tmpfs here: the positive case is not checked");
        }
    }
}
