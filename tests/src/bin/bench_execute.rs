//! Benchmarks of POST /execute against spawning the same program directly, in one run:
//!
//! (a) a trivial program (`/bin/true`, through a template language) — p50/p99 and the
//!     overhead per execution;
//! (b) Python hello world vs `/usr/bin/python3 -u code.py` — the median ratio;
//! (c) 10 concurrent clients running Python that prints its own number — executions/s,
//!     p50/p99, and every result checked;
//! (d) the sidecar's peak RSS (VmHWM) while four requests each print 50 MB.
//!
//! Usage: `bench_execute [--runs N] [--write docs/benchmarks.md]` (see
//! `scripts/bench-execute`). With `--write`, the `## /execute` section of that file is
//! replaced (or appended); the rest of the file is left alone, including the
//! `## /execute: where the time goes` section after it, which is written by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_tests::{proc_status_kib, repo, KeepAlive, Options, Sidecar};

const SECTION: &str = "## /execute";
/// The pause between requests of the "spaced" runs: longer than the window in which a
/// cgroup v1 migration finds the kernel's rcu_sync still entered.
const IDLE_GAP: Duration = Duration::from_millis(50);

struct Args {
    runs: usize,
    write: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 300,
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--write" => args.write = Some(PathBuf::from(it.next().expect("--write FILE"))),
            // Options of the other benchmarks: scripts/bench passes the same to all.
            other => eprintln!("bench_execute: ignoring `{other}`"),
        }
    }
    args
}

/// Latencies in milliseconds.
struct Samples(Vec<f64>);

impl Samples {
    fn new() -> Self {
        Samples(Vec::new())
    }

    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1000.0);
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[rank.min(v.len() - 1)]
    }

    fn p50(&self) -> f64 {
        self.percentile(50.0)
    }

    fn p99(&self) -> f64 {
        self.percentile(99.0)
    }
}

/// One /execute request; returns the response and the round-trip time.
fn execute(sc: &Sidecar, body: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let v = sc.execute(body);
    (v, started.elapsed())
}

/// Spawns a program directly with piped output, as the sidecar does; returns its
/// stdout and the time from spawn to exit.
fn direct(argv: &[&str], cwd: &Path) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let took = started.elapsed();
    assert!(out.status.success(), "{argv:?}: {out:?}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// `/bin/true` through /execute (the `truebin` language), a new connection per request,
/// and spawned directly, interleaved, `runs` times each, with `gap` between runs.
fn trivial(sc: &Sidecar, dir: &Path, runs: usize, gap: Duration) -> (Samples, Samples) {
    let body = json!({"language": "truebin", "code": ""});
    interleaved(dir, runs, gap, || {
        let (v, took) = execute(sc, &body);
        assert_eq!(v["status"], "ok", "{v}");
        took
    })
}

/// The same, back to back, with every request on one keep-alive connection (as an
/// agent server's HTTP client pool sends them).
fn trivial_kept(sc: &Sidecar, dir: &Path, runs: usize) -> (Samples, Samples) {
    let body = json!({"language": "truebin", "code": ""}).to_string();
    let mut conn = KeepAlive::connect(&sc.socket);
    interleaved(dir, runs, Duration::ZERO, || {
        let started = Instant::now();
        let (status, answer) = conn.post("/execute", body.as_bytes());
        let took = started.elapsed();
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!((status, &v["status"]), (200, &json!("ok")), "{v}");
        took
    })
}

/// Runs `request` (which returns its round-trip time) and `/bin/true` directly,
/// interleaved, after a warm-up.
fn interleaved(
    dir: &Path,
    runs: usize,
    gap: Duration,
    mut request: impl FnMut() -> Duration,
) -> (Samples, Samples) {
    warm_up(|| {
        request();
        direct(&["/bin/true"], dir);
    });
    let mut via = Samples::new();
    let mut plain = Samples::new();
    for _ in 0..runs {
        std::thread::sleep(gap);
        via.push(request());
        std::thread::sleep(gap);
        plain.push(direct(&["/bin/true"], dir).1);
    }
    (via, plain)
}

/// Runs `pair` (a request and a direct run) at least 10 times and for at least a
/// second: after an idle pause this VM takes a while to reach its steady speed, and
/// the sidecar's longer path loses more meanwhile (see "spaced requests").
fn warm_up(mut pair: impl FnMut()) {
    let started = std::time::Instant::now();
    let mut n = 0;
    while n < 10 || started.elapsed() < Duration::from_secs(1) {
        pair();
        n += 1;
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {model}, Linux {}", kernel.trim())
}

/// The sidecar's protections, one line.
fn protections(sc: &Sidecar) -> String {
    let (_, health) = sc.get("/health");
    health["protections"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["active"] == true)
                .map(|p| p["name"].as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn main() {
    let args = parse_args();
    let runs = args.runs;
    let work = tempfile::tempdir().unwrap();

    // The repository's languages plus one that runs /bin/true.
    let languages = work.path().join("languages.toml");
    let mut toml = std::fs::read_to_string(repo().join("languages.toml")).unwrap();
    toml.push_str(
        "\n[languages.truebin]\nplugin = \"template\"\nfile_extension = \"truebin\"\n\
         code_filename = \"code.truebin\"\nrun_command = \"/bin/true\"\n",
    );
    std::fs::write(&languages, toml).unwrap();
    // Scratch dirs where the sidecar puts them by default (the harness would point them
    // into its test dir).
    let opts = Options {
        languages: Some(languages),
        default_scratch: true,
        ..Options::default()
    };
    let sc = Sidecar::start_with(opts.clone());
    let active = protections(&sc);
    eprintln!("sidecar pid {}; protections: {active}", sc.pid());

    // (a) A trivial program, back to back.
    let (via, plain) = trivial(&sc, work.path(), runs, Duration::ZERO);
    let overhead = via.p50() - plain.p50();
    eprintln!(
        "(a) /bin/true: /execute p50 {:.2} p99 {:.2}; direct p50 {:.2} p99 {:.2}; overhead {:.2} ms",
        via.p50(),
        via.p99(),
        plain.p50(),
        plain.p99(),
        overhead
    );
    let (kept_via, kept_plain) = trivial_kept(&sc, work.path(), runs);
    eprintln!(
        "(a) keep-alive: /execute p50 {:.2} p99 {:.2}; direct p50 {:.2}; overhead {:.2} ms",
        kept_via.p50(),
        kept_via.p99(),
        kept_plain.p50(),
        kept_via.p50() - kept_plain.p50()
    );
    // Where the time goes: the same spaced out (as an agent's requests are), and with
    // parts of the sandbox switched off.
    let idle_runs = (runs / 6).max(20);
    let (idle_via, idle_plain) = trivial(&sc, work.path(), idle_runs, IDLE_GAP);
    eprintln!(
        "(a) spaced: /execute p50 {:.2}; direct {:.2}",
        idle_via.p50(),
        idle_plain.p50()
    );
    let ablation = |env: &[(&str, &str)], runs: usize, gap: Duration| {
        let mut o = opts.clone();
        o.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sc = Sidecar::start_with(o);
        let (via, plain) = trivial(&sc, work.path(), runs, gap);
        (via.p50(), plain.p50())
    };
    let bare = [("SIDECAR_NO_CGROUPS", "1"), ("SIDECAR_NO_UID_DROP", "1")];
    let (bare_via, bare_plain) = ablation(&bare, runs, Duration::ZERO);
    let (bare_idle_via, bare_idle_plain) = ablation(&bare, idle_runs, IDLE_GAP);
    let (sweep_via, _) = ablation(&[("SIDECAR_NO_CGROUPS", "1")], 5, Duration::ZERO);
    eprintln!(
        "(a) without cgroups and uid drop: p50 {bare_via:.2} (direct {bare_plain:.2}); spaced {bare_idle_via:.2} (direct {bare_idle_plain:.2}); without cgroups, uid sweep: {sweep_via:.1}"
    );
    // A work dir of 20 000 files: compared before and after every execution.
    let many = sc.workspace.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..20_000 {
        std::fs::write(many.join(format!("f{i}.txt")), "x").unwrap();
    }
    let (many_via, _) = trivial(&sc, work.path(), 20, Duration::ZERO);
    std::fs::remove_dir_all(&many).unwrap();
    eprintln!(
        "(a) with 20 000 files in the work dir: p50 {:.2}",
        many_via.p50()
    );

    // (b) Python hello world, same interpreter.
    let (v, _) = execute(
        &sc,
        &json!({"language": "py", "code": "import sys, os\nprint(os.path.realpath(sys.executable))"}),
    );
    let interpreter = v["stdout"].as_str().unwrap_or("").trim().to_string();
    let direct_python = "/usr/bin/python3";
    let direct_real = std::fs::canonicalize(direct_python)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hello = "print('hello, world')\n";
    let code_py = work.path().join("code.py");
    std::fs::write(&code_py, hello).unwrap();
    let hello_body = json!({"language": "py", "code": hello});
    let py_runs = runs.max(30);
    warm_up(|| {
        execute(&sc, &hello_body);
        direct(&[direct_python, "-u", "code.py"], work.path());
    });
    let mut py_via = Samples::new();
    let mut py_plain = Samples::new();
    for _ in 0..py_runs {
        let (v, took) = execute(&sc, &hello_body);
        assert_eq!(v["stdout"], "hello, world\n", "{v}");
        py_via.push(took);
        let (out, took) = direct(&[direct_python, "-u", "code.py"], work.path());
        assert_eq!(out, "hello, world\n");
        py_plain.push(took);
    }
    let ratio = py_via.p50() / py_plain.p50();
    let mut py_idle_via = Samples::new();
    let mut py_idle_plain = Samples::new();
    for _ in 0..(py_runs / 3).max(20) {
        std::thread::sleep(IDLE_GAP);
        py_idle_via.push(execute(&sc, &hello_body).1);
        std::thread::sleep(IDLE_GAP);
        py_idle_plain.push(direct(&[direct_python, "-u", "code.py"], work.path()).1);
    }
    let idle_ratio = py_idle_via.p50() / py_idle_plain.p50();
    eprintln!(
        "(b) python hello: /execute p50 {:.2}; direct p50 {:.2}; ratio {ratio:.3} (interpreter {interpreter} vs {direct_real})",
        py_via.p50(),
        py_plain.p50()
    );

    // (c) Throughput: 10 clients, Python printing its own number.
    let clients = 10;
    let per_client = (runs / clients).max(10);
    let sc = Arc::new(sc);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let sc = Arc::clone(&sc);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut wrong = 0;
                for i in 0..per_client {
                    let n = c * 1000 + i;
                    let body = json!({"language": "py", "code": format!("print({n})")});
                    let t = Instant::now();
                    let (status, v) = sc.post("/execute", &body);
                    lat.push(t.elapsed());
                    if status != 200 || v["stdout"] != format!("{n}\n") {
                        wrong += 1;
                    }
                }
                (lat, wrong)
            })
        })
        .collect();
    let mut tp_via = Samples::new();
    let mut wrong_via = 0;
    for h in handles {
        let (lat, wrong) = h.join().unwrap();
        lat.into_iter().for_each(|d| tp_via.push(d));
        wrong_via += wrong;
    }
    let wall_via = started.elapsed();
    let total = clients * per_client;
    let rate_via = total as f64 / wall_via.as_secs_f64();

    let dir = Arc::new(work.path().to_path_buf());
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let dir = Arc::clone(&dir);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut wrong = 0;
                for i in 0..per_client {
                    let n = c * 1000 + i;
                    // Its own file, as each execution has its own.
                    let file = dir.join(format!("code_{n}.py"));
                    std::fs::write(&file, format!("print({n})")).unwrap();
                    let t = Instant::now();
                    let (out, _) = direct(&[direct_python, "-u", file.to_str().unwrap()], &dir);
                    lat.push(t.elapsed());
                    if out != format!("{n}\n") {
                        wrong += 1;
                    }
                }
                (lat, wrong)
            })
        })
        .collect();
    let mut tp_plain = Samples::new();
    let mut wrong_plain = 0;
    for h in handles {
        let (lat, wrong) = h.join().unwrap();
        lat.into_iter().for_each(|d| tp_plain.push(d));
        wrong_plain += wrong;
    }
    let wall_plain = started.elapsed();
    let rate_plain = total as f64 / wall_plain.as_secs_f64();
    eprintln!(
        "(c) 10 clients: /execute {rate_via:.1}/s p99 {:.1} ms ({wrong_via} wrong); direct {rate_plain:.1}/s p99 {:.1} ms ({wrong_plain} wrong)",
        tp_via.p99(),
        tp_plain.p99()
    );
    drop(sc);

    // (d) Peak RSS with four 50 MB outputs at once, on a fresh sidecar.
    let sc = Arc::new(Sidecar::start_with(opts));
    let pid = sc.pid();
    execute(&sc, &hello_body);
    let hwm_before = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let sc = Arc::clone(&sc);
            std::thread::spawn(move || {
                let (v, took) = execute(
                    &sc,
                    &json!({"language": "py", "code": "import sys\nsys.stdout.write('x' * 50_000_000)\n"}),
                );
                (v, took)
            })
        })
        .collect();
    let mut flood_ms = Vec::new();
    for h in handles {
        let (v, took) = h.join().unwrap();
        assert_eq!(v["status"], "ok", "{}", v["status"]);
        assert_eq!(v["run"]["stdoutTruncated"], true);
        assert_eq!(v["stdout"].as_str().unwrap().len(), 1 << 20);
        flood_ms.push(took.as_millis());
    }
    let hwm_after = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    eprintln!(
        "(d) VmHWM {} MiB before, {} MiB after four 50 MB outputs",
        hwm_before / 1024,
        hwm_after / 1024
    );

    let section = format!(
        "{SECTION}\n\n\
         Measured by `scripts/bench-execute --write docs/benchmarks.md` (the `bench_execute` binary \
         of `tests/`, using the \
         test harness: the real sidecar on its Unix socket, one HTTP/1.1 connection per \
         request but in the keep-alive row, latencies measured by the client around the whole request; direct runs are \
         `std::process::Command` spawns with piped output of the same binary, interleaved \
         with the requests, after a warm-up of at least a second of such pairs).\n\n\
         - Machine: {machine}; this host's speed changes from one minute to the next \
         (see \"this VM's noise\" below), so absolute figures are noisy.\n\
         - Sandbox active: {active}.\n\
         - Date: {date}.\n\n\
         | measurement | /execute | direct | result | target |\n\
         |---|---|---|---|---|\n\
         | (a) `/bin/true`, {runs} runs each, back to back, a new connection per request: p50 / p99 | {ap50:.2} / {ap99:.2} ms | {dp50:.2} / {dp99:.2} ms | overhead p50 **{overhead:+.2} ms** | ≤ +0.5 ms |\n\
         | (a) the same over one keep-alive connection: p50 / p99 | {kp50:.2} / {kp99:.2} ms | {kdp50:.2} / {kdp99:.2} ms | overhead p50 **{koverhead:+.2} ms** | |\n\
         | (a) the same, {idle_runs} runs {gap} ms apart: p50 | {ip50:.2} ms | {idp50:.2} ms | overhead p50 **{ioverhead:+.2} ms** | |\n\
         | (a) `SIDECAR_NO_CGROUPS=1 SIDECAR_NO_UID_DROP=1`, back to back / {gap} ms apart: p50 | {bp50:.2} / {bip50:.2} ms | {bdp50:.2} / {bidp50:.2} ms | overhead p50 {boverhead:+.2} / {bioverhead:+.2} ms | |\n\
         | (a) `SIDECAR_NO_CGROUPS=1` (dedicated uid + sweep), 5 runs: p50 | {sweep:.0} ms | | see below | |\n\
         | (a) with 20 000 files in the work dir, 20 runs: p50 | {many:.2} ms | | the before/after comparison walks them twice | |\n\
         | (b) Python hello world, {py_runs} runs each, back to back: p50 / p99 | {pp50:.2} / {pp99:.2} ms | {pdp50:.2} / {pdp99:.2} ms | median ratio **{ratio:.3}×** | ≤ 1.05× |\n\
         | (b) the same, {gap} ms apart: p50 | {pip50:.2} ms | {pidp50:.2} ms | median ratio **{idle_ratio:.3}×** | |\n\
         | (c) 10 clients × {per_client} Python runs printing their number: rate, p50 / p99 | {rate_via:.1}/s, {cp50:.0} / {cp99:.0} ms | {rate_plain:.1}/s, {cdp50:.0} / {cdp99:.0} ms | wrong results: **{wrong_via}** of {total} (direct: {wrong_plain}) | all correct |\n\
         | (d) sidecar peak RSS (VmHWM) while 4 requests each print 50 MB | {hwm_after_mb:.1} MiB (before: {hwm_before_mb:.1} MiB) | | +{hwm_delta_mb:.1} MiB; each response cut to 1 MiB with `stdoutTruncated` (requests took {flood:?} ms) | bounded by the caps |\n\n\
         Python: `/execute` runs `{interpreter}` (the py plugin's `python3 -u -s`, found \
         through the default PATH; `-s` skips the user site, which cannot exist in the fresh \
         `HOME` each execution gets); the direct run is `{direct_python} -u code.py` (`{direct_real}`). \
         In (c) the sidecar runs at most 4 executions at once (twice the cores) and queues \
         the rest; the direct clients run all 10 at once. The runner we replace measured \
         +0.9 ms for `/bin/true` (2.5 vs 1.7 ms), +1.8 to 2.6 ms for Python hello, 397 of \
         400 wrong results with 10 clients, and 500 MB of memory with four 50 MB outputs \
         (ANCHORS §2). Where the time goes, and what was tried: the next section (kept by \
         `--write`).\n",
        machine = machine(),
        date = date(),
        ap50 = via.p50(),
        ap99 = via.p99(),
        dp50 = plain.p50(),
        dp99 = plain.p99(),
        gap = IDLE_GAP.as_millis(),
        kp50 = kept_via.p50(),
        kp99 = kept_via.p99(),
        kdp50 = kept_plain.p50(),
        kdp99 = kept_plain.p99(),
        koverhead = kept_via.p50() - kept_plain.p50(),
        ip50 = idle_via.p50(),
        idp50 = idle_plain.p50(),
        ioverhead = idle_via.p50() - idle_plain.p50(),
        bp50 = bare_via,
        bdp50 = bare_plain,
        bip50 = bare_idle_via,
        bidp50 = bare_idle_plain,
        boverhead = bare_via - bare_plain,
        bioverhead = bare_idle_via - bare_idle_plain,
        sweep = sweep_via,
        many = many_via.p50(),
        pp50 = py_via.p50(),
        pp99 = py_via.p99(),
        pdp50 = py_plain.p50(),
        pdp99 = py_plain.p99(),
        pip50 = py_idle_via.p50(),
        pidp50 = py_idle_plain.p50(),
        cp50 = tp_via.p50(),
        cp99 = tp_via.p99(),
        cdp50 = tp_plain.p50(),
        cdp99 = tp_plain.p99(),
        hwm_after_mb = hwm_after as f64 / 1024.0,
        hwm_before_mb = hwm_before as f64 / 1024.0,
        hwm_delta_mb = hwm_after.saturating_sub(hwm_before) as f64 / 1024.0,
        flood = flood_ms,
    );
    println!("{section}");
    if let Some(path) = args.write {
        write_section(&path, &section);
        eprintln!("wrote the {SECTION} section of {}", path.display());
    }
}

/// Today's date (UTC), as `date -u +%F` prints it.
fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Replaces the `## /execute` section of `path` (up to the next `## ` heading), or
/// appends it; creates the file with a title if it is missing.
fn write_section(path: &Path, section: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.trim_end() == SECTION {
            out.push_str(section);
            out.push('\n');
            replaced = true;
            while lines.peek().is_some_and(|l| !l.starts_with("## ")) {
                lines.next();
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
    }
    std::fs::write(path, out).unwrap();
}
