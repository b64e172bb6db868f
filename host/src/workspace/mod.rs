//! Session directories and path confinement.
//!
//! This module owns everything that turns a client's `sessionId` and path strings
//! into open files and directories, and guarantees that nothing reaches outside
//! the session directory:
//!
//! - [`Workspace`] is `WORKSPACE_ROOT` plus the `SHARED_WORKSPACE` switch;
//!   [`Workspace::session`] validates a session id (`[A-Za-z0-9_-]{1,128}`, no
//!   rewriting) and creates `WORKSPACE_ROOT/<id>` on first use. No id, or a shared
//!   workspace, means the root itself.
//! - [`Session`] holds an fd of its directory. Every open goes through `openat2(2)`
//!   from that fd with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_MAGICLINKS`, so `..`, absolute escapes and symlinks anywhere in the
//!   path (a planted `link -> /etc/passwd`, a symlinked parent directory) are
//!   refused by the kernel at the moment of use: there is no window between a
//!   check and the open. Missing directories are created one component at a time
//!   with `mkdirat` + `openat2`. Writes are atomic ([`Session::create_atomic`]).
//! - [`WalkRoot`] pins the start directory of a walk (ls/find/grep) by fd; walkers
//!   walk `/proc/self/fd/<fd>`, never following symlinks, so the start directory
//!   cannot be swapped for a symlink while they run.
//! - [`ToolError`] is the error type of this module and of the file tools.
//!
//! Path strings are validated lexically by [`normalize_path`] first (clear errors for
//! `..` and foreign absolute paths); the kernel enforces the rest.

mod error;
mod path;
pub mod sys;

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use error::{ToolError, ToolErrorKind};
pub use path::{normalize_path, split_parent, validate_session_id, MAX_SESSION_ID_LEN};

/// `WORKSPACE_ROOT` and the `SHARED_WORKSPACE` switch.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory under which session directories live (created if missing).
    pub root: PathBuf,
    /// When set, every session uses `root` itself.
    pub shared: bool,
    /// The uid and gid user code runs as (when the sidecar is root): new session
    /// directories are given to it, so code can write where the file tools write.
    pub owner: Option<(u32, u32)>,
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>, shared: bool) -> Self {
        Workspace {
            root: root.into(),
            shared,
            owner: None,
        }
    }

    /// Gives new session directories to `owner` (see [`Workspace::owner`]).
    pub fn with_owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.owner = owner;
        self
    }

    /// The session for `id`: `root/<id>` (created on first use), or `root` itself
    /// when `id` is `None` or the workspace is shared. An invalid id is a 400 error
    /// even in a shared workspace.
    pub fn session(&self, id: Option<&str>) -> Result<Session, ToolError> {
        if let Some(id) = id {
            validate_session_id(id)?;
        }
        let root = std::path::absolute(&self.root).map_err(|e| {
            ToolError::internal(format!(
                "Workspace root {} is unusable: {e}",
                self.root.display()
            ))
        })?;
        let root_fd = match sys::open_dir_unconfined(&root) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => std::fs::create_dir_all(&root)
                .and_then(|_| sys::open_dir_unconfined(&root))
                .map_err(|e| {
                    ToolError::internal(format!(
                        "Cannot create workspace root {}: {e}",
                        root.display()
                    ))
                })?,
            Err(e) => {
                return Err(ToolError::internal(format!(
                    "Workspace root {} is unusable: {e}",
                    root.display()
                )))
            }
            Ok(fd) => fd,
        };
        match id {
            Some(id) if !self.shared => {
                let name = Path::new(id);
                let created = match sys::mkdirat(root_fd.as_fd(), name, 0o777) {
                    Ok(()) => true,
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
                    Err(e) => {
                        return Err(ToolError::internal(format!(
                            "Cannot create session directory {id}: {e}"
                        )))
                    }
                };
                let fd = sys::openat2(root_fd.as_fd(), name, DIR_FLAGS, 0).map_err(|e| match e
                    .raw_os_error()
                {
                    Some(libc::ELOOP) => {
                        ToolError::forbidden(format!("Session directory {id} is a symbolic link"))
                    }
                    Some(libc::ENOTDIR) => ToolError::bad_request(format!(
                        "Session path {id} exists and is not a directory"
                    )),
                    _ => ToolError::internal(format!("Cannot open session directory {id}: {e}")),
                })?;
                if let (true, Some((uid, gid))) = (created, self.owner) {
                    let _ = sys::fchown(fd.as_fd(), uid, gid);
                }
                Ok(Session {
                    id: Some(id.to_string()),
                    dir: root.join(id),
                    fd,
                })
            }
            _ => Ok(Session {
                id: id.map(str::to_string),
                dir: root,
                fd: root_fd,
            }),
        }
    }
}

const DIR_FLAGS: i32 = libc::O_DIRECTORY | libc::O_RDONLY;
/// Files are opened non-blocking so a FIFO planted by a command cannot hang us.
const READ_FLAGS: i32 = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK;

/// A session directory, pinned by fd. All paths given to its methods are client
/// strings, validated with [`normalize_path`] and opened beneath the pinned fd.
#[derive(Debug)]
pub struct Session {
    id: Option<String>,
    dir: PathBuf,
    fd: OwnedFd,
}

impl Session {
    /// The session id, if one was given.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The absolute path of the session directory (for display, or as a command's
    /// working directory; prefer [`Session::dir_fd`] where an fd will do).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pinned directory fd of the session.
    pub fn dir_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The pinned directory fd, kept after the session is done with.
    pub fn into_dir_fd(self) -> OwnedFd {
        self.fd
    }

    /// Validates a client path and returns it relative to the session directory
    /// (empty = the directory itself). See [`normalize_path`].
    pub fn resolve(&self, input: &str) -> Result<PathBuf, ToolError> {
        let canonical = if input.starts_with('/') {
            std::fs::canonicalize(&self.dir).ok()
        } else {
            None
        };
        normalize_path(&self.dir, canonical.as_deref(), input)
    }

    /// Opens a relative, normalized path beneath the session with raw `openat2`
    /// flags. Errors are turned into messages naming `input`.
    pub fn open_rel(
        &self,
        rel: &Path,
        flags: i32,
        mode: u32,
        input: &str,
    ) -> Result<OwnedFd, ToolError> {
        sys::openat2(self.fd.as_fd(), rel, flags, mode).map_err(|e| self.io_error(&e, rel, input))
    }

    /// Opens an existing regular file for reading. Symlinks, directories, FIFOs and
    /// devices are refused.
    pub fn open_read(&self, input: &str) -> Result<File, ToolError> {
        let rel = self.resolve(input)?;
        self.open_read_rel(&rel, input)
    }

    fn open_read_rel(&self, rel: &Path, input: &str) -> Result<File, ToolError> {
        let fd = self.open_rel(rel, READ_FLAGS, 0, input)?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| ToolError::from_io(&e, input))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {}
            libc::S_IFDIR => {
                return Err(ToolError::bad_request(format!(
                    "Is a directory: {}",
                    shown(input)
                )))
            }
            _ => {
                return Err(ToolError::bad_request(format!(
                    "Not a regular file: {}",
                    shown(input)
                )))
            }
        }
        sys::clear_nonblock(fd.as_fd()).map_err(|e| ToolError::from_io(&e, input))?;
        Ok(File::from(fd))
    }

    /// Opens an existing directory (read-only fd, usable with the `*at` calls and
    /// as `/proc/self/fd/N`).
    pub fn resolve_dir(&self, input: &str) -> Result<OwnedFd, ToolError> {
        let rel = self.resolve(input)?;
        self.open_rel(&rel, DIR_FLAGS, 0, input)
    }

    /// Creates a directory and its missing parents (one component at a time, each
    /// opened with `openat2` before going on), and returns an fd of it.
    pub fn mkdir_all(&self, input: &str) -> Result<OwnedFd, ToolError> {
        let rel = self.resolve(input)?;
        self.mkdir_all_rel(&rel)
    }

    fn mkdir_all_rel(&self, rel: &Path) -> Result<OwnedFd, ToolError> {
        let mut cur: Option<OwnedFd> = None;
        let mut done = PathBuf::new();
        for comp in rel.components() {
            let comp = Path::new(comp.as_os_str());
            done.push(comp);
            let dir = cur.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let fd = match sys::openat2(dir, comp, DIR_FLAGS, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let created = match sys::mkdirat(dir, comp, 0o777) {
                        Ok(()) => true,
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
                        Err(e) => return Err(ToolError::from_io(&e, &display(&done))),
                    };
                    let fd = sys::openat2(dir, comp, DIR_FLAGS, 0)
                        .map_err(|e| ToolError::from_io(&e, &display(&done)))?;
                    if created {
                        inherit_owner(dir, fd.as_fd());
                    }
                    fd
                }
                Err(e) => return Err(ToolError::from_io(&e, &display(&done))),
            };
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => sys::openat2(self.fd.as_fd(), Path::new(""), DIR_FLAGS, 0)
                .map_err(|e| ToolError::from_io(&e, ".")),
        }
    }

    /// Writes `bytes` to a file atomically and returns its normalized relative path.
    ///
    /// Missing parent directories are created. The data goes to a temporary file in
    /// the same directory (`O_CREAT | O_EXCL | O_NOFOLLOW`, beneath the parent's fd),
    /// which is then `renameat`-ed over the target: a reader sees the old file or the
    /// new one, never half of it. An existing file keeps its permission bits (not
    /// set-uid/set-gid) and, where we are allowed to, its owner. A symlink or a
    /// directory at the target is refused. Not fsync-ed: atomic against concurrent
    /// readers, not against a power cut.
    pub fn create_atomic(&self, input: &str, bytes: &[u8]) -> Result<PathBuf, ToolError> {
        self.stage(input, bytes, &mut HashMap::new())?.commit()
    }

    /// Writes every file like [`Session::create_atomic`], all or none: each is written
    /// under a temporary name first, and only once all are written are they renamed
    /// into place. A file that cannot be written (no space left, a directory in its
    /// place) leaves every target as it was. (Parent directories made on the way stay.)
    pub fn create_atomic_all(&self, files: &[(String, &[u8])]) -> Result<(), ToolError> {
        // One descriptor per directory, however many files go there.
        let mut parents = HashMap::new();
        let staged = files
            .iter()
            .map(|(input, bytes)| self.stage(input, bytes, &mut parents))
            .collect::<Result<Vec<_>, _>>()?;
        for file in staged {
            file.commit()?;
        }
        Ok(())
    }

    /// The first half of [`Session::create_atomic`]: `bytes` written beside `input`
    /// under a temporary name, with the existing file's owner and mode. `parents`:
    /// directories already opened, by their path relative to the session.
    fn stage(
        &self,
        input: &str,
        bytes: &[u8],
        parents: &mut HashMap<PathBuf, Arc<OwnedFd>>,
    ) -> Result<Staged, ToolError> {
        let rel = self.resolve(input)?;
        let Some((parent, name)) = split_parent(&rel) else {
            return Err(ToolError::bad_request(format!(
                "Is a directory: {}",
                shown(input)
            )));
        };
        let name = name.to_path_buf();
        let pfd = match parents.get(parent) {
            Some(fd) => Arc::clone(fd),
            None => {
                let fd = Arc::new(self.mkdir_all_rel(parent)?);
                parents.insert(parent.to_path_buf(), Arc::clone(&fd));
                fd
            }
        };
        let existing = match sys::lstatat(pfd.as_fd(), &name) {
            Ok(st) => Some(st),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(ToolError::from_io(&e, input)),
        };
        if let Some(st) = &existing {
            match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => {}
                libc::S_IFLNK => {
                    return Err(ToolError::forbidden(format!(
                        "Refusing to write through a symbolic link: {input} (symlinks are never followed in the workspace)"
                    )))
                }
                libc::S_IFDIR => {
                    return Err(ToolError::bad_request(format!("Is a directory: {input}")))
                }
                _ => {
                    return Err(ToolError::bad_request(format!(
                        "Not a regular file: {input}"
                    )))
                }
            }
        }
        let (tmp_name, tmp_fd) =
            create_temp(pfd.as_fd()).map_err(|e| ToolError::from_io(&e, input))?;
        let staged = Staged {
            parent: pfd,
            tmp_name,
            name,
            rel,
            input: input.to_string(),
            committed: false,
        };
        let written = (|| -> io::Result<()> {
            let mut f = File::from(tmp_fd);
            f.write_all(bytes)?;
            if existing.is_none() {
                inherit_owner(staged.parent.as_fd(), f.as_fd());
            }
            if let Some(st) = &existing {
                // chown first: it clears set-id bits, and we do not keep those anyway.
                // SAFETY: geteuid/getegid cannot fail.
                let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
                if st.st_uid != uid || st.st_gid != gid {
                    let _ = sys::fchown(f.as_fd(), st.st_uid, st.st_gid);
                }
                sys::fchmod(f.as_fd(), st.st_mode & 0o777)?;
            }
            Ok(())
        })();
        // (On an error `staged` is dropped, which removes the temporary file.)
        written.map_err(|e| ToolError::from_io(&e, input))?;
        Ok(staged)
    }

    /// Metadata of a path without following a symlink in its last component
    /// (`lstat` semantics); symlinks in earlier components are refused.
    pub fn metadata(&self, input: &str) -> Result<Metadata, ToolError> {
        let rel = self.resolve(input)?;
        let fd = self.open_rel(&rel, libc::O_PATH | libc::O_NOFOLLOW, 0, input)?;
        File::from(fd)
            .metadata()
            .map_err(|e| ToolError::from_io(&e, input))
    }

    /// Removes a file or a symlink (never what it points to). Directories are refused.
    pub fn remove_file(&self, input: &str) -> Result<(), ToolError> {
        let rel = self.resolve(input)?;
        let Some((parent, name)) = split_parent(&rel) else {
            return Err(ToolError::bad_request(format!(
                "Is a directory: {}",
                shown(input)
            )));
        };
        let pfd = self.open_rel(parent, DIR_FLAGS, 0, input)?;
        sys::unlinkat(pfd.as_fd(), name, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::EISDIR) => ToolError::bad_request(format!("Is a directory: {input}")),
            _ => ToolError::from_io(&e, input),
        })
    }

    /// Pins the start of a walk: an existing directory or regular file. Symlinks
    /// (anywhere in the path) are refused; FIFOs and devices too.
    pub fn walk_root(&self, input: &str) -> Result<WalkRoot, ToolError> {
        let rel = self.resolve(input)?;
        let fd = self.open_rel(&rel, READ_FLAGS, 0, input)?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| ToolError::from_io(&e, input))?;
        let is_dir = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => true,
            libc::S_IFREG => {
                sys::clear_nonblock(fd.as_fd()).map_err(|e| ToolError::from_io(&e, input))?;
                false
            }
            _ => {
                return Err(ToolError::bad_request(format!(
                    "Not a regular file or directory: {}",
                    shown(input)
                )))
            }
        };
        let path = sys::proc_fd_path(fd.as_fd());
        if is_dir && !path.is_dir() {
            return Err(ToolError::internal(
                "Cannot walk directories: /proc is not mounted",
            ));
        }
        Ok(WalkRoot {
            fd,
            path,
            rel,
            is_dir,
        })
    }

    /// Builds the error for a failed open of `rel`, naming the symlink component
    /// when the kernel refused one (it only says `ELOOP`).
    fn io_error(&self, e: &io::Error, rel: &Path, input: &str) -> ToolError {
        if e.raw_os_error() == Some(libc::ELOOP) {
            let mut prefix = PathBuf::new();
            for comp in rel.components() {
                prefix.push(comp);
                match sys::lstatat(self.fd.as_fd(), &prefix) {
                    Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                        let what = if prefix.as_path() == rel {
                            "is a symbolic link"
                        } else {
                            "goes through a symbolic link"
                        };
                        return ToolError::forbidden(format!(
                            "Refusing to follow a symbolic link: {input} {what} ({}); symlinks are never followed in the workspace",
                            prefix.display()
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        ToolError::from_io(e, input)
    }
}

/// The pinned start of a walk (see [`Session::walk_root`]).
#[derive(Debug)]
pub struct WalkRoot {
    fd: OwnedFd,
    path: PathBuf,
    rel: PathBuf,
    is_dir: bool,
}

impl WalkRoot {
    /// `/proc/self/fd/<fd>`: give this to a walker; it resolves to the pinned
    /// directory for as long as this value lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned fd (a directory, or a regular file opened for reading).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The start, relative to the session directory (empty = the session directory).
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// A walked path relative to the start (`None` if it is not under it).
    pub fn relative<'a>(&self, walked: &'a Path) -> Option<&'a Path> {
        walked.strip_prefix(&self.path).ok()
    }

    /// Opens a file found by the walk, by its path relative to the start, with the
    /// same confinement as every other open (so a file swapped for a symlink after
    /// the walker saw it is refused).
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        let fd = sys::openat2(self.fd.as_fd(), rel, READ_FLAGS, 0)?;
        Ok(File::from(fd))
    }

    /// The pinned file itself, when the start is a regular file.
    pub fn file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }
}

/// A file written under a temporary name in its target's directory: renamed into
/// place by [`Staged::commit`], removed if dropped before.
struct Staged {
    parent: Arc<OwnedFd>,
    tmp_name: PathBuf,
    name: PathBuf,
    rel: PathBuf,
    input: String,
    committed: bool,
}

impl Staged {
    fn commit(mut self) -> Result<PathBuf, ToolError> {
        sys::renameat(self.parent.as_fd(), &self.tmp_name, &self.name)
            .map_err(|e| ToolError::from_io(&e, &self.input))?;
        self.committed = true;
        Ok(std::mem::take(&mut self.rel))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = sys::unlinkat(self.parent.as_fd(), &self.tmp_name, 0);
        }
    }
}

fn create_temp(dir: BorrowedFd<'_>) -> io::Result<(PathBuf, OwnedFd)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = PathBuf::from(format!(".sidecar-tmp-{pid}-{n}-{nanos:08x}"));
        match sys::openat2(
            dir,
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o666,
        ) {
            Ok(fd) => return Ok((name, fd)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn shown(input: &str) -> &str {
    if input.is_empty() {
        "."
    } else {
        input
    }
}

#[cfg(test)]
mod tests;

/// Gives a newly created file or directory the owner of its parent directory, so
/// what the file tools create stays writable by the code that owns the session
/// directory. Only possible (and only needed) when the sidecar runs as root.
fn inherit_owner(parent: BorrowedFd<'_>, new: BorrowedFd<'_>) {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    if let Ok(st) = sys::fstat(parent) {
        if st.st_uid != 0 || st.st_gid != 0 {
            let _ = sys::fchown(new, st.st_uid, st.st_gid);
            // Group-writable too: without cgroups each execution runs as a uid of its
            // own that shares only the sandbox group.
            if let Ok(own) = sys::fstat(new) {
                let _ = sys::fchmod(new, (own.st_mode & 0o777) | 0o020);
            }
        }
    }
}
