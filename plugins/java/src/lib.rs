//! Java for sidecar: `javac` into the scratch dir, then a fast-starting `java`.
//!
//! Quirks handled:
//! - File and class names follow the code, not a fixed `Code`: the source is named
//!   after the public top-level type (`public final class Greeter<T>` →
//!   `Greeter.java`), whatever its kind (class, interface, enum, record, annotation).
//!   Without a public type, the file is named after the first top-level type that
//!   declares `main`, else `Main.java`. Comments, strings, text blocks and `Foo.class`
//!   never confuse the detection (a small tokenizer is used, not regexes).
//! - The class run is the public type if it declares `main`, else the first top-level
//!   type that does, else the file's class (and `java` reports the missing `main`).
//! - `package a.b;` puts the source at `a/b/Greeter.java` and runs `a.b.Greeter`.
//! - A bare snippet (statements, no type declaration at all) is wrapped:
//!   `public class Main { public static void main(String[] args) throws Exception {`
//!   is inserted before the first statement, on the same line, after any `import`
//!   lines (which stay at the top), and `}}` is appended; line numbers in compiler
//!   errors stay those of the caller's code. A snippet cannot declare methods.
//! - Sources are UTF-8 (`-encoding UTF-8`; javac 17 otherwise follows the locale,
//!   ASCII in a bare environment, and rejects any non-ASCII literal) and so is the
//!   output (`-Dfile.encoding`, `-Dstdout.encoding`, `-Dstderr.encoding`).
//! - The JVM starts fast: `-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto`, and
//!   `-XX:-UsePerfData` so it writes no `hsperfdata` file into `/tmp`.
//! - The caller's sources, classes and jars in the work dir are reachable: `javac
//!   -sourcepath {workdir}` compiles the caller's `.java` files the code uses, and the
//!   class path is `{tmpdir}:{workdir}:{workdir}/*`.
//! - Empty code is an invalid-input error.
//!
//! Plugin placeholder: `{class}`, the fully qualified class to run.

use sidecar_plugin_sdk::lex::{tokenize, Dialect, Kind, Token};
use sidecar_plugin_sdk::*;

/// The Java plugin.
pub struct Java;

/// Inserted before the first statement of a snippet.
pub const WRAP_OPEN: &str =
    "public class Main { public static void main(String[] args) throws Exception { ";
/// Appended to a snippet.
pub const WRAP_CLOSE: &str = "\n}}\n";

impl Language for Java {
    fn describe() -> PluginInfo {
        PluginInfo::new("java", env!("CARGO_PKG_VERSION")).language(
            LanguageConfig::new(
                "java",
                "Java",
                "java",
                "Main.java",
                "java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData \
                 -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 \
                 -cp {tmpdir}:{workdir}:{workdir}/* {class}",
            )
            .compile("javac -encoding UTF-8 -d {tmpdir} -cp {workdir}:{workdir}/* -sourcepath {workdir} {file}")
            .multipliers(2.0, 1.5),
            &[],
        )
    }

    fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
        require_code(&request)?;
        let unit = analyze(&request.code);
        let (code, file_class, run_class) = if unit.types.is_empty() {
            let mut code = String::with_capacity(request.code.len() + 100);
            code.push_str(&request.code[..unit.body_start]);
            code.push_str(WRAP_OPEN);
            code.push_str(&request.code[unit.body_start..]);
            code.push_str(WRAP_CLOSE);
            (code, "Main".to_string(), "Main".to_string())
        } else {
            let public = unit.types.iter().find(|t| t.public);
            let with_main = unit.types.iter().find(|t| t.has_main);
            let file_class = public.or(with_main).map_or("Main", |t| t.name.as_str());
            let run_class = match public {
                Some(t) if t.has_main => t.name.as_str(),
                _ => with_main.map_or(file_class, |t| t.name.as_str()),
            };
            (
                request.code.clone(),
                file_class.to_string(),
                run_class.to_string(),
            )
        };
        let (dir, prefix) = match &unit.package {
            Some(pkg) => (format!("{}/", pkg.replace('.', "/")), format!("{pkg}.")),
            None => (String::new(), String::new()),
        };
        let filename = format!("{dir}{file_class}.java");
        let mut p = Planner::with_filename(&config, &request, &filename)?;
        p.var("class", format!("{prefix}{run_class}"));
        p.write_code_as(code);
        p.compile_from_config()?;
        p.run_from_config()
    }
}

/// A top-level type declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDecl {
    /// Simple name.
    pub name: String,
    /// Declared `public`.
    pub public: bool,
    /// Declares a `main` method (`void main(` in its body).
    pub has_main: bool,
}

/// What the plugin needs to know about a compilation unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    /// `package a.b;`, if any.
    pub package: Option<String>,
    /// Top-level types, in order.
    pub types: Vec<TypeDecl>,
    /// Byte offset just past the package and import declarations.
    pub body_start: usize,
}

/// Find the package, the imports' end and the top-level types of Java source.
pub fn analyze(code: &str) -> Unit {
    let tokens = tokenize(code, Dialect::JAVA);
    let mut unit = Unit::default();
    let mut i = 0;
    if tokens.first().is_some_and(|t| t.is_ident("package")) {
        let mut name = String::new();
        i = 1;
        while i < tokens.len() && !tokens[i].is_punct(';') {
            name.push_str(tokens[i].text);
            i += 1;
        }
        unit.package = Some(name);
        i += 1;
    }
    while tokens.get(i).is_some_and(|t| t.is_ident("import")) {
        while i < tokens.len() && !tokens[i].is_punct(';') {
            i += 1;
        }
        i += 1;
    }
    unit.body_start = tokens.get(i).map_or(code.len(), |t| t.start);
    // Where the current declaration's modifiers started.
    let mut decl_start = i;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.depth != 0 {
            i += 1;
            continue;
        }
        if t.is_punct(';') || t.is_punct('}') {
            decl_start = i + 1;
            i += 1;
            continue;
        }
        let after_dot = i > 0 && tokens[i - 1].is_punct('.');
        let is_type_keyword = match t.text {
            "class" | "interface" | "enum" => t.kind == Kind::Ident && !after_dot,
            "record" => {
                t.kind == Kind::Ident
                    && tokens.get(i + 1).is_some_and(|n| n.kind == Kind::Ident)
                    && tokens
                        .get(i + 2)
                        .is_some_and(|n| n.is_punct('(') || n.is_punct('<'))
            }
            _ => false,
        };
        let Some(name) = tokens
            .get(i + 1)
            .filter(|n| is_type_keyword && n.kind == Kind::Ident)
        else {
            i += 1;
            continue;
        };
        let public = tokens[decl_start..i].iter().any(|m| m.is_ident("public"));
        // The body: from the first `{` at depth 0 to its matching `}`.
        let mut j = i + 2;
        while j < tokens.len() && !(tokens[j].depth == 0 && tokens[j].is_punct('{')) {
            j += 1;
        }
        let body_start = j + 1;
        j += 1;
        while j < tokens.len() && !(tokens[j].depth == 0 && tokens[j].is_punct('}')) {
            j += 1;
        }
        let body = &tokens[body_start.min(tokens.len())..j.min(tokens.len())];
        unit.types.push(TypeDecl {
            name: name.text.to_string(),
            public,
            has_main: declares_main(body),
        });
        decl_start = j + 1;
        i = j + 1;
    }
    unit
}

/// Whether a type body (tokens between its braces) declares `void main(`.
fn declares_main(body: &[Token<'_>]) -> bool {
    body.windows(3).any(|w| {
        w[0].depth == 1 && w[0].is_ident("void") && w[1].is_ident("main") && w[2].is_punct('(')
    })
}

export_plugin!(Java);

#[cfg(test)]
mod tests {
    use super::*;
    use sidecar_plugin_sdk::testing::*;

    fn java() -> LanguageConfig {
        config::<Java>("java")
    }

    fn names(code: &str) -> (String, String) {
        let p = plan::<Java>(java(), request(code)).unwrap();
        (p.files[0].path.clone(), p.run.argv.last().unwrap().clone())
    }

    #[test]
    fn hello_world() {
        assert_plan(
            plan::<Java>(java(), request("public class Hello {\n  public static void main(String[] args) {\n    System.out.println(\"hello\");\n  }\n}\n").with_args(&["a"])),
            r#"
            file scratch/Hello.java
              | public class Hello {
              |   public static void main(String[] args) {
              |     System.out.println("hello");
              |   }
              | }
            compile javac -encoding UTF-8 -d /scratch -cp '/work:/work/*' -sourcepath /work /scratch/Hello.java
            run java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 -cp '/scratch:/work:/work/*' Hello a
            "#,
        );
    }

    #[test]
    fn public_type_names_the_file_whatever_its_form() {
        assert_eq!(names("public final class Greeter<T extends Comparable<T>> { public static void main(String[] a) {} }").0, "Greeter.java");
        assert_eq!(names("@SuppressWarnings(\"x\") public abstract sealed class Shape permits A {}\nfinal class A extends Shape {}").0, "Shape.java");
        assert_eq!(
            names("public record Point(int x, int y) { public static void main(String[] a) {} }"),
            ("Point.java".into(), "Point".into())
        );
        assert_eq!(
            names("public interface Api { static void main(String[] a) {} }"),
            ("Api.java".into(), "Api".into())
        );
        assert_eq!(
            names("public enum Color { RED; public static void main(String[] a) {} }"),
            ("Color.java".into(), "Color".into())
        );
        assert_eq!(names("public @interface Marker {}").0, "Marker.java");
    }

    #[test]
    fn comments_strings_and_class_literals_do_not_confuse() {
        let code = r#"
// public class Wrong {}
/* public class AlsoWrong { void main( } */
import java.util.*;
class Helper { String s = "public class Nope {"; Class<?> c = Helper.class; }
public class Right {
    String t = """
        public class InTextBlock { }
        """;
    char q = '{';
    public static void main(String[] args) { System.out.println(Right.class); }
}
"#;
        assert_eq!(names(code), ("Right.java".into(), "Right".into()));
    }

    #[test]
    fn without_a_public_type_the_main_class_names_the_file() {
        assert_eq!(
            names("class A {}\nclass B { public static void main(String[] a) {} }"),
            ("B.java".into(), "B".into())
        );
        assert_eq!(
            names("class A { void m() {} }"),
            ("Main.java".into(), "Main".into())
        );
        // A public type without main: the file follows it, another class runs.
        assert_eq!(
            names("public class Lib {}\nclass App { public static void main(String[] a) {} }"),
            ("Lib.java".into(), "App".into())
        );
    }

    #[test]
    fn packages_give_a_directory_and_a_qualified_name() {
        assert_plan(
            plan::<Java>(java(), request("package com.example.app;\n\npublic class Greeter { public static void main(String[] a) {} }")),
            r#"
            file scratch/com/example/app/Greeter.java
              | package com.example.app;
              |
              | public class Greeter { public static void main(String[] a) {} }
              (no newline at end)
            compile javac -encoding UTF-8 -d /scratch -cp '/work:/work/*' -sourcepath /work /scratch/com/example/app/Greeter.java
            run java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 -cp '/scratch:/work:/work/*' com.example.app.Greeter
            "#,
        );
    }

    #[test]
    fn snippets_are_wrapped_keeping_imports_and_line_numbers() {
        assert_plan(
            plan::<Java>(java(), request("import java.util.*;\nimport static java.lang.Math.max;\nList<Integer> xs = new ArrayList<>();\nxs.add(max(1, 2));\nSystem.out.println(xs);\n")),
            r#"
            file scratch/Main.java
              | import java.util.*;
              | import static java.lang.Math.max;
              | public class Main { public static void main(String[] args) throws Exception { List<Integer> xs = new ArrayList<>();
              | xs.add(max(1, 2));
              | System.out.println(xs);
              |
              | }}
            compile javac -encoding UTF-8 -d /scratch -cp '/work:/work/*' -sourcepath /work /scratch/Main.java
            run java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 -cp '/scratch:/work:/work/*' Main
            "#,
        );
        // "class" inside a string or as `.class` does not make a snippet a class.
        let p = plan::<Java>(
            java(),
            request("System.out.println(\"class X {}\" + String.class);"),
        )
        .unwrap();
        assert!(String::from_utf8(p.files[0].content.clone())
            .unwrap()
            .starts_with(WRAP_OPEN));
    }

    #[test]
    fn empty_code_is_invalid() {
        assert_plan(
            plan::<Java>(java(), request("  ")),
            "error invalid-input: the code is empty: there is nothing to compile",
        );
    }

    #[test]
    fn analysis() {
        let unit = analyze("package a.b ;\nimport x.Y;\n@Ann(k = Foo.class)\npublic class C {}\nrecord R(int a) {}\ninterface I { class Inner { public static void main(String[] s) {} } }");
        assert_eq!(unit.package.as_deref(), Some("a.b"));
        let got: Vec<_> = unit
            .types
            .iter()
            .map(|t| (t.name.as_str(), t.public, t.has_main))
            .collect();
        assert_eq!(
            got,
            [("C", true, false), ("R", false, false), ("I", false, false)]
        );
    }

    #[test]
    #[ignore = "needs a JDK"]
    fn real_java() {
        let out = execute::<Java>(
            java(),
            "import java.util.*;\nvar xs = new ArrayList<String>(List.of(args));\nxs.add(Helper.greet());\nSystem.out.println(\"héllo \" + xs);\n",
            &["a b"],
            &[("Helper.java", "public class Helper { static String greet() { return \"✓\"; } }\n")],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "héllo [a b, ✓]\n"),
            "{out:?}"
        );
        let out = execute::<Java>(
            java(),
            "package x.y;\nimport java.util.function.*;\npublic final class Greeter<T> {\n  public static void main(String[] args) throws Exception {\n    Supplier<String> s = () -> \"hi\";\n    System.out.println(s.get() + \" from \" + Greeter.class.getName());\n  }\n}\n",
            &[],
            &[],
            None,
        );
        assert_eq!(
            (out.stage, out.stdout.as_str()),
            ("run", "hi from x.y.Greeter\n"),
            "{out:?}"
        );
        let out = execute::<Java>(java(), "int x = \"no\";\n", &[], &[], None);
        assert_eq!(out.stage, "compile");
        assert!(out.stderr.contains("Main.java:1: error"), "{out:?}");
    }
}
