//! The plugin runtime through the real binary: hostile plugins are contained with an
//! error naming the plugin while the others go on serving; malformed files are refused
//! at load; `languages.toml` is validated and applied over the plugins' defaults; the
//! compile cache is used, and a corrupt entry is only a miss; `sidecar plan` shows the
//! language quirks; `sidecar plugin check` describes every built plugin.
//!
//! Run after `make build`: `cargo test --release -p sidecar-tests --test plugins`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sidecar_tests::*;
use tempfile::TempDir;

mod hand_made;
use hand_made::describing;

// ---------------------------------------------------------------------------------
// Fixtures

/// A `languages.toml` table for the template plugin running bash (always installed).
const BASH: &str = r#"
[languages.bash]
plugin = "template"
code_filename = "code.sh"
run_command = "bash {file}"
"#;

/// Every `behavior` of the hostile plugin (tests/fixtures/hostile-plugin).
const BEHAVIORS: &[&str] = &[
    "ok",
    "loop",
    "oom",
    "trap",
    "empty-argv",
    "escape-path",
    "absolute-path",
    "relative-cwd",
    "bad-env",
    "error",
    "calls",
    "leak",
];

/// A language `h-<behavior>` served by the hostile plugin with that behavior.
fn hostile_table(behavior: &str, extra_options: &str) -> String {
    format!(
        "\n[languages.h-{behavior}]\nplugin = \"hostile\"\ncode_filename = \"code.txt\"\nrun_command = \"true\"\noptions = {{ behavior = \"{behavior}\"{extra_options} }}\n"
    )
}

/// A temporary directory holding copies of built plugins (by code, e.g. "py") and any
/// extra files given as (file name, bytes).
fn plugin_dir(built: &[&str], extra: &[(&str, Vec<u8>)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sidecar-plugins-")
        .tempdir()
        .unwrap();
    for code in built {
        let src = if *code == "hostile" {
            hostile_plugin()
        } else {
            plugins_dir().join(format!("{code}.wasm"))
        };
        std::fs::copy(&src, dir.path().join(format!("{code}.wasm")))
            .unwrap_or_else(|e| panic!("copy {} (run `make build`): {e}", src.display()));
    }
    for (name, bytes) in extra {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn write_toml(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("languages.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A sidecar with the template plugin (bash), the hostile plugin with a language per
/// behavior, and its own plugins directory (kept alive with it).
struct Fixture {
    sidecar: Sidecar,
    _plugins: TempDir,
    _config: TempDir,
}

fn hostile_sidecar(env: &[(&str, &str)], extra_toml: &str) -> Fixture {
    let plugins = plugin_dir(&["template", "hostile"], &[]);
    let config = tempfile::tempdir().unwrap();
    let mut toml = BASH.to_string();
    for b in BEHAVIORS {
        toml.push_str(&hostile_table(b, ""));
    }
    toml.push_str(extra_toml);
    let languages = write_toml(config.path(), &toml);
    let sidecar = Sidecar::start_with(Options {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        plugins_dir: Some(plugins.path().to_path_buf()),
        languages: Some(languages),
        ..Options::default()
    });
    Fixture {
        sidecar,
        _plugins: plugins,
        _config: config,
    }
}

fn execute(s: &Sidecar, language: &str, code: &str) -> (u16, Value) {
    s.post("/execute", &json!({"language": language, "code": code}))
}

/// The error message of a failed request.
fn error_of(v: &Value) -> String {
    assert_eq!(v["ok"], false, "expected a failure: {v}");
    v["error"].as_str().unwrap_or_default().to_string()
}

/// The host still runs code through another plugin.
fn assert_serves_bash(s: &Sidecar) {
    let (status, v) = execute(s, "bash", "echo alive");
    assert_eq!(status, 200, "bash after a hostile plugin: {v}\n{}", s.log());
    assert_eq!(v["stdout"], "alive\n", "{v}");
}

/// Asserts that a hostile plan gives `status` with an error naming the plugin and
/// containing every one of `needles`, then that the host still serves bash.
fn assert_contained(s: &Sidecar, behavior: &str, status: u16, needles: &[&str]) -> String {
    let (got, v) = execute(s, &format!("h-{behavior}"), "anything");
    let message = error_of(&v);
    assert_eq!(got, status, "{behavior}: {v}");
    assert!(
        message.contains("plugin `hostile`"),
        "{behavior}: the error must name the plugin: {message}"
    );
    for n in needles {
        assert!(
            message.contains(n),
            "{behavior}: expected {n:?} in {message:?}"
        );
    }
    assert_serves_bash(s);
    message
}

// ---------------------------------------------------------------------------------
// Hostile plans

#[test]
fn looping_plan_hits_the_time_limit_while_other_plugins_serve() {
    let timeout = Duration::from_millis(2000);
    let f = hostile_sidecar(&[("SIDECAR_PLUGIN_TIMEOUT_MS", "2000")], "");
    let socket = f.sidecar.socket.clone();
    let looping = std::thread::spawn(move || {
        let started = Instant::now();
        let r = request(
            &socket,
            "POST",
            "/execute",
            &[("content-type", "application/json")],
            json!({"language": "h-loop", "code": ""})
                .to_string()
                .as_bytes(),
        );
        (r.status, r.json(), started.elapsed())
    });
    // While the plugin spins, other languages are served.
    std::thread::sleep(Duration::from_millis(300));
    assert_serves_bash(&f.sidecar);
    assert!(
        !looping.is_finished(),
        "bash was served only after the looping plan returned"
    );
    let (status, v, elapsed) = looping.join().unwrap();
    assert_eq!(status, 500, "{v}");
    let message = error_of(&v);
    assert!(message.contains("plugin `hostile`"), "{message}");
    assert!(message.contains("time limit"), "{message}");
    assert!(
        elapsed >= timeout - Duration::from_millis(100),
        "returned after {elapsed:?}, before the limit"
    );
    // Typically the limit + ~10 ms; generous for a loaded 2-core machine.
    assert!(
        elapsed < timeout + Duration::from_secs(3),
        "returned after {elapsed:?} for a limit of {timeout:?}"
    );
    assert_serves_bash(&f.sidecar);
}

#[test]
fn several_looping_plans_at_once_each_return_at_the_limit() {
    let f = hostile_sidecar(&[("SIDECAR_PLUGIN_TIMEOUT_MS", "1000")], "");
    let started = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let socket = f.sidecar.socket.clone();
            std::thread::spawn(move || {
                let r = request(
                    &socket,
                    "POST",
                    "/execute",
                    &[("content-type", "application/json")],
                    json!({"language": "h-loop", "code": ""})
                        .to_string()
                        .as_bytes(),
                );
                (r.status, r.json())
            })
        })
        .collect();
    for t in threads {
        let (status, v) = t.join().unwrap();
        assert_eq!(status, 500, "{v}");
        assert!(error_of(&v).contains("time limit"), "{v}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "3 loops took {elapsed:?}");
    assert_serves_bash(&f.sidecar);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let f = hostile_sidecar(&[("SIDECAR_PLUGIN_MEMORY_MB", "64")], "");
    let started = Instant::now();
    let message = assert_contained(&f.sidecar, "oom", 500, &["memory limit", "64 MiB"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{message} after {:?}",
        started.elapsed()
    );
    // A plan that is itself too big to build fails the same way.
    let big = hostile_sidecar(
        &[("SIDECAR_PLUGIN_MEMORY_MB", "64")],
        &hostile_table("huge-file", ", size = \"100000000\"").replace("h-huge-file", "h-huge"),
    );
    assert_contained(&big.sidecar, "huge", 500, &["memory limit"]);
    // ... and one within the limit is carried out.
    let (status, v) = execute(&f.sidecar, "h-ok", "");
    assert_eq!(status, 200, "{v}");
}

#[test]
fn trapping_plan_is_reported_with_the_plugin_panic() {
    let f = hostile_sidecar(&[], "");
    let message = assert_contained(&f.sidecar, "trap", 500, &["trapped"]);
    // The plugin's stderr (its panic message) is part of the error.
    assert!(message.contains("trap requested"), "{message}");
    // A trapped instance is never reused: the next call works.
    let (status, v) = execute(&f.sidecar, "h-ok", "");
    assert_eq!(status, 200, "{v}");
}

#[test]
fn invalid_plans_are_refused_before_anything_runs() {
    let f = hostile_sidecar(&[], "");
    let m = assert_contained(&f.sidecar, "empty-argv", 500, &["invalid plan"]);
    assert!(m.contains("empty argv"), "{m}");
    let m = assert_contained(&f.sidecar, "escape-path", 500, &["invalid plan"]);
    assert!(m.contains("`../escape.txt`"), "{m}");
    let m = assert_contained(&f.sidecar, "absolute-path", 500, &["invalid plan"]);
    assert!(m.contains("`/tmp/sidecar-hostile.txt`"), "{m}");
    let m = assert_contained(&f.sidecar, "relative-cwd", 500, &["invalid plan"]);
    assert!(m.contains("relative cwd `relative/dir`"), "{m}");
    let m = assert_contained(&f.sidecar, "bad-env", 500, &["invalid plan"]);
    assert!(m.contains("`A=B`"), "{m}");
    // Nothing was written outside the scratch dir (the scratch dirs live under
    // <sidecar dir>/scratch, so `../escape.txt` would land there).
    let scratch = f.sidecar.dir.path().join("scratch");
    assert!(!scratch.join("escape.txt").exists());
    assert!(!f.sidecar.workspace.join("escape.txt").exists());
}

#[test]
fn plan_error_is_the_callers_fault_not_a_crash() {
    let f = hostile_sidecar(&[], "");
    let (status, v) = execute(&f.sidecar, "h-error", "");
    assert_eq!(status, 422, "{v}");
    let m = error_of(&v);
    assert!(m.contains("plugin `hostile`"), "{m}");
    assert!(m.contains("error requested"), "{m}");
    assert_serves_bash(&f.sidecar);
}

/// The count the `calls` behavior reports for a call in this session.
fn calls_count(s: &Sidecar, language: &str, session: &str) -> u64 {
    let (status, v) = s.post(
        "/execute",
        &json!({"language": language, "code": "", "sessionId": session}),
    );
    assert_eq!(status, 200, "{v}");
    let out = v["stdout"].as_str().unwrap_or_default().trim().to_string();
    out.parse()
        .unwrap_or_else(|_| panic!("{language} in {session}: {v}"))
}

#[test]
fn a_plan_call_never_gets_an_instance_another_session_used() {
    // Whatever a plan call leaves in its instance (here a static counter) may reach
    // the next call of the same session (an instance is kept for it: the plugin's
    // `plan` must be a pure function anyway) but never another session's call, however
    // the sessions' calls interleave.
    let f = hostile_sidecar(&[], "");
    let s = &f.sidecar;
    let mut seen = std::collections::HashMap::new();
    for round in 0..3 {
        for session in ["a", "b", "c"] {
            let n = calls_count(s, "h-calls", session);
            let own = seen.entry(session).or_insert(0u64);
            *own += 1;
            assert_eq!(
                n, *own,
                "round {round}, session {session}: the instance kept for the session is \
                 used for its calls, and only for them"
            );
        }
    }
    // A new session, after the others: a fresh instance.
    assert_eq!(calls_count(s, "h-calls", "d"), 1);
    // Another language of the same plugin, in the same session, shares its instance.
    let (status, v) = s.post(
        "/execute",
        &json!({"language": "h-ok", "code": "", "sessionId": "a"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(calls_count(s, "h-calls", "a"), 4);
}

#[test]
fn an_instance_that_trapped_or_grew_large_is_not_used_again() {
    let f = hostile_sidecar(&[], "");
    let s = &f.sidecar;
    assert_eq!(calls_count(s, "h-calls", "t"), 1);
    assert_eq!(calls_count(s, "h-calls", "t"), 2);
    // The trap happens in the session's kept instance, which is then dropped.
    let (status, v) = s.post(
        "/execute",
        &json!({"language": "h-trap", "code": "", "sessionId": "t"}),
    );
    assert_eq!(status, 500, "{v}");
    assert_eq!(
        calls_count(s, "h-calls", "t"),
        1,
        "a trapped instance was used again"
    );
    // 4 MiB kept per call: 40 calls need 160 MiB, past the 128 MiB a plugin may use,
    // unless an instance grown large is left behind for a fresh one.
    for call in 0..40 {
        let (status, v) = s.post(
            "/execute",
            &json!({"language": "h-leak", "code": "", "sessionId": "t"}),
        );
        assert_eq!(status, 200, "call {call}: {v}");
    }
    // A refusal is a normal return: the instance stays.
    let n = calls_count(s, "h-calls", "u");
    let (status, v) = s.post(
        "/execute",
        &json!({"language": "h-error", "code": "", "sessionId": "u"}),
    );
    assert_eq!(status, 422, "{v}");
    assert_eq!(calls_count(s, "h-calls", "u"), n + 1);
    assert_serves_bash(s);
}

// ---------------------------------------------------------------------------------
// Files that are not plugins

/// Malformed plugin files and the message each must be refused with.
fn bad_plugins() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // Deterministic "random" bytes (xorshift), starting with neither `\0asm` nor text.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 0x80
        })
        .collect();
    let py = std::fs::read(plugins_dir().join("py.wasm")).expect("py.wasm (make build)");
    vec![
        (
            "random.wasm",
            random,
            "not a WebAssembly file (no `\\0asm` header)",
        ),
        (
            "core.wasm",
            wat::parse_str(r#"(module (func (export "describe")))"#).unwrap(),
            "is a core WebAssembly module, not a component",
        ),
        (
            "empty-component.wasm",
            wat::parse_str("(component)").unwrap(),
            "does not implement the world `sidecar:language/language-plugin@0.1.0`",
        ),
        (
            "imports-fs.wasm",
            wat::parse_str(
                r#"(component (import "evil:fs/files" (instance (export "open" (func)))))"#,
            )
            .unwrap(),
            "cannot be linked",
        ),
        (
            "newer.wasm",
            wat::parse_str(r#"(component (import "sidecar:language/types@0.2.0" (instance)))"#)
                .unwrap(),
            "built against a newer interface, sidecar:language@0.2.0",
        ),
        (
            "truncated.wasm",
            py[..py.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
    ]
}

#[test]
fn malformed_files_are_refused_at_load_and_the_others_still_serve() {
    let bad = bad_plugins();
    let extra: Vec<(&str, Vec<u8>)> = bad.iter().map(|(n, b, _)| (*n, b.clone())).collect();
    let plugins = plugin_dir(&["template", "hostile"], &extra);
    let config = tempfile::tempdir().unwrap();
    let languages = write_toml(config.path(), BASH);
    let s = Sidecar::start_with(Options {
        plugins_dir: Some(plugins.path().to_path_buf()),
        languages: Some(languages.clone()),
        ..Options::default()
    });
    let (status, v) = s.get("/languages");
    assert_eq!(status, 200);
    let errors = v["pluginErrors"].as_array().unwrap();
    assert_eq!(errors.len(), bad.len(), "{v:#}");
    for (name, _, expected) in &bad {
        let e = errors
            .iter()
            .find(|e| e["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no error for {name}: {v:#}"));
        let message = e["error"].as_str().unwrap();
        assert!(message.contains(expected), "{name}: {message}");
    }
    let codes: Vec<&str> = v["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["bash", "hostile"], "{v:#}");
    assert_serves_bash(&s);
    let (status, v) = execute(&s, "hostile", "");
    assert_eq!(status, 200, "{v}");
    // The log says which files were not loaded, and why.
    let log = s.log();
    for (name, _, _) in &bad {
        assert!(log.contains(name), "{name} not in the log:\n{log}");
    }

    // `sidecar plugin check` refuses each with the same message and a non-zero exit.
    for (name, _, expected) in &bad {
        let path = plugins.path().join(name);
        let out = run_cli(&["plugin", "check", path.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
    }

    // `sidecar languages` lists what loaded, reports the rest and exits 1.
    let out = run_cli(
        &[
            "languages",
            "--plugins-dir",
            plugins.path().to_str().unwrap(),
            "--languages",
            languages.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("bash ")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("hostile ")),
        "{stdout}"
    );
    for (name, _, _) in &bad {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

/// Plugins whose `describe()` misbehaves, and the message each is refused with.
fn bad_describers() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "describe-loop.wasm",
            describing("(loop $l (br $l)) (unreachable)"),
            "describe() failed: ran past its time limit",
        ),
        (
            "describe-trap.wasm",
            describing("(unreachable)"),
            "describe() failed: trapped",
        ),
        (
            "describe-oom.wasm",
            describing(
                "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 0)",
            ),
            "describe() failed: ran past its memory limit",
        ),
        (
            "describe-bad-pointer.wasm",
            describing("(i32.const -8)"),
            "describe() failed: pointer out of bounds",
        ),
        (
            "describe-empty.wasm",
            describing("(i32.const 0)"),
            "describe() returned the plugin name ``",
        ),
    ]
}

#[test]
fn plugins_misbehaving_in_describe_are_refused_at_load() {
    let bad = bad_describers();
    // `sidecar plugin check`: each refused with its reason, the loop at the time limit.
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, expected) in &bad {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let started = Instant::now();
        let out = run_cli(&["plugin", "check", path.to_str().unwrap()], &[]);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
    }
    // A server with them all starts (after the looping one's time limit), lists each
    // error, and serves the good plugins.
    let extra: Vec<(&str, Vec<u8>)> = bad.iter().map(|(n, b, _)| (*n, b.clone())).collect();
    let plugins = plugin_dir(&["template", "hostile"], &extra);
    let config = tempfile::tempdir().unwrap();
    let s = Sidecar::start_with(Options {
        env: vec![("SIDECAR_PLUGIN_TIMEOUT_MS".into(), "500".into())],
        plugins_dir: Some(plugins.path().to_path_buf()),
        languages: Some(write_toml(config.path(), BASH)),
        ..Options::default()
    });
    let (_, v) = s.get("/languages");
    let errors = v["pluginErrors"].as_array().unwrap();
    assert_eq!(errors.len(), bad.len(), "{v:#}");
    for (name, _, expected) in &bad {
        let e = errors
            .iter()
            .find(|e| e["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no error for {name}: {v:#}"));
        assert!(e["error"].as_str().unwrap().contains(expected), "{e}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e["error"].as_str().unwrap().contains("time limit of 500ms")),
        "{v:#}"
    );
    assert_serves_bash(&s);
    let (status, v) = execute(&s, "hostile", "");
    assert_eq!(status, 200, "{v}");
}

#[test]
fn two_plugins_serving_one_language_first_by_file_name_wins_with_a_warning() {
    let plain = std::fs::read(hostile_plugin()).unwrap();
    let variant = with_custom_section(&plain, "sidecar-test", b"variant");
    let sha = |bytes: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, bytes).unwrap();
        let out = run_cli(&["plugin", "check", path.to_str().unwrap()], &[]);
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["sha256"].as_str().unwrap().to_string()
    };
    let (plain_sha, variant_sha) = (sha(&plain), sha(&variant));
    assert_ne!(plain_sha, variant_sha);

    for (first, second, winner_sha) in [
        (&variant, &plain, &variant_sha),
        (&plain, &variant, &plain_sha),
    ] {
        let plugins = plugin_dir(
            &["template"],
            &[
                ("b-hostile.wasm", second.clone()),
                ("a-hostile.wasm", first.clone()),
            ],
        );
        let config = tempfile::tempdir().unwrap();
        let s = Sidecar::start_with(Options {
            plugins_dir: Some(plugins.path().to_path_buf()),
            languages: Some(write_toml(config.path(), BASH)),
            ..Options::default()
        });
        let (_, v) = s.get("/languages");
        let lang = v["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["code"] == "hostile")
            .unwrap_or_else(|| panic!("{v:#}"))
            .clone();
        assert!(
            lang["pluginFile"]
                .as_str()
                .unwrap()
                .ends_with("/a-hostile.wasm"),
            "{lang}"
        );
        assert_eq!(lang["pluginSha256"], winner_sha.as_str(), "{lang}");
        let warnings: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let serve = warnings
            .iter()
            .find(|w| w.contains("both serve `hostile`"))
            .unwrap_or_else(|| panic!("no warning: {warnings:?}"));
        assert!(serve.contains("a-hostile.wasm"), "{serve}");
        assert!(serve.contains("b-hostile.wasm"), "{serve}");
        assert!(serve.contains("first by file name"), "{serve}");
        assert!(s.log().contains("both serve `hostile`"), "{}", s.log());
        let (status, v) = execute(&s, "hostile", "");
        assert_eq!(status, 200, "{v}");
    }
}

// ---------------------------------------------------------------------------------
// languages.toml

/// Starts `sidecar serve` expecting it to refuse: returns its stderr.
fn serve_refuses(plugins: &Path, languages: &Path) -> String {
    let dir = test_dir();
    let opts = Options {
        plugins_dir: Some(plugins.to_path_buf()),
        languages: Some(languages.to_path_buf()),
        ..Options::default()
    };
    let status = run_until_exit(serve_command(dir.path(), &opts), Duration::from_secs(30))
        .expect("serve did not refuse to start within 30 s");
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!status.success(), "serve exited 0: {stderr}");
    assert!(
        !dir.path().join("run/sidecar.sock").exists(),
        "serve listened: {stderr}"
    );
    stderr
}

#[test]
fn invalid_languages_toml_is_refused_naming_file_table_and_field() {
    let plugins = plugin_dir(&["template", "py"], &[]);
    let config = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-field.toml",
            "[languages.py]\nplugin = \"py\"\nrun_comand = \"python3 {file}\"\n",
            &["[languages.py] field `run_comand`", "unknown field"],
        ),
        (
            "unknown-plugin.toml",
            "[languages.py]\nplugin = \"py\"\n[languages.lua]\nplugin = \"lua\"\nrun_command = \"lua {file}\"\ncode_filename = \"x.lua\"\n",
            &[
                "[languages.lua] field `plugin`",
                "no plugin named `lua` is loaded",
            ],
        ),
        (
            "duplicate-alias.toml",
            "[languages.py]\nplugin = \"py\"\naliases = [\"python\"]\n[languages.bash]\nplugin = \"template\"\nrun_command = \"bash {file}\"\ncode_filename = \"c.sh\"\naliases = [\"Python\"]\n",
            &[
                "[languages.py] field `aliases`",
                "alias `python` is already used by [languages.bash]",
            ],
        ),
        (
            "bad-multiplier.toml",
            "[languages.py]\nplugin = \"py\"\ntimeout_multiplier = 0.0\n",
            &[
                "[languages.py] field `timeout_multiplier`",
                "must be a number above 0",
            ],
        ),
        (
            "multiplier-type.toml",
            "[languages.py]\nplugin = \"py\"\nmemory_multiplier = \"2\"\n",
            &["[languages.py] field `memory_multiplier`"],
        ),
        (
            "nul-in-env.toml",
            "[languages.py]\nplugin = \"py\"\nenvironment = { X = \"a\\u0000b\" }\n",
            &["[languages.py] field `environment`", "NUL"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = config.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = run_cli(
            &[
                "languages",
                "--plugins-dir",
                plugins.path().to_str().unwrap(),
                "--languages",
                path.to_str().unwrap(),
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted\n{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: {stderr}"
        );
        for n in *needles {
            assert!(stderr.contains(n), "{name}: expected {n:?} in {stderr}");
        }
        let stderr = serve_refuses(plugins.path(), &path);
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: {stderr}"
        );
        for n in *needles {
            assert!(stderr.contains(n), "{name}: expected {n:?} in {stderr}");
        }
    }
}

#[test]
fn languages_toml_overrides_plugin_defaults_in_plan_and_behaviour() {
    let plugins = plugin_dir(&["template", "py"], &[]);
    let config = tempfile::tempdir().unwrap();
    let languages = write_toml(
        config.path(),
        r#"
[languages.py]
plugin = "py"
run_command = "python3 -X utf8 {file} --from-toml"
environment = { SIDECAR_TOML_VAR = "from-toml", PYTHONUNBUFFERED = "0" }
timeout_multiplier = 0.25
"#,
    );
    let code = config.path().join("show.py");
    std::fs::write(
        &code,
        "import os, sys, time\nprint(sys.argv[1:], os.environ['SIDECAR_TOML_VAR'], os.environ['PYTHONUNBUFFERED'])\nif sys.argv[-1] == 'sleep':\n    time.sleep(20)\n",
    )
    .unwrap();
    let out = run_cli(
        &[
            "plan",
            "--plugins-dir",
            plugins.path().to_str().unwrap(),
            "--languages",
            languages.to_str().unwrap(),
            code.to_str().unwrap(),
            "arg1",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &plan["plan"]["run"];
    assert_eq!(
        run["argv"],
        json!([
            "python3",
            "-X",
            "utf8",
            "/tmp/sidecar/exec-0/code.py",
            "--from-toml",
            "arg1"
        ]),
        "{plan:#}"
    );
    let env: Vec<(String, String)> = serde_json::from_value(run["env"].clone()).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("SIDECAR_TOML_VAR"), Some("from-toml"), "{env:?}");
    // Key by key: the toml value wins over the plugin's, the plugin's others remain.
    assert_eq!(get("PYTHONUNBUFFERED"), Some("0"), "{env:?}");
    assert_eq!(get("PYTHONDONTWRITEBYTECODE"), Some("1"), "{env:?}");
    assert_eq!(plan["settings"]["timeout_multiplier"], 0.25, "{plan:#}");
    assert_eq!(
        plan["settings"]["name"], "Python",
        "defaults kept: {plan:#}"
    );

    // The same, live.
    let s = Sidecar::start_with(Options {
        plugins_dir: Some(plugins.path().to_path_buf()),
        languages: Some(languages),
        ..Options::default()
    });
    if !language_available(&s, "py") {
        return;
    }
    let (_, langs) = s.get("/languages");
    let py = langs["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "py")
        .unwrap()
        .clone();
    assert_eq!(py["timeoutMultiplier"], 0.25, "{py}");
    let source = std::fs::read_to_string(&code).unwrap();
    let (status, v) = s.post(
        "/execute",
        &json!({"language": "python", "code": source, "args": ["x"]}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stdout"], "['--from-toml', 'x'] from-toml 0\n", "{v}");
    // A 4 s timeout times 0.25: the run is stopped after about 1 s.
    let (status, v) = s.post(
        "/execute",
        &json!({"language": "py", "code": source, "args": ["sleep"], "timeout": 4}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "timeout", "{v}");
    let ms = v["run"]["durationMs"].as_u64().unwrap();
    assert!((900..3500).contains(&ms), "stopped after {ms} ms: {v}");
}

// ---------------------------------------------------------------------------------
// Compile cache

fn cache_entries(dir: &Path) -> Vec<(PathBuf, SystemTime, Vec<u8>)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_else(|_| Vec::new())
        .into_iter()
        .filter(|p: &PathBuf| p.extension().is_some_and(|x| x == "cwasm"))
        .map(|p| {
            let mtime = p.metadata().unwrap().modified().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, mtime, bytes)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn check_with_cache(plugin: &Path, cache: &Path) -> (Value, String) {
    let out = run_cli(
        &[
            "plugin",
            "check",
            "--cache-dir",
            cache.to_str().unwrap(),
            plugin.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn compile_cache_is_filled_then_used_and_a_corrupt_entry_is_a_miss() {
    let cache = tempfile::tempdir().unwrap();
    let plugin = plugins_dir().join("py.wasm");

    let (v, _) = check_with_cache(&plugin, cache.path());
    assert_eq!(v["fromCache"], false, "{v}");
    let first = cache_entries(cache.path());
    assert_eq!(first.len(), 1, "{first:?}");

    let (v, _) = check_with_cache(&plugin, cache.path());
    assert_eq!(v["fromCache"], true, "{v}");
    let second = cache_entries(cache.path());
    assert_eq!(first, second, "a warm load rewrote the cache");

    // One flipped byte: a checksum mismatch, so a miss, recompiled and rewritten.
    let (path, _, bytes) = &first[0];
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    std::fs::write(path, &corrupt).unwrap();
    let (v, stderr) = check_with_cache(&plugin, cache.path());
    assert_eq!(v["fromCache"], false, "{v}");
    assert_eq!(v["plugin"]["name"], "py", "{v}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert_eq!(&std::fs::read(path).unwrap(), bytes, "entry not rewritten");

    // Overwritten with other bytes, and truncated: misses as well.
    for bad in [vec![0u8; bytes.len()], b"junk".to_vec(), Vec::new()] {
        std::fs::write(path, &bad).unwrap();
        let (v, _) = check_with_cache(&plugin, cache.path());
        assert_eq!(v["fromCache"], false, "{v}");
        let (v, _) = check_with_cache(&plugin, cache.path());
        assert_eq!(v["fromCache"], true, "{v}");
    }
}

#[test]
fn server_restart_with_a_warm_cache_does_not_recompile() {
    let cache = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&["template", "py", "js", "hostile"], &[]);
    let config = tempfile::tempdir().unwrap();
    let languages = write_toml(config.path(), BASH);
    let start = || {
        Sidecar::start_with(Options {
            env: vec![(
                "SIDECAR_CACHE_DIR".into(),
                cache.path().display().to_string(),
            )],
            plugins_dir: Some(plugins.path().to_path_buf()),
            languages: Some(languages.clone()),
            ..Options::default()
        })
    };
    let from_cache = |s: &Sidecar| -> Vec<(String, bool)> {
        let (_, v) = s.get("/languages");
        v["languages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["code"].as_str().unwrap().to_string(),
                    l["pluginFromCache"].as_bool().expect("pluginFromCache"),
                )
            })
            .collect()
    };
    let mut s = start();
    let cold = from_cache(&s);
    assert!(cold.iter().all(|(_, c)| !c), "{cold:?}");
    s.stop();
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 4, "one entry per plugin: {entries:?}");

    let s = start();
    let warm = from_cache(&s);
    assert_eq!(warm.len(), cold.len());
    assert!(warm.iter().all(|(_, c)| *c), "{warm:?}");
    assert_eq!(cache_entries(cache.path()), entries, "warm start rewrote");
    assert_serves_bash(&s);
}

// ---------------------------------------------------------------------------------
// Plans of the built plugins, through the real host

/// The plan of `sidecar plan` as text, one line per file, content line and command.
fn render(plan: &Value) -> String {
    let word = |w: &Value| {
        let w = w.as_str().unwrap();
        if w.is_empty() || w.contains([' ', '\'', '"']) {
            format!("'{w}'")
        } else {
            w.to_string()
        }
    };
    let command = |kind: &str, c: &Value, out: &mut String| {
        let argv: Vec<String> = c["argv"].as_array().unwrap().iter().map(word).collect();
        out.push_str(&format!("{kind} {}\n", argv.join(" ")));
        if let Some(cwd) = c["cwd"].as_str() {
            out.push_str(&format!("  cwd {cwd}\n"));
        }
        for pair in c["env"].as_array().unwrap() {
            out.push_str(&format!(
                "  env {}={}\n",
                pair[0].as_str().unwrap(),
                word(&pair[1])
            ));
        }
    };
    let mut out = String::new();
    for f in plan["files"].as_array().unwrap() {
        out.push_str(&format!(
            "file {}/{}{}\n",
            f["location"].as_str().unwrap(),
            f["path"].as_str().unwrap(),
            if f["executable"] == true {
                " (executable)"
            } else {
                ""
            }
        ));
        for line in f["content"].as_str().unwrap().lines() {
            // Trailing blanks dropped, so goldens have none.
            out.push_str(format!("  | {line}").trim_end());
            out.push('\n');
        }
    }
    for c in plan["compile"].as_array().unwrap() {
        command("compile", c, &mut out);
    }
    command("run", &plan["run"], &mut out);
    out
}

/// Runs `sidecar plan` on `code` saved as `file_name` with the repository's
/// languages.toml and the built plugins, and compares with a golden text.
fn assert_plan(file_name: &str, language: Option<&str>, code: &str, golden: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(file_name);
    std::fs::write(&file, code).unwrap();
    let mut args = vec!["plan"];
    if let Some(l) = language {
        args.extend(["--language", l]);
    }
    let file_arg = file.display().to_string();
    let (pd, lf) = (
        plugins_dir().display().to_string(),
        repo().join("languages.toml").display().to_string(),
    );
    args.extend([file_arg.as_str(), "arg one", "--plugins-dir", &pd]);
    args.extend(["--languages", &lf]);
    let out = run_cli(&args, &[]);
    assert!(out.status.success(), "{file_name}: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let actual = render(&v["plan"]);
    let golden: String = golden
        .trim()
        .lines()
        .map(|l| l.trim_end().strip_prefix("        ").unwrap_or(l.trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        actual, golden,
        "{file_name}: plan differs from the golden text; actual:\n{actual}"
    );
}

#[test]
fn java_public_class_names_the_file_and_the_main_class() {
    assert_plan(
        "Snippet.java",
        None,
        "public class Greeter {\n    public static void main(String[] a) { System.out.println(\"hi\"); }\n}\n",
        r#"
        file scratch/Greeter.java
          | public class Greeter {
          |     public static void main(String[] a) { System.out.println("hi"); }
          | }
        compile javac -encoding UTF-8 -d /tmp/sidecar/exec-0 -cp /workspace:/workspace/* -sourcepath /workspace /tmp/sidecar/exec-0/Greeter.java
          env PATH=/opt/java/openjdk/bin:/usr/local/bin:/usr/bin:/bin
        run java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 -Dstderr.encoding=UTF-8 -cp /tmp/sidecar/exec-0:/workspace:/workspace/* Greeter 'arg one'
          env PATH=/opt/java/openjdk/bin:/usr/local/bin:/usr/bin:/bin
        "#,
    );
}

#[test]
fn esm_javascript_is_written_as_mjs() {
    assert_plan(
        "code.js",
        None,
        "import { readFileSync } from 'node:fs';\nconsole.log(typeof readFileSync);\n",
        r#"
        file scratch/code.mjs
          | import { readFileSync } from 'node:fs';
          | console.log(typeof readFileSync);
        run node /tmp/sidecar/exec-0/code.mjs 'arg one'
          env NODE_PATH=/workspace/node_modules:/workspace
        "#,
    );
}

#[test]
fn php_without_open_tag_gets_one() {
    assert_plan(
        "x.php",
        None,
        "echo \"hi\\n\";\n",
        r#"
        file scratch/code.php
          | <?php
          | echo "hi\n";
        run php -d display_errors=stderr -d log_errors=0 /tmp/sidecar/exec-0/code.php 'arg one'
        "#,
    );
}

#[test]
fn go_builds_in_module_mode() {
    assert_plan(
        "main.go",
        Some("golang"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(1) }\n",
        r#"
        file scratch/mod/main.go
          | package main
          |
          | import "fmt"
          |
          | func main() { fmt.Println(1) }
        file scratch/mod/go.mod
          | module main
          |
          | go 1.18
        compile go build -o /tmp/sidecar/exec-0/main .
          cwd /tmp/sidecar/exec-0/mod
          env PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin
          env GOCACHE=/tmp/sidecar/exec-0/go-build
          env GOPATH=/tmp/sidecar/exec-0/go
          env GOMODCACHE=/tmp/sidecar/exec-0/go/pkg/mod
          env GO111MODULE=on
          env GOFLAGS=-mod=mod
          env GOPROXY=off
          env GOTOOLCHAIN=local
          env GOWORK=off
          env CGO_ENABLED=0
        run /tmp/sidecar/exec-0/main 'arg one'
          env PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin
        "#,
    );
}

#[test]
fn template_only_language_comes_from_languages_toml() {
    assert_plan(
        "script.sh",
        None,
        "echo \"$1\"\n",
        r#"
        file scratch/code.sh
          | echo "$1"
        run bash /tmp/sidecar/exec-0/code.sh 'arg one'
        "#,
    );
    // The alias from languages.toml resolves to the same language.
    assert_plan(
        "script.txt",
        Some("shell"),
        "true\n",
        r#"
        file scratch/code.sh
          | true
        run bash /tmp/sidecar/exec-0/code.sh 'arg one'
        "#,
    );
}

#[test]
fn plugin_check_describes_every_built_plugin() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(plugins_dir())
        .expect("built plugins (make build)")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.push(hostile_plugin());
    files.sort();
    assert!(files.len() >= 14, "{files:?}");
    for file in &files {
        let out = run_cli(&["plugin", "check", file.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", file.display());
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e})", file.display()));
        let stem = file.file_stem().unwrap().to_str().unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["interface"], "sidecar:language@0.1.0", "{v}");
        assert_eq!(v["plugin"]["name"], stem, "{v}");
        assert!(!v["plugin"]["version"].as_str().unwrap().is_empty(), "{v}");
        assert_eq!(v["sha256"].as_str().unwrap().len(), 64, "{v}");
        let langs = v["plugin"]["languages"].as_array().unwrap();
        if stem == "template" {
            assert!(langs.is_empty(), "{v}");
            continue;
        }
        assert!(!langs.is_empty(), "{stem} describes no language: {v}");
        for l in langs {
            for field in [
                "code",
                "name",
                "file_extension",
                "code_filename",
                "run_command",
            ] {
                assert!(
                    !l[field].as_str().unwrap_or_default().is_empty(),
                    "{stem}: empty {field}: {l}"
                );
            }
        }
        // The plugin named like its file serves the language of that code (but the
        // C++ plugin is `cpp`, and so on: true for every built plugin).
        assert!(langs.iter().any(|l| l["code"] == stem), "{stem}: {v}");
    }
}
