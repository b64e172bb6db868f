//! POST /execute's contract (the response shape, language selection, timeouts, files,
//! errors, the output cap, busy refusals), the runner-compatible /files endpoints, and
//! `sidecar run`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sidecar_tests::{
    assert_error_envelope, binary, language_available, multipart, plugins_dir, processes_with,
    protection_active, repo, test_dir, timed, unique_marker, Options, Sidecar,
};

/// Slack over a timeout for the wall time around a request.
const SLACK: Duration = Duration::from_secs(3);

/// The repository's languages.toml with `extra` appended, in a temporary directory.
fn languages_with(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("languages.toml");
    let mut text = std::fs::read_to_string(repo().join("languages.toml")).unwrap();
    text.push('\n');
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn error_of(v: &Value) -> String {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Every field of a stage, with its type.
fn assert_stage(stage: &Value) {
    let fields = [
        "stdout",
        "stderr",
        "exitCode",
        "signal",
        "timedOut",
        "durationMs",
        "cpuTimeMs",
        "memoryPeakBytes",
        "stdoutTruncated",
        "stderrTruncated",
    ];
    let obj = stage
        .as_object()
        .unwrap_or_else(|| panic!("not a stage: {stage}"));
    for f in fields {
        assert!(obj.contains_key(f), "stage without `{f}`: {stage}");
    }
    assert!(stage["stdout"].is_string() && stage["stderr"].is_string());
    assert!(stage["exitCode"].is_i64() || stage["exitCode"].is_null());
    assert!(stage["signal"].is_string() || stage["signal"].is_null());
    assert!(stage["timedOut"].is_boolean());
    assert!(stage["durationMs"].is_u64());
    assert!(stage["cpuTimeMs"].is_u64() || stage["cpuTimeMs"].is_null());
    assert!(stage["memoryPeakBytes"].is_u64() || stage["memoryPeakBytes"].is_null());
    assert!(stage["stdoutTruncated"].is_boolean() && stage["stderrTruncated"].is_boolean());
}

#[test]
fn response_has_every_field() {
    let sc = Sidecar::start();
    // An interpreted language: no compile stage.
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "echo out; echo err >&2; echo made > new.txt",
    }));
    for f in [
        "ok",
        "language",
        "status",
        "compile",
        "run",
        "files",
        "exit_code",
        "stdout",
        "stderr",
        "execution_time_ms",
    ] {
        assert!(v.get(f).is_some(), "no `{f}`: {v:#}");
    }
    assert_eq!(v["ok"], true);
    assert_eq!(v["language"], "bash");
    assert_eq!(v["status"], "ok");
    assert!(v["compile"].is_null(), "{v:#}");
    assert_stage(&v["run"]);
    assert_eq!(v["run"]["exitCode"], 0);
    assert!(v["run"]["signal"].is_null());
    assert_eq!(v["run"]["timedOut"], false);
    assert_eq!(v["exit_code"], 0);
    // stderr comes back even when the exit code is 0.
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    assert_eq!(v["run"]["stderr"], "err\n");
    assert!(v["execution_time_ms"].is_u64());
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{v:#}");
    assert_eq!(files[0]["path"], "new.txt");
    assert_eq!(files[0]["size"], 5);
    assert!(files[0]["mtime"].is_string());

    // A program ended by a signal: the stage names it, and `exit_code` says it as a
    // shell does, 128 + N.
    let v = sc.execute(&json!({"language": "bash", "code": "echo before\nkill -TERM $$"}));
    assert_eq!(v["status"], "signal", "{v:#}");
    assert_eq!(v["run"]["signal"], "SIGTERM", "{v:#}");
    assert!(v["run"]["exitCode"].is_null(), "{v:#}");
    assert_eq!(v["exit_code"], 143, "{v:#}");
    assert_eq!(v["stdout"], "before\n", "{v:#}");

    // A compiled language: both stages.
    if language_available(&sc, "c") {
        let v = sc.execute(&json!({
            "language": "c",
            "code": "#include <stdio.h>\nint main(void) { puts(\"c\"); return 0; }\n",
        }));
        assert_eq!(v["status"], "ok", "{v:#}");
        assert_stage(&v["compile"]);
        assert_stage(&v["run"]);
        assert_eq!(v["compile"]["exitCode"], 0);
        assert_eq!(v["stdout"], "c\n");
        let total =
            v["compile"]["durationMs"].as_u64().unwrap() + v["run"]["durationMs"].as_u64().unwrap();
        assert_eq!(v["execution_time_ms"], total, "{v:#}");
    }
}

#[test]
fn languages_by_code_alias_and_default() {
    let sc = Sidecar::start();
    for (name, code) in [("sh", "bash"), ("Shell", "bash"), ("BASH", "bash")] {
        let v = sc.execute(&json!({"language": name, "code": "echo $0 >/dev/null; echo hi"}));
        assert_eq!(v["language"], code, "{name}: {v}");
        assert_eq!(v["stdout"], "hi\n");
    }
    if language_available(&sc, "py") {
        for name in ["python", "python3", "py"] {
            let v = sc.execute(&json!({"language": name, "code": "print('py')"}));
            assert_eq!(v["language"], "py", "{name}: {v}");
            assert_eq!(v["stdout"], "py\n");
        }
    }
    // Unknown: 400, listing what is available.
    let (status, v) = sc.post("/execute", &json!({"language": "cobol", "code": "x"}));
    assert_eq!(status, 400, "{v}");
    let e = error_of(&v);
    assert!(e.contains("cobol"), "{e}");
    for code in ["bash", "py", "c", "java", "rs"] {
        assert!(e.contains(code), "the error does not list `{code}`: {e}");
    }
    // No language and no default: 400 too, listing them.
    let (status, v) = sc.post("/execute", &json!({"code": "echo hi"}));
    assert_eq!(status, 400, "{v}");
    assert!(error_of(&v).contains("bash"), "{v}");
    // Not even code.
    let (status, v) = sc.post("/execute", &json!({"language": "bash"}));
    assert_eq!(status, 400, "{v}");
    drop(sc);

    // The default from SIDECAR_DEFAULT_LANGUAGE (an alias works too).
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_DEFAULT_LANGUAGE", "shell")]));
    let v = sc.execute(&json!({"code": "echo default"}));
    assert_eq!(v["language"], "bash", "{v}");
    assert_eq!(v["stdout"], "default\n");
    // A request's own language still wins.
    let v = sc.execute(&json!({"language": "bash", "code": "echo own"}));
    assert_eq!(v["stdout"], "own\n");
    drop(sc);

    // The runner's LANGUAGE variable.
    let sc = Sidecar::start_with(Options::with_env(&[("LANGUAGE", "bash")]));
    let v = sc.execute(&json!({"code": "echo from-env"}));
    assert_eq!(v["language"], "bash", "{v}");
    assert_eq!(v["stdout"], "from-env\n");
}

/// Each stage reports the CPU time of its processes, waited-for children included,
/// apart from the time it took: a program that sleeps takes time but little CPU. And,
/// with a memory cgroup, the most memory it had at once, its own only (a group
/// recycled from a larger execution does not pass that one's mark on).
#[test]
fn stages_report_their_cpu_time_and_memory_peak() {
    let sc = Sidecar::start();
    let busy = sc.execute(&json!({
        "language": "bash",
        "code": "yes > /dev/null & pid=$!; sleep 0.5; kill $pid; wait $pid; echo done",
    }));
    assert_eq!(busy["stdout"], "done\n", "{busy}");
    let cpu = busy["run"]["cpuTimeMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("{busy}"));
    assert!(
        cpu >= 100,
        "`yes` ran 0.5 s but used {cpu} ms of CPU: {busy}"
    );

    let idle = sc.execute(&json!({"language": "bash", "code": "sleep 0.4"}));
    let (cpu, took) = (
        idle["run"]["cpuTimeMs"]
            .as_u64()
            .unwrap_or_else(|| panic!("{idle}")),
        idle["run"]["durationMs"].as_u64().unwrap(),
    );
    assert!(
        took >= 400 && cpu < 200,
        "sleeping: {cpu} ms of CPU in {took} ms: {idle}"
    );

    if !sidecar_tests::protection_active(&sc, "memory_limit") {
        return;
    }
    const MB: u64 = 1 << 20;
    // 64 MB in a shell variable.
    let big = sc.execute(&json!({
        "language": "bash",
        "code": "a=$(head -c 67108864 /dev/zero | tr '\\0' x); echo ${#a}",
    }));
    assert_eq!(big["stdout"], "67108864\n", "{big}");
    let peak = big["run"]["memoryPeakBytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{big}"));
    assert!(
        peak >= 64 * MB,
        "a 64 MB string, a peak of {} MB: {big}",
        peak / MB
    );
    for _ in 0..3 {
        let small = sc.execute(&json!({"language": "bash", "code": "echo small"}));
        let peak = &small["run"]["memoryPeakBytes"];
        // (null where the kernel cannot reset a recycled group's mark: v2 before 6.12)
        assert!(
            peak.is_null() || peak.as_u64().is_some_and(|p| p < 32 * MB),
            "`echo small` after the 64 MB one: {small}"
        );
    }
}

/// The runner's clients may send JSON with no `Content-Type` (Python's
/// `requests.post(url, data=json.dumps(body))` sends none): read as JSON, like the
/// runner did. A type that is not JSON is refused (400, as the API asks), and from a
/// browser (an `Origin` header) a body must say it is JSON.
#[test]
fn a_body_without_a_content_type_is_read_as_json_unless_from_a_browser() {
    let sc = Sidecar::start_with(Options::with_env(&[("LANGUAGE", "bash")]));
    // In one write: a request refused for its type is answered before its body is
    // read, and the connection closed.
    let send = |path: &str, headers: &[(&str, &str)], body: &[u8]| {
        sidecar_tests::request_in_one_write(&sc.socket, "POST", path, headers, body)
    };
    let body = json!({"code": "echo untyped", "timeout": 10}).to_string();
    let r = send("/execute", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "untyped\n");
    // The file tools read it the same way.
    let write = json!({"path": "untyped.txt", "content": "x"}).to_string();
    let r = send("/write", &[], write.as_bytes());
    assert_eq!(
        (r.status, r.json()["ok"].clone()),
        (200, json!(true)),
        "{}",
        r.text()
    );
    // A body with no type that is not JSON says so.
    let r = send("/execute", &[], b"echo hi");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        error_of(&r.json()).contains("without a Content-Type"),
        "{}",
        r.text()
    );

    let origin = ("origin", "http://example.com");
    for headers in [
        vec![origin],
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![origin, ("content-type", "text/plain")],
    ] {
        let r = send("/execute", &headers, body.as_bytes());
        assert_eq!(r.status, 400, "{headers:?}: {}", r.text());
        assert!(
            error_of(&r.json()).contains("application/json"),
            "{}",
            r.text()
        );
    }
    let typed = [origin, ("content-type", "application/json")];
    let r = send("/execute", &typed, body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn timeouts_alias_clamp_and_multiplier() {
    let (_dir, languages) = languages_with(
        "[languages.slowsh]\nplugin = \"template\"\nfile_extension = \"slowsh\"\n\
         code_filename = \"code.sh\"\nrun_command = \"bash {file}\"\ntimeout_multiplier = 4.0\n",
    );
    let sc = Sidecar::start_with(Options {
        env: vec![("SIDECAR_MAX_TIMEOUT".into(), "2".into())],
        languages: Some(languages),
        ..Options::default()
    });
    // `timeout`, the runner's name: exit code 124, status timeout.
    let m = unique_marker();
    let (v, took) = timed(|| {
        sc.execute(
            &json!({"language": "bash", "code": format!("echo start\nsleep 30.{m}"), "timeout": 1}),
        )
    });
    assert_eq!(v["status"], "timeout", "{v:#}");
    assert_eq!(v["exit_code"], 124, "{v:#}");
    assert_eq!(v["run"]["timedOut"], true, "{v:#}");
    assert_eq!(v["stdout"], "start\n", "{v:#}");
    let ms = v["run"]["durationMs"].as_u64().unwrap();
    assert!((1000..2000).contains(&ms), "timed out after {ms} ms");
    assert!(took < Duration::from_secs(1) + SLACK, "{took:?}");
    assert!(processes_with(&m).is_empty());

    // Clamped to the maximum (2 s here): 100 s asked, 2 s given.
    let (v, took) = timed(|| {
        sc.execute(&json!({"language": "bash", "code": "sleep 30", "timeoutSeconds": 100}))
    });
    assert_eq!(v["status"], "timeout", "{v:#}");
    let ms = v["run"]["durationMs"].as_u64().unwrap();
    assert!((2000..3000).contains(&ms), "timed out after {ms} ms");
    assert!(took < Duration::from_secs(2) + SLACK, "{took:?}");

    // The language's multiplier applies after the clamp: 1 s × 4.
    let code = "sleep 2\necho slept";
    let v = sc.execute(&json!({"language": "slowsh", "code": code, "timeoutSeconds": 1}));
    assert_eq!(v["status"], "ok", "the multiplier was not applied: {v:#}");
    assert_eq!(v["stdout"], "slept\n");
    let v = sc.execute(&json!({"language": "bash", "code": code, "timeoutSeconds": 1}));
    assert_eq!(v["status"], "timeout", "{v:#}");
}

/// No timeout means the default; zero or less means the maximum, as the runner's
/// clients expect.
#[test]
fn zero_or_negative_timeouts_mean_the_maximum() {
    let sc = Sidecar::start_with(Options::with_env(&[
        ("SIDECAR_DEFAULT_TIMEOUT", "1"),
        ("SIDECAR_MAX_TIMEOUT", "4"),
    ]));
    let code = "sleep 2\necho slept";
    for timeout in [json!(0), json!(-5), json!(0.0)] {
        let v = sc.execute(&json!({"language": "bash", "code": code, "timeout": timeout}));
        assert_eq!(v["status"], "ok", "timeout {timeout}: {v:#}");
        assert_eq!(v["stdout"], "slept\n");
    }
    let v = sc.execute(&json!({"language": "bash", "code": code}));
    assert_eq!(v["status"], "timeout", "{v:#}");
}

/// A program that is there but cannot be started (here an executable file that is
/// neither a binary nor a script) is the run's failure, said on stderr with exit code
/// 126 as a shell says it, not a silent exit code of -1.
#[test]
fn a_program_that_cannot_be_started_says_why() {
    // In the workspace, which executions see as it is (they have their own /tmp).
    let sidecar_dir = test_dir();
    let tools = sidecar_dir.path().join("workspace/.tools");
    std::fs::create_dir_all(&tools).unwrap();
    let program = tools.join("not-a-program");
    std::fs::write(&program, b"\x00\x01 neither ELF nor #!").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (_config, languages) = languages_with(&format!(
        "[languages.broken]\nplugin = \"template\"\nfile_extension = \"b\"\n\
         code_filename = \"x.b\"\nrun_command = \"{} {{file}}\"\n",
        program.display()
    ));
    let sc = Sidecar::start_in(
        sidecar_dir,
        Options {
            languages: Some(languages),
            ..Options::default()
        },
    );
    let v = sc.execute(&json!({"language": "broken", "code": "x"}));
    assert_eq!(v["status"], "runtime_error", "{v:#}");
    assert_eq!(
        (v["exit_code"].clone(), v["run"]["exitCode"].clone()),
        (json!(126), json!(126))
    );
    let stderr = v["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("cannot execute")
            && stderr.contains("not-a-program")
            && stderr.to_lowercase().contains("exec format error"),
        "{stderr}"
    );
}

#[test]
fn missing_toolchain_is_503_naming_the_program() {
    let (_dir, languages) = languages_with(
        "[languages.nope]\nplugin = \"template\"\nname = \"Nope\"\nfile_extension = \"nope\"\n\
         code_filename = \"x.nope\"\nrun_command = \"no-such-interpreter {file}\"\n",
    );
    let sc = Sidecar::start_with(Options {
        languages: Some(languages),
        ..Options::default()
    });
    let (_, langs) = sc.get("/languages");
    let nope = langs["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "nope")
        .cloned()
        .unwrap_or_else(|| panic!("nope is not listed: {langs}"));
    assert_eq!(nope["toolchainAvailable"], false, "{nope}");
    let r = sc.request(
        "POST",
        "/execute",
        &[("content-type", "application/json")],
        json!({"language": "nope", "code": "x"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_none(), "not a busy refusal");
    let e = error_of(&r.json());
    assert!(e.contains("no-such-interpreter"), "{e}");
    // The others still work.
    let v = sc.execute(&json!({"language": "bash", "code": "echo fine"}));
    assert_eq!(v["stdout"], "fine\n");
}

#[test]
fn a_toolchain_under_tmp_is_said_to_be_out_of_sight_not_missing() {
    // The interpreter sits in a directory under /tmp, where the sidecar finds it but an
    // execution, with its own /tmp, does not.
    let (dir, languages) = languages_with("");
    let tool = dir.path().join("hidden-interp");
    std::fs::write(&tool, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut text = std::fs::read_to_string(&languages).unwrap();
    text.push_str(&format!(
        "\n[languages.hid]\nplugin = \"template\"\nname = \"Hid\"\nfile_extension = \"hid\"\n\
         code_filename = \"x.hid\"\nrun_command = \"{} {{file}}\"\n",
        tool.display()
    ));
    std::fs::write(&languages, text).unwrap();
    let start = |env: &[(&str, &str)]| {
        Sidecar::start_with(Options {
            languages: Some(languages.clone()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        })
    };
    let sc = start(&[]);
    let body = json!({"language": "hid", "code": "x"}).to_string();
    let r = sc.request(
        "POST",
        "/execute",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    if !protection_active(&sc, "private_tmp") {
        assert_eq!(r.status, 200, "{}", r.text());
        return;
    }
    assert_eq!(r.status, 503, "{}", r.text());
    let e = error_of(&r.json());
    assert!(
        e.contains(&tool.display().to_string())
            && e.contains("do not see it")
            && e.contains("SIDECAR_SHARED_TMP=1")
            && !e.contains("not installed"),
        "{e}"
    );
    // What the message advises works.
    let shared = start(&[("SIDECAR_SHARED_TMP", "1")]);
    let v = shared.execute(&json!({"language": "hid", "code": "x"}));
    assert_eq!(v["stdout"], "ran\n", "{v}");
}

#[test]
fn plugin_rejections_are_422() {
    let sc = Sidecar::start();
    let cases = [
        ("c", ""),
        ("rs", "   \n"),
        ("go", "package util\n\nfunc main() {}\n"),
    ];
    for (language, code) in cases {
        if !language_available(&sc, language) {
            continue;
        }
        let (status, v) = sc.post("/execute", &json!({"language": language, "code": code}));
        assert_eq!(status, 422, "{language} {code:?}: {v}");
        assert!(!error_of(&v).is_empty());
    }
    // Empty code is fine where the language allows it.
    let v = sc.execute(&json!({"language": "bash", "code": ""}));
    assert_eq!(v["status"], "ok", "{v}");
}

#[test]
fn request_files_utf8_and_base64_and_changes() {
    let sc = Sidecar::start();
    if !language_available(&sc, "py") {
        return;
    }
    let bytes: Vec<u8> = vec![0, 1, 2, 0xfe, 0xff, b'\n'];
    let b64 = "AAEC/v8K";
    let code = "import os\n\
                print(list(open('bin.dat', 'rb').read()))\n\
                print(open('text.txt', encoding='utf-8').read())\n\
                os.makedirs('results/deep', exist_ok=True)\n\
                open('results/deep/out.csv', 'w').write('a,b\\n1,2\\n')\n\
                open('same_size.txt', 'w').write('new\\n')\n";
    let v = sc.execute(&json!({
        "language": "py",
        "code": code,
        "files": [
            {"path": "bin.dat", "content": b64, "encoding": "base64"},
            {"path": "text.txt", "content": "héllo ✓", "encoding": "utf8"},
            {"path": "same_size.txt", "content": "old\n"},
            {"path": "data/nested.txt", "content": "nested"},
        ],
    }));
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(v["stdout"], format!("{:?}\nhéllo ✓\n", bytes), "{v:#}");
    assert_eq!(std::fs::read(sc.workspace.join("bin.dat")).unwrap(), bytes);
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("data/nested.txt")).unwrap(),
        "nested"
    );
    let paths: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    // Created (nested) and modified (same size: found by more than its size).
    assert_eq!(paths, ["results/deep/out.csv", "same_size.txt"], "{v:#}");

    // Invalid base64, and paths that leave the work dir.
    for file in [
        json!({"path": "x.bin", "content": "***", "encoding": "base64"}),
        json!({"path": "../escape.txt", "content": "x"}),
        json!({"path": "/tmp/abs.txt", "content": "x"}),
    ] {
        let (status, v) = sc.post(
            "/execute",
            &json!({"language": "py", "code": "pass", "files": [file]}),
        );
        assert!(status == 400 || status == 403, "{file}: {status} {v}");
    }
    assert!(!sc.workspace.parent().unwrap().join("escape.txt").exists());
}

/// Staging many files at once takes one descriptor per directory, not per file: 3000
/// files in a request pass under a hard limit of 512 open files.
#[test]
fn thousands_of_request_files_fit_a_low_open_files_limit() {
    let sc = Sidecar::start_with(Options {
        open_files_soft_limit: Some(512),
        open_files_hard_limit: Some(512),
        ..Options::default()
    });
    let files: Vec<Value> = (0..3000)
        .map(|i| json!({"path": format!("d{}/f{i}.txt", i % 3), "content": i.to_string()}))
        .collect();
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "ls d0 d1 d2 | grep -c txt",
        "files": files,
    }));
    assert_eq!(v["stdout"], "3000\n", "{v}");
    let last = std::fs::read_to_string(sc.workspace.join("d2/f2999.txt")).unwrap();
    assert_eq!(last, "2999");
}

/// A request's files are written all or none: when one cannot be (invalid base64, a
/// directory in its place, a path out of the work dir), the others are not written
/// either, and a file they would have replaced keeps its content. Likewise the files
/// of one upload to /files.
#[test]
fn request_files_are_written_all_or_none() {
    let sc = Sidecar::start();
    std::fs::create_dir(sc.workspace.join("a-dir")).unwrap();
    std::fs::write(sc.workspace.join("kept.txt"), "before").unwrap();
    for bad in [
        json!({"path": "x.bin", "content": "***", "encoding": "base64"}),
        json!({"path": "a-dir", "content": "x"}),
        json!({"path": "../out.txt", "content": "x"}),
    ] {
        let files = json!([
            {"path": "new.txt", "content": "new"},
            {"path": "kept.txt", "content": "after"},
            bad,
        ]);
        let (status, v) = sc.post(
            "/execute",
            &json!({"language": "bash", "code": "true", "files": files}),
        );
        assert!(status == 400 || status == 403, "{bad}: {status} {v}");
        assert!(!sc.workspace.join("new.txt").exists(), "{bad}");
        let kept = std::fs::read_to_string(sc.workspace.join("kept.txt")).unwrap();
        assert_eq!(kept, "before", "{bad}");
    }
    // Nothing left behind under a temporary name either.
    let names: Vec<String> = std::fs::read_dir(&sc.workspace)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // /files: the second part names the directory.
    let boundary = "xyzzy";
    let part = |name: &str, data: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; \
             filename=\"{name}\"\r\n\r\n{data}\r\n"
        )
    };
    let body = format!(
        "{}{}--{boundary}--\r\n",
        part("up.txt", "x"),
        part("a-dir", "y")
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let r = sc.request(
        "POST",
        "/files",
        &[("content-type", &content_type)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!sc.workspace.join("up.txt").exists());
}

#[test]
fn working_dir_must_stay_inside_the_workspace() {
    let sc = Sidecar::start();
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "pwd\ncat in.txt\necho out > out.txt",
        "working_dir": "proj/sub",
        "files": [{"path": "in.txt", "content": "input\n"}],
    }));
    assert_eq!(v["status"], "ok", "{v:#}");
    let dir = sc.workspace.join("proj/sub");
    let pwd = v["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        Path::new(&pwd).canonicalize().unwrap(),
        dir.canonicalize().unwrap()
    );
    assert!(v["stdout"].as_str().unwrap().ends_with("input\n"), "{v:#}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "out\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("in.txt")).unwrap(),
        "input\n"
    );
    assert_eq!(v["files"][0]["path"], "out.txt", "{v:#}");
    // An absolute path inside the session works too.
    let abs = sc.workspace.join("proj").display().to_string();
    let v = sc.execute(&json!({"language": "bash", "code": "ls", "working_dir": abs}));
    assert_eq!(v["stdout"], "sub\n", "{v:#}");

    // Outside: refused before anything runs.
    let planted = sc.execute(&json!({"language": "bash", "code": "ln -s /etc etc_link"}));
    assert_eq!(planted["status"], "ok");
    for dir in [
        "../",
        "../../tmp",
        "/etc",
        "/tmp",
        "etc_link",
        "etc_link/ssl",
    ] {
        let (status, v) = sc.post(
            "/execute",
            &json!({"language": "bash", "code": "echo ran > ran.txt; pwd", "working_dir": dir}),
        );
        assert!(status == 400 || status == 403, "{dir}: {status} {v}");
        assert!(!error_of(&v).is_empty());
    }
    assert!(!Path::new("/etc/ran.txt").exists());
    assert!(!sc.workspace.parent().unwrap().join("ran.txt").exists());
}

#[test]
fn output_is_capped_per_stream_with_flags() {
    let sc = Sidecar::start();
    let cap: usize = 1 << 20;
    // Exactly the cap: kept whole.
    let v = sc.execute(&json!({
        "language": "bash",
        "code": format!("head -c {cap} /dev/zero | tr '\\0' a"),
    }));
    assert_eq!(v["status"], "ok", "{}", v["status"]);
    assert_eq!(v["stdout"].as_str().unwrap().len(), cap);
    assert_eq!(v["run"]["stdoutTruncated"], false);
    // One byte more on stdout, 3 MB on stderr: both cut to the cap, both flagged, and
    // the program still finished normally.
    let v = sc.execute(&json!({
        "language": "bash",
        "code": format!("head -c {} /dev/zero | tr '\\0' a\nhead -c 3000000 /dev/zero | tr '\\0' b >&2\necho done >&2\nexit 0", cap + 1),
    }));
    assert_eq!(v["status"], "ok", "{}", v["status"]);
    let run = &v["run"];
    assert_eq!(run["stdoutTruncated"], true);
    assert_eq!(run["stderrTruncated"], true);
    assert_eq!(run["stdout"].as_str().unwrap().len(), cap);
    assert_eq!(run["stderr"].as_str().unwrap().len(), cap);
    assert_eq!(v["stdout"].as_str().unwrap().len(), cap);
    assert_eq!(v["stderr"].as_str().unwrap().len(), cap);
    assert!(run["stderr"].as_str().unwrap().chars().all(|c| c == 'b'));
    // Multi-byte characters are never cut in half; invalid UTF-8 becomes U+FFFD.
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "yes é | head -c 3000000\nprintf 'x\\377y' >&2",
    }));
    let out = v["stdout"].as_str().unwrap();
    assert!(out.len() <= cap && out.len() > cap - 4, "{}", out.len());
    assert!(out.chars().all(|c| c == 'é' || c == '\n'));
    assert_eq!(v["stderr"], "x\u{fffd}y", "{}", v["stderr"]);
}

#[test]
fn sessions_are_separate_directories() {
    let sc = Sidecar::start();
    let v =
        sc.execute(&json!({"language": "bash", "code": "echo a > mine.txt", "sessionId": "alpha"}));
    assert_eq!(v["files"][0]["path"], "mine.txt");
    let v = sc.execute(&json!({"language": "bash", "code": "ls", "sessionId": "beta"}));
    assert_eq!(v["stdout"], "", "{v:#}");
    assert!(sc.workspace.join("alpha/mine.txt").exists());
    let (status, v) = sc.post(
        "/execute",
        &json!({"language": "bash", "code": "ls", "sessionId": "../alpha"}),
    );
    assert_eq!(status, 400, "{v}");
}

#[test]
fn a_request_of_the_wrong_shape_is_refused_naming_the_field() {
    let sc = Sidecar::start();
    for (body, field, wanted) in [
        (json!({"language": "bash", "code": 5}), "`code`", "a string"),
        (
            json!({"language": "bash", "code": "true", "timeoutSeconds": "ten"}),
            "`timeoutSeconds`",
            "expected a number",
        ),
        (
            json!({"language": "bash", "code": "true", "args": ["a", 1]}),
            "`args[1]`",
            "a string",
        ),
        (
            json!({"language": "bash", "code": "true", "files": [{"path": "a", "content": 5}]}),
            "`files[0].content`",
            "a string",
        ),
        (
            json!({"language": "bash", "code": "true", "files": [{"path": "a", "content": "x", "encoding": "rot13"}]}),
            "`files[0].encoding`",
            "`base64`",
        ),
    ] {
        let (status, message) = sc.fails("/execute", &body);
        assert_eq!(status, 400, "{body}");
        assert!(
            message.contains(field) && message.contains(wanted),
            "{body}: {message}"
        );
    }
    // Nothing was run or written meanwhile, and the sidecar still serves.
    assert!(!sc.workspace.join("a").exists());
    let v = sc.execute(&json!({"language": "bash", "code": "echo ok"}));
    assert_eq!(v["stdout"], "ok\n", "{v}");
}

/// A raw request's status and body, for the /files endpoints.
fn raw(sc: &Sidecar, method: &str, path: &str) -> (u16, Vec<u8>, Option<String>) {
    let r = sc.request(method, path, &[], b"");
    let disposition = r.header("content-disposition").map(str::to_string);
    (r.status, r.body, disposition)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[test]
fn files_endpoints_upload_list_download_delete() {
    let sc = Sidecar::start();
    let binary_content: Vec<u8> = (0..=255u8).collect();
    let (content_type, body) = multipart(&[
        ("files", Some("data.csv"), b"a,b\n1,2\n"),
        ("files", Some("some/dir/report.bin"), &binary_content),
        ("files", Some(".env"), b"SECRET=1\n"),
        ("comment", None, b"not a file"),
    ]);
    let r = sc.request(
        "POST",
        "/files?sessionId=s1",
        &[("content-type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let uploaded = v["uploaded"].as_array().unwrap();
    let names: Vec<&str> = uploaded
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["data.csv", "report.bin"],
        "basenames, dot-files skipped: {v}"
    );
    assert_eq!(uploaded[0]["size"], 8);
    assert_eq!(uploaded[1]["size"], 256);
    let session = sc.workspace.join("s1");
    assert!(uploaded[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("s1/data.csv"));
    assert_eq!(
        std::fs::read(session.join("report.bin")).unwrap(),
        binary_content
    );
    assert!(!session.join(".env").exists());
    assert!(!session.join("some").exists());

    // Uploaded files are there for code of the same session, which may modify them.
    if language_available(&sc, "py") {
        let v = sc.execute(&json!({
            "language": "py",
            "sessionId": "s1",
            "code": "print(open('data.csv').read().count('\\n'))\nopen('data.csv', 'a').write('3,4\\n')\n\
                     import os\nos.makedirs('out', exist_ok=True)\nopen('out/r.txt', 'w').write('r')\n",
        }));
        assert_eq!(v["status"], "ok", "{v:#}");
        assert_eq!(v["stdout"], "2\n");
        let changed: Vec<&str> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(changed, ["data.csv", "out/r.txt"], "{v:#}");
    } else {
        std::fs::create_dir_all(session.join("out")).unwrap();
        std::fs::write(session.join("out/r.txt"), "r").unwrap();
    }

    // GET /files: everything, recursively, with sizes.
    let (status, body, _) = raw(&sc, "GET", "/files?sessionId=s1");
    assert_eq!(status, 200);
    let list = json_of(&body);
    let files = list["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"data.csv") && names.contains(&"report.bin"),
        "{list}"
    );
    assert!(names.contains(&"out/r.txt"), "{list}");
    for f in files {
        assert!(f["path"].is_string() && f["size"].is_u64(), "{f}");
    }
    // With a trailing slash (a client joining `/files/` and an empty path): the same.
    let (status, slash, _) = raw(&sc, "GET", "/files/?sessionId=s1");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&slash));
    assert_eq!(json_of(&slash)["files"], list["files"]);

    // GET /files/{path}: the bytes, as an attachment.
    let (status, body, disposition) = raw(&sc, "GET", "/files/report.bin?sessionId=s1");
    assert_eq!(status, 200);
    assert_eq!(body, binary_content);
    assert!(disposition.unwrap().contains("report.bin"));
    let (status, body, _) = raw(&sc, "GET", "/files/out/r.txt?sessionId=s1");
    assert_eq!((status, body), (200, b"r".to_vec()));
    // A directory: a JSON listing.
    let (status, body, _) = raw(&sc, "GET", "/files/out?sessionId=s1");
    assert_eq!(status, 200);
    let listing = json_of(&body);
    assert!(listing.to_string().contains("r.txt"), "{listing}");
    // Missing: 404. Escapes: refused.
    let (status, _, _) = raw(&sc, "GET", "/files/nothere.txt?sessionId=s1");
    assert_eq!(status, 404);
    for path in [
        "/files/../../../../etc/passwd?sessionId=s1",
        "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd?sessionId=s1",
        "/files//etc/passwd?sessionId=s1",
        "/files/out/../../s2/x?sessionId=s1",
    ] {
        let (status, body, _) = raw(&sc, "GET", path);
        assert!(
            status == 400 || status == 403 || status == 404,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    let (status, _, _) = raw(&sc, "GET", "/files/%2e%2e/%2e%2e/etc/passwd?sessionId=s1");
    assert!(
        status == 400 || status == 403,
        "an escape is not a missing file: {status}"
    );
    // Another session sees none of it.
    let (status, body, _) = raw(&sc, "GET", "/files/data.csv?sessionId=s2");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // DELETE /files/{path}.
    let (status, body, _) = raw(&sc, "DELETE", "/files/data.csv?sessionId=s1");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["deleted"], "data.csv");
    assert!(!session.join("data.csv").exists());
    let (status, _, _) = raw(&sc, "GET", "/files/data.csv?sessionId=s1");
    assert_eq!(status, 404);
    let (status, _, _) = raw(&sc, "DELETE", "/files/data.csv?sessionId=s1");
    assert_eq!(status, 404);
    let (status, _, _) = raw(
        &sc,
        "DELETE",
        "/files/%2e%2e/%2e%2e/etc/passwd?sessionId=s1",
    );
    assert!(status == 400 || status == 403, "{status}");

    // An upload without files, and the session id as a form field.
    let (content_type, body) = multipart(&[("comment", None, b"nothing")]);
    let r = sc.request("POST", "/files", &[("content-type", &content_type)], &body);
    assert_eq!(r.status, 400, "{}", r.text());
    let (content_type, body) =
        multipart(&[("sessionId", None, b"s3"), ("files", Some("x.txt"), b"x")]);
    let r = sc.request("POST", "/files", &[("content-type", &content_type)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(sc.workspace.join("s3/x.txt").exists());
}

/// What axum's own extractors refuse (a malformed query string, path or multipart
/// body) used to come back as plain text; it is the envelope like every other error.
#[test]
fn files_endpoints_answer_malformed_requests_with_the_envelope() {
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_BODY_LIMIT", "4096")]));
    // Answered from the head alone: the request goes in one write.
    let send = |method: &str, path: &str, content_type: &str, body: &[u8]| {
        let headers = [("content-type", content_type)];
        sidecar_tests::request_in_one_write(&sc.socket, method, path, &headers, body)
    };
    let envelope = |r: sidecar_tests::Response, status: u16, what: &str| -> String {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let v = r.json();
        assert_error_envelope(&v);
        v["error"].as_str().unwrap().to_string()
    };
    for content_type in [
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
    ] {
        envelope(
            send("POST", "/files", content_type, b"{}"),
            400,
            content_type,
        );
    }
    let r = sc.request("GET", "/files?sessionId=a&sessionId=b", &[], b"");
    assert!(envelope(r, 400, "two session ids").contains("sessionId"));
    for method in ["GET", "DELETE"] {
        let r = sc.request(method, "/files/%FF", &[], b"");
        assert!(envelope(r, 400, "not UTF-8").contains("UTF-8"));
    }
    let (content_type, body) = multipart(&[("files", Some("big.bin"), &[b'x'; 20_000])]);
    let message = envelope(
        send("POST", "/files", &content_type, &body),
        413,
        "too large",
    );
    assert!(
        message.contains("4096 bytes") && message.contains("SIDECAR_BODY_LIMIT"),
        "{message}"
    );
    assert!(!sc.workspace.join("big.bin").exists());
}

/// A file name a header cannot carry as is (a newline made the download a 500): the
/// bytes still come, named exactly in `filename*` and safely in `filename`.
#[test]
fn downloads_of_awkward_names_say_the_exact_name() {
    let sc = Sidecar::start();
    for (name, encoded, plain) in [
        ("a\nb", "a%0Ab", "a_b"),
        ("\u{e9}t\u{e9}.txt", "%C3%A9t%C3%A9.txt", "_t_.txt"),
        ("say \"hi\".txt", "say%20%22hi%22.txt", "say _hi_.txt"),
    ] {
        std::fs::write(sc.workspace.join(name), name).unwrap();
        let r = sc.request("GET", &format!("/files/{encoded}"), &[], b"");
        assert_eq!(r.status, 200, "{name:?}: {}", r.text());
        assert_eq!(r.body, name.as_bytes());
        let disposition = r.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with(&format!("attachment; filename=\"{plain}\"; ")),
            "{disposition}"
        );
        let exact = disposition.split("filename*=UTF-8''").nth(1).unwrap();
        let mut decoded = Vec::new();
        let mut bytes = exact.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                    .iter()
                    .map(|&c| c as char)
                    .collect();
                decoded.push(u8::from_str_radix(&hex, 16).unwrap());
            } else {
                decoded.push(b);
            }
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), name);
    }
}

#[test]
fn busy_is_503_with_retry_after() {
    let sc = Sidecar::start_with(Options::with_env(&[
        ("SIDECAR_MAX_CONCURRENT", "1"),
        ("SIDECAR_MAX_QUEUE", "0"),
    ]));
    let m = unique_marker();
    let socket = sc.socket.clone();
    let code = format!("sleep 3.{m}\necho first");
    let first = std::thread::spawn(move || {
        let body = json!({"language": "bash", "code": code});
        sidecar_tests::request(
            &socket,
            "POST",
            "/execute",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    });
    // Wait until the first one runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while processes_with(&m).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first execution never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = sc.request(
        "POST",
        "/execute",
        &[("content-type", "application/json")],
        json!({"language": "bash", "code": "echo second"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    let retry = r.header("retry-after").expect("a Retry-After header");
    assert!(retry.parse::<u64>().is_ok_and(|s| s >= 1), "{retry}");
    assert!(!error_of(&r.json()).is_empty());
    // /bash shares the limit.
    let r = sc.request(
        "POST",
        "/bash",
        &[("content-type", "application/json")],
        json!({"command": "echo third"}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());

    let first = first.join().unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["stdout"], "first\n");
    // Free again.
    let v = sc.execute(&json!({"language": "bash", "code": "echo again"}));
    assert_eq!(v["stdout"], "again\n");
}

/// `sidecar run` with the test plugins and languages.
fn cli(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(binary())
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIDECAR_PLUGINS_DIR", plugins_dir())
        .env("SIDECAR_LANGUAGES", repo().join("languages.toml"))
        .env("SIDECAR_CACHE_DIR", repo().join("target/test-cache"))
        .env("SIDECAR_SCRATCH_DIR", dir.join("scratch"))
        .stdin(Stdio::null())
        .output()
        .expect("run the sidecar binary")
}

#[test]
fn cli_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    std::fs::write(
        d.join("hello.sh"),
        "echo \"hello $#\"\nfor a in \"$@\"; do echo \"[$a]\"; done\n",
    )
    .unwrap();
    let o = cli(&["hello.sh", "a b", "--flag", "c"], d);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hello 3\n[a b]\n[--flag]\n[c]\n");

    std::fs::write(d.join("exit.sh"), "echo out\necho err >&2\nexit 7\n").unwrap();
    let o = cli(&["exit.sh"], d);
    assert_eq!(o.status.code(), Some(7), "{}", err(&o));
    assert_eq!(out(&o), "out\n");
    assert!(err(&o).contains("err\n"), "{}", err(&o));

    // A program ended by a signal exits as a shell reports it: 128 + N.
    std::fs::write(d.join("crash.sh"), "kill -SEGV $$\n").unwrap();
    let o = cli(&["crash.sh"], d);
    assert_eq!(o.status.code(), Some(139), "{}", err(&o));
    assert!(err(&o).contains("status: signal"), "{}", err(&o));

    // --language for a file whose extension says nothing.
    std::fs::write(d.join("script.txt"), "echo as bash\n").unwrap();
    let o = cli(&["--language", "bash", "script.txt"], d);
    assert_eq!(out(&o), "as bash\n", "{}", err(&o));
    let o = cli(&["script.txt"], d);
    assert!(!o.status.success());
    assert!(err(&o).contains("--language"), "{}", err(&o));

    // Timeouts exit with 124.
    std::fs::write(d.join("slow.sh"), "sleep 30\n").unwrap();
    let (o, took) = timed(|| cli(&["--timeout", "1", "slow.sh"], d));
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));
    assert!(took < Duration::from_secs(1) + SLACK + SLACK, "{took:?}");

    // Python: the language from the extension, stdin from a file, arguments.
    let probe = Sidecar::start();
    if language_available(&probe, "py") {
        std::fs::write(
            d.join("hello.py"),
            "import sys\nprint('hello', sys.argv[1:])\nprint(sys.stdin.read().upper(), end='')\nsys.exit(int(sys.argv[-1]))\n",
        )
        .unwrap();
        std::fs::write(d.join("in.txt"), "from stdin\n").unwrap();
        let o = cli(&["--stdin", "in.txt", "hello.py", "x y", "3"], d);
        assert_eq!(o.status.code(), Some(3), "{}", err(&o));
        assert_eq!(out(&o), "hello ['x y', '3']\nFROM STDIN\n");
        let o = cli(&["hello.py", "0"], d);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert_eq!(out(&o), "hello ['0']\n");
    }
    if language_available(&probe, "c") {
        std::fs::write(
            d.join("prog.c"),
            "#include <stdio.h>\nint main(int c, char **v) { printf(\"%s\\n\", v[1]); return 5; }\n",
        )
        .unwrap();
        let o = cli(&["prog.c", "arg one"], d);
        assert_eq!(o.status.code(), Some(5), "{}", err(&o));
        assert_eq!(out(&o), "arg one\n");
        std::fs::write(d.join("bad.c"), "int main(void) { return nope; }\n").unwrap();
        let o = cli(&["bad.c"], d);
        assert!(!o.status.success());
        assert!(err(&o).contains("nope"), "{}", err(&o));
        assert!(err(&o).contains("compile_error"), "{}", err(&o));
    }
    // Every run removed its scratch dir (and those made ahead) before exiting.
    let left: Vec<_> = std::fs::read_dir(d.join("scratch"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the scratch root: {left:?}");
}

#[test]
fn stdin_args_and_bad_requests() {
    let sc = Sidecar::start();
    // Large stdin, read whole; and ignored by a program that exits at once.
    let big = "x".repeat(5_000_000);
    let v = sc.execute(&json!({"language": "bash", "code": "wc -c", "stdin": big}));
    assert_eq!(v["stdout"], "5000000\n", "{}", v["stderr"]);
    let (v, took) = timed(|| {
        sc.execute(
            &json!({"language": "bash", "code": "echo ignored", "stdin": big, "timeout": 10}),
        )
    });
    assert_eq!(v["status"], "ok", "{v:#}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Arguments are passed as they are, however odd.
    let args = [
        "",
        " ",
        "ünïcödé",
        "-e",
        "--",
        "a\nb",
        "$(id)",
        "`id`",
        "'\"\\",
    ];
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "for a in \"$@\"; do printf '[%s]' \"$a\"; done",
        "args": args,
    }));
    let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(v["stdout"], expected, "{v:#}");
    // A NUL byte cannot be passed: the caller's error.
    let (status, v) = sc.post(
        "/execute",
        &json!({"language": "bash", "code": "true", "args": ["a\u{0}b"]}),
    );
    assert_eq!(status, 400, "{v}");
    // Not JSON, wrong types.
    let r = sc.request(
        "POST",
        "/execute",
        &[("content-type", "application/json")],
        b"{\"language\": \"bash\", \"code\": ",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    for body in [
        json!({"language": "bash", "code": 42}),
        json!({"language": "bash", "code": "true", "args": "a b"}),
        json!({"language": "bash", "code": "true", "timeout": "soon"}),
        json!({"language": "bash", "code": "true", "files": [{"path": "x"}]}),
        json!({"language": "bash", "code": "true", "files": [{"path": "x", "content": "y", "encoding": "rot13"}]}),
    ] {
        let (status, v) = sc.post("/execute", &body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(!error_of(&v).is_empty());
    }
}

#[test]
fn compile_timeout_compile_failure_and_memory_multiplier() {
    let (_dir, languages) = languages_with(
        "[languages.slowbuild]\nplugin = \"template\"\nfile_extension = \"slowbuild\"\n\
         code_filename = \"code.sh\"\ncompile_command = \"sleep 30\"\nrun_command = \"bash {file}\"\n\n\
         [languages.failbuild]\nplugin = \"template\"\nfile_extension = \"failbuild\"\n\
         code_filename = \"code.sh\"\ncompile_command = \"bash -c 'echo broken >&2; exit 4'\"\n\
         run_command = \"bash {file}\"\n\n\
         [languages.bigpy]\nplugin = \"template\"\nfile_extension = \"bigpy\"\n\
         code_filename = \"code.py\"\nrun_command = \"python3 {file}\"\nmemory_multiplier = 4.0\n",
    );
    let sc = Sidecar::start_with(Options {
        env: vec![
            ("SIDECAR_COMPILE_TIMEOUT".into(), "1".into()),
            ("SIDECAR_MEMORY_MB".into(), "64".into()),
        ],
        languages: Some(languages),
        ..Options::default()
    });
    // A compile step past its timeout: status timeout, exit code 124, no run.
    let (v, took) = timed(|| sc.execute(&json!({"language": "slowbuild", "code": "echo never"})));
    assert_eq!(v["status"], "timeout", "{v:#}");
    assert_eq!(v["exit_code"], 124, "{v:#}");
    assert_eq!(v["compile"]["timedOut"], true, "{v:#}");
    assert!(v["run"].is_null(), "{v:#}");
    assert!(took < Duration::from_secs(1) + SLACK, "{took:?}");
    // A failing compile step: compile_error with its exit code and message.
    let v = sc.execute(&json!({"language": "failbuild", "code": "echo never"}));
    assert_eq!(v["status"], "compile_error", "{v:#}");
    assert_eq!(v["compile"]["exitCode"], 4, "{v:#}");
    assert_eq!(v["exit_code"], 4, "{v:#}");
    assert_eq!(v["stderr"], "broken\n", "{v:#}");
    assert!(v["run"].is_null(), "{v:#}");

    // 64 MiB × the language's memory multiplier.
    if language_available(&sc, "py") {
        let code = "b = b'x' * (150 << 20)\nprint(len(b) >> 20)\n";
        let v = sc.execute(&json!({"language": "py", "code": code}));
        assert_eq!(v["status"], "memory_limit", "{v:#}");
        let v = sc.execute(&json!({"language": "bigpy", "code": code}));
        assert_eq!(
            v["status"], "ok",
            "the memory multiplier was not applied: {v:#}"
        );
        assert_eq!(v["stdout"], "150\n");
    }
}

#[test]
fn without_cgroups_request_files_are_writable_by_the_code() {
    let sc = Sidecar::start_with(Options::without_cgroups());
    let v = sc.execute(&json!({
        "language": "bash",
        "code": "cat given.txt && echo more >> given.txt && echo new > made.txt",
        "files": [{"path": "given.txt", "content": "given\n"}],
    }));
    assert_eq!(v["status"], "ok", "{v:#}");
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("given.txt")).unwrap(),
        "given\nmore\n"
    );
}

/// Without `SIDECAR_SCRATCH_DIR` the sidecar picks the scratch root itself
/// (`/dev/shm/sidecar` on a roomy tmpfs, else `/tmp/sidecar`), names it in its start-up
/// log, and executions get their HOME and TMPDIR there: the root itself where each has
/// its own tmpfs there (private temporary dirs), else a dir of their own in it.
#[test]
fn the_default_scratch_root_is_logged_and_used() {
    let sc = Sidecar::start_with(Options {
        default_scratch: true,
        ..Options::default()
    });
    let log = std::fs::read_to_string(sc.dir.path().join("stderr.log")).unwrap();
    let root = ["/dev/shm/sidecar", "/tmp/sidecar"]
        .into_iter()
        .find(|root| log.contains(root))
        .unwrap_or_else(|| panic!("no scratch root in the start-up log:\n{log}"));
    let v = sc.execute(&json!({"language": "bash", "code": "echo \"$HOME $TMPDIR\""}));
    assert_eq!(v["status"], "ok", "{v:#}");
    let home = if protection_active(&sc, "private_tmp") {
        format!("{root} ")
    } else {
        format!("{root}/exec-{}-", sc.pid())
    };
    let out = v["stdout"].as_str().unwrap();
    assert!(out.starts_with(&home), "{out} not under {home}");
    let dirs: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(dirs.len(), 2, "{out}");
    assert_eq!(dirs[0], dirs[1], "HOME and TMPDIR differ: {out}");
}

/// A client that hangs up while its program runs: the program and what it started are
/// killed and reaped (no child of the sidecar is left, not even a zombie), the clean-up
/// that follows an execution still happens, and the sidecar serves the next request.
#[test]
fn a_client_that_hangs_up_ends_its_execution() {
    use std::os::unix::net::UnixStream;
    let sc = Sidecar::start();
    if !language_available(&sc, "py") {
        return;
    }
    let m = unique_marker();
    let code = format!(
        "import subprocess, time\nsubprocess.Popen(['sleep', '40.{m}'])\n\
         print('started', flush=True)\ntime.sleep(41)\n"
    );
    let mut stream = UnixStream::connect(&sc.socket).unwrap();
    let body = json!({"language": "py", "code": code, "timeoutSeconds": 60}).to_string();
    sidecar_tests::write_request(
        &mut stream,
        "POST",
        "/execute",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while processes_with(&format!("sleep 40.{m}")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the program did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sidecar's children (its program while it runs), zombies included.
    let children = || -> Vec<String> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .collect();
                fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(sc.pid())
            })
            .collect()
    };
    assert!(
        !children().is_empty(),
        "the program is not the sidecar's child"
    );
    drop(stream);
    let left = sidecar_tests::wait_no_processes(&m, Duration::from_secs(10));
    assert!(left.is_empty(), "still running after the hang-up: {left:?}");
    // Nothing of it is left as a child of the sidecar, a zombie included.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !children().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "children of the sidecar left: {:?}",
            children()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sidecar serves on, with what that execution held given back.
    for _ in 0..3 {
        let (status, v) = sc.post("/execute", &json!({"language": "py", "code": "print(2)"}));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["stdout"], "2\n", "{v}");
    }
}
