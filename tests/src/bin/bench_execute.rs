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
//! replaced (or appended); the rest of the file is left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_tests::{proc_status_kib, repo, Options, Sidecar};

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

/// `/bin/true` through /execute (the `truebin` language) and spawned directly,
/// interleaved, `runs` times each, with `gap` between runs.
fn trivial(sc: &Sidecar, dir: &Path, runs: usize, gap: Duration) -> (Samples, Samples) {
    let body = json!({"language": "truebin", "code": ""});
    warm_up(|| {
        execute(sc, &body);
        direct(&["/bin/true"], dir);
    });
    let mut via = Samples::new();
    let mut plain = Samples::new();
    for _ in 0..runs {
        std::thread::sleep(gap);
        let (v, took) = execute(sc, &body);
        assert_eq!(v["status"], "ok", "{v}");
        via.push(took);
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
         request, latencies measured by the client around the whole request; direct runs are \
         `std::process::Command` spawns with piped output of the same binary, interleaved \
         with the requests, after a warm-up of at least a second of such pairs).\n\n\
         - Machine: {machine}; this host's speed changes from one minute to the next \
         (see \"this VM's noise\" below), so absolute figures are noisy.\n\
         - Sandbox active: {active}.\n\
         - Date: {date}.\n\n\
         | measurement | /execute | direct | result | target |\n\
         |---|---|---|---|---|\n\
         | (a) `/bin/true`, {runs} runs each, back to back: p50 / p99 | {ap50:.2} / {ap99:.2} ms | {dp50:.2} / {dp99:.2} ms | overhead p50 **{overhead:+.2} ms** | ≤ +0.5 ms |\n\
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
         (ANCHORS §2).\n\n\
         ### Where the time goes\n\n\
         Phases of one `/bin/true` execution, from timestamps added to a private build \
         (back to back, p50, this host): connection, HTTP request and response, and the \
         client ≈ 0.25-0.3 ms; request checks, session, scratch and work dir ≈ 0.035 ms; \
         plugin `plan()` ≈ 0.075-0.09 ms (25-45 µs in a tight loop; caches and TLBs are \
         cold after the previous program ran); plan files and the first snapshot ≈ 0.04 \
         ms; program lookup, pooled cgroup and pipes ≈ 0.035 ms; from `clone` until the \
         sidecar runs again after the child's `execve` ≈ 0.25 ms (0.19 ms without \
         cgroups, uid drop and network namespace); until the exit is seen ≈ 0.6-0.8 ms \
         (the program); kill check, drain, reap and OOM check ≈ 0.04 ms; second snapshot \
         and response ≈ 0.05 ms. After a Python run the sidecar's own steps are all \
         slower (cold caches): plan 0.2 ms, request to spawn 0.18 ms, response 0.13 ms.\n\n\
         - **the spawn (exec/spawn.rs)**: `pre_exec` made the standard library fork() \
         the sidecar, a multi-threaded process with wasmtime's reservations. The child is \
         now made as posix_spawn makes it, `clone(CLONE_VM | CLONE_VFORK)` on a stack of \
         its own, with the set-up posix_spawn cannot do (cgroup join, setns, rlimits, uid \
         drop) as raw system calls. Measured with the same client against the previous \
         binary: `/bin/true` +1.20 → +0.42 ms, Python 1.21× → 1.07× (with the changes \
         below).\n\
         - **off the critical path (exec/background.rs, runner/scratch.rs, \
         exec/cgroup.rs)**: removing the scratch dir and the cgroup went through tokio's \
         blocking pool, whose woken thread ran at once on the request's CPU (70-120 µs); \
         one clean-up thread at nice 19 does it now. Scratch dirs are made ahead, and a \
         cgroup's limits (~20 µs of cgroupfs writes) are written ahead, for the next \
         execution. The wasm epoch ticker, which woke every 5 ms and preempted the \
         programs the sidecar runs, ticks only during plugin calls.\n\
         - **cgroups recycled (exec/cgroup.rs)**: making and removing three v1 cgroups \
         per execution was a quarter of the sidecar's CPU samples (~0.2 ms per \
         execution, holding the kernel's cgroup lock that every child's join takes). A \
         group whose execution left nothing to kill and at most 16 MiB charged goes back \
         to the pool, its OOM counter read as the next execution's baseline. Sidecar CPU \
         per `/bin/true` execution: 1.14-1.30 → 0.98-1.21 ms.\n\
         - **scratch dirs on tmpfs (runner/scratch.rs)**: this VM's root file system is \
         ext4 without a journal, where each inode create scans past every inode deleted \
         in the last minutes (`recently_deleted`); every execution creates and deletes a \
         dir and a file, so after a few thousand executions writing the code file took \
         ~0.1 ms. That was the run-to-run drift the previous figures showed (a run \
         started right after another measured ~0.4 ms more). The default scratch root \
         is now `/dev/shm/sidecar` when `/dev/shm` is a tmpfs with ≥ 1 GiB free, as \
         here. Interleaved A/B against the previous binary, one run: `/bin/true` \
         +0.90 → +0.81 ms, Python 1.072× → 1.063×.\n\
         - **cgroup v1 join (exec/cgroup.rs)**: a child that joined its groups by writing \
         its pid to `cgroup.procs` took the kernel's `cgroup_threadgroup_rwsem` for \
         writing, which waits for an RCU grace period when no migration happened in the \
         last ~10-20 ms: 5-17 ms per spaced request. The child writes \"0\" to v1's \
         `tasks` (it is single-threaded until exec), which skips that lock. On cgroup v2, \
         the child is made inside its group by `clone3(CLONE_INTO_CGROUP)` (x86_64, \
         Linux >= 5.7; exec/spawn.rs), which migrates nothing: measured on this host's \
         hybrid cgroup2 mount, an execution 50 ms after the previous one took 17.2 ms \
         with the join by write and 1.5-1.6 ms born in its group (v1: 1.2-1.3 ms).\n\
         - **fewer wake-ups and system calls (session of 2026-11-22)**: a quarter of \
         all executions still made and removed three cgroups (the pool was refilled \
         before the previous execution's group came back, which then found it full; it \
         now takes up to twice the pool size back); the clean-up thread was woken at the \
         start of every execution to make the next scratch dir beside it (now one job \
         after the execution); pipes, plan files and cgroupfs reads lost 2-4 system \
         calls each; the end-of-execution kill check reads the kept-open `pids.current` \
         (1 = only the exited main process) instead of listing `cgroup.procs` (22 of its \
         24 µs); the work dir is walked by descriptor. Interleaved blocks of 25 requests \
         against the previous binary, each step: -48, -60 and -70, -13 and -45, -15 and \
         -24 µs. The bench's (a) went from +0.65 ms (first run of the session) to +0.47 \
         to +0.64 ms (four runs at the end); with cgroups, uid drop and network \
         namespace off it is now the same, so the protections themselves cost next to \
         nothing and what is left is the path every request takes.\n\
         - **no wake-ups while idle (api/reload.rs, a later session of 2026-11-22)**: \
         the hot-reload watcher looked at the plugin files every 100 ms, 60 context \
         switches a second in an idle sidecar, each a wake-up that lands on whatever \
         program is running (a 12 ms Python run met one about every eighth time). \
         inotify tells it now (and it looks every 5 s): none. Seven runs of this \
         benchmark after it, the table's last: (a) +0.45, +0.56, +0.51, +0.47, +0.50, \
         +0.51, +0.61 ms; (b) 1.041, 1.054, 1.078, 1.100, 1.075, 1.081, 1.075×.\n\
         - **output read after the exit (exec/process.rs, session of 2026-12-06)**: \
         every write of a running program woke the sidecar, whose worker then ran on \
         the program's vCPU and preempted it (this guest packs tasks onto one vCPU, \
         `sched_vcpu_pack=15`, even with the other idle): five wake-ups per Python hello \
         world, one per line for a chatty program. With no one streaming the output \
         (/execute), the output pipes are made 1 MiB and read once the main process \
         has exited (or after 50 ms); /bash, which streams, reads as before. `perf \
         sched` shows the Python run now uninterrupted from `exec` to exit. Python \
         hello's latency did not move measurably (interleaved A/B, 300 runs, twice: \
         +0.005 and -0.010 ms); 10 clients running a program that prints 2000 lines: \
         114 → 141 executions/s.\n\
         - **the epoch ticker on a timer (plugins/ticker.rs, session of 2026-12-06)**: \
         the thread that advances the wasm epoch during plugin calls slept between \
         them and was unparked by the first call after a pause (a wake-up on the other \
         vCPU: 17 µs of a plan call after a Python run), and woke once more a tick \
         after the last call, while the planned program ran. The first call now arms a \
         POSIX timer that signals the thread every 5 ms and the last disarms it: wake-ups \
         of the thread per back-to-back `/bin/true` execution 0.71 → 0. Interleaved A/B \
         against the previous binary (each order once): `/bin/true` -5 and -30 µs, Python \
         hello -69 and -225 µs.\n\
         - **private /tmp (exec/private_tmp.rs, session of 2026-12-06)**: each \
         execution now joins a mount namespace of a pool, with its own `/tmp`, \
         `/var/tmp` and `/dev/shm`. The `setns` costs the child ~20-30 µs (timed inside \
         a forked child; the network namespace's join costs the same). Interleaved A/B \
         of the same binary with and without `SIDECAR_SHARED_TMP=1`: `/bin/true` +31 \
         and +21 µs; Python hello +0.18, +0.35, -0.01, +0.26 and -0.09 ms, within this \
         host's noise: a harness spawning Python directly, alone or into such a \
         namespace, 500 interleaved runs four times, measured +0.00 to +0.10 ms (mean \
         +0.03). A namespace is made in ~0.25 ms (ahead, on the clean-up thread) and \
         reused: dropping one waits ~1 ms for an RCU grace period. Telling which \
         execution wrote which file (a fanotify group per namespace, the work dir \
         opened again through the namespace's mount, the event queue read at the end) \
         added +7 and +18 µs to `/bin/true` (interleaved A/B, each order once).\n\
         - **this VM and wake-ups**: the guest runs nested (`nested_pvm=1` on its \
         kernel command line) with `cpuidle_haltpoll` and no halt polling: a \
         `perf bench sched pipe` round trip takes 73 µs between the two vCPUs and 6.4 \
         µs on one. Every wake-up of a thread on the other, idle vCPU costs tens of µs \
         of latency, which is why the changes above count wake-ups, not only CPU time.\n\
         - **Python's gap (not closed)**: Python pays more than `/bin/true` over its \
         direct run. From the timestamps, the child lives ~0.75 ms longer from `clone` \
         to the exit seen than the direct run's whole spawn-to-reap, and the sidecar's \
         own steps cost ~0.25 ms more than for `/bin/true` (cold caches). The \
         protections are not it: a C harness applying them (memory, pids and freezer \
         cgroups, network namespace, uid, rlimits, setsid, the plan's environment) adds \
         +0.06 to +0.19 ms to Python hello (interleaved, 300 runs each), the plan's \
         environment alone +0.14 ms, and the sidecar with them switched off is no \
         faster. On the earlier (Xeon) host `perf sched` put Python's time on a CPU at \
         7.99 ms under the sidecar against 7.68 ms under that harness. This host, \
         `perf sched` over 100 interleaved runs (session of 2026-12-06): from `clone` \
         to `exec` 0.40 ms under the sidecar against 0.25 ms for `posix_spawn` (the \
         sidecar's own work after the spawn runs on the child's vCPU meanwhile), from \
         `exec` to exit +0.09 to +0.18 ms, and from the request to the `clone` 0.39 to \
         0.47 ms after a Python run against 0.19 to 0.26 ms after `/bin/true`: the plan \
         call alone takes 187 µs after Python (waking the epoch ticker 17, store 20, \
         instantiation 65, the call 57, resetting the pool slot 28) and 82 µs warm. \
         Tried and \
         reverted because they measured worse or no better: plugin instances made \
         ahead on the clean-up thread (a warm plan call went from 15 to 44 µs: the \
         instance is cold in the calling CPU's caches), and again on a tokio task \
         spawned by the call's own worker after each call (interleaved against the \
         previous binary: -15, -2 and, spaced 50 ms, +80 µs per execution), removing finished cgroups in \
         batches, one tokio worker instead of two (again this session, no difference), \
         tokio workers at `SCHED_BATCH` so that they do not preempt the child they just \
         started (the child's set-up got faster, the spawn's return slower, the sum the \
         same), and plan-call deadlines by fuel instead of the epoch ticker (no thread \
         to wake, but +8 µs per plan call for the fuel counting).\n\
         - **Python's gap, later on 2026-12-06**: what in the plan's environment costs \
         Python its time, from direct spawns of the same `python3 -u` under each \
         variant (500-700 interleaved runs, three times): the sidecar's environment and \
         layout +0.13 ms over the benchmark's own; of which `PYTHONPATH={{workdir}}` \
         (so that the caller's modules import) +0.04 to +0.09 ms, as every import at \
         start-up looks in the work dir first; `LANG` and `HOME` within noise. The \
         runner's layout (the code file in the work dir, no `PYTHONPATH`) measured \
         0.08-0.14 ms faster, and is not taken: the source would sit where the \
         session's other executions see it. Per Python execution the sidecar's threads \
         ran ~0.9 ms of CPU (workers) and ~0.15 ms (clean-up thread) and waited ~1.6 ms \
         runnable (`/proc/<pid>/task/*/schedstat`): on this guest they queue behind the \
         child on its vCPU. Tried and reverted: waking the clean-up thread only once \
         the response is written (a tokio task after the request's own): no difference \
         measurable here; the sidecar pinned to one vCPU with its children free on \
         both: worse (+1.0 ms against +0.5-0.6 ms in the same runs).\n\
         - **Python's gap, a later session**: the sidecar's CPU per execution (its \
         `utime`+`stime` over 400 back-to-back requests): 0.6 ms for `/bin/true` and \
         1.2 ms for Python hello over the same code path, user time 0.25 against 0.6 ms. \
         The profile is flat (no function above 1% of the sidecar's samples): after a \
         Python run the same work costs twice as much, in cache and TLB misses, and the \
         request's own steps are on the critical path. The sidecar takes no page fault \
         per request. `perf sched` of a Python request: the worker runs 0.5 ms from \
         the request to the `clone`, the child is placed on the other vCPU, and its \
         `exec` wakes the worker there, behind Python (2.6 ms runnable), where it then \
         preempts it for ~0.13 ms; from Python's exit to the response 0.35-0.4 ms. \
         Tried and reverted: pinning the spawning thread to its vCPU while it waits for \
         the child's `exec` (the child gets its CPUs back first thing, and `exec` \
         balancing moves it away), so that the worker goes on beside Python, not behind \
         it: interleaved A/B, +0.90 against +0.82 ms and +0.82 against +0.78 ms, no \
         better. `/bin/true` itself runs longer from `exec` to exit under the sidecar \
         (`perf sched`, on-CPU median 0.71-0.81 ms against 0.64-0.67 ms spawned \
         directly); with cgroups, network namespace, uid drop and private /tmp all off \
         0.68 ms, and none of them alone makes the difference. The child's set-up asks for \
         every signal's action and resets those not at their default (~70 `sigaction` \
         calls, ~0.25 µs each here): ~20 µs, as glibc's `posix_spawn` does too (since \
         made by `clone3` with `CLONE_CLEAR_SIGHAND`: see the child's steps below).\n\
         - **a later session of 2026-12-06**: the release profile is no longer \
         incremental (rustc turned off the inlining between the host crate's many \
         codegen units): interleaved A/B with the order alternating each round, 400 \
         runs twice, Python hello -0.07 and -0.12 ms, `/bin/true` -0.02 ms; thin LTO on \
         top measured +0.01 and -0.10 ms for every dependency rebuilt, not taken. Each \
         execution's scratch dir is now a tmpfs of its own in its namespace \
         (exec/private_tmp.rs): +0.03 and -0.07 ms on Python, -0.08 and -0.02 ms on \
         `/bin/true` (noise). Measured and not built: a spawn that does not wait for the \
         child's `exec` (`clone` with `CLONE_VM` but without `CLONE_VFORK`, so that the \
         worker's 0.1-0.15 ms of work after the spawn runs beside the child's set-up \
         instead of waking behind Python): a C harness spawning Python hello with \
         0.15-0.3 ms of cache-touching work after the spawn measured -0.01 to -0.17 ms \
         (mean -0.09 ms) against `posix_spawn`, and nothing without that work; the child \
         would have to make its system calls without libc (`errno` would land in the \
         running parent thread's memory) and report a failed start only once it has \
         exited, for about a tenth of the gap. The A/B harness's ordering effect: with \
         two sidecars interleaved in a fixed order, the second measured 0.3 to 1.1 ms \
         slower whichever binary it was (the first's clean-up and the kernel's deferred \
         work after its child overlap the second's request); alternating the order each \
         round removes it. The output deferral's 50 ms deadline is now a timerfd \
         (exec/process.rs): as a tokio sleep it usually sat in the second level of \
         tokio's timer wheel, whose driver then woke once before the deadline to move it \
         down a level, on the program's vCPU; `perf sched` of 40 Python hello worlds, \
         twice: 1 and 2 of them met such a wake-up before, none after (a longer program \
         meets one more often: the wake comes up to 64 ms after the start).\n\
         - **the session after (2026-12-06)**: a plan call's instance is now kept for \
         the same session's next call (host/src/plugins/runtime.rs, `Warm`; never \
         another session's, dropped after a trap): making the store and instance and \
         resetting the pool slot were two thirds of a plan call after a Python run. \
         Interleaved A/B against the previous binary (order alternating, 300-400 runs): \
         Python hello -0.09, -0.16, -0.19 ms, `/bin/true` -0.04, -0.05 ms. Phases of a \
         request from timestamps in a private build (300 back-to-back requests each, \
         p50, µs, Python / `/bin/true`): request checks and session 22 / 11; slot, \
         namespace, scratch and work dir 11 / 7; the plan call 97 / 30 with the kept \
         instance (of which the wasm call itself 66 / 16; conversions and the epoch \
         timer under 8); plan files 33 / 14; the work dir through the namespace 17 / 13; \
         first snapshot 11 / 10; environment, program lookup, cgroup and pipes 64 / 35; \
         after the exit is seen: kill check 22 / 9, output 37 / 20, reap 25 / 16, OOM \
         and peak reads 11 / 6, hand-over to the clean-up thread 14 / 5, second \
         snapshot 31 / 15, response 39 / 16. In all ~445 µs after Python against \
         ~190 µs after `/bin/true`: the same work, twice as slow on caches the program \
         has just used. Tried and not kept: the executable's 16 MiB of code remapped \
         onto transparent huge pages at start-up (fewer TLB misses after the program \
         ran): interleaved A/B -0.14, +0.38 and (spaced 50 ms) -0.07 ms, no effect \
         out of the noise; the plan's files written through descriptors instead of \
         `/proc/self/fd` paths (kept for its own sake, no symlink can redirect them): \
         +0.05 and 0 ms. A gid of its own per execution (`private_processes`) costs a \
         lock and a queue operation; the child's Landlock domain (`scoped_signals`) measured 0.000 and -0.004 ms on \
         `/bin/true` (interleaved A/B, 400 runs twice) when each child made its ruleset \
         (three system calls); the ruleset is now made once, at start-up, and the child \
         makes one.\n\
         - **the child's steps (a later session of 2026-12-06)**: timestamps taken in \
         the child of a private build (`clock_gettime` at each step, 200 runs, p50, \
         Python / `/bin/true`): from `clone` until the child runs 41 / 37 µs (on the \
         parent's vCPU 9 times in 10); the signal reset 17 / 18; the mount \
         namespace's `setns` 11 / 6; `chdir` into the work dir 17 / 14 (a lookup of \
         `/proc/self/fd/N` through procfs); `setsid` 13 / 10 (the kernel makes an \
         autogroup, a scheduling group, for every new session); joining the three v1 \
         cgroups 43 / 22 (memory 24, pids 11, freezer 8 after Python); the network \
         namespace 6 / 4; close-on-exec 0.6; rlimits 4; the uid and gid change 12 / 8; \
         `no_new_privs` 2; Landlock 6 / 4; from `execve` until the parent runs again \
         55-66 µs: 235-280 µs in all. The child is now made by `clone3` with \
         `CLONE_CLEAR_SIGHAND` (its handlers are back at their default for free; only \
         the signals the sidecar ignores are reset) and enters the work dir with \
         `fchdir` on the descriptor the runner holds: interleaved A/B against the \
         previous binary, Python hello -0.11 ms, `/bin/true` -0.06 ms. Tried and not \
         kept: joining the v1 cgroups in the other order (no difference); `setpgid` \
         instead of `setsid`, to see what the autogroup costs (within the noise, and \
         not an option: every execution needs a session of its own). `perf sched` of \
         Python hello: a tokio worker woken with nothing to do right after the spawn \
         waits ~4 ms behind Python on its vCPU and then preempts it for ~50 µs; in the \
         sample looked at, the Python process itself was on a CPU ~0.7 ms longer than \
         the one spawned directly, and the sidecar took 0.33 ms from its exit to the \
         response. The Python figures now take 300 runs a side (100 before), for a \
         steadier median. Measured and not built: a child made ahead (its `setsid`, \
         network namespace and `no_new_privs` done) and waiting on a futex, woken with \
         the job, in a C harness against a `vfork` child doing the same after its \
         `clone` and a plain `posix_spawn`, interleaved: until `exec` 0.11 against \
         0.24 ms; Python hello -0.22 to -0.92 ms over the `vfork` child and -0.17 to \
         -0.25 ms over `posix_spawn` (the Python it started also used 0.2-0.9 ms less \
         CPU, which the saved set-up does not explain: probably which vCPU's caches it \
         met); `/bin/true` -0.04 to -0.06 ms. For the sidecar it needs a thread per \
         waiting child, blocked in that child's `vfork` (the child shares the thread's \
         `errno`), the descriptor table shared until the job and copied then, a \
         parent-death signal (a waiting child otherwise outlives the sidecar: the \
         harness's first version left some behind), and it cannot be born in a v2 \
         cgroup: joining one by a write costs the RCU grace period above. A prototype \
         in the sidecar (a keeper thread per waiting child, the job posted through a \
         futex, the `exec` awaited through `CLONE_CHILD_CLEARTID`), interleaved A/B \
         against the code above: Python hello -0.03, +0.24 and -0.21 ms, `/bin/true` \
         -0.01 ms: no gain out of the noise, so not kept.\n\
         - **system calls (the session after the child's steps)**: after a Python run \
         each system call of the sidecar costs it 3-6 µs here (cold caches), and a \
         Python execution made ~77 on its critical path. Phases from timestamps in a \
         private build (200 requests interleaved with direct runs, p50, µs, before → \
         after this session): connection accepted to the request parsed 55 (the \
         client's send included), routing and JSON 25, request checks and session \
         26 → 23, limiter, namespace and scratch 17, the plan call 83-107, plan files \
         31, the work dir through the namespace 24 → 5 (its path was asked of procfs, \
         `readlink` of `/proc/self/fd/N`: the runner knows it), first snapshot 14 → 10 \
         (the top level is read from the stream the runner holds, rewound, instead of \
         opened again), program lookup 22 → 11 (`python3` is in the fourth dir of the \
         default PATH: a found program is remembered for 10 s and checked with one \
         `stat`), the child's rlimits 5 → 1 (the sidecar's hard limits are read once), \
         pipes 27 → 18 (a kept `/dev/null`), the spawn until the parent runs again \
         ~200-260, then after the exit: the kill check 20 → 14 (no signal when \
         `pids.current` says only the exited main process is left), output and reap \
         45, OOM and peak reads and the hand-over 21, second snapshot 25 → 18 \
         (estimated from the first), the response 25 (now serialized from the outcome \
         without copying the outputs into a JSON tree). The py plugin now runs \
         `python3 -u -s`: each execution's `HOME` is a fresh scratch dir, where no \
         user site can exist, and looking for it and for `usercustomize` along the \
         path cost every start ~0.1 ms (direct spawns with the sidecar's environment, \
         400 interleaved runs twice: -0.08 and -0.11 ms). Interleaved A/B of this \
         session's final binary against the previous session's (the old command set \
         in its languages.toml), 300 Python runs a side, six times: 0.00, -0.07, \
         +0.04, -0.16, -0.20, -0.17 ms; `/bin/true` -0.04 ms. Not kept: one tokio \
         worker instead of two (again: +0.15 and +0.10 ms, worse).\n\
         - **wake-ups (the session after the system calls)**: three changes to what \
         the sidecar's threads do around a request, each measured interleaved against \
         the commit before it (`/bin/true`, 500-1500 runs a side). The request's log \
         line is now written after its response (a task that takes the worker's LIFO \
         slot; before, formatting and the write to stderr delayed every response): \
         -0.033 and -0.033 ms (with `RUST_LOG=warn` the old binary measured -0.021 \
         and -0.026 ms). hyper hands a request body to the handler through a channel \
         whose two ends the connection's task polls, and each hand-over wakes that task \
         while it runs; tokio then took the task for one that yielded, queued it again \
         once it waited (for /execute, right after the spawn), woke a parked worker to \
         steal it (a futex wake, an interrupt to an idle vCPU: `perf` with call graphs \
         on `futex`) and polled it once more for nothing. api/repoll.rs polls at once \
         instead: -0.005, -0.015, -0.009, -0.016, -0.010 ms. The accept loop's \
         `yield_now` (so that the new connection's task runs before the next, mostly \
         empty, `accept`) resumed it from tokio's deferred list, which made its worker \
         wake another one to search, on the CPU the program had just started on; the \
         new task now wakes the accept loop into the LIFO slot as it starts, and the \
         whole request stays on one worker (strace): -0.020 and -0.010 ms (Python \
         hello -0.20 ms, noisy); with no yield at all, +0.017 and +0.003 ms. Measured \
         and not changed: the client's request head and body in one write or two (the \
         harness writes two): +0.017 and -0.010 ms, no difference; `python3 -P` (no \
         script dir in `sys.path`, 3.11+): 5 system calls fewer per start (strace), \
         too little to leave Python 3.10 behind.\n\
         - **clean-up after the response (session of 2026-12-07)**: an execution \
         handed two jobs to the clean-up thread as it ended (the cgroup's return; the \
         scratch dir and private /tmp), each a futex wake of that thread on the other \
         vCPU while the response was still being made, and closed seven descriptors \
         before the response (timerfd, pidfd, both output pipes, the work and scratch \
         dirs'). A request now holds its clean-up (a tokio task-local, \
         exec/background.rs) and lets it go as one job once the response is written, \
         from the task that writes its log line; a request dropped midway lets it go \
         too. strace: one wake, after the `writev`, and 13 system calls from the exit \
         seen to the `writev`, against 20. Interleaved A/B against the commit before \
         each (order alternating): the jobs held, Python hello -0.10, -0.09, -0.08, \
         +0.005 ms, `/bin/true` +0.005 and 0.000 ms; the descriptors closed later, \
         `/bin/true` -0.041 and -0.034 ms, Python hello +0.09, +0.03, -0.15, -0.15 \
         ms. The spawn watchdog, which woke every 500 ms for good, now sleeps until a \
         watched spawn could be stuck and parks when none is in flight: an idle \
         sidecar wakes only for the plugin watcher's look every 5 s. The clean-up \
         thread itself did less: it walked each execution's /tmp, /var/tmp and \
         /dev/shm (five system calls a dir) though most executions leave them \
         untouched, which one `fstatfs` now says (the tmpfs's used inodes are its root \
         and what the sidecar made in it), and it reads a recycled memory group's usage \
         through a kept descriptor: its system calls per `/bin/true` execution 45 -> 30, \
         its CPU 0.27-0.30 -> 0.17-0.22 ms (`perf stat`, 1000 requests, twice), latency \
         -0.019 and -0.001 ms (interleaved A/B, 800 runs a side): CPU that whatever runs \
         next no longer has to share.\n\
         - **this VM's noise**: the same direct Python run takes 11 to 18 ms from one \
         minute to the next here (AMD EPYC guest), so only interleaved A/B runs in one \
         session compare binaries; the table is one run. The runs at the end of the \
         session of 2026-11-22, this one last: (a) +0.47 to +0.64 ms, (b) 1.073× to \
         1.100×; four more on the final code (the cgroup v2 change, which v1 does not \
         use): +0.52 to +0.66 ms, 0.971× to 1.102× (0.971×: the direct runs were the \
         slow ones that time). The session before: +0.55 to +0.77 ms, 1.034× to \
         1.191×. On 2026-12-06 (a fresh guest of the same kind), before the table's \
         run: (a) +0.39 (the previous binary), +0.44, +0.57, +0.40, +0.51 ms; (b) \
         1.115, 1.108, 1.080, 1.191, 1.095×; after the ticker change, the table's run \
         and two more: (a) +0.50, +0.71, +0.45 ms; (b) 1.043, 1.097, 1.082×. Later \
         that day, with the private /tmp and the write attribution in, four runs before \
         the table's: (a) +0.55, +0.50, +0.39, +0.39 ms; (b) 1.102, 1.099, 1.095, \
         1.094×. Later still, with the /files and server changes in (which /execute \
         does not go through), five runs: (a) +0.42, +0.51, +0.52, +0.54, +0.39 ms; \
         (b) 1.089, 1.090, 1.043, 1.093, 1.031×. The next session, before the table's \
         run (its /execute changes: `wait4` for the CPU time): (a) +0.53, +0.50, \
         +0.42 ms; (b) 1.071, 1.084, 1.110×; with all of its changes in (the peak \
         memory read, `no_new_privs`), the table's run and two more: (a) +0.40, \
         +0.52, +0.39 ms; (b) 1.112, 1.074, 1.063×. A later session, with the private \
         scratch dirs in (before the build profile's change): (a) +0.60, +0.60, \
         +0.38 ms; (b) 1.080, 1.090, 1.057×; on its final code, two runs before the \
         table's: (a) +0.61, +0.48 ms; (b) 1.074, 1.064× (the table's run, +0.50 ms \
         and 1.026×, is the session's only one within 1.05×). The session after, on \
         the previous code: (a) +0.41, +0.38 ms; (b) 1.062, 1.047×; with the kept plan \
         instances: (a) +0.50, +0.43, +0.65 ms; (b) 1.053, 1.054, 1.047×; an hour \
         later, when the direct Python run had gone from 10.0-10.4 to 11.5-11.8 ms \
         here, on this session's code, four runs before the table's: (a) +0.42, +0.55, +0.51, +0.38 ms; (b) 1.089, 1.091, \
         1.075, 1.055× (an interleaved A/B of the final binary against the one of the \
         earlier runs measured +0.06 and +0.02 ms: the host, not the code). The \
         session of the child's steps (direct Python 10.2 to 13.8 ms from one run to \
         the next), on the previous code: (a) +0.52 ms, (b) 1.065× (100 runs); on its \
         own code, five runs before the table's (300 Python runs each): (a) +0.40, \
         +0.36, +0.42, +0.46, +0.45 ms; (b) 1.030, 1.068, 1.065, 1.082, 1.055×. The \
         session of the system calls, with the same previous binary measuring 0.2-0.4 \
         ms more over direct Python than a session before (the host, not the code): \
         with only the `-s` change in, (a) +0.41, +0.44, +0.36 ms, (b) 1.073, 1.065, \
         1.077×; midway, during a slow spell (direct Python 11.9-12.0 ms), (a) \
         +0.58, +0.50, +0.40 ms, (b) 1.075, 1.069, 1.097×, then (a) +0.31, +0.32 ms, \
         (b) 1.082, 1.085×; on the final code, two runs before the table's: (a) \
         +0.42, +0.46 ms, (b) 1.072, 1.050×. The session of the wake-ups, on a fresh \
         guest where direct Python took 14-21 ms (10-12 ms before): the previous \
         session's final binary, four runs, (a) +0.38, +0.38, +0.50, +0.40 ms, (b) \
         1.030, 1.026, 1.024, 1.033×; with the three changes, three runs, (a) +0.42, \
         +0.36, +0.43 ms, (b) 1.049, 0.985, 1.013× (direct Python 19.7, 18.2 and \
         14.4 ms: the ratio moves with the interpreter's own start-up time here); \
         later, with the host slower (direct `/bin/true` 0.96-1.02 ms against 0.66 at \
         the start, direct Python 19-23 ms), eight runs of the same final code before \
         the table's: (a) +0.33, +0.57, +0.27, +0.41, +0.74, +0.54, +0.67, +0.58 ms; \
         (b) 1.054, 1.048, 1.044, 1.040, 1.056, 1.041, 1.044, 1.046×. \
         The session of 2026-12-07 (the same guest a day on, direct `/bin/true` \
         0.93-1.4 ms, direct Python 20-23 ms, with noisy spells in which the direct \
         `/bin/true`'s p99 reached 2.2-4.5 ms): on the previous code, (a) +0.44 ms, (b) \
         1.046×; with the held jobs and the watchdog, (a) +1.05 (a noisy spell) and \
         +0.46 ms, (b) 1.044 and 1.039×; with the descriptors closed later too, (a) \
         +0.84 (noisy), +0.48, +0.60, +0.77 (the first run after a pause, noisy) and \
         +0.41 ms, (b) 1.042, 1.029, 1.032, 1.045 and 1.033×; with the second of warm- \
         up, (a) +0.42, +0.35 (both after a minute idle), +0.79, +0.68 (noisy), +0.45 \
         ms, (b) 1.043, 1.028, 1.032, 1.034, 1.035×; on the final code, three runs \
         before the table's: (a) +0.89 (right after a build, noisy), +0.43, +0.38 ms, \
         (b) 1.042, 1.020, 1.026×. \
         The sidecar's overhead grows with the host's slowness, like everything else \
         here.\n\
         - **spaced requests**: everything is slower after an idle pause on this VM, the \
         direct spawn too; the sidecar's path touches more code and data (HTTP, the \
         plugin instance, cgroupfs), so its overhead grows more.\n\
         - **uid sweep without cgroups (exec/janitor.rs, `sweep_uid`)**: it now ends when \
         /proc shows no live process of the dedicated uid (it used to wait for \
         `kill(-1)` to fail with ESRCH, which never happens while any process exists: \
         1.2 s per execution).\n\
         - **work dir size (runner/snapshot.rs)**: files created or modified are found by \
         comparing two walks with a `stat` per file; 20 000 files cost ≈ 0.1 s per \
         execution.\n",
        machine = machine(),
        date = date(),
        ap50 = via.p50(),
        ap99 = via.p99(),
        dp50 = plain.p50(),
        dp99 = plain.p99(),
        gap = IDLE_GAP.as_millis(),
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
