//! The registry: which plugins are loaded and which languages they serve, after
//! `languages.toml` is applied.
//!
//! Rules (documented in docs/plugins.md and docs/operations.md):
//! - Plugins are loaded in file-name order. When two plugins have the same name, or
//!   describe the same language code, the first by file name wins and a warning is
//!   logged. An explicit `plugin = "..."` in `languages.toml` always decides.
//! - A `[languages.X]` table without `plugin` uses the plugin that describes `X`, else
//!   the plugin named `X`.
//! - Settings: the plugin's defaults, overridden field by field by the table; the
//!   `environment` and `options` tables are merged key by key.
//! - A language a plugin describes but `languages.toml` does not mention is served with
//!   the plugin's defaults.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::model::LanguageSettings;
use super::runtime::{LoadError, Plugin, Runtime};
use crate::config::languages::{option_to_string, ConfigError, LanguageEntry, LanguagesFile};

/// The uid user code runs as when no `user_id` is configured.
pub const DEFAULT_USER_ID: u32 = 65532;

/// The `PATH` given to user code when the language sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A language ready to be served.
#[derive(Debug)]
pub struct Language {
    pub settings: LanguageSettings,
    pub plugin: Arc<Plugin>,
}

/// A language that is configured but cannot be served, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LanguageError {
    pub code: String,
    pub error: String,
}

/// Every plugin file found in a directory, loaded or not.
#[derive(Debug, Default, Clone)]
pub struct PluginSet {
    /// Loaded plugins, in file-name order.
    pub plugins: Vec<Arc<Plugin>>,
    /// Files that could not be loaded.
    pub errors: Vec<LoadError>,
    /// The sha256 of each file that failed, so an unchanged bad file is not loaded
    /// again on every reload (a plugin whose `describe()` hangs would cost a full
    /// plugin timeout each time).
    failed: Vec<(PathBuf, String)>,
    /// The directory itself could not be read, though it exists (too many open files,
    /// an I/O error): the set is empty for that reason, not because it holds nothing.
    pub unreadable: bool,
}

impl PluginSet {
    /// Loads every `*.wasm` file of `dir` (not recursively), in file-name order. A bad
    /// file is recorded in `errors` and the others still load. `previous` lets unchanged
    /// files (same path and sha256) be reused without reloading.
    pub fn load_dir(runtime: &Arc<Runtime>, dir: &Path, previous: Option<&PluginSet>) -> PluginSet {
        let mut set = PluginSet::default();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                .collect(),
            Err(e) => {
                set.unreadable = e.kind() != std::io::ErrorKind::NotFound;
                set.errors.push(LoadError {
                    file: dir.display().to_string(),
                    message: format!("cannot read the plugins directory: {e}"),
                });
                return set;
            }
        };
        files.sort();
        for path in files {
            let sha = previous.and_then(|_| file_sha256(&path));
            let known_good = previous.and_then(|p| p.plugins.iter().find(|p| p.path == path));
            if let (Some(old), Some(sha)) = (known_good, &sha) {
                if &old.sha256 == sha {
                    set.plugins.push(old.clone());
                    continue;
                }
            }
            let known_bad = previous.and_then(|p| {
                let sha = sha.as_ref()?;
                p.failed.iter().find(|(f, s)| *f == path && s == sha)?;
                p.errors
                    .iter()
                    .find(|e| e.file == path.display().to_string())
            });
            let result = match known_bad {
                Some(e) => Err(e.clone()),
                None => runtime.load(&path).map(Arc::new),
            };
            match result {
                Ok(plugin) => set.plugins.push(plugin),
                Err(e) => {
                    // A bad replacement of a good plugin keeps the good one in force.
                    if let Some(old) = known_good {
                        set.plugins.push(old.clone());
                    }
                    if let Some(sha) = sha.or_else(|| file_sha256(&path)) {
                        set.failed.push((path.clone(), sha));
                    }
                    set.errors.push(e);
                }
            }
        }
        set
    }
}

fn file_sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(sha2::Sha256::digest(&bytes)))
}

/// The languages being served.
#[derive(Debug, Default)]
pub struct Registry {
    languages: BTreeMap<String, Arc<Language>>,
    index: HashMap<String, String>,
    pub plugins: PluginSet,
    /// Configured languages that cannot be served.
    pub language_errors: Vec<LanguageError>,
    /// Ambiguities resolved by rule (duplicate names or codes).
    pub warnings: Vec<String>,
}

impl Registry {
    /// Applies `file` (named `file_name` in errors) to the plugins. In `strict` mode a
    /// table naming a plugin that is not loaded is an error (used when the
    /// configuration itself is loaded); otherwise the language is listed in
    /// `language_errors` (used when a plugin disappears later).
    pub fn build(
        plugins: PluginSet,
        file: &LanguagesFile,
        file_name: &str,
        strict: bool,
    ) -> Result<Registry, ConfigError> {
        let mut warnings = Vec::new();
        let mut by_name: BTreeMap<&str, &Arc<Plugin>> = BTreeMap::new();
        let mut described: BTreeMap<&str, (&Arc<Plugin>, &LanguageSettings)> = BTreeMap::new();
        for plugin in &plugins.plugins {
            match by_name.get(plugin.info.name.as_str()) {
                Some(first) => warnings.push(format!(
                    "plugins {} and {} are both named `{}`: using {} (first by file name)",
                    first.path.display(),
                    plugin.path.display(),
                    plugin.info.name,
                    first.path.display()
                )),
                None => {
                    by_name.insert(&plugin.info.name, plugin);
                }
            }
            for lang in &plugin.info.languages {
                match described.get(lang.code.as_str()) {
                    Some((first, _)) => warnings.push(format!(
                        "plugins `{}` ({}) and `{}` ({}) both serve `{}`: using `{}` (first by file name; set `plugin` in languages.toml to choose)",
                        first.info.name,
                        first.path.display(),
                        plugin.info.name,
                        plugin.path.display(),
                        lang.code,
                        first.info.name
                    )),
                    None => {
                        described.insert(&lang.code, (plugin, lang));
                    }
                }
            }
        }

        let mut registry = Registry::default();
        let err = |table: &str, field: Option<&str>, message: String| ConfigError {
            file: file_name.to_string(),
            table: Some(table.to_string()),
            field: field.map(str::to_string),
            message,
        };
        let loaded = || by_name.keys().copied().collect::<Vec<_>>().join(", ");

        for (code, entry) in &file.languages {
            let plugin = match &entry.plugin {
                Some(name) => match by_name.get(name.as_str()) {
                    Some(p) => *p,
                    None => {
                        let message =
                            format!("no plugin named `{name}` is loaded (loaded: {})", loaded());
                        if strict {
                            return Err(err(code, Some("plugin"), message));
                        }
                        registry.language_errors.push(LanguageError {
                            code: code.clone(),
                            error: err(code, Some("plugin"), message).to_string(),
                        });
                        continue;
                    }
                },
                None => match described
                    .get(code.as_str())
                    .map(|(p, _)| *p)
                    .or_else(|| by_name.get(code.as_str()).copied())
                {
                    Some(p) => p,
                    None => {
                        let message = format!(
                            "no loaded plugin serves `{code}` and none is named so: set `plugin` (loaded: {})",
                            loaded()
                        );
                        if strict {
                            return Err(err(code, Some("plugin"), message));
                        }
                        registry.language_errors.push(LanguageError {
                            code: code.clone(),
                            error: err(code, Some("plugin"), message).to_string(),
                        });
                        continue;
                    }
                },
            };
            let defaults = plugin.info.languages.iter().find(|l| &l.code == code);
            if defaults.is_none() {
                for (field, value) in [
                    ("run_command", &entry.run_command),
                    ("code_filename", &entry.code_filename),
                ] {
                    if value.is_none() {
                        return Err(err(
                            code,
                            Some(field),
                            format!("plugin `{}` has no defaults for `{code}`, so `{field}` is required", plugin.info.name),
                        ));
                    }
                }
            }
            let settings = merge(code, defaults, entry);
            registry.insert(settings, plugin.clone(), &mut warnings);
        }
        for (code, (plugin, defaults)) in &described {
            if !file.languages.contains_key(*code) {
                registry.insert((*defaults).clone(), (*plugin).clone(), &mut warnings);
            }
        }
        // Toml-configured languages were inserted first, so their codes and aliases win;
        // clashes among plugin defaults were reported as warnings.
        registry.plugins = plugins;
        registry.warnings = warnings;
        Ok(registry)
    }

    fn insert(
        &mut self,
        mut settings: LanguageSettings,
        plugin: Arc<Plugin>,
        warnings: &mut Vec<String>,
    ) {
        let code = settings.code.clone();
        if self.index.contains_key(&code) {
            warnings.push(format!(
                "language `{code}` of plugin `{}` clashes with an alias of `{}`: not served",
                plugin.info.name, self.index[&code]
            ));
            return;
        }
        self.index.insert(code.clone(), code.clone());
        settings.aliases.retain(|alias| {
            let alias = alias.to_lowercase();
            match self.index.get(&alias) {
                Some(owner) if owner != &code => {
                    warnings.push(format!(
                        "alias `{alias}` of `{code}` is already used by `{owner}`: ignored"
                    ));
                    false
                }
                _ => {
                    self.index.insert(alias, code.clone());
                    true
                }
            }
        });
        self.languages
            .insert(code, Arc::new(Language { settings, plugin }));
    }

    /// Finds a language by code or alias (case-insensitive).
    pub fn resolve(&self, name: &str) -> Option<Arc<Language>> {
        let code = self.index.get(&name.to_lowercase())?;
        self.languages.get(code).cloned()
    }

    /// Every language served, by code.
    pub fn languages(&self) -> impl Iterator<Item = &Arc<Language>> {
        self.languages.values()
    }

    /// The codes served, sorted.
    pub fn codes(&self) -> Vec<String> {
        self.languages.keys().cloned().collect()
    }
}

/// Applies a `languages.toml` table on top of a plugin's defaults.
fn merge(
    code: &str,
    defaults: Option<&LanguageSettings>,
    entry: &LanguageEntry,
) -> LanguageSettings {
    let mut s = defaults.cloned().unwrap_or_else(|| LanguageSettings {
        code: code.to_string(),
        name: code.to_string(),
        aliases: Vec::new(),
        file_extension: String::new(),
        code_filename: String::new(),
        compile_command: None,
        run_command: String::new(),
        environment: Vec::new(),
        timeout_multiplier: 1.0,
        memory_multiplier: 1.0,
        options: Vec::new(),
        image: None,
        user_id: DEFAULT_USER_ID,
        network: false,
    });
    s.code = code.to_string();
    let e = entry.clone();
    if let Some(v) = e.name {
        s.name = v;
    }
    if let Some(v) = e.aliases {
        s.aliases = v.into_iter().map(|a| a.to_lowercase()).collect();
    }
    if let Some(v) = e.file_extension {
        s.file_extension = v.trim_start_matches('.').to_string();
    }
    if let Some(v) = e.code_filename {
        s.code_filename = v;
    }
    if let Some(v) = e.compile_command {
        s.compile_command = (!v.trim().is_empty()).then_some(v);
    }
    if let Some(v) = e.run_command {
        s.run_command = v;
    }
    if let Some(v) = e.timeout_multiplier {
        s.timeout_multiplier = v;
    }
    if let Some(v) = e.memory_multiplier {
        s.memory_multiplier = v;
    }
    if let Some(v) = e.image {
        s.image = Some(v);
    }
    if let Some(v) = e.user_id {
        s.user_id = v;
    }
    if let Some(v) = e.network {
        s.network = v;
    }
    for (k, v) in e.environment.into_iter().flatten() {
        upsert(&mut s.environment, k, v);
    }
    for (k, v) in e.options.into_iter().flatten() {
        upsert(&mut s.options, k, option_to_string(&v));
    }
    if s.file_extension.is_empty() {
        if let Some((_, ext)) = s.code_filename.rsplit_once('.') {
            s.file_extension = ext.to_string();
        }
    }
    s
}

fn upsert(pairs: &mut Vec<(String, String)>, key: String, value: String) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key, value)),
    }
}

impl LanguageSettings {
    /// The programs this language needs: the first word of its compile and run
    /// templates, when it is a plain program name (not a placeholder).
    pub fn programs(&self) -> Vec<String> {
        self.compile_command
            .iter()
            .chain(std::iter::once(&self.run_command))
            .filter_map(|t| t.split_whitespace().next())
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .filter(|w| !w.is_empty() && !w.contains('{'))
            .map(str::to_string)
            .collect()
    }

    /// The `PATH` user code of this language sees.
    pub fn path_env(&self) -> &str {
        self.environment
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH)
    }

    /// The first program this language needs that is not on its `PATH`, if any.
    pub fn missing_program(&self) -> Option<String> {
        self.programs()
            .into_iter()
            .find(|p| find_program(p, self.path_env()).is_none())
    }
}

/// Looks a program up on a `PATH` string, as `execvp` would.
pub fn find_program(program: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> LanguageSettings {
        LanguageSettings {
            code: "py".into(),
            name: "Python".into(),
            aliases: vec!["python".into()],
            file_extension: "py".into(),
            code_filename: "code.py".into(),
            compile_command: None,
            run_command: "python3 -u {file}".into(),
            environment: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            timeout_multiplier: 1.0,
            memory_multiplier: 1.0,
            options: vec![],
            image: None,
            user_id: DEFAULT_USER_ID,
            network: false,
        }
    }

    #[test]
    fn toml_overrides_field_by_field_and_tables_key_by_key() {
        let file = LanguagesFile::parse(
            "[languages.py]\nrun_command = \"/usr/bin/python3 {file}\"\nenvironment = { B = \"3\", C = \"4\" }\ntimeout_multiplier = 2.0\nnetwork = true\n[languages.py.options]\nx = 5\n",
            "l.toml",
        )
        .unwrap();
        let s = merge("py", Some(&defaults()), &file.languages["py"]);
        assert_eq!(s.run_command, "/usr/bin/python3 {file}");
        assert_eq!(s.name, "Python");
        assert_eq!(s.aliases, ["python"]);
        assert_eq!(
            s.environment,
            [
                ("A".into(), "1".into()),
                ("B".into(), "3".into()),
                ("C".into(), "4".into())
            ]
        );
        assert_eq!(s.timeout_multiplier, 2.0);
        assert!(s.network);
        assert_eq!(s.options, [("x".into(), "5".into())]);
    }

    #[test]
    fn programs_skip_placeholders() {
        let mut s = defaults();
        s.compile_command = Some("gcc {file} -o {out}".into());
        s.run_command = "{out}".into();
        assert_eq!(s.programs(), ["gcc"]);
        s.run_command = "definitely-not-a-program-xyz {file}".into();
        assert_eq!(
            s.missing_program().as_deref(),
            Some("definitely-not-a-program-xyz")
        );
    }

    #[test]
    fn find_program_walks_path() {
        assert!(find_program("sh", DEFAULT_PATH).is_some());
        assert!(find_program("no-such-program-xyz", DEFAULT_PATH).is_none());
        assert!(find_program("/bin/sh", "").is_some());
    }
}
