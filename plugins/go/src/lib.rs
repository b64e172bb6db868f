//! Go for sidecar, built in module mode.
//!
//! Quirks handled:
//! - The code becomes `main.go` of a module in `{tmpdir}/mod`, with a generated
//!   `go.mod` (`module main`, `go 1.18`) unless the caller supplied a `go.mod` (then
//!   theirs, and their `go.sum`, are used). Go files supplied with the request (not
//!   tests) are copied into the module at the same paths, so helpers in `package main`
//!   and sub-packages (`import "main/util"`) build along; `go build -o {out} .` runs in
//!   the module dir. The module cannot sit in the scratch dir itself: the host sets
//!   `TMPDIR` to it, and Go ignores a `go.mod` found in the temp dir's root.
//! - A file without a package clause gets `package main; ` on its first line (line
//!   numbers unchanged); another package than `main` is an invalid-input error, as is
//!   empty code.
//! - Builds are hermetic and private: `GOCACHE`, `GOPATH` and `GOMODCACHE` live in the
//!   scratch dir, `GOPROXY=off` (no downloads), `GOFLAGS=-mod=mod`, `GO111MODULE=on`,
//!   `GOTOOLCHAIN=local` (never fetch another toolchain), `GOWORK=off` (no stray
//!   `go.work` above the scratch dir), `CGO_ENABLED=0`. These are set on the compile
//!   command only; the program itself runs with the language's environment.
//!
//! Option `cache_dir` (template allowed): a shared `GOCACHE` instead of the private
//! one. A cold cache recompiles the runtime and `fmt` on every execution (seconds); a
//! shared one makes builds fast but is writable by every execution that compiles, so
//! use it only where executions trust each other (one tenant).

use sidecar_plugin_sdk::lex::{tokenize, Dialect, Kind};
use sidecar_plugin_sdk::*;

/// The Go plugin.
pub struct Go;

/// The module's directory, relative to the scratch dir.
const MODULE_DIR: &str = "mod";

/// `go.mod` written when the caller brings none.
const GO_MOD: &str = "module main\n\ngo 1.18\n";

impl Language for Go {
    fn describe() -> PluginInfo {
        PluginInfo::new("go", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("go", "Go", "go", "main.go", "{out}")
                .compile("go build -o {out} .")
                .multipliers(1.5, 1.2),
            &["golang"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        require_code(&request)?;
        let code = match package_clause(&request.code) {
            Some(name) if name == "main" => request.code.clone(),
            Some(name) => {
                return Err(PlanError::invalid(format!(
                    "a Go program must be `package main`, not `package {name}`"
                )))
            }
            None => format!("package main; {}", request.code),
        };
        let filename = match config.code_filename.as_str() {
            "" => "main.go",
            name => name,
        };
        let mut p = Planner::with_filename(&config, &request, &format!("{MODULE_DIR}/{filename}"))?;
        p.write_code_as(code);
        let caller_mod = request.files.iter().any(|f| f.path == "go.mod");
        if !caller_mod {
            p.add_file(PlanFile::scratch(&format!("{MODULE_DIR}/go.mod"), GO_MOD));
        }
        p.copy_request_files_to(MODULE_DIR, |path| {
            (path.ends_with(".go") && !path.ends_with("_test.go"))
                || path == "go.mod"
                || path == "go.sum"
        });
        let cache = match option_str(&config, "cache_dir") {
            Some(dir) => p.render(dir)?,
            None => p.render("{tmpdir}/go-build")?,
        };
        let gopath = p.render("{tmpdir}/go")?;
        let env = [
            ("GOCACHE", cache.as_str()),
            ("GOPATH", gopath.as_str()),
            ("GOMODCACHE", &format!("{gopath}/pkg/mod")),
            ("GO111MODULE", "on"),
            ("GOFLAGS", "-mod=mod"),
            ("GOPROXY", "off"),
            ("GOTOOLCHAIN", "local"),
            ("GOWORK", "off"),
            ("CGO_ENABLED", "0"),
        ];
        if let Some(template) = config
            .compile_command
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            let mut command = Command::new(p.render_argv(template, "compile command")?)
                .cwd(&p.render(&format!("{{tmpdir}}/{MODULE_DIR}"))?);
            for (name, value) in env {
                command = command.env(name, value);
            }
            p.compile_command(command);
        }
        p.run_from_config()
    }
}

/// The package name of the first package clause, if the file starts with one.
fn package_clause(code: &str) -> Option<String> {
    let tokens = tokenize(code, Dialect::GO);
    match tokens.as_slice() {
        [first, name, ..] if first.is_ident("package") && name.kind == Kind::Ident => {
            Some(name.text.to_string())
        }
        _ => None,
    }
}

export_plugin!(Go);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn go() -> LanguageConfig {
        config::<Go>("go")
    }

    const HELLO: &str =
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n";

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Go>(go(), request(HELLO).with_args(&["x"])),
            r#"
            file scratch/mod/main.go
              | package main
              |
              | import "fmt"
              |
              | func main() { fmt.Println("hello") }
            file scratch/mod/go.mod
              | module main
              |
              | go 1.18
            compile go build -o /scratch/main .
              env GOCACHE=/scratch/go-build
              env GOPATH=/scratch/go
              env GOMODCACHE=/scratch/go/pkg/mod
              env GO111MODULE=on
              env GOFLAGS=-mod=mod
              env GOPROXY=off
              env GOTOOLCHAIN=local
              env GOWORK=off
              env CGO_ENABLED=0
              cwd /scratch/mod
            run /scratch/main x
            "#,
        );
    }

    #[test]
    fn callers_go_mod_and_go_files_are_used() {
        let req = request(HELLO)
            .with_file("go.mod", "module example.com/app\n\ngo 1.19\n")
            .with_file("go.sum", "")
            .with_file("util/util.go", "package util\n")
            .with_file("helper.go", "package main\n")
            .with_file("helper_test.go", "package main\n")
            .with_file("main.go", "package main // old, replaced by the code\n")
            .with_file("README.md", "");
        let p = plan::<Go>(go().option("cache_dir", "/var/cache/go"), req).unwrap();
        let paths: Vec<_> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "mod/main.go",
                "mod/go.mod",
                "mod/go.sum",
                "mod/util/util.go",
                "mod/helper.go"
            ]
        );
        assert_eq!(p.files[1].content, b"module example.com/app\n\ngo 1.19\n");
        assert_eq!(
            p.compile[0].env[0],
            ("GOCACHE".to_string(), "/var/cache/go".to_string())
        );
    }

    #[test]
    fn package_clause_is_added_on_line_one_or_checked() {
        let p = plan::<Go>(
            go(),
            request("// say hi\nimport \"fmt\"\nfunc main() { fmt.Println(1) }"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(p.files[0].content.clone()).unwrap(),
            "package main; // say hi\nimport \"fmt\"\nfunc main() { fmt.Println(1) }"
        );
        assert_plan(
            plan::<Go>(go(), request("/* doc */ package mylib\nfunc F() {}")),
            "error invalid-input: a Go program must be `package main`, not `package mylib`",
        );
        assert_plan(
            plan::<Go>(go(), request("\n  \n")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    #[ignore = "needs go"]
    fn real_go() {
        let out = execute::<Go>(
            go(),
            "import (\"fmt\"; \"os\"; \"main/util\")\nfunc main() { fmt.Println(util.Twice(21), helper(), os.Args[1:]) }\n",
            &["a b"],
            &[("util/util.go", "package util\nfunc Twice(n int) int { return 2 * n }\n"), ("helper.go", "package main\nfunc helper() string { return \"h\" }\n")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "42 h [a b]\n"),
            "{out:?}"
        );
        let out = execute::<Go>(
            go(),
            "package main\nimport \"github.com/x/y\"\nfunc main() { y.Z() }\n",
            &[],
            &[],
            None,
        );
        assert_eq!(out.stage, "compile", "{out:?}");
    }
}
