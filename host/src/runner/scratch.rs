//! Scratch dirs: the private directory of one execution (its sources, build outputs,
//! HOME and TMPDIR), removed after it.
//!
//! Making a directory on a journaling file system costs ~25 µs, a tenth of what the
//! sidecar adds to a short execution; so a few empty dirs are made ahead of time, on
//! the clean-up thread, for the owner and mode the last execution needed, and handed
//! out on the request path. A dir handed out is never handed out again.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exec::background;

/// Empty dirs kept ready.
const POOL_SIZE: usize = 2;

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
    next: AtomicU64,
    ready: Mutex<Vec<(Access, PathBuf)>>,
}

impl ScratchDirs {
    pub fn new(root: PathBuf) -> Self {
        ScratchDirs {
            inner: Arc::new(Inner {
                root,
                next: AtomicU64::new(0),
                ready: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// A fresh, empty dir for `access`: a ready one if there is one, else made now.
    /// Either way, one more is made ahead for the next execution.
    pub fn take(&self, access: Access) -> io::Result<ScratchDir> {
        let ready = {
            let mut ready = self.inner.lock();
            // Ready dirs made for another owner are of no use any more.
            let stale: Vec<PathBuf> = ready
                .iter()
                .filter(|(a, _)| *a != access)
                .map(|(_, p)| p.clone())
                .collect();
            ready.retain(|(a, _)| *a == access);
            if !stale.is_empty() {
                background::defer(move || stale.iter().for_each(remove));
            }
            ready.pop().map(|(_, path)| path)
        };
        let path = match ready {
            Some(path) => path,
            None => self.inner.make(access)?,
        };
        let inner = Arc::clone(&self.inner);
        background::defer(move || inner.refill(access));
        Ok(ScratchDir(path))
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Access, PathBuf)>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn make(&self, access: Access) -> io::Result<PathBuf> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!("exec-{}-{id}", std::process::id()));
        let mode = if access.group_writable { 0o770 } else { 0o700 };
        let mkdir = || std::fs::DirBuilder::new().mode(mode).create(&path);
        match mkdir() {
            Ok(()) => {}
            // First use, or the root was removed under us.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.root)?;
                mkdir()?;
            }
            // A leftover of an earlier sidecar that had the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_dir_all(&path)?;
                mkdir()?;
            }
            Err(e) => return Err(e),
        }
        let finish = || -> io::Result<()> {
            if access.group_writable {
                // The umask may have taken the group's bits.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            }
            if let Some((uid, gid)) = access.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
            Ok(())
        };
        match finish() {
            Ok(()) => Ok(path),
            Err(e) => {
                remove(&path);
                Err(e)
            }
        }
    }

    /// Makes ready dirs for `access` until there are enough (on the clean-up thread).
    fn refill(&self, access: Access) {
        while self.lock().iter().filter(|(a, _)| *a == access).count() < POOL_SIZE {
            match self.make(access) {
                Ok(path) => self.lock().push((access, path)),
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
        for (_, path) in std::mem::take(&mut *self.lock()) {
            remove(&path);
        }
    }
}

fn remove(path: &PathBuf) {
    let _ = std::fs::remove_dir_all(path);
}

/// One execution's scratch dir, removed (on the clean-up thread) when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.0);
        background::defer(move || remove(&path));
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
        let ready: Vec<_> = dirs.inner.lock().iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(ready.len(), POOL_SIZE);
        drop(dirs);
        for path in ready {
            assert!(!path.exists(), "{} left behind", path.display());
        }
    }

    #[test]
    fn a_new_owner_gets_its_own_dirs() {
        let root = tempfile::tempdir().unwrap();
        let dirs = ScratchDirs::new(root.path().join("scratch"));
        let private = Access {
            owner: None,
            group_writable: false,
        };
        let shared = Access {
            owner: None,
            group_writable: true,
        };
        drop(dirs.take(private).unwrap());
        background::flush(Duration::from_secs(10));
        let dir = dirs.take(shared).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o770);
    }
}
