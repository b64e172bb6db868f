//! The `template` plugin: serves languages described only in `languages.toml`.
//!
//! `describe()` returns no languages; each language that names `plugin = "template"`
//! brings its own settings. A plan writes the code to `code_filename` (default
//! `code.<file_extension>`) in the scratch dir, renders the `compile_command` (if
//! any) and the `run_command` with the standard placeholders, renders the
//! `environment`, and appends the program arguments. Bash is served this way.
//!
//! Options:
//! - `executable = true`: mark the code file executable (for `run_command = "{file}"`
//!   with a `#!` line);
//! - `require_code = true`: empty code is an invalid-input error (for compiled
//!   languages, whose tools fail confusingly on empty input).

use sidecar_plugin_sdk::*;

/// The template plugin.
pub struct Template;

impl Language for Template {
    fn describe() -> PluginInfo {
        PluginInfo::new("template", env!("CARGO_PKG_VERSION"))
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        if config.run_command.trim().is_empty() {
            return Err(PlanError::unsupported(format!(
                "language `{}` uses the template plugin but has no run_command in languages.toml",
                config.code
            )));
        }
        if option_bool(&config, "require_code", false)? {
            require_code(&request)?;
        }
        let executable = option_bool(&config, "executable", false)?;
        let mut p = Planner::new(&config, &request)?;
        let mut file = PlanFile::scratch(p.filename(), request.code.as_bytes());
        if executable {
            file = file.executable();
        }
        p.add_file(file);
        p.compile_from_config()?;
        p.run_from_config()
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn bash() -> LanguageConfig {
        LanguageConfig::new("bash", "Bash", "sh", "code.sh", "bash {file}")
    }

    #[test]
    fn serves_no_language_by_itself() {
        let info = Template::describe();
        assert_eq!(info.name, "template");
        assert!(info.languages.is_empty());
    }

    #[test]
    fn bash_hello_world() {
        assert_plan(
            plan::<Template>(bash(), request("echo hello\n").with_args(&["a b", "c"])),
            r#"
            file scratch/code.sh
              | echo hello
            run bash /scratch/code.sh 'a b' c
            "#,
        );
    }

    #[test]
    fn compiled_language_with_env_and_options() {
        let config = LanguageConfig::new("zig", "Zig", "zig", "", "{out}")
            .compile("zig build-exe -femit-bin={out} --cache-dir {tmpdir}/zig-cache {file}")
            .env("ZIG_GLOBAL_CACHE_DIR", "{tmpdir}/zig-global")
            .option("require_code", "true");
        assert_plan(
            plan::<Template>(config.clone(), request("pub fn main() void {}")),
            r#"
            file scratch/code.zig
              | pub fn main() void {}
              (no newline at end)
            compile zig build-exe -femit-bin=/scratch/code --cache-dir /scratch/zig-cache /scratch/code.zig
              env ZIG_GLOBAL_CACHE_DIR=/scratch/zig-global
            run /scratch/code
              env (as above)
            "#,
        );
        assert_plan(
            plan::<Template>(config, request(" ")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    fn executable_scripts() {
        let config =
            LanguageConfig::new("sh", "sh", "sh", "run.sh", "{file}").option("executable", "yes");
        assert_plan(
            plan::<Template>(config, request("#!/bin/sh\necho hi\n")),
            r#"
            file scratch/run.sh (executable)
              | #!/bin/sh
              | echo hi
            run /scratch/run.sh
            "#,
        );
    }

    #[test]
    fn settings_mistakes_are_reported() {
        assert_plan(
            plan::<Template>(bash().run(""), request("echo")),
            "error unsupported: language `bash` uses the template plugin but has no run_command in languages.toml",
        );
        assert_plan(
            plan::<Template>(bash().run("bash {file} 2>&1"), request("echo")),
            "error unsupported: language `bash`: bad run command \"bash {file} 2>&1\": unquoted `>`: templates are not run by a shell (quote it to mean the character itself)",
        );
        assert_plan(
            plan::<Template>(bash().run("bash {script}"), request("echo")),
            "error unsupported: language `bash`: bad run command \"bash {script}\": unknown placeholder `{script}` (known: {file} {filename} {stem} {workdir} {tmpdir} {out}; write `{{` and `}}` for literal braces)",
        );
    }

    #[test]
    #[ignore = "needs bash"]
    fn real_bash() {
        let out = execute::<Template>(
            bash(),
            "echo \"$1|$2\"; ls; exit 4",
            &["a b", "c"],
            &[("f.txt", "")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str(), out.code),
            ("run", "a b|c\nf.txt\n", Some(4)),
            "{out:?}"
        );
    }
}
