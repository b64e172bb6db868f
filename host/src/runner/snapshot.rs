//! Which files an execution created or modified in the work dir, found by comparing a
//! snapshot taken before with one taken after (not by listing alone, so a modified file
//! is reported too).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

/// At most this many entries are looked at; a larger work dir is compared partially.
const MAX_ENTRIES: usize = 20_000;
/// Directories not descended into (caches that tools create and nobody wants back).
const SKIP_DIRS: [&str; 4] = [".git", "node_modules", "__pycache__", ".cache"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
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
    /// Walks `root` without following symlinks.
    pub fn take(root: &Path) -> Snapshot {
        let mut map = HashMap::new();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if map.len() >= MAX_ENTRIES {
                    return Snapshot(map);
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    if !SKIP_DIRS.contains(&name.as_str()) {
                        stack.push((entry.path(), rel));
                    }
                } else if meta.is_file() {
                    map.insert(
                        rel,
                        Stamp {
                            size: meta.len(),
                            mtime_ns: meta.mtime() as i128 * 1_000_000_000
                                + meta.mtime_nsec() as i128,
                            ino: meta.ino(),
                        },
                    );
                }
            }
        }
        Snapshot(map)
    }

    /// Files in `after` that are new or changed since `self`, minus `exclude`, sorted.
    pub fn changes(&self, after: &Snapshot, exclude: &[String]) -> Vec<ChangedFile> {
        let mut out: Vec<ChangedFile> = after
            .0
            .iter()
            .filter(|(path, stamp)| self.0.get(*path) != Some(stamp) && !exclude.contains(path))
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
            .changes(&after, &["code.py".into()])
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(paths, ["changed.txt", "sub/new.txt"]);
    }
}
