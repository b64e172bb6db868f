//! Hostile programs, through POST /execute and POST /bash: each ends within its timeout
//! (we allow the timeout plus 3 s of wall time around the request), leaves no process
//! behind, and the sidecar keeps serving afterwards. Then the races of the runner we
//! replace: many concurrent executions in one session, each with its own result.
//!
//! Every test starts its own sidecar; processes are found by markers unique to the test
//! (a number in the command line, or the sidecar's private scratch dir, where every
//! execution's code file lives).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sidecar_tests::{
    language_available, processes_with, protection_active, timed, unique_marker, wait_no_processes,
    Options, Sidecar,
};

/// Slack over the timeout for the wall time around a request.
const SLACK: Duration = Duration::from_secs(3);
/// How long leftovers get to disappear after the response (they should be gone already).
const REAP: Duration = Duration::from_secs(3);

/// The marker of every process running code of `sc` through /execute: its scratch dir.
fn scratch_marker(sc: &Sidecar) -> String {
    sc.dir.path().join("scratch").display().to_string()
}

/// POST /execute with a timeout; asserts the wall time.
fn execute(sc: &Sidecar, language: &str, code: &str, timeout: f64) -> Value {
    let body = json!({"language": language, "code": code, "timeoutSeconds": timeout});
    let (v, took) = timed(|| sc.execute(&body));
    let bound = Duration::from_secs_f64(timeout) + SLACK;
    assert!(
        took < bound,
        "/execute {language} took {took:?} (timeout {timeout} s): {v:#}"
    );
    v
}

/// The end of a /bash stream, and what it printed.
struct BashResult {
    done: Value,
    stdout: String,
    stderr: String,
}

/// POST /bash with a timeout; asserts the wall time.
fn bash(sc: &Sidecar, command: &str, timeout: f64) -> BashResult {
    let body = json!({"command": command, "timeoutSeconds": timeout});
    let (lines, took) = timed(|| sc.bash(&body));
    let bound = Duration::from_secs_f64(timeout) + SLACK;
    assert!(
        took < bound,
        "/bash took {took:?} (timeout {timeout} s): {command}"
    );
    let done = lines.last().cloned().unwrap_or(Value::Null);
    assert_eq!(done["type"], "done", "{lines:?}");
    let mut stdout = String::new();
    let mut stderr = String::new();
    for l in &lines {
        if l["type"] == "delta" {
            match l["stream"].as_str() {
                Some("stdout") => stdout.push_str(l["data"].as_str().unwrap()),
                _ => stderr.push_str(l["data"].as_str().unwrap()),
            }
        }
    }
    BashResult {
        done,
        stdout,
        stderr,
    }
}

/// Nothing of the marker runs any more.
fn assert_no_processes(marker: &str, what: &str) {
    let left = wait_no_processes(marker, REAP);
    assert!(left.is_empty(), "{what} left processes behind: {left:#?}");
}

/// The sidecar still answers /health and runs code.
fn assert_serving(sc: &Sidecar) {
    let (status, health) = sc.get("/health");
    assert_eq!(status, 200, "{health}");
    let v = execute(sc, "bash", "echo alive", 10.0);
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(v["stdout"], "alive\n", "{v:#}");
}

#[test]
fn fork_bombs_are_contained() {
    let sc = Sidecar::start();
    let scratch = scratch_marker(&sc);
    if language_available(&sc, "py") {
        let v = execute(&sc, "py", "import os\nwhile True:\n    os.fork()\n", 3.0);
        assert_ne!(v["status"], "ok", "{v:#}");
        assert_no_processes(&scratch, "a Python fork bomb");
        assert_serving(&sc);

        let m = unique_marker();
        let r = bash(
            &sc,
            &format!("python3 -c 'import os\nwhile True:\n    os.fork()' {m}"),
            3.0,
        );
        assert_ne!(r.done["exitCode"], 0, "{}", r.done);
        assert_no_processes(&m, "a Python fork bomb in /bash");
        assert_serving(&sc);
    }

    let v = execute(&sc, "bash", ":(){ :|:& };:", 3.0);
    assert!(v["ok"] == true, "{v:#}");
    assert_no_processes(&scratch, "a shell fork bomb");
    assert_serving(&sc);

    let m = unique_marker();
    bash(&sc, &format!("bash -c ':(){{ :|:& }};:' {m}"), 3.0);
    assert_no_processes(&m, "a shell fork bomb in /bash");
    assert_serving(&sc);
}

#[test]
fn infinite_loops_and_sleeps_time_out() {
    let sc = Sidecar::start();
    let scratch = scratch_marker(&sc);
    if language_available(&sc, "py") {
        let v = execute(&sc, "py", "while True:\n    pass\n", 2.0);
        assert_eq!(v["status"], "timeout", "{v:#}");
        assert_eq!(v["exit_code"], 124, "{v:#}");
        assert_eq!(v["run"]["timedOut"], true, "{v:#}");
        assert_no_processes(&scratch, "an infinite loop");
    }
    let m = unique_marker();
    let r = bash(&sc, &format!("while :; do :; done # {m}"), 2.0);
    assert_eq!(r.done["timedOut"], true, "{}", r.done);
    assert_no_processes(&m, "an infinite loop in /bash");

    // Sleeping past the timeout (a CPU-time limit would never fire).
    let m = unique_marker();
    let v = execute(&sc, "bash", &format!("echo before\nsleep 1000.{m}\n"), 1.0);
    assert_eq!(v["status"], "timeout", "{v:#}");
    assert_eq!(v["exit_code"], 124, "{v:#}");
    assert_eq!(
        v["stdout"], "before\n",
        "output before the timeout is kept: {v:#}"
    );
    assert_no_processes(&m, "a sleep");
    let m = unique_marker();
    let r = bash(&sc, &format!("echo before; sleep 1000.{m}"), 1.0);
    assert_eq!(r.done["timedOut"], true, "{}", r.done);
    assert_eq!(r.stdout, "before\n");
    assert_no_processes(&m, "a sleep in /bash");
    assert_serving(&sc);
}

#[test]
fn daemons_do_not_survive_their_execution() {
    let sc = Sidecar::start();
    // A daemon in its own session, holding the output pipes, then one that closed them.
    for redirect in ["", " >/dev/null 2>&1 </dev/null"] {
        let m = unique_marker();
        let v = execute(
            &sc,
            "bash",
            &format!("setsid sleep 1000.{m}{redirect} &\necho started\nexit 0\n"),
            5.0,
        );
        assert_eq!(v["status"], "ok", "{v:#}");
        assert_eq!(v["stdout"], "started\n", "{v:#}");
        assert_no_processes(&m, "a setsid daemon");

        let m = unique_marker();
        let r = bash(
            &sc,
            &format!("setsid sleep 1000.{m}{redirect} & echo started; exit 0"),
            5.0,
        );
        assert_eq!(r.done["exitCode"], 0, "{} stderr: {}", r.done, r.stderr);
        assert_eq!(r.stdout, "started\n");
        assert_no_processes(&m, "a setsid daemon in /bash");
    }
    // A classic double fork.
    if language_available(&sc, "py") {
        let m = unique_marker();
        let code = format!(
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n\
             \x20       os.execvp('sleep', ['sleep', '1000.{m}'])\n    os._exit(0)\nprint('parent done')\n"
        );
        let v = execute(&sc, "py", &code, 5.0);
        assert_eq!(v["stdout"], "parent done\n", "{v:#}");
        assert_no_processes(&m, "a double-forked daemon");
    }
    assert_serving(&sc);
}

#[test]
fn stopping_the_process_group_times_out() {
    let sc = Sidecar::start();
    let m = unique_marker();
    let v = execute(
        &sc,
        "bash",
        &format!("sleep 1000.{m} &\nkill -STOP 0\necho never\n"),
        2.0,
    );
    assert_eq!(v["status"], "timeout", "{v:#}");
    assert_eq!(v["exit_code"], 124, "{v:#}");
    assert_no_processes(&m, "kill -STOP 0");
    assert_serving(&sc);

    let m = unique_marker();
    let r = bash(
        &sc,
        &format!("sleep 1000.{m} & kill -STOP 0; echo never"),
        2.0,
    );
    assert_eq!(r.done["timedOut"], true, "{}", r.done);
    assert!(!r.stdout.contains("never"));
    assert_no_processes(&m, "kill -STOP 0 in /bash");
    assert_serving(&sc);
}

#[test]
fn output_floods_are_capped() {
    let sc = Sidecar::start();
    let cap = 1 << 20;
    let m = unique_marker();
    let v = execute(&sc, "bash", &format!("yes {m} &\nyes {m} >&2\n"), 2.0);
    assert_eq!(v["status"], "timeout", "{v:#}");
    let run = &v["run"];
    assert_eq!(run["stdoutTruncated"], true);
    assert_eq!(run["stderrTruncated"], true);
    let out = run["stdout"].as_str().unwrap();
    let err = run["stderr"].as_str().unwrap();
    assert!(out.len() <= cap && out.len() > cap / 2, "{}", out.len());
    assert!(err.len() <= cap && err.len() > cap / 2, "{}", err.len());
    assert!(out.starts_with(&format!("{m}\n{m}\n")));
    assert!(err.starts_with(&format!("{m}\n{m}\n")));
    assert_no_processes(&m, "yes");

    let m = unique_marker();
    let r = bash(&sc, &format!("yes {m} & yes {m} >&2"), 2.0);
    assert_eq!(r.done["timedOut"], true, "{}", r.done);
    assert_eq!(r.done["stdoutTruncated"], true, "{}", r.done);
    assert_eq!(r.done["stderrTruncated"], true, "{}", r.done);
    assert!(r.stdout.len() <= cap && r.stdout.len() > cap / 2);
    assert!(r.stderr.len() <= cap && r.stderr.len() > cap / 2);
    assert_no_processes(&m, "yes in /bash");
    assert_serving(&sc);
}

#[test]
fn memory_floods_hit_the_memory_limit() {
    let sc = Sidecar::start();
    if !language_available(&sc, "py") {
        return;
    }
    let flood = "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))\n";
    let v = execute(&sc, "py", flood, 20.0);
    assert_eq!(v["status"], "memory_limit", "{v:#}");
    // Killed by the kernel's OOM killer: SIGKILL, 128 + 9 (as Kubernetes reports it).
    assert_eq!(v["exit_code"], 137, "{v:#}");
    assert_eq!(v["run"]["signal"], "SIGKILL", "{v:#}");
    assert_eq!(v["run"]["timedOut"], false, "{v:#}");
    assert_no_processes(&scratch_marker(&sc), "a memory flood");

    let m = unique_marker();
    let r = bash(&sc, &format!("python3 -c '{flood}' {m}"), 20.0);
    assert_eq!(r.done["timedOut"], false, "{}", r.done);
    assert_ne!(r.done["exitCode"], 0, "{}", r.done);
    assert_no_processes(&m, "a memory flood in /bash");
    assert_serving(&sc);
}

#[test]
fn disk_fill_is_stopped_by_the_file_size_limit() {
    let limit_mb = 16u64;
    let sc = Sidecar::start_with(Options::with_env(&[(
        "SIDECAR_MAX_FILE_MB",
        &limit_mb.to_string(),
    )]));
    let dd = |file: &str| format!("exec dd if=/dev/zero of={file} bs=1M count=100000");
    let v = execute(&sc, "bash", &dd("big"), 30.0);
    assert_eq!(v["status"], "signal", "{v:#}");
    assert_eq!(v["run"]["signal"], "SIGXFSZ", "{v:#}");
    let size = std::fs::metadata(sc.workspace.join("big")).unwrap().len();
    assert!(size <= limit_mb << 20, "the file grew to {size} bytes");
    assert_eq!(v["files"][0]["path"], "big", "{v:#}");

    let r = bash(&sc, &dd("big2"), 30.0);
    assert_eq!(r.done["signal"], "SIGXFSZ", "{}", r.done);
    let size = std::fs::metadata(sc.workspace.join("big2")).unwrap().len();
    assert!(size <= limit_mb << 20, "the file grew to {size} bytes");

    // Python ignores SIGXFSZ: the write fails instead.
    if language_available(&sc, "py") {
        let code = "f = open('big3', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n";
        let v = execute(&sc, "py", code, 30.0);
        assert_eq!(v["status"], "runtime_error", "{v:#}");
        assert!(
            v["stderr"].as_str().unwrap().contains("File too large"),
            "{v:#}"
        );
        let size = std::fs::metadata(sc.workspace.join("big3")).unwrap().len();
        assert!(size <= limit_mb << 20, "the file grew to {size} bytes");
    }
    assert_serving(&sc);
}

#[test]
fn network_connects_are_refused() {
    let sc = Sidecar::start();
    // A listener on the host's loopback: reachable unless the code is isolated.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    if language_available(&sc, "py") {
        let code = format!(
            "import socket\n\
             for host, port in [('127.0.0.1', {port}), ('1.1.1.1', 80), ('8.8.8.8', 53)]:\n\
             \x20   s = socket.socket()\n    s.settimeout(3)\n    try:\n\
             \x20       s.connect((host, port))\n        print('connected', host)\n\
             \x20   except OSError as e:\n        print('refused', host, e)\n"
        );
        let v = execute(&sc, "py", &code, 15.0);
        let out = v["stdout"].as_str().unwrap();
        assert_eq!(v["status"], "ok", "{v:#}");
        assert!(!out.contains("connected"), "{out}");
        assert_eq!(out.matches("refused").count(), 3, "{out}");
        // The sidecar's own socket is out of reach too.
        let code = format!(
            "import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n\
             \x20   s.connect({:?})\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n",
            sc.socket.display().to_string()
        );
        let v = execute(&sc, "py", &code, 15.0);
        assert!(
            v["stdout"].as_str().unwrap().starts_with("refused"),
            "{v:#}"
        );
    }
    let r = bash(
        &sc,
        &format!(
            "for a in 127.0.0.1/{port} 1.1.1.1/80; do \
             timeout 5 bash -c \"echo > /dev/tcp/$a\" 2>/dev/null && echo connected $a || echo refused $a; done"
        ),
        15.0,
    );
    assert_eq!(r.stdout.matches("refused").count(), 2, "{}", r.stdout);
    assert!(!r.stdout.contains("connected"), "{}", r.stdout);
    drop(listener);
    assert_serving(&sc);
}

/// A request with the bearer token.
/// A setuid-root program (here a copy of `id`, made setuid root in the work dir) runs
/// with the uid of user code, not as root: every process has no-new-privileges, through
/// /execute and /bash alike.
#[test]
fn setuid_programs_do_not_give_root_back() {
    use std::os::unix::fs::PermissionsExt;
    let sc = Sidecar::start();
    if !sidecar_tests::protection_active(&sc, "uid_drop") {
        return;
    }
    let planted = sc.workspace.join("id-suid");
    std::fs::copy("/usr/bin/id", &planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let code = "grep NoNewPrivs /proc/self/status; ./id-suid -u";
    let v = execute(&sc, "bash", code, 10.0);
    assert_eq!(v["stdout"], "NoNewPrivs:\t1\n65532\n", "{v:#}");
    let b = bash(&sc, code, 10.0);
    assert_eq!(b.stdout, "NoNewPrivs:\t1\n65532\n", "{}", b.stderr);
}

fn post_auth(sc: &Sidecar, path: &str, body: &Value) -> (u16, Value) {
    let r = sc.request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer topsecret"),
        ],
        body.to_string().as_bytes(),
    );
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn the_sidecars_secrets_are_not_visible() {
    let secret = "hunter2-value-7f3a";
    let sc = Sidecar::start_with(Options::with_env(&[
        ("SIDECAR_AUTH_TOKEN", "topsecret"),
        ("SECRET_X", secret),
    ]));
    let pid = sc.pid();
    // (Without a body: the sidecar answers 401 without reading one, and a client still
    // writing it could get EPIPE.)
    let (status, _) = sc.get("/languages");
    assert_eq!(status, 401, "the token is required");
    let leaks = |text: &str| text.contains("topsecret") || text.contains(secret);

    let code =
        format!("printenv\ncat /proc/{pid}/environ /proc/$PPID/environ 2>&1 | tr '\\0' '\\n'\n");
    let (status, v) = post_auth(
        &sc,
        "/execute",
        &json!({"language": "bash", "code": code, "timeoutSeconds": 10}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["stdout"].as_str().unwrap().contains("PATH="), "{v:#}");
    assert!(!leaks(&v.to_string()), "{v:#}");

    // Python's view of the environment, and the sidecar's.
    let (status, langs) = {
        let r = sc.request(
            "GET",
            "/languages",
            &[("authorization", "Bearer topsecret")],
            b"",
        );
        (r.status, r.json())
    };
    assert_eq!(status, 200);
    let py = langs["languages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["code"] == "py" && l["toolchainAvailable"] == true);
    if !py {
        // (language_available cannot be used: /languages needs the token here.)
        let why = "SKIPPED language py: toolchain missing";
        if std::env::var("SIDECAR_REQUIRE_ALL_LANGUAGES").is_ok_and(|v| v == "1") {
            panic!("{why}; CI requires every language");
        }
        eprintln!("{why}");
    }
    if py {
        let code = format!(
            "import os\nprint(dict(os.environ))\ntry:\n    print(open('/proc/{pid}/environ').read())\n\
             except OSError as e:\n    print('denied', e)\n"
        );
        let (status, v) = post_auth(
            &sc,
            "/execute",
            &json!({"language": "py", "code": code, "timeoutSeconds": 10}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "ok", "{v:#}");
        assert!(v["stdout"].as_str().unwrap().contains("denied"), "{v:#}");
        assert!(!leaks(&v.to_string()), "{v:#}");
    }

    let r = sc.request(
        "POST",
        "/bash",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer topsecret"),
        ],
        json!({"command": format!("printenv; tr '\\0' '\\n' < /proc/{pid}/environ"), "timeoutSeconds": 10})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("PATH="), "{text}");
    assert!(!leaks(&text), "{text}");
}

#[test]
fn symlinks_planted_by_code_are_not_followed() {
    let sc = Sidecar::start();
    // A file of the test's own, to prove writes do not go through links either.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target.txt");
    std::fs::write(&target, "original\n").unwrap();
    let plant = format!(
        "ln -s /etc/passwd passwd_link\nmkdir -p sub\nln -s /etc sub/etc_link\nln -s / root_link\n\
         ln -s {} target_link\n",
        target.display()
    );
    let v = execute(&sc, "bash", &plant, 10.0);
    assert_eq!(v["status"], "ok", "{v:#}");
    assert!(sc
        .workspace
        .join("passwd_link")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
    let r = bash(&sc, "ln -s /etc/passwd bash_link && echo planted", 10.0);
    assert_eq!(r.stdout, "planted\n");

    let leaked = |text: &str| text.contains("root:x:0:0") || text.contains("original");
    for path in [
        "passwd_link",
        "bash_link",
        "sub/etc_link/passwd",
        "root_link/etc/passwd",
        "target_link",
    ] {
        let (status, v) = sc.post("/read", &json!({"path": path}));
        assert!(status == 400 || status == 403, "/read {path}: {status} {v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(!leaked(&v.to_string()), "/read {path}: {v}");

        let r = sc.request("GET", &format!("/files/{path}"), &[], b"");
        assert!(
            r.status == 400 || r.status == 403,
            "GET /files/{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!leaked(&r.text()), "GET /files/{path}: {}", r.text());
    }
    // A directory listing through a link is refused too.
    let r = sc.request("GET", "/files/sub/etc_link", &[], b"");
    assert!(
        r.status == 400 || r.status == 403,
        "{} {}",
        r.status,
        r.text()
    );
    assert!(!r.text().contains("passwd"), "{}", r.text());
    // The listing does not follow links.
    let (status, list) = sc.get("/files");
    assert_eq!(status, 200);
    assert!(!list.to_string().contains("passwd\""), "{list}");
    assert!(!list.to_string().contains("etc_link/"), "{list}");

    // Writing to the link (as a request file) is refused, or replaces the link: never
    // the target.
    let (status, v) = sc.post(
        "/execute",
        &json!({
            "language": "bash",
            "code": "cat target_link",
            "files": [{"path": "target_link", "content": "replaced\n"}],
        }),
    );
    match status {
        200 => assert_eq!(v["stdout"], "replaced\n", "{v:#}"),
        _ => assert!(status == 400 || status == 403, "{status} {v}"),
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original\n");
    // And through the file API.
    let (status, _) = sc.post(
        "/write",
        &json!({"path": "sub/etc_link/sidecar-test", "content": "x"}),
    );
    assert_ne!(status, 200);
    assert!(!Path::new("/etc/sidecar-test").exists());
    assert_serving(&sc);
}

/// The program that prints `n` in a language.
fn print_number(language: &str, n: usize) -> String {
    match language {
        "py" => format!("print({n})"),
        "js" => format!("console.log({n});"),
        "ts" => format!("const n: number = {n};\nconsole.log(n);"),
        "bash" => format!("echo {n}"),
        "php" => format!("echo {n}, \"\\n\";"),
        "c" => format!("#include <stdio.h>\nint main(void) {{ printf(\"%d\\n\", {n}); return 0; }}\n"),
        "cpp" => format!("#include <iostream>\nint main() {{ std::cout << {n} << std::endl; }}\n"),
        "go" => format!("package main\n\nimport \"fmt\"\n\nfunc main() {{ fmt.Println({n}) }}\n"),
        "rs" => format!("fn main() {{ println!(\"{{}}\", {n}); }}\n"),
        "java" => format!(
            "public class Main {{ public static void main(String[] a) {{ System.out.println({n}); }} }}\n"
        ),
        "r" => format!("cat({n}, '\\n', sep = '')"),
        "f90" => format!("program n\n  print '(I0)', {n}\nend program n\n"),
        "d" => format!("import std.stdio;\nvoid main() {{ writeln({n}); }}\n"),
        other => panic!("no program for {other}"),
    }
}

/// Runs `count` executions at once, one thread and one connection each, all in the same
/// session, and checks that each printed its own number.
fn concurrent(sc: &Arc<Sidecar>, languages: &[&str], count: usize, session: Option<&str>) {
    let handles: Vec<_> = (0..count)
        .map(|n| {
            let sc = Arc::clone(sc);
            let language = languages[n % languages.len()].to_string();
            let session = session.map(str::to_string);
            std::thread::spawn(move || {
                let mut body = json!({
                    "language": language,
                    "code": print_number(&language, n),
                    "timeoutSeconds": 120,
                });
                if let Some(s) = session {
                    body["sessionId"] = json!(s);
                }
                let (status, v) = sc.post("/execute", &body);
                (n, language, status, v)
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for h in handles {
        let (n, language, status, v) = h.join().unwrap();
        if status != 200 || v["status"] != "ok" || v["stdout"] != format!("{n}\n") {
            wrong.push(format!("#{n} ({language}): {status} {v}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {count} concurrent executions were wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn fifty_concurrent_executions_of_mixed_languages_are_all_correct() {
    let sc = Sidecar::start();
    let wanted = [
        "py", "js", "bash", "php", "c", "cpp", "go", "rs", "ts", "r", "java", "f90", "d",
    ];
    let languages: Vec<&str> = wanted
        .into_iter()
        .filter(|l| *l == "bash" || language_available(&sc, l))
        .collect();
    let sc = Arc::new(sc);
    concurrent(&sc, &languages, 50, None);
    assert_no_processes(&scratch_marker(&sc), "concurrent executions");
    assert_serving(&sc);
}

#[test]
fn ten_concurrent_c_executions_in_one_session_are_all_correct() {
    let sc = Sidecar::start();
    if !language_available(&sc, "c") {
        return;
    }
    let sc = Arc::new(sc);
    concurrent(&sc, &["c"], 10, Some("csession"));
    // Nothing of the builds was left in the session's directory.
    let left: Vec<_> = std::fs::read_dir(sc.workspace.join("csession"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(processes_with(&scratch_marker(&sc)).is_empty());
}

/// A sidecar that cannot use cgroups: executions get a dedicated uid each, and every
/// process of that uid is killed afterwards (the fallback of hosts without delegation).
fn sidecar_without_cgroups() -> Sidecar {
    Sidecar::start_with(Options::without_cgroups())
}

#[test]
fn without_cgroups_daemons_and_fork_bombs_are_still_contained() {
    let sc = sidecar_without_cgroups();
    if !protection_active(&sc, "kill_all") {
        return;
    }
    let m = unique_marker();
    let v = execute(
        &sc,
        "bash",
        &format!("setsid sleep 1000.{m} >/dev/null 2>&1 </dev/null &\nexit 0\n"),
        5.0,
    );
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_no_processes(&m, "a setsid daemon without cgroups");

    let v = execute(&sc, "bash", ":(){ :|:& };:", 3.0);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_no_processes(&scratch_marker(&sc), "a shell fork bomb without cgroups");

    // Right after the fork bomb: its orphans may still wait for PID 1 to reap them,
    // and count against their uid's RLIMIT_NPROC until then; the next execution must
    // not get that uid (it could not fork: `sh: Cannot fork`, exit code 2).
    let m = unique_marker();
    let r = bash(&sc, &format!("setsid sleep 1000.{m} & exit 0"), 5.0);
    assert_eq!(r.done["exitCode"], 0, "{} stderr: {}", r.done, r.stderr);
    assert_no_processes(&m, "a setsid daemon in /bash without cgroups");

    // A daemon that surely left the process group before the main process exits, and
    // keeps the output pipes: it dies before the output is drained, so the request
    // does not wait for end-of-file (it used to wait the drain's 10 s grace).
    let m = unique_marker();
    let r = bash(
        &sc,
        &format!("setsid sleep 1000.{m} & sleep 0.3; exit 0"),
        5.0,
    );
    assert_eq!(r.done["exitCode"], 0, "{} stderr: {}", r.done, r.stderr);
    assert_no_processes(&m, "a setsid daemon holding the pipes without cgroups");
    assert_serving(&sc);
}

#[test]
fn without_cgroups_the_uid_sweep_ends_when_nothing_is_left() {
    let sc = sidecar_without_cgroups();
    let v = execute(&sc, "bash", "echo hi", 10.0);
    assert_eq!(v["stdout"], "hi\n", "{v:#}");
    std::thread::sleep(Duration::from_millis(200));
    let log = sc.log();
    assert!(
        !log.contains("survived the sweep"),
        "the sweep of a uid with no process left gave up:\n{log}"
    );
}

#[test]
fn a_work_dir_swapped_for_a_symlink_while_queued_is_not_followed() {
    // One execution at a time: the second request waits in the queue, its work dir
    // already checked, while the first (the attacker, in the same session) replaces
    // that directory with a symlink to a directory of the host.
    let sc = Arc::new(Sidecar::start_with(Options::with_env(&[(
        "SIDECAR_MAX_CONCURRENT",
        "1",
    )])));
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("host-dir");
    std::fs::create_dir(&target).unwrap();
    use std::os::unix::fs::MetadataExt;
    let owner_before = std::fs::metadata(&target).unwrap().uid();

    let attacker = {
        let sc = Arc::clone(&sc);
        let code = format!(
            "for i in $(seq 1 500); do [ -d victim ] && break; sleep 0.01; done\n\
             sleep 0.2\nrm -rf victim && ln -s {} victim && echo swapped\n",
            target.display()
        );
        std::thread::spawn(move || {
            sc.execute(&json!({"language": "bash", "code": code, "timeoutSeconds": 20}))
        })
    };
    // Wait until the attacker runs, then queue the victim's request.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while processes_with(&scratch_marker(&sc)).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the attacker never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, v) = sc.post(
        "/execute",
        &json!({"language": "bash", "code": "pwd; touch planted", "working_dir": "victim", "timeoutSeconds": 20}),
    );
    let a = attacker.join().unwrap();
    assert_eq!(a["stdout"], "swapped\n", "the race was not set up: {a:#}");
    let owner_after = std::fs::metadata(&target).unwrap().uid();
    assert_eq!(
        owner_after, owner_before,
        "the sidecar gave a host directory to the sandbox uid through a symlink ({status} {v})"
    );
    assert!(
        !target.join("planted").exists(),
        "code ran in a host directory reached through a symlink: {v}"
    );
}

/// Scratch dirs are made ahead of time where executions share /tmp; code running as
/// the executions' uid must not be able to put files in the one the next execution
/// will get (a `sitecustomize.py` there would run inside the next Python program).
/// (With private temporary dirs, see `an_executions_sources_are_out_of_sight_of_the_others`.)
#[test]
fn the_next_executions_scratch_dir_cannot_be_prepared() {
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_SHARED_TMP", "1")]));
    // Without a uid drop, code runs as the sidecar's own uid: nothing to keep it from.
    if !protection_active(&sc, "uid_drop") {
        return;
    }
    let plant = r#"for d in "$(dirname "$HOME")"/exec-*; do
  [ "$d" = "$HOME" ] && continue
  if echo planted > "$d/planted.txt" 2>/dev/null; then echo "wrote $d"; fi
done
ls "$(dirname "$HOME")" | wc -l
"#;
    let v = sc.execute(&json!({"language": "bash", "code": plant}));
    assert_eq!(v["status"], "ok", "{v:#}");
    let siblings: usize = v["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(siblings > 1, "no dir made ahead to try: {v:#}");
    assert!(!v["stdout"].as_str().unwrap().contains("wrote"), "{v:#}");
    let v = sc.execute(&json!({"language": "bash", "code": "ls -A \"$HOME\""}));
    assert_eq!(v["status"], "ok", "{v:#}");
    assert!(!v["stdout"].as_str().unwrap().contains("planted"), "{v:#}");
}

#[test]
fn files_left_in_tmp_are_not_seen_by_the_next_execution() {
    let sc = Sidecar::start();
    let m = unique_marker();
    let paths = [
        format!("/tmp/sidecar-leftover-{m}"),
        format!("/dev/shm/sidecar-leftover-{m}"),
    ];
    let write = paths
        .iter()
        .map(|p| format!("echo secret > {p}\n"))
        .collect::<String>();
    let v = sc.execute(&json!({"language": "bash", "code": write, "sessionId": "writer"}));
    assert_eq!(v["status"], "ok", "{v:#}");
    let read = paths
        .iter()
        .map(|p| format!("cat {p} 2>/dev/null\n"))
        .collect::<String>();
    let v = sc.execute(&json!({"language": "bash", "code": read, "sessionId": "reader"}));
    let left: Vec<_> = paths.iter().filter(|p| Path::new(p).exists()).collect();
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(v["stdout"], "", "another session read what was left: {v:#}");
    assert!(
        left.is_empty(),
        "left on the host after the execution: {left:?}"
    );
}

/// Whether executions get their own /tmp; it must be so when the tests run as root.
fn private_tmp_active(sc: &Sidecar) -> bool {
    // /proc/self belongs to our effective uid.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let active = protection_active(sc, "private_tmp");
    assert!(active || !root, "as root the private /tmp must be active");
    active
}

/// Files planted in /tmp, /var/tmp and /dev/shm for the next run (the peers' suites do)
/// reach neither the next execution nor one running beside it, nor the host; the
/// workspace (under /tmp here) is still where the code runs.
#[test]
fn files_left_in_tmp_do_not_reach_other_executions() {
    let sc = Arc::new(Sidecar::start());
    if !private_tmp_active(&sc) {
        return;
    }
    let m = unique_marker();
    let plant = format!(
        "for d in /tmp /var/tmp /dev/shm; do echo {m} > $d/planted-{m}; mkdir -p $d/dir-{m}; \
         ln -s /etc/passwd $d/link-{m}; done; echo made > made-{m}; ls -A /tmp | grep -c {m}"
    );
    let v = execute(&sc, "bash", &plant, 10.0);
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(v["stdout"], "3\n", "{v:#}");
    assert!(sc.workspace.join(format!("made-{m}")).exists());
    for d in ["/tmp", "/var/tmp", "/dev/shm"] {
        assert!(!Path::new(d).join(format!("planted-{m}")).exists(), "{d}");
    }

    let look = format!("ls -A /tmp /var/tmp /dev/shm | grep -c {m}; cat made-{m}");
    for _ in 0..4 {
        let v = execute(&sc, "bash", &look, 10.0);
        assert_eq!(v["stdout"], "0\nmade\n", "{v:#}");
    }
    // While one execution keeps files there, another does not see them.
    let running = {
        let sc = Arc::clone(&sc);
        let code = format!("echo {m} > /tmp/live-{m}; sleep 2; cat /tmp/live-{m}");
        std::thread::spawn(move || execute(&sc, "bash", &code, 10.0))
    };
    std::thread::sleep(Duration::from_millis(700));
    let v = execute(&sc, "bash", &look, 10.0);
    assert_eq!(v["stdout"], "0\nmade\n", "{v:#}");
    let v = running.join().unwrap();
    assert_eq!(v["stdout"], format!("{m}\n"), "{v:#}");
    assert_serving(&sc);
}

/// Two executions at once in one session: each one's `files` lists what it wrote, not
/// what the other wrote meanwhile (the before/after comparison alone lists both); a
/// file both wrote is in both lists, and a file the code only renamed is still listed.
#[test]
fn concurrent_executions_in_one_session_list_only_their_own_files() {
    let sc = Arc::new(Sidecar::start());
    if !private_tmp_active(&sc) {
        return;
    }
    let (_, health) = sc.get("/health");
    assert!(
        health.to_string().contains("workspace writes attributed"),
        "{health:#}"
    );
    let (status, v) = sc.post(
        "/write",
        &json!({"path": "old.txt", "content": "x", "sessionId": "s"}),
    );
    assert_eq!(status, 200, "{v}");
    let paths = |v: &Value| -> Vec<String> {
        v["files"]
            .as_array()
            .unwrap_or_else(|| panic!("{v:#}"))
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let first = {
        let sc = Arc::clone(&sc);
        std::thread::spawn(move || {
            sc.execute(&json!({
                "language": "bash", "sessionId": "s", "timeout": 20,
                "code": "echo a > a.txt; sleep 2; echo a > a2.txt; echo a >> both.txt",
            }))
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let second = sc.execute(&json!({
        "language": "bash", "sessionId": "s", "timeout": 20,
        "code": "echo b > b.txt; echo b >> both.txt; mv old.txt renamed.txt; sleep 2",
    }));
    let first = first.join().unwrap();
    assert_eq!(first["status"], "ok", "{first:#}");
    assert_eq!(second["status"], "ok", "{second:#}");
    assert_eq!(
        paths(&second),
        ["b.txt", "both.txt", "renamed.txt"],
        "{second:#}"
    );
    let first = paths(&first);
    for own in ["a.txt", "a2.txt", "both.txt"] {
        assert!(first.contains(&own.to_string()), "{first:?}");
    }
    assert!(!first.contains(&"b.txt".to_string()), "{first:?}");
}

/// An execution's scratch dir (its sources, build outputs, HOME and TMPDIR) is its own:
/// an execution running beside it finds its sources nowhere it can look, though both
/// see their scratch dir at the same path, and the next finds that dir empty but for
/// its own code. (The runner wrote every run's code to one shared file: ANCHORS §2.)
#[test]
fn an_executions_sources_are_out_of_sight_of_the_others() {
    let sc = Arc::new(Sidecar::start());
    if !private_tmp_active(&sc) || !language_available(&sc, "py") {
        return;
    }
    let m = unique_marker();
    let first = python_with_secrets(&sc, &m);
    // Once it runs, another looks in every place it may read (the patterns are split
    // so that its own code does not match them).
    let look = format!(
        "m={m}; grep -rl -e \"SOURCE-$m\" -e \"OUTPUT-$m\" \"$HOME\" \"$(dirname \"$HOME\")\" \
         /tmp /var/tmp /dev/shm 2>/dev/null; echo \"home $HOME\"; ls -A \"$HOME\""
    );
    let beside = execute(&sc, "bash", &look, 20.0);
    let first = first.join().unwrap();
    assert_eq!(first["status"], "ok", "{first:#}");
    assert_eq!(beside["status"], "ok", "{beside:#}");
    let home = first["stdout"].as_str().unwrap().trim();
    assert_eq!(
        beside["stdout"],
        format!("home {home}\ncode.sh\n"),
        "found the other execution's files, or a scratch dir that is not its own"
    );
    // The next execution gets the dir emptied.
    let next = execute(&sc, "bash", "echo \"home $HOME\"; ls -A \"$HOME\"", 20.0);
    assert_eq!(
        next["stdout"],
        format!("home {home}\ncode.sh\n"),
        "{next:#}"
    );
    // And nothing of it reached the host's scratch root.
    let host = Command::new("grep")
        .args(["-rl", &format!("SOURCE-{m}")])
        .arg(sc.dir.path().join("scratch"))
        .output()
        .unwrap();
    assert!(
        host.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&host.stdout)
    );
}

/// Starts a Python execution whose source holds `SOURCE-<m>` and which writes
/// `OUTPUT-<m>` in its scratch dir, prints that dir and sleeps 4 s; returns once it
/// runs.
fn python_with_secrets(sc: &Arc<Sidecar>, m: &str) -> std::thread::JoinHandle<Value> {
    let first = {
        let sc = Arc::clone(sc);
        let code = format!(
            "# SOURCE-{m}\nimport os, time\n\
             open(os.environ['HOME'] + '/left.txt', 'w').write('OUTPUT-{m}')\n\
             print(os.environ['HOME'], flush=True)\ntime.sleep(4)\n"
        );
        std::thread::spawn(move || execute(&sc, "py", &code, 20.0))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while processes_with(&scratch_marker(sc)).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    first
}

/// Executions of a language share its uid, but not their processes: one running beside
/// another cannot reach the other's scratch dir through `/proc/<pid>/root`, nor read
/// its environment (or memory, or trace it: the same check guards them all).
#[test]
fn an_execution_cannot_look_into_another_through_proc() {
    let sc = Arc::new(Sidecar::start());
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let active = protection_active(&sc, "private_processes");
    assert!(
        active || !root,
        "as root, executions must not see into each other"
    );
    if !active || !language_available(&sc, "py") {
        return;
    }
    let m = unique_marker();
    let first = python_with_secrets(&sc, &m);
    // Every process's root and environment (the patterns split so that this code does
    // not match them; only the Python run has PYTHON variables).
    let look = format!(
        "m={m}; for p in /proc/[0-9]*; do \
           grep -rl -e \"SOURCE-$m\" -e \"OUTPUT-$m\" $p/root/dev/shm $p/root/tmp 2>/dev/null; \
           tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -q '^PYTHON''UNBUFFERED=' && echo \"environ of $p\"; \
         done; echo looked"
    );
    let beside = execute(&sc, "bash", &look, 20.0);
    let first = first.join().unwrap();
    assert_eq!(first["status"], "ok", "{first:#}");
    assert_eq!(beside["status"], "ok", "{beside:#}");
    assert_eq!(
        beside["stdout"], "looked\n",
        "reached into the other execution's processes"
    );
}

/// Executions of a language share its uid, but one cannot signal another's processes:
/// neither by pid nor with `kill -1`, which reaches every process a uid may signal.
#[test]
fn an_execution_cannot_signal_another() {
    let sc = Arc::new(Sidecar::start());
    if !protection_active(&sc, "scoped_signals") || !language_available(&sc, "py") {
        return;
    }
    let m = unique_marker();
    let first = python_with_secrets(&sc, &m);
    let beside = execute(
        &sc,
        "bash",
        "for p in $(pgrep python3); do kill -9 $p; done; kill -STOP -1; kill -9 -1; echo done",
        20.0,
    );
    let first = first.join().unwrap();
    assert_eq!(first["status"], "ok", "killed from beside: {first:#}");
    assert_eq!(beside["stdout"], "done\n", "{beside:#}");
    assert!(
        beside["stderr"]
            .as_str()
            .unwrap()
            .contains("Operation not permitted"),
        "{beside:#}"
    );
    // An execution still signals its own processes.
    let own = execute(
        &sc,
        "bash",
        "sleep 30 & kill -TERM $!; wait $!; echo \"status $?\"",
        20.0,
    );
    assert_eq!(own["stdout"], "status 143\n", "{own:#}");
}

/// Directory chains tens of thousands of levels deep in the scratch dir and in /tmp
/// (the clean-up used to recurse once per level: a stack overflow aborted the sidecar).
#[test]
fn very_deep_directory_trees_are_removed_and_the_sidecar_keeps_serving() {
    let sc = Sidecar::start();
    if !language_available(&sc, "py") {
        return;
    }
    let code = "import os\n\
                for base in [os.environ['TMPDIR'], '/tmp', '/dev/shm']:\n\
                \x20   os.chdir(base)\n\
                \x20   for i in range(30000):\n\
                \x20       os.mkdir('a')\n\
                \x20       os.chdir('a')\n\
                print('deep')\n";
    for _ in 0..2 {
        let v = execute(&sc, "py", code, 60.0);
        assert_eq!(v["stdout"], "deep\n", "{v:#}");
    }
    assert_serving(&sc);
    // The clean-up thread gets through them (seconds on a disk): what is left of the
    // scratch root is the dirs made ahead for the next executions, all empty.
    let scratch = sc.dir.path().join("scratch");
    let full = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&scratch)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|dir| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !full().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = full();
    if !left.is_empty() {
        // Not through std's recursive removal when the test dir goes.
        let _ = Command::new("rm").arg("-rf").args(&left).status();
        panic!("scratch dirs left: {left:?}");
    }
    assert_serving(&sc);
}
