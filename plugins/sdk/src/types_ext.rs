//! Constructors and builder methods on the WIT-generated types, so plugins write
//! `Command::new(argv).env("K", "v")` instead of struct literals.

use crate::{
    Command, FileLocation, LanguageConfig, LanguageInfo, Plan, PlanError, PlanFile, PluginInfo,
};

impl PluginInfo {
    /// A plugin serving no languages yet; add them with [`PluginInfo::language`].
    pub fn new(name: &str, version: &str) -> Self {
        PluginInfo {
            name: name.to_string(),
            version: version.to_string(),
            languages: Vec::new(),
        }
    }

    /// Add a language with its defaults and aliases.
    pub fn language(mut self, defaults: LanguageConfig, aliases: &[&str]) -> Self {
        self.languages.push(LanguageInfo {
            defaults,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        });
        self
    }
}

impl LanguageConfig {
    /// An interpreted language (no compile step), multipliers 1.0, no environment and
    /// no options.
    pub fn new(code: &str, name: &str, extension: &str, filename: &str, run: &str) -> Self {
        LanguageConfig {
            code: code.to_string(),
            name: name.to_string(),
            file_extension: extension.to_string(),
            code_filename: filename.to_string(),
            compile_command: None,
            run_command: run.to_string(),
            environment: Vec::new(),
            timeout_multiplier: 1.0,
            memory_multiplier: 1.0,
            options: Vec::new(),
        }
    }

    /// Set the compile command template.
    pub fn compile(mut self, template: &str) -> Self {
        self.compile_command = Some(template.to_string());
        self
    }

    /// Set the run command template.
    pub fn run(mut self, template: &str) -> Self {
        self.run_command = template.to_string();
        self
    }

    /// Add (or replace) an environment variable (value may use placeholders).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        set_pair(&mut self.environment, name, value);
        self
    }

    /// Add (or replace) an option.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        set_pair(&mut self.options, name, value);
        self
    }

    /// Set the timeout and memory multipliers.
    pub fn multipliers(mut self, timeout: f64, memory: f64) -> Self {
        self.timeout_multiplier = timeout;
        self.memory_multiplier = memory;
        self
    }

    /// Set the code file name.
    pub fn filename(mut self, filename: &str) -> Self {
        self.code_filename = filename.to_string();
        self
    }
}

impl PlanFile {
    /// A file relative to the scratch dir (the usual place for sources).
    pub fn scratch(path: &str, content: impl Into<Vec<u8>>) -> Self {
        PlanFile {
            path: path.to_string(),
            location: FileLocation::Scratch,
            content: content.into(),
            executable: false,
        }
    }

    /// A file relative to the work dir (the caller sees it afterwards).
    pub fn work_dir(path: &str, content: impl Into<Vec<u8>>) -> Self {
        PlanFile {
            location: FileLocation::WorkDir,
            ..PlanFile::scratch(path, content)
        }
    }

    /// Mark the file executable.
    pub fn executable(mut self) -> Self {
        self.executable = true;
        self
    }
}

impl Command {
    /// A command with no extra environment, in its default directory.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Add (or replace) an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        set_pair(&mut self.env, name, value);
        self
    }

    /// Set the working directory (absolute).
    pub fn cwd(mut self, dir: &str) -> Self {
        self.cwd = Some(dir.to_string());
        self
    }

    /// Append arguments (the caller's program arguments, for instance).
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }
}

impl Plan {
    /// A plan that only runs `run`.
    pub fn new(run: Command) -> Self {
        Plan {
            files: Vec::new(),
            compile: Vec::new(),
            run,
        }
    }
}

impl PlanError {
    /// The code or files cannot be run as given.
    pub fn invalid(message: impl Into<String>) -> Self {
        PlanError::InvalidInput(message.into())
    }

    /// The request (or the language settings) ask for something the plugin does not do.
    pub fn unsupported(message: impl Into<String>) -> Self {
        PlanError::Unsupported(message.into())
    }

    /// The message, whatever the case.
    pub fn message(&self) -> &str {
        match self {
            PlanError::InvalidInput(m) | PlanError::Unsupported(m) => m,
        }
    }
}

/// Set `name` in an ordered list of pairs: replace the value in place if present,
/// append otherwise.
pub(crate) fn set_pair(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    match pairs.iter_mut().find(|(n, _)| n == name) {
        Some(pair) => pair.1 = value.to_string(),
        None => pairs.push((name.to_string(), value.to_string())),
    }
}
