//! Rust for sidecar, compiled by a bare `rustc` (no Cargo, so no crates beyond std).
//!
//! `rustc --edition {edition} -O -C debuginfo=0 -o {out} {file}` with the code in
//! `main.rs`: edition 2021 by default (the system we replace compiled as 2015, where
//! `async`, `dyn` and `?` behave differently), optimized, no debug info (faster
//! links), the binary in the private scratch dir. Empty code is an invalid-input
//! error.
//!
//! Option `edition` (`2015`, `2018`, `2021`, `2024`): the `{edition}` placeholder.
//! When rustc is a rustup proxy, the image's `RUSTUP_HOME` must be passed in the
//! language's `environment` (the host gives commands a clean environment).

use sidecar_plugin_sdk::*;

/// The Rust plugin.
pub struct Rust;

impl Language for Rust {
    fn describe() -> PluginInfo {
        PluginInfo::new("rs", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("rs", "Rust", "rs", "main.rs", "{out}")
                .compile("rustc --edition {edition} -O -C debuginfo=0 -o {out} {file}")
                .multipliers(3.0, 1.5),
            &["rust", "rustc"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        require_code(&request)?;
        let edition = option_choice(
            &config,
            "edition",
            &["2015", "2018", "2021", "2024"],
            "2021",
        )?;
        let mut p = Planner::new(&config, &request)?;
        p.var("edition", edition);
        p.write_code();
        p.compile_from_config()?;
        p.run_from_config()
    }
}

export_plugin!(Rust);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn rs() -> LanguageConfig {
        config::<Rust>("rs")
    }

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Rust>(rs(), request("fn main() {\n    println!(\"hello\");\n}\n")),
            r#"
            file scratch/main.rs
              | fn main() {
              |     println!("hello");
              | }
            compile rustc --edition 2021 -O -C debuginfo=0 -o /scratch/main /scratch/main.rs
            run /scratch/main
            "#,
        );
    }

    #[test]
    fn edition_option() {
        let p = plan::<Rust>(rs().option("edition", "2024"), request("fn main() {}")).unwrap();
        assert_eq!(p.compile[0].argv[..3], ["rustc", "--edition", "2024"]);
        assert_plan(
            plan::<Rust>(rs().option("edition", "2027"), request("fn main() {}")),
            r#"error unsupported: option `edition` of language `rs` must be one of "2015", "2018", "2021", "2024", not "2027""#,
        );
        assert_plan(
            plan::<Rust>(rs(), request("")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    #[ignore = "needs rustc"]
    fn real_rustc() {
        let home = std::env::var("RUSTUP_HOME")
            .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").unwrap_or_default()));
        let config = rs().env("RUSTUP_HOME", &home);
        // `async` is a keyword only from edition 2018 on; `let else` needs 2021-era rustc.
        let code = "async fn f() {}\nfn main() {\n    let Some(a) = std::env::args().nth(1) else { return };\n    let _ = f();\n    println!(\"hi {a}\");\n}\n";
        let out = execute::<Rust>(config.clone(), code, &["x"], &[], None);
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "hi x\n"),
            "{out:?}"
        );
        let out = execute::<Rust>(config, "fn main() { let x: i32 = \"s\"; }", &[], &[], None);
        assert_eq!(out.stage, "compile", "{out:?}");
    }
}
