//! Hot reload of plugins and `languages.toml` in a running sidecar, SIGHUP, and what
//! operators read: /languages, /metrics (Prometheus text) and JSON logs.
//!
//! The sidecar watches its plugins directory and languages file (inotify, applying a
//! change once it has been stable for 100 ms; a look every 5 s in case an event was
//! missed): these tests allow 5 s for a change to be served (the benchmark in
//! docs/benchmarks.md measures the real latency).
//!
//! Run after `make build`: `cargo test --release -p sidecar-tests --test reload`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sidecar_tests::*;
use tempfile::TempDir;

mod hand_made;

/// How long a change may take to be served in these tests.
const WITHIN: Duration = Duration::from_secs(5);

const BASH: &str = r#"
[languages.bash]
plugin = "template"
code_filename = "code.sh"
run_command = "bash {file}"
aliases = ["sh"]
"#;

/// A sidecar over a private plugins directory and languages.toml, both writable.
struct Live {
    sidecar: Sidecar,
    plugins: TempDir,
    config: TempDir,
}

impl Live {
    fn start(built: &[&str], toml: &str, env: &[(&str, &str)]) -> Live {
        let plugins = tempfile::Builder::new()
            .prefix("sidecar-plugins-")
            .tempdir()
            .unwrap();
        for code in built {
            std::fs::copy(source(code), plugins.path().join(format!("{code}.wasm"))).unwrap();
        }
        let config = tempfile::tempdir().unwrap();
        std::fs::write(config.path().join("languages.toml"), toml).unwrap();
        let sidecar = Sidecar::start_with(Options {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            plugins_dir: Some(plugins.path().to_path_buf()),
            languages: Some(config.path().join("languages.toml")),
            ..Options::default()
        });
        Live {
            sidecar,
            plugins,
            config,
        }
    }

    fn dir(&self) -> &Path {
        self.plugins.path()
    }

    fn toml(&self) -> PathBuf {
        self.config.path().join("languages.toml")
    }

    /// Replaces languages.toml atomically.
    fn set_toml(&self, text: &str) {
        write_renamed(self.config.path(), "languages.toml", text.as_bytes());
    }

    fn languages(&self) -> Value {
        let (status, v) = self.sidecar.get("/languages");
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The /languages entry of `code`, if listed.
    fn language(&self, code: &str) -> Option<Value> {
        self.languages()["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["code"] == code)
            .cloned()
    }

    fn execute(&self, language: &str, code: &str) -> (u16, Value) {
        self.sidecar
            .post("/execute", &json!({"language": language, "code": code}))
    }

    /// Waits until `f` holds, failing with the sidecar's log and /languages.
    fn eventually(&self, what: &str, mut f: impl FnMut(&Live) -> bool) {
        if wait_until(WITHIN, || f(self).then_some(())).is_none() {
            panic!(
                "not within {WITHIN:?}: {what}\n/languages: {:#}\nlog:\n{}",
                self.languages(),
                self.sidecar.log()
            );
        }
    }
}

/// A built plugin's file, by code ("hostile" for the test plugin).
fn source(code: &str) -> PathBuf {
    if code == "hostile" {
        hostile_plugin()
    } else {
        plugins_dir().join(format!("{code}.wasm"))
    }
}

fn read(code: &str) -> Vec<u8> {
    std::fs::read(source(code)).expect("built plugins (make build)")
}

/// The sha256 the host computes for a plugin file's bytes (`sidecar plugin check`),
/// which also leaves its compilation in the tests' shared cache.
fn sha256_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.wasm");
    std::fs::write(&path, bytes).unwrap();
    let cache = repo().join("target/test-cache");
    let out = run_cli(
        &[
            "plugin",
            "check",
            "--cache-dir",
            cache.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["sha256"].as_str().unwrap().to_string()
}

fn served_ok(live: &Live, language: &str) -> bool {
    live.execute(language, "true").0 == 200
}

// ---------------------------------------------------------------------------------
// Adding, replacing, removing plugins

#[test]
fn a_plugin_renamed_into_the_directory_is_served_without_restart() {
    let live = Live::start(&["template"], BASH, &[]);
    let pid = live.sidecar.pid();
    let (status, v) = live.execute("hostile", "");
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("unknown language"),
        "{v}"
    );

    write_renamed(live.dir(), "hostile.wasm", &read("hostile"));
    live.eventually("the new plugin's language is served", |l| {
        served_ok(l, "hostile")
    });
    assert_eq!(live.sidecar.pid(), pid);
    let lang = live.language("hostile").unwrap();
    assert!(
        lang["pluginFile"]
            .as_str()
            .unwrap()
            .ends_with("/hostile.wasm"),
        "{lang}"
    );
    assert!(
        live.sidecar.log().contains("reloaded"),
        "{}",
        live.sidecar.log()
    );
    // The languages that were there are still served.
    assert!(served_ok(&live, "bash"));
}

#[test]
fn a_plugin_written_in_place_slowly_is_served_once_complete() {
    let live = Live::start(&["template"], BASH, &[]);
    let bytes = read("hostile");
    let mut file = std::fs::File::create(live.dir().join("hostile.wasm")).unwrap();
    file.write_all(&bytes[..bytes.len() / 3]).unwrap();
    file.flush().unwrap();
    // Long enough for the watcher to see (and perhaps try) the partial file.
    std::thread::sleep(Duration::from_millis(500));
    file.write_all(&bytes[bytes.len() / 3..]).unwrap();
    drop(file);
    live.eventually("the completed plugin is served", |l| {
        served_ok(l, "hostile")
    });
    live.eventually("no load error is left over", |l| {
        l.languages()["pluginErrors"] == json!([])
    });
    assert!(served_ok(&live, "bash"));
}

#[test]
fn a_renamed_copy_of_the_template_plugin_serves_a_new_toml_language() {
    // No template plugin at first: only the hostile one.
    let live = Live::start(&["hostile"], "", &[]);
    write_renamed(live.dir(), "shell-template.wasm", &read("template"));
    live.eventually("the copy is loaded", |l| {
        l.languages()["pluginErrors"] == json!([]) && l.sidecar.log().contains("reloaded")
    });
    live.set_toml(
        r#"
[languages.posix]
plugin = "template"
code_filename = "main.sh"
run_command = "sh {file}"
"#,
    );
    live.eventually("the toml language is served", |l| {
        let (status, v) = l.execute("posix", "echo from-posix");
        status == 200 && v["stdout"] == "from-posix\n"
    });
    let lang = live.language("posix").unwrap();
    assert!(
        lang["pluginFile"]
            .as_str()
            .unwrap()
            .ends_with("/shell-template.wasm"),
        "{lang}"
    );
    assert_eq!(live.languages()["reloadError"], Value::Null);
}

#[test]
fn replacing_a_plugin_under_load_fails_no_request() {
    let live = Arc::new(Live::start(&["template"], BASH, &[]));
    let original = read("template");
    let variants: Vec<Vec<u8>> = (0..4)
        .map(|i| with_custom_section(&original, "sidecar-test-variant", &[b'a' + i as u8; 64]))
        .collect();
    let last_sha = sha256_of(variants.last().unwrap());
    // Compile every variant once beforehand (shared cache), so each swap is quick and
    // several happen while the requests run.
    for v in &variants {
        sha256_of(v);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..20)
        .map(|n| {
            let (live, stop) = (live.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) || outcomes.len() < 3 {
                    let (status, v) = live.execute("bash", &format!("echo worker-{n}"));
                    let ok = status == 200 && v["stdout"] == format!("worker-{n}\n");
                    outcomes.push((ok, status, v));
                }
                outcomes
            })
        })
        .collect();
    for v in &variants {
        std::thread::sleep(Duration::from_millis(400));
        write_renamed(live.dir(), "template.wasm", v);
    }
    live.eventually("the last variant is in force", |l| {
        l.language("bash").unwrap()["pluginSha256"] == last_sha.as_str()
    });
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        for (ok, status, v) in w.join().unwrap() {
            total += 1;
            assert!(ok, "a request failed during the swaps: {status} {v}");
        }
    }
    assert!(total >= 60, "only {total} requests ran");
    let reloads = metric_sum(&live.sidecar, "sidecar_reloads_total", &[("result", "ok")]);
    assert!(reloads >= 2.0, "{reloads} reloads during the swaps");
}

#[test]
fn a_replacement_with_the_same_size_and_mtime_is_noticed() {
    let original = read("template");
    let a = with_custom_section(&original, "sidecar-test-variant", b"aaaa");
    let b = with_custom_section(&original, "sidecar-test-variant", b"bbbb");
    assert_eq!(a.len(), b.len());
    let live = Live::start(&["template"], BASH, &[]);
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let put = |bytes: &[u8]| {
        let tmp = live.dir().join(".template.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(&tmp, live.dir().join("template.wasm")).unwrap();
    };
    put(&a);
    let sha_a = sha256_of(&a);
    live.eventually("variant a is served", |l| {
        l.language("bash")
            .is_some_and(|lang| lang["pluginSha256"] == sha_a.as_str())
    });
    // Same size, same mtime, other bytes (as `cp -p`, rsync -t or an unpacked archive
    // may leave them): the new file must still be picked up.
    put(&b);
    let sha_b = sha256_of(&b);
    live.eventually("variant b replaces a", |l| {
        l.language("bash").unwrap()["pluginSha256"] == sha_b.as_str()
    });
}

#[test]
fn a_plugin_hanging_in_describe_delays_nothing_else() {
    let live = Live::start(
        &["template"],
        BASH,
        &[("SIDECAR_PLUGIN_TIMEOUT_MS", "2000")],
    );
    let hanging = hand_made::describing("(loop $l (br $l)) (unreachable)");
    write_renamed(live.dir(), "hanging.wasm", &hanging);
    // While the reload waits for the plugin's describe() (up to its 2 s limit),
    // requests are answered by the configuration in force.
    let until = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < until {
        let (took_ok, took) = timed(|| served_ok(&live, "bash"));
        assert!(took_ok);
        assert!(took < Duration::from_secs(1), "a request took {took:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    live.eventually("the plugin is refused", |l| {
        l.languages()["pluginErrors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["file"].as_str().unwrap().ends_with("/hanging.wasm")
                    && e["error"]
                        .as_str()
                        .unwrap()
                        .contains("describe() failed: ran past its time limit of 2s")
            })
    });
    assert!(served_ok(&live, "bash"));
}

#[test]
fn deleting_a_plugin_removes_its_languages_and_reports_the_toml_entry() {
    let live = Live::start(&["template", "hostile"], BASH, &[]);
    assert!(served_ok(&live, "bash"));
    assert!(served_ok(&live, "hostile"));

    // Not named in languages.toml: its language simply goes away.
    std::fs::remove_file(live.dir().join("hostile.wasm")).unwrap();
    live.eventually("hostile is no longer listed", |l| {
        l.language("hostile").is_none()
    });
    let (status, v) = live.execute("hostile", "");
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown language `hostile`"),
        "{v}"
    );

    // Named in languages.toml: the language is listed with the error.
    std::fs::remove_file(live.dir().join("template.wasm")).unwrap();
    live.eventually("bash reports its missing plugin", |l| {
        l.language("bash").is_some_and(|b| b["error"].is_string())
    });
    let bash = live.language("bash").unwrap();
    let error = bash["error"].as_str().unwrap();
    assert!(
        error.contains("no plugin named `template` is loaded"),
        "{error}"
    );
    assert!(error.contains("[languages.bash] field `plugin`"), "{error}");
    assert!(
        error.contains(&live.toml().display().to_string()),
        "{error}"
    );
    assert_eq!(bash["toolchainAvailable"], false, "{bash}");
    for name in ["bash", "sh"] {
        let (status, v) = live.execute(name, "echo x");
        assert_eq!(status, 400, "{name}: {v}");
    }
    let (_, health) = live.sidecar.get("/health");
    assert_eq!(health["languages"], json!([]), "{health}");
    // /ready says why nothing can run.
    let (status, ready) = live.sidecar.get("/ready");
    assert_eq!(status, 503, "{ready}");

    // Putting it back serves it again.
    write_renamed(live.dir(), "template.wasm", &read("template"));
    live.eventually("bash is back", |l| served_ok(l, "bash"));
    assert_eq!(live.language("bash").unwrap()["error"], Value::Null);
}

#[test]
fn a_corrupt_replacement_keeps_the_old_plugin_serving() {
    let live = Live::start(&["template", "hostile"], BASH, &[]);
    let before = live.language("bash").unwrap()["pluginSha256"].clone();
    let mut junk = b"\0asm\x0d\x00\x01\x00".to_vec();
    junk.extend(std::iter::repeat_n(0xa5u8, 5000));
    write_renamed(live.dir(), "template.wasm", &junk);
    live.eventually("the load error is shown", |l| {
        l.languages()["pluginErrors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["file"].as_str().unwrap().ends_with("/template.wasm"))
    });
    let v = live.languages();
    let error = v["pluginErrors"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("not a valid WebAssembly component"),
        "{error}"
    );
    // The previous build is still in force.
    assert_eq!(live.language("bash").unwrap()["pluginSha256"], before);
    let (status, out) = live.execute("bash", "echo still-here");
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "still-here\n");
    assert!(served_ok(&live, "hostile"));
    let failed = metric_sum(
        &live.sidecar,
        "sidecar_reloads_total",
        &[("result", "error")],
    );
    assert!(
        failed >= 1.0,
        "a reload with a bad plugin counts as an error"
    );

    // A good file clears the error.
    write_renamed(live.dir(), "template.wasm", &read("template"));
    live.eventually("the error is cleared", |l| {
        l.languages()["pluginErrors"] == json!([])
    });
    assert!(served_ok(&live, "bash"));
}

#[test]
fn a_bad_languages_toml_edit_keeps_the_old_configuration() {
    let live = Live::start(&["template", "hostile"], BASH, &[]);
    for (bad, needles) in [
        (
            format!("{BASH}run_comand = \"sh {{file}}\"\n"),
            &["[languages.bash] field `run_comand`", "unknown field"][..],
        ),
        (
            format!("{BASH}\n[languages.lua]\nplugin = \"lua\"\n"),
            &["[languages.lua] field `plugin`", "no plugin named `lua`"][..],
        ),
        (
            format!("{BASH}timeout_multiplier = -2.0\n"),
            &["field `timeout_multiplier`"][..],
        ),
    ] {
        live.set_toml(&bad);
        live.eventually("the reload error is shown", |l| {
            l.languages()["reloadError"]
                .as_str()
                .is_some_and(|e| e.contains(needles[0]))
        });
        let error = live.languages()["reloadError"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&live.toml().display().to_string()),
            "{error}"
        );
        for n in needles {
            assert!(error.contains(n), "expected {n:?} in {error}");
        }
        // The old configuration serves on (its alias included).
        let (status, v) = live.execute("sh", "echo old-config");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["stdout"], "old-config\n");
        assert!(live.sidecar.log().contains("reload rejected"));
    }
    // A good edit is applied and clears the error.
    live.set_toml(&BASH.replace("[\"sh\"]", "[\"shell\"]"));
    live.eventually("the new alias is served", |l| served_ok(l, "shell"));
    assert_eq!(live.languages()["reloadError"], Value::Null);
    let (status, _) = live.execute("sh", "true");
    assert_eq!(status, 400, "the old alias is gone");
}

/// A languages file or plugins directory that exists but cannot be read (a directory
/// in the file's place here; too many open files in production) is a failed reload,
/// not an empty configuration: every language stays served. (It once emptied the
/// registry until the next change.)
#[test]
fn an_unreadable_config_keeps_the_last_good_one() {
    let live = Live::start(&["template"], BASH, &[]);
    // The failed reload is shown and the languages still run.
    let kept = |error: &str| {
        live.eventually("the reload error is shown", |l| {
            l.languages()["reloadError"]
                .as_str()
                .is_some_and(|e| e.contains(error))
        });
        let (status, v) = live.execute("sh", "echo still");
        assert_eq!(
            (status, v["stdout"].clone()),
            (200, json!("still\n")),
            "{v}"
        );
    };
    std::fs::remove_file(live.toml()).unwrap();
    std::fs::create_dir(live.toml()).unwrap();
    kept("cannot read");
    std::fs::remove_dir(live.toml()).unwrap();
    live.set_toml(BASH);
    live.eventually("the error clears", |l| {
        l.languages()["reloadError"].is_null()
    });

    // The plugins directory: a file in its place.
    let dir = live.dir().to_path_buf();
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    kept("cannot read the plugins directory");
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&aside, &dir).unwrap();
}

#[test]
fn a_languages_toml_behind_a_swapped_symlink_is_reloaded() {
    // A Kubernetes ConfigMap volume: languages.toml -> ..data/languages.toml, and an
    // update renames a new `..data` symlink over the old one; the file itself is
    // never written.
    let live = Live::start(&["template"], BASH, &[]);
    let dir = live.config.path();
    let version = |name: &str, alias: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(
            dir.join(name).join("languages.toml"),
            BASH.replace("[\"sh\"]", &format!("[\"{alias}\"]")),
        )
        .unwrap();
        let _ = std::fs::remove_file(dir.join("..data_tmp"));
        std::os::unix::fs::symlink(name, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    };
    version("..v1", "first");
    std::os::unix::fs::symlink("..data/languages.toml", dir.join("languages.tmp")).unwrap();
    std::fs::rename(dir.join("languages.tmp"), dir.join("languages.toml")).unwrap();
    live.eventually("the first version is served", |l| served_ok(l, "first"));
    version("..v2", "second");
    live.eventually("the swapped version is served", |l| served_ok(l, "second"));
    assert!(!served_ok(&live, "first"));
}

/// Voluntary context switches of every thread of process `pid` so far.
fn voluntary_switches(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn a_busy_config_directory_does_not_keep_the_sidecar_busy() {
    // languages.toml may sit in a directory where other files change all the time:
    // writes to them are not watched, and files coming and going make the watcher
    // look at most once per 100 ms (the previous poller: 120 wake-ups in 2 s).
    let live = Live::start(&["template"], BASH, &[]);
    assert!(served_ok(&live, "sh"));
    std::thread::sleep(Duration::from_millis(300));
    let before = voluntary_switches(live.sidecar.pid());
    let noise = live.config.path().join("noise.log");
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut writes = 0;
    while std::time::Instant::now() < until {
        std::fs::write(&noise, writes.to_string()).unwrap();
        let churn = live.config.path().join(format!("tmp-{writes}"));
        std::fs::write(&churn, "x").unwrap();
        std::fs::remove_file(&churn).unwrap();
        writes += 1;
        std::thread::sleep(Duration::from_micros(500));
    }
    let woke = voluntary_switches(live.sidecar.pid()) - before;
    assert!(
        woke <= 80,
        "{woke} wake-ups while {writes} writes went to the config directory"
    );
    assert!(served_ok(&live, "sh"));
}

#[test]
fn an_idle_sidecar_does_not_wake_up_to_look_for_changes() {
    // It used to poll the files every 100 ms (60 context switches a second, each a
    // wake-up that the programs it runs pay for); now inotify tells it, and it looks
    // by itself only every 5 s.
    let live = Live::start(&["template"], BASH, &[]);
    assert!(served_ok(&live, "sh"));
    let switches = || voluntary_switches(live.sidecar.pid());
    std::thread::sleep(Duration::from_millis(300));
    let before = switches();
    std::thread::sleep(Duration::from_secs(2));
    let woke = switches() - before;
    assert!(woke <= 12, "{woke} wake-ups in 2 s of idleness");
    // And it still notices a change.
    live.set_toml(&BASH.replace("[\"sh\"]", "[\"shell\"]"));
    live.eventually("the new alias is served", |l| served_ok(l, "shell"));
}

#[test]
fn sighup_forces_a_reload() {
    let live = Live::start(&["template"], BASH, &[]);
    let before = metric_sum(&live.sidecar, "sidecar_reloads_total", &[]);
    assert_eq!(before, 0.0, "nothing changed, nothing reloaded");
    live.sidecar.signal(1); // SIGHUP
    live.eventually("the reload is counted", |l| {
        metric_sum(&l.sidecar, "sidecar_reloads_total", &[("result", "ok")]) == before + 1.0
    });
    assert!(
        live.sidecar.log().contains("SIGHUP"),
        "{}",
        live.sidecar.log()
    );
    live.sidecar.signal(1);
    live.eventually("the second reload is counted", |l| {
        metric_sum(&l.sidecar, "sidecar_reloads_total", &[]) == before + 2.0
    });
    assert!(served_ok(&live, "bash"));
}

#[test]
fn a_sighup_as_soon_as_the_socket_listens_does_not_stop_the_sidecar() {
    // The handler used to be registered by a task that might not have run yet.
    for round in 1..=5 {
        let sidecar = Sidecar::start();
        sidecar.signal(1); // SIGHUP
        let (status, body) = sidecar.get("/health");
        assert_eq!(status, 200, "round {round}: {body}\n{}", sidecar.log());
    }
}

// ---------------------------------------------------------------------------------
// /metrics

/// One sample of the text exposition format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text (format 0.0.4), checking what scrapers rely on: `# HELP` and
/// `# TYPE` once per family and before its samples, valid names, `name{labels} value`
/// lines with quoted, escaped label values, numeric values, histogram series complete
/// and cumulative. Returns the family types and the samples.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    assert!(text.ends_with('\n'), "the text must end with a newline");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next().unwrap(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("bad comment line {line:?}"));
            assert!(valid_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => {
                    assert!(tail.is_some_and(|t| !t.is_empty()), "empty HELP: {line:?}");
                    assert!(
                        helps.insert(name.into(), tail.unwrap().into()).is_none(),
                        "HELP twice: {line:?}"
                    );
                }
                "TYPE" => {
                    let t = tail.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad TYPE: {line:?}"
                    );
                    assert!(
                        types.insert(name.into(), t.into()).is_none(),
                        "TYPE twice: {line:?}"
                    );
                    assert!(
                        !samples
                            .iter()
                            .any(|s: &Sample| family(&s.name, &types) == Some(name.to_string())),
                        "TYPE after samples: {line:?}"
                    );
                }
                _ => {}
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment {line:?}");
        // name{labels} value [timestamp]
        let (name_end, mut labels) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => (i, BTreeMap::new()),
            Some(i) => (i, BTreeMap::new()),
            None => panic!("no value: {line:?}"),
        };
        let name = &line[..name_end];
        assert!(valid_name(name), "bad sample name in {line:?}");
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices();
            let mut key = String::new();
            let end;
            loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                match c {
                    '}' if key.is_empty() => {
                        end = i + 2;
                        break;
                    }
                    '=' => {
                        assert_eq!(
                            chars.next().map(|(_, c)| c),
                            Some('"'),
                            "unquoted value: {line:?}"
                        );
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c @ ('\\' | '"')) => value.push(c),
                                    other => panic!("bad escape {other:?} in {line:?}"),
                                },
                                Some('"') => break,
                                Some(c) => value.push(c),
                                None => panic!("unterminated value: {line:?}"),
                            }
                        }
                        assert!(valid_name(&key), "bad label name {key:?} in {line:?}");
                        assert!(
                            labels.insert(std::mem::take(&mut key), value).is_none(),
                            "label twice: {line:?}"
                        );
                        match chars.next() {
                            Some((_, ',')) => {}
                            Some((i, '}')) => {
                                end = i + 2;
                                break;
                            }
                            other => panic!("expected , or }} not {other:?}: {line:?}"),
                        }
                    }
                    c => key.push(c),
                }
            }
            rest = &rest[end..];
        }
        let mut fields = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line:?}"))
            .split(' ');
        let value = fields.next().unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?}: {line:?}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp: {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing fields: {line:?}");
        let fam = family(name, &types).unwrap_or_else(|| panic!("sample without a TYPE: {line:?}"));
        assert!(helps.contains_key(&fam), "no HELP for {fam}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    // Histograms: for each series, buckets cumulative, +Inf == _count, _sum present.
    for (fam, t) in &types {
        if t != "histogram" {
            continue;
        }
        // Labels but `le` -> (le, cumulative count) per bucket.
        type Buckets = Vec<(f64, f64)>;
        let mut series: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{fam}_bucket")) {
            let mut key = s.labels.clone();
            let le = key
                .remove("le")
                .unwrap_or_else(|| panic!("bucket without le: {s:?}"));
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            series
                .entry(key.into_iter().collect())
                .or_default()
                .push((le, s.value));
        }
        for (key, buckets) in series {
            let labels: BTreeMap<String, String> = key.into_iter().collect();
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{fam} {labels:?}: {buckets:?}"
            );
            assert_eq!(
                buckets.last().unwrap().0,
                f64::INFINITY,
                "{fam} {labels:?}: no +Inf"
            );
            let find = |suffix: &str| {
                samples
                    .iter()
                    .find(|s| s.name == format!("{fam}{suffix}") && s.labels == labels)
                    .unwrap_or_else(|| panic!("{fam}{suffix} {labels:?} missing"))
                    .value
            };
            assert_eq!(
                find("_count"),
                buckets.last().unwrap().1,
                "{fam} {labels:?}"
            );
            assert!(find("_sum") >= 0.0);
        }
    }
    (types, samples)
}

/// The family a sample belongs to, given the declared types.
fn family(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return Some(base.to_string());
            }
        }
    }
    None
}

fn metrics(s: &Sidecar) -> (BTreeMap<String, String>, Vec<Sample>) {
    let r = s.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    parse_prometheus(&r.text())
}

/// The sum of the samples named `name` whose labels include `labels`.
fn metric_sum(s: &Sidecar, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics(s)
        .1
        .iter()
        .filter(|x| {
            x.name == name
                && labels
                    .iter()
                    .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|x| x.value)
        .sum()
}

#[test]
fn prometheus_parser_rejects_malformed_text() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"a\\\"b\\n\",y=\"\"} 3\n";
    let (_, samples) = parse_prometheus(ok);
    assert_eq!(samples[0].labels["x"], "a\"b\n");
    for bad in [
        "a_total 1\n",                                        // no TYPE
        "# HELP a A.\n# TYPE a counter\na{x=y} 1\n",          // unquoted
        "# HELP a A.\n# TYPE a counter\na 1x\n",              // bad value
        "# HELP a A.\n# TYPE a counter\na 1",                 // no final newline
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n", // TYPE twice
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn metrics_are_prometheus_text_and_count_what_was_done() {
    let live = Live::start(
        &["template", "hostile"],
        &format!("{BASH}\n[languages.h-trap]\nplugin = \"hostile\"\ncode_filename = \"c\"\nrun_command = \"true\"\noptions = {{ behavior = \"trap\" }}\n"),
        &[],
    );
    let (types, _) = metrics(&live.sidecar);
    for (name, t) in [
        ("sidecar_requests_total", "counter"),
        ("sidecar_execution_duration_seconds", "histogram"),
        ("sidecar_plugin_call_duration_seconds", "histogram"),
        ("sidecar_active_executions", "gauge"),
        ("sidecar_queued_executions", "gauge"),
        ("sidecar_reloads_total", "counter"),
    ] {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(t),
            "{name}: {types:?}"
        );
    }
    for _ in 0..3 {
        assert!(served_ok(&live, "bash"));
    }
    let (status, _) = live.execute("bash", "exit 3");
    assert_eq!(status, 200);
    let (status, _) = live.execute("cobol", "");
    assert_eq!(status, 400);
    let (status, _) = live.execute("h-trap", "");
    assert_eq!(status, 500);
    for _ in 0..2 {
        live.sidecar.get("/health");
    }
    let (_, samples) = metrics(&live.sidecar);
    let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    };
    let req = "sidecar_requests_total";
    assert_eq!(
        get(req, &[("endpoint", "/execute"), ("status", "200")]),
        4.0
    );
    assert_eq!(
        get(req, &[("endpoint", "/execute"), ("status", "400")]),
        1.0
    );
    assert_eq!(
        get(req, &[("endpoint", "/execute"), ("status", "500")]),
        1.0
    );
    assert_eq!(get(req, &[("endpoint", "/health"), ("status", "200")]), 2.0);
    assert_eq!(
        get(req, &[("endpoint", "/metrics"), ("status", "200")]),
        1.0
    );
    let exec = "sidecar_execution_duration_seconds_count";
    assert_eq!(get(exec, &[("language", "bash"), ("status", "ok")]), 3.0);
    assert_eq!(
        get(exec, &[("language", "bash"), ("status", "runtime_error")]),
        1.0
    );
    let calls = "sidecar_plugin_call_duration_seconds_count";
    assert_eq!(
        get(calls, &[("plugin", "template"), ("outcome", "ok")]),
        4.0
    );
    assert_eq!(get("sidecar_active_executions", &[]), 0.0);
    assert_eq!(get("sidecar_queued_executions", &[]), 0.0);
}

#[test]
fn metrics_count_failed_plugin_calls() {
    let live = Live::start(
        &["hostile"],
        "[languages.h-trap]\nplugin = \"hostile\"\ncode_filename = \"c\"\nrun_command = \"true\"\noptions = { behavior = \"trap\" }\n",
        &[],
    );
    let (status, _) = live.execute("h-trap", "");
    assert_eq!(status, 500);
    let failed: f64 = metrics(&live.sidecar)
        .1
        .iter()
        .filter(|s| {
            s.name == "sidecar_plugin_call_duration_seconds_count"
                && s.labels.get("plugin").map(String::as_str) == Some("hostile")
                && s.labels.get("outcome").map(String::as_str) != Some("ok")
        })
        .map(|s| s.value)
        .sum();
    assert_eq!(failed, 1.0);
}

// ---------------------------------------------------------------------------------
// JSON logs

#[test]
fn json_logs_parse_and_never_contain_code_or_secrets() {
    let marker = format!("SECRETMARK{}", unique_marker());
    let token = format!("tok-{marker}");
    let toml = format!(
        "{BASH}environment = {{ TOML_SECRET = \"env-{marker}\" }}\n\n[languages.h-trap]\nplugin = \"hostile\"\ncode_filename = \"c\"\nrun_command = \"true\"\noptions = {{ behavior = \"trap\" }}\n"
    );
    let mut live = Live::start(
        &["template", "hostile"],
        &toml,
        &[
            ("SIDECAR_LOG_FORMAT", "json"),
            ("SIDECAR_AUTH_TOKEN", &token),
        ],
    );
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: Value| {
        live.sidecar.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
    };
    let r = post(
        "/execute",
        json!({
            "language": "bash",
            "code": format!("echo code-{marker}; echo \"$TOML_SECRET\"; cat"),
            "stdin": format!("stdin-{marker}"),
            "args": [format!("arg-{marker}")],
            "files": [{"path": "f.txt", "content": format!("file-{marker}")}],
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&format!("env-{marker}")), "{}", r.text());
    let r = post(
        "/execute",
        json!({"language": "h-trap", "code": format!("trap-{marker}")}),
    );
    assert_eq!(r.status, 500);
    let r = post(
        "/execute",
        json!({"language": format!("lang{}", unique_marker()), "code": marker}),
    );
    assert_eq!(r.status, 400);
    let r = post(
        "/write",
        json!({"path": "w.txt", "content": format!("write-{marker}")}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post("/bash", json!({"command": format!("echo bash-{marker}")}));
    assert_eq!(r.status, 200);
    // Refused: wrong token (logged as a 401, the token never).
    let r = live.sidecar.request(
        "POST",
        "/execute",
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer wrong-{marker}")),
        ],
        b"{}",
    );
    assert_eq!(r.status, 401);
    let r = live
        .sidecar
        .request("GET", "/metrics", &[("authorization", &auth)], b"");
    assert_eq!(r.status, 200);
    // A reload and a shutdown log too.
    write_renamed(
        live.dir(),
        "template.wasm",
        &with_custom_section(&read("template"), "x", marker.as_bytes()),
    );
    live.eventually("the reload is logged", |l| {
        l.sidecar.log().contains("\"reloaded\"")
    });
    live.sidecar.stop();

    let log = live.sidecar.log();
    assert!(
        !log.contains(&marker),
        "a secret or the code reached the log:\n{log}"
    );
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{log}"
    );
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 7, "{log}");
    let mut ids = Vec::new();
    for r in &requests {
        assert!(r["request_id"].is_u64(), "{r}");
        assert!(r["endpoint"].is_string(), "{r}");
        assert!(r["status"].is_u64(), "{r}");
        ids.push(r["request_id"].as_u64().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), requests.len(), "request ids must be unique");
    let statuses: Vec<(String, u64)> = requests
        .iter()
        .map(|r| {
            (
                r["endpoint"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("/execute", 200),
        ("/execute", 500),
        ("/execute", 400),
        ("/write", 200),
        ("/bash", 200),
        ("/execute", 401),
        ("/metrics", 200),
    ] {
        assert!(
            statuses.contains(&(expected.0.to_string(), expected.1)),
            "{expected:?} not in {statuses:?}"
        );
    }
    let exec = requests
        .iter()
        .find(|r| r["endpoint"] == "/execute" && r["status"] == 200)
        .unwrap();
    assert_eq!(exec["language"], "bash", "{exec}");
}
