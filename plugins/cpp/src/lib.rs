//! C++ for sidecar, compiled by g++.
//!
//! `g++ -std=c++17 -O2 -iquote {workdir} -o {out} {file}`: the binary goes to the
//! private scratch dir; `#include "x.h"` finds the caller's headers in the work dir;
//! the math library comes with libstdc++. Empty code is an invalid-input error.

use sidecar_plugin_sdk::*;

/// The C++ plugin.
pub struct Cpp;

impl Language for Cpp {
    fn describe() -> PluginInfo {
        PluginInfo::new("cpp", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("cpp", "C++", "cpp", "code.cpp", "{out}")
                .compile("g++ -std=c++17 -O2 -iquote {workdir} -o {out} {file}")
                .multipliers(1.5, 1.0),
            &["c++", "g++", "cxx"],
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

export_plugin!(Cpp);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Cpp>(
                config::<Cpp>("cpp"),
                request("#include <iostream>\nint main() { std::cout << \"hello\\n\"; }\n"),
            ),
            r#"
            file scratch/code.cpp
              | #include <iostream>
              | int main() { std::cout << "hello\n"; }
            compile g++ -std=c++17 -O2 -iquote /work -o /scratch/code /scratch/code.cpp
            run /scratch/code
            "#,
        );
    }

    #[test]
    fn settings_can_change_the_standard() {
        let config = config::<Cpp>("cpp").compile("clang++ -std=c++20 -o {out} {file}");
        let p = plan::<Cpp>(config, request("int main() {}")).unwrap();
        assert_eq!(
            p.compile[0].argv,
            [
                "clang++",
                "-std=c++20",
                "-o",
                "/scratch/code",
                "/scratch/code.cpp"
            ]
        );
    }

    #[test]
    #[ignore = "needs g++"]
    fn real_gpp() {
        let code = "#include <iostream>\n#include <optional>\n#include <cmath>\nint main(int argc, char** argv) { std::optional<int> o = 2; std::cout << *o + std::sqrt(4.0) << ' ' << argv[1] << std::endl; }\n";
        let out = execute::<Cpp>(config::<Cpp>("cpp"), code, &["z"], &[], None);
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "4 z\n"),
            "{out:?}"
        );
    }
}
