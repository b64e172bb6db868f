//! The host's own model of languages and plans, independent of any WIT version.
//!
//! Bindings of each interface version convert to and from these types, so the rest of
//! the host never depends on which version a plugin was built against.

use serde::Serialize;

/// A language's settings after `languages.toml` is applied on top of the plugin's
/// defaults. The first fields mirror the WIT `language-config`; the rest are host-only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LanguageSettings {
    pub code: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub file_extension: String,
    pub code_filename: String,
    pub compile_command: Option<String>,
    pub run_command: String,
    pub environment: Vec<(String, String)>,
    pub timeout_multiplier: f64,
    pub memory_multiplier: f64,
    pub options: Vec<(String, String)>,
    /// Container image, for orchestrators.
    pub image: Option<String>,
    /// The uid user code runs as when the sidecar runs as root.
    pub user_id: u32,
    /// Whether user code may use the network.
    pub network: bool,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub languages: Vec<LanguageSettings>,
}

/// One execution request, as handed to a plugin.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub code: String,
    pub files: Vec<(String, Vec<u8>)>,
    pub args: Vec<String>,
    pub has_stdin: bool,
    pub work_dir: String,
    pub scratch_dir: String,
}

/// Where a planned file goes.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FileLocation {
    Scratch,
    WorkDir,
}

/// A file the plan writes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanFile {
    pub path: String,
    pub location: FileLocation,
    #[serde(serialize_with = "content_as_text")]
    pub content: Vec<u8>,
    pub executable: bool,
}

/// A process to start (no implicit shell).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

/// A plugin's answer: files, compile commands, one run command.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub files: Vec<PlanFile>,
    pub compile: Vec<PlanCommand>,
    pub run: PlanCommand,
}

/// Why a plugin refused to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRefusal {
    InvalidInput(String),
    Unsupported(String),
}

impl std::fmt::Display for PlanRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanRefusal::InvalidInput(m) => write!(f, "invalid input: {m}"),
            PlanRefusal::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

fn content_as_text<S: serde::Serializer>(content: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(content))
}

impl Plan {
    /// Checks what the host relies on: non-empty argv, relative file paths without `..`,
    /// absolute working directories. The message says what the plugin must change.
    pub fn validate(&self) -> Result<(), String> {
        for (i, c) in self.compile.iter().enumerate() {
            check_command(c, &format!("compile command #{}", i + 1))?;
        }
        check_command(&self.run, "run command")?;
        for f in &self.files {
            let p = std::path::Path::new(&f.path);
            let bad = f.path.is_empty()
                || p.is_absolute()
                || f.path.contains('\0')
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)));
            if bad {
                return Err(format!(
                    "plan file path `{}` must be relative, without `..` or `.` components",
                    f.path
                ));
            }
        }
        Ok(())
    }
}

fn check_command(c: &PlanCommand, what: &str) -> Result<(), String> {
    match c.argv.first() {
        None => {
            return Err(format!(
                "the {what} has an empty argv: put the program to start in argv[0] (it is looked up on the command's PATH) and its arguments after it"
            ))
        }
        Some(p) if p.is_empty() => {
            return Err(format!("the {what} has an empty program name (argv[0])"))
        }
        _ => {}
    }
    if c.argv.iter().any(|a| a.contains('\0')) {
        return Err(format!("the {what} has an argument containing a NUL byte"));
    }
    if let Some(cwd) = &c.cwd {
        if !cwd.starts_with('/') {
            return Err(format!(
                "the {what} has a relative cwd `{cwd}`: it must be absolute"
            ));
        }
    }
    for (k, v) in &c.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!(
                "the {what} sets an invalid environment variable name `{k}`"
            ));
        }
        if v.contains('\0') {
            return Err(format!(
                "the {what} sets `{k}` to a value containing a NUL byte"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(env: &[(&str, &str)]) -> Plan {
        Plan {
            files: Vec::new(),
            compile: Vec::new(),
            run: PlanCommand {
                argv: vec!["true".into()],
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                cwd: None,
            },
        }
    }

    #[test]
    fn nul_in_an_environment_value_is_an_invalid_plan() {
        assert!(plan(&[("A", "1")]).validate().is_ok());
        let e = plan(&[("A", "a\0b")]).validate().unwrap_err();
        assert!(e.contains("`A`") && e.contains("NUL"), "{e}");
    }
}
