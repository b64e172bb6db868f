//! [`Planner`]: the usual way to assemble a plan from a language's settings.
//!
//! It knows the code file's name and the placeholders, renders templates into argv,
//! and gives every command the same environment: the plugin's own variables first
//! (see [`Planner::env`]), then the language's `environment` from the settings on top
//! (so `languages.toml` can override any of them), then the command's own extras.
//! All values are rendered here, so the host receives final strings.

use crate::template::Vars;
use crate::types_ext::set_pair;
use crate::{Command, LanguageConfig, Plan, PlanError, PlanFile, PlanRequest};

/// Builds one plan. Typical use, in a plugin's `plan`:
///
/// ```
/// # use sidecar_plugin_sdk::*;
/// fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
///     let mut p = Planner::new(&config, &request)?; // code file = config.code_filename
///     p.env("PYTHONPATH", "{workdir}")?;             // plugin variables (templates)
///     p.write_code();                                // code -> scratch/<filename>
///     p.compile_from_config()?;                      // if the language has one
///     p.run_from_config()                            // + the caller's args -> Plan
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Planner<'a> {
    config: &'a LanguageConfig,
    request: &'a PlanRequest,
    filename: String,
    vars: Vars,
    env: Vec<(String, String)>,
    files: Vec<PlanFile>,
    compile: Vec<Command>,
}

impl<'a> Planner<'a> {
    /// A planner whose code file is the settings' `code-filename` (or
    /// `code.<file-extension>` when that is empty).
    pub fn new(config: &'a LanguageConfig, request: &'a PlanRequest) -> Result<Self, PlanError> {
        let filename = if config.code_filename.is_empty() {
            if config.file_extension.is_empty() {
                "code".to_string()
            } else {
                format!("code.{}", config.file_extension)
            }
        } else {
            config.code_filename.clone()
        };
        Self::with_filename(config, request, &filename)
    }

    /// A planner whose code file is `filename` (relative to the scratch dir; may
    /// contain directories, as Java packages need).
    pub fn with_filename(
        config: &'a LanguageConfig,
        request: &'a PlanRequest,
        filename: &str,
    ) -> Result<Self, PlanError> {
        validate_filename(filename)
            .map_err(|e| PlanError::unsupported(format!("code file name: {e}")))?;
        Ok(Planner {
            config,
            request,
            filename: filename.to_string(),
            vars: Vars::standard(&request.work_dir, &request.scratch_dir, filename),
            env: Vec::new(),
            files: Vec::new(),
            compile: Vec::new(),
        })
    }

    /// The language settings.
    pub fn config(&self) -> &'a LanguageConfig {
        self.config
    }

    /// The request.
    pub fn request(&self) -> &'a PlanRequest {
        self.request
    }

    /// The code file's path relative to the scratch dir.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The placeholders.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Define a plugin-specific placeholder (or redefine a standard one).
    pub fn var(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.vars.set(name, value);
        self
    }

    /// Render a placeholder-only string (no word splitting), e.g. a path.
    pub fn render(&self, text: &str) -> Result<String, PlanError> {
        self.vars
            .substitute(text)
            .map_err(|e| settings_error(self.config, "value", text, e))
    }

    /// Render a command template into argv.
    pub fn render_argv(&self, template: &str, what: &str) -> Result<Vec<String>, PlanError> {
        self.vars
            .render_argv(template)
            .map_err(|e| settings_error(self.config, what, template, e))
    }

    /// Set a plugin environment variable for every command (value is a template). The
    /// language's `environment` setting still overrides it.
    pub fn env(&mut self, name: &str, template: &str) -> Result<&mut Self, PlanError> {
        let value = self.vars.substitute(template).map_err(|e| {
            settings_error(self.config, &format!("environment {name}"), template, e)
        })?;
        set_pair(&mut self.env, name, &value);
        Ok(self)
    }

    /// Write the caller's code, unchanged, to the code file in the scratch dir.
    pub fn write_code(&mut self) -> &mut Self {
        let code = self.request.code.clone();
        self.write_code_as(code)
    }

    /// Write `content` (the code after the plugin adapted it) to the code file.
    pub fn write_code_as(&mut self, content: impl Into<Vec<u8>>) -> &mut Self {
        let file = PlanFile::scratch(&self.filename, content);
        self.add_file(file)
    }

    /// Add any file to the plan (written in order, before any command runs).
    pub fn add_file(&mut self, file: PlanFile) -> &mut Self {
        self.files.push(file);
        self
    }

    /// Copy the request's files for which `keep(path)` holds into the scratch dir at the
    /// same relative path (so that, say, a relative import of a file supplied with the
    /// code resolves next to the code file). The code file's own path is never
    /// overwritten.
    pub fn copy_request_files(&mut self, keep: impl Fn(&str) -> bool) -> &mut Self {
        self.copy_request_files_to("", keep)
    }

    /// Like [`Planner::copy_request_files`], into the scratch dir's subdirectory
    /// `prefix` (empty: the scratch dir itself).
    pub fn copy_request_files_to(
        &mut self,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> &mut Self {
        for f in &self.request.files {
            let target = if prefix.is_empty() {
                f.path.clone()
            } else {
                format!("{}/{}", prefix.trim_end_matches('/'), f.path)
            };
            if target != self.filename && keep(&f.path) && validate_filename(&target).is_ok() {
                self.files
                    .push(PlanFile::scratch(&target, f.content.clone()));
            }
        }
        self
    }

    /// Add a compile command rendered from `template`.
    pub fn compile(&mut self, template: &str) -> Result<&mut Self, PlanError> {
        let argv = self.render_argv(template, "compile command")?;
        Ok(self.compile_command(Command::new(argv)))
    }

    /// Add a compile command built by the plugin (its `env` holds only extras).
    pub fn compile_command(&mut self, command: Command) -> &mut Self {
        self.compile.push(command);
        self
    }

    /// Add the settings' compile command, if the language has one.
    pub fn compile_from_config(&mut self) -> Result<&mut Self, PlanError> {
        if let Some(template) = &self.config.compile_command {
            if !template.trim().is_empty() {
                self.compile(template)?;
            }
        }
        Ok(self)
    }

    /// Finish the plan: run `template` with the caller's arguments appended.
    pub fn run(self, template: &str) -> Result<Plan, PlanError> {
        let argv = self.render_argv(template, "run command")?;
        self.run_command(Command::new(argv))
    }

    /// Finish the plan with the settings' run command.
    pub fn run_from_config(self) -> Result<Plan, PlanError> {
        let template = self.config.run_command.clone();
        self.run(&template)
    }

    /// Finish the plan with a run command built by the plugin; the caller's arguments
    /// are appended and the environment is applied.
    pub fn run_command(self, run: Command) -> Result<Plan, PlanError> {
        let mut env = self.env.clone();
        for (name, template) in &self.config.environment {
            let value = self.vars.substitute(template).map_err(|e| {
                settings_error(self.config, &format!("environment {name}"), template, e)
            })?;
            set_pair(&mut env, name, &value);
        }
        let with_env = |mut c: Command| {
            let mut all = env.clone();
            for (n, v) in &c.env {
                set_pair(&mut all, n, v);
            }
            c.env = all;
            c
        };
        let run = run.args(self.request.args.iter().cloned());
        Ok(Plan {
            files: self.files,
            compile: self.compile.into_iter().map(with_env).collect(),
            run: with_env(run),
        })
    }
}

fn settings_error(
    config: &LanguageConfig,
    what: &str,
    template: &str,
    err: crate::TemplateError,
) -> PlanError {
    PlanError::unsupported(format!(
        "language `{}`: bad {what} {template:?}: {err}",
        config.code
    ))
}

/// Inserts `text` at the start of the code's first line, after a `#!` line if any, so
/// that the caller's line numbers do not move (a shim on line 1 of a script).
pub fn insert_on_first_line(code: &str, text: &str) -> String {
    let at = if code.starts_with("#!") {
        code.find('\n').map_or(code.len(), |i| i + 1)
    } else {
        0
    };
    let mut out = String::with_capacity(code.len() + text.len() + 1);
    out.push_str(&code[..at]);
    if at == code.len() && !code.is_empty() && !code.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(text);
    out.push_str(&code[at..]);
    out
}

/// Whether the code is empty or only whitespace.
pub fn is_blank(code: &str) -> bool {
    code.trim().is_empty()
}

/// `invalid-input` when the code is blank. Compiled languages use it: their tools
/// would otherwise fail with a confusing message (a missing `main`, a linker error).
pub fn require_code(request: &PlanRequest) -> Result<(), PlanError> {
    if is_blank(&request.code) {
        Err(PlanError::invalid(
            "the code is empty: there is nothing to compile",
        ))
    } else {
        Ok(())
    }
}

/// Check a relative path for a planned file: not empty, not absolute, no `.`/`..`/empty
/// components, no backslashes or NUL bytes.
pub fn validate_filename(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".to_string());
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} is absolute"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(format!("{path:?} contains a backslash or a NUL byte"));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("{path:?} has an empty, `.` or `..` component"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputFile;

    fn request() -> PlanRequest {
        PlanRequest {
            code: "print(1)".into(),
            files: vec![],
            args: vec!["a b".into(), "c".into()],
            has_stdin: false,
            work_dir: "/w".into(),
            scratch_dir: "/s".into(),
        }
    }

    #[test]
    fn environment_layers() {
        let config = LanguageConfig::new("x", "X", "x", "code.x", "x {file}")
            .compile("xc -o {out} {file}")
            .env("B", "config-{stem}")
            .env("C", "c");
        let req = request();
        let mut p = Planner::new(&config, &req).unwrap();
        p.env("A", "{workdir}").unwrap().env("B", "plugin").unwrap();
        p.write_code();
        p.compile_from_config().unwrap();
        let plan = p
            .run_command(Command::new(["x", "/s/code.x"]).env("C", "run"))
            .unwrap();
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            plan.compile[0].env,
            pairs(&[("A", "/w"), ("B", "config-code"), ("C", "c")])
        );
        assert_eq!(
            plan.run.env,
            pairs(&[("A", "/w"), ("B", "config-code"), ("C", "run")])
        );
        assert_eq!(plan.compile[0].argv, ["xc", "-o", "/s/code", "/s/code.x"]);
        assert_eq!(plan.run.argv, ["x", "/s/code.x", "a b", "c"]);
    }

    #[test]
    fn bad_templates_name_the_language_and_the_template() {
        let config = LanguageConfig::new("x", "X", "x", "code.x", "x {fil}");
        let req = request();
        let err = Planner::new(&config, &req)
            .unwrap()
            .run_from_config()
            .unwrap_err();
        assert!(matches!(err, PlanError::Unsupported(_)));
        assert!(
            err.message().starts_with(
                "language `x`: bad run command \"x {fil}\": unknown placeholder `{fil}`"
            ),
            "{}",
            err.message()
        );
    }

    #[test]
    fn default_filename() {
        let config = LanguageConfig::new("x", "X", "xx", "", "x {file}");
        let req = request();
        assert_eq!(Planner::new(&config, &req).unwrap().filename(), "code.xx");
        let config = LanguageConfig::new("x", "X", "xx", "../evil", "x {file}");
        assert!(Planner::new(&config, &req).is_err());
    }

    #[test]
    fn copies_request_files_but_never_the_code_file() {
        let config = LanguageConfig::new("x", "X", "x", "code.x", "x {file}");
        let mut req = request();
        req.files = vec![
            InputFile {
                path: "code.x".into(),
                content: b"old".to_vec(),
            },
            InputFile {
                path: "lib/util.x".into(),
                content: b"u".to_vec(),
            },
            InputFile {
                path: "data.csv".into(),
                content: b"d".to_vec(),
            },
        ];
        let mut p = Planner::new(&config, &req).unwrap();
        p.write_code().copy_request_files(|p| p.ends_with(".x"));
        let plan = p.run_from_config().unwrap();
        let paths: Vec<_> = plan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["code.x", "lib/util.x"]);
    }

    #[test]
    fn filenames() {
        assert!(validate_filename("a/b.java").is_ok());
        for bad in ["", "/a", "a/../b", "./a", "a//b", "a/", "a\\b", ".."] {
            assert!(validate_filename(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blank_code() {
        let mut req = request();
        assert!(require_code(&req).is_ok());
        req.code = " \n\t".into();
        assert_eq!(
            require_code(&req),
            Err(PlanError::InvalidInput(
                "the code is empty: there is nothing to compile".into()
            ))
        );
    }
}
