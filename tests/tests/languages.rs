//! Every language through POST /execute, with its real toolchain: hello world with
//! arguments passed unsplit, stdin, reading a file given in `files`, writing files that
//! come back in `files` (a modified one too, never the plan's own sources), a compile
//! error with the compiler's message, a runtime error with its exit code, and each
//! language's quirks (the faults of the runner we replace).
//!
//! One test per language (each with its own sidecar) so they run in parallel. A language
//! whose toolchain is missing is skipped visibly (a failure in CI, see
//! `language_available`).

use serde_json::{json, Value};
use sidecar_tests::{language_available, Sidecar};

/// Arguments that a shell would split or expand: they must arrive exactly as given.
const ARGS: [&str; 3] = ["two words", "it's \"quoted\"", "$HOME;*"];
const HELLO_OUT: &str = "hello, world\ntwo words\nit's \"quoted\"\n$HOME;*\n";

/// The programs every language runs.
struct Programs {
    code: &'static str,
    /// Prints `hello, world`, then each argument on its own line.
    hello: &'static str,
    /// Reads two integers from stdin and prints their sum.
    stdin_sum: &'static str,
    /// Prints the first line of `input.txt`, writes `out.txt` = "written\n" and
    /// overwrites `existing.txt` with "modified!\n".
    files: &'static str,
    /// Code the compiler rejects, and a fragment of its message.
    compile_error: Option<(&'static str, &'static str)>,
    /// Code that fails at run time: its exit code and a fragment of its stderr.
    runtime_error: (&'static str, i32, &'static str),
}

fn execute(sc: &Sidecar, code: &str, program: &str, extra: Value) -> Value {
    let mut body = json!({"language": code, "code": program, "timeoutSeconds": 60});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let v = sc.execute(&body);
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// Asserts a successful execution and returns its stdout.
fn ok_stdout(v: &Value) -> String {
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(v["exit_code"], 0, "{v:#}");
    assert_eq!(v["run"]["exitCode"], 0, "{v:#}");
    assert_eq!(v["stdout"], v["run"]["stdout"], "{v:#}");
    v["stdout"].as_str().unwrap().to_string()
}

fn file_paths(v: &Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap_or_else(|| panic!("files is not an array: {v}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// The cases every language goes through.
fn common(sc: &Sidecar, p: &Programs) {
    let lang = p.code;

    // Hello world, arguments unsplit and unexpanded.
    let v = execute(sc, lang, p.hello, json!({"args": ARGS}));
    assert_eq!(v["language"], lang, "{v}");
    assert_eq!(ok_stdout(&v), HELLO_OUT, "{lang} hello: {v:#}");
    assert!(v["run"].is_object(), "{v}");
    assert_eq!(v["files"], json!([]), "{lang}: hello created files: {v:#}");

    // stdin.
    let v = execute(sc, lang, p.stdin_sum, json!({"stdin": "20 22\n"}));
    assert_eq!(ok_stdout(&v).trim(), "42", "{lang} stdin: {v:#}");

    // Files: one read, one created, one modified, one left alone.
    let v = execute(
        sc,
        lang,
        p.files,
        json!({"files": [
            {"path": "input.txt", "content": "the quick brown fox\n"},
            {"path": "existing.txt", "content": "old\n"},
            {"path": "untouched.txt", "content": "same\n", "encoding": "utf8"},
        ]}),
    );
    assert_eq!(
        ok_stdout(&v).trim_end(),
        "the quick brown fox",
        "{lang} files: {v:#}"
    );
    assert_eq!(
        file_paths(&v),
        ["existing.txt", "out.txt"],
        "{lang}: exactly the created and the modified file come back (not the code, the \
         inputs or build products): {v:#}"
    );
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["size"], "modified!\n".len(), "{v:#}");
    assert_eq!(files[1]["size"], "written\n".len(), "{v:#}");
    for f in files {
        assert!(f["mtime"].as_str().is_some_and(|m| m.ends_with('Z')), "{f}");
    }
    let written = std::fs::read_to_string(sc.workspace.join("out.txt")).unwrap();
    assert_eq!(written, "written\n");
    let modified = std::fs::read_to_string(sc.workspace.join("existing.txt")).unwrap();
    assert_eq!(modified, "modified!\n");

    // A compile error: the compiler's message, no run stage.
    if let Some((code, message)) = p.compile_error {
        let v = execute(sc, lang, code, json!({}));
        assert_eq!(v["status"], "compile_error", "{lang}: {v:#}");
        assert!(v["run"].is_null(), "{lang}: {v:#}");
        let compile = &v["compile"];
        assert_ne!(compile["exitCode"], 0, "{v:#}");
        let said = format!("{}{}", compile["stdout"], compile["stderr"]);
        assert!(
            said.contains(message),
            "{lang}: compiler message without `{message}`: {v:#}"
        );
        let top = format!("{}{}", v["stdout"], v["stderr"]);
        assert!(top.contains(message), "{lang}: {v:#}");
        assert_ne!(v["exit_code"], 0, "{v:#}");
        assert_eq!(v["files"], json!([]), "{lang}: {v:#}");
    }

    // A runtime error: its exit code and message.
    let (code, exit, message) = p.runtime_error;
    let v = execute(sc, lang, code, json!({}));
    assert_eq!(v["status"], "runtime_error", "{lang}: {v:#}");
    assert_eq!(v["exit_code"], exit, "{lang}: {v:#}");
    assert_eq!(v["run"]["exitCode"], exit, "{lang}: {v:#}");
    assert!(
        v["stderr"].as_str().unwrap().contains(message),
        "{lang}: stderr without `{message}`: {v:#}"
    );
    if p.compile_error.is_some() {
        assert_eq!(v["compile"]["exitCode"], 0, "{lang}: {v:#}");
    } else {
        assert!(v["compile"].is_null(), "{lang}: {v:#}");
    }
}

/// Starts a sidecar; `None` when the language's toolchain is missing (skipped).
fn sidecar_for(code: &str) -> Option<Sidecar> {
    let sc = Sidecar::start();
    language_available(&sc, code).then_some(sc)
}

#[test]
fn python() {
    let Some(sc) = sidecar_for("py") else { return };
    common(
        &sc,
        &Programs {
            code: "py",
            hello: "import sys\nprint('hello, world')\nfor a in sys.argv[1:]:\n    print(a)\n",
            stdin_sum: "a, b = map(int, input().split())\nprint(a + b)\n",
            files: "print(open('input.txt').read().strip())\n\
                    open('out.txt', 'w').write('written\\n')\n\
                    open('existing.txt', 'w').write('modified!\\n')\n",
            compile_error: None,
            runtime_error: ("raise ValueError('boom')\n", 1, "ValueError: boom"),
        },
    );
    // The `python` alias names the language by its code.
    let v = execute(&sc, "python", "print(6 * 7)", json!({}));
    assert_eq!(v["language"], "py");
    // A syntax error is a runtime error for an interpreter (no compile stage).
    let v = execute(&sc, "py", "def f(:\n", json!({}));
    assert_eq!(v["status"], "runtime_error", "{v:#}");
    assert!(v["stderr"].as_str().unwrap().contains("SyntaxError"), "{v}");
}

#[test]
fn javascript() {
    let Some(sc) = sidecar_for("js") else { return };
    common(
        &sc,
        &Programs {
            code: "js",
            hello: "console.log('hello, world');\nfor (const a of process.argv.slice(2)) console.log(a);\n",
            stdin_sum: "const s = require('fs').readFileSync(0, 'utf8');\n\
                        const [a, b] = s.trim().split(/\\s+/).map(Number);\nconsole.log(a + b);\n",
            files: "const fs = require('fs');\n\
                    console.log(fs.readFileSync('input.txt', 'utf8').trim());\n\
                    fs.writeFileSync('out.txt', 'written\\n');\n\
                    fs.writeFileSync('existing.txt', 'modified!\\n');\n",
            compile_error: None,
            runtime_error: ("throw new Error('boom');\n", 1, "Error: boom"),
        },
    );
    // An ES module: import, top-level await, import.meta.
    let esm = "import { basename } from 'node:path';\n\
               const x = await Promise.resolve(42);\n\
               console.log(basename('/a/b.txt'), x, import.meta.url.startsWith('file:'));\n";
    let v = execute(&sc, "js", esm, json!({}));
    assert_eq!(ok_stdout(&v), "b.txt 42 true\n", "{v:#}");
    // An ES module that also calls require.
    let mixed = "import { sep } from 'node:path';\nconst os = require('os');\n\
                 console.log(sep, typeof os.cpus);\n";
    let v = execute(&sc, "js", mixed, json!({}));
    assert_eq!(ok_stdout(&v), "/ function\n", "{v:#}");
    // CommonJS: require, module, __filename.
    let cjs = "const path = require('path');\n\
               console.log(typeof module.exports, path.basename('/a/b.txt'), typeof __filename);\n";
    let v = execute(&sc, "js", cjs, json!({}));
    assert_eq!(ok_stdout(&v), "object b.txt string\n", "{v:#}");
    // A module supplied with the request is found by require.
    let v = execute(
        &sc,
        "js",
        "const u = require('./util.js');\nconsole.log(u.twice(21));\n",
        json!({"files": [{"path": "util.js", "content": "exports.twice = (x) => 2 * x;\n"}]}),
    );
    assert_eq!(ok_stdout(&v), "42\n", "{v:#}");
}

#[test]
fn typescript() {
    let Some(sc) = sidecar_for("ts") else { return };
    common(
        &sc,
        &Programs {
            code: "ts",
            hello: "const greeting: string = 'hello, world';\nconsole.log(greeting);\n\
                    for (const a of process.argv.slice(2)) console.log(a);\n",
            stdin_sum: "import * as fs from 'fs';\n\
                        const [a, b]: number[] = fs.readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n\
                        console.log(a + b);\n",
            files: "import * as fs from 'fs';\n\
                    console.log(fs.readFileSync('input.txt', 'utf8').trim());\n\
                    fs.writeFileSync('out.txt', 'written\\n');\n\
                    fs.writeFileSync('existing.txt', 'modified!\\n');\n",
            compile_error: Some(("const x: number = 'a string';\nconsole.log(x);\n", "TS2322")),
            runtime_error: ("throw new Error('boom');\n", 1, "Error: boom"),
        },
    );
    // Types, interfaces, generics and enums compile away.
    let code = "interface P { name: string; age: number }\nenum Color { Red, Green }\n\
                function first<T>(xs: T[]): T | undefined { return xs[0]; }\n\
                const p: P = { name: 'ada', age: 36 };\n\
                console.log(first([p])?.name, Color[Color.Green]);\n";
    let v = execute(&sc, "ts", code, json!({}));
    assert_eq!(ok_stdout(&v), "ada Green\n", "{v:#}");
}

#[test]
fn go() {
    let Some(sc) = sidecar_for("go") else { return };
    common(
        &sc,
        &Programs {
            code: "go",
            hello: "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\n\
                    func main() {\n\tfmt.Println(\"hello, world\")\n\
                    \tfor _, a := range os.Args[1:] {\n\t\tfmt.Println(a)\n\t}\n}\n",
            stdin_sum: "package main\n\nimport \"fmt\"\n\n\
                        func main() {\n\tvar a, b int\n\tfmt.Scan(&a, &b)\n\tfmt.Println(a + b)\n}\n",
            files: "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"strings\"\n)\n\n\
                    func main() {\n\tb, err := os.ReadFile(\"input.txt\")\n\
                    \tif err != nil {\n\t\tpanic(err)\n\t}\n\
                    \tfmt.Println(strings.TrimSpace(string(b)))\n\
                    \tos.WriteFile(\"out.txt\", []byte(\"written\\n\"), 0o644)\n\
                    \tos.WriteFile(\"existing.txt\", []byte(\"modified!\\n\"), 0o644)\n}\n",
            compile_error: Some((
                "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(undefinedVar)\n}\n",
                "undefined: undefinedVar",
            )),
            runtime_error: (
                "package main\n\nfunc main() {\n\tpanic(\"boom\")\n}\n",
                2,
                "panic: boom",
            ),
        },
    );
    // Module mode: a package of the caller's files imported by its module path, and
    // generics (which need a go.mod of 1.18 or later).
    let code = "package main\n\nimport (\n\t\"fmt\"\n\t\"main/util\"\n)\n\n\
                func Map[T, U any](xs []T, f func(T) U) []U {\n\tvar out []U\n\
                \tfor _, x := range xs {\n\t\tout = append(out, f(x))\n\t}\n\treturn out\n}\n\n\
                func main() {\n\tfmt.Println(util.Twice(21), Map([]int{1, 2}, util.Twice))\n}\n";
    let v = execute(
        &sc,
        "go",
        code,
        json!({"files": [{"path": "util/util.go",
                          "content": "package util\n\nfunc Twice(x int) int { return 2 * x }\n"}]}),
    );
    assert_eq!(ok_stdout(&v), "42 [2 4]\n", "{v:#}");
    // Code without a package clause gets one.
    let v = execute(
        &sc,
        "go",
        "import \"fmt\"\n\nfunc main() { fmt.Println(\"no clause\") }\n",
        json!({}),
    );
    assert_eq!(ok_stdout(&v), "no clause\n", "{v:#}");
}

#[test]
fn java() {
    let Some(sc) = sidecar_for("java") else {
        return;
    };
    common(
        &sc,
        &Programs {
            code: "java",
            // The class is named Greeter, not Code.
            hello: "public class Greeter {\n  public static void main(String[] args) {\n\
                    \x20   System.out.println(\"hello, world\");\n\
                    \x20   for (String a : args) System.out.println(a);\n  }\n}\n",
            stdin_sum: "import java.util.Scanner;\n\npublic class Sum {\n\
                        \x20 public static void main(String[] args) {\n\
                        \x20   Scanner s = new Scanner(System.in);\n\
                        \x20   int a = s.nextInt(), b = s.nextInt();\n\
                        \x20   System.out.println(a + b);\n  }\n}\n",
            files: "import java.nio.file.*;\n\npublic class Files2 {\n\
                    \x20 public static void main(String[] args) throws Exception {\n\
                    \x20   System.out.println(Files.readString(Path.of(\"input.txt\")).trim());\n\
                    \x20   Files.writeString(Path.of(\"out.txt\"), \"written\\n\");\n\
                    \x20   Files.writeString(Path.of(\"existing.txt\"), \"modified!\\n\");\n  }\n}\n",
            compile_error: Some((
                "public class Bad {\n  public static void main(String[] args) {\n\
                 \x20   int x = \"s\";\n  }\n}\n",
                "incompatible types",
            )),
            runtime_error: (
                "public class Boom {\n  public static void main(String[] args) {\n\
                 \x20   throw new IllegalStateException(\"boom\");\n  }\n}\n",
                1,
                "IllegalStateException: boom",
            ),
        },
    );
    // A class named otherwise with a helper class beside it, and a bare snippet.
    let code = "class Helper { static int twice(int x) { return 2 * x; } }\n\
                public class Greeter {\n  public static void main(String[] args) {\n\
                \x20   System.out.println(Helper.twice(21));\n  }\n}\n";
    let v = execute(&sc, "java", code, json!({}));
    assert_eq!(ok_stdout(&v), "42\n", "{v:#}");
    let v = execute(&sc, "java", "System.out.println(\"snippet\");", json!({}));
    assert_eq!(ok_stdout(&v), "snippet\n", "{v:#}");
}

#[test]
fn c() {
    let Some(sc) = sidecar_for("c") else { return };
    common(
        &sc,
        &Programs {
            code: "c",
            hello: "#include <stdio.h>\n\nint main(int argc, char **argv) {\n\
                    \x20 puts(\"hello, world\");\n  for (int i = 1; i < argc; i++) puts(argv[i]);\n\
                    \x20 return 0;\n}\n",
            stdin_sum: "#include <stdio.h>\n\nint main(void) {\n  int a, b;\n\
                        \x20 if (scanf(\"%d %d\", &a, &b) != 2) return 9;\n\
                        \x20 printf(\"%d\\n\", a + b);\n  return 0;\n}\n",
            files: "#include <stdio.h>\n\nint main(void) {\n  char line[256];\n\
                    \x20 FILE *in = fopen(\"input.txt\", \"r\");\n\
                    \x20 if (!in || !fgets(line, sizeof line, in)) return 9;\n\
                    \x20 fputs(line, stdout);\n\
                    \x20 FILE *out = fopen(\"out.txt\", \"w\");\n  fputs(\"written\\n\", out);\n  fclose(out);\n\
                    \x20 FILE *ex = fopen(\"existing.txt\", \"w\");\n  fputs(\"modified!\\n\", ex);\n  fclose(ex);\n\
                    \x20 return 0;\n}\n",
            compile_error: Some((
                "int main(void) { return undefined_var; }\n",
                "undefined_var",
            )),
            runtime_error: (
                "#include <stdio.h>\n#include <stdlib.h>\n\n\
                 int main(void) { fprintf(stderr, \"boom\\n\"); exit(3); }\n",
                3,
                "boom",
            ),
        },
    );
    // libm is linked: the argument makes the calls happen at run time.
    let code = "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n\n\
                int main(int argc, char **argv) {\n  double x = atof(argv[1]);\n\
                \x20 printf(\"%.3f %.3f %.3f\\n\", sqrt(x), cos(x), cbrt(x * 4));\n  return 0;\n}\n";
    let v = execute(&sc, "c", code, json!({"args": ["2"]}));
    assert_eq!(ok_stdout(&v), "1.414 -0.416 2.000\n", "{v:#}");
    // A crash is reported as a signal.
    let code = "int main(void) { volatile int *p = 0; return *p; }\n";
    let v = execute(&sc, "c", code, json!({}));
    assert_eq!(v["status"], "signal", "{v:#}");
    assert_eq!(v["run"]["signal"], "SIGSEGV", "{v:#}");
    // As a shell says it: 128 + 11.
    assert_eq!(v["exit_code"], 139, "{v:#}");
    assert!(v["run"]["exitCode"].is_null(), "{v:#}");
}

#[test]
fn cpp() {
    let Some(sc) = sidecar_for("cpp") else { return };
    common(
        &sc,
        &Programs {
            code: "cpp",
            hello: "#include <iostream>\n\nint main(int argc, char **argv) {\n\
                    \x20 std::cout << \"hello, world\\n\";\n\
                    \x20 for (int i = 1; i < argc; i++) std::cout << argv[i] << \"\\n\";\n}\n",
            stdin_sum: "#include <iostream>\n\nint main() {\n  int a, b;\n  std::cin >> a >> b;\n\
                        \x20 std::cout << a + b << std::endl;\n}\n",
            files: "#include <fstream>\n#include <iostream>\n#include <string>\n\nint main() {\n\
                    \x20 std::ifstream in(\"input.txt\");\n  std::string line;\n  std::getline(in, line);\n\
                    \x20 std::cout << line << \"\\n\";\n\
                    \x20 std::ofstream(\"out.txt\") << \"written\\n\";\n\
                    \x20 std::ofstream(\"existing.txt\") << \"modified!\\n\";\n}\n",
            compile_error: Some((
                "int main() { return undefined_var; }\n",
                "was not declared",
            )),
            runtime_error: (
                "#include <cstdlib>\n#include <iostream>\n\n\
                 int main() { std::cerr << \"boom\" << std::endl; std::exit(3); }\n",
                3,
                "boom",
            ),
        },
    );
    // C++17: std::optional, structured bindings, if-with-initializer, if constexpr.
    let code = "#include <iostream>\n#include <map>\n#include <optional>\n#include <string>\n\n\
                std::optional<int> find(const std::map<std::string, int> &m, const std::string &k) {\n\
                \x20 if (auto it = m.find(k); it != m.end()) return it->second;\n\
                \x20 return std::nullopt;\n}\n\n\
                int main() {\n  std::map<std::string, int> m{{\"a\", 1}, {\"b\", 2}};\n\
                \x20 for (const auto &[k, v] : m) std::cout << k << '=' << v << '\\n';\n\
                \x20 std::cout << find(m, \"b\").value_or(-1) << ' ' << find(m, \"z\").value_or(-1) << '\\n';\n\
                \x20 if constexpr (sizeof(int) >= 4) std::cout << \"constexpr\\n\";\n}\n";
    let v = execute(&sc, "cpp", code, json!({}));
    assert_eq!(ok_stdout(&v), "a=1\nb=2\n2 -1\nconstexpr\n", "{v:#}");
    // An uncaught exception aborts: a signal.
    let code = "#include <stdexcept>\nint main() { throw std::runtime_error(\"boom\"); }\n";
    let v = execute(&sc, "cpp", code, json!({}));
    assert_eq!(v["status"], "signal", "{v:#}");
    assert_eq!(v["run"]["signal"], "SIGABRT", "{v:#}");
    assert_eq!(v["exit_code"], 134, "{v:#}");
    assert!(v["stderr"].as_str().unwrap().contains("boom"), "{v:#}");
}

#[test]
fn php() {
    let Some(sc) = sidecar_for("php") else { return };
    common(
        &sc,
        &Programs {
            code: "php",
            // No `<?php`.
            hello: "echo \"hello, world\\n\";\nforeach (array_slice($argv, 1) as $a) echo $a, \"\\n\";\n",
            stdin_sum: "fscanf(STDIN, \"%d %d\", $a, $b);\necho $a + $b, \"\\n\";\n",
            files: "echo trim(file_get_contents('input.txt')), \"\\n\";\n\
                    file_put_contents('out.txt', \"written\\n\");\n\
                    file_put_contents('existing.txt', \"modified!\\n\");\n",
            compile_error: None,
            runtime_error: (
                "throw new RuntimeException('boom');\n",
                255,
                "RuntimeException: boom",
            ),
        },
    );
    // With the tag, and as a template with text around it.
    let v = execute(&sc, "php", "<?php\necho \"tagged\\n\";\n", json!({}));
    assert_eq!(ok_stdout(&v), "tagged\n", "{v:#}");
    let v = execute(&sc, "php", "before <?= 6 * 7 ?> after\n", json!({}));
    assert_eq!(ok_stdout(&v), "before 42 after\n", "{v:#}");
    // A parse error goes to stderr (once).
    let v = execute(&sc, "php", "echo 'x'\necho 'y';\n", json!({}));
    assert_eq!(v["status"], "runtime_error", "{v:#}");
    let err = v["stderr"].as_str().unwrap();
    assert_eq!(err.matches("Parse error").count(), 1, "{v:#}");
    assert!(
        !v["stdout"].as_str().unwrap().contains("Parse error"),
        "{v:#}"
    );
}

#[test]
fn rust() {
    let Some(sc) = sidecar_for("rs") else { return };
    common(
        &sc,
        &Programs {
            code: "rs",
            hello: "fn main() {\n    println!(\"hello, world\");\n\
                    \x20   for a in std::env::args().skip(1) {\n        println!(\"{}\", a);\n    }\n}\n",
            stdin_sum: "use std::io::Read;\n\nfn main() {\n    let mut s = String::new();\n\
                        \x20   std::io::stdin().read_to_string(&mut s).unwrap();\n\
                        \x20   let sum: i64 = s.split_whitespace().map(|w| w.parse::<i64>().unwrap()).sum();\n\
                        \x20   println!(\"{}\", sum);\n}\n",
            files: "fn main() {\n\
                    \x20   println!(\"{}\", std::fs::read_to_string(\"input.txt\").unwrap().trim());\n\
                    \x20   std::fs::write(\"out.txt\", \"written\\n\").unwrap();\n\
                    \x20   std::fs::write(\"existing.txt\", \"modified!\\n\").unwrap();\n}\n",
            compile_error: Some((
                "fn main() {\n    let x: i32 = \"s\";\n    println!(\"{}\", x);\n}\n",
                "mismatched types",
            )),
            runtime_error: ("fn main() {\n    panic!(\"boom\");\n}\n", 101, "boom"),
        },
    );
    // Edition 2021: TryFrom in the prelude, disjoint closure captures, arrays by value.
    let code = "struct P { a: String, b: String }\n\n\
                fn main() {\n    let too_big = u8::try_from(300i32).is_err();\n\
                \x20   let mut p = P { a: \"a\".into(), b: \"b\".into() };\n\
                \x20   let mut add = || p.a.push('!');\n    let b = &p.b;\n    add();\n\
                \x20   let sum: i32 = [1, 2, 3].into_iter().sum();\n\
                \x20   println!(\"{} {} {} {}\", too_big, p.a, b, sum);\n}\n";
    let v = execute(&sc, "rs", code, json!({}));
    assert_eq!(ok_stdout(&v), "true a! b 6\n", "{v:#}");
}

#[test]
fn r() {
    let Some(sc) = sidecar_for("r") else { return };
    common(
        &sc,
        &Programs {
            code: "r",
            hello: "cat('hello, world\\n')\nfor (a in commandArgs(trailingOnly = TRUE)) cat(a, '\\n', sep = '')\n",
            stdin_sum: "x <- scan(file('stdin'), what = integer(), quiet = TRUE)\ncat(sum(x), '\\n', sep = '')\n",
            files: "cat(readLines('input.txt')[1], '\\n', sep = '')\n\
                    writeLines('written', 'out.txt')\nwriteLines('modified!', 'existing.txt')\n",
            compile_error: None,
            runtime_error: ("stop('boom')\n", 1, "boom"),
        },
    );
}

#[test]
fn fortran() {
    let Some(sc) = sidecar_for("f90") else { return };
    common(
        &sc,
        &Programs {
            code: "f90",
            hello: "program hello\n  implicit none\n  integer :: i\n  character(len=256) :: arg\n\
                    \x20 print '(A)', 'hello, world'\n  do i = 1, command_argument_count()\n\
                    \x20   call get_command_argument(i, arg)\n    print '(A)', trim(arg)\n  end do\n\
                    end program hello\n",
            stdin_sum: "program sum\n  implicit none\n  integer :: a, b\n  read (*, *) a, b\n\
                        \x20 print '(I0)', a + b\nend program sum\n",
            files: "program files\n  implicit none\n  character(len=256) :: line\n\
                    \x20 open (10, file='input.txt', status='old')\n  read (10, '(A)') line\n  close (10)\n\
                    \x20 print '(A)', trim(line)\n\
                    \x20 open (11, file='out.txt', status='replace')\n  write (11, '(A)') 'written'\n  close (11)\n\
                    \x20 open (12, file='existing.txt', status='replace')\n  write (12, '(A)') 'modified!'\n  close (12)\n\
                    end program files\n",
            compile_error: Some((
                "program bad\n  implicit none\n  y = 1\nend program bad\n",
                "has no IMPLICIT type",
            )),
            runtime_error: ("program boom\n  error stop 3\nend program boom\n", 3, "ERROR STOP 3"),
        },
    );
}

#[test]
fn d() {
    let Some(sc) = sidecar_for("d") else { return };
    common(
        &sc,
        &Programs {
            code: "d",
            hello:
                "import std.stdio;\n\nvoid main(string[] args) {\n    writeln(\"hello, world\");\n\
                    \x20   foreach (a; args[1 .. $]) writeln(a);\n}\n",
            stdin_sum:
                "import std.stdio;\n\nvoid main() {\n    int a, b;\n    readf(\" %d %d\", a, b);\n\
                        \x20   writeln(a + b);\n}\n",
            files: "import std.file, std.stdio, std.string;\n\nvoid main() {\n\
                    \x20   writeln(readText(\"input.txt\").strip());\n\
                    \x20   std.file.write(\"out.txt\", \"written\\n\");\n\
                    \x20   std.file.write(\"existing.txt\", \"modified!\\n\");\n}\n",
            compile_error: Some((
                "void main() {\n    int x = \"s\";\n}\n",
                "cannot implicitly convert",
            )),
            runtime_error: (
                "void main() {\n    throw new Exception(\"boom\");\n}\n",
                1,
                "boom",
            ),
        },
    );
}

#[test]
fn bash() {
    let Some(sc) = sidecar_for("bash") else {
        return;
    };
    common(
        &sc,
        &Programs {
            code: "bash",
            hello: "echo 'hello, world'\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n",
            stdin_sum: "read a b\necho $((a + b))\n",
            files: "head -n 1 input.txt\necho written > out.txt\necho 'modified!' > existing.txt\n",
            compile_error: None,
            runtime_error: ("echo boom >&2\nexit 3\n", 3, "boom"),
        },
    );
    // The `sh` alias.
    let v = execute(&sc, "sh", "echo $((6 * 7))", json!({}));
    assert_eq!(v["language"], "bash");
    assert_eq!(ok_stdout(&v), "42\n");
}
