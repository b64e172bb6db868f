//! Python 3 for sidecar.
//!
//! Quirks handled: output unbuffered (`-u` and `PYTHONUNBUFFERED=1`) so stdout and
//! stderr interleave as written and nothing is lost when the program is killed; no
//! `__pycache__` (`PYTHONDONTWRITEBYTECODE=1`); the code lives in the private scratch
//! dir, so `PYTHONPATH` points at the work dir for the caller's modules to import
//! (the run itself starts in the work dir, so relative `open()` paths work). Empty
//! code is valid (Python runs it and exits 0).
//!
//! No user site (`-s`): the host gives every execution a fresh, empty `HOME` (its
//! scratch dir), where no `~/.local/lib/python3.X/site-packages` can exist when Python
//! starts, so the user site would add nothing to `sys.path`; looking for it, and for a
//! `usercustomize` module along the whole path, costs ~0.1 ms of every start. The flag
//! is only for the program itself (its own child processes look as usual), and it is
//! left out when the language's `environment` gives `HOME` or `PYTHONUSERBASE`, which
//! may hold a user site.

use sidecar_plugin_sdk::*;

/// The default run command.
const RUN: &str = "python3 -u -s {file}";
/// The default run command where the environment points at a home that may hold a
/// user site.
const RUN_WITH_USER_SITE: &str = "python3 -u {file}";

/// The Python plugin.
pub struct Python;

impl Language for Python {
    fn describe() -> PluginInfo {
        PluginInfo::new("py", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("py", "Python", "py", "code.py", RUN)
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            &["python", "python3"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        let mut p = Planner::new(&config, &request)?;
        // Essentials first: the language's `environment` setting may still override.
        p.env("PYTHONUNBUFFERED", "1")?
            .env("PYTHONDONTWRITEBYTECODE", "1")?
            .env("PYTHONPATH", "{workdir}")?;
        p.write_code();
        p.compile_from_config()?;
        let user_home = config
            .environment
            .iter()
            .any(|(name, _)| name == "HOME" || name == "PYTHONUSERBASE");
        if user_home && config.run_command == RUN {
            p.run(RUN_WITH_USER_SITE)
        } else {
            p.run_from_config()
        }
    }
}

export_plugin!(Python);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn py() -> LanguageConfig {
        config::<Python>("py")
    }

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Python>(py(), request("print('hello')\n")),
            r#"
            file scratch/code.py
              | print('hello')
            run python3 -u -s /scratch/code.py
              env PYTHONUNBUFFERED=1
              env PYTHONDONTWRITEBYTECODE=1
              env PYTHONPATH=/work
            "#,
        );
    }

    #[test]
    fn args_are_appended_unsplit() {
        assert_plan(
            plan::<Python>(py(), request("import sys").with_args(&["a b", "--x=$HOME"])),
            r#"
            file scratch/code.py
              | import sys
              (no newline at end)
            run python3 -u -s /scratch/code.py 'a b' '--x=$HOME'
              env PYTHONUNBUFFERED=1
              env PYTHONDONTWRITEBYTECODE=1
              env PYTHONPATH=/work
            "#,
        );
    }

    #[test]
    fn settings_override_environment_and_command() {
        let config = py()
            .run("/opt/py/bin/python3 -u -X importtime {file}")
            .env("PYTHONPATH", "{workdir}/lib:{workdir}")
            .env("PYTHONHASHSEED", "0");
        assert_plan(
            plan::<Python>(config, request("")),
            r#"
            file scratch/code.py
              (empty)
            run /opt/py/bin/python3 -u -X importtime /scratch/code.py
              env PYTHONUNBUFFERED=1
              env PYTHONDONTWRITEBYTECODE=1
              env PYTHONPATH=/work/lib:/work
              env PYTHONHASHSEED=0
            "#,
        );
    }

    #[test]
    fn a_home_from_the_settings_keeps_the_user_site() {
        for name in ["HOME", "PYTHONUSERBASE"] {
            assert_plan(
                plan::<Python>(py().env(name, "/home/app"), request("")),
                &format!(
                    r#"
                    file scratch/code.py
                      (empty)
                    run python3 -u /scratch/code.py
                      env PYTHONUNBUFFERED=1
                      env PYTHONDONTWRITEBYTECODE=1
                      env PYTHONPATH=/work
                      env {name}=/home/app
                    "#
                ),
            );
        }
    }

    #[test]
    fn describe_defaults() {
        let info = Python::describe();
        assert_eq!(info.name, "py");
        assert_eq!(info.languages[0].aliases, ["python", "python3"]);
        assert_eq!(info.languages[0].defaults.timeout_multiplier, 1.0);
    }

    /// End to end with the real interpreter: `cargo test -p sidecar-plugin-py -- --ignored`.
    #[test]
    #[ignore = "needs python3"]
    fn real_python() {
        let out = execute::<Python>(
            py(),
            "import sys, helper\nprint(helper.X, sys.argv[1:], input(), sys.stdout.line_buffering)\nimport os; print(os.getcwd() == os.environ['PWD'] if 'PWD' in os.environ else os.path.exists('helper.py'))\n",
            &["a b"],
            &[("helper.py", "X = 42\n")],
            Some("from stdin\n"),
        );
        assert_eq!(out.stage, "run", "{out:?}");
        assert_eq!(out.stdout, "42 ['a b'] from stdin False\nTrue\n", "{out:?}");
        assert_eq!(out.code, Some(0));
    }
}
