//! D for sidecar, compiled by LDC (`ldc2`, default) or GDC (`gdc`).
//!
//! Option `compiler` names the compiler (a program name or path, `{compiler}` in the
//! templates); its flag dialect is told by its name (`ldc2`/`ldmd2`… or `gdc…`):
//! - LDC: `{compiler} -O -i -I={workdir} -of={out} -od={tmpdir} {file}`: object files
//!   go to the scratch dir (`-od`), and `-i` compiles the caller's modules found in
//!   the work dir (`-I`) along with the code;
//! - GDC: `{compiler} -O2 -I {workdir} -o {out} {file}` (GDC has no `-i`: imported
//!   caller modules must be header-only or templates).
//!
//! The settings' `compile_command` is used as given when it differs from the default
//! LDC command; otherwise the dialect's command is used. Empty code is an
//! invalid-input error.

use sidecar_plugin_sdk::*;

/// The D plugin.
pub struct D;

/// Compile command for LDC (the default).
pub const LDC: &str = "{compiler} -O -i -I={workdir} -of={out} -od={tmpdir} {file}";
/// Compile command for GDC.
pub const GDC: &str = "{compiler} -O2 -I {workdir} -o {out} {file}";

impl Language for D {
    fn describe() -> PluginInfo {
        PluginInfo::new("d", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("d", "D", "d", "code.d", "{out}")
                .compile(LDC)
                .multipliers(2.0, 1.2),
            &["dlang", "ldc2", "gdc"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        require_code(&request)?;
        let compiler = option_str(&config, "compiler").unwrap_or("ldc2");
        let name = compiler.rsplit('/').next().unwrap_or(compiler);
        let dialect = if name.starts_with("gdc") {
            GDC
        } else if name.starts_with("ldc") || name.starts_with("ldmd") {
            LDC
        } else {
            return Err(PlanError::unsupported(format!(
                "option `compiler` of language `{}` must name ldc2 or gdc, not {compiler:?}",
                config.code
            )));
        };
        let template = match config.compile_command.as_deref() {
            Some(t) if t != LDC && !t.trim().is_empty() => t,
            _ => dialect,
        };
        let mut p = Planner::new(&config, &request)?;
        p.var("compiler", compiler);
        p.write_code();
        p.compile(template)?;
        p.run_from_config()
    }
}

export_plugin!(D);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn d() -> LanguageConfig {
        config::<D>("d")
    }

    const HELLO: &str = "import std.stdio;\nvoid main() { writeln(\"hello\"); }\n";

    #[test]
    fn hello_world_with_ldc() {
        assert_plan(
            plan::<D>(d(), request(HELLO)),
            r#"
            file scratch/code.d
              | import std.stdio;
              | void main() { writeln("hello"); }
            compile ldc2 -O -i -I=/work -of=/scratch/code -od=/scratch /scratch/code.d
            run /scratch/code
            "#,
        );
    }

    #[test]
    fn gdc_by_option() {
        let p = plan::<D>(d().option("compiler", "/usr/bin/gdc-12"), request(HELLO)).unwrap();
        assert_eq!(
            p.compile[0].argv,
            [
                "/usr/bin/gdc-12",
                "-O2",
                "-I",
                "/work",
                "-o",
                "/scratch/code",
                "/scratch/code.d"
            ]
        );
        // A customized command wins over the dialect's.
        let p = plan::<D>(
            d().option("compiler", "gdc")
                .compile("{compiler} -o {out} {file}"),
            request(HELLO),
        )
        .unwrap();
        assert_eq!(
            p.compile[0].argv,
            ["gdc", "-o", "/scratch/code", "/scratch/code.d"]
        );
        assert_plan(
            plan::<D>(d().option("compiler", "dmd"), request(HELLO)),
            r#"error unsupported: option `compiler` of language `d` must name ldc2 or gdc, not "dmd""#,
        );
    }

    #[test]
    fn empty_code_is_invalid() {
        assert_plan(
            plan::<D>(d(), request("")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    #[ignore = "needs ldc2"]
    fn real_ldc2() {
        let code = "import std.stdio, helper;\nvoid main(string[] args) { writeln(twice(21), \" \", args[1]); }\n";
        let out = execute::<D>(
            d(),
            code,
            &["a b"],
            &[(
                "helper.d",
                "module helper;\nint twice(int n) { return 2 * n; }\n",
            )],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "42 a b\n"),
            "{out:?}"
        );
    }

    #[test]
    #[ignore = "needs gdc"]
    fn real_gdc() {
        let code = "import std.stdio;\nvoid main(string[] args) { writeln(\"gdc \", args[1]); }\n";
        let out = execute::<D>(d().option("compiler", "gdc"), code, &["ok"], &[], None);
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "gdc ok\n"),
            "{out:?}"
        );
    }
}
