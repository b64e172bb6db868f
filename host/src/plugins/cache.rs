//! The on-disk cache of compiled plugins.
//!
//! Compiled code is only valid for the exact wasmtime build and settings that produced
//! it, so an entry is keyed by the wasm file's sha256 and the engine's
//! `precompile_compatibility_hash`. Each entry ends with the sha256 of its own bytes:
//! an entry that is truncated, corrupt or from another engine is a miss (and is
//! removed), never an error. New entries are written to a temporary file and renamed
//! into place, so a reader never sees half an entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Cache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the wasm file whose sha256 is given, if valid.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let miss = |why: &str| {
            tracing::warn!(path = %path.display(), "ignoring cached plugin: {why}");
            let _ = std::fs::remove_file(&path);
            None
        };
        if bytes.len() < 32 {
            return miss("truncated");
        }
        let (code, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(code).as_slice() != sum {
            return miss("checksum mismatch");
        }
        // SAFETY: the bytes were produced by `Component::serialize` of an engine with the
        // same compatibility hash (the key) and are unchanged since (the checksum).
        match unsafe { Component::deserialize(engine, code) } {
            Ok(component) => Some(component),
            Err(_) => miss("not loadable by this engine"),
        }
    }

    /// Stores a compilation. Failures are logged and otherwise ignored: the cache is an
    /// optimisation.
    pub fn put(&self, sha256: &str, component: &Component) {
        let result = (|| -> std::io::Result<()> {
            let mut bytes = component
                .serialize()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let sum = Sha256::digest(&bytes);
            bytes.extend_from_slice(&sum);
            std::fs::create_dir_all(&self.dir)?;
            let path = self.entry(sha256);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), "cannot cache a compiled plugin: {e}");
        }
    }
}

/// The default cache directory: `$SIDECAR_CACHE_DIR` is read by the CLI; this is the
/// fallback, `$XDG_CACHE_HOME/sidecar` or `$HOME/.cache/sidecar`, else a directory
/// under the system temporary directory.
pub fn default_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("sidecar");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache/sidecar");
    }
    std::env::temp_dir().join("sidecar-cache")
}
