//! R for sidecar: `Rscript {file}` with the code in `code.r`.
//!
//! Quirk handled: in the C locale a clean environment implies, R prints non-ASCII
//! strings as octal escapes (`"h\303\251llo"`), so `LANG=C.UTF-8` is set (the
//! language's `environment` may override it). The program runs in the work dir,
//! so plots written without an explicit device (`Rplots.pdf`) land there for the
//! caller. Empty code is valid.

use sidecar_plugin_sdk::*;

/// The R plugin.
pub struct R;

impl Language for R {
    fn describe() -> PluginInfo {
        PluginInfo::new("r", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("r", "R", "r", "code.r", "Rscript {file}").multipliers(1.5, 1.2),
            &["rscript"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        let mut p = Planner::new(&config, &request)?;
        p.env("LANG", "C.UTF-8")?;
        p.write_code();
        p.compile_from_config()?;
        p.run_from_config()
    }
}

export_plugin!(R);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<R>(
                config::<R>("r"),
                request("cat(\"hello\\n\")\n").with_args(&["1"]),
            ),
            r#"
            file scratch/code.r
              | cat("hello\n")
            run Rscript /scratch/code.r 1
              env LANG=C.UTF-8
            "#,
        );
    }

    #[test]
    #[ignore = "needs Rscript"]
    fn real_r() {
        let out = execute::<R>(
            config::<R>("r"),
            "args <- commandArgs(trailingOnly = TRUE)\nprint(paste(\"héllo\", args[1]))\n",
            &["a b"],
            &[],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "[1] \"héllo a b\"\n"),
            "{out:?}"
        );
    }
}
