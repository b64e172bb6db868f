//! Hot reload: a change to the plugins directory or `languages.toml` that has been
//! stable for [`POLL`] (so a file being written is not read half-way) rebuilds the
//! registry, and SIGHUP forces a rebuild. Changes are noticed through inotify on the
//! plugins directory and on the directory holding `languages.toml` (which also sees a
//! Kubernetes ConfigMap's symlink swap), with a look every [`SAFETY_POLL`] in case an
//! event was missed; where inotify cannot be used, the files are polled every
//! [`POLL`]. The watching is a thread of its own that looks at most once per [`POLL`]
//! (after a short burst) however busy the directories are; an idle sidecar so wakes up
//! a few times a minute instead of ten times a second (each wake-up costs the programs
//! being run a little).
//!
//! The new registry replaces the old one in a single swap: requests in flight keep the
//! `Arc` they started with (and the plugin version in it), new ones get the new one. A
//! languages.toml that does not validate, or a plugin file that does not load, leaves
//! the last good state in force and the error is shown by /languages.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::SharedState;
use crate::config::LanguagesFile;
use crate::plugins::{PluginSet, Registry};

/// How long a change must stay the same before it is applied; also how often the
/// files are polled where inotify cannot be used.
pub const POLL: Duration = Duration::from_millis(100);

/// How often the files are looked at even when inotify reported nothing.
pub const SAFETY_POLL: Duration = Duration::from_secs(5);

/// What identifies a version of one watched file: size, mtime, and the inode and its
/// change time, so that a file renamed over another, or rewritten with its mtime
/// preserved (`cp -p`, `rsync -t`, an unpacked archive), is a change even when size
/// and mtime are equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    size: u64,
    mtime: Option<SystemTime>,
    inode: (u64, u64),
    ctime: (i64, i64),
}

impl Version {
    fn of(path: &Path) -> Option<Version> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Version {
            size: meta.len(),
            mtime: meta.modified().ok(),
            inode: (meta.dev(), meta.ino()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// What identifies a version of the watched files.
type Fingerprint = Vec<(PathBuf, Option<Version>)>;

fn fingerprint(dir: &Path, languages: &Path) -> Fingerprint {
    let mut out: Fingerprint = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .map(|p| {
            let version = Version::of(&p);
            (p, version)
        })
        .collect();
    out.sort();
    out.push((languages.to_path_buf(), Version::of(languages)));
    out
}

/// What the files were when the registry was loaded, and the inotify watches set up
/// then: made before the registry is loaded, so that a change while it loads (or
/// before the server listens) is not missed.
pub struct Baseline {
    dir: PathBuf,
    languages: PathBuf,
    fingerprint: Fingerprint,
    toml_text: Option<String>,
    watcher: Option<Watcher>,
}

impl Baseline {
    pub fn take(dir: PathBuf, languages: PathBuf) -> Baseline {
        let watcher = Watcher::new(&dir, &languages);
        if watcher.is_none() {
            tracing::info!("inotify unavailable: polling the plugin files every {POLL:?}");
        }
        Baseline {
            fingerprint: fingerprint(&dir, &languages),
            toml_text: std::fs::read_to_string(&languages).ok(),
            watcher,
            dir,
            languages,
        }
    }
}

/// Starts the watcher and the SIGHUP handler.
pub fn spawn(state: SharedState, baseline: Baseline) {
    let Baseline {
        dir,
        languages,
        fingerprint: mut applied,
        toml_text,
        watcher,
    } = baseline;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    let hup = tx.clone();
    // Registered here, before the socket listens: registered in the task, it left a
    // moment after start-up in which a SIGHUP still had its default action (exit).
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut sighup) => {
            tokio::spawn(async move {
                while sighup.recv().await.is_some() {
                    let _ = hup.send("SIGHUP").await;
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGHUP ({e}): only file changes reload"),
    }
    {
        let (dir, languages, tx) = (dir.clone(), languages.clone(), tx.clone());
        let watching = std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || {
                let mut budget = LookBudget::new();
                loop {
                    match &watcher {
                        Some(w) => w.wait(),
                        None => std::thread::sleep(POLL),
                    }
                    budget.take();
                    if let Some(w) = &watcher {
                        w.watch(&dir, &languages);
                    }
                    // Apply a change once it has stayed the same for one POLL.
                    let mut now = fingerprint(&dir, &languages);
                    while now != applied {
                        std::thread::sleep(POLL);
                        let later = fingerprint(&dir, &languages);
                        if later == now {
                            applied = now;
                            if tx.blocking_send("change").is_err() {
                                return;
                            }
                            break;
                        }
                        now = later;
                    }
                }
            });
        if let Err(e) = watching {
            tracing::error!("cannot start the plugin watcher thread (SIGHUP still reloads): {e}");
        }
    }
    tokio::spawn(async move {
        let mut toml_text = toml_text;
        while let Some(why) = rx.recv().await {
            let state = state.clone();
            let (dir, languages) = (dir.clone(), languages.clone());
            let old_text = toml_text.clone();
            let result = tokio::task::spawn_blocking(move || {
                reload(&state, &dir, &languages, old_text.as_deref(), why)
            })
            .await
            .unwrap_or_else(|e| Err(format!("reload panicked: {e}")));
            if let Ok(text) = result {
                toml_text = text;
            }
        }
    });
}

/// Rebuilds the registry. Returns the languages.toml text now in force.
fn reload(
    state: &SharedState,
    dir: &Path,
    languages: &Path,
    old_text: Option<&str>,
    why: &str,
) -> Result<Option<String>, String> {
    let started = std::time::Instant::now();
    // No file means the plugins' defaults; a file that cannot be read (too many open
    // files, a directory in its place) is an error, not an empty configuration.
    let text = match std::fs::read_to_string(languages) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let e = format!("cannot read {}: {e}", languages.display());
            return Err(reject(state, why, e));
        }
    };
    let toml_changed = text.as_deref() != old_text;
    let file = match &text {
        Some(t) => LanguagesFile::parse(t, &languages.display().to_string()),
        None => Ok(LanguagesFile::default()),
    };
    let current = state.registry();
    let outcome = file.map_err(|e| e.to_string()).and_then(|file| {
        let set = PluginSet::load_dir(&state.runtime, dir, Some(&current.plugins));
        if set.unreadable {
            return Err(set.errors[0].to_string());
        }
        Registry::build(set, &file, &languages.display().to_string(), toml_changed)
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(registry) => {
            for e in &registry.plugins.errors {
                tracing::error!("plugin not loaded: {e}");
            }
            for e in &registry.language_errors {
                tracing::error!("{}", e.error);
            }
            for w in &registry.warnings {
                tracing::warn!("{w}");
            }
            let ok = registry.plugins.errors.is_empty();
            tracing::info!(
                trigger = why,
                languages = registry.codes().join(","),
                duration_ms = started.elapsed().as_millis() as u64,
                "reloaded"
            );
            *state.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
            *state
                .reload_error
                .write()
                .unwrap_or_else(|p| p.into_inner()) = None;
            state.metrics.reload(ok);
            Ok(text)
        }
        Err(e) => Err(reject(state, why, e)),
    }
}

/// Keeps the last good registry in force after a failed reload, and says why.
fn reject(state: &SharedState, why: &str, e: String) -> String {
    tracing::error!(
        trigger = why,
        "reload rejected, the last good configuration stays in force: {e}"
    );
    *state
        .reload_error
        .write()
        .unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
    state.metrics.reload(false);
    e
}

/// How often the watcher may look: a few looks at once (a temporary file created,
/// then renamed into place: the rename must not wait), then one per [`POLL`] however
/// busy the directories are.
struct LookBudget {
    tokens: f64,
    at: Instant,
}

impl LookBudget {
    const BURST: f64 = 3.0;

    fn new() -> Self {
        LookBudget {
            tokens: Self::BURST,
            at: Instant::now(),
        }
    }

    /// Takes one look, sleeping first if the budget is spent.
    fn take(&mut self) {
        let refill = self.at.elapsed().as_secs_f64() / POLL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(Self::BURST);
        if self.tokens < 1.0 {
            std::thread::sleep(POLL.mul_f64(1.0 - self.tokens));
            self.tokens = 1.0;
        }
        self.tokens -= 1.0;
        self.at = Instant::now();
    }
}

/// inotify watches on the plugins directory and on the directory of `languages.toml`
/// (and on the file itself, for a symlink's target written in place).
struct Watcher {
    fd: std::os::fd::OwnedFd,
}

impl Watcher {
    /// `None` when inotify cannot be used here (then the caller polls).
    fn new(dir: &Path, languages: &Path) -> Option<Watcher> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        let watcher = Watcher { fd };
        watcher.watch(dir, languages);
        Some(watcher)
    }

    /// (Re-)adds the watches: a directory made or replaced since, or a languages.toml
    /// renamed over, is watched anew. Paths that do not exist are skipped (the safety
    /// poll sees them appear). The plugins directory is watched for everything; the
    /// directory of languages.toml, which may be busy with other files, only for
    /// entries coming and going (a rename over the file, a ConfigMap's symlink swap);
    /// the file itself for writes.
    fn watch(&self, dir: &Path, languages: &Path) {
        use rustix::fs::inotify::{self, WatchFlags};
        let gone = WatchFlags::DELETE_SELF | WatchFlags::MOVE_SELF;
        let entries = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | gone;
        let writes = WatchFlags::MODIFY | WatchFlags::CLOSE_WRITE | WatchFlags::ATTRIB | gone;
        let parent = languages
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // MASK_ADD: one directory may be both (languages.toml among the plugins).
        for (path, mask) in [
            (dir, entries | writes),
            (parent, entries),
            (languages, writes),
        ] {
            let _ = inotify::add_watch(&self.fd, path, mask | WatchFlags::MASK_ADD);
        }
    }

    /// Blocks until an event arrives or [`SAFETY_POLL`] passes, then reads every
    /// pending event: their details do not matter, the fingerprint says what changed.
    /// (Events that arrive while the caller sleeps wait in the kernel's queue: a busy
    /// directory costs at most one wake-up per [`POLL`].)
    fn wait(&self) {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, SAFETY_POLL.as_millis() as i32) };
        if ready < 0 {
            // Interrupted or failing: wait as a poll would, rather than spin.
            std::thread::sleep(POLL);
            return;
        }
        let mut buf = [0u8; 4096];
        // Until the queue is empty (EAGAIN) or unreadable.
        while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
    }
}
