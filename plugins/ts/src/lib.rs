//! TypeScript for sidecar, compiled by `tsc` (default) or run by Node's type
//! stripping.
//!
//! Options (`[languages.ts.options]`):
//! - `mode = "tsc"` (default): `tsc` compiles the code to JavaScript in the scratch dir,
//!   then `node` runs it. Type errors are compile errors: the execution stops at the
//!   compile stage with tsc's diagnostics. Code with a top-level `await` or
//!   `import.meta` becomes `code.mts`, compiled with `--module nodenext` to an ES
//!   module (`.mjs`); everything else compiles to CommonJS (ES2020), where `import`
//!   statements become `require` calls. Type declarations come from the `@types` dirs
//!   listed in `--typeRoots` (the work dir's `node_modules/@types` and the usual global
//!   ones; `@types/node` must be installed for Node's APIs to type-check).
//! - `mode = "strip"`: no compile step; `node --experimental-strip-types` (Node >= 22.6)
//!   runs the code, ignoring types entirely (enums and namespaces are not supported
//!   by Node in this mode). The compile and run command settings describe tsc mode
//!   and are ignored here.
//! - `typecheck = false`: in tsc mode, emit without type-checking (`--noCheck`); only
//!   syntax errors stop the execution.
//!
//! Plugin placeholders for the command templates: `{module}` (`commonjs` or
//! `nodenext`) and `{js}` (the compiled file). As for JavaScript, `NODE_PATH` points
//! at the work dir, files supplied with the request that TypeScript or Node could
//! import are copied next to the code, and `require` in an ES module gets a
//! `createRequire` shim on line 1. Empty code is valid.

use sidecar_plugin_sdk::lex::js_module_syntax;
use sidecar_plugin_sdk::*;

/// The TypeScript plugin.
pub struct TypeScript;

/// The default compile command (tsc mode).
pub const TSC: &str = "tsc --target ES2020 --module {module} --esModuleInterop --skipLibCheck \
     --types * --typeRoots {workdir}/node_modules/@types,/usr/local/lib/node_modules/@types,/usr/lib/node_modules/@types \
     --rootDir {tmpdir} --outDir {tmpdir}/js-out {file}";

/// The run command of strip mode.
pub const STRIP: &str =
    "node --experimental-strip-types --disable-warning=ExperimentalWarning {file}";

/// Prepended (on line 1) to ES modules that call `require`.
const REQUIRE_SHIM: &str = "import { createRequire as __sidecarCreateRequire } from \"node:module\"; const require = __sidecarCreateRequire(import.meta.url); ";

impl Language for TypeScript {
    fn describe() -> PluginInfo {
        PluginInfo::new("ts", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("ts", "TypeScript", "ts", "code.ts", "node {js}")
                .compile(TSC)
                .multipliers(2.0, 1.0),
            &["typescript"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        let mode = option_choice(&config, "mode", &["tsc", "strip"], "tsc")?;
        let typecheck = option_bool(&config, "typecheck", true)?;
        let syntax = js_module_syntax(&request.code);
        let configured = if config.code_filename.is_empty() {
            "code.ts"
        } else {
            &config.code_filename
        };
        let stem = configured.strip_suffix(".ts").unwrap_or(configured);
        // tsc compiles import/export to CommonJS; only top-level await and import.meta
        // need a real ES module. Node's stripping runs the syntax as written.
        let esm = match mode {
            "strip" => syntax.is_esm(),
            _ => syntax.top_level_await || syntax.import_meta,
        };
        let filename = match (configured.ends_with(".ts"), esm) {
            (true, true) => format!("{stem}.mts"),
            _ => configured.to_string(),
        };
        let mut p = Planner::with_filename(&config, &request, &filename)?;
        let js_ext = if esm { "mjs" } else { "js" };
        let base = filename.rsplit('/').next().unwrap_or(&filename);
        let js_stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
        let js = p.render(&format!("{{tmpdir}}/js-out/{js_stem}.{js_ext}"))?;
        p.var("js", js);
        p.var("module", if esm { "nodenext" } else { "commonjs" });
        p.env("NODE_PATH", "{workdir}/node_modules:{workdir}")?;
        if esm && syntax.calls_require && !syntax.declares_require {
            p.write_code_as(insert_on_first_line(&request.code, REQUIRE_SHIM));
        } else {
            p.write_code();
        }
        p.copy_request_files(|path| {
            [
                ".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json",
            ]
            .iter()
            .any(|ext| path.ends_with(ext))
        });
        if mode == "strip" {
            return p.run(STRIP);
        }
        if let Some(template) = config
            .compile_command
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            let mut argv = p.render_argv(template, "compile command")?;
            if !typecheck {
                argv.push("--noCheck".to_string());
            }
            p.compile_command(Command::new(argv));
        }
        p.run_from_config()
    }
}

export_plugin!(TypeScript);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn ts() -> LanguageConfig {
        config::<TypeScript>("ts")
    }

    #[test]
    fn hello_world_compiles_to_commonjs() {
        assert_plan(
            plan::<TypeScript>(
                ts(),
                request("const s: string = 'hello';\nconsole.log(s);\n"),
            ),
            r#"
            file scratch/code.ts
              | const s: string = 'hello';
              | console.log(s);
            compile tsc --target ES2020 --module commonjs --esModuleInterop --skipLibCheck --types '*' --typeRoots /work/node_modules/@types,/usr/local/lib/node_modules/@types,/usr/lib/node_modules/@types --rootDir /scratch --outDir /scratch/js-out /scratch/code.ts
              env NODE_PATH=/work/node_modules:/work
            run node /scratch/js-out/code.js
              env (as above)
            "#,
        );
    }

    #[test]
    fn imports_alone_stay_commonjs_but_top_level_await_is_an_es_module() {
        let p = plan::<TypeScript>(ts(), request("import * as fs from 'fs';\nexport {};")).unwrap();
        assert_eq!(p.files[0].path, "code.ts");
        assert_eq!(p.run.argv, ["node", "/scratch/js-out/code.js"]);
        assert_plan(
            plan::<TypeScript>(
                ts(),
                request("const fs = require('fs');\nconst n: number = await Promise.resolve(1);\n"),
            ),
            r#"
            file scratch/code.mts
              | import { createRequire as __sidecarCreateRequire } from "node:module"; const require = __sidecarCreateRequire(import.meta.url); const fs = require('fs');
              | const n: number = await Promise.resolve(1);
            compile tsc --target ES2020 --module nodenext --esModuleInterop --skipLibCheck --types '*' --typeRoots /work/node_modules/@types,/usr/local/lib/node_modules/@types,/usr/lib/node_modules/@types --rootDir /scratch --outDir /scratch/js-out /scratch/code.mts
              env NODE_PATH=/work/node_modules:/work
            run node /scratch/js-out/code.mjs
              env (as above)
            "#,
        );
    }

    #[test]
    fn typecheck_off_adds_no_check() {
        let p = plan::<TypeScript>(
            ts().option("typecheck", "false"),
            request("let x: number = 'a'"),
        )
        .unwrap();
        assert_eq!(p.compile[0].argv.last().unwrap(), "--noCheck");
    }

    #[test]
    fn strip_mode_has_no_compile_step() {
        assert_plan(
            plan::<TypeScript>(
                ts().option("mode", "strip"),
                request("import fs from 'fs';\nconst x: number = 1;").with_args(&["1"]),
            ),
            r#"
            file scratch/code.mts
              | import fs from 'fs';
              | const x: number = 1;
              (no newline at end)
            run node --experimental-strip-types --disable-warning=ExperimentalWarning /scratch/code.mts 1
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
        let p = plan::<TypeScript>(
            ts().option("mode", "strip"),
            request("const x: number = 1;"),
        )
        .unwrap();
        assert_eq!(p.files[0].path, "code.ts");
    }

    #[test]
    fn bad_options_are_reported() {
        assert_plan(
            plan::<TypeScript>(ts().option("mode", "babel"), request("1")),
            r#"error unsupported: option `mode` of language `ts` must be one of "tsc", "strip", not "babel""#,
        );
    }

    #[test]
    fn supplied_typescript_files_are_copied() {
        let p = plan::<TypeScript>(
            ts(),
            request("import { f } from './lib/f';")
                .with_file("lib/f.ts", "export const f = 1;")
                .with_file("x.png", ""),
        )
        .unwrap();
        let paths: Vec<_> = p.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["code.ts", "lib/f.ts"]);
    }

    #[test]
    #[ignore = "needs tsc, node and @types/node"]
    fn real_tsc() {
        let out = execute::<TypeScript>(
            ts(),
            "import * as fs from 'fs';\nimport { twice } from './lib';\nconst n: number = twice(21);\nconsole.log(n, process.argv.slice(2), fs.existsSync('lib.ts'));\n",
            &["x"],
            &[("lib.ts", "export function twice(n: number): number { return 2 * n; }\n")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "42 [ 'x' ] true\n"),
            "{out:?}"
        );
        let out = execute::<TypeScript>(
            ts(),
            "const n: number = 'oops';\nconsole.log(n);",
            &[],
            &[],
            None,
        );
        assert_eq!(out.stage, "compile", "{out:?}");
        assert!(out.stdout.contains("TS2322"), "{out:?}");
        let out = execute::<TypeScript>(
            ts(),
            "const fs = require('fs');\nconst v: number = await Promise.resolve(5);\nconsole.log(v, typeof fs.readFileSync, import.meta.url.endsWith('.mjs'));",
            &[],
            &[],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "5 function true\n"),
            "{out:?}"
        );
        let out = execute::<TypeScript>(
            ts().option("typecheck", "false"),
            "const n: number = 'lax';\nconsole.log(n);",
            &[],
            &[],
            None,
        );
        assert_eq!(out.stdout, "lax\n", "{out:?}");
    }
}
