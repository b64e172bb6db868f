//! Removing a directory tree that untrusted code made (a scratch dir, a private /tmp).
//!
//! std's `remove_dir_all` recurses once per level: a program that made a directory
//! chain 30 000 levels deep in its scratch dir overflowed the clean-up thread's stack
//! and aborted the sidecar. This walk keeps its path on the heap, has one directory
//! open at a time, and never follows a symbolic link. It goes back up through `..`,
//! checked against the device and inode recorded on the way down, so a directory moved
//! meanwhile stops the removal instead of redirecting it; and it gives up after a
//! budget of operations, so code of the same uid that keeps refilling the tree cannot
//! hold the clean-up thread forever.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// How directories are entered: never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Entries removed and directories entered before giving up.
const BUDGET: u64 = 10_000_000;

/// Removes `path` and everything below it. A symlink (or a file) at `path` is removed
/// itself, not followed.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} has no name", path.display())))?;
    let name = CString::new(name.as_bytes()).map_err(|_| io::Error::other("NUL in a path"))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let parent = rustix::fs::open(parent, flags, Mode::empty())?;
    match rustix::fs::openat(&parent, &name, DIR_FLAGS, Mode::empty()) {
        Ok(top) => {
            empty_tree(top)?;
            rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR)?;
        }
        Err(Errno::NOTDIR | Errno::LOOP) => rustix::fs::unlinkat(&parent, &name, AtFlags::empty())?,
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Removes everything below the directory open at `top`, which stays.
fn empty_tree(top: OwnedFd) -> io::Result<()> {
    let top_id = id(&top)?;
    // The directories entered below `top`: name in the parent, device and inode.
    let mut path: Vec<(CString, (u64, u64))> = Vec::new();
    let mut current = top;
    let mut budget = BUDGET;
    loop {
        match clear_until_full_subdir(&current, &mut budget)? {
            Some(name) => {
                let child = rustix::fs::openat(&current, &name, DIR_FLAGS, Mode::empty())?;
                path.push((name, id(&child)?));
                current = child;
            }
            None => {
                let Some((name, _)) = path.pop() else {
                    return Ok(());
                };
                let parent = rustix::fs::openat(&current, c"..", DIR_FLAGS, Mode::empty())?;
                let expected = path.last().map_or(top_id, |(_, id)| *id);
                if id(&parent)? != expected {
                    return Err(io::Error::other(
                        "a directory was moved while its tree was being removed",
                    ));
                }
                match rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR) {
                    // Refilled meanwhile: entered again when the parent is read again.
                    Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                current = parent;
            }
        }
        budget = spend(budget)?;
    }
}

/// Removes the files and empty directories of `dir` up to its first directory that is
/// not empty, whose name it returns (`None`: `dir` is empty now).
fn clear_until_full_subdir(dir: &OwnedFd, budget: &mut u64) -> io::Result<Option<CString>> {
    let listing = rustix::fs::openat(dir, c".", DIR_FLAGS, Mode::empty())?;
    for entry in Dir::new(listing)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        *budget = spend(*budget)?;
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            _ => false,
        };
        if !is_dir {
            match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY | Errno::EXIST) => return Ok(Some(name.to_owned())),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

fn spend(budget: u64) -> io::Result<u64> {
    budget
        .checked_sub(1)
        .ok_or_else(|| io::Error::other("gave up: the tree kept growing while it was removed"))
}

fn id(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_chain_deeper_than_any_stack_with_one_directory_open() {
        let root = tempfile::tempdir().unwrap();
        let top = root.path().join("top");
        std::fs::create_dir(&top).unwrap();
        // 40 000 levels, made relative to an open directory (the path is too long to
        // name).
        let mut fd = rustix::fs::open(&top, DIR_FLAGS, Mode::empty()).unwrap();
        for _ in 0..40_000 {
            rustix::fs::mkdirat(&fd, c"a", Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, c"a", DIR_FLAGS, Mode::empty()).unwrap();
        }
        std::fs::write(
            format!("/proc/self/fd/{}/f", std::os::fd::AsRawFd::as_raw_fd(&fd)),
            "x",
        )
        .unwrap();
        drop(fd);
        remove_tree(&top).unwrap();
        assert!(!top.exists());
    }

    #[test]
    fn removes_files_dirs_and_links_without_following_them() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let top = root.path().join("top");
        std::fs::create_dir_all(top.join("a/b/c")).unwrap();
        std::fs::create_dir_all(top.join("empty")).unwrap();
        std::fs::write(top.join("a/b/file"), "x").unwrap();
        std::fs::write(top.join("a/file"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("toplink")).unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert!(outside.path().join("keep").exists());

        // A symlink given as the tree: the link goes, not its target.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        remove_tree(&link).unwrap();
        assert!(!link.exists() && outside.path().join("keep").exists());
    }
}
