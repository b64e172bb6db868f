//! Bindings for `sidecar:language@0.1.0` and their conversion to the host's model.
//!
//! Each supported interface version gets a module like this one; a later version adds
//! a sibling module and old plugins keep loading through this one.

use super::model;

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "language-plugin",
    // Called from async code on the runtime's workers (see plugins/runtime.rs).
    exports: { default: async },
});

pub use self::sidecar::language::types;

/// The WIT package this module binds.
pub const PACKAGE: &str = "sidecar:language";
/// Its version.
pub const VERSION: &str = "0.1.0";

impl From<types::LanguageConfig> for model::LanguageSettings {
    fn from(c: types::LanguageConfig) -> Self {
        model::LanguageSettings {
            code: c.code,
            name: c.name,
            aliases: Vec::new(),
            file_extension: c.file_extension,
            code_filename: c.code_filename,
            compile_command: c.compile_command,
            run_command: c.run_command,
            environment: c.environment,
            timeout_multiplier: c.timeout_multiplier,
            memory_multiplier: c.memory_multiplier,
            options: c.options,
            image: None,
            user_id: crate::plugins::DEFAULT_USER_ID,
            network: false,
        }
    }
}

impl From<&model::LanguageSettings> for types::LanguageConfig {
    fn from(s: &model::LanguageSettings) -> Self {
        types::LanguageConfig {
            code: s.code.clone(),
            name: s.name.clone(),
            file_extension: s.file_extension.clone(),
            code_filename: s.code_filename.clone(),
            compile_command: s.compile_command.clone(),
            run_command: s.run_command.clone(),
            environment: s.environment.clone(),
            timeout_multiplier: s.timeout_multiplier,
            memory_multiplier: s.memory_multiplier,
            options: s.options.clone(),
        }
    }
}

impl From<types::PluginInfo> for model::PluginInfo {
    fn from(p: types::PluginInfo) -> Self {
        model::PluginInfo {
            name: p.name,
            version: p.version,
            languages: p
                .languages
                .into_iter()
                .map(|l| model::LanguageSettings {
                    aliases: l.aliases,
                    ..l.defaults.into()
                })
                .collect(),
        }
    }
}

impl From<model::PlanRequest> for types::PlanRequest {
    fn from(r: model::PlanRequest) -> Self {
        types::PlanRequest {
            code: r.code,
            files: r
                .files
                .into_iter()
                .map(|(path, content)| types::InputFile { path, content })
                .collect(),
            args: r.args,
            has_stdin: r.has_stdin,
            work_dir: r.work_dir,
            scratch_dir: r.scratch_dir,
        }
    }
}

fn command(c: types::Command) -> model::PlanCommand {
    model::PlanCommand {
        argv: c.argv,
        env: c.env,
        cwd: c.cwd,
    }
}

impl From<types::Plan> for model::Plan {
    fn from(p: types::Plan) -> Self {
        model::Plan {
            files: p
                .files
                .into_iter()
                .map(|f| model::PlanFile {
                    path: f.path,
                    location: match f.location {
                        types::FileLocation::Scratch => model::FileLocation::Scratch,
                        types::FileLocation::WorkDir => model::FileLocation::WorkDir,
                    },
                    content: f.content,
                    executable: f.executable,
                })
                .collect(),
            compile: p.compile.into_iter().map(command).collect(),
            run: command(p.run),
        }
    }
}

impl From<types::PlanError> for model::PlanRefusal {
    fn from(e: types::PlanError) -> Self {
        match e {
            types::PlanError::InvalidInput(m) => model::PlanRefusal::InvalidInput(m),
            types::PlanError::Unsupported(m) => model::PlanRefusal::Unsupported(m),
        }
    }
}
