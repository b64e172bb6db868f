//! Hot reload and start-up of the real server: how long from a plugin file landing in
//! the plugins directory (renamed in) to the first successful /execute of its language,
//! with a cold compile cache (the plugin is compiled) and a warm one (the same bytes
//! again); and how long `sidecar serve` takes to listen with every plugin cached.
//!
//! `make build && cargo bench -p sidecar --bench reload`. Targets (docs/benchmarks.md,
//! "Plugins"): landing to first success < 1 s cold, < 300 ms warm.
//!
//! Options (environment): `BENCH_RELOAD_ROUNDS` (default 10).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// POSTs JSON over the socket; returns the status code (0 when the connection failed).
fn post(socket: &Path, path: &str, body: &str) -> u16 {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return 0;
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn with_custom_section(wasm: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"bench";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    let mut n = content.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&content);
    out
}

struct Server {
    child: Child,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sidecar serve`; returns it once it accepts connections, and how long that
/// took from the spawn.
fn serve(dir: &Path, plugins: &Path, languages: &Path, cache: &Path) -> (Server, Duration) {
    let socket = dir.join("s.sock");
    let _ = std::fs::remove_file(&socket);
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_sidecar"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOCKET_PATH", &socket)
        .env("WORKSPACE_ROOT", dir.join("ws"))
        .env("SIDECAR_SCRATCH_DIR", dir.join("scratch"))
        .env("SIDECAR_PLUGINS_DIR", plugins)
        .env("SIDECAR_LANGUAGES", languages)
        .env("SIDECAR_CACHE_DIR", cache)
        .env("SIDECAR_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .expect("the sidecar binary");
    let server = Server { child, socket };
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(&server.socket).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen");
        std::thread::sleep(Duration::from_micros(500));
    }
    (server, started.elapsed())
}

/// Polls /execute of `language` until it succeeds; returns how long it took.
fn until_served(socket: &Path, language: &str, since: Instant) -> Duration {
    let body = format!("{{\"language\":\"{language}\",\"code\":\"\"}}");
    let deadline = since + Duration::from_secs(30);
    loop {
        if post(socket, "/execute", &body) == 200 {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "{language} never served");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn until_gone(socket: &Path, language: &str) {
    let body = format!("{{\"language\":\"{language}\",\"code\":\"\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(socket, "/execute", &body) != 400 {
        assert!(Instant::now() < deadline, "{language} never went away");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stats(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label}: median {:.0} ms, min {:.0} ms, max {:.0} ms ({} rounds)",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(*v.last().unwrap()),
        v.len()
    );
}

/// The `duration_ms` of every "reloaded" line of a JSON log.
fn reload_durations(log: &Path) -> Vec<Duration> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"message\":\"reloaded\""))
        .filter_map(|l| {
            let rest = l.split("\"duration_ms\":").nth(1)?;
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            n.parse().ok().map(Duration::from_millis)
        })
        .collect()
}

fn main() {
    let built = repo().join("target/release/plugins");
    let hostile = repo().join("target/test-plugins/hostile.wasm");
    assert!(
        hostile.is_file() && built.is_dir(),
        "run `make build` first (plugins and target/test-plugins/hostile.wasm)"
    );
    let rounds: usize = std::env::var("BENCH_RELOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();

    // 1. Start-up to listening, every built plugin from a warm cache.
    let cache = tmp.path().join("cache-startup");
    let languages = repo().join("languages.toml");
    let mut listen = Vec::new();
    for i in 0..6 {
        let dir = tmp.path().join(format!("startup-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (_server, took) = serve(&dir, &built, &languages, &cache);
        if i > 0 {
            listen.push(took); // the first run filled the cache
        }
    }
    stats(
        "serve until listening, all plugins, warm cache (spawn to accept)",
        listen,
    );

    // 2. Hot reload: a plugin renamed into the directory of a running server.
    let dir = tmp.path().join("reload");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(built.join("template.wasm"), plugins.join("template.wasm")).unwrap();
    let languages = dir.join("languages.toml");
    std::fs::write(&languages, "").unwrap();
    let (server, _) = serve(&dir, &plugins, &languages, &dir.join("cache"));
    let original = std::fs::read(&hostile).unwrap();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Other bytes each round, so the first landing compiles.
        let bytes = with_custom_section(&original, format!("round {i}").as_bytes());
        for (j, times) in [&mut cold, &mut warm].into_iter().enumerate() {
            // Land at different points of the watcher's 100 ms poll cycle (removing the
            // previous file synchronised us with it): the median is then typical, the
            // maximum the worst case.
            std::thread::sleep(Duration::from_millis(((i * 37 + j * 50) % 100) as u64));
            let tmp_file = plugins.join(".hostile.wasm.tmp");
            std::fs::write(&tmp_file, &bytes).unwrap();
            let landed = Instant::now();
            std::fs::rename(&tmp_file, plugins.join("hostile.wasm")).unwrap();
            times.push(until_served(&server.socket, "hostile", landed));
            std::fs::remove_file(plugins.join("hostile.wasm")).unwrap();
            until_gone(&server.socket, "hostile");
        }
    }
    stats("plugin landing to first /execute, cold cache", cold);
    stats("plugin landing to first /execute, warm cache", warm);
    // Reloads alternate: load (cold), remove, load (warm), remove.
    let loads = reload_durations(&dir.join("log"));
    let pick =
        |start: usize| -> Vec<Duration> { loads.iter().skip(start).step_by(4).copied().collect() };
    if loads.len() >= 4 * rounds {
        stats("  of which the reload itself, cold (compile)", pick(0));
        stats("  of which the reload itself, warm (cache)", pick(2));
    }
    drop(server);
}
