//! C for sidecar, compiled by gcc.
//!
//! `gcc -O2 -std=gnu17 -iquote {workdir} -o {out} {file} -lm`: the binary goes to the
//! private scratch dir (`{out}`, never a fixed path two executions could race on);
//! the math library is linked, after the source as the linker needs; `#include
//! "x.h"` finds the caller's headers in the work dir. Empty code is an invalid-input
//! error (gcc would only report a missing `main` at link time).

use sidecar_plugin_sdk::*;

/// The C plugin.
pub struct C;

impl Language for C {
    fn describe() -> PluginInfo {
        PluginInfo::new("c", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("c", "C", "c", "code.c", "{out}")
                .compile("gcc -O2 -std=gnu17 -iquote {workdir} -o {out} {file} -lm")
                .multipliers(1.5, 1.0),
            &["gcc"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        require_code(&request)?;
        let mut p = Planner::new(&config, &request)?;
        p.write_code();
        p.compile_from_config()?;
        p.run_from_config()
    }
}

export_plugin!(C);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<C>(
                config::<C>("c"),
                request("#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")
                    .with_args(&["x y"]),
            ),
            r#"
            file scratch/code.c
              | #include <stdio.h>
              | int main(void) { puts("hello"); return 0; }
            compile gcc -O2 -std=gnu17 -iquote /work -o /scratch/code /scratch/code.c -lm
            run /scratch/code 'x y'
            "#,
        );
    }

    #[test]
    fn empty_code_is_invalid() {
        assert_plan(
            plan::<C>(config::<C>("c"), request("")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    #[ignore = "needs gcc"]
    fn real_gcc() {
        let code = "#include <math.h>\n#include <stdio.h>\n#include \"helper.h\"\nint main(int argc, char **argv) { printf(\"%.1f %d %s\\n\", sqrt(16.0), HELPER, argv[1]); return 3; }\n";
        let out = execute::<C>(
            config::<C>("c"),
            code,
            &["a b"],
            &[("helper.h", "#define HELPER 7\n")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str(), out.code),
            ("run", "4.0 7 a b\n", Some(3)),
            "{out:?}"
        );
        let out = execute::<C>(
            config::<C>("c"),
            "int main(void) { return x; }",
            &[],
            &[],
            None,
        );
        assert_eq!(out.stage, "compile", "{out:?}");
    }
}
