//! JavaScript (Node.js) for sidecar.
//!
//! Quirks handled:
//! - Module system: code with ES-module syntax (a top-level `import`/`export`
//!   statement, `import.meta`, or a top-level `await`) is written as `code.mjs`, all
//!   other code as CommonJS `code.js` (the stem comes from `code-filename`). Node 20
//!   does not guess: the wrong extension is a `SyntaxError`.
//! - `require` in an ES module (common in generated code that also uses top-level
//!   `await`) gets a `createRequire` shim, prepended on the first line so line numbers
//!   in errors stay right; not when the code declares `require` or uses
//!   `createRequire` itself.
//! - The code lives in the private scratch dir. `NODE_PATH` lists the work dir's
//!   `node_modules` and the work dir, so `require('mymod')` finds the caller's
//!   modules (ES modules ignore `NODE_PATH`); JavaScript and JSON files supplied with
//!   the request are also copied next to the code so relative imports (`./util.js`)
//!   of them resolve. The program runs
//!   in the work dir (`process.cwd()`); `__dirname` is the scratch dir.
//! - Empty code is valid (Node runs it and exits 0).

use sidecar_plugin_sdk::lex::js_module_syntax;
use sidecar_plugin_sdk::*;

/// The JavaScript plugin.
pub struct JavaScript;

/// Prepended (on line 1) to ES modules that call `require`.
const REQUIRE_SHIM: &str = "import { createRequire as __sidecarCreateRequire } from \"node:module\"; const require = __sidecarCreateRequire(import.meta.url); ";

impl Language for JavaScript {
    fn describe() -> PluginInfo {
        PluginInfo::new("js", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new("js", "JavaScript", "js", "code.js", "node {file}"),
            &["javascript", "node", "nodejs"],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        let syntax = js_module_syntax(&request.code);
        let filename = module_filename(&config.code_filename, syntax.is_esm());
        let mut p = Planner::with_filename(&config, &request, &filename)?;
        p.env("NODE_PATH", "{workdir}/node_modules:{workdir}")?;
        if syntax.is_esm() && syntax.calls_require && !syntax.declares_require {
            p.write_code_as(insert_on_first_line(&request.code, REQUIRE_SHIM));
        } else {
            p.write_code();
        }
        p.copy_request_files(|path| {
            [".js", ".mjs", ".cjs", ".json"]
                .iter()
                .any(|ext| path.ends_with(ext))
        });
        p.compile_from_config()?;
        p.run_from_config()
    }
}

/// `code.js` → `code.mjs` for ES modules. Explicit `.mjs`/`.cjs` names are kept.
fn module_filename(configured: &str, esm: bool) -> String {
    let configured = if configured.is_empty() {
        "code.js"
    } else {
        configured
    };
    match configured.strip_suffix(".js") {
        Some(stem) if esm => format!("{stem}.mjs"),
        _ => configured.to_string(),
    }
}

export_plugin!(JavaScript);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn js() -> LanguageConfig {
        config::<JavaScript>("js")
    }

    #[test]
    fn hello_world_is_commonjs() {
        assert_plan(
            plan::<JavaScript>(js(), request("console.log('hello')\n")),
            r#"
            file scratch/code.js
              | console.log('hello')
            run node /scratch/code.js
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
    }

    #[test]
    fn es_modules_get_mjs() {
        assert_plan(
            plan::<JavaScript>(
                js(),
                request("import fs from 'fs';\nexport const x = 1;\n").with_args(&["-v"]),
            ),
            r#"
            file scratch/code.mjs
              | import fs from 'fs';
              | export const x = 1;
            run node /scratch/code.mjs -v
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
    }

    #[test]
    fn top_level_await_with_require_gets_a_shim_on_line_one() {
        assert_plan(
            plan::<JavaScript>(
                js(),
                request("const fs = require('fs');\nawait fs.promises.readFile('x');\n"),
            ),
            r#"
            file scratch/code.mjs
              | import { createRequire as __sidecarCreateRequire } from "node:module"; const require = __sidecarCreateRequire(import.meta.url); const fs = require('fs');
              | await fs.promises.readFile('x');
            run node /scratch/code.mjs
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
    }

    #[test]
    fn shim_goes_after_a_shebang_and_not_when_require_is_declared() {
        let code = "#!/usr/bin/env node\nconst x = require('x'); await x();";
        assert_eq!(
            insert_on_first_line(code, "S;"),
            "#!/usr/bin/env node\nS;const x = require('x'); await x();"
        );
        assert_eq!(insert_on_first_line("#!node", "S;"), "#!node\nS;");
        let code = "import { createRequire } from 'module';\nconst require = createRequire(import.meta.url);\nrequire('x');";
        assert_plan(
            plan::<JavaScript>(js(), request(code)),
            r#"
            file scratch/code.mjs
              | import { createRequire } from 'module';
              | const require = createRequire(import.meta.url);
              | require('x');
              (no newline at end)
            run node /scratch/code.mjs
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
    }

    #[test]
    fn dynamic_import_and_async_functions_stay_commonjs() {
        let code = "(async () => { const m = await import('./m.mjs'); })();\nconst f = async () => await 1;\n// import x from 'y'\n";
        let plan = plan::<JavaScript>(js(), request(code)).unwrap();
        assert_eq!(plan.files[0].path, "code.js");
    }

    #[test]
    fn supplied_js_and_json_files_are_copied_next_to_the_code() {
        let req = request("const u = require('./lib/util'); console.log(require('./data.json'))")
            .with_file("lib/util.js", "module.exports = 1;\n")
            .with_file("data.json", "{}\n")
            .with_file("notes.txt", "not copied\n");
        assert_plan(
            plan::<JavaScript>(js(), req),
            r#"
            file scratch/code.js
              | const u = require('./lib/util'); console.log(require('./data.json'))
              (no newline at end)
            file scratch/lib/util.js
              | module.exports = 1;
            file scratch/data.json
              | {}
            run node /scratch/code.js
              env NODE_PATH=/work/node_modules:/work
            "#,
        );
    }

    #[test]
    fn explicit_module_filenames_are_kept() {
        assert_eq!(module_filename("main.js", true), "main.mjs");
        assert_eq!(module_filename("main.js", false), "main.js");
        assert_eq!(module_filename("main.cjs", true), "main.cjs");
        assert_eq!(module_filename("", true), "code.mjs");
    }

    #[test]
    #[ignore = "needs node"]
    fn real_node() {
        let out = execute::<JavaScript>(
            js(),
            "const os = require('os');\nconst u = require('./util.js');\nconst v = await Promise.resolve(u.x + 1);\nconsole.log(v, process.argv.slice(2), typeof os.cpus);\n",
            &["a b"],
            &[("util.js", "exports.x = 41;\n")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "42 [ 'a b' ] function\n"),
            "{out:?}"
        );
        let out = execute::<JavaScript>(
            js(),
            "const m = require('mymod');\nconsole.log(m, require('fs').existsSync('mymod.js'));",
            &[],
            &[("mymod.js", "module.exports = 'from workdir';\n")],
            None,
        );
        assert_eq!(out.stdout, "from workdir true\n", "{out:?}");
        let out = execute::<JavaScript>(
            js(),
            "import { x } from './m.mjs';\nconsole.log(x, import.meta.url.endsWith('code.mjs'));",
            &[],
            &[("m.mjs", "export const x = 7;\n")],
            None,
        );
        assert_eq!(out.stdout, "7 true\n", "{out:?}");
    }
}
