//! Which execution wrote which files of the workspace, so that an execution's `files`
//! leaves out what others running beside it in the same session wrote.
//!
//! Each namespace of the pool (exec/private_tmp.rs) has its own copy of the mount the
//! workspace is on, and a fanotify group watching that copy for files closed after
//! writing: a file written through it was written by the one execution using the
//! namespace. The events are gathered in a ledger shared by the pool. A changed file is
//! someone else's when another execution wrote it after this one started and this one
//! never did. Anything unattributed (renamed or touched without a write, written by the
//! file tools, or lost to an overflow of the event queue) stays in the list, as the
//! before/after comparison alone would have it.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A file, by device and inode number.
pub(crate) type FileId = (u64, u64);

/// A fanotify group watching one mount for files closed after writing.
pub(crate) struct Watch(OwnedFd);

impl Watch {
    /// Watches the mount `path` is on (resolved in the caller's mount namespace).
    pub fn new(path: &Path) -> io::Result<Watch> {
        let flags = libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        // The kernel opens each written file for the event: never blocking (a FIFO),
        // never following anything (it is the file that was closed).
        let event_flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_LARGEFILE;
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = unsafe { libc::fanotify_init(flags, event_flags as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just made and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::other("NUL byte in a path"))?;
        // SAFETY: a valid group and C string.
        let r = unsafe {
            libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_MOUNT,
                libc::FAN_CLOSE_WRITE,
                libc::AT_FDCWD,
                c_path.as_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watch(fd))
    }

    /// Reads every pending event into `into`; false if events were lost (the queue
    /// overflowed, or an event came without its file).
    pub fn drain(&self, into: &mut HashSet<FileId>) -> bool {
        let mut complete = true;
        let mut buf = [0u8; 8 * 1024];
        let header = std::mem::size_of::<libc::fanotify_event_metadata>();
        loop {
            // SAFETY: reading into a buffer we own.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return complete;
            }
            let mut at = 0usize;
            let n = n as usize;
            while at + header <= n {
                // SAFETY: `header` bytes are in the buffer at `at`; read unaligned.
                let event: libc::fanotify_event_metadata =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let len = event.event_len as usize;
                if event.vers != libc::FANOTIFY_METADATA_VERSION || len < header {
                    return false;
                }
                if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                    complete = false;
                }
                if event.fd >= 0 {
                    // SAFETY: the kernel gave us this descriptor with the event.
                    let file = unsafe { OwnedFd::from_raw_fd(event.fd) };
                    // SAFETY: a zeroed out-struct the kernel fills in.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } == 0 {
                        into.insert((st.st_dev, st.st_ino));
                    } else {
                        complete = false;
                    }
                } else if event.mask & libc::FAN_Q_OVERFLOW == 0 {
                    complete = false;
                }
                at += len;
            }
        }
    }
}

/// The writes of the executions using the pool's namespaces.
#[derive(Default)]
pub(crate) struct Ledger(Mutex<Book>);

#[derive(Default)]
struct Book {
    /// Bumped at every gathering: when a write was seen.
    seq: u64,
    next_id: u64,
    /// The last execution seen writing each file, and when.
    writer: HashMap<FileId, (u64, u64)>,
    active: HashMap<u64, Active>,
}

struct Active {
    watch: Arc<Watch>,
    /// `seq` when it started: writes seen later are its contemporaries'.
    start: u64,
    own: HashSet<FileId>,
    /// No event of its own was lost.
    complete: bool,
}

impl Book {
    /// Reads every active execution's events into the ledger.
    fn gather(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        for (&id, active) in self.active.iter_mut() {
            let mut seen = HashSet::new();
            active.complete &= active.watch.drain(&mut seen);
            for file in &seen {
                self.writer.insert(*file, (seq, id));
            }
            active.own.extend(seen);
        }
    }
}

impl Ledger {
    /// An execution starts using the namespace `watch` watches (whose queue is empty).
    pub fn open(&self, watch: Arc<Watch>) -> u64 {
        let mut book = self.lock();
        book.next_id += 1;
        let id = book.next_id;
        let start = book.seq;
        book.active.insert(
            id,
            Active {
                watch,
                start,
                own: HashSet::new(),
                complete: true,
            },
        );
        id
    }

    /// The files another execution wrote while `id` ran and `id` did not write (none if
    /// some of `id`'s own writes are unknown).
    pub fn foreign(&self, id: u64) -> HashSet<FileId> {
        let mut book = self.lock();
        book.gather();
        let Some(me) = book.active.get(&id) else {
            return HashSet::new();
        };
        if !me.complete {
            return HashSet::new();
        }
        book.writer
            .iter()
            .filter(|(file, (seq, writer))| {
                *seq > me.start && *writer != id && !me.own.contains(*file)
            })
            .map(|(file, _)| *file)
            .collect()
    }

    /// `id` is over (every process of it dead): its last writes are recorded for the
    /// others, and what no running execution can need any more is forgotten.
    pub fn close(&self, id: u64) {
        let mut book = self.lock();
        book.gather();
        book.active.remove(&id);
        match book.active.values().map(|a| a.start).min() {
            Some(oldest) => book.writer.retain(|_, (seq, _)| *seq > oldest),
            None => book.writer.clear(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// fanotify needs root: `None` (and a visible skip) otherwise.
    fn temp_dir_in(parent: &str) -> Option<tempfile::TempDir> {
        // SAFETY: plain getter.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: fanotify needs root");
            return None;
        }
        Some(tempfile::tempdir_in(parent).unwrap())
    }

    fn id_of(path: &Path) -> FileId {
        let m = std::fs::metadata(path).unwrap();
        (m.dev(), m.ino())
    }

    /// Two executions stand as watches on two mounts (/dev/shm and the file system of
    /// /tmp); a write on the first is the first's only.
    #[test]
    fn a_file_is_foreign_only_if_another_wrote_it_after_this_one_started() {
        let (Some(theirs), Some(ours)) = (temp_dir_in("/dev/shm"), temp_dir_in("/tmp")) else {
            return;
        };
        if id_of(theirs.path()).0 == id_of(ours.path()).0 {
            eprintln!("skipped: /dev/shm and /tmp are one file system here");
            return;
        }
        let ledger = Ledger::default();
        let a = ledger.open(Arc::new(Watch::new(theirs.path()).unwrap()));
        let early = theirs.path().join("early");
        std::fs::write(&early, "x").unwrap();
        ledger.foreign(a);
        // `b` starts after `a`'s first write was gathered: only later ones are foreign.
        let b = ledger.open(Arc::new(Watch::new(ours.path()).unwrap()));
        let late = theirs.path().join("late");
        std::fs::write(&late, "y").unwrap();
        let mine = ours.path().join("mine");
        std::fs::write(&mine, "z").unwrap();
        let foreign_to_b = ledger.foreign(b);
        assert!(foreign_to_b.contains(&id_of(&late)), "{foreign_to_b:?}");
        assert!(!foreign_to_b.contains(&id_of(&early)));
        assert!(!foreign_to_b.contains(&id_of(&mine)));
        assert!(!ledger.foreign(a).contains(&id_of(&late)));
        ledger.close(a);
        ledger.close(b);
        assert!(ledger.lock().writer.is_empty());
    }

    #[test]
    fn files_written_and_closed_are_seen_with_their_inode() {
        let Some(dir) = temp_dir_in("/tmp") else {
            return;
        };
        let watch = Watch::new(dir.path()).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let mut seen = HashSet::new();
        assert!(watch.drain(&mut seen));
        assert!(seen.contains(&id_of(&file)), "{seen:?}");
        // Read once: the next drain has only what was written since (by others on
        // this mount, if anything).
        seen.clear();
        assert!(watch.drain(&mut seen));
        assert!(!seen.contains(&id_of(&file)), "{seen:?}");
    }
}
