//! Plugin runtime benchmark: one plan call through the host, and loading plugins.
//!
//! `make build && cargo bench -p sidecar --bench plan` (release settings; plugins from
//! `target/release/plugins`, or `$SIDECAR_PLUGINS_DIR`). A plain loop with `Instant`:
//! the figures that matter are percentiles over thousands of calls, which need no
//! statistics framework. Targets (docs/benchmarks.md, "Plugins"): plan call p50 <= 50
//! µs; every plugin loaded from a warm cache <= 150 ms.
//!
//! Options (environment): `BENCH_PLAN_CALLS` (default 5000), `BENCH_PLUGIN` (default
//! `py`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sidecar::plugins::{self, PlanRequest, PluginLimits, Runtime};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn plugins_dir() -> PathBuf {
    std::env::var_os("SIDECAR_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/plugins"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// (p50, p90, p99, max) of `samples`.
fn percentiles(samples: &mut [Duration]) -> [Duration; 4] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), *samples.last().unwrap()]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A small Python request of the session whose work dir this is.
fn session_request(work_dir: String) -> PlanRequest {
    PlanRequest {
        code: "import sys\nprint('hello', sys.argv)\n".into(),
        files: Vec::new(),
        args: vec!["a".into(), "b c".into()],
        has_stdin: false,
        work_dir,
        scratch_dir: "/tmp/sidecar/exec-1-1".into(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let dir = plugins_dir();
    let code = std::env::var("BENCH_PLUGIN").unwrap_or_else(|_| "py".into());
    let file = dir.join(format!("{code}.wasm"));
    assert!(
        file.is_file(),
        "{} is missing: run `make build` first",
        file.display()
    );
    let languages = repo().join("languages.toml");
    let cache = tempfile::tempdir().unwrap();
    println!(
        "plugin runtime benchmark: {} ({} bytes), {} cores",
        file.display(),
        std::fs::metadata(&file).unwrap().len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Loading one plugin: compiled (no cache), then from the disk cache.
    let mut cold = Vec::new();
    for _ in 0..3 {
        let rt = Runtime::new(PluginLimits::default(), None).unwrap();
        let t = Instant::now();
        let p = rt.load(&file).unwrap();
        cold.push(t.elapsed());
        assert!(!p.from_cache);
    }
    let rt = Runtime::new(PluginLimits::default(), Some(cache.path().to_path_buf())).unwrap();
    rt.load(&file).unwrap();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let p = rt.load(&file).unwrap();
        warm.push(t.elapsed());
        assert!(p.from_cache);
    }
    println!(
        "load {code}.wasm: compiled {} (median of 3), from cache {} (median of 20)",
        ms(median(cold)),
        ms(median(warm))
    );

    // 2. One plan call through the host: settings and request converted to the WIT
    //    types, a fresh store, instantiate, call, convert back, validate.
    let registry = plugins::load_registry(&rt, &dir, &languages, None).unwrap();
    let lang = registry
        .resolve(&code)
        .unwrap_or_else(|| panic!("{code} is not served"));
    // One session's requests: after the first, each call gets the instance the
    // previous one used (see `Warm` in host/src/plugins/runtime.rs).
    let request = || session_request("/workspace/session".into());
    // Calls are async: awaited on a current-thread runtime, as a worker awaits them.
    let tokio_rt = current_thread();
    let calls = env_usize("BENCH_PLAN_CALLS", 5000);
    for _ in 0..calls / 10 {
        tokio_rt
            .block_on(lang.plugin.plan(&lang.settings, request()))
            .unwrap();
    }
    // One plan call on this thread, timed (the request is made before the clock starts).
    let timed = |req: PlanRequest| {
        let t = Instant::now();
        std::hint::black_box(
            tokio_rt
                .block_on(lang.plugin.plan(&lang.settings, req))
                .unwrap(),
        );
        t.elapsed()
    };
    let started = Instant::now();
    let mut samples: Vec<Duration> = (0..calls).map(|_| timed(request())).collect();
    let total = started.elapsed();
    let [p50, p90, p99, max] = percentiles(&mut samples);
    println!(
        "plan call ({code}, {calls} calls, 1 thread): p50 {} p90 {} p99 {} max {}; {:.0} calls/s (target p50 <= 50 µs)",
        us(p50),
        us(p90),
        us(p99),
        us(max),
        calls as f64 / total.as_secs_f64()
    );

    // Each call for another session: a fresh instance every time.
    let mut fresh: Vec<Duration> = (0..calls)
        .map(|i| timed(session_request(format!("/workspace/session-{i}"))))
        .collect();
    let [p50, p90, p99, max] = percentiles(&mut fresh);
    println!(
        "plan call ({code}, {calls} calls, 1 thread, each for another session: a fresh instance): p50 {} p90 {} p99 {} max {}",
        us(p50),
        us(p90),
        us(p99),
        us(max)
    );

    // Spaced out, as an agent's requests are: one call after each 50 ms of idleness
    // (the caches and TLBs have cooled down meanwhile).
    let idle_calls = env_usize("BENCH_PLAN_IDLE_CALLS", 40);
    let mut idle = Vec::with_capacity(idle_calls);
    for _ in 0..idle_calls {
        std::thread::sleep(Duration::from_millis(50));
        idle.push(timed(request()));
    }
    let [p50, p90, _, max] = percentiles(&mut idle);
    println!(
        "plan call ({code}, {idle_calls} calls, each after 50 ms idle): p50 {} p90 {} max {}",
        us(p50),
        us(p90),
        us(max)
    );

    // The same from two threads at once (the machine has 2 cores).
    let threads = 2;
    let per = calls / threads;
    let lang = Arc::new(lang);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let lang = lang.clone();
            std::thread::spawn(move || {
                let tokio_rt = current_thread();
                let mut v = Vec::with_capacity(per);
                for _ in 0..per {
                    let req = request();
                    let t = Instant::now();
                    tokio_rt
                        .block_on(lang.plugin.plan(&lang.settings, req))
                        .unwrap();
                    v.push(t.elapsed());
                }
                v
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = started.elapsed();
    let [p50, p90, p99, max] = percentiles(&mut all);
    println!(
        "plan call ({code}, {} calls, {threads} threads): p50 {} p90 {} p99 {} max {}; {:.0} calls/s",
        all.len(),
        us(p50),
        us(p90),
        us(p99),
        us(max),
        all.len() as f64 / total.as_secs_f64()
    );

    // 3. Start-up: a new runtime and every plugin of the directory with languages.toml
    //    applied, from a warm cache (what `sidecar serve` does before listening).
    let warm_cache = cache.path().join("all");
    {
        let rt = Runtime::new(PluginLimits::default(), Some(warm_cache.clone())).unwrap();
        plugins::load_registry(&rt, &dir, &languages, None).unwrap();
    }
    let count = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .count();
    let mut startup = Vec::new();
    let mut runtime_only = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let rt = Runtime::new(PluginLimits::default(), Some(warm_cache.clone())).unwrap();
        runtime_only.push(t.elapsed());
        let reg = plugins::load_registry(&rt, &dir, &languages, None).unwrap();
        startup.push(t.elapsed());
        assert!(reg.plugins.plugins.iter().all(|p| p.from_cache));
        assert!(reg.plugins.errors.is_empty(), "{:?}", reg.plugins.errors);
    }
    println!(
        "start-up, {count} plugins from a warm cache: {} (median of 10; engine and linker alone {}) (target <= 150 ms)",
        ms(median(startup)),
        ms(median(runtime_only))
    );
    let mut cold_all = Vec::new();
    for i in 0..2 {
        let dir_cache = cache.path().join(format!("cold-{i}"));
        let t = Instant::now();
        let rt = Runtime::new(PluginLimits::default(), Some(dir_cache)).unwrap();
        plugins::load_registry(&rt, &dir, &languages, None).unwrap();
        cold_all.push(t.elapsed());
    }
    println!(
        "start-up, {count} plugins, cold cache (all compiled): {} (median of 2)",
        ms(median(cold_all))
    );

    // 4. The binary: `sidecar languages` (start-up, load, toolchain look-ups, exit).
    let bin = repo().join("target/release/sidecar");
    if bin.is_file() {
        let run = || {
            let t = Instant::now();
            let out = std::process::Command::new(&bin)
                .arg("languages")
                .env("SIDECAR_PLUGINS_DIR", &dir)
                .env("SIDECAR_LANGUAGES", &languages)
                .env("SIDECAR_CACHE_DIR", &warm_cache)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            t.elapsed()
        };
        run();
        let times: Vec<Duration> = (0..10).map(|_| run()).collect();
        println!(
            "`sidecar languages`, warm cache, whole process: {} (median of 10)",
            ms(median(times))
        );
    }
}
