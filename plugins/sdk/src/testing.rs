//! Golden tests for plugins, run natively with `cargo test`.
//!
//! Build a config from the plugin's own defaults ([`config`]), a request
//! ([`request`], with builder methods on [`PlanRequest`]), make the plan and compare
//! its text form ([`render`]) with the expected text ([`assert_plan`]). On a mismatch
//! the assertion prints a line diff and the whole actual text, ready to paste.
//!
//! ```
//! use sidecar_plugin_sdk::testing::*;
//! use sidecar_plugin_sdk::*;
//!
//! struct Py;
//! impl Language for Py {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("py", "1.0").language(
//!             LanguageConfig::new("py", "Python", "py", "code.py", "python3 -u {file}"),
//!             &[],
//!         )
//!     }
//!     fn plan(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
//!         let mut p = Planner::new(&config, &request)?;
//!         p.env("PYTHONUNBUFFERED", "1")?;
//!         p.write_code();
//!         p.run_from_config()
//!     }
//! }
//!
//! assert_plan(
//!     plan::<Py>(config::<Py>("py"), request("print(1)").with_args(&["a b"])),
//!     r#"
//!     file scratch/code.py
//!       | print(1)
//!       (no newline at end)
//!     run python3 -u /scratch/code.py 'a b'
//!       env PYTHONUNBUFFERED=1
//!     "#,
//! );
//! ```
//!
//! The text form: one `file <location>/<path>` block per file (content lines prefixed
//! with `| `), then one `compile <argv>` per compile command and one `run <argv>`,
//! each followed by its `env NAME=value` lines (or `env (as above)` when identical to
//! the previous command's) and `cwd <dir>` when set. Words are shell-quoted only when
//! needed. An error renders as `error <case>: <message>`.

use crate::{FileLocation, InputFile, Language, LanguageConfig, Plan, PlanError, PlanRequest};

/// The work dir of [`request`].
pub const WORK_DIR: &str = "/work";
/// The scratch dir of [`request`].
pub const SCRATCH_DIR: &str = "/scratch";

/// A request for `code` with no files, no arguments, no stdin, work dir [`WORK_DIR`]
/// and scratch dir [`SCRATCH_DIR`].
pub fn request(code: &str) -> PlanRequest {
    PlanRequest {
        code: code.to_string(),
        files: Vec::new(),
        args: Vec::new(),
        has_stdin: false,
        work_dir: WORK_DIR.to_string(),
        scratch_dir: SCRATCH_DIR.to_string(),
    }
}

impl PlanRequest {
    /// Set the program arguments.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Add a caller-supplied file.
    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        self.files.push(InputFile {
            path: path.to_string(),
            content: content.as_bytes().to_vec(),
        });
        self
    }

    /// Say the caller gave stdin.
    pub fn with_stdin(mut self) -> Self {
        self.has_stdin = true;
        self
    }
}

/// The defaults the plugin `L` declares for language `code` (panics if it serves no
/// such language).
pub fn config<L: Language>(code: &str) -> LanguageConfig {
    let info = L::describe();
    match info.languages.into_iter().find(|l| l.defaults.code == code) {
        Some(l) => l.defaults,
        None => panic!("plugin `{}` does not serve language `{code}`", info.name),
    }
}

/// `L::plan(config, request)`.
pub fn plan<L: Language>(config: LanguageConfig, request: PlanRequest) -> Result<Plan, PlanError> {
    L::plan(config, request)
}

/// The stable text form of a plan (see the module docs).
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for f in &plan.files {
        let location = match f.location {
            FileLocation::Scratch => "scratch",
            FileLocation::WorkDir => "workdir",
        };
        out.push_str(&format!("file {location}/{}", f.path));
        if f.executable {
            out.push_str(" (executable)");
        }
        out.push('\n');
        match std::str::from_utf8(&f.content) {
            Ok("") => out.push_str("  (empty)\n"),
            Ok(text) => {
                for line in text.split_inclusive('\n') {
                    let line = line.strip_suffix('\n').unwrap_or(line);
                    out.push_str(format!("  | {line}").trim_end());
                    out.push('\n');
                }
                if !text.ends_with('\n') {
                    out.push_str("  (no newline at end)\n");
                }
            }
            Err(_) => out.push_str(&format!("  ({} bytes, not UTF-8)\n", f.content.len())),
        }
    }
    let mut previous_env: Option<&Vec<(String, String)>> = None;
    let commands = plan
        .compile
        .iter()
        .map(|c| ("compile", c))
        .chain(std::iter::once(("run", &plan.run)));
    for (kind, command) in commands {
        out.push_str(kind);
        if command.argv.is_empty() {
            out.push_str(" (empty argv)");
        }
        for word in &command.argv {
            out.push(' ');
            out.push_str(&shell_quote(word));
        }
        out.push('\n');
        if !command.env.is_empty() && previous_env == Some(&command.env) {
            out.push_str("  env (as above)\n");
        } else {
            for (name, value) in &command.env {
                out.push_str(&format!("  env {name}={}\n", shell_quote(value)));
            }
        }
        previous_env = Some(&command.env);
        if let Some(cwd) = &command.cwd {
            out.push_str(&format!("  cwd {}\n", shell_quote(cwd)));
        }
    }
    out
}

/// [`render`] for a plan, `error <case>: <message>` for an error.
pub fn render_result(result: &Result<Plan, PlanError>) -> String {
    match result {
        Ok(plan) => render(plan),
        Err(PlanError::InvalidInput(m)) => format!("error invalid-input: {m}\n"),
        Err(PlanError::Unsupported(m)) => format!("error unsupported: {m}\n"),
    }
}

/// Assert that the plan (or error) renders as `expected` (indentation common to all
/// lines and blank first/last lines are ignored, so expected texts can be indented
/// raw strings). Panics with a diff otherwise.
#[track_caller]
pub fn assert_plan(result: Result<Plan, PlanError>, expected: &str) {
    assert_text(&render_result(&result), expected);
}

/// Compare two texts after [`dedent`]; panic with a line diff when they differ.
#[track_caller]
pub fn assert_text(actual: &str, expected: &str) {
    let actual = dedent(actual);
    let expected = dedent(expected);
    if actual != expected {
        panic!(
            "plan differs from the expected text (- expected, + actual):\n{}\nthe whole actual text:\n{}",
            diff(&expected, &actual),
            actual
        );
    }
}

/// Remove blank first and last lines, trailing blanks of every line, and the
/// indentation common to all non-blank lines.
pub fn dedent(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    while lines.first().is_some_and(|l| l.is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in lines {
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// A line diff (longest common subsequence): `  ` same, `- ` only in `old`, `+ ` only
/// in `new`.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Quote `word` for a POSIX shell only when needed (so golden texts stay readable).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-{}".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The result of [`execute`]: the stage that ended the execution (`"compile"` when a
/// compile command failed, `"run"` otherwise), its exit code and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `"compile"` or `"run"`.
    pub stage: &'static str,
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Whether `program` is found on `PATH` (tests that need a real toolchain skip
/// themselves without it).
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Make a plan with `L` and carry it out natively, like a (sandbox-less) host would:
/// fresh work and scratch dirs under the system temp dir, the request's `files`
/// written into the work dir, the plan's files written, compile commands run in order
/// (stopping at the first failure), then the run command with `stdin`. Commands get
/// only `HOME` and `TMPDIR` (the scratch dir), this process's `PATH` and the plan's
/// variables. For end-to-end checks of a plugin against real toolchains; panics if
/// the plugin returns an error.
pub fn execute<L: Language>(
    config: LanguageConfig,
    code: &str,
    args: &[&str],
    files: &[(&str, &str)],
    stdin: Option<&str>,
) -> Outcome {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let root = std::env::temp_dir().join(format!(
        "sidecar-plugin-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let work = root.join("work");
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let mut req = request(code).with_args(args);
    req.work_dir = work.to_string_lossy().into_owned();
    req.scratch_dir = scratch.to_string_lossy().into_owned();
    if stdin.is_some() {
        req = req.with_stdin();
    }
    for (path, content) in files {
        let target = work.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, content).unwrap();
        req = req.with_file(path, content);
    }
    let plan = match L::plan(config, req) {
        Ok(plan) => plan,
        Err(e) => panic!("the plugin refused: {}", render_result(&Err(e))),
    };
    for f in &plan.files {
        let base = match f.location {
            FileLocation::Scratch => &scratch,
            FileLocation::WorkDir => &work,
        };
        let target = base.join(&f.path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &f.content).unwrap();
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let run_one = |command: &crate::Command, default_cwd: &std::path::Path, input: Option<&str>| {
        let mut cmd = std::process::Command::new(&command.argv[0]);
        cmd.args(&command.argv[1..])
            .env_clear()
            .env("HOME", &scratch)
            .env("TMPDIR", &scratch)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .current_dir(
                command
                    .cwd
                    .as_deref()
                    .map_or(default_cwd, std::path::Path::new),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.argv));
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = input {
            let _ = pipe.write_all(text.as_bytes());
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    };
    let mut outcome = None;
    for command in &plan.compile {
        let out = run_one(command, &scratch, None);
        if !out.status.success() {
            outcome = Some(("compile", out));
            break;
        }
    }
    let (stage, out) = outcome.unwrap_or_else(|| ("run", run_one(&plan.run, &work, stdin)));
    let _ = std::fs::remove_dir_all(&root);
    Outcome {
        stage,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, PlanFile};

    #[test]
    fn renders_a_plan() {
        let plan = Plan {
            files: vec![
                PlanFile::scratch("code.c", "int main(){}\n"),
                PlanFile::work_dir("run.sh", "echo\nhi").executable(),
                PlanFile::scratch("empty", ""),
                PlanFile::scratch("bin", vec![0xff, 0xfe]),
            ],
            compile: vec![Command::new(["gcc", "-o", "/s/code", "/s/code.c"]).env("A", "1")],
            run: Command::new(["/s/code", "a b", "it's", ""])
                .env("A", "1")
                .cwd("/w"),
        };
        assert_text(
            &render(&plan),
            r#"
            file scratch/code.c
              | int main(){}
            file workdir/run.sh (executable)
              | echo
              | hi
              (no newline at end)
            file scratch/empty
              (empty)
            file scratch/bin
              (2 bytes, not UTF-8)
            compile gcc -o /s/code /s/code.c
              env A=1
            run /s/code 'a b' 'it'\''s' ''
              env (as above)
              cwd /w
            "#,
        );
    }

    #[test]
    fn renders_errors() {
        assert_eq!(
            render_result(&Err(PlanError::invalid("no"))),
            "error invalid-input: no\n"
        );
        assert_eq!(
            render_result(&Err(PlanError::unsupported("nope"))),
            "error unsupported: nope\n"
        );
    }

    #[test]
    fn dedents() {
        assert_eq!(dedent("\n    a\n      b\n\n    c\n  "), "a\n  b\n\nc\n");
    }

    #[test]
    fn diffs() {
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
        assert_eq!(diff("", "a\n"), "+ a\n");
    }

    #[test]
    #[should_panic(expected = "- run b\n+ run a")]
    fn assertion_shows_a_diff() {
        assert_plan(Ok(Plan::new(Command::new(["a"]))), "run b");
    }
}
