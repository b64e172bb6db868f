//! Which files an execution created or modified in the work dir, found by comparing a
//! snapshot taken before with one taken after (not by listing alone, so a modified file
//! is reported too).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use serde::Serialize;

/// How directories are opened for the walk (never through a symlink).
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// At most this many entries are looked at; a larger work dir is compared partially.
const MAX_ENTRIES: usize = 20_000;
/// Directories not descended into (caches that tools create and nobody wants back).
const SKIP_DIRS: [&str; 4] = [".git", "node_modules", "__pycache__", ".cache"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    dev: u64,
    ino: u64,
}

/// The regular files of a directory tree, by relative path.
#[derive(Debug, Default)]
pub struct Snapshot(HashMap<String, Stamp>);

/// A file an execution created or modified.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangedFile {
    pub path: String,
    pub size: u64,
    /// Modification time, RFC 3339 UTC.
    pub mtime: String,
    /// Seconds since the epoch (for clients that prefer numbers).
    #[serde(rename = "mtimeMs")]
    pub mtime_ms: i64,
}

impl Snapshot {
    /// Walks `root` (following it if it is a symlink, nothing below it).
    pub fn take(root: &Path) -> Snapshot {
        match rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => Snapshot::take_at(fd.as_fd()),
            Err(_) => Snapshot::default(),
        }
    }

    /// Walks the directory open at `root` by descriptor, without following symlinks:
    /// each subdirectory is opened relative to its parent with `O_NOFOLLOW`, so code
    /// that swaps one for a symlink while the walk runs cannot point it outside.
    pub fn take_at(root: BorrowedFd<'_>) -> Snapshot {
        match rustix::fs::openat(root, c".", DIR_FLAGS, Mode::empty()).and_then(Dir::new) {
            Ok(mut dir) => Snapshot::walk(&mut dir),
            Err(_) => Snapshot::default(),
        }
    }

    /// [`Snapshot::take_at`] reading the top level from a stream the caller keeps, from
    /// where it stands (the caller rewinds one it read before): taken twice per
    /// execution, this saves opening the dir each time.
    pub fn take_from(dir: &mut Dir) -> Snapshot {
        Snapshot::walk(dir)
    }

    fn walk(top: &mut Dir) -> Snapshot {
        let mut map = HashMap::new();
        let mut stack = Vec::new();
        if !read_level(top, String::new(), &mut map, &mut stack) {
            return Snapshot(map);
        }
        while let Some((mut dir, prefix)) = stack.pop() {
            if !read_level(&mut dir, prefix, &mut map, &mut stack) {
                break;
            }
        }
        Snapshot(map)
    }

    /// Files in `after` that are new or changed since `self`, minus `exclude` and the
    /// files (device, inode) in `others` (written by other executions), sorted.
    pub fn changes(
        &self,
        after: &Snapshot,
        exclude: &[String],
        others: &HashSet<(u64, u64)>,
    ) -> Vec<ChangedFile> {
        let mut out: Vec<ChangedFile> = after
            .0
            .iter()
            .filter(|(path, stamp)| {
                self.0.get(*path) != Some(stamp)
                    && !exclude.contains(path)
                    && !others.contains(&(stamp.dev, stamp.ino))
            })
            .map(|(path, stamp)| {
                let ms = (stamp.mtime_ns / 1_000_000) as i64;
                ChangedFile {
                    path: path.clone(),
                    size: stamp.size,
                    mtime: rfc3339(ms),
                    mtime_ms: ms,
                }
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// Adds the regular files of one directory to `map` and pushes its subdirectories
/// (opened relative to it) on `stack`; false once `map` holds [`MAX_ENTRIES`].
fn read_level(
    dir: &mut Dir,
    prefix: String,
    map: &mut HashMap<String, Stamp>,
    stack: &mut Vec<(Dir, String)>,
) -> bool {
    while let Some(Ok(entry)) = dir.next() {
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if map.len() >= MAX_ENTRIES {
            return false;
        }
        let Ok(fd) = dir.fd() else { break };
        let Ok(st) = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let text = name.to_string_lossy();
        let rel = if prefix.is_empty() {
            text.into_owned()
        } else {
            format!("{prefix}/{text}")
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if !SKIP_DIRS.contains(&&*name.to_string_lossy()) => {
                let sub = rustix::fs::openat(fd, name, DIR_FLAGS, Mode::empty());
                if let Ok(sub) = sub.and_then(Dir::new) {
                    stack.push((sub, rel));
                }
            }
            FileType::RegularFile => {
                map.insert(
                    rel,
                    Stamp {
                        size: st.st_size as u64,
                        mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
                        dev: st.st_dev,
                        ino: st.st_ino,
                    },
                );
            }
            _ => {}
        }
    }
    true
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn does_not_follow_symlinks_and_reads_by_descriptor_as_by_path() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/deep.txt"), "d").unwrap();
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        std::fs::write(dir.path().join("node_modules/x.js"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("a/b/deep.txt", dir.path().join("file-link")).unwrap();
        let by_path = Snapshot::take(dir.path());
        let mut paths: Vec<_> = by_path.0.keys().cloned().collect();
        paths.sort();
        assert_eq!(paths, ["a/b/deep.txt"]);
        let fd = std::fs::File::open(dir.path()).unwrap();
        let by_fd = Snapshot::take_at(fd.as_fd());
        assert_eq!(by_fd.0, by_path.0);
    }

    #[test]
    fn finds_created_and_modified_files_but_not_untouched_or_excluded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same.txt"), "a").unwrap();
        std::fs::write(dir.path().join("changed.txt"), "a").unwrap();
        let before = Snapshot::take(dir.path());
        std::fs::write(dir.path().join("changed.txt"), "bb").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/new.txt"), "c").unwrap();
        std::fs::write(dir.path().join("code.py"), "x").unwrap();
        let after = Snapshot::take(dir.path());
        let paths: Vec<_> = before
            .changes(&after, &["code.py".into()], &HashSet::new())
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(paths, ["changed.txt", "sub/new.txt"]);
    }
}
