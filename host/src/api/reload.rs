//! Hot reload: the plugins directory and `languages.toml` are polled every
//! [`POLL`]; a change that has been stable for one poll (so a file being written is
//! not read half-way) rebuilds the registry, and SIGHUP forces a rebuild.
//!
//! The new registry replaces the old one in a single swap: requests in flight keep the
//! `Arc` they started with (and the plugin version in it), new ones get the new one. A
//! languages.toml that does not validate, or a plugin file that does not load, leaves
//! the last good state in force and the error is shown by /languages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::SharedState;
use crate::config::LanguagesFile;
use crate::plugins::{PluginSet, Registry};

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_millis(100);

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

/// Starts the watcher and the SIGHUP handler.
pub fn spawn(state: SharedState) {
    let dir = state.settings.plugins.plugins_dir();
    let languages = state.settings.plugins.languages_file();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    let hup = tx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut sighup) = signal(SignalKind::hangup()) else {
            return;
        };
        while sighup.recv().await.is_some() {
            let _ = hup.send("SIGHUP").await;
        }
    });
    {
        let (dir, languages) = (dir.clone(), languages.clone());
        tokio::spawn(async move {
            let mut applied = fingerprint(&dir, &languages);
            let mut seen = applied.clone();
            loop {
                tokio::time::sleep(POLL).await;
                let now = tokio::task::spawn_blocking({
                    let (dir, languages) = (dir.clone(), languages.clone());
                    move || fingerprint(&dir, &languages)
                })
                .await
                .unwrap_or_default();
                // Apply a change once it has stayed the same for one poll.
                if now == seen && now != applied {
                    applied = now.clone();
                    if tx.send("change").await.is_err() {
                        return;
                    }
                }
                seen = now;
            }
        });
    }
    tokio::spawn(async move {
        let mut toml_text = std::fs::read_to_string(&languages).ok();
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
    let text = std::fs::read_to_string(languages).ok();
    let toml_changed = text.as_deref() != old_text;
    let file = match &text {
        Some(t) => LanguagesFile::parse(t, &languages.display().to_string()),
        None => Ok(LanguagesFile::default()),
    };
    let current = state.registry();
    let outcome = file.map_err(|e| e.to_string()).and_then(|file| {
        let set = PluginSet::load_dir(&state.runtime, dir, Some(&current.plugins));
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
        Err(e) => {
            tracing::error!(
                trigger = why,
                "reload rejected, the last good configuration stays in force: {e}"
            );
            *state
                .reload_error
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            state.metrics.reload(false);
            Err(e)
        }
    }
}
