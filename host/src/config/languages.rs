//! `languages.toml`: parsing, validation, and merging with the plugins' defaults.
//!
//! The file is the single source of truth for every language's settings. A plugin's
//! `describe()` gives defaults; each `[languages.<code>]` table overrides them field by
//! field (the `environment` and `options` tables key by key). Errors name the file, the
//! table and the field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One `[languages.<code>]` table, exactly as written (every field optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LanguageEntry {
    pub plugin: Option<String>,
    pub name: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub image: Option<String>,
    pub user_id: Option<u32>,
    pub file_extension: Option<String>,
    pub code_filename: Option<String>,
    pub compile_command: Option<String>,
    pub run_command: Option<String>,
    pub environment: Option<BTreeMap<String, String>>,
    pub timeout_multiplier: Option<f64>,
    pub memory_multiplier: Option<f64>,
    pub network: Option<bool>,
    pub options: Option<toml::Table>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LanguagesFile {
    #[serde(default)]
    pub languages: BTreeMap<String, LanguageEntry>,
}

/// A configuration error that says where it is: file, table and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    pub file: String,
    pub table: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(table) = &self.table {
            write!(f, ": [languages.{table}]")?;
        }
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl LanguagesFile {
    /// Reads and validates a file. A missing file is an error: the caller decides
    /// whether an empty configuration is acceptable.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            table: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let parsed: LanguagesFile = toml::from_str(text).map_err(|e| {
            let (table, field) = locate(text, e.span());
            ConfigError {
                file: file.to_string(),
                table,
                field,
                message: e.message().to_string(),
            }
        })?;
        parsed.validate(file)?;
        Ok(parsed)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |table: &str, field: &str, message: String| ConfigError {
            file: file.to_string(),
            table: Some(table.to_string()),
            field: Some(field.to_string()),
            message,
        };
        let mut names: HashMap<String, String> = HashMap::new();
        for code in self.languages.keys() {
            if !valid_code(code) {
                return Err(ConfigError {
                    file: file.to_string(),
                    table: Some(code.clone()),
                    field: None,
                    message:
                        "a language code must be 1-32 characters of a-z, 0-9, `_`, `-`, `+`, `.`"
                            .into(),
                });
            }
            names.insert(code.to_lowercase(), code.clone());
        }
        for (code, entry) in &self.languages {
            for alias in entry.aliases.iter().flatten() {
                let key = alias.to_lowercase();
                if !valid_code(&key) {
                    return Err(err(
                        code,
                        "aliases",
                        format!(
                            "alias `{alias}` is not a valid name (a-z, 0-9, `_`, `-`, `+`, `.`)"
                        ),
                    ));
                }
                if let Some(owner) = names.get(&key) {
                    let what = if owner == code && key == code.to_lowercase() {
                        "is the language's own code".to_string()
                    } else {
                        format!("is already used by [languages.{owner}]")
                    };
                    return Err(err(code, "aliases", format!("alias `{alias}` {what}")));
                }
                names.insert(key, code.clone());
            }
            for (field, value) in [
                ("timeout_multiplier", entry.timeout_multiplier),
                ("memory_multiplier", entry.memory_multiplier),
            ] {
                if let Some(v) = value {
                    if !(v.is_finite() && v > 0.0 && v <= 100.0) {
                        return Err(err(
                            code,
                            field,
                            format!("must be a number above 0 and at most 100, got {v}"),
                        ));
                    }
                }
            }
            for (field, value) in [
                ("run_command", &entry.run_command),
                ("code_filename", &entry.code_filename),
                ("name", &entry.name),
                ("plugin", &entry.plugin),
            ] {
                if matches!(value, Some(v) if v.trim().is_empty()) {
                    return Err(err(code, field, "must not be empty".into()));
                }
            }
            if let Some(name) = &entry.code_filename {
                if name.contains('/') || name == "." || name == ".." {
                    return Err(err(
                        code,
                        "code_filename",
                        format!("`{name}` must be a plain file name, without `/`"),
                    ));
                }
            }
            for (key, value) in entry.environment.iter().flatten() {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return Err(err(
                        code,
                        "environment",
                        format!("`{key}` is not a valid variable name"),
                    ));
                }
                if value.contains('\0') {
                    return Err(err(
                        code,
                        "environment",
                        format!("the value of `{key}` contains a NUL byte"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Language codes and aliases: short, lowercase, URL- and file-name-safe.
pub fn valid_code(code: &str) -> bool {
    (1..=32).contains(&code.len())
        && code.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'+' | b'.')
        })
}

/// Renders a TOML option value as the string handed to plugins: strings verbatim, other
/// values in TOML syntax.
pub fn option_to_string(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Finds the `[languages.X]` table and field a byte offset falls in, for error messages.
fn locate(text: &str, span: Option<std::ops::Range<usize>>) -> (Option<String>, Option<String>) {
    let Some(span) = span else {
        return (None, None);
    };
    let mut table = None;
    let mut field = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > span.start {
            break;
        }
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|t| t.split(']').next()) {
            let header = header.trim_matches(|c| c == '[' || c == ' ');
            let mut parts = header.splitn(3, '.');
            if parts.next() == Some("languages") {
                table = parts.next().map(|s| s.trim_matches('"').to_string());
                field = parts.next().map(str::to_string);
            }
        } else if let Some((key, _)) = trimmed.split_once('=') {
            if !trimmed.starts_with('#') && offset + line.len() > span.start {
                let key = key.trim().trim_matches('"').to_string();
                field = Some(match field.take() {
                    Some(parent) if parent == "options" || parent == "environment" => {
                        format!("{parent}.{key}")
                    }
                    _ => key,
                });
            }
        }
        offset += line.len();
    }
    (table, field)
}

/// Where `languages.toml` is looked for when no path is given: `./languages.toml`, then
/// `/etc/sidecar/languages.toml`.
pub fn default_path() -> PathBuf {
    let local = PathBuf::from("languages.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/sidecar/languages.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_entry() {
        let f = LanguagesFile::parse(
            r#"
[languages.py]
plugin = "py"
name = "Python"
aliases = ["python", "python3"]
run_command = "python3 -u {file}"
environment = { PYTHONUNBUFFERED = "1" }
timeout_multiplier = 1.5
[languages.py.options]
flag = true
"#,
            "languages.toml",
        )
        .unwrap();
        let py = &f.languages["py"];
        assert_eq!(py.aliases.as_deref().unwrap(), ["python", "python3"]);
        assert_eq!(
            option_to_string(&py.options.as_ref().unwrap()["flag"]),
            "true"
        );
    }

    #[test]
    fn unknown_field_names_file_table_and_field() {
        let e = LanguagesFile::parse(
            "[languages.py]\nname = \"P\"\nrun_comand = \"x\"\n",
            "l.toml",
        )
        .unwrap_err();
        assert_eq!(e.table.as_deref(), Some("py"));
        assert_eq!(e.field.as_deref(), Some("run_comand"));
        let text = e.to_string();
        assert!(
            text.starts_with("l.toml: [languages.py] field `run_comand`"),
            "{text}"
        );
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn duplicate_alias_is_an_error() {
        let e = LanguagesFile::parse(
            "[languages.py]\naliases = [\"python\"]\n[languages.py2]\naliases = [\"python\"]\n",
            "l.toml",
        )
        .unwrap_err();
        assert_eq!(e.table.as_deref(), Some("py2"));
        assert_eq!(e.field.as_deref(), Some("aliases"));
        assert!(e.message.contains("already used by [languages.py]"), "{e}");
    }

    #[test]
    fn alias_equal_to_another_code_is_an_error() {
        let e = LanguagesFile::parse(
            "[languages.js]\n[languages.ts]\naliases = [\"js\"]\n",
            "l.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("[languages.ts] field `aliases`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let e = LanguagesFile::parse("[languages.py]\ntimeout_multiplier = -1.0\n", "l.toml")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timeout_multiplier"));
        let e = LanguagesFile::parse("[languages.py]\ncode_filename = \"../x.py\"\n", "l.toml")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("code_filename"));
        let e = LanguagesFile::parse("[languages.Py]\n", "l.toml").unwrap_err();
        assert_eq!(e.table.as_deref(), Some("Py"));
        let e = LanguagesFile::parse("[languages.py]\nuser_id = \"x\"\n", "l.toml").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("user_id"));
    }

    #[test]
    fn nul_in_an_environment_value_is_an_error() {
        let e = LanguagesFile::parse(
            "[languages.py]\nenvironment = { X = \"a\\u0000b\" }\n",
            "l.toml",
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("environment"));
        assert!(e.message.contains("NUL"), "{e}");
    }

    #[test]
    fn unknown_top_level_table_is_an_error() {
        let e = LanguagesFile::parse("[language.py]\n", "l.toml").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
