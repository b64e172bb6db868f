//! Language plugins: the wasmtime runtime that loads WebAssembly components, the
//! bindings of each supported WIT version, the on-disk compilation cache, and the
//! registry that maps language codes to plugins after `languages.toml` is applied.

pub mod cache;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod scaffold;
mod ticker;
pub mod v0_1;

pub use model::{
    LanguageSettings, Plan, PlanCommand, PlanFile, PlanRefusal, PlanRequest, PluginInfo,
};
pub use registry::{Language, PluginSet, Registry, DEFAULT_PATH, DEFAULT_USER_ID};
pub use runtime::{CallError, LoadError, Plugin, PluginLimits, Runtime};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigError, LanguagesFile};

/// Where plugins are looked for when no directory is given: `plugins/` beside the
/// executable (where `scripts/build-plugins` puts them), else `/usr/lib/sidecar/plugins`.
pub fn default_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("plugins")))
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/sidecar/plugins"))
}

/// Loads the plugins of `dir` and applies `languages` (strictly: a table naming an
/// unknown plugin is an error). A missing languages file means plugin defaults only.
pub fn load_registry(
    runtime: &Arc<Runtime>,
    dir: &Path,
    languages: &Path,
    previous: Option<&PluginSet>,
) -> Result<Registry, ConfigError> {
    let file = if languages.exists() {
        LanguagesFile::load(languages)?
    } else {
        LanguagesFile::default()
    };
    let set = PluginSet::load_dir(runtime, dir, previous);
    Registry::build(set, &file, &languages.display().to_string(), true)
}
