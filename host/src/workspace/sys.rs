//! Thin wrappers over the Linux calls that confinement is built on: `openat2(2)` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, and the `*at`
//! calls that work relative to a pinned directory fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The resolution rules of every open in the workspace: stay beneath the directory
/// fd, follow no symlink at all (not even in the last component), no magic links.
pub const RESOLVE_CONFINED: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

fn c_path(path: &Path) -> io::Result<CString> {
    let bytes = path.as_os_str().as_bytes();
    let bytes = if bytes.is_empty() { b"." } else { bytes };
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    // openat2 answers EAGAIN when a concurrent rename could make a `..` step unsafe;
    // we never pass `..`, but retrying a few times is what the man page asks for.
    let mut tries = 0;
    loop {
        match f() {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN))
                    && tries < 32 =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// `openat2(dir, path, flags | O_CLOEXEC, mode)` confined beneath `dir` with
/// [`RESOLVE_CONFINED`]. An empty path opens `dir` itself (as ".").
///
/// A symlink anywhere in `path` (including the last component) fails with `ELOOP`,
/// an escape with `EXDEV`. Exception, as documented for openat2: with
/// `O_PATH | O_NOFOLLOW` a trailing symlink is opened itself.
pub fn openat2(dir: BorrowedFd<'_>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u32 as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = RESOLVE_CONFINED;
    retry(|| {
        // SAFETY: valid C string, valid open_how of the size we pass.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: the kernel just gave us this fd.
            Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
        }
    })
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mkdirat(dir, name, mode)`; `name` must be a single component.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let c = c_path(name)?;
    // SAFETY: valid fd and C string.
    retry(|| check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }))
}

/// `renameat(dir, from, dir, to)`: atomic replacement of `to`, never follows symlinks.
pub fn renameat(dir: BorrowedFd<'_>, from: &Path, to: &Path) -> io::Result<()> {
    let a = c_path(from)?;
    let b = c_path(to)?;
    // SAFETY: valid fds and C strings.
    retry(|| {
        check(unsafe { libc::renameat(dir.as_raw_fd(), a.as_ptr(), dir.as_raw_fd(), b.as_ptr()) })
    })
}

/// `unlinkat(dir, name, flags)` (`libc::AT_REMOVEDIR` to remove an empty directory).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<()> {
    let c = c_path(name)?;
    // SAFETY: valid fd and C string.
    retry(|| check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }))
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never its target.
pub fn lstatat(dir: BorrowedFd<'_>, name: &Path) -> io::Result<libc::stat> {
    let c = c_path(name)?;
    // SAFETY: stat is plain old data; the kernel fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    retry(|| {
        check(unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    })?;
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data; the kernel fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }))
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    retry(|| check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }))
}

/// `open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC)`, following symlinks: only for the
/// configured workspace root, which the operator chose.
pub fn open_dir_unconfined(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    retry(|| {
        // SAFETY: valid C string.
        let r = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: the kernel just gave us this fd.
            Ok(unsafe { OwnedFd::from_raw_fd(r) })
        }
    })
}

/// `fcntl(F_SETFL)` without `O_NONBLOCK` (we open with it so FIFOs cannot block us).
pub fn clear_nonblock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) })
}

/// The `/proc/self/fd/N` path of an fd: walking it walks the pinned directory.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
