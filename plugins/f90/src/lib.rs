//! Fortran (free form) for sidecar, compiled by gfortran.
//!
//! `gfortran -O2 -ffree-line-length-none -J {tmpdir} -I {workdir} -o {out} {file}`
//! with the code in `code.f90`: no 132-column limit (gfortran otherwise truncates
//! longer lines, an error in free form), module files (`.mod`) written to the scratch
//! dir rather than the work dir (`-J`), `include` files found in the work dir (`-I`),
//! the binary in the scratch dir. Empty code is an invalid-input error.

use sidecar_plugin_sdk::*;

/// The Fortran plugin.
pub struct Fortran;

impl Language for Fortran {
    fn describe() -> PluginInfo {
        PluginInfo::new("f90", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("f90", "Fortran", "f90", "code.f90", "{out}")
                .compile(
                    "gfortran -O2 -ffree-line-length-none -J {tmpdir} -I {workdir} -o {out} {file}",
                )
                .multipliers(2.0, 1.0),
            &["fortran", "gfortran", "f95"],
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

export_plugin!(Fortran);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Fortran>(
                config::<Fortran>("f90"),
                request("program hello\n  print *, 'hello'\nend program hello\n"),
            ),
            r#"
            file scratch/code.f90
              | program hello
              |   print *, 'hello'
              | end program hello
            compile gfortran -O2 -ffree-line-length-none -J /scratch -I /work -o /scratch/code /scratch/code.f90
            run /scratch/code
            "#,
        );
    }

    #[test]
    fn empty_code_is_invalid() {
        assert_plan(
            plan::<Fortran>(config::<Fortran>("f90"), request("\n")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    #[ignore = "needs gfortran"]
    fn real_gfortran() {
        let long = "x".repeat(140);
        let code = format!(
            "module m\n  implicit none\ncontains\n  integer function twice(n)\n    integer, intent(in) :: n\n    twice = 2 * n\n  end function\nend module\nprogram p\n  use m\n  character(len=200) :: s = '{long}'\n  print '(I0,1X,I0)', twice(21), len_trim(s)\nend program\n"
        );
        let out = execute::<Fortran>(config::<Fortran>("f90"), &code, &[], &[], None);
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "42 140\n"),
            "{out:?}"
        );
    }
}
